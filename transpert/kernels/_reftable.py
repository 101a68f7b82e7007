"""Rank-sum tests against a reference group given as a table of its sorted values.

The rank-sum of a group g against the reference r decomposes by group once r's values are known:
    U_g = sum over g's values x of (#r below x + #r equal to x / 2)
and the tie term of the pooled sample g ∪ r is
    tie_g = sum over r's tie blocks (c_r^3 - c_r) + sum over g's blocks [(c_g + c_r)^3 - (c_g + c_r) - (c_r^3 - c_r)].
So a worker holding r's *table* (per gene: the distinct non-zero values as order-preserving
keys, ascending, with their counts) tests any set of groups without the reference's cells:
one merge of each gene's sorted group values with the table. U is accumulated doubled in int64
and every tie term is an integer held exactly in float64, so U, the tie term and the p-value
(same :func:`mwu_pvalue`) are bit-identical to :func:`transpert.kernels.ranksum_block` on the
pooled cells.

Keys are those of :mod:`transpert.kernels._gather` (32-bit keys of float32 values); zeros are
never stored: a gene's zero count is its group size minus its non-zeros.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from transpert.kernels._gather import value_key
from transpert.kernels._ranksum import _cube_minus
from transpert.kernels._sort import CODE_SHIFT, MAX_DIGITS, RADIX, sort_words_into
from transpert.kernels._stats import mwu_pvalue


@njit(cache=True, parallel=True)
def reference_table(bits, indptr, sign, ones):
    """Per column of a CSC matrix (float32 IEEE ``bits``, ``indptr``): the distinct non-zero
    values' keys, ascending, and their counts. Returns ``(keys uint32, counts int32, ptr
    int64[n_cols + 1])``; +0.0 and -0.0 are zeros (left out)."""
    n_cols = indptr.shape[0] - 1
    sorted_keys = np.empty(indptr[n_cols], dtype=np.uint64)
    n_unique = np.zeros(n_cols, dtype=np.int64)
    for j in prange(n_cols):
        lo, hi = indptr[j], indptr[j + 1]
        m = 0
        for k in range(lo, hi):
            b = np.uint64(bits[k])
            if b == 0 or b == sign:
                continue
            sorted_keys[lo + m] = value_key(b, sign, ones)
            m += 1
        col = np.sort(sorted_keys[lo:lo + m])
        u = 0
        for i in range(m):
            if i == 0 or col[i] != col[i - 1]:
                u += 1
        sorted_keys[lo:lo + m] = col
        n_unique[j] = u
    ptr = np.zeros(n_cols + 1, dtype=np.int64)
    for j in range(n_cols):
        ptr[j + 1] = ptr[j] + n_unique[j]
    keys = np.empty(ptr[n_cols], dtype=np.uint32)
    counts = np.zeros(ptr[n_cols], dtype=np.int32)
    for j in prange(n_cols):
        lo = indptr[j]
        m = 0
        for k in range(lo, indptr[j + 1]):
            b = np.uint64(bits[k])
            if not (b == 0 or b == sign):
                m += 1
        d = ptr[j] - 1
        for i in range(m):
            v = sorted_keys[lo + i]
            if i == 0 or v != sorted_keys[lo + i - 1]:
                d += 1
                keys[d] = np.uint32(v)
            counts[d] += 1
    return keys, counts, ptr


@njit(cache=True, parallel=True)
def ranksum_vs_table(words, gene_ptr, ref_keys, ref_counts, ref_ptr, n_cells, n_ref, zero_key,
                     continuity, u_out, p_out, col0, n_parts):
    """U and p of every group of a gene block against a reference given as a table.

    words, gene_ptr : the block's non-zero entries as packed ``key << 32 | code`` words, gene
        after gene (unsorted within a gene; sorted here in per-thread scratch).
    ref_keys, ref_counts, ref_ptr : the reference's table for the block's genes
        (:func:`reference_table`; ``ref_ptr`` has one entry per block gene + 1).
    n_cells : int64[n_codes] cells per group; n_ref : the reference's cells.
    u_out, p_out : float64[n_codes, n_genes]; column ``col0 + j`` gets block gene j.
    Genes are split over ``n_parts`` threads; each gene is computed by one thread from exact
    integer counts, so results do not depend on ``n_parts``.
    """
    n_genes = gene_ptr.shape[0] - 1
    n_codes = n_cells.shape[0]
    total = gene_ptr[n_genes] - gene_ptr[0]
    split = np.empty(n_parts + 1, dtype=np.int64)
    split[0] = 0
    j = 0
    for p in range(1, n_parts):
        target = gene_ptr[0] + total * p // n_parts
        while j < n_genes and gene_ptr[j] < target:
            j += 1
        split[p] = j
    split[n_parts] = n_genes
    max_n = 1
    for j in range(n_genes):
        max_n = max(max_n, gene_ptr[j + 1] - gene_ptr[j])
    a_w = np.empty((n_parts, max_n), dtype=np.uint64)
    b_w = np.empty((n_parts, max_n), dtype=np.uint64)
    hist = np.empty((n_parts, MAX_DIGITS, RADIX), dtype=np.int64)
    nnz = np.zeros((n_parts, n_codes), dtype=np.int64)
    cnt = np.zeros((n_parts, n_codes), dtype=np.int64)
    touched = np.empty((n_parts, n_codes), dtype=np.uint64)
    u2 = np.empty((n_parts, n_codes), dtype=np.int64)
    tie = np.empty((n_parts, n_codes))
    for p in prange(n_parts):
        _genes_vs_table(words, gene_ptr, split[p], split[p + 1], ref_keys, ref_counts, ref_ptr,
                        n_cells, n_ref, zero_key, continuity, u_out, p_out, col0, a_w[p], b_w[p],
                        hist[p], nnz[p], cnt[p], touched[p], u2[p], tie[p])


@njit(cache=True, error_model="numpy")
def _genes_vs_table(words_in, gene_ptr, j0, j1, ref_keys, ref_counts, ref_ptr, n_cells, n_ref,
                    zero_key, continuity, u_out, p_out, col0, a_w, b_w, hist, nnz, cnt, touched,
                    u2, tie):
    """Genes [j0, j1) of :func:`ranksum_vs_table` on one thread's scratch."""
    n_codes = n_cells.shape[0]
    zk = np.uint64(zero_key)
    cs = np.uint64(CODE_SHIFT)
    cmask = np.uint64((1 << CODE_SHIFT) - 1)
    for j in range(j0, j1):
        lo = gene_ptr[j]
        n = gene_ptr[j + 1] - lo
        nnz[:] = 0
        if sort_words_into(words_in[lo:gene_ptr[j + 1]], a_w, b_w, hist, nnz) == 0:
            words = a_w[:n]
        else:
            words = b_w[:n]
        r0, r1 = ref_ptr[j], ref_ptr[j + 1]
        nnz_ref = 0
        ref_tie = 0.0
        below_zero = 0  # reference values below zero
        for r in range(r0, r1):
            c = ref_counts[r]
            nnz_ref += c
            ref_tie += _cube_minus(c)
            if np.uint64(ref_keys[r]) < zk:
                below_zero += c
        z_ref = n_ref - nnz_ref
        ref_zero_term = _cube_minus(z_ref)
        ref_tie += ref_zero_term
        u2[:] = 0
        tie[:] = 0.0
        r = r0
        below = 0  # reference non-zeros strictly below the current value
        i = 0
        while i < n:
            kv = words[i] >> cs
            while r < r1 and np.uint64(ref_keys[r]) < kv:
                below += ref_counts[r]
                r += 1
            c_ref = 0
            if r < r1 and np.uint64(ref_keys[r]) == kv:
                c_ref = ref_counts[r]
            below2 = 2 * below + (2 * z_ref if kv > zk else 0)
            k = i
            nt = 0
            while k < n and (words[k] >> cs) == kv:
                c = words[k] & cmask
                if cnt[c] == 0:
                    touched[nt] = c
                    nt += 1
                cnt[c] += 1
                k += 1
            ref_term = _cube_minus(c_ref)
            for q in range(nt):
                c = touched[q]
                u2[c] += cnt[c] * (below2 + c_ref)
                if cnt[c] + c_ref > 1:
                    tie[c] += _cube_minus(cnt[c] + c_ref) - ref_term
                cnt[c] = 0
            i = k
        col = col0 + j
        for c in range(n_codes):
            if n_cells[c] == 0:
                continue
            z = n_cells[c] - nnz[c]
            u2[c] += z * (2 * below_zero + z_ref)
            tie_c = ref_tie + (tie[c] + (_cube_minus(z + z_ref) - ref_zero_term))
            u1 = u2[c] / 2.0
            u_out[c, col] = u1
            p_out[c, col] = mwu_pvalue(u1, n_cells[c], n_ref, tie_c, continuity)
