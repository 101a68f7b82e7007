"""``transpert summarize INPUT -o SUMMARY.h5ad``: a dataset's summary profile."""

from __future__ import annotations

from transpert.data.schema import CONTROL_LABEL, MIN_CELLS, PERT_COL


def add_common(parser) -> None:
    """Options shared by ``summarize`` and ``de``."""
    parser.add_argument("input", help="h5ad path or manifest dataset name (raw counts or log1p)")
    parser.add_argument("--pert-col", default=PERT_COL, help="obs column with the perturbation labels")
    parser.add_argument("--control", default=CONTROL_LABEL, help="label of the control cells in that column")
    parser.add_argument("--reference", default=None,
                        help="reference group for the rank-sum test: the control, 'rest' (every other cell), "
                        "or a label (default: the control)")
    parser.add_argument("--min-cells", type=int, default=MIN_CELLS,
                        help="perturbations with fewer cells are kept but flagged (obs['few_cells'] "
                        "of the summary) and named in a warning, as their DE calls rest on too few "
                        "cells (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="cores to use (default: all available)")
    parser.add_argument("--memory-budget", default="2GB", help="memory bound for streaming, e.g. 2GB, 500MB")
    parser.add_argument("--backend", choices=("threads", "joblib"), default="threads",
                        help="numba threads, or joblib worker processes (one gene block per job)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS|local:N",
                        help="compute on a dask.distributed cluster: a scheduler address "
                        "(tcp://host:8786; workers read the input file themselves, so it must be "
                        "on storage they share) or local:N (N worker processes started here); "
                        "needs pip install 'transpert[dask]'")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_arguments(parser) -> None:
    add_common(parser)
    parser.add_argument("-o", "--out", "--output", dest="output", required=True, help="summary profile to write (.h5ad)")
    parser.add_argument("--fdr", choices=("per_perturbation", "table"), default="per_perturbation",
                        help="Benjamini-Hochberg over each perturbation's genes (per_perturbation, as "
                        "cell-eval 0.8.2) or over the whole table (table, as pdex 0.1.27 for the 2025 leaderboard) "
                        "(default: %(default)s)")
    parser.add_argument("--log2fc", choices=("exact", "clipped"), default="exact",
                        help="exact: log2(expm1(mean) / expm1(control mean)), +/-inf where one is 0 "
                        "(cell-eval 0.8.2, METRICS.md); clipped: only the undefined ratios replaced, "
                        "control 0 -> 20, perturbation 0 -> 1/20, both 0 -> 1 (pdex 0.1.27, the "
                        "2025 leaderboard) (default: %(default)s)")
    parser.add_argument("--no-de", action="store_true", help="pseudo-bulk only (no rank-sum test)")


def run(args) -> int:
    from transpert.summarize import summarize
    from transpert.summarize._profile import read_summary_obs

    # written block of perturbation rows by block as they are ready: never whole in memory
    path = summarize(args.input, pert_col=args.pert_col, control=args.control,
                     reference=args.reference, threads=args.threads,
                     memory_budget=args.memory_budget, fdr=args.fdr, log2fc=args.log2fc,
                     de=not args.no_de, backend=args.backend, min_cells=args.min_cells,
                     scheduler=args.scheduler, out=args.output,
                     show_progress=False if args.no_progress else None)
    obs, n_vars = read_summary_obs(path)
    few = int(obs["few_cells"].sum())
    print(f"wrote {args.output}: {len(obs)} perturbations x {n_vars} genes"
          + (f" ({few} flagged in obs['few_cells']: fewer than {args.min_cells} cells)" if few else ""))
    return 0
