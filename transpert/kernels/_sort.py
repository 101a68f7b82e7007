"""Sorting one gene's (key, code) entries by key."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def sort_gene(keys, codes):
    """Return copies of ``keys`` and ``codes`` ordered by key (order among equal keys arbitrary)."""
    order = np.argsort(keys)
    n = keys.shape[0]
    sk = np.empty(n, dtype=keys.dtype)
    sc = np.empty(n, dtype=codes.dtype)
    for i in range(n):
        sk[i] = keys[order[i]]
        sc[i] = codes[order[i]]
    return sk, sc
