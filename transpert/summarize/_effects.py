"""Fold changes and multiple-testing correction on summary matrices (numpy; no numba needed).

Scales: ``log2fc`` takes log1p-scale means (natural log1p of median-library-size counts).
"""

from __future__ import annotations

import numpy as np

from transpert._errors import TranspertInputError
from transpert._fdr import bh_qvalues

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
        return bh_qvalues(p.ravel()).reshape(p.shape)
    p2 = np.atleast_2d(p)
    out = np.vstack([bh_qvalues(row) for row in p2]) if p2.shape[0] else np.empty_like(p2)
    return out.reshape(p.shape)
