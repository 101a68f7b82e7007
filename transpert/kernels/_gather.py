"""Gathering gene blocks out of row-ordered (CSR) storage.

A gene block is the column-major, zero-free form the rank-sum kernel reads: for each gene of
[g0, g1), the keys and group codes of its non-zero values in cells that belong to a group.
Keys are the value's IEEE bits mapped so that unsigned integer order is numeric order
(positive: set the sign bit; negative: flip all bits); ``zero_key`` is the key of 0.0.
Explicit zeros (including -0.0) are dropped: they belong to the zero block.

Rows are split into ``n_parts`` contiguous parts, one per thread; part p writes each gene's
entries after those of parts < p, so a gene's entries are the same set whatever the thread
count (and the rank-sum kernel sorts them anyway).

Two output forms. With an empty ``codes_out``, an entry is one packed uint64 word
``key << 32 | code`` (32-bit keys, i.e. float32 values): one scattered 8-byte write per entry
instead of two (a key and a code in two arrays), a third less time gathering at VCC size
(measured), and the rank-sum sort moves one word. 64-bit keys (float64 values) leave no room
for a code: they are written as keys plus codes.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from transpert.kernels._ranges import row_range


@njit(cache=True)
def value_key(b, sign, ones):
    """Order-preserving unsigned key of IEEE bits ``b`` (uint64 arithmetic)."""
    b = np.uint64(b)
    if b >= sign:
        return ones - b
    return b + sign


@njit(cache=True)
def _put(keys_out, codes_out, d, key, code):
    """Write one entry at ``d``: a packed word when ``codes_out`` is empty, else key and code."""
    if codes_out.shape[0] == 0:
        keys_out[d] = (key << np.uint64(32)) | np.uint64(code)
    else:
        keys_out[d] = key
        codes_out[d] = code


@njit(cache=True)
def _block_gene(g, b, g0, g1, sign):
    """Gene ``g``'s place in block [g0, g1) for a stored entry with IEEE bits ``b``, or -1 when
    the gene is outside the block or the value is +0.0 / -0.0 (zeros belong to the zero block).
    The one filter :func:`count_csr_block` and :func:`scatter_csr_block` must share."""
    if g < g0 or g >= g1:
        return -1
    v = np.uint64(b)
    if v == 0 or v == sign:
        return -1
    return g - g0


@njit(cache=True, parallel=True)
def count_csr_block(bits, indices, indptr, row_codes, g0, g1, sorted_indices, sign, n_parts):
    """Non-zero entries per (row part, gene) of block [g0, g1) among rows with code >= 0."""
    n_rows = indptr.shape[0] - 1
    nb = g1 - g0
    counts = np.zeros((n_parts, nb), dtype=np.int64)
    for p in prange(n_parts):
        r_lo = n_rows * p // n_parts
        r_hi = n_rows * (p + 1) // n_parts
        for r in range(r_lo, r_hi):
            if row_codes[r] < 0:
                continue
            a, b = row_range(indices, indptr[r], indptr[r + 1], g0, g1, sorted_indices)
            for k in range(a, b):
                j = _block_gene(indices[k], bits[k], g0, g1, sign)
                if j >= 0:
                    counts[p, j] += 1
    return counts


@njit(cache=True, parallel=True)
def scatter_csr_block(bits, indices, indptr, row_codes, g0, g1, sorted_indices, sign, ones,
                      counts, gene_pos, keys_out, codes_out):
    """Write block [g0, g1)'s entries into ``keys_out``/``codes_out`` (packed words into
    ``keys_out`` when ``codes_out`` is empty; see the module doc).

    ``gene_pos[g - g0]`` is where this call starts writing gene g (advanced by the caller
    afterwards); ``counts`` comes from :func:`count_csr_block` on the same rows.
    """
    n_rows = indptr.shape[0] - 1
    n_parts = counts.shape[0]
    nb = g1 - g0
    for p in prange(n_parts):
        pos = gene_pos.copy()
        for q in range(p):
            for g in range(nb):
                pos[g] += counts[q, g]
        r_lo = n_rows * p // n_parts
        r_hi = n_rows * (p + 1) // n_parts
        for r in range(r_lo, r_hi):
            c = row_codes[r]
            if c < 0:
                continue
            a, b = row_range(indices, indptr[r], indptr[r + 1], g0, g1, sorted_indices)
            for k in range(a, b):
                j = _block_gene(indices[k], bits[k], g0, g1, sign)
                if j >= 0:
                    i = pos[j]
                    _put(keys_out, codes_out, i, value_key(np.uint64(bits[k]), sign, ones), c)
                    pos[j] = i + 1


@njit(cache=True, parallel=True)
def scatter_rows_block(bits, indices, indptr, row_codes, part_ptr, part_rows, cursor, g0, g1,
                       sign, ones, part_pos, keys_out, codes_out, sub_genes):
    """Write block [g0, g1)'s entries of an in-memory CSR with sorted indices, without a
    counting pass.

    Rows come in the parts of :func:`transpert.kernels.plan_row_parts` (one thread per part).
    ``cursor[r]`` is where row r's entries of this block start (``indptr[:-1]`` before the first
    block; advanced here, so consecutive blocks [0, g1), [g1, g2), ... never search a row).
    ``part_pos[p, g - g0]`` is where part p writes gene g: the caller knows every part's
    per-gene counts from the pseudo-bulk's non-zero counts. Writes into ``part_pos`` (scratch).

    The rows are walked once per run of ``sub_genes`` genes, which bounds how many genes' write
    streams are open at once (each one a cache line and a page). At the block widths the memory
    budget gives (~1,000 genes at VCC size) one sweep was as fast as several (measured); very
    wide blocks get split. Most of this kernel's time is the scattered writes themselves.
    """
    n_parts = part_ptr.shape[0] - 1
    for p in prange(n_parts):
        rows = part_rows[part_ptr[p]:part_ptr[p + 1]]
        s0 = g0
        while s0 < g1:
            s1 = min(g1, s0 + sub_genes)
            _scatter_rows(bits, indices, indptr, row_codes, rows, cursor, g0, s1, sign, ones,
                          part_pos[p], keys_out, codes_out)
            s0 = s1


@njit(cache=True)
def _scatter_rows(bits, indices, indptr, row_codes, rows, cursor, g0, s1, sign, ones, pos,
                  keys_out, codes_out):
    """Entries of ``rows`` from their cursors up to gene ``s1`` (exclusive).

    Rows are read through slices and write positions are unsigned, which spares numba's
    negative-index wraparound on every access (~7% of this kernel's time, measured). Column
    indices were checked to be in range by the pseudo-bulk pass; ``part_pos`` bounds the writes.
    """
    g0u = np.uint64(g0)
    for i in range(rows.shape[0]):
        r = rows[i]
        c = row_codes[r]
        k0 = cursor[r]
        vals = bits[k0:indptr[r + 1]]
        cols = indices[k0:indptr[r + 1]]
        n = vals.shape[0]
        j = 0
        while j < n and cols[j] < s1:
            v = np.uint64(vals[j])
            if v != 0 and v != sign:  # +0.0 / -0.0 belong to the zero block
                q = np.uint64(cols[j]) - g0u
                d = np.uint64(pos[q])
                _put(keys_out, codes_out, d, value_key(v, sign, ones), c)
                pos[q] = d + np.uint64(1)
            j += 1
        cursor[r] = k0 + j
