"""Numba kernels of the vcc2026 suite (cell-eval2 0.20.0's ``vcc2026`` preset).

All inputs are raw counts (CSR parts of a row block, float values) unless said otherwise.

- :func:`count_row_checks`: per row, the total and whether any value is negative, non-finite or
  non-integral (the preset's input validation).
- :func:`group_sums_csr`: per (group, gene) sums of counts, float64.
- :func:`jackknife_sums`: the delete-one jackknife's sums s1, s2 of
  ``log1p(TS * (P_g - y_ig) / (S - l_i)) - log1p(TS * P_g / S)`` over one group's cells (zero
  entries by an exact series, see there).
- :func:`cpm_log1p_csc`: a block's values as ``log1p(x / (l / 1e6))`` (float64), column-major,
  sorted within each gene: the values the Wilcoxon test ranks.
- :func:`ranksum_vs_control`: per gene, the rank sum of a group in the pooled sample
  group ∪ control and the tie correction ``1 - sum(t^3 - t) / (N^3 - N)``, from the sorted
  non-zero values of both (zeros enter as one tie block by formula). Exact: ranks are half
  integers and the sums stay far below 2^53.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(cache=True)
def count_row_checks(indptr, data, totals, bad):  # pragma: no cover - compiled
    """totals[i] = sum of row i; bad[i] bit 1: negative, 2: non-finite, 4: non-integral."""
    for i in range(indptr.size - 1):
        s = 0.0
        flag = 0
        for k in range(indptr[i], indptr[i + 1]):
            v = float(data[k])
            if not math.isfinite(v):
                flag |= 2
                continue
            if v < 0.0:
                flag |= 1
            if v != math.floor(v):
                flag |= 4
            s += v
        totals[i] = s
        bad[i] = flag


@njit(cache=True)
def group_sums_csr(indptr, indices, data, codes, out):  # pragma: no cover - compiled
    """out[codes[i], indices[k]] += data[k] (float64) for every stored value of row i."""
    for i in range(indptr.size - 1):
        c = codes[i]
        if c < 0:
            continue
        for k in range(indptr[i], indptr[i + 1]):
            out[c, indices[k]] += float(data[k])


@njit(cache=True, parallel=True)
def cpm_log1p_csc(indptr, indices, data, lib, n_genes, col_ptr, values):  # pragma: no cover
    """Column-major log1p-CPM values of a CSR block, each gene's values sorted ascending.
    col_ptr (n_genes + 1) and values (nnz) are outputs. Zero-count cells store nothing."""
    col_ptr[:] = 0
    for k in range(indptr[-1]):
        if data[k] != 0:
            col_ptr[indices[k] + 1] += 1
    for g in range(n_genes):
        col_ptr[g + 1] += col_ptr[g]
    fill = col_ptr[:-1].copy()
    for i in range(indptr.size - 1):
        f = lib[i] / 1e6
        for k in range(indptr[i], indptr[i + 1]):
            x = float(data[k])
            if x != 0.0:
                g = indices[k]
                values[fill[g]] = math.log1p(x / f)
                fill[g] += 1
    for g in prange(n_genes):
        values[col_ptr[g]:col_ptr[g + 1]].sort()


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
    """_lower(vals, lo, hi, x) by exponential probing from lo (x rarely lies far ahead)."""
    step = 1
    cur = lo
    while cur < hi and vals[cur] < x:
        lo = cur + 1
        cur = lo + step
        step *= 2
    return _lower(vals, lo, min(cur, hi), x)


@njit(cache=True)
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


@njit(cache=True, parallel=True)
def ranksum_vs_control(g_ptr, g_vals, n1, c_ptr, c_vals, m, c_ties, ranksum, tiecorr):
    """Rank sum of the group (n1 cells) in group ∪ control (m cells) per gene, and the tie
    correction coefficient of the pooled sample (scanpy's ``_tiecorrect``).
    g_ptr/g_vals and c_ptr/c_vals: sorted non-zero values per gene (see cpm_log1p_csc)."""
    G = g_ptr.size - 1
    N = n1 + m
    NN = _cube_minus(N)
    for g in prange(G):
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


@njit(cache=True)
def mean_cpm_rows(indptr, indices, data, lib, inv_n, out):  # pragma: no cover - compiled
    """out[g] += (x_ig / (lib_i / 1e6)) * inv_n over the rows in order: scipy's sparse
    ``mean(axis=0)`` of the CPM matrix (each value times 1/n, summed row by row)."""
    for i in range(indptr.size - 1):
        f = lib[i] / 1e6
        for k in range(indptr[i], indptr[i + 1]):
            out[indices[k]] += (float(data[k]) / f) * inv_n


@njit(cache=True)
def group_scaled_sums(indptr, indices, data, codes, inv_n, out):  # pragma: no cover - compiled
    """out[codes[i], indices[k]] += data[k] * inv_n[codes[i]]: per-group means of a matrix the
    way scipy's sparse ``mean(axis=0)`` forms them (each value times 1/n, summed row by row)."""
    for i in range(indptr.size - 1):
        c = codes[i]
        s = inv_n[c]
        for k in range(indptr[i], indptr[i + 1]):
            out[c, indices[k]] += float(data[k]) * s


SERIES_DELTA = 0.02  # cells with lib / (S - lib) above this take the direct path
SERIES_TERMS = 11  # log1p(x) = sum_k (-1)^(k+1) x^k / k truncated after x^11: < 1e-19 at 0.02


@njit(cache=True)
def jackknife_sums(indptr, indices, data, lib, P, S, ts, s1, s2):  # pragma: no cover
    """s1[g] = sum_i v_ig and s2[g] = sum_i v_ig^2 over one group's cells, where
    v_ig = log1p(ts * (P[g] - y_ig) / (S - l_i)) - log1p(ts * P[g] / S) (and -b_g when
    S - l_i == 0): the delete-one jackknife's deviations.

    Zero entries need no per-(cell, gene) work: with e = ts * P[g] / S, w = e / (1 + e) and
    d_i = l_i / (S - l_i), the identity v_ig = log1p(w * d_i) holds exactly, and for d_i <= 0.02
    the log1p series in w * d_i (< 0.02) converges to double precision in 11 terms, so
    sum over the zero cells of v and v^2 are polynomials in w whose coefficients are power sums
    of d over those cells: all cells' power sums minus those of the cells that hold the gene.
    Stored values and cells with d_i > 0.02 are summed directly. Cost: O(nnz + G * 11) instead
    of O(cells * G)."""
    n = indptr.size - 1
    G = P.size
    M = SERIES_TERMS
    b = np.empty(G)
    w = np.empty(G)
    for g in range(G):
        e = ts * P[g] / S
        b[g] = math.log1p(e)
        w[g] = e / (1.0 + e)
    a = np.empty(M + 1)
    a[0] = 0.0
    for k in range(1, M + 1):
        a[k] = (1.0 if k % 2 == 1 else -1.0) / k
    c = np.zeros(M + 1)  # log1p(x)^2 = sum_m c_m x^m
    for m in range(2, M + 1):
        for j in range(1, m):
            c[m] += a[j] * a[m - j]
    d = np.empty(n)
    ok = np.zeros(n, dtype=np.bool_)
    D = np.zeros(M + 1)
    for i in range(n):
        r = S - lib[i]
        if r > 0.0:
            d[i] = lib[i] / r
            if d[i] <= SERIES_DELTA:
                ok[i] = True
                x = 1.0
                for k in range(1, M + 1):
                    x *= d[i]
                    D[k] += x
    Z = np.empty((G, M + 1))
    for g in range(G):
        for k in range(M + 1):
            Z[g, k] = D[k]
    for i in range(n):
        if not ok[i]:
            continue
        r = S - lib[i]
        for k2 in range(indptr[i], indptr[i + 1]):
            y = float(data[k2])
            if y == 0.0:
                continue
            g = indices[k2]
            v = math.log1p(ts * (P[g] - y) / r) - b[g]
            s1[g] += v
            s2[g] += v * v
            x = 1.0
            for k in range(1, M + 1):
                x *= d[i]
                Z[g, k] -= x
    for g in range(G):
        wg = w[g]
        acc1 = 0.0
        acc2 = 0.0
        x = 1.0
        for k in range(1, M + 1):
            x *= wg
            acc1 += a[k] * x * Z[g, k]
            acc2 += c[k] * x * Z[g, k]
        s1[g] += acc1
        s2[g] += acc2
    # cells outside the series: every gene directly
    dense = np.zeros(G)
    for i in range(n):
        if ok[i]:
            continue
        r = S - lib[i]
        for g in range(G):
            dense[g] = 0.0
        for k2 in range(indptr[i], indptr[i + 1]):
            dense[indices[k2]] += float(data[k2])
        for g in range(G):
            if r > 0.0:
                v = math.log1p(ts * (P[g] - dense[g]) / r) - b[g]
            else:
                v = -b[g]
            s1[g] += v
            s2[g] += v * v
