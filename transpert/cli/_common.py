"""Arguments and input handling shared by subcommands (``fit``, ``predict``, ``run``; ``evaluate``, ``rank``)."""

from __future__ import annotations

import json

from transpert._errors import TranspertInputError
from transpert.data.schema import CONTROL_LABEL, PERT_COL


def add_input_arguments(parser, *, target_required: bool = True) -> None:
    # "extend": `--reference A --reference B` and `--reference A B` both give [A, B] (with plain
    # nargs="+" the repeated form silently kept only the last one)
    parser.add_argument("--reference", action="extend", nargs="+", default=[], metavar="[NAME=]REF.h5ad",
                        help="reference lines: summary profiles or cells (summarised on the way), "
                        "several after one --reference or one per --reference; the line name is "
                        "NAME or the file's stem")
    parser.add_argument("--target-train", required=target_required, metavar="TRAIN.h5ad",
                        help="the target line's training data: cells (counts or log1p) or a summary profile")
    parser.add_argument("--pert-col", default=PERT_COL, help="obs column with the perturbation labels")
    parser.add_argument("--control", default=CONTROL_LABEL, help="label of the control cells in that column")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a method parameter (VALUE read as JSON when it parses, else a string); repeatable")
    parser.add_argument("--threads", type=int, default=None, help="cores to use (default: all available)")


def add_scoring_arguments(parser) -> None:
    """Options shared by ``transpert evaluate`` and ``transpert rank``."""
    parser.add_argument("--pert-col", default=PERT_COL, help="obs column with the perturbation labels")
    parser.add_argument("--control", default=CONTROL_LABEL, help="label of the control cells in that column")
    parser.add_argument("--threads", type=int, default=None, help="cores to use (default: all available)")
    parser.add_argument("--suite", default="vcc2025",
                        help="the scorer to reproduce: vcc2025 (the 2025 leaderboard: cell-eval "
                        "0.6.6 + pdex 0.1.27), cell-eval-0.8.2, vcc2026 (cell-eval2 0.20.0 run "
                        "--preset vcc2026: raw counts, six scored metrics) "
                        "(default: %(default)s)")
    parser.add_argument("--ties", choices=["gene", "polars"], default="gene",
                        help="order of DE genes tied in |log2FC| for overlap/precision: gene "
                        "(file order, deterministic) or polars (cell-eval's own ranking, whose tie "
                        "order depends on POLARS_MAX_THREADS)")
    parser.add_argument("--memory-budget", default=None,
                        help="memory the DE engine may use per file, e.g. 1GB; files are streamed "
                        "from disk one at a time (default: 2GB)")


def add_vcc2026_arguments(parser, *, anchor_flag: bool = True) -> None:
    """The vcc2026 suite's reference-point options (``evaluate`` and ``rank``)."""
    v26 = parser.add_argument_group("vcc2026 suite")
    if anchor_flag:
        v26.add_argument("--anchor", action="store_true",
                         help="build the score's two reference points from the real cells "
                         "(mean-response baseline, replicate anchor: 5 half splits) and write "
                         "score.csv, as cell-eval2 baseline + run --anchor + score do")
    v26.add_argument("--real-bundle", help="score against a directory written by cell-eval2 "
                     "prep-real-bundle (its baseline and anchor), as cell-eval2 score does; "
                     "real data that is not the bundle's is refused")
    v26.add_argument("--baseline-seed", type=int, default=0,
                     help="seed of the baseline's control-cell draws (default: %(default)s)")
    v26.add_argument("--anchor-base-seed", type=int, default=0,
                     help="base seed of the anchor's splits (default: %(default)s)")
    v26.add_argument("--anchor-splits", type=int, default=5,
                     help="half splits averaged by the anchor (default: %(default)s)")


def parse_params(items: list[str]) -> dict:
    """``["k=v", ...]`` -> dict, values as JSON where they parse (numbers, lists, true/false)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise TranspertInputError(f"--param {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def read_references(sources: dict[str, str], *, pert_col: str, control: str, threads) -> dict:
    """Summary profiles of every reference (cells summarised on the way)."""
    from transpert.summarize import read_input

    return {name: read_input(src, what=f"reference {name!r} ({src})", pert_col=pert_col,
                                control=control, threads=threads)[0]
            for name, src in sources.items()}
