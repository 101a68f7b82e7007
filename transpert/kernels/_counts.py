"""Raw-count cells of one perturbation from sampled control cells (the ``format="counts"``
prediction writer; the construction is explained in :mod:`transpert.predict._counts`).

Input: the sampled control cells as CSC parts (``indptr`` over genes, ``rows``, integer-valued
float64 ``vals``), each cell's library size ``lib``, each gene's integer target total ``target``
(the counts the gene must sum to over the perturbation's cells) and whether the gene is called
DE. Output: new CSC parts with every column summing exactly to its target:

* DE, target above the column sum (or a column without counts): the missing counts are spread
  over **every** cell in proportion to its library size (stochastic rounding), so the whole
  distribution moves up;
* DE, target below: every cell is scaled by ``target / sum`` (stochastic rounding), so the whole
  distribution moves down;
* not DE, target above: the extra counts go to the ``k`` cells of highest CPM (``k`` just large
  enough that none more than doubles), which are already the top ranks;
* not DE, target below: the largest counts are lowered to a common integer level (water level),
  the rest untouched; a column without counts that needs some puts them on the deepest cell.

Stochastic rounding leaves a residual of a few counts; it is taken from (or given to) cells in
a seeded cyclic order so that every column ends exactly on its target. Randomness comes from a
counter-based generator keyed by ``(seed, gene)``. The kernels are serial and release the GIL:
the writer builds several perturbations at once in threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit



@njit(cache=True, nogil=True, inline="always")
def _mix(z):  # pragma: no cover - compiled
    """splitmix64 finaliser on a uint64."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True, inline="always")
def _uniform(key, i):  # pragma: no cover - compiled
    """A uniform in [0, 1) from the stream ``key``, draw ``i``."""
    z = _mix(key + np.uint64(i + 1) * np.uint64(0x9E3779B97F4A7C15))
    return (z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, nogil=True)
def _fix_residual(col, lo, hi, excess, key, only_positive):  # pragma: no cover - compiled
    """Remove ``excess`` (> 0) or add ``-excess`` counts, one per cell, cycling from a seeded
    start; removal skips empty cells, addition goes to cells with counts when ``only_positive``."""
    n = hi - lo
    if n == 0 or excess == 0:
        return
    start = int(_uniform(key, 1_000_003) * n)
    guard = 0
    i = start
    while excess != 0 and guard < 4 * n + 4 * abs(excess):
        j = lo + (i % n)
        if excess > 0:
            if col[j] >= 1.0:
                col[j] -= 1.0
                excess -= 1
        elif col[j] >= 1.0 or not only_positive:
            col[j] += 1.0
            excess += 1
        i += 1
        guard += 1
    if excess < 0:  # no cell with counts to add to: any cell
        i = start
        while excess < 0:
            col[lo + (i % n)] += 1.0
            excess += 1
            i += 1


@njit(cache=True, nogil=True)
def _water_level(col, lo, m, remove):  # pragma: no cover - compiled
    """Lower the largest of ``col[lo:lo + m]`` to the highest integer level ``L`` at which
    ``sum(max(v - L, 0)) >= remove`` would still hold one level lower, i.e. remove at most
    ``remove`` counts (the caller settles the last few); ``L`` by bisection, no sort."""
    top = 0.0
    for k in range(m):
        top = max(top, col[lo + k])
    low, high = 0.0, top  # removed(high) = 0 <= remove; find the lowest L with removed(L) <= remove
    while high - low > 1.0:
        mid = np.floor((low + high) / 2.0)
        removed = 0.0
        for k in range(m):
            if col[lo + k] > mid:
                removed += col[lo + k] - mid
        if removed <= remove:
            high = mid
        else:
            low = mid
    removed = 0.0
    for k in range(m):
        if col[lo + k] > low:
            removed += col[lo + k] - low
    level = low if removed <= remove else high
    for k in range(m):
        if col[lo + k] > level:
            col[lo + k] = level


@njit(cache=True, nogil=True)
def all_counts(values):  # pragma: no cover - compiled
    """True when every value is a non-negative integer."""
    for v in values:
        if v < 0 or v != np.floor(v):
            return False
    return True


@njit(cache=True, nogil=True)
def gather_rows_csc(indptr, indices, data, rows, n_genes):  # pragma: no cover - compiled
    """The CSR rows ``rows`` (in that order) of a matrix as CSC parts ``(indptr, row, value)``
    (int64, int64, float64; rows within a column ascending)."""
    counts = np.zeros(n_genes + 1, np.int64)
    for r in rows:
        for p in range(indptr[r], indptr[r + 1]):
            counts[indices[p] + 1] += 1
    for g in range(n_genes):
        counts[g + 1] += counts[g]
    out_ptr = counts.copy()
    pos = counts[:-1].copy()
    out_rows = np.empty(out_ptr[n_genes], np.int64)
    out_vals = np.empty(out_ptr[n_genes], np.float64)
    for i in range(rows.size):
        r = rows[i]
        for p in range(indptr[r], indptr[r + 1]):
            g = indices[p]
            out_rows[pos[g]] = i
            out_vals[pos[g]] = data[p]
            pos[g] += 1
    return out_ptr, out_rows, out_vals


@njit(cache=True, nogil=True)
def csc_to_csr(indptr, rows, vals, n_rows):  # pragma: no cover - compiled
    """CSC parts to CSR parts ``(indptr int64, indices int32, data float32)``, indices sorted."""
    n_cols = indptr.size - 1
    counts = np.zeros(n_rows + 1, np.int64)
    for p in range(indptr[n_cols]):
        counts[rows[p] + 1] += 1
    for r in range(n_rows):
        counts[r + 1] += counts[r]
    pos = counts[:-1].copy()
    out_idx = np.empty(indptr[n_cols], np.int32)
    out_val = np.empty(indptr[n_cols], np.float32)
    for g in range(n_cols):
        for p in range(indptr[g], indptr[g + 1]):
            r = rows[p]
            out_idx[pos[r]] = g
            out_val[pos[r]] = vals[p]
            pos[r] += 1
    return counts, out_idx, out_val


@njit(cache=True, nogil=True)
def _capacities(indptr, target, de, n_cells):  # pragma: no cover - compiled
    """Output slots per gene: every cell for a DE increase, one for an empty non-DE column
    that needs counts, else the column's stored entries."""
    n_genes = indptr.size - 1
    cap = np.empty(n_genes, np.int64)
    for g in range(n_genes):
        m = indptr[g + 1] - indptr[g]
        if de[g]:
            cap[g] = n_cells if target[g] > 0 else m
        elif m == 0 and target[g] > 0:
            cap[g] = 1
        else:
            cap[g] = m
    return cap


@njit(cache=True, nogil=True)
def counts_cells_csc(indptr, rows, vals, lib, target, de, seed):  # pragma: no cover - compiled
    """``(indptr, rows, vals)`` of the new cells (CSC, float64 integer values, no stored zeros)."""
    n_cells = lib.size
    n_genes = indptr.size - 1
    cap = _capacities(indptr, target, de, n_cells)
    start = np.zeros(n_genes + 1, np.int64)
    for g in range(n_genes):
        start[g + 1] = start[g] + cap[g]
    out_rows = np.empty(start[n_genes], np.int64)
    out_vals = np.zeros(start[n_genes], np.float64)
    kept = np.zeros(n_genes, np.int64)
    total_lib = 0.0
    deepest = 0
    for c in range(n_cells):
        total_lib += lib[c]
        if lib[c] > lib[deepest]:
            deepest = c
    base = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
    for g in range(n_genes):
        key = _mix(base + np.uint64(g))
        a, b = indptr[g], indptr[g + 1]
        lo = start[g]
        m = b - a
        have = 0.0
        for p in range(a, b):
            have += vals[p]
        need = target[g] - have
        if de[g] and target[g] > 0 and need > 0:  # every cell up, in proportion to its depth
            for c in range(n_cells):
                out_rows[lo + c] = c
                out_vals[lo + c] = 0.0
            for p in range(a, b):
                out_vals[lo + rows[p]] = vals[p]
            added = 0
            for c in range(n_cells):
                share = np.floor(need * lib[c] / total_lib + _uniform(key, c))
                out_vals[lo + c] += share
                added += int(share)
            _fix_residual(out_vals, lo, lo + n_cells, added - int(need), key, False)
        elif de[g] and need < 0:  # every cell scaled down
            r = target[g] / have
            got = 0
            for k in range(m):
                v = np.floor(vals[a + k] * r + _uniform(key, k))
                out_rows[lo + k] = rows[a + k]
                out_vals[lo + k] = v
                got += int(v)
            _fix_residual(out_vals, lo, lo + m, got - int(target[g]), key, True)
        elif m == 0:
            if target[g] > 0:  # nothing to move: the deepest cell takes the counts
                out_rows[lo] = deepest
                out_vals[lo] = target[g]
        else:
            for k in range(m):
                out_rows[lo + k] = rows[a + k]
                out_vals[lo + k] = vals[a + k]
            if need > 0:  # to the top-CPM cells, none more than doubled
                top = 0.0
                for k in range(m):
                    top = max(top, vals[a + k])
                k_cells = min(m, max(1, int(np.ceil(need / top))))
                each = np.floor(need / k_cells)
                rest = int(need - each * k_cells)
                prev = -1
                best_sc = 0.0
                last = np.inf  # CPMs already served: the k_cells largest, by repeated selection
                for i in range(k_cells):
                    best = -1
                    for k in range(m):
                        sc = vals[a + k] / lib[rows[a + k]]
                        if sc < last or (sc == last and k > prev):
                            if best < 0 or sc > best_sc:
                                best, best_sc = k, sc
                    out_vals[lo + best] += each + (1.0 if i < rest else 0.0)
                    last, prev = best_sc, best
            elif need < 0:  # water level on the largest counts
                _water_level(out_vals, lo, m, -need)
                got = 0.0
                for k in range(m):
                    got += out_vals[lo + k]
                _fix_residual(out_vals, lo, lo + m, int(got - target[g]), key, True)
        count = 0
        for k in range(cap[g]):
            if out_vals[lo + k] != 0.0:
                count += 1
        kept[g] = count
    new_indptr = np.zeros(n_genes + 1, np.int64)
    for g in range(n_genes):
        new_indptr[g + 1] = new_indptr[g] + kept[g]
    new_rows = np.empty(new_indptr[n_genes], np.int32)
    new_vals = np.empty(new_indptr[n_genes], np.float32)
    for g in range(n_genes):
        q = new_indptr[g]
        lo = start[g]
        for k in range(cap[g]):
            if out_vals[lo + k] != 0.0:
                new_rows[q] = out_rows[lo + k]
                new_vals[q] = out_vals[lo + k]
                q += 1
    return new_indptr, new_rows, new_vals
