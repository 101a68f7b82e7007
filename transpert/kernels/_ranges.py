"""Locating a gene range inside one CSR row; checking rows are sorted."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def row_range(indices, start, stop, g0, g1, sorted_indices):
    """Index range of row entries [start, stop) whose column may lie in [g0, g1).

    With sorted column indices this is exact (two binary searches); otherwise the whole row is
    returned and the caller filters by column.
    """
    if not sorted_indices:
        return start, stop
    row = indices[start:stop]
    a = start + np.searchsorted(row, g0)
    b = start + np.searchsorted(row, g1)
    return a, b


@njit(cache=True, parallel=True)
def rows_strictly_sorted(indptr, indices):
    """True when every row's column indices strictly increase (sorted, no duplicates: scipy's
    canonical format). Works on the arrays as stored: scipy's own check first casts int32
    indices to an int64 indptr's type, a copy the size of the matrix's indices."""
    n_rows = indptr.shape[0] - 1
    n_parts = 64
    bad = np.zeros(n_parts, dtype=np.int64)
    for p in prange(n_parts):
        for r in range(n_rows * p // n_parts, n_rows * (p + 1) // n_parts):
            # a row through slices indexed from 0: no negative-index wraparound, so it vectorises
            cols = indices[indptr[r]:indptr[r + 1]]
            n_bad = 0
            for k in range(1, cols.shape[0]):
                n_bad += cols[k] <= cols[k - 1]
            bad[p] += n_bad
    return bad.sum() == 0


@njit(cache=True)
def split_genes_by_entries(gene_ptr, n_parts):
    """Contiguous runs of genes for ``n_parts`` threads, each holding about 1 / n_parts of the
    stored entries (``gene_ptr``: each gene's start in a column-major block, plus the end).

    Returns ``split`` int64[n_parts + 1] (part p takes genes ``split[p]:split[p + 1]``) and the
    largest number of entries of one gene (at least 1), which sizes each thread's scratch.
    """
    n_genes = gene_ptr.shape[0] - 1
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
    return split, max_n
