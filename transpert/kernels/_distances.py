"""Distances between the rows of two dense matrices (the PDS core), compiled."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def l1_distances(pred, real, exclude):  # pragma: no cover - compiled
    """d[p, j] = sum_g |real[j, g] - pred[p, g]| over g != exclude[p], summed in float64.

    Sequential float64 summation over genes in order, as scipy's ``cdist(..., "cityblock")``
    (which sklearn's manhattan distance calls) does on the float64-upcast inputs.
    """
    n_pred, n_genes = pred.shape
    n_real = real.shape[0]
    out = np.empty((n_pred, n_real), dtype=np.float64)
    for p in prange(n_pred):
        skip = exclude[p]
        for j in range(n_real):
            s = 0.0
            for g in range(n_genes):
                if g != skip:
                    s += abs(np.float64(real[j, g]) - np.float64(pred[p, g]))
            out[p, j] = s
    return out
