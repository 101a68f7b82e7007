"""Sorting one gene's (key, code) entries by key: LSD radix sort on the unsigned keys.

11-bit digits (3 passes for 32-bit keys, 6 for 64-bit). One read of the input fills every
digit's histogram at once; a pass whose digit is the same for every entry is skipped; the first
pass that moves data reads straight from the input (no initial copy). Small inputs use an
insertion sort. Order among equal keys does not matter to the callers.
All buffers are the caller's scratch (one set per thread, allocated once): no allocation here.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_BITS = 11
RADIX = 1 << _BITS
#: histogram rows a caller must provide (enough digits for 64-bit keys)
MAX_DIGITS = 6
_SMALL = 48


@njit(cache=True)
def sort_gene_into(keys, codes, a_k, a_c, b_k, b_c, hist):
    """Sort ``keys``/``codes`` (length n) by key using scratch ``a_*``/``b_*`` (length >= n)
    and ``hist`` (int64[MAX_DIGITS, RADIX]). Returns 0 if the result is in ``a_k[:n]``/
    ``a_c[:n]``, 1 if in ``b_k[:n]``/``b_c[:n]``. The inputs are not modified."""
    n = keys.shape[0]
    if n <= _SMALL:
        for i in range(n):
            a_k[i] = keys[i]
            a_c[i] = codes[i]
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
    n_digits = (keys.itemsize * 8 + _BITS - 1) // _BITS
    for d in range(n_digits):
        hist[d, :] = 0
    for i in range(n):
        k = np.uint64(keys[i])
        for d in range(n_digits):
            hist[d, (k >> np.uint64(d * _BITS)) & mask] += 1
    where = -1  # -1: data still in the input; 0: in a; 1: in b
    first = np.uint64(keys[0])
    for d in range(n_digits):
        sh = np.uint64(d * _BITS)
        h = hist[d]
        if h[(first >> sh) & mask] == n:
            continue  # every entry has this digit: nothing would move
        total = 0
        for v in range(RADIX):
            c = h[v]
            h[v] = total
            total += c
        if where == -1:
            _scatter(keys, codes, a_k, a_c, n, sh, mask, h)
            where = 0
        elif where == 0:
            _scatter(a_k, a_c, b_k, b_c, n, sh, mask, h)
            where = 1
        else:
            _scatter(b_k, b_c, a_k, a_c, n, sh, mask, h)
            where = 0
    if where == -1:  # every key equal
        for i in range(n):
            a_k[i] = keys[i]
            a_c[i] = codes[i]
        where = 0
    return where


@njit(cache=True)
def _scatter(src_k, src_c, dst_k, dst_c, n, sh, mask, start):
    """One stable counting-sort pass on digit ``(key >> sh) & mask`` (``start``: prefix sums)."""
    for i in range(n):
        d = (np.uint64(src_k[i]) >> sh) & mask
        j = start[d]
        dst_k[j] = src_k[i]
        dst_c[j] = src_c[i]
        start[d] = j + 1
