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
    """The real side of the vcc2026 suite, once summarised (from :func:`summarize_real`):
    per-group count sums, log1p profiles with their jackknife corrections, the control and the
    DE tables, reusable for several predictions (:func:`run_metrics`, the baseline, the
    anchor). ``genes``: the gene order; ``labels``: the non-control perturbations."""

    scanned: Scanned
    side: Side
    control: Control
    control_label: str
    source: object  # the path or AnnData it was read from (replicate_anchor may read it again)
    pert_col: str
    anchor: object = None  # the replicate anchor's splits when built in the same pass

    @property
    def genes(self) -> np.ndarray:
        return self.scanned.genes

    @property
    def labels(self) -> list:
        return [str(g) for g in self.side.groups if g != self.control_label]


def summarize_real(real, pert_col: str = PERT_COL, control: str = CONTROL_LABEL,
                   chunk_rows: int | None = None, hooks=None, keep_counts: bool = True
                   ) -> RealSummary:
    """Scan and summarise the real cells once, for :func:`run_metrics`.

    Parameters
    ----------
    real : h5ad path or AnnData of raw UMI counts (checked: non-negative integers, at most 1e6
        per cell, the control present), read once in row chunks.
    pert_col, control : the perturbation column and the control label.
    chunk_rows : cells read at a time (None: automatic).
    hooks : None, or ``hooks(opened, scanned)`` returning the replicate anchor's collector
        (:func:`~transpert.evaluate.vcc2026._anchor.anchor_collector`): the anchor's splits
        are then scored in the same pass and kept as ``RealSummary.anchor``.
    keep_counts : keep the control's raw counts (``RealSummary.control.X``, 8 bytes per stored
        value), which the mean-response baseline draws from; False drops them once the control
        is summarised.

    Returns
    -------
    RealSummary
        Profiles (log1p of counts normalised to 5e4 per group) and the DE tables against the
        control (log2FC of CPM means, BH-adjusted Wilcoxon p-values).

    Examples
    --------
    >>> from transpert.evaluate.vcc2026 import summarize_real, run_metrics, agg_table
    >>> real = summarize_real("real_counts.h5ad")  # doctest: +SKIP
    >>> agg_table(run_metrics(real, "pred_counts.h5ad"))  # doctest: +SKIP
    """
    opened = open_counts(real, "real", pert_col, control)
    try:
        scanned = scan_counts(opened)
        collector = None if hooks is None else hooks(opened, scanned)
        side, ctrl = summarize_side(scanned, control, None, chunk_rows, collector, keep_counts)
    finally:
        opened.close()
    return RealSummary(scanned, side, ctrl, control, real, pert_col, collector)


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
    """The long per-perturbation table (``results.csv``) from ``{metric: {label: value}}``.

    Returns a DataFrame ``perturbation, metric, value``: cell-eval2's metric order, labels
    sorted; values on each metric's own scale.
    """
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
    """cell-eval2's wide aggregate (``agg_results.csv``) of a long results table
    (:func:`results_table` / :func:`run_metrics`).

    Returns a DataFrame: ``statistic`` (count, null_count, mean, std, min, max, median) x
    metric, NaN values left out of the statistics; ``expr_mse_unbiased_capped_norm`` has only
    its mean, the ratio of the summed ``expr_mse_unbiased_capped`` to the summed
    ``expr_distance_unbiased``.
    """
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
    """Score one prediction against a summarised real side (no baseline, anchor or score).

    Parameters
    ----------
    real : the :class:`RealSummary` of the real cells (:func:`summarize_real`).
    pred : h5ad path or AnnData of raw UMI counts, the real side's genes and labels.
    pert_col : the perturbation column; chunk_rows : cells read at a time.

    Returns
    -------
    DataFrame
        The long per-perturbation table (:func:`results_table`); aggregate it with
        :func:`agg_table`.
    """
    opened = open_counts(pred, "pred", pert_col, real.control_label)
    try:
        scanned = scan_counts(opened)
        check_pair(real.scanned, scanned)
        side, _ = summarize_side(scanned, real.control_label, real.control, chunk_rows)
    finally:
        opened.close()
    return results_table(metrics_from_sides(real, side))
