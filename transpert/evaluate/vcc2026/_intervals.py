"""Bootstrap intervals over perturbations for the vcc2026 suite, and paired comparisons.

cell-eval2's context score is the unclipped mean of six member scores s = (u - b) / (r - b)
(policies in :mod:`._score`), each u, b and r a mean over perturbations: u of the submission's
per-perturbation values, b of the mean-response baseline's, r of the replicate anchor's (per
half split, then the mean of the splits). A bootstrap resample draws the perturbations with
replacement (``numpy.random.default_rng(seed).integers(0, n, (n_boot, n))``, as the other
suites) and recomputes on that same resample:

- u: each member's mean over the resampled perturbations (NaN values left out, as cell-eval2's
  aggregate leaves them out; ``expr_mse_unbiased_capped_norm`` the ratio of the resampled sums
  of ``expr_mse_unbiased_capped`` and ``expr_distance_unbiased``);
- b and r the same way from the baseline's and every anchor split's per-perturbation values
  (``reference_points = "resampled"``): available when the two reference points were built from
  the real cells (``--anchor``). Against a real bundle only their aggregates exist, so b and r
  stay fixed at the bundle's values (``reference_points = "fixed"``) and the interval reflects
  the submission's variability alone.

The per-perturbation values themselves are not recomputed (pds_cosine's ranks and the capped
expression error depend on the whole panel): the resample moves which perturbations are
averaged, as in the other suites' intervals. A resample on which a member's scale is undefined
(no headroom r - b > 0) counts as NaN and is left out of the percentiles (``n_undefined``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError
from transpert.evaluate._resample import resample_indices
from transpert.evaluate.vcc2026._config import DERIVED, LOWER_IS_BETTER, SCORED, SUITE
from transpert.evaluate.vcc2026._score import ORDER, score_member

NORM = "expr_mse_unbiased_capped_norm"


def _pivot(table: pd.DataFrame, labels: list, metrics) -> np.ndarray:
    """(n_labels, n_metrics) per-perturbation values, NaN where absent."""
    wide = table.pivot_table(index="perturbation", columns="metric", values="value",
                             aggfunc="first", dropna=False)
    wide = wide.reindex(index=labels, columns=list(metrics))
    return wide.to_numpy(dtype=np.float64)


_NEEDED = tuple(m for m in SCORED if m not in DERIVED) + DERIVED[NORM]


def _aggregates(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(B, 6) the six scored members' aggregates (SCORED order) on each resample ``idx``."""
    out = np.empty((idx.shape[0], len(SCORED)))
    num_j, den_j = _NEEDED.index(DERIVED[NORM][0]), _NEEDED.index(DERIVED[NORM][1])
    for b, rows in enumerate(idx):
        v = values[rows]
        for k, m in enumerate(SCORED):
            if m == NORM:
                num, den = v[:, num_j], v[:, den_j]
                both = np.isfinite(num) & np.isfinite(den)
                out[b, k] = num[both].sum() / den[both].sum() if both.any() else np.nan
            else:
                col = v[:, _NEEDED.index(m)]
                col = col[~np.isnan(col)]
                out[b, k] = col.mean() if col.size else np.nan
    return out


class _Sides:
    """The per-perturbation values of u, b and the anchor splits, aligned on ``labels``."""

    def __init__(self, baseline, anchor_values, fixed, labels):
        if (baseline is None) != (anchor_values is None):
            raise TranspertInputError("the baseline's and the anchor's per-perturbation values "
                                      "come together (or neither, with fixed reference points)")
        self.labels = labels
        self.resampled = baseline is not None
        if self.resampled:
            self.base = _pivot(baseline, labels, _NEEDED)
            self.splits = [_pivot(t, labels, _NEEDED)
                           for _, t in anchor_values.groupby("split_index", sort=True)]
        elif fixed is not None:
            b, r = fixed
            self.fixed = (np.array([float(b[m]) for m in SCORED]),
                          np.array([float(r[m]) for m in SCORED]))
        else:
            self.fixed = None

    def reference(self, idx):
        """(b, r), each (B, 6), or None without reference points."""
        if self.resampled:
            b = _aggregates(self.base, idx)
            r = np.mean([_aggregates(s, idx) for s in self.splits], axis=0)
            return b, r
        if self.fixed is None:
            return None
        return (np.broadcast_to(self.fixed[0], (idx.shape[0], len(SCORED))),
                np.broadcast_to(self.fixed[1], (idx.shape[0], len(SCORED))))


def _scores(u: np.ndarray, ref) -> np.ndarray:
    """(B, 7): the six members' from_replicate scores (SCORED order) and their mean; NaN on a
    resample where a member's scale is undefined."""
    b, r = ref
    out = np.full((u.shape[0], len(SCORED) + 1), np.nan)
    for i in range(u.shape[0]):
        for k, m in enumerate(SCORED):
            try:
                out[i, k] = score_member(m, float(u[i, k]), float(b[i, k]), float(r[i, k]))
            except TranspertInputError:
                out[i, k] = np.nan
        row = [out[i, SCORED.index(m)] for m in ORDER]  # cell-eval2's order of the average
        out[i, -1] = float(np.mean(row)) if all(math.isfinite(x) for x in row) else np.nan
    return out


def _labels(*tables) -> list:
    labels = set()
    for t in tables:
        if t is not None:
            labels |= set(t["perturbation"].astype(str))
    return sorted(labels)


def _interval(values: np.ndarray, level: float) -> tuple[float, float, int]:
    ok = values[~np.isnan(values)]
    if not ok.size:
        return np.nan, np.nan, int(values.size)
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    return float(np.quantile(ok, lo)), float(np.quantile(ok, hi)), int(values.size - ok.size)


def bootstrap_vcc2026(results: pd.DataFrame, *, baseline_results: pd.DataFrame | None = None,
                      anchor_values: pd.DataFrame | None = None, fixed: tuple | None = None,
                      n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Percentile intervals of the six scored members and of the anchored score.

    Parameters
    ----------
    results : the submission's long table ``perturbation, metric, value`` (``results.csv``).
    baseline_results, anchor_values : the baseline's long table and the anchor's per-split long
        table (``split_index, perturbation, metric, value``): b and r are recomputed on every
        resample. Or ``fixed = ({metric: b}, {metric: r})`` (a real bundle): held fixed. With
        neither, only the members' intervals.
    n_boot, seed, level : resamples, their seed, the interval's coverage.

    Returns
    -------
    DataFrame
        ``suite, metric, mean, ci_low, ci_high, n_used, n_perturbations, n_undefined,
        reference_points``: one row per member (its aggregate u on its own scale: pds_cosine,
        shares and Jaccard in [0, 1], ``expr_mse_unbiased_capped_norm`` a ratio of log1p-profile
        errors, ``lfc_nmae`` a ratio of log2FC errors), then ``score:<member>`` (its
        ``from_replicate`` score) and ``score:avg_score`` when reference points are given.
        ``mean`` is the full-sample value (equal to ``agg_results.csv`` and ``score.csv``).
    """
    labels = _labels(results)
    sides = _Sides(baseline_results, anchor_values, fixed, labels)
    values = _pivot(results, labels, _NEEDED)
    n = len(labels)
    idx = resample_indices(n, n_boot, seed)
    full = np.arange(n)[None, :]
    u_boot, u_point = _aggregates(values, idx), _aggregates(values, full)[0]
    kind = "resampled" if sides.resampled else ("fixed" if sides.fixed is not None else "")
    rows = []
    for k, m in enumerate(SCORED):
        lo, hi, undefined = _interval(u_boot[:, k], level)
        col = values[:, _NEEDED.index(m)] if m not in DERIVED else \
            values[:, _NEEDED.index(DERIVED[m][0])]
        rows.append((SUITE, m, float(u_point[k]), lo, hi, int((~np.isnan(col)).sum()), n,
                     undefined, kind))
    ref = sides.reference(idx)
    if ref is not None:
        s_boot, s_point = _scores(u_boot, ref), _scores(u_point[None, :], sides.reference(full))[0]
        for k, m in enumerate([*SCORED, "avg_score"]):
            lo, hi, undefined = _interval(s_boot[:, k], level)
            rows.append((SUITE, f"score:{m}", float(s_point[k]), lo, hi, n, n, undefined, kind))
    return pd.DataFrame(rows, columns=["suite", "metric", "mean", "ci_low", "ci_high", "n_used",
                                       "n_perturbations", "n_undefined", "reference_points"])


def paired_vcc2026(a: pd.DataFrame, b: pd.DataFrame, *, baseline_results=None,
                   anchor_values=None, fixed=None, n_boot: int = 1000, seed: int = 0,
                   level: float = 0.95, names: tuple[str, str] = ("a", "b")) -> pd.DataFrame:
    """Difference a - b of the six members and of the anchored scores, on the same resamples
    (and, with resampled reference points, the same b and r per resample).

    Returns one row per member and per ``score:<member>`` / ``score:avg_score``: both values,
    ``difference``, ``ci_low``, ``ci_high`` and ``better`` (the prediction better on it when the
    interval excludes 0; lower is better for ``expr_mse_unbiased_capped_norm`` and
    ``de_wilcoxon_lfc_nmae``, higher for the rest and for every score).
    """
    labels = _labels(a, b)
    if _labels(a) != _labels(b):
        raise TranspertInputError("a paired comparison needs two predictions scored on the same "
                                  "perturbations")
    sides = _Sides(baseline_results, anchor_values, fixed, labels)
    va, vb = _pivot(a, labels, _NEEDED), _pivot(b, labels, _NEEDED)
    idx = resample_indices(len(labels), n_boot, seed)
    full = np.arange(len(labels))[None, :]
    ua, ub = _aggregates(va, idx), _aggregates(vb, idx)
    pa, pb = _aggregates(va, full)[0], _aggregates(vb, full)[0]
    names_cols = list(SCORED)
    boot_a, boot_b, point_a, point_b = [ua], [ub], [pa], [pb]
    ref = sides.reference(idx)
    if ref is not None:
        ref_full = sides.reference(full)
        boot_a.append(_scores(ua, ref))
        boot_b.append(_scores(ub, ref))
        point_a.append(_scores(pa[None, :], ref_full)[0])
        point_b.append(_scores(pb[None, :], ref_full)[0])
        names_cols += [f"score:{m}" for m in [*SCORED, "avg_score"]]
    da, db = np.hstack(boot_a), np.hstack(boot_b)
    xa, xb = np.concatenate(point_a), np.concatenate(point_b)
    rows = []
    for k, m in enumerate(names_cols):
        lo, hi, _ = _interval(da[:, k] - db[:, k], level)
        lower_better = m in LOWER_IS_BETTER
        better = ""
        if not np.isnan(lo) and (lo > 0 or hi < 0):
            a_higher = lo > 0
            better = names[0] if a_higher != lower_better else names[1]
        rows.append({"suite": SUITE, "metric": m, names[0]: float(xa[k]), names[1]: float(xb[k]),
                     "difference": float(xa[k] - xb[k]), "ci_low": lo, "ci_high": hi,
                     "better": better})
    return pd.DataFrame(rows)
