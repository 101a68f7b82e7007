"""One group's vcc2026 summaries in a single gene-major pass (cell-eval2 0.20.0's ``vcc2026``).

Input: one group's raw counts (CSR parts, float values) and its cell totals. The group is
scattered once into a gene-major copy (:func:`csc_scatter`: per gene the non-zero counts and
their row numbers, in row order), then :func:`group_gene_pass` visits each gene once
and computes what the suite needs of it:

- the delete-one jackknife's sums s1[g] = sum_i v_ig, s2[g] = sum_i v_ig^2 over the group's
  cells, v_ig = log1p(TS * (P_g - y_ig) / (S - l_i)) - log1p(TS * P_g / S) (-log1p(TS P_g / S)
  when S - l_i == 0). Zero entries need no per-(cell, gene) work: with e = TS P_g / S,
  w = e / (1 + e) and d_i = l_i / (S - l_i), v_ig = log1p(w d_i) exactly, and for
  d_i <= SERIES_DELTA the log1p series in w d_i (< 0.02) converges to double precision in
  SERIES_TERMS terms, so the zero cells' sums of v and v^2 are polynomials in w whose
  coefficients are power sums of d over those cells (all cells' power sums minus those of the
  cells that hold the gene). Stored values and cells with d_i > SERIES_DELTA are summed
  directly, in row order. Cost O(nnz + G * SERIES_TERMS) instead of O(cells x genes);
- the mean CPM ``sum_i (y / (l_i / 1e6)) * (1 / n)`` in row order (scipy's sparse mean);
- the log1p(CPM) values ``log1p(y / (l_i / 1e6))`` sorted ascending, with the row each came from
  (a bucket pass on the value, then an insertion sort that only meets inversions within a
  bucket; a segment with a crowded bucket is sorted by numpy's argsort). Integral counts up to
  ``TABLE_MAX`` read ``log1p`` from a per-cell table computed with the same expression.

:func:`select_halves` splits sorted values by the half split of the rows they came from (a
group's or the control's halves: a sub-multiset of a sorted list is sorted, so nothing is
re-sorted).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

SERIES_DELTA = 0.02  # cells with lib / (S - lib) above this take the direct path
SERIES_TERMS = 11  # log1p(x) = sum_k (-1)^(k+1) x^k / k truncated after x^11: < 1e-19 at 0.02
TABLE_MAX = 64  # integral counts up to this read their log1p(CPM) from the per-cell table
_SMALL = 24  # segments up to this length: insertion sort
_CROWDED = 48  # a segment with a bucket holding more entries than this is sorted by argsort


@njit(cache=True, nogil=True)
def csc_scatter(indptr, indices, data, order, n_genes, col_ptr, rows, counts):  # pragma: no cover
    """Gene-major copy of the non-zero values of the CSR rows ``order`` (in that order: row
    ``order[j]`` becomes row j): ``col_ptr`` (n_genes + 1), ``rows`` and ``counts`` (float32
    for float32 data, else float64) are outputs, each gene's entries in the new row order (the copy of ``X[order]``)."""
    # unsigned positions: numba adds no negative-index wraparound to each load and store
    col_ptr[:] = 0
    for j in range(order.size):
        i = order[j]
        for k in range(np.uint64(indptr[i]), np.uint64(indptr[i + 1])):
            if data[k] != 0:
                col_ptr[np.uint64(indices[k]) + np.uint64(1)] += 1
    for g in range(n_genes):
        col_ptr[g + 1] += col_ptr[g]
    fill = col_ptr[:-1].copy()
    for j in range(order.size):
        i = order[j]
        for k in range(np.uint64(indptr[i]), np.uint64(indptr[i + 1])):
            if data[k] != 0:
                g = np.uint64(indices[k])
                p = np.uint64(fill[g])
                rows[p] = j
                counts[p] = data[k]
                fill[g] = p + np.uint64(1)


@njit(cache=True, nogil=True)
def csc_sums(col_ptr, counts, out):  # pragma: no cover - compiled
    """out[g] = sum of gene g's counts, added in row order (as a row-by-row CSR sum adds)."""
    for g in range(col_ptr.size - 1):
        s = 0.0
        for p in range(col_ptr[g], col_ptr[g + 1]):
            s += float(counts[p])
        out[g] = s


@njit(cache=True, nogil=True)
def jackknife_setup(lib, S):  # pragma: no cover - compiled
    """Per cell ``d_i = l_i / (S - l_i)``, whether it takes the series (``ok``), its powers
    ``d_i^k`` (k <= SERIES_TERMS, by repeated multiplication) and their sums over the series
    cells ``D``, as ``jackknife_sums`` forms them."""
    n = lib.size
    M = SERIES_TERMS
    ok = np.zeros(n, dtype=np.bool_)
    pw = np.zeros((n, M + 1))
    D = np.zeros(M + 1)
    for i in range(n):
        r = S - lib[i]
        if r > 0.0:
            d = lib[i] / r
            if d <= SERIES_DELTA:
                ok[i] = True
                x = 1.0
                for k in range(1, M + 1):
                    x *= d
                    pw[i, k] = x
                    D[k] += x
    return ok, pw, D


@njit(cache=True)
def _series_coefficients():  # pragma: no cover - compiled
    M = SERIES_TERMS
    a = np.empty(M + 1)
    a[0] = 0.0
    for k in range(1, M + 1):
        a[k] = (1.0 if k % 2 == 1 else -1.0) / k
    c = np.zeros(M + 1)  # log1p(x)^2 = sum_m c_m x^m
    for m in range(2, M + 1):
        for j in range(1, m):
            c[m] += a[j] * a[m - j]
    return a, c


@njit(cache=True)
def _insertion(vals, ids, lo, hi):  # pragma: no cover - compiled
    """Insertion sort of ``vals[lo:hi]`` carrying ``ids`` (None: the values alone; the
    branches on it are pruned at compile time)."""
    for i in range(lo + 1, hi):
        v = vals[i]
        if ids is not None:
            r = ids[i]
        j = i - 1
        while j >= lo and vals[j] > v:
            vals[j + 1] = vals[j]
            if ids is not None:
                ids[j + 1] = ids[j]
            j -= 1
        vals[j + 1] = v
        if ids is not None:
            ids[j + 1] = r


@njit(cache=True)
def sort_pairs(vals, ids, lo, hi, tv, ti, cnt):  # pragma: no cover - compiled
    """Sort ``vals[lo:hi]`` ascending carrying ``ids``; scratch ``tv``, ``ti`` (>= hi - lo) and
    ``cnt`` (>= hi - lo + 1). The bucket of a value is monotone in it, so after the bucket pass
    every inversion lies inside one bucket and one insertion sort finishes the job. ``ids``
    and ``ti`` None: the values alone (nothing carried)."""
    n = hi - lo
    if n <= _SMALL:
        _insertion(vals, ids, lo, hi)
        return
    # unsigned positions: numba adds no negative-index wraparound to each load and store
    ulo = np.uint64(lo)
    uhi = np.uint64(hi)
    vmin = vals[ulo]
    vmax = vals[ulo]
    for p in range(ulo + np.uint64(1), uhi):
        v = vals[p]
        if v < vmin:
            vmin = v
        elif v > vmax:
            vmax = v
    if not vmax > vmin:
        return  # all equal (order among ties does not matter)
    nb = n
    scale = nb / (vmax - vmin)
    for b in range(nb + 1):
        cnt[b] = 0
    crowded = 0
    for p in range(ulo, uhi):
        b = np.uint64(min(int((vals[p] - vmin) * scale), nb - 1))
        c = cnt[b + np.uint64(1)] + 1
        cnt[b + np.uint64(1)] = c
        if c > crowded:
            crowded = c
    if crowded > _CROWDED:  # a lumpy segment: sort it outright
        order = np.argsort(vals[lo:hi])
        for j in range(n):
            tv[j] = vals[lo + order[j]]
            if ids is not None:
                ti[j] = ids[lo + order[j]]
        for j in range(n):
            vals[lo + j] = tv[j]
            if ids is not None:
                ids[lo + j] = ti[j]
        return
    for b in range(nb):
        cnt[b + 1] += cnt[b]
    for p in range(ulo, uhi):
        b = np.uint64(min(int((vals[p] - vmin) * scale), nb - 1))
        q = np.uint64(cnt[b])
        tv[q] = vals[p]
        if ids is not None:
            ti[q] = ids[p]
        cnt[b] = q + np.uint64(1)
    # back in bucket order, then one insertion sort: every inversion left is inside a bucket
    for j in range(np.uint64(n)):
        vals[ulo + j] = tv[j]
        if ids is not None:
            ids[ulo + j] = ti[j]
    _insertion(vals, ids, lo, hi)


@njit(cache=True, nogil=True)
def group_gene_pass(col_ptr, rows, counts, lib, P, S, ts, jk, ok, pw, D, s1, s2,
                    mean_cpm, inv_n, want_values, vals, ids, g0, g1):  # pragma: no cover
    """Per gene ``g0 <= g < g1`` of the gene-major group (:func:`csc_scatter`; disjoint gene
    ranges may run on several threads at once): with ``jk``, the jackknife sums
    ``s1``, ``s2`` (outputs, zero on entry; ``ok``, ``pw``, ``D`` from :func:`jackknife_setup`,
    ``P`` the group's count sums, ``S`` their total, ``ts`` the bulk target sum); the mean CPM
    (``mean_cpm``, zero on entry); with ``want_values`` the sorted log1p(CPM) values ``vals``
    and their rows ``ids`` (aligned with ``rows``; an empty ``ids``: the values alone)."""
    n = lib.size
    M = SERIES_TERMS
    a, c = _series_coefficients()
    f = np.empty(n)
    for i in range(n):
        f[i] = lib[i] / 1e6
    tab = np.zeros((n, TABLE_MAX + 1))
    if want_values:
        for i in range(n):
            if not f[i] > 0.0:
                continue  # an empty cell stores no value
            for x in range(1, TABLE_MAX + 1):
                tab[i, x] = math.log1p(float(x) / f[i])
    outside = np.flatnonzero(~ok) if jk else np.zeros(0, dtype=np.int64)
    longest = 0
    for g in range(g0, g1):
        longest = max(longest, col_ptr[g + 1] - col_ptr[g])
    tv = np.empty(longest)
    ti = np.empty(longest, dtype=ids.dtype)
    keep_ids = ids.size > 0 or vals.size == 0
    cnt = np.empty(longest + 1, dtype=np.int64)
    Z = np.empty(M + 1)
    for g in range(g0, g1):
        lo = col_ptr[g]
        hi = col_ptr[g + 1]
        # unsigned positions: numba adds no negative-index wraparound to each load
        ulo = np.uint64(lo)
        uhi = np.uint64(hi)
        m = 0.0
        for p in range(ulo, uhi):
            m += (float(counts[p]) / f[np.uint64(rows[p])]) * inv_n
        mean_cpm[g] = m
        if jk:
            e = ts * P[g] / S
            bg = math.log1p(e)
            wg = e / (1.0 + e)
            for k in range(M + 1):
                Z[k] = D[k]
            acc_1 = 0.0
            acc_2 = 0.0
            for p in range(ulo, uhi):
                i = np.uint64(rows[p])
                if not ok[i]:
                    continue
                v = math.log1p(ts * (P[g] - float(counts[p])) / (S - lib[i])) - bg
                acc_1 += v
                acc_2 += v * v
                for k in range(1, M + 1):
                    Z[k] -= pw[i, k]
            x = 1.0
            t1 = 0.0
            t2 = 0.0
            for k in range(1, M + 1):
                x *= wg
                t1 += a[k] * x * Z[k]
                t2 += c[k] * x * Z[k]
            acc_1 += t1
            acc_2 += t2
            q = lo
            for i in outside:  # cells outside the series, every gene directly
                y = 0.0
                while q < hi and rows[q] < i:
                    q += 1
                while q < hi and rows[q] == i:
                    y += float(counts[q])
                    q += 1
                r = S - lib[i]
                if r > 0.0:
                    v = math.log1p(ts * (P[g] - y) / r) - bg
                else:
                    v = -bg
                acc_1 += v
                acc_2 += v * v
            s1[g] = acc_1
            s2[g] = acc_2
        if want_values:
            for p in range(ulo, uhi):
                i = np.uint64(rows[p])
                y = float(counts[p])
                xi = int(y)
                if xi <= TABLE_MAX and float(xi) == y:
                    vals[p] = tab[i, xi]
                else:
                    vals[p] = math.log1p(y / f[i])
                if keep_ids:
                    ids[p] = rows[p]
            if keep_ids:
                sort_pairs(vals, ids, lo, hi, tv, ti, cnt)
            else:  # the values alone (the order among ties is moot)
                sort_pairs(vals, None, lo, hi, tv, None, cnt)


@njit(cache=True, nogil=True)
def select_halves(col_ptr, vals, ids, half, ptr_a, vals_a, ptr_b, vals_b):  # pragma: no cover
    """Split per-gene sorted values by the half of the row each came from (``half[row]``: 0,
    1, or -1 for neither), order kept: the values of half 0 go to ``vals_a`` at ``ptr_a`` (its
    gene pointer, from its own scatter), those of half 1 to ``vals_b`` at ``ptr_b``. Both
    outputs need one slot of slack at the end: every value is written to both and only the
    cursor of its own half moves (no branch on the half)."""
    for g in range(col_ptr.size - 1):
        qa = ptr_a[g]
        qb = ptr_b[g]
        for p in range(col_ptr[g], col_ptr[g + 1]):
            h = half[ids[p]]
            v = vals[p]
            vals_a[qa] = v
            vals_b[qb] = v
            qa += h == 0
            qb += h == 1
