"""Per-gene transfer slopes: how strongly each gene's reference effect carries over to the target.

Some genes respond in the target as in the references, some more weakly, some not at all (a
gene silent in the target, a pathway wired differently). For each gene g, regress the
target's training deltas beyond the common response, ``R[p, g] = delta_target[p, g] -
common[g]``, on the reference specific effect ``S[p, g]`` over the training perturbations p, through
the origin, with the slope shrunk toward the global slope ``beta0`` (an empirical-Bayes style
ridge; ``lam`` acts as ``lam`` pseudo-observations of weight at slope ``beta0``):

    beta_g = (sum_p S[p, g] R[p, g] + lam * beta0) / (sum_p S[p, g]^2 + lam)
    beta0  = sum_{p, g} S R / sum_{p, g} S^2
    lam    = penalty * median over genes of sum_p S[p, g]^2   (scale-free)

A gene without any reference signal gets ``beta0``. Log1p-scale deltas in, slopes out.
"""

from __future__ import annotations

import numpy as np


def fit_gene_slopes(specific: np.ndarray, residual: np.ndarray, penalty: float = 1.0
                    ) -> tuple[np.ndarray, float]:
    """``(beta per gene, beta0)`` from ``specific`` and ``residual`` (perturbations x genes)."""
    s = np.nan_to_num(np.asarray(specific, dtype=np.float64))
    r = np.nan_to_num(np.asarray(residual, dtype=np.float64))
    ss = (s * s).sum(axis=0)
    sr = (s * r).sum(axis=0)
    total = ss.sum()
    beta0 = float(sr.sum() / total) if total > 0 else 1.0
    positive = ss[ss > 0]
    lam = penalty * float(np.median(positive)) if len(positive) else 1.0
    if lam <= 0:  # penalty 0: plain per-gene least squares where there is signal
        with np.errstate(invalid="ignore", divide="ignore"):
            beta = np.where(ss > 0, sr / ss, beta0)
        return beta, beta0
    return (sr + lam * beta0) / (ss + lam), beta0
