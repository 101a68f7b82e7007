"""``evaluate_vcc2026``: cell-eval2 0.20.0's vcc2026 suite on a raw-count pair, with its score.

Inputs are raw counts (h5ad paths or AnnData). Outputs (``outdir``): ``results.csv`` and
``agg_results.csv`` in cell-eval2's layouts; with ``anchor=True`` the two reference points built
here from the real cells (``baseline_results.csv``, ``baseline_agg.csv``, ``anchor_splits.csv``,
``anchor_agg.csv``) and ``score.csv``; with ``real_bundle`` a directory written by
``cell-eval2 prep-real-bundle``, ``score.csv`` against its baseline and anchor. ``suite.json``
names the suite and its reference in every output folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pandas as pd

from transpert._errors import TranspertInputError
from transpert.data.schema import CONTROL_LABEL, PERT_COL
from transpert.evaluate.vcc2026._anchor import replicate_anchor
from transpert.evaluate.vcc2026._baseline import baseline_side
from transpert.evaluate.vcc2026._config import REFERENCE, SUITE
from transpert.evaluate.vcc2026._run import (
    agg_table,
    metrics_from_sides,
    results_table,
    run_metrics,
    summarize_real,
)
from transpert.evaluate.vcc2026._score import score_table


@dataclass
class Vcc2026Result:
    """results / agg: the submission's tables; baseline_* / anchor_*: the reference points when
    built here; score: per member user, baseline, replicate, from_replicate (+ avg_score)."""

    results: pd.DataFrame
    agg: pd.DataFrame
    baseline_results: pd.DataFrame | None = None
    baseline_agg: pd.DataFrame | None = None
    anchor_splits: pd.DataFrame | None = None
    anchor: pd.DataFrame | None = None
    score: pd.DataFrame | None = None

    @property
    def avg_score(self) -> float | None:
        return None if self.score is None else float(self.score["from_replicate"].iloc[-1])

    def write(self, outdir) -> None:
        os.makedirs(outdir, exist_ok=True)
        tables = {"results.csv": self.results, "agg_results.csv": self.agg,
                  "baseline_results.csv": self.baseline_results,
                  "baseline_agg.csv": self.baseline_agg, "anchor_splits.csv": self.anchor_splits,
                  "anchor_agg.csv": self.anchor, "score.csv": self.score}
        for name, table in tables.items():
            if table is not None:
                table.to_csv(os.path.join(outdir, name), index=False)
        with open(os.path.join(outdir, "suite.json"), "w") as fh:
            json.dump({"suite": SUITE, "reference": REFERENCE}, fh, indent=1)


def _means(agg: pd.DataFrame) -> dict:
    return agg.set_index("statistic").loc["mean"].astype(float).to_dict()


def read_real_bundle(path) -> tuple[dict, dict]:
    """(baseline means, replicate anchor) from a ``cell-eval2 prep-real-bundle`` directory."""
    base = os.path.join(path, "baseline_agg.csv")
    anchor = os.path.join(path, "anchor_agg.parquet")
    for f in (base, anchor):
        if not os.path.exists(f):
            raise TranspertInputError(f"--real-bundle {path}: no {os.path.basename(f)}; pass a "
                                      "directory written by cell-eval2 prep-real-bundle")
    frame = pd.read_parquet(anchor)
    return _means(pd.read_csv(base)), dict(zip(frame["metric"], frame["replicate"].astype(float)))


def evaluate_vcc2026(pred, real, outdir=None, *, pert_col: str = PERT_COL,
                     control: str = CONTROL_LABEL, anchor: bool = False, real_bundle=None,
                     baseline_seed: int = 0, anchor_base_seed: int = 0, anchor_splits: int = 5,
                     chunk_rows: int | None = None) -> Vcc2026Result:
    """Score raw-count predictions against raw-count real cells as ``cell-eval2 run --preset
    vcc2026`` does; ``anchor``: also build the mean-response baseline and the replicate anchor
    from the real cells (cell-eval2's seeds) and score; ``real_bundle``: score against a
    cell-eval2 real bundle instead. Both files are read in row chunks."""
    if anchor and real_bundle is not None:
        raise TranspertInputError("--anchor and --real-bundle both supply the score's reference "
                                  "points; pass one")
    real_summary = summarize_real(real, pert_col, control, chunk_rows)
    results = run_metrics(real_summary, pred, pert_col, chunk_rows)
    out = Vcc2026Result(results, agg_table(results))
    if anchor:
        out.baseline_results = results_table(
            metrics_from_sides(real_summary, baseline_side(real_summary, baseline_seed)))
        out.baseline_agg = agg_table(out.baseline_results)
        out.anchor_splits, out.anchor = replicate_anchor(real_summary, anchor_base_seed,
                                                         anchor_splits, chunk_rows)
        base, rep = _means(out.baseline_agg), dict(zip(out.anchor.metric, out.anchor.replicate))
    elif real_bundle is not None:
        base, rep = read_real_bundle(real_bundle)
    if anchor or real_bundle is not None:
        out.score = score_table(_means(out.agg), base, rep)
    if outdir is not None:
        out.write(outdir)
    return out
