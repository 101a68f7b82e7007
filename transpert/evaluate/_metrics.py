"""The metrics of cell-eval 0.8.2, each a pure function of a :class:`BulkPair` or :class:`DEPair`.

Module paths in comments refer to the cell-eval package. Bulk metrics take float32 pseudo-bulks
on the log1p scale; DE metrics take float32 log2 fold changes and FDRs (cell-eval casts the DE
tables to float32 before computing anything).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from transpert._errors import TranspertInputError
from transpert.metrics import discrimination_scores
from transpert.evaluate._registry import BulkPair, DEPair, MetricValues, register

# ----------------------------------------------------------------------------------------------
# Small numerical helpers (independent restatements of the scipy / sklearn / polars calls).


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """scipy.stats.pearsonr(x, y)[0] in float64; NaN when either input is constant."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 2 or (x == x[0]).all() or (y == y[0]).all():
        return float("nan")
    xm = x - x.mean()
    ym = y - y.mean()
    r = float(np.dot(xm / np.linalg.norm(xm), ym / np.linalg.norm(ym)))
    return max(-1.0, min(1.0, r))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """polars ``pl.corr(method="spearman")``: Pearson of average ranks (inf ranked as values)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 2:
        return float("nan")
    return pearson(rankdata(x), rankdata(y))


def _binary_clf_curve(labels: np.ndarray, scores: np.ndarray):
    # sklearn.metrics._ranking._binary_clf_curve (no sample weights).
    order = np.argsort(scores, kind="mergesort")[::-1]
    scores = scores[order]
    truth = labels[order].astype(np.float64)
    distinct = np.where(np.diff(scores))[0]
    thresholds = np.r_[distinct, truth.size - 1]
    tps = np.cumsum(truth, dtype=np.float64)[thresholds]
    fps = 1 + thresholds - tps
    return fps, tps


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """sklearn ``average_precision_score`` for binary labels (step-wise, no interpolation)."""
    fps, tps = _binary_clf_curve(labels, scores)
    ps = tps + fps
    precision = np.zeros_like(tps)
    np.divide(tps, ps, out=precision, where=(ps != 0))
    recall = tps / tps[-1]
    precision = np.hstack((precision[::-1], 1))
    recall = np.hstack((recall[::-1], 0))
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """sklearn ``auc(*roc_curve(labels, scores)[:2])`` (trapezoids, intermediate points dropped)."""
    fps, tps = _binary_clf_curve(labels, scores)
    if fps.size > 2:
        keep = np.where(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])[0]
        fps, tps = fps[keep], tps[keep]
    fpr = np.r_[0, fps] / fps[-1]
    tpr = np.r_[0, tps] / tps[-1]
    return float(np.trapezoid(tpr, fpr) if hasattr(np, "trapezoid") else np.trapz(tpr, fpr))


# ----------------------------------------------------------------------------------------------
# Bulk metrics (metrics/_anndata.py). x = prediction, y = real, as cell-eval passes them.


def _per_perturbation(data: BulkPair, fn, use_delta: bool) -> MetricValues:
    if use_delta:
        x, y = data.pred_delta, data.real_delta
    else:
        x, y = data.pred_means, data.real_means
    return MetricValues([fn(x[i], y[i]) for i in range(x.shape[0])])


def _mae(x, y):
    return float(np.mean(np.abs(x.astype(np.float64) - y.astype(np.float64))))


def _mse(x, y):
    return float(np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2))


def mae(data: BulkPair) -> MetricValues:
    """Mean over genes of |pred mean - real mean| per perturbation (log1p scale). Best 0."""
    return _per_perturbation(data, _mae, use_delta=False)


def mse(data: BulkPair) -> MetricValues:
    """Mean squared error of the pseudo-bulks. Best 0."""
    return _per_perturbation(data, _mse, use_delta=False)


def mae_delta(data: BulkPair) -> MetricValues:
    """MAE of the deltas from each file's own control mean. Best 0."""
    return _per_perturbation(data, _mae, use_delta=True)


def mse_delta(data: BulkPair) -> MetricValues:
    """MSE of the deltas. Best 0."""
    return _per_perturbation(data, _mse, use_delta=True)


def pearson_delta(data: BulkPair) -> MetricValues:
    """Pearson r of predicted and real deltas over all genes. Best 1."""
    return _per_perturbation(data, pearson, use_delta=True)


def discrimination_score(data: BulkPair, metric: str = "l1") -> MetricValues:
    """PDS: 1 - rank/N of the true perturbation among real deltas (see :mod:`transpert.metrics.pds`). Best 1."""
    return MetricValues(discrimination_scores(data.pred_delta, data.real_delta, data.labels,
                                              data.genes, metric=metric))


# ----------------------------------------------------------------------------------------------
# DE metrics (metrics/_de.py, _types/_de.py).


TIE_ORDERS = ("gene", "polars")


def ranked_significant(sig: np.ndarray, lfc: np.ndarray, ties: str = "gene",
                       labels=None) -> list[np.ndarray]:
    """Per perturbation: significant gene indices by |log2FC| (float32) descending, +-inf first.

    cell-eval ranks with polars ``pl.struct(abs_lfc).rank("ordinal", descending=True)
    .over("target")``. polars breaks ties with its parallel *unstable* sort once a group holds
    more than a handful of genes, so which of several tied genes (typically many +-inf fold
    changes) comes first depends on polars' version and on its thread count
    (``POLARS_MAX_THREADS``; 1 thread and 2 threads give different orders). ``ties="gene"``
    (default) orders tied genes by gene position: deterministic, and what polars gives for
    small groups. ``ties="polars"`` runs cell-eval's own expression, so overlaps equal
    cell-eval's run with the same polars and thread count (needs polars).
    """
    if ties == "polars":
        return _ranked_polars(sig, lfc, labels)
    if ties != "gene":
        raise TranspertInputError(f"ties must be one of {TIE_ORDERS}, got {ties!r}")
    out = []
    for i in range(sig.shape[0]):
        idx = np.flatnonzero(sig[i])
        a = np.abs(lfc[i, idx])
        out.append(idx[np.argsort(-a, kind="stable")])
    return out


def _ranked_polars(sig: np.ndarray, lfc: np.ndarray, labels) -> list[np.ndarray]:
    try:
        import polars as pl
    except ImportError:
        raise TranspertInputError("ties='polars' needs polars (pip install polars)") from None
    rows, cols = np.nonzero(sig)  # per perturbation, genes in file order: pdex's table order
    names = np.asarray(labels if labels is not None else np.arange(sig.shape[0])).astype(str)
    frame = pl.DataFrame({
        "target": pl.Series(names[rows]).cast(pl.Categorical),
        "abs_log2_fold_change": pl.Series(np.abs(lfc[rows, cols]).astype(np.float32)),
    })
    rank = frame.select(pl.struct("abs_log2_fold_change").rank("ordinal", descending=True)
                        .over("target") - 1).to_series().to_numpy().astype(np.int64)
    out = []
    bounds = np.searchsorted(rows, np.arange(sig.shape[0] + 1))
    for i in range(sig.shape[0]):
        lo, hi = bounds[i], bounds[i + 1]
        ordered = np.empty(hi - lo, dtype=np.int64)
        ordered[rank[lo:hi]] = cols[lo:hi]
        out.append(ordered)
    return out


def overlap(data: DEPair, k: int | None = None, metric: str = "overlap") -> MetricValues:
    """``overlap_at_k`` (recall of the real top-k significant genes) or ``precision_at_k``.

    k None means N = number of real (overlap) or predicted (precision) significant genes.
    0 when that number is 0, and 0 for every perturbation when either table has no significant
    gene at all (``DEComparison.compute_overlap``). Best 1.
    """
    real_sig, pred_sig = data.real_sig, data.pred_sig
    n = data.labels.size
    if not real_sig.any() or not pred_sig.any():
        return MetricValues(np.zeros(n))
    real_ranked = ranked_significant(real_sig, data.real_lfc, data.ties, data.labels)
    pred_ranked = ranked_significant(pred_sig, data.pred_lfc, data.ties, data.labels)
    values = np.zeros(n)
    for i in range(n):
        r, p = real_ranked[i], pred_ranked[i]
        size = r.size if metric == "overlap" else p.size
        k_eff = size if not k else min(k, size)
        if k_eff:
            values[i] = np.intersect1d(r[:k_eff], p[:k_eff]).size / k_eff
    return MetricValues(values)


def de_spearman_sig(data: DEPair) -> MetricValues:
    """One value for all perturbations: Spearman of (real, predicted) numbers of DE genes over
    the perturbations with at least one real DE gene; 1.0 when there are none. Best 1."""
    real_n = data.real_sig.sum(axis=1)
    pred_n = data.pred_sig.sum(axis=1)
    keep = real_n > 0
    value = 1.0 if not keep.any() else spearman(real_n[keep], pred_n[keep])
    return MetricValues(np.full(data.labels.size, value))


def _over_real_significant(data: DEPair, fn) -> MetricValues:
    real_sig = data.real_sig
    values = np.full(data.labels.size, np.nan)
    defined = real_sig.any(axis=1)
    for i in np.flatnonzero(defined):
        values[i] = fn(i, real_sig[i])
    return MetricValues(values, defined)


def de_direction_match(data: DEPair) -> MetricValues:
    """Fraction of real DE genes whose predicted log2FC has the same sign. Null without real DE
    genes. Best 1."""
    return _over_real_significant(
        data, lambda i, s: float(np.mean(np.sign(data.real_lfc[i, s]) == np.sign(data.pred_lfc[i, s]))))


def de_spearman_lfc_sig(data: DEPair) -> MetricValues:
    """Spearman of real and predicted log2FC over the real DE genes. Null without real DE genes,
    NaN with exactly one. Best 1."""
    return _over_real_significant(
        data, lambda i, s: spearman(data.real_lfc[i, s], data.pred_lfc[i, s]))


def de_sig_genes_recall(data: DEPair) -> MetricValues:
    """Fraction of real DE genes also significant in the prediction. Null without real DE
    genes. Best 1."""
    pred_sig = data.pred_sig
    return _over_real_significant(data, lambda i, s: float(np.sum(s & pred_sig[i]) / np.sum(s)))


def de_nsig_counts(data: DEPair) -> dict[str, MetricValues]:
    """Numbers of significant genes, real and predicted (not scored)."""
    return {
        "de_nsig_counts_real": MetricValues(data.real_sig.sum(axis=1)),
        "de_nsig_counts_pred": MetricValues(data.pred_sig.sum(axis=1)),
    }


def _auc(data: DEPair, fn) -> MetricValues:
    labels = data.real_sig
    # -log10 of the floored predicted FDR, in float32 as polars computes it on the f32 column:
    # cell-eval 0.8.2 clips the FDR to [1e-10, 1], 0.6.6 replaces only FDR == 0 by 1e-10.
    q = data.pred_fdr.astype(np.float32)
    if data.fdr_floor == "zero":
        q = np.where(q == 0, np.float32(1e-10), q)
    else:
        q = np.clip(q, np.float32(1e-10), np.float32(1.0))
    scores = (-np.log10(q.astype(np.float64))).astype(np.float32)
    values = np.full(data.labels.size, np.nan)
    for i in range(labels.shape[0]):
        n_pos = labels[i].sum()
        if 0 < n_pos < labels.shape[1]:
            values[i] = fn(labels[i], scores[i])
    return MetricValues(values)


def pr_auc(data: DEPair) -> MetricValues:
    """Average precision of -log10(pred FDR) for the real DE labels; NaN when the real labels
    are all 0 or all 1. Best 1."""
    return _auc(data, average_precision)


def roc_auc_metric(data: DEPair) -> MetricValues:
    """ROC AUC of -log10(pred FDR) for the real DE labels; NaN like pr_auc. Best 1."""
    return _auc(data, roc_auc)


# ----------------------------------------------------------------------------------------------
# Registration, in cell-eval's registry order (which is its column order).

for _kind in ("overlap", "precision"):
    for _n in (None, 50, 100, 200, 500):
        register(f"{_kind}_at_{_n or 'N'}", "de", 1.0,
                 f"{_kind} of the top {_n or 'N'} DE genes", overlap,
                 kwargs={"k": _n, "metric": _kind})
register("de_spearman_sig", "de", 1.0, "Spearman of the numbers of DE genes", de_spearman_sig)
register("de_direction_match", "de", 1.0, "sign agreement on real DE genes", de_direction_match)
register("de_spearman_lfc_sig", "de", 1.0, "Spearman of log2FC on real DE genes",
         de_spearman_lfc_sig)
register("de_sig_genes_recall", "de", 1.0, "recall of real DE genes", de_sig_genes_recall)
register("de_nsig_counts", "de", None, "numbers of DE genes (real, pred)", de_nsig_counts,
         outputs=("de_nsig_counts_real", "de_nsig_counts_pred"))
register("pr_auc", "de", 1.0, "average precision of DE calls", pr_auc)
register("roc_auc", "de", 1.0, "ROC AUC of DE calls", roc_auc_metric)
register("pearson_delta", "bulk", 1.0, "Pearson r of deltas", pearson_delta)
register("mse", "bulk", 0.0, "MSE of pseudo-bulks", mse)
register("mae", "bulk", 0.0, "MAE of pseudo-bulks", mae)
register("mse_delta", "bulk", 0.0, "MSE of deltas", mse_delta)
register("mae_delta", "bulk", 0.0, "MAE of deltas", mae_delta)
for _m in ("l1", "l2", "cosine"):
    register(f"discrimination_score_{_m}", "bulk", 1.0, f"PDS with {_m} distance",
             discrimination_score, kwargs={"metric": _m})

PROFILES: dict[str, tuple[str, ...]] = {
    "vcc": ("mae", "discrimination_score_l1", "overlap_at_N"),
    "full": tuple(
        ["overlap_at_N", "overlap_at_50", "overlap_at_100", "overlap_at_200", "overlap_at_500",
         "precision_at_N", "precision_at_50", "precision_at_100", "precision_at_200",
         "precision_at_500", "de_spearman_sig", "de_direction_match", "de_spearman_lfc_sig",
         "de_sig_genes_recall", "de_nsig_counts", "pr_auc", "roc_auc", "pearson_delta", "mse",
         "mae", "mse_delta", "mae_delta", "discrimination_score_l1", "discrimination_score_l2",
         "discrimination_score_cosine"]),
}
# The seven metrics of the challenge's Generalist Prize ranking.
GENERALIST = ("mae", "discrimination_score_l1", "overlap_at_N", "pearson_delta",
              "de_spearman_lfc_sig", "pr_auc", "de_spearman_sig")
