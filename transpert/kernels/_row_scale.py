"""Per-row evidence of a matrix's scale (raw counts, log1p, or counts multiplied by a constant)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

#: row kinds written by :func:`row_kinds`
ROW_EMPTY, ROW_INTEGRAL, ROW_FRACTIONAL, ROW_GRID = 0, 1, 2, 3


@njit(cache=True, parallel=True)
def row_kinds(indptr, data, eps, grid_tol, max_ratio, out):  # pragma: no cover - compiled
    """Each row's kind into ``out`` (int8), from its stored non-zero values:

    - ``ROW_EMPTY``: no non-zero value;
    - ``ROW_INTEGRAL``: every value's fractional part is <= ``eps`` (cell-eval's count rule);
    - ``ROW_GRID``: fractional, and the row's values are integer multiples of its smallest
      value (within ``grid_tol`` on the ratio), with at least three distinct multiples >= 2
      among the ratios up to ``max_ratio``: counts times a constant (``counts * 0.5``), which
      no log1p row is (log1p(2u) / log1p(u) is never an integer);
    - ``ROW_FRACTIONAL``: any other fractional row (log1p, or a model's continuous output).
    """
    n = indptr.size - 1
    for i in prange(n):
        lo, hi = indptr[i], indptr[i + 1]
        nz = 0
        frac = False
        vmin = np.inf
        for j in range(lo, hi):
            v = data[j]
            if v != 0:
                nz += 1
                if v - np.floor(v) > eps:
                    frac = True
                if v > 0 and v < vmin:
                    vmin = v
        if nz == 0:
            out[i] = ROW_EMPTY
            continue
        if not frac:
            out[i] = ROW_INTEGRAL
            continue
        kind = ROW_FRACTIONAL
        if vmin < np.inf:
            on_grid = True
            d1 = 0.0
            d2 = 0.0
            d3 = 0.0
            for j in range(lo, hi):
                v = data[j]
                if v <= 0:
                    continue
                r = np.float64(v) / np.float64(vmin)
                if r > max_ratio:
                    continue
                k = np.floor(r + 0.5)
                if abs(r - k) > grid_tol:
                    on_grid = False
                    break
                if k >= 2 and d3 == 0.0 and k != d1 and k != d2:
                    if d1 == 0.0:
                        d1 = k
                    elif d2 == 0.0:
                        d2 = k
                    else:
                        d3 = k
            if on_grid and d3 != 0.0:
                kind = ROW_GRID
        out[i] = kind
