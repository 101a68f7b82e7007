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
counter-based generator keyed by ``(seed, gene)``, so the output does not depend on the thread
count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange



@njit(cache=True, inline="always")
def _mix(z):  # pragma: no cover - compiled
    """splitmix64 finaliser on a uint64."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def _uniform(key, i):  # pragma: no cover - compiled
    """A uniform in [0, 1) from the stream ``key``, draw ``i``."""
    z = _mix(key + np.uint64(i + 1) * np.uint64(0x9E3779B97F4A7C15))
    return (z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True, parallel=True)
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
    for g in prange(n_genes):
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
                cpm = np.empty(m)
                top = 0.0
                for k in range(m):
                    cpm[k] = -vals[a + k] / lib[rows[a + k]]
                    top = max(top, vals[a + k])
                order = np.argsort(cpm, kind="mergesort")
                k_cells = min(m, max(1, int(np.ceil(need / top))))
                each = np.floor(need / k_cells)
                rest = int(need - each * k_cells)
                for i in range(k_cells):
                    out_vals[lo + order[i]] += each + (1.0 if i < rest else 0.0)
            elif need < 0:  # water level on the largest counts
                remove = -need
                desc = np.sort(vals[a:b])[::-1]
                # smallest integer level L with sum(max(v - L, 0)) <= remove
                prefix = 0.0
                level = 0.0
                for i in range(m):
                    prefix += desc[i]
                    nxt = desc[i + 1] if i + 1 < m else 0.0
                    if prefix - (i + 1) * nxt >= remove:
                        level = np.ceil((prefix - remove) / (i + 1))
                        break
                removed = 0.0
                for k in range(m):
                    if out_vals[lo + k] > level:
                        removed += out_vals[lo + k] - level
                        out_vals[lo + k] = level
                # ceil left up to i+1 counts still to remove: one from cells at the level
                _fix_residual(out_vals, lo, lo + m, int(remove - removed), key, True)
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
    for g in prange(n_genes):
        q = new_indptr[g]
        lo = start[g]
        for k in range(cap[g]):
            if out_vals[lo + k] != 0.0:
                new_rows[q] = out_rows[lo + k]
                new_vals[q] = out_vals[lo + k]
                q += 1
    return new_indptr, new_rows, new_vals
