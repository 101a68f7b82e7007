"""Pseudo-bulk accumulation over CSR rows: per (group, gene) sums and non-zero counts.

Threads split the *groups*: :func:`plan_row_parts` gives every group to one part (balanced by
stored entries), and a part reads its groups' rows in row order. So every row is read once, by
one thread, every (group, gene) sum is accumulated in row order by that thread, and results are
bit-identical for any thread count. (Splitting genes instead made every thread walk every row.)
A part reads one group's rows after the other, so the accumulator rows it writes stay in cache
(row order across groups made three cache misses per stored value at 18k genes).

Numba turns ``a[i]`` with a signed ``i`` into ``a[i + n if i < 0 else i]``, which costs as much
as the work in these loops and stops LLVM from vectorising them. So rows are read through
slices indexed from 0 (LLVM proves the index is not negative) and gene numbers are cast to
unsigned before they index an accumulator row; every row's gene numbers are checked to lie in
``[0, n_genes)`` first (a vectorised pass over the row, which then sits in L1 for the
accumulation), so a malformed matrix is reported, never written out of bounds.
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
    group_ptr, by_group = _stable_buckets(row_codes, n_groups)
    _, groups_by_part = _stable_buckets(part_of, n_parts)
    part_ptr = np.zeros(n_parts + 1, dtype=np.int64)
    for c in range(n_groups):
        part_ptr[part_of[c] + 1] += group_ptr[c + 1] - group_ptr[c]
    for p in range(n_parts):
        part_ptr[p + 1] += part_ptr[p]
    part_rows = np.empty(part_ptr[n_parts], dtype=np.int64)
    at = 0
    for c in groups_by_part:  # part after part, each part's groups in code order
        n = group_ptr[c + 1] - group_ptr[c]
        part_rows[at:at + n] = by_group[group_ptr[c]:group_ptr[c + 1]]
        at += n
    return part_of, part_ptr, part_rows


@njit(cache=True)
def _stable_buckets(keys, n_keys):
    """Stable counting sort of the positions i with ``keys[i] >= 0`` by key: returns ``ptr``
    (int64[n_keys + 1]) and ``order``, bucket k being ``order[ptr[k]:ptr[k + 1]]`` in index order."""
    ptr = np.zeros(n_keys + 1, dtype=np.int64)
    for i in range(keys.shape[0]):
        if keys[i] >= 0:
            ptr[keys[i] + 1] += 1
    for k in range(n_keys):
        ptr[k + 1] += ptr[k]
    fill = ptr[:-1].copy()
    order = np.empty(ptr[n_keys], dtype=np.int64)
    for i in range(keys.shape[0]):
        k = keys[i]
        if k >= 0:
            order[fill[k]] = i
            fill[k] += 1
    return ptr, order


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

    Returns the number of rows holding a column index outside ``[0, n_genes)``; such rows are
    skipped (the caller raises).
    """
    n_parts = part_ptr.shape[0] - 1
    count = nonzero.shape[0] > 0
    f32 = sums32.shape[0] > 0
    bad = np.zeros(n_parts, dtype=np.int64)
    for p in prange(n_parts):
        bad[p] = _accumulate_rows(data, indices, indptr, row_codes,
                                  part_rows[part_ptr[p]:part_ptr[p + 1]], sums, nonzero, scale32,
                                  sums32, count, f32)
    return bad.sum()


@njit(cache=True)
def _accumulate_rows(data, indices, indptr, row_codes, rows, sums, nonzero, scale32, sums32,
                     count, f32):
    n_bad = 0
    n_genes = np.uint64(sums.shape[1])
    for i in range(rows.shape[0]):
        r = rows[i]
        vals = data[indptr[r]:indptr[r + 1]]
        cols = indices[indptr[r]:indptr[r + 1]]
        if _n_outside(cols, n_genes):
            n_bad += 1
            continue
        _add_row(vals, cols, row_codes[r], sums, nonzero, scale32, sums32, count, f32)
    return n_bad


@njit(cache=True)
def _n_outside(cols, n_genes):
    """Column indices of a row outside [0, n_genes) (negative ones wrap to huge unsigned)."""
    n = 0
    for k in range(cols.shape[0]):
        n += np.uint64(cols[k]) >= n_genes
    return n


@njit(cache=True)
def _add_row(vals, cols, c, sums, nonzero, scale32, sums32, count, f32):
    """One row into group ``c``'s accumulators; its columns are known to be in range.

    Branch-free: an explicit zero adds 0 to the sums (no change, also in float32) and 0 to the
    count, so it is neither summed nor counted, as a stored non-zero would be.
    """
    srow = sums[c]
    if count:
        nrow = nonzero[c]
        for k in range(vals.shape[0]):
            g = np.uint64(cols[k])
            v = vals[k]
            srow[g] += v
            nrow[g] += v != 0
    else:
        for k in range(vals.shape[0]):
            srow[np.uint64(cols[k])] += vals[k]
    if f32:
        frow = sums32[c]
        s32 = scale32[c]
        for k in range(vals.shape[0]):
            g = np.uint64(cols[k])
            frow[g] = frow[g] + np.float32(vals[k]) * s32


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
    Returns int64[4]: the number of stored values outside ``[0, upper)`` (NaN, infinities and
    negatives included); a count that is > 0 iff some value has a fractional part > ``eps``
    (each part stops testing at its first); the number of places where
    a row's column index does not strictly increase (0 means canonical CSR: sorted, no
    duplicates); the number of rows with a column index outside ``[0, n_genes)`` (not
    accumulated). Integers summed over a fixed set of parts: whether each is zero does not
    depend on the number of threads.
    """
    n_parts = part_ptr.shape[0] - 1
    count = nonzero.shape[0] > 0
    f32 = sums32.shape[0] > 0
    facts = np.zeros((n_parts, 4), dtype=np.int64)
    n_other = other_rows.shape[0]
    # exactly one iteration per part (an extra iteration for ``other_rows`` made numba's static
    # schedule put two parts on one thread); each part also checks a slice of ``other_rows``
    for p in prange(n_parts):
        facts[p] = _accumulate_checked(data, indices, indptr, row_codes,
                                       part_rows[part_ptr[p]:part_ptr[p + 1]], sums, nonzero,
                                       scale32, sums32, count, f32, eps, upper, True)
        facts[p] += _accumulate_checked(data, indices, indptr, row_codes,
                                        other_rows[n_other * p // n_parts:n_other * (p + 1) // n_parts],
                                        sums, nonzero, scale32, sums32, count, f32, eps, upper,
                                        False)
    return facts.sum(axis=0)


@njit(cache=True)
def _accumulate_checked(data, indices, indptr, row_codes, rows, sums, nonzero, scale32, sums32,
                        count, f32, eps, upper, accumulate):
    # each row is checked by one vectorised loop first (it is then in L1 for the scattered adds)
    n_genes = np.uint64(sums.shape[1])
    out = np.zeros(4, dtype=np.int64)
    for i in range(rows.shape[0]):
        r = rows[i]
        vals = data[indptr[r]:indptr[r + 1]]
        cols = indices[indptr[r]:indptr[r + 1]]
        n_in = vals.shape[0]
        if n_in == 0:
            continue
        v = vals[0]
        n_out = not ((v >= 0) & (v < upper))
        n_outside = np.uint64(cols[0]) >= n_genes
        n_unsorted = 0
        for k in range(1, n_in):
            v = vals[k]
            n_out += not ((v >= 0) & (v < upper))
            n_outside += np.uint64(cols[k]) >= n_genes
            n_unsorted += cols[k] <= cols[k - 1]
        out[0] += n_out
        out[2] += n_unsorted
        if out[1] == 0:  # only whether there is one matters: stop testing after the first
            n_frac = 0
            for k in range(n_in):
                v = vals[k]
                n_frac += v - np.trunc(v) > eps
            out[1] = n_frac > 0
        if n_outside:
            out[3] += 1
            continue
        if accumulate:
            _add_row(vals, cols, row_codes[r], sums, nonzero, scale32, sums32, count, f32)
    return out
