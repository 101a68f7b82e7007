"""Pseudo-bulk accumulation over CSR rows: per (group, gene) sums and non-zero counts.

Threads split the *genes* (not the rows), so every (group, gene) sum is accumulated in row
order by exactly one thread: results are bit-identical for any thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from transpert.kernels._ranges import row_range


@njit(cache=True, parallel=True)
def pseudobulk_csr(data, indices, indptr, row_codes, n_genes, sorted_indices, n_parts,
                   sums, nonzero, scale32, sums32):
    """Add rows' values into ``sums[code, gene]`` (float64) and non-zero counts into ``nonzero``.

    Rows with code < 0 are skipped. ``nonzero`` may be an empty (0, 0) array to skip counting.
    Explicit zeros add nothing and are not counted.

    ``sums32`` (float32, or empty to skip) accumulates ``float32(v * scale32[code])`` in a
    float32 accumulator, row after row: exactly how scipy's ``csr_matrix.mean(axis=0)`` computes
    a float32 mean (scale each value by float32(1/n), then a float32 sparse product with ones).
    pdex 0.3.0, hence cell-eval 0.8.2, builds its ``target_mean``/``ref_mean`` from that mean.
    """
    n_rows = indptr.shape[0] - 1
    count = nonzero.shape[0] > 0
    f32 = sums32.shape[0] > 0
    for p in prange(n_parts):
        g0 = n_genes * p // n_parts
        g1 = n_genes * (p + 1) // n_parts
        for r in range(n_rows):
            c = row_codes[r]
            if c < 0:
                continue
            a, b = row_range(indices, indptr[r], indptr[r + 1], g0, g1, sorted_indices)
            for k in range(a, b):
                g = indices[k]
                if g < g0 or g >= g1:
                    continue
                v = data[k]
                if v != 0:
                    sums[c, g] += v
                    if count:
                        nonzero[c, g] += 1
                    if f32:
                        sums32[c, g] = sums32[c, g] + np.float32(v) * scale32[c]
