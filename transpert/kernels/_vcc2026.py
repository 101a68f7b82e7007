"""Numba kernels of the vcc2026 suite (cell-eval2 0.20.0's ``vcc2026`` preset).

All inputs are raw counts (CSR parts of a row block, float values) unless said otherwise.

- :func:`count_row_checks`: per row, the total and whether any value is negative, non-finite or
  non-integral (the preset's input validation).
- :func:`group_sums_csr`: per (group, gene) sums of counts, float64.
- :func:`scan_rows`: both, and the per-group means, in one read of a row block.
- The jackknife sums, mean CPM and sorted log1p(CPM) values of one group:
  :mod:`transpert.kernels._vcc2026_group`.
- :func:`ranksum_vs_control`: per gene, the rank sum of a group in the pooled sample
  group ∪ control and the tie correction ``1 - sum(t^3 - t) / (N^3 - N)``, from the sorted
  non-zero values of both (zeros enter as one tie block by formula). Exact: ranks are half
  integers and the sums stay far below 2^53.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

PLACE_WINDOW = 8  # a bucket of up to this many control values is compared without a branch


@njit(cache=True, nogil=True, inline="always")
def _count_flag(v):  # pragma: no cover - compiled
    """A finite value's flag bits as counts: 1 negative, 4 non-integral (0 when a count)."""
    flag = 0
    if v < 0.0:
        flag |= 1
    if v != math.floor(v):
        flag |= 4
    return flag


@njit(cache=True, nogil=True, inline="always")
def _tally(v, flag, s):  # pragma: no cover - compiled
    """A row's running (flag, total) after value v: a non-finite value sets bit 2 and is not
    added; a finite one adds its count flags (:func:`_count_flag`) and itself."""
    if not math.isfinite(v):
        return flag | 2, s
    return flag | _count_flag(v), s + v


@njit(cache=True, nogil=True)
def count_row_checks(indptr, data, totals, bad):  # pragma: no cover - compiled
    """totals[i] = sum of row i; bad[i] bit 1: negative, 2: non-finite, 4: non-integral."""
    for i in range(indptr.size - 1):
        s = 0.0
        flag = 0
        for k in range(indptr[i], indptr[i + 1]):
            flag, s = _tally(float(data[k]), flag, s)
        totals[i] = s
        bad[i] = flag


@njit(cache=True, nogil=True)
def group_sums_csr(indptr, indices, data, codes, out):  # pragma: no cover - compiled
    """out[codes[i], indices[k]] += data[k] (float64) for every stored value of row i."""
    for i in range(indptr.size - 1):
        c = codes[i]
        if c < 0:
            continue
        for k in range(indptr[i], indptr[i + 1]):
            out[c, indices[k]] += float(data[k])


@njit(cache=True, nogil=True)
def scan_rows(indptr, indices, data, codes, inv_n, totals, bad, sums, means):  # pragma: no cover
    """One read of a row block for :func:`count_row_checks`, :func:`group_sums_csr` and
    :func:`group_scaled_sums` at once (the same additions in the same order): ``totals``,
    ``bad`` per row; ``sums[c, j]`` += value and ``means[c, j]`` += value * ``inv_n[c]`` for
    the row's group c (every row has a group). ``bad`` bit 8: a column index outside the
    genes (a corrupt matrix; the value is left out, and later passes may trust the indices)."""
    G = sums.shape[1]
    for i in range(indptr.size - 1):
        c = codes[i]
        sc = inv_n[c]
        s = 0.0
        flag = 0
        for k in range(indptr[i], indptr[i + 1]):
            v = float(data[k])
            j = indices[k]
            if j < 0 or j >= G:
                flag |= 8
                continue
            uj = np.uint64(j)  # in range: no numba wraparound code for the two stores
            sums[c, uj] += v
            means[c, uj] += v * sc
            flag, s = _tally(v, flag, s)
        totals[i] = s
        bad[i] = flag


@njit(cache=True)
def _cube_minus(t):  # pragma: no cover - compiled
    t = float(t)
    return t * t * t - t


@njit(cache=True)
def _lower(vals, lo, hi, x):  # pragma: no cover - compiled
    """First index in vals[lo:hi] (sorted) with vals[k] >= x."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if vals[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _upper(vals, lo, hi, x):  # pragma: no cover - compiled
    """First index in vals[lo:hi] (sorted) with vals[k] > x."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if vals[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _gallop_lower(vals, lo, hi, x):  # pragma: no cover - compiled
    """_lower(vals, lo, hi, x): a few linear steps from lo (x usually lies close ahead), then
    exponential probing."""
    stop = min(lo + 8, hi)
    while lo < stop and vals[lo] < x:
        lo += 1
    if lo < stop or lo == hi or vals[lo] >= x:
        return lo
    step = 1
    cur = lo
    while cur < hi and vals[cur] < x:
        lo = cur + 1
        cur = lo + step
        step *= 2
    return _lower(vals, lo, min(cur, hi), x)


@njit(cache=True, nogil=True)
def control_tie_terms(col_ptr, values, m, out):  # pragma: no cover - compiled
    """out[g] = sum over the control's tie blocks of gene g (zeros included) of t^3 - t."""
    for g in range(col_ptr.size - 1):
        lo = col_ptr[g]
        hi = col_ptr[g + 1]
        acc = _cube_minus(m - (hi - lo))
        k = lo
        while k < hi:
            j = k + 1
            while j < hi and values[j] == values[k]:
                j += 1
            acc += _cube_minus(j - k)
            k = j
        out[g] = acc


@njit(cache=True, nogil=True)
def ranksum_vs_control(g_ptr, g_vals, n1, c_ptr, c_vals, m, c_ties, ranksum, tiecorr):
    """Rank sum of the group (n1 cells) in group ∪ control (m cells) per gene, and the tie
    correction coefficient of the pooled sample (scanpy's ``_tiecorrect``).
    g_ptr/g_vals and c_ptr/c_vals: sorted non-zero values per gene (see cpm_log1p_csc)."""
    G = g_ptr.size - 1
    N = n1 + m
    NN = _cube_minus(N)
    for g in range(G):
        glo = g_ptr[g]
        ghi = g_ptr[g + 1]
        clo = c_ptr[g]
        chi = c_ptr[g + 1]
        gz = n1 - (ghi - glo)
        cz = m - (chi - clo)
        # U of the group against the control, doubled (exact integers)
        u2 = gz * cz  # zeros of the group against the zeros of the control: half each
        ties = c_ties[g]
        if gz > 0:
            ties += _cube_minus(gz + cz) - _cube_minus(cz)
        k = glo
        start = clo
        while k < ghi:
            x = g_vals[k]
            j = k + 1
            while j < ghi and g_vals[j] == x:
                j += 1
            b = j - k
            a0 = _gallop_lower(c_vals, start, chi, x)
            a1 = _upper(c_vals, a0, chi, x) if a0 < chi and c_vals[a0] == x else a0
            start = a0
            below = cz + (a0 - clo)
            eq = a1 - a0
            u2 += b * (2 * below + eq)
            ties += _cube_minus(b + eq) - _cube_minus(eq)
            k = j
        ranksum[g] = u2 / 2.0 + n1 * (n1 + 1) / 2.0
        tiecorr[g] = 1.0 - ties / NN if N >= 2 else 1.0


@njit(cache=True, nogil=True)
def group_scaled_sums(indptr, indices, data, codes, inv_n, out):  # pragma: no cover - compiled
    """out[codes[i], indices[k]] += data[k] * inv_n[codes[i]]: per-group means of a matrix the
    way scipy's sparse ``mean(axis=0)`` forms them (each value times 1/n, summed row by row)."""
    for i in range(indptr.size - 1):
        c = codes[i]
        s = inv_n[c]
        for k in range(indptr[i], indptr[i + 1]):
            out[c, indices[k]] += float(data[k]) * s


@njit(cache=True)
def _bucket(x, vmin, scale, k):  # pragma: no cover - compiled
    """Bucket of a value in [vmin, vmax] out of k (nondecreasing in x)."""
    b = int((x - vmin) * scale)
    return b if b < k else k - 1


@njit(cache=True, nogil=True)
def control_index(col_ptr, values, per_bucket, idx_ptr, idx, scale):  # pragma: no cover
    """Per gene g of a control's sorted values (``values[col_ptr[g]:col_ptr[g + 1]]``, n of
    them): k = n // per_bucket + 1 buckets of equal width between its smallest and largest
    value; ``idx[idx_ptr[g] + b]`` (int32, b = 0..k) is the offset in the gene of the first
    value whose bucket is >= b, ``scale[g]`` = k / (max - min) (0 when all are equal).
    ``idx_ptr`` (G + 1) is filled here; ``idx`` must hold ``sum_g (n_g // per_bucket + 2)``."""
    G = col_ptr.size - 1
    idx_ptr[0] = 0
    for g in range(G):
        n = col_ptr[g + 1] - col_ptr[g]
        idx_ptr[g + 1] = idx_ptr[g] + n // per_bucket + 2
    for g in range(G):
        lo = col_ptr[g]
        hi = col_ptr[g + 1]
        k = (hi - lo) // per_bucket + 1
        base = idx_ptr[g]
        if hi == lo:
            scale[g] = 0.0
            for b in range(k + 1):
                idx[base + b] = 0
            continue
        vmin = values[lo]
        span = values[hi - 1] - vmin
        sc = k / span if span > 0.0 else 0.0
        scale[g] = sc
        p = lo
        for b in range(k + 1):
            while p < hi and _bucket(values[p], vmin, sc, k) < b:
                p += 1
            idx[base + b] = p - lo


@njit(cache=True)
def indexed_place(c_vals, clo, chi, x, idx, i0, i1, sc):  # pragma: no cover - compiled
    """(first position with value >= x, first with value > x) in the sorted
    ``c_vals[clo:chi]``, from its bucket index ``idx[i0:i1]`` and scale ``sc``
    (:func:`control_index`). Values of lower buckets than x's are < x and of higher buckets
    > x, so only x's bucket is compared: when it holds at most ``PLACE_WINDOW`` values, the
    window of that many values from its start is compared without a branch (values past the
    bucket are > x and count for nothing; x outside [min, max] takes the first or last
    bucket), else the bucket is searched."""
    if chi == clo:
        return clo, clo
    # positions are never negative: unsigned indices spare each load numba's wraparound code
    # (about a tenth of this function's time)
    k = i1 - i0 - 1
    t = (x - c_vals[np.uint64(clo)]) * sc
    b = np.uint64(int(min(max(t, 0.0), k - 1.0)))
    s = idx[np.uint64(i0) + b]
    base = clo + s
    cnt = idx[np.uint64(i0) + b + np.uint64(1)] - s
    if cnt <= PLACE_WINDOW:
        lt = 0
        le = 0
        last = chi - 1
        for w in range(PLACE_WINDOW):
            p = base + w
            v = c_vals[np.uint64(min(p, last))]
            inside = p <= last
            lt += (v < x) & inside
            le += (v <= x) & inside
        return base + lt, base + le
    a0 = _lower(c_vals, base, base + cnt, x)
    return a0, _upper(c_vals, a0, base + cnt, x)


@njit(cache=True, nogil=True)
def ranksum_vs_indexed(g_ptr, g_vals, n1, c_ptr, c_vals, m, c_ties, idx_ptr, idx, scale,
                       ranksum, tiecorr):  # pragma: no cover - compiled
    """:func:`ranksum_vs_control` with the control's bucket index (:func:`control_index`):
    each distinct group value x finds the control's first value >= x from the first value of
    its bucket (values of lower buckets are < x, of higher buckets > x), so the work per value
    does not grow with the control's size. The same integers, hence bit-identical results.
    (:func:`ranksum_batch_indexed` of one group.)"""
    G = g_ptr.size - 1
    n = np.empty(1, dtype=np.int64)
    n[0] = n1
    ranksum_batch_indexed((g_ptr,), (g_vals,), n, 1, np.arange(G), c_ptr, c_vals, m, c_ties,
                          idx_ptr, idx, scale, ranksum.reshape((1, G)), tiecorr.reshape((1, G)))


@njit(cache=True, nogil=True)
def ranksum_batch_indexed(g_ptrs, g_vals, n1, K, genes, c_ptr, c_vals, m, c_ties, idx_ptr, idx,
                          scale, ranksum, tiecorr):  # pragma: no cover - compiled
    """:func:`ranksum_vs_indexed` of the first ``K`` groups of a batch at once over the genes
    ``genes`` (the others' outputs are left as they are), gene by gene:
    each gene's control values and index are read from memory once for all the groups (they
    stay in cache), instead of once per group. Group q's sorted values of gene g are
    ``g_vals[q][g_ptrs[q][g]:g_ptrs[q][g + 1]]`` (tuples of each group's own arrays: nothing
    is copied; a batch of fewer groups repeats one to fill the tuple), its cells ``n1[q]``;
    outputs ``ranksum[q, g]``, ``tiecorr[q, g]``, the same numbers as one group at a time."""
    for g in genes:
        clo = c_ptr[g]
        chi = c_ptr[g + 1]
        cz = m - (chi - clo)
        i0 = idx_ptr[g]
        i1 = idx_ptr[g + 1]
        sc = scale[g]
        for q in range(K):
            n = n1[q]
            N = n + m
            vals = g_vals[q]
            ptr = g_ptrs[q]
            glo = ptr[g]
            ghi = ptr[g + 1]
            gz = n - (ghi - glo)
            u2 = gz * cz
            ties = c_ties[g]
            if gz > 0:
                ties += _cube_minus(gz + cz) - _cube_minus(cz)
            k = glo
            while k < ghi:
                x = vals[np.uint64(k)]
                j = k + 1
                while j < ghi and vals[np.uint64(j)] == x:
                    j += 1
                b = j - k
                a0, a1 = indexed_place(c_vals, clo, chi, x, idx, i0, i1, sc)
                eq = a1 - a0
                u2 += b * (2 * (cz + (a0 - clo)) + eq)
                ties += _cube_minus(b + eq) - _cube_minus(eq)
                k = j
            ranksum[q, g] = u2 / 2.0 + n * (n + 1) / 2.0
            tiecorr[q, g] = 1.0 - ties / _cube_minus(N) if N >= 2 else 1.0
