"""Locating a gene range inside one CSR row."""

from __future__ import annotations

import numpy as np
from numba import njit


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
