"""Pseudo-bulk accumulation over CSR rows: per (group, gene) sums and non-zero counts.

Threads split the *groups*: :func:`plan_row_parts` gives every group to one part (balanced by
stored entries), and a part reads its groups' rows in row order. So every row is read once, by
one thread, every (group, gene) sum is accumulated in row order by that thread, and results are
bit-identical for any thread count. (Splitting genes instead made every thread walk every row.)
A part reads one group's rows after the other, so the accumulator rows it writes stay in cache
(row order across groups made three cache misses per stored value at 18k genes).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def plan_row_parts(row_codes, indptr, n_groups, n_parts):
    """Assign groups to ``n_parts`` parts and list each part's rows in row order.

    Greedy longest-processing-time balance on each group's stored entries (plus one per row);
    deterministic (stable order, ties to the lowest part). Rows with code < 0 are in no part.
    Returns ``part_of`` (int64[n_groups]), ``part_ptr`` (int64[n_parts + 1]) and ``part_rows``
    (int64 row numbers, part after part; within a part group after group, each group's rows
    in row order).
    """
    n_rows = indptr.shape[0] - 1
    weight = np.zeros(n_groups, dtype=np.int64)
    for r in range(n_rows):
        c = row_codes[r]
        if c >= 0:
            weight[c] += indptr[r + 1] - indptr[r] + 1
    order = np.argsort(-weight, kind="mergesort")
    load = np.zeros(n_parts, dtype=np.int64)
    part_of = np.zeros(n_groups, dtype=np.int64)
    for i in range(n_groups):
        c = order[i]
        best = 0
        for p in range(1, n_parts):
            if load[p] < load[best]:
                best = p
        part_of[c] = best
        load[best] += weight[c]
    # rows by (part, group, row): a group's rows in a run keep its accumulator rows in cache
    group_ptr = np.zeros(n_groups + 1, dtype=np.int64)
    for r in range(n_rows):
        c = row_codes[r]
        if c >= 0:
            group_ptr[c + 1] += 1
    for c in range(n_groups):
        group_ptr[c + 1] += group_ptr[c]
    fill = group_ptr[:-1].copy()
    by_group = np.empty(group_ptr[n_groups], dtype=np.int64)
    for r in range(n_rows):
        c = row_codes[r]
        if c >= 0:
            by_group[fill[c]] = r
            fill[c] += 1
    part_ptr = np.zeros(n_parts + 1, dtype=np.int64)
    for c in range(n_groups):
        part_ptr[part_of[c] + 1] += group_ptr[c + 1] - group_ptr[c]
    for p in range(n_parts):
        part_ptr[p + 1] += part_ptr[p]
    at = part_ptr[:-1].copy()
    part_rows = np.empty(part_ptr[n_parts], dtype=np.int64)
    for c in range(n_groups):
        p = part_of[c]
        for i in range(group_ptr[c], group_ptr[c + 1]):
            part_rows[at[p]] = by_group[i]
            at[p] += 1
    return part_of, part_ptr, part_rows


@njit(cache=True, parallel=True)
def pseudobulk_csr(data, indices, indptr, row_codes, part_ptr, part_rows, sums, nonzero,
                   scale32, sums32):
    """Add rows' values into ``sums[code, gene]`` (float64) and non-zero counts into ``nonzero``.

    Rows are those of ``part_rows`` (see :func:`plan_row_parts`; one thread per part).
    ``nonzero`` may be an empty (0, 0) array to skip counting. Explicit zeros add nothing and
    are not counted. Any scale in, sums on the same scale out.

    ``sums32`` (float32, or empty to skip) accumulates ``float32(v * scale32[code])`` in a
    float32 accumulator, row after row: exactly how scipy's ``csr_matrix.mean(axis=0)`` computes
    a float32 mean (scale each value by float32(1/n), then a float32 sparse product with ones).
    pdex 0.3.0, hence cell-eval 0.8.2, builds its ``target_mean``/``ref_mean`` from that mean.
    """
    n_parts = part_ptr.shape[0] - 1
    count = nonzero.shape[0] > 0
    f32 = sums32.shape[0] > 0
    for p in prange(n_parts):
        _accumulate_rows(data, indices, indptr, row_codes, part_rows[part_ptr[p]:part_ptr[p + 1]],
                         sums, nonzero, scale32, sums32, count, f32)


@njit(cache=True)
def _accumulate_rows(data, indices, indptr, row_codes, rows, sums, nonzero, scale32, sums32,
                     count, f32):
    for i in range(rows.shape[0]):
        r = rows[i]
        c = row_codes[r]
        s32 = scale32[c]
        for k in range(indptr[r], indptr[r + 1]):
            v = data[k]
            if v != 0:
                g = indices[k]
                sums[c, g] += v
                if count:
                    nonzero[c, g] += 1
                if f32:
                    sums32[c, g] = sums32[c, g] + np.float32(v) * s32


@njit(cache=True, parallel=True)
def pseudobulk_checked_csr(data, indices, indptr, row_codes, part_ptr, part_rows, other_rows,
                           sums, nonzero, scale32, sums32, eps, upper):
    """:func:`pseudobulk_csr` that also checks, in the same read of every stored value, what
    scale detection and the CSR canonical check need (the separate passes cost ~2x the
    accumulation itself at VCC size).

    ``other_rows``: rows in no part (group code < 0); they are checked, not accumulated.
    ``eps`` has the values' dtype (the fraction test ``x - trunc(x) > eps`` runs in that dtype,
    as :func:`transpert.kernels.value_facts`); so has ``upper``, the log1p ceiling (exact in
    float32, so ``v < upper`` is the float64 comparison, without a conversion per value).
    Returns int64[3]: the number of stored values outside ``[0, upper)`` (NaN, infinities and
    negatives included); the number of parts holding a value with a fractional part > ``eps``
    (> 0 iff there is one; each part stops testing at its first); the number of places where
    a row's column index does not strictly increase (0 means canonical CSR: sorted, no
    duplicates). Integers summed over a fixed set of parts: whether each is zero does not
    depend on the number of threads.
    """
    n_parts = part_ptr.shape[0] - 1
    count = nonzero.shape[0] > 0
    f32 = sums32.shape[0] > 0
    facts = np.zeros((n_parts, 3), dtype=np.int64)
    n_other = other_rows.shape[0]
    # exactly one iteration per part (an extra iteration for ``other_rows`` made numba's static
    # schedule put two parts on one thread); each part also checks a slice of ``other_rows``
    for p in prange(n_parts):
        facts[p] = _accumulate_checked(data, indices, indptr, row_codes,
                                       part_rows[part_ptr[p]:part_ptr[p + 1]], sums, nonzero,
                                       scale32, sums32, count, f32, eps, upper)
        facts[p] += _check_rows(data, indices, indptr,
                                other_rows[n_other * p // n_parts:n_other * (p + 1) // n_parts],
                                eps, upper)
    return facts.sum(axis=0)


@njit(cache=True)
def _accumulate_checked(data, indices, indptr, row_codes, rows, sums, nonzero, scale32, sums32,
                        count, f32, eps, upper):
    # the checks are branch-free counts so the accumulation loop keeps its one branch
    n_out = 0
    n_frac = 0
    n_unsorted = 0
    for i in range(rows.shape[0]):
        r = rows[i]
        c = row_codes[r]
        s32 = scale32[c]
        prev = -1
        for k in range(indptr[r], indptr[r + 1]):
            v = data[k]
            g = indices[k]
            n_unsorted += g <= prev
            prev = g
            n_out += not ((v >= 0) & (v < upper))
            if n_frac == 0:  # only whether there is one matters: stop testing after the first
                n_frac += v - np.trunc(v) > eps
            if v != 0:
                sums[c, g] += v
                if count:
                    nonzero[c, g] += 1
                if f32:
                    sums32[c, g] = sums32[c, g] + np.float32(v) * s32
    out = np.empty(3, dtype=np.int64)
    out[0] = n_out
    out[1] = n_frac
    out[2] = n_unsorted
    return out


@njit(cache=True)
def _check_rows(data, indices, indptr, rows, eps, upper):
    n_out = 0
    n_frac = 0
    n_unsorted = 0
    for i in range(rows.shape[0]):
        r = rows[i]
        prev = -1
        for k in range(indptr[r], indptr[r + 1]):
            v = data[k]
            g = indices[k]
            n_unsorted += g <= prev
            prev = g
            n_out += not ((v >= 0) & (v < upper))
            if n_frac == 0:
                n_frac += v - np.trunc(v) > eps
    out = np.empty(3, dtype=np.int64)
    out[0] = n_out
    out[1] = n_frac
    out[2] = n_unsorted
    return out
