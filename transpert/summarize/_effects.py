"""Fold changes and multiple-testing correction on summary matrices (numpy; no numba needed).

Scales: ``log2fc`` takes log1p-scale means (natural log1p of median-library-size counts).
"""

from __future__ import annotations

import numpy as np

from transpert._errors import TranspertInputError

LOG2FC_METHODS = ("exact", "clipped")
FDR_METHODS = ("per_perturbation", "table")


def log2fc(mean, control_mean, method: str = "exact") -> np.ndarray:
    """log2 fold change of pseudo-bulks given on the log1p scale, as METRICS.md defines it.

    ``exact`` (cell-eval 0.8.2 / pdex 0.3.0): log2(expm1(mean) / expm1(control_mean)) with
    0/0 = 0, x/0 = +inf, 0/y = -inf. ``clipped`` (the 2025 leaderboard's pdex 0.1.27,
    ``clip_value=20``): only the undefined ratios are replaced, control 0 -> 20, perturbation
    0 -> 1/20, both 0 -> 1; finite ratios are kept as they are (above 20 or below 1/20 too).
    ``mean`` is (perturbations x genes) or (genes,), ``control_mean`` (genes,). float64 out.
    """
    if method not in LOG2FC_METHODS:
        raise TranspertInputError(f"log2fc method must be one of {LOG2FC_METHODS}, got {method!r}")
    t = np.expm1(np.asarray(mean, dtype=np.float64))
    c = np.broadcast_to(np.expm1(np.asarray(control_mean, dtype=np.float64)), t.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = t / c
    if method == "exact":
        with np.errstate(divide="ignore"):
            out = np.log2(ratio)
        out[(t == 0) & (c == 0)] = 0.0
        return out
    ratio = np.where(c == 0, np.where(t == 0, 1.0, 20.0), ratio)
    ratio = np.where((t == 0) & (c != 0), 1.0 / 20.0, ratio)
    return np.log2(ratio)


def bh_fdr(pvalues, method: str = "per_perturbation") -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), float64.

    ``per_perturbation``: within each row (a perturbation's genes; cell-eval 0.8.2);
    ``table``: over all entries at once (challenge-era cell-eval). NaN entries are left out of
    the correction and stay NaN. Same arithmetic as ``scipy.stats.false_discovery_control``
    (what pdex calls): p_(i) * m / i, then a running minimum from the largest p, clipped to 1.
    """
    if method not in FDR_METHODS:
        raise TranspertInputError(f"fdr method must be one of {FDR_METHODS}, got {method!r}")
    p = np.asarray(pvalues, dtype=np.float64)
    if method == "table":
        return _bh_1d(p.ravel()).reshape(p.shape)
    p2 = np.atleast_2d(p)
    out = np.vstack([_bh_1d(row) for row in p2]) if p2.shape[0] else np.empty_like(p2)
    return out.reshape(p.shape)


def _bh_1d(p: np.ndarray) -> np.ndarray:
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    ps = p[ok]
    m = ps.size
    if m == 0:
        return out
    # any order among equal p-values gives the same q-values (the running minimum from the
    # top reaches every tied entry), so the faster unstable sort is enough
    order = np.argsort(ps)
    sorted_p = ps[order]
    sorted_p = sorted_p * (m / np.arange(1, m + 1))
    q = np.minimum.accumulate(sorted_p[::-1])[::-1]
    q = np.clip(q, 0.0, 1.0)
    res = np.empty(m)
    res[order] = q
    out[ok] = res
    return out
