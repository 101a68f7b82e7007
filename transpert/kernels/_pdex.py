"""pdex 0.3.0's float32 back-transform and fold change, compiled the way pdex compiles them.

pdex applies ``np.expm1`` to a float32 array inside a numba function (float32 libm ``expm1f``,
which differs from numpy's float32 expm1 in the last bit), then takes ``np.log2((x + 0.0) /
(y + 0.0))`` in numba, where adding the float64 epsilon promotes the float32 means to float64.
Reproducing cell-eval's DE table bit for bit needs exactly these operations.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def expm1_f32(x):
    """Element-wise expm1 of a float32 array, in float32 (as pdex's ``_expm1_vec``)."""
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = np.expm1(x[i])
    return out


@njit(cache=True)
def log2_ratio_pdex(x, y, epsilon):
    """``log2((x + epsilon) / (y + epsilon))`` with 0/0 -> 0 (as pdex's ``log2_fold_change``)."""
    lfc = np.log2((x + epsilon) / (y + epsilon))
    lfc[np.isnan(lfc)] = 0.0
    return lfc
