"""Bootstrap confidence intervals over perturbations, paired comparisons, generalist ranking.

cell-eval reports one number per metric. Here every aggregate gets a percentile interval from
resampling perturbations with replacement (seeded), and two predictions on the same real data
are compared on the *same* resamples (paired), which is much tighter than comparing two
separate intervals.

Missing values: a perturbation whose metric is null (no real DE genes) or NaN (e.g. pr_auc when
the real labels are all 0) is left out of that metric's resampled means, and ``n_used`` says
how many perturbations entered. These perturbations depend on the real data only, so every
prediction evaluated on the same real file leaves out the same ones. ``mean_cell_eval`` keeps
cell-eval's own aggregate (a NaN anywhere makes it NaN).
"""

from __future__ import annotations


import numpy as np
import pandas as pd
from scipy.stats import rankdata

from transpert._errors import TranspertInputError
from transpert.evaluate._metrics import GENERALIST, spearman
from transpert.evaluate._registry import best_value
from transpert.evaluate._resample import resample_indices
from transpert.evaluate._score import score


def _matrix(result, columns):
    """(N, M) values with NaN where null or NaN."""
    values = np.column_stack([
        np.where(result.defined[c].to_numpy(), result.results[c].to_numpy(dtype=np.float64), np.nan)
        for c in columns
    ])
    return values


def _resampled_means(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(B, M) means over resampled rows, ignoring NaN; NaN when a resample has no value."""
    ok = ~np.isnan(values)
    filled = np.where(ok, values, 0.0)
    sums = np.stack([filled[i].sum(axis=0) for i in idx])
    counts = np.stack([ok[i].sum(axis=0) for i in idx])
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def _de_spearman_sig_boot(result, idx: np.ndarray) -> np.ndarray | None:
    if result.de is None:
        return None
    real_n = result.de.real_sig.sum(axis=1)
    pred_n = result.de.pred_sig.sum(axis=1)
    out = np.empty(len(idx))
    for b, i in enumerate(idx):
        keep = real_n[i] > 0
        out[b] = 1.0 if not keep.any() else spearman(real_n[i][keep], pred_n[i][keep])
    return out


def _metric_columns(result):
    return [c for c in result.results.columns if c != "perturbation"]


def _point_means(values: np.ndarray) -> np.ndarray:
    """Column means over the defined (non-NaN) values; NaN for a column with none (a metric no
    perturbation defines), without numpy's 'Mean of empty slice' warning: the same sum / count
    as ``np.nanmean``."""
    if not values.size:
        return np.array([])
    ok = ~np.isnan(values)
    count = ok.sum(axis=0)
    sums = np.where(ok, values, 0.0).sum(axis=0)
    out = np.full(values.shape[1], np.nan)
    np.divide(sums, count, out=out, where=count > 0)
    return out


def bootstrap_ci(result, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Percentile intervals for every aggregate (and the score when a baseline was given).

    The perturbations are resampled with replacement ``n_boot`` times and every aggregate is
    recomputed. ``de_spearman_sig`` (one value shared by all perturbations) is recomputed on each
    resample from the resampled numbers of DE genes.

    Parameters
    ----------
    result
        An :class:`EvaluationResult` (:func:`evaluate`).
    n_boot, seed
        Resamples and their seed (same seed, same intervals).
    level
        Coverage of the percentile interval.

    Returns
    -------
    pandas.DataFrame
        Columns ``metric, mean_cell_eval, mean, ci_low, ci_high, n_used, n_perturbations``; the
        metrics on their own scale (log1p for MAE), the score rows prefixed ``score:``.

    Examples
    --------
    >>> from transpert.evaluate import evaluate, bootstrap_ci
    >>> bootstrap_ci(evaluate("real.h5ad", "pred.h5ad"), n_boot=1000)  # doctest: +SKIP
    """
    cols = _metric_columns(result)
    values = _matrix(result, cols)
    n = values.shape[0]
    idx = resample_indices(n, n_boot, seed)
    boot = _resampled_means(values, idx)
    point = _point_means(values)
    if "de_spearman_sig" in cols:
        j = cols.index("de_spearman_sig")
        alt = _de_spearman_sig_boot(result, idx)
        if alt is not None:
            boot[:, j] = alt
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    cell_eval_means = result.means()
    rows = []
    for j, c in enumerate(cols):
        b = boot[:, j][~np.isnan(boot[:, j])]
        rows.append({
            "metric": c,
            "mean_cell_eval": cell_eval_means[c],
            "mean": float(point[j]),
            "ci_low": float(np.quantile(b, lo_q)) if b.size else np.nan,
            "ci_high": float(np.quantile(b, hi_q)) if b.size else np.nan,
            "n_used": int((~np.isnan(values[:, j])).sum()),
            "n_perturbations": n,
        })
    if result.baseline is not None and result.score is not None:
        base_cols = _metric_columns(result.baseline)
        base_boot = _resampled_means(_matrix(result.baseline, base_cols), idx)
        scores = np.array([
            score(dict(zip(cols, boot[b])), dict(zip(base_cols, base_boot[b])))["from_baseline"].to_numpy()
            for b in range(len(idx))
        ])
        for k, m in enumerate(result.score["metric"]):
            rows.append({
                "metric": f"score:{m}",
                "mean_cell_eval": float(result.score["from_baseline"].iloc[k]),
                "mean": float(result.score["from_baseline"].iloc[k]),
                "ci_low": float(np.quantile(scores[:, k], lo_q)),
                "ci_high": float(np.quantile(scores[:, k], hi_q)),
                "n_used": n, "n_perturbations": n,
            })
    return pd.DataFrame(rows)


def paired_comparison(a, b, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                      names: tuple[str, str] = ("a", "b")) -> pd.DataFrame:
    """Difference a - b of every shared aggregate, with a paired bootstrap interval.

    The same resample of perturbations is applied to both predictions, so perturbations hard for
    both cancel out.

    Parameters
    ----------
    a, b
        :class:`EvaluationResult` on the same real file (same perturbations).
    n_boot, seed, level
        Resamples, their seed and the interval's coverage.
    names
        Names of ``a`` and ``b`` in the table.

    Returns
    -------
    pandas.DataFrame
        One row per metric: both means, ``difference`` (a - b), ``ci_low``, ``ci_high``,
        ``n_used``, and ``better``, naming the prediction that is better on that metric when the
        interval excludes 0 (empty otherwise).

    Examples
    --------
    >>> from transpert.evaluate import evaluate, paired_comparison
    >>> a = evaluate("real.h5ad", "model_a.h5ad", profile="full")  # doctest: +SKIP
    >>> b = evaluate("real.h5ad", "model_b.h5ad", profile="full")  # doctest: +SKIP
    >>> paired_comparison(a, b, names=("model_a", "model_b"))  # doctest: +SKIP
    """
    if not np.array_equal(a.results["perturbation"].to_numpy(), b.results["perturbation"].to_numpy()):
        raise TranspertInputError("paired comparison needs two evaluations on the same perturbations")
    cols = [c for c in _metric_columns(a) if c in set(_metric_columns(b))]
    va, vb = _matrix(a, cols), _matrix(b, cols)
    both = ~np.isnan(va) & ~np.isnan(vb)
    va, vb = np.where(both, va, np.nan), np.where(both, vb, np.nan)
    idx = resample_indices(va.shape[0], n_boot, seed)
    diff = _resampled_means(va, idx) - _resampled_means(vb, idx)
    point = _point_means(va) - _point_means(vb)
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    rows = []
    for j, c in enumerate(cols):
        d = diff[:, j][~np.isnan(diff[:, j])]
        lo = float(np.quantile(d, lo_q)) if d.size else np.nan
        hi = float(np.quantile(d, hi_q)) if d.size else np.nan
        best = best_value(c)
        better = ""
        if best is not None and d.size and (lo > 0 or hi < 0):
            a_higher = lo > 0
            better = names[0] if a_higher == (best == 1.0) else names[1]
        rows.append({"metric": c, names[0]: float(_point_means(va)[j]), names[1]: float(_point_means(vb)[j]),
                     "difference": float(point[j]), "ci_low": lo, "ci_high": hi,
                     "n_used": int(both[:, j].sum()), "better": better})
    return pd.DataFrame(rows)


def generalist_ranking(results: dict, metrics=GENERALIST) -> pd.DataFrame:
    """Rank predictions on each metric (1 = best, ties averaged) and by mean rank.

    Each metric's aggregate is the mean over perturbations where it is defined (see the module
    docstring), so one undefined perturbation does not turn a metric into NaN for everybody.

    Parameters
    ----------
    results
        Name -> :class:`EvaluationResult` evaluated on the same real file with at least
        ``metrics``.
    metrics
        The metrics ranked (default: the seven generalist metrics).

    Returns
    -------
    pandas.DataFrame
        One row per prediction, best mean rank first: ``prediction``, each metric's mean, its
        ``rank_<metric>`` and ``mean_rank``.

    Examples
    --------
    >>> from transpert.evaluate import GENERALIST, evaluate, generalist_ranking
    >>> results = {name: evaluate("real.h5ad", f"{name}.h5ad", metrics=GENERALIST)
    ...            for name in ("model_a", "model_b")}  # doctest: +SKIP
    >>> generalist_ranking(results)  # doctest: +SKIP
    """
    if len(results) < 1:
        raise TranspertInputError("ranking needs at least one prediction")
    names = list(results)
    table = {}
    for m in metrics:
        col = []
        for name in names:
            r = results[name]
            if m not in r.results.columns:
                raise TranspertInputError(f"{name}: metric {m!r} was not computed (use profile 'full')")
            col.append(float(_point_means(_matrix(r, [m]))[0]))
        table[m] = col
    frame = pd.DataFrame(table, index=pd.Index(names, name="prediction"))
    ranks = pd.DataFrame(index=frame.index)
    for m in metrics:
        v = frame[m].to_numpy()
        key = v if best_value(m) == 0.0 else -v
        key = np.where(np.isnan(key), np.inf, key)  # an undefined aggregate ranks last
        ranks[f"rank_{m}"] = rankdata(key, method="average")
    out = pd.concat([frame, ranks], axis=1)
    out["mean_rank"] = ranks.mean(axis=1)
    return out.sort_values("mean_rank", kind="stable").reset_index()
