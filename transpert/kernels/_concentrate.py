"""Move each column's mean to a target by changing as few cells as possible (the prediction
writer's ``move="pseudobulk"``; see :func:`transpert.predict._cells._concentrate_block`).

Per column of ``block`` (cells x genes, log1p, float64), with the cells sorted by value, largest
first (stable: ties keep their row order), and ``need = n * (target - mean)``:

* increase (``need > 0``): the largest values are filled up to ``cap`` one after the other
  until ``need`` is added;
* decrease (``need < 0``): the largest values are lowered to a common level ``L`` (never below
  0) so that the total removed is ``min(-need, column sum)``.

The arithmetic is the vectorised NumPy version's, in the same order (sums and prefix sums
accumulated row by row), so both give the same bits; this one avoids the sorted copies and
temporaries of the whole block.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def concentrate_columns(block, target, cap):  # pragma: no cover - compiled
    """A new array: ``block`` (n x m, float64) with each column moved to mean ``target[j]``."""
    n, m = block.shape
    out = np.empty_like(block)
    for j in prange(m):
        col = np.empty(n)
        for i in range(n):
            col[i] = -block[i, j]
        order = np.argsort(col, kind="mergesort")  # largest first, ties in row order
        vals = np.empty(n)
        total = 0.0
        for i in range(n):
            vals[i] = block[order[i], j]
            total += vals[i]
        need = n * (target[j] - total / n)
        if need > 0:
            before = 0.0  # room of the cells filled before this one
            for i in range(n):
                room = cap - vals[i]
                add = min(max(need - before, 0.0), room)
                out[order[i], j] = vals[i] + add
                before += room
        elif need < 0:
            remove = min(-need, total)
            prefix = 0.0
            kk = 0
            level_prefix = vals[0]  # prefix sum at the first k where lowering suffices
            found = False
            for i in range(n):
                prefix += vals[i]
                nxt = vals[i + 1] if i + 1 < n else 0.0
                if not found and prefix - (i + 1) * nxt >= remove - 1e-12:
                    kk, level_prefix, found = i, prefix, True
            level = max((level_prefix - remove) / (kk + 1), 0.0)
            for i in range(n):
                out[order[i], j] = min(vals[i], level)
        else:
            for i in range(n):
                out[i, j] = block[i, j]
    return out
