"""Sorting one gene's (key, code) entries by key: LSD radix sort on the unsigned keys.

11-bit digits (3 passes for 32-bit keys, 6 for 64-bit); a pass whose digit is the same for every
entry is skipped (log1p values share their top exponent bits, so usually only 2 passes run).
Small inputs use an insertion sort. Order among equal keys does not matter to the callers.
All buffers are the caller's scratch (one set per thread, allocated once): no allocation here.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_BITS = 11
RADIX = 1 << _BITS
_SMALL = 48


@njit(cache=True)
def sort_gene_into(keys, codes, a_k, a_c, b_k, b_c, hist):
    """Sort ``keys``/``codes`` (length n) by key using scratch ``a_*``/``b_*`` (length >= n)
    and ``hist`` (int64[RADIX]). Returns 0 if the result is in ``a_k[:n]``/``a_c[:n]``, 1 if
    in ``b_k[:n]``/``b_c[:n]``. The inputs are not modified."""
    n = keys.shape[0]
    for i in range(n):
        a_k[i] = keys[i]
        a_c[i] = codes[i]
    if n <= _SMALL:
        for i in range(1, n):
            k = a_k[i]
            c = a_c[i]
            j = i - 1
            while j >= 0 and a_k[j] > k:
                a_k[j + 1] = a_k[j]
                a_c[j + 1] = a_c[j]
                j -= 1
            a_k[j + 1] = k
            a_c[j + 1] = c
        return 0
    mask = np.uint64(RADIX - 1)
    n_bits = keys.itemsize * 8
    shift = 0
    where = 0  # 0: current data in a, 1: in b
    while shift < n_bits:
        sh = np.uint64(shift)
        hist[:] = 0
        if where == 0:
            _radix_pass(a_k, a_c, b_k, b_c, n, sh, mask, hist)
            if hist[0] >= 0:
                where = 1
        else:
            _radix_pass(b_k, b_c, a_k, a_c, n, sh, mask, hist)
            if hist[0] >= 0:
                where = 0
        shift += _BITS
    return where


@njit(cache=True)
def _radix_pass(src_k, src_c, dst_k, dst_c, n, sh, mask, hist):
    """One stable counting-sort pass on digit ``(key >> sh) & mask``; when every entry has
    the same digit nothing moves and ``hist[0]`` is set to -1 to say so."""
    for i in range(n):
        hist[(np.uint64(src_k[i]) >> sh) & mask] += 1
    if hist[(np.uint64(src_k[0]) >> sh) & mask] == n:
        hist[0] = -1
        return
    total = 0
    for d in range(RADIX):
        c = hist[d]
        hist[d] = total
        total += c
    for i in range(n):
        d = (np.uint64(src_k[i]) >> sh) & mask
        j = hist[d]
        dst_k[j] = src_k[i]
        dst_c[j] = src_c[i]
        hist[d] = j + 1
