"""Mann-Whitney U of every group against one reference group (or against the rest), per gene.

Input is a *gene block*: for each gene, the non-zero values of the cells that belong to a group,
as order-preserving integer keys (see :mod:`transpert.kernels._gather`) and their group codes.
Zeros are never stored: all zeros of a gene form one tie block whose size per group is known
(group size minus its non-zeros), so they enter U and the tie term by formula.

For group g against reference r, U_g = sum over g's values x of (#r below x + #r equal to x / 2).
One sorted scan over the gene's non-zeros with a running count of reference values below gives
every group's U at once; U is accumulated doubled, in int64, so it is exact. The tie term of the
pooled sample g ∪ r is sum over tie blocks of t^3 - t with t counted in g ∪ r only:
    tie_g = sum_blocks (c_r^3 - c_r) + sum_{blocks holding g} [(c_g + c_r)^3 - (c_g + c_r) - (c_r^3 - c_r)]
so each group only pays for the blocks it appears in (usually singletons: no cost at all).

A gene is scanned as packed uint64 words ``key << 32 | code``: blocks of float32 values come
packed from the gather (:mod:`transpert.kernels._gather`); 64-bit keys (float64 values) come
with their codes beside them, are sorted apart and packed with their dense rank as key (same
order, same ties). The
per-group non-zero counts come out of the sort's first read, and the position where the
implicit zero block sits (``m0``: entries below it are negative values) is found once, so the
scan's loop carries no test for it.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from transpert.kernels._ranges import split_genes_by_entries
from transpert.kernels._sort import CODE_SHIFT, MAX_DIGITS, RADIX, sort_gene_into, sort_words_into
from transpert.kernels._stats import mwu_pvalue


@njit(cache=True)
def _cube_minus(t):
    t = float(t)
    return t * t * t - t


@njit(cache=True, error_model="numpy")
def _scan_vs_reference(words, m0, nnz, n_cells, ref, continuity, cnt, touched, u_col, p_col):
    """One gene, sorted packed ``words``: U and p of every group against group ``ref``.

    ``m0``: entries ``[0, m0)`` are below zero (the implicit zero block sits between m0 - 1 and
    m0). ``nnz``: each code's entries. ``cnt``/``touched``: per-thread scratch of length
    n_codes (cnt all zero on entry and exit). Writes U and p into ``u_col``/``p_col``.
    """
    n_codes = n_cells.shape[0]
    m = words.shape[0]
    cs = np.uint64(CODE_SHIFT)
    cmask = np.uint64((1 << CODE_SHIFT) - 1)
    refu = np.uint64(ref)
    u2 = np.zeros(n_codes, dtype=np.int64)  # doubled U, exact in integers
    tie = np.zeros(n_codes, dtype=np.float64)
    z_ref = n_cells[ref] - nnz[ref]  # reference cells at zero
    below2 = 0  # twice the reference values strictly below the current entry
    below_zero2 = 0
    ref_tie = 0.0
    for half in range(2):
        if half == 0:
            i, stop = 0, m0
        else:
            # passing the (implicit) zero block: reference zeros are below every positive value
            below_zero2 = below2
            below2 += 2 * z_ref
            i, stop = m0, m
        while i < stop:
            w = words[i]
            kv = w >> cs
            if i + 1 < stop and (words[i + 1] >> cs) == kv:
                j = i + 2
                while j < stop and (words[j] >> cs) == kv:
                    j += 1
                c_ref = 0
                nt = 0
                for k in range(i, j):
                    c = words[k] & cmask
                    if c == refu:
                        c_ref += 1
                    else:
                        if cnt[c] == 0:
                            touched[nt] = c
                            nt += 1
                        cnt[c] += 1
                ref_term = _cube_minus(c_ref)
                for q in range(nt):
                    c = touched[q]
                    u2[c] += cnt[c] * (below2 + c_ref)
                    tie[c] += _cube_minus(cnt[c] + c_ref) - ref_term
                    cnt[c] = 0
                ref_tie += ref_term
                below2 += 2 * c_ref
                i = j
            else:
                # a value of its own (most of them): branch-free, the reference's own U slot
                # collects junk that is never read
                c = w & cmask
                is_ref = np.int64(c == refu)
                u2[c] += below2 * (1 - is_ref)
                below2 += 2 * is_ref
                i += 1
    ref_zero_term = _cube_minus(z_ref)
    ref_tie += ref_zero_term
    n_ref = n_cells[ref]
    for c in range(n_codes):
        if c == ref or n_cells[c] == 0:
            continue
        z = n_cells[c] - nnz[c]
        u2[c] += z * (below_zero2 + z_ref)
        tie_c = ref_tie + (tie[c] + (_cube_minus(z + z_ref) - ref_zero_term))
        u1 = u2[c] / 2.0
        u_col[c] = u1
        p_col[c] = mwu_pvalue(u1, n_cells[c], n_ref, tie_c, continuity)


@njit(cache=True, error_model="numpy")
def _scan_vs_rest(words, m0, nnz, n_cells, continuity, cnt, touched, u_col, p_col):
    """One gene, sorted packed ``words``: U and p of every group against all other cells.

    With the pooled ranking of all cells, R_g = sum of g's average ranks and
    U_g = R_g - n_g (n_g + 1) / 2; the tie term is the same for every group.
    """
    n_codes = n_cells.shape[0]
    m = words.shape[0]
    cs = np.uint64(CODE_SHIFT)
    cmask = np.uint64((1 << CODE_SHIFT) - 1)
    n_total = 0
    for c in range(n_codes):
        n_total += n_cells[c]
    r2 = np.zeros(n_codes, dtype=np.int64)  # doubled rank sums
    z_all = n_total - m
    below = 0
    tie_all = 0.0
    for half in range(2):
        if half == 0:
            i, stop = 0, m0
        else:
            below += z_all
            i, stop = m0, m
        while i < stop:
            kv = words[i] >> cs
            j = i + 1
            while j < stop and (words[j] >> cs) == kv:
                j += 1
            t = j - i
            avg2 = 2 * below + t + 1  # doubled average rank of the block
            if t == 1:
                r2[words[i] & cmask] += avg2
            else:
                nt = 0
                for k in range(i, j):
                    c = words[k] & cmask
                    if cnt[c] == 0:
                        touched[nt] = c
                        nt += 1
                    cnt[c] += 1
                for q in range(nt):
                    c = touched[q]
                    r2[c] += cnt[c] * avg2
                    cnt[c] = 0
                tie_all += _cube_minus(t)
            below += t
            i = j
    tie_all += _cube_minus(z_all)
    zero_avg2 = 2 * m0 + z_all + 1
    for c in range(n_codes):
        nc = n_cells[c]
        if nc == 0 or nc == n_total:
            continue
        r2[c] += (nc - nnz[c]) * zero_avg2
        u1 = (r2[c] - nc * (nc + 1)) / 2.0
        u_col[c] = u1
        p_col[c] = mwu_pvalue(u1, nc, n_total - nc, tie_all, continuity)


@njit(cache=True, parallel=True, error_model="numpy")
def ranksum_block(keys, codes, gene_ptr, n_cells, ref, zero_key, continuity, u_out, p_out, col0,
                  n_parts):
    """Rank-sum tests for every gene of a block, genes split over ``n_parts`` threads.

    keys, codes : the block's non-zero entries, gene after gene (``gene_ptr``, length
        n_block_genes + 1); keys are order-preserving unsigned integers of the values (equal
        keys <=> equal values), codes the cell's group in [0, n_codes). With an empty ``codes``,
        ``keys`` are packed uint64 words ``key << 32 | code`` (32-bit keys). Unsorted within a
        gene; sorted here into per-thread scratch (the inputs are not modified).
    n_cells : int64[n_codes], cells per group (zeros included).
    ref : reference group code, or -1 for one-vs-rest.
    zero_key : the key the value 0 would have (negative values sort below it).
    u_out, p_out : float64[n_codes, n_genes] outputs (caller fills with NaN); column ``col0 + j``
        receives gene j of the block. Rows of the reference / empty groups are left untouched.
    n_parts : threads; part p ranks a contiguous run of genes holding about 1 / n_parts of the
        entries, with scratch allocated once here (never inside the parallel loop).
    Each gene is computed by one thread from exact integer counts: results do not depend on
    ``n_parts``.
    """
    n_codes = n_cells.shape[0]
    split, max_n = split_genes_by_entries(gene_ptr, n_parts)
    packed = codes.shape[0] == 0
    # packed words sort as they are; keys with codes beside them sort apart, then pack ranks
    wide = 1 if packed else max_n
    a_k = np.empty((n_parts, wide), dtype=keys.dtype)
    b_k = np.empty((n_parts, wide), dtype=keys.dtype)
    a_c = np.empty((n_parts, wide), dtype=codes.dtype)
    b_c = np.empty((n_parts, wide), dtype=codes.dtype)
    a_w = np.empty((n_parts, max_n), dtype=np.uint64)
    b_w = np.empty((n_parts, max_n), dtype=np.uint64)
    hist = np.empty((n_parts, MAX_DIGITS, RADIX), dtype=np.int64)
    nnz = np.zeros((n_parts, n_codes), dtype=np.int64)
    cnt = np.zeros((n_parts, n_codes), dtype=np.int64)
    touched = np.empty((n_parts, n_codes), dtype=np.uint64)
    u_col = np.empty((n_parts, n_codes))
    p_col = np.empty((n_parts, n_codes))
    for p in prange(n_parts):
        _rank_genes(keys, codes, gene_ptr, split[p], split[p + 1], n_cells, ref, zero_key,
                    continuity, u_out, p_out, col0, packed, a_k[p], a_c[p], b_k[p], b_c[p],
                    a_w[p], b_w[p], hist[p], nnz[p], cnt[p], touched[p], u_col[p], p_col[p])


@njit(cache=True, error_model="numpy")
def _rank_genes(keys, codes, gene_ptr, j0, j1, n_cells, ref, zero_key, continuity, u_out, p_out,
                col0, packed, a_k, a_c, b_k, b_c, a_w, b_w, hist, nnz, cnt, touched, u_col, p_col):
    """Genes [j0, j1) of :func:`ranksum_block` on one thread's scratch (a plain function: array
    creation inside a ``prange`` body becomes nested parallel loops, 8x slower when measured)."""
    n_codes = n_cells.shape[0]
    zk = np.uint64(zero_key)
    cs = np.uint64(CODE_SHIFT)
    for j in range(j0, j1):
        lo = gene_ptr[j]
        hi = gene_ptr[j + 1]
        n = hi - lo
        nnz[:] = 0
        if packed:
            if sort_words_into(keys[lo:hi], a_w, b_w, hist, nnz) == 0:
                words = a_w[:n]
            else:
                words = b_w[:n]
            m0 = 0
            while m0 < n and (words[m0] >> cs) < zk:
                m0 += 1
        else:
            words = a_w[:n]
            m0 = _pack_ranks(keys[lo:hi], codes[lo:hi], a_k, a_c, b_k, b_c, hist, zk, words, nnz)
        u_col[:] = np.nan
        p_col[:] = np.nan
        if ref >= 0:
            _scan_vs_reference(words, m0, nnz, n_cells, ref, continuity, cnt, touched, u_col, p_col)
        else:
            _scan_vs_rest(words, m0, nnz, n_cells, continuity, cnt, touched, u_col, p_col)
        col = col0 + j
        for c in range(n_codes):
            if u_col[c] == u_col[c]:
                u_out[c, col] = u_col[c]
                p_out[c, col] = p_col[c]


@njit(cache=True)
def _pack_ranks(keys, codes, a_k, a_c, b_k, b_c, hist, zero_key, words, nnz):
    """64-bit keys: sort them apart, then write ``dense_rank << 32 | code`` into ``words``
    (same order and ties as the keys) and count codes into ``nnz``. Returns the number of
    entries below zero."""
    n = keys.shape[0]
    if sort_gene_into(keys, codes, a_k, a_c, b_k, b_c, hist) == 0:
        sk, sc = a_k, a_c
    else:
        sk, sc = b_k, b_c
    cs = np.uint64(CODE_SHIFT)
    rank = np.uint64(0)
    m0 = 0
    for i in range(n):
        if i > 0 and sk[i] != sk[i - 1]:
            rank += np.uint64(1)
        if np.uint64(sk[i]) < zero_key:
            m0 = i + 1
        c = np.uint64(sc[i])
        nnz[c] += 1
        words[i] = (rank << cs) | c
    return m0
