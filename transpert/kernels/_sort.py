"""Sorting one gene's (key, code) entries by key: LSD radix sort on the unsigned keys.

11-bit digits (3 passes for 32-bit keys, 6 for 64-bit). One read of the input fills every
digit's histogram at once; a pass whose digit is the same for every entry is skipped; the first
pass that moves data reads straight from the input (no initial copy). Small inputs use an
insertion sort. Order among equal keys does not matter to the callers.
All buffers are the caller's scratch (one set per thread, allocated once): no allocation here.

:func:`sort_words_into` sorts packed uint64 words ``key << 32 | code`` (32-bit keys, i.e.
float32 values, as the gather writes them): one 8-byte move per entry and pass instead of a key
and a code in two arrays (the scattered writes are what a pass costs).
:func:`sort_gene_into` sorts keys with codes beside them (64-bit keys: float64 values).
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
        if not _digit_offsets(h, (first >> sh) & mask, n):
            continue  # every entry has this digit: nothing would move
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


#: a packed word is ``key << CODE_SHIFT | code``
CODE_SHIFT = 32


@njit(cache=True)
def sort_words_into(words, a, b, hist, nnz):
    """Sort packed uint64 ``words`` (``key << 32 | code``, 32-bit keys) by key, ascending, using
    scratch ``a``/``b`` (uint64, length >= n) and ``hist`` (int64[>= 3, RADIX]). Adds each
    entry's code to ``nnz`` (per-code counts, zeroed by the caller) in the same read. Returns 0
    if the result is in ``a[:n]``, 1 if in ``b[:n]``. The input is not modified; order among
    equal keys is not specified."""
    n = words.shape[0]
    cs = np.uint64(CODE_SHIFT)
    cmask = np.uint64((1 << CODE_SHIFT) - 1)
    if n <= _SMALL:
        for i in range(n):
            nnz[words[i] & cmask] += 1
            a[i] = words[i]
        for i in range(1, n):
            w = a[i]
            j = i - 1
            while j >= 0 and a[j] > w:
                a[j + 1] = a[j]
                j -= 1
            a[j + 1] = w
        return 0
    mask = np.uint64(RADIX - 1)
    b1 = np.uint64(_BITS)
    b2 = np.uint64(2 * _BITS)
    for d in range(3):
        hist[d, :] = 0
    for i in range(n):
        w = words[i]
        nnz[w & cmask] += 1
        k = w >> cs
        hist[0, k & mask] += 1
        hist[1, (k >> b1) & mask] += 1
        hist[2, (k >> b2) & mask] += 1
    where = -1  # -1: data still in the input; 0: in a; 1: in b
    first = words[0] >> cs
    for d in range(3):
        sh = np.uint64(d * _BITS)
        h = hist[d]
        if not _digit_offsets(h, (first >> sh) & mask, n):
            continue  # every entry has this digit: nothing would move
        if where == -1:
            _scatter_words(words, a, n, sh + cs, mask, h)
            where = 0
        elif where == 0:
            _scatter_words(a, b, n, sh + cs, mask, h)
            where = 1
        else:
            _scatter_words(b, a, n, sh + cs, mask, h)
            where = 0
    if where == -1:  # every key equal
        for i in range(n):
            a[i] = words[i]
        where = 0
    return where


@njit(cache=True)
def _scatter_words(src, dst, n, sh, mask, start):
    """One stable counting-sort pass of packed words on digit ``(word >> sh) & mask``."""
    for i in range(n):
        w = src[i]
        d = (w >> sh) & mask
        j = np.uint64(start[d])
        dst[j] = w
        start[d] = j + np.uint64(1)


@njit(cache=True)
def _digit_offsets(h, first_digit, n):
    """Turn one digit's histogram into start offsets; False (and ``h`` untouched) when every
    one of the ``n`` entries has the digit ``first_digit``, i.e. the pass would move nothing."""
    if h[first_digit] == n:
        return False
    total = 0
    for v in range(RADIX):
        c = h[v]
        h[v] = total
        total += c
    return True
