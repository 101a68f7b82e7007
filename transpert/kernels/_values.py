"""One pass over stored values: the facts scale detection and validation need.

Replaces a numpy pipeline (``isnan``, ``isinf``, ``modf``, masks) that made several full-size
temporaries of the matrix (the in-memory summary peaked at twice the input because of them)
and read the values five or six times. Here every value is read once, in parallel over
contiguous parts; each part keeps integer counts, its min/max and the index of its first
negative / fractional value, merged in part order, so the result does not depend on the
number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

#: fixed number of parts (not the thread count): the merge order never changes
N_PARTS = 64


@njit(cache=True, parallel=True)
def value_facts(values, eps):
    """Counts and extremes of a float array (any scale).

    ``eps`` has the values' dtype (numpy compares ``modf(x)[0] > 1e-3`` in the array's dtype).
    Returns ``counts`` int64[4] (NaN, +-inf, negative finite, finite with fractional part
    > eps; the fraction is ``x - trunc(x)``, negative for negative x, as ``np.modf``),
    ``extremes`` float64[2] (min, max of the finite values; +inf/-inf when none) and
    ``firsts`` int64[2] (index of the first negative / fractional finite value, -1 when none).
    """
    n = values.shape[0]
    parts = np.zeros((N_PARTS, 4), dtype=np.int64)
    lo = np.full(N_PARTS, np.inf)
    hi = np.full(N_PARTS, -np.inf)
    first = np.full((N_PARTS, 2), -1, dtype=np.int64)
    for p in prange(N_PARTS):
        a = n * p // N_PARTS
        b = n * (p + 1) // N_PARTS
        n_nan = 0
        n_inf = 0
        n_neg = 0
        n_frac = 0
        mn = np.inf
        mx = -np.inf
        f_neg = -1
        f_frac = -1
        for i in range(a, b):
            x = values[i]
            if x != x:
                n_nan += 1
                continue
            if x == np.inf or x == -np.inf:
                n_inf += 1
                continue
            xf = float(x)
            if xf < mn:
                mn = xf
            if xf > mx:
                mx = xf
            if x < 0:
                n_neg += 1
                if f_neg < 0:
                    f_neg = i
            if x - np.trunc(x) > eps:
                n_frac += 1
                if f_frac < 0:
                    f_frac = i
        parts[p, 0] = n_nan
        parts[p, 1] = n_inf
        parts[p, 2] = n_neg
        parts[p, 3] = n_frac
        lo[p] = mn
        hi[p] = mx
        first[p, 0] = f_neg
        first[p, 1] = f_frac
    counts = np.zeros(4, dtype=np.int64)
    extremes = np.array([np.inf, -np.inf])
    firsts = np.full(2, -1, dtype=np.int64)
    for p in range(N_PARTS):
        for k in range(4):
            counts[k] += parts[p, k]
        extremes[0] = min(extremes[0], lo[p])
        extremes[1] = max(extremes[1], hi[p])
        for k in range(2):
            if firsts[k] < 0 and first[p, k] >= 0:
                firsts[k] = first[p, k]
    return counts, extremes, firsts


@njit(cache=True)
def row_totals_into(indptr, data, out):  # pragma: no cover - compiled
    """Each CSR row's sum into ``out`` (scanpy's ``_normalize_csr``: a float64 accumulator per
    row, stored in ``out``'s dtype). Counts scale in; the rows' library sizes out."""
    for i in range(indptr.size - 1):
        s = 0.0
        for j in range(indptr[i], indptr[i + 1]):
            s += data[j]
        out[i] = s
