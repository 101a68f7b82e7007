"""The vcc2026 run: both files streamed, the profile's metrics, cell-eval2's two tables.

``results.csv``: long table ``perturbation, metric, value`` (per-perturbation members, in
cell-eval2's order). ``agg_results.csv``: one column per metric (sorted names), rows
count, null_count, mean, std, min, max, median over the NaN-dropped values; the derived
``expr_mse_unbiased_capped_norm`` holds only its mean: sum of the capped numerator over sum of
the real distance, over perturbations where both are finite.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from transpert.data.schema import CONTROL_LABEL, PERT_COL
from transpert.evaluate.vcc2026._config import BULK_TARGET_SUM, DERIVED, PER_PERT
from transpert.evaluate.vcc2026._inputs import Scanned, check_pair, open_counts, scan_counts
from transpert.evaluate.vcc2026._metrics import de_metrics, expr_metrics, pds_cosine
from transpert.evaluate.vcc2026._stats import Control, Side, summarize_side

STATISTICS = ("count", "null_count", "mean", "std", "min", "max", "median")


@dataclass
class RealSummary:
    """The real side, once summarised: reusable for several predictions (baseline, anchor)."""

    scanned: Scanned
    side: Side
    control: Control
    control_label: str
    source: object  # the path or AnnData it was read from (the anchor reads it again)
    pert_col: str

    @property
    def genes(self) -> np.ndarray:
        return self.scanned.genes

    @property
    def labels(self) -> list:
        return [str(g) for g in self.side.groups if g != self.control_label]


def summarize_real(real, pert_col: str = PERT_COL, control: str = CONTROL_LABEL,
                   chunk_rows: int | None = None) -> RealSummary:
    """Scan and summarise real raw counts (two row-chunk passes)."""
    opened = open_counts(real, "real", pert_col, control)
    try:
        scanned = scan_counts(opened, chunk_rows)
        side, ctrl = summarize_side(scanned, control, None, chunk_rows)
    finally:
        opened.close()
    return RealSummary(scanned, side, ctrl, control, real, pert_col)


def metrics_from_sides(real: RealSummary, pred: Side) -> dict:
    """{metric: {label: value}} of the profile's per-perturbation members."""
    side = real.side
    groups = list(side.groups)
    ci = groups.index(real.control_label)
    rows = [groups.index(p) for p in real.labels]
    labels = real.labels
    genes = real.genes
    out = de_metrics(side, pred, genes, labels)
    out["pds_cosine"] = pds_cosine(side.means[rows], pred.means[rows], side.means[ci], genes,
                                   labels)
    out.update(expr_metrics(side.means[rows], side.jk[rows], pred.means[rows], pred.jk[rows],
                            side.means[ci], side.jk[ci], genes, labels, BULK_TARGET_SUM))
    return out


def results_table(values: dict) -> pd.DataFrame:
    """The long per-perturbation table, cell-eval2's metric order, labels sorted."""
    rows = [(p, m, v) for m in PER_PERT for p, v in sorted(values[m].items())]
    return pd.DataFrame(rows, columns=["perturbation", "metric", "value"])


def derived_value(results: pd.DataFrame, num: str, den: str) -> float:
    """Sum of numerator over sum of denominator where both are finite."""
    n = results[results.metric == num].set_index("perturbation").value
    d = results[results.metric == den].set_index("perturbation").value
    both = pd.concat([n.rename("n"), d.rename("d")], axis=1, join="inner")
    both = both[np.isfinite(both.n) & np.isfinite(both.d)]
    return float(both.n.sum() / both.d.sum()) if len(both) else float("nan")


def agg_table(results: pd.DataFrame) -> pd.DataFrame:
    """cell-eval2's wide aggregate (agg_results.csv)."""
    cols = {"statistic": list(STATISTICS)}
    for m in sorted(set(PER_PERT) | set(DERIVED)):
        if m in DERIVED:
            col = [np.nan] * len(STATISTICS)
            col[STATISTICS.index("mean")] = derived_value(results, *DERIVED[m])
            cols[m] = col
            continue
        raw = results.loc[results.metric == m, "value"].to_numpy(float)
        nn = raw[~np.isnan(raw)]
        cols[m] = [float(raw.size), 0.0,
                   *(float(f(nn)) if nn.size else np.nan for f in (np.mean,)),
                   float(np.std(nn, ddof=1)) if nn.size > 1 else np.nan,
                   *(float(f(nn)) if nn.size else np.nan for f in (np.min, np.max, np.median))]
    return pd.DataFrame(cols)


def run_metrics(real: RealSummary, pred, pert_col: str = PERT_COL,
                chunk_rows: int | None = None) -> pd.DataFrame:
    """Score a prediction (raw counts, path or AnnData) against a summarised real side;
    returns the long results table."""
    opened = open_counts(pred, "pred", pert_col, real.control_label)
    try:
        scanned = scan_counts(opened, chunk_rows)
        check_pair(real.scanned, scanned)
        side, _ = summarize_side(scanned, real.control_label, real.control, chunk_rows)
    finally:
        opened.close()
    return results_table(metrics_from_sides(real, side))
