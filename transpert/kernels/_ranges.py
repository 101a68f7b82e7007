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
