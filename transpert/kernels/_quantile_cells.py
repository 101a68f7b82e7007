"""Stratified per-gene resampling of control cells (for the prediction writer).

For each gene j the control values, sorted ascending (``n_zero[j]`` zeros, then the sorted
non-zero values ``data[indptr[j]:indptr[j+1]]``), are read at ``n_out`` evenly spaced quantiles
``floor((i + u_j) * n_total / n_out)``, ``i = 0..n_out-1``, with one random offset ``u_j`` in
[0, 1) per gene (systematic sampling). The sample then has the control distribution of that gene
up to rounding, so a rank-sum test against the controls finds nothing (U ≈ n m / 2). The
non-zero values go to a random subset of output cells (a partial Fisher-Yates shuffle that keeps
a permutation across genes). Output is COO triplets; all randomness comes from ``seed``.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def quantile_sample_csc(indptr, sorted_data, n_total, n_out, seed):
    """Stratified sample of ``n_out`` cells from column-sorted CSC control data.

    ``indptr``/``sorted_data``: CSC of the controls (``n_total`` cells) with each column's stored
    non-zero values sorted ascending. Returns ``(rows, cols, values)`` of the sampled cells.
    """
    np.random.seed(seed)
    n_genes = indptr.shape[0] - 1
    offsets = np.empty(n_genes)
    counts = np.zeros(n_genes, dtype=np.int64)
    for j in range(n_genes):
        u = np.random.random()
        offsets[j] = u
        zeros = n_total - (indptr[j + 1] - indptr[j])
        k = 0
        for i in range(n_out):
            if int(np.floor((i + u) * n_total / n_out)) >= zeros:
                k += 1
        counts[j] = k
    nnz = counts.sum()
    rows = np.empty(nnz, dtype=np.int64)
    cols = np.empty(nnz, dtype=np.int64)
    vals = np.empty(nnz, dtype=sorted_data.dtype)
    perm = np.arange(n_out)
    pos = 0
    for j in range(n_genes):
        start = indptr[j]
        zeros = n_total - (indptr[j + 1] - start)
        u = offsets[j]
        t = 0
        for i in range(n_out):
            q = int(np.floor((i + u) * n_total / n_out))
            if q < zeros:
                continue
            s = t + np.random.randint(0, n_out - t)
            tmp = perm[t]
            perm[t] = perm[s]
            perm[s] = tmp
            rows[pos] = perm[t]
            cols[pos] = j
            vals[pos] = sorted_data[start + q - zeros]
            pos += 1
            t += 1
    return rows, cols, vals


@njit(cache=True)
def csr_column_means(indices, data, n_rows, n_cols):
    """Column means of a CSR matrix in float64, the stored values taken in storage order:
    ``scipy``'s ``mean(axis=0)`` of the matrix made float64 (each value times ``1 / n_rows``,
    summed row after row), bit for bit, without its whole-matrix float64 copy (the writer keeps
    the control cells float32)."""
    out = np.zeros(n_cols)
    scale = 1.0 / n_rows
    for k in range(data.shape[0]):
        out[indices[k]] += np.float64(data[k]) * scale
    return out


@njit(cache=True)
def column_sorted_values(indices, data, n_cols):
    """Each column's stored values of a CSR matrix, sorted ascending, columns one after the other:
    ``(indptr, values)`` as the CSC matrix's ``indptr`` and its ``data`` sorted within each column
    (what :func:`quantile_sample_csc` reads), without the CSC's row indices."""
    indptr = np.zeros(n_cols + 1, dtype=np.int64)
    for k in range(indices.shape[0]):
        indptr[indices[k] + 1] += 1
    for j in range(n_cols):
        indptr[j + 1] += indptr[j]
    fill = indptr[:-1].copy()
    values = np.empty(indices.shape[0], dtype=data.dtype)
    for k in range(indices.shape[0]):
        j = indices[k]
        values[fill[j]] = data[k]
        fill[j] += 1
    for j in range(n_cols):
        values[indptr[j]:indptr[j + 1]].sort()
    return indptr, values
