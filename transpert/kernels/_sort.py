"""Sorting one gene's (key, code) entries by key: LSD radix sort on the unsigned keys.

11-bit digits (3 passes for 32-bit keys, 6 for 64-bit); a pass whose digit is the same for every
entry is skipped (log1p values share their top exponent bits, so usually only 2 passes run).
Small inputs use a comparison sort. Order among equal keys does not matter to the callers.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_BITS = 11
_RADIX = 1 << _BITS
_SMALL = 64


@njit(cache=True)
def sort_gene(keys, codes):
    """Return copies of ``keys`` and ``codes`` ordered by key."""
    n = keys.shape[0]
    if n <= _SMALL:
        order = np.argsort(keys)
        sk = np.empty(n, dtype=keys.dtype)
        sc = np.empty(n, dtype=codes.dtype)
        for i in range(n):
            sk[i] = keys[order[i]]
            sc[i] = codes[order[i]]
        return sk, sc
    a_k = keys.copy()
    a_c = codes.copy()
    b_k = np.empty_like(a_k)
    b_c = np.empty_like(a_c)
    hist = np.zeros(_RADIX, dtype=np.int64)
    mask = np.uint64(_RADIX - 1)
    n_bits = keys.itemsize * 8
    shift = 0
    while shift < n_bits:
        sh = np.uint64(shift)
        hist[:] = 0
        for i in range(n):
            hist[(np.uint64(a_k[i]) >> sh) & mask] += 1
        if hist[(np.uint64(a_k[0]) >> sh) & mask] != n:
            total = 0
            for d in range(_RADIX):
                c = hist[d]
                hist[d] = total
                total += c
            for i in range(n):
                d = (np.uint64(a_k[i]) >> sh) & mask
                j = hist[d]
                b_k[j] = a_k[i]
                b_c[j] = a_c[i]
                hist[d] = j + 1
            a_k, b_k = b_k, a_k
            a_c, b_c = b_c, a_c
        shift += _BITS
    return a_k, a_c
