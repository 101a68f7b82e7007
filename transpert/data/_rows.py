"""Reading chosen rows of an h5ad matrix straight from the file (a worker reading its own shard).

:func:`read_file_rows` returns the stored values of a sorted set of file rows as one CSR matrix,
reading the file in windows that cover runs of chosen rows (a gap of unchosen rows larger than
``max_gap`` entries starts a new window; a window holds at most ``window`` entries), so a shard
of a file sorted by perturbation reads its own stretches only, and a shard of a shuffled file
reads each stretch once. :func:`scan_file_rows` is one range of :meth:`CellSource.scan` (value
facts, row scale evidence and library sizes), so the scan of a file can be split over workers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from transpert._errors import TranspertInputError

#: entries per read window (~130 MB of float32 values + int32 indices)
WINDOW_ENTRIES = 16 * 2**20
#: a gap of this many unchosen entries starts a new window
MAX_GAP_ENTRIES = 2**20


def open_matrix(path, key: str = "X"):
    """The matrix backend of an h5ad file (CSR or dense; a CSC matrix is refused: its rows are
    scattered over the whole file)."""
    from transpert._h5files import reading
    from transpert.data.storage import H5Matrix

    with reading(Path(path)):
        matrix = H5Matrix(Path(path), key)
    if matrix.format == "csc":
        matrix.close()
        raise TranspertInputError(f"{path}: matrix {key!r} is stored as CSC; reading shards of rows "
                                  "needs CSR or dense storage (rewrite it as CSR)")
    return matrix


def _windows(rows: np.ndarray, row_ptr: np.ndarray, window: int, max_gap: int):
    """Split sorted ``rows`` into (i0, i1): consecutive chosen rows read as one file span."""
    starts = row_ptr[rows]
    ends = row_ptr[rows + 1]
    out = []
    i0 = 0
    for i in range(1, len(rows)):
        if starts[i] - ends[i - 1] > max_gap or ends[i] - starts[i0] > window:
            out.append((i0, i))
            i0 = i
    if len(rows):
        out.append((i0, len(rows)))
    return out


def read_file_rows(matrix, rows: np.ndarray, *, window: int = WINDOW_ENTRIES,
                   max_gap: int = MAX_GAP_ENTRIES) -> sp.csr_matrix:
    """Stored values (any scale, explicit zeros kept) of the sorted file ``rows`` of ``matrix``
    (from :func:`open_matrix`), as one CSR matrix in the order of ``rows``."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) and (np.any(np.diff(rows) <= 0) or rows[0] < 0 or rows[-1] >= matrix.shape[0]):
        raise ValueError("rows must be sorted, distinct and inside the matrix")
    n_vars = matrix.shape[1]
    if matrix.format == "dense":
        row_ptr = np.arange(matrix.shape[0] + 1, dtype=np.int64) * n_vars
        parts = [matrix.read_rows(int(rows[i0]), int(rows[i1 - 1]) + 1)[rows[i0:i1] - rows[i0]]
                 for i0, i1 in _windows(rows, row_ptr, window, max_gap)]
        return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, n_vars), dtype=matrix.dtype)
    indptr = matrix.indptr
    lengths = indptr[rows + 1] - indptr[rows]
    out_ptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out_ptr[1:])
    data_ds, idx_ds = matrix.node["data"], matrix.node["indices"]
    data = np.empty(int(out_ptr[-1]), dtype=data_ds.dtype)
    indices = np.empty(int(out_ptr[-1]), dtype=idx_ds.dtype)
    for i0, i1 in _windows(rows, indptr, window, max_gap):
        lo, hi = int(indptr[rows[i0]]), int(indptr[rows[i1 - 1] + 1])
        d = data_ds[lo:hi]
        x = idx_ds[lo:hi]
        # positions in the window of the chosen rows' entries
        seg = lengths[i0:i1]
        pos = np.repeat(indptr[rows[i0:i1]] - lo - out_ptr[i0:i1], seg) + np.arange(out_ptr[i0], out_ptr[i1])
        data[out_ptr[i0]:out_ptr[i1]] = d[pos]
        indices[out_ptr[i0]:out_ptr[i1]] = x[pos]
    X = sp.csr_matrix((data, indices, out_ptr), shape=(len(rows), n_vars))
    return X


def scan_file_rows(path, key: str, rows: np.ndarray, first: int, chunk_rows: int) -> dict:
    """One range of :meth:`transpert.data.CellSource.scan`: the sorted file ``rows`` holding the
    cells ``first, first + 1, ...`` of obs. Returns ``{"values", "rows", "sizes", "size_counts",
    "nnz"}``: value facts, per-row scale evidence (rows numbered as in obs), the distinct library
    sizes (float64 row sums of the stored values) and how many cells have each."""
    from transpert.data import _row_scale
    from transpert.data import normalize as _norm

    matrix = open_matrix(path, key)
    try:
        summary = _norm.value_summary(np.empty(0, dtype=matrix.dtype))
        evidence = _row_scale.empty_evidence()
        sizes = np.empty(len(rows), dtype=np.float64)
        nnz = 0
        for s in range(0, len(rows), chunk_rows):
            e = min(len(rows), s + chunk_rows)
            block = read_file_rows(matrix, rows[s:e])
            summary = _norm.merge_summaries(summary, _norm.value_summary(block.data))
            evidence = _row_scale.merge_evidence(evidence, _row_scale.row_evidence(block, first + s))
            sizes[s:e] = np.asarray(block.sum(axis=1, dtype=np.float64)).ravel()
            nnz += block.nnz
    finally:
        matrix.close()
    distinct, counts = np.unique(sizes, return_counts=True)
    return {"values": summary, "rows": evidence, "sizes": distinct, "size_counts": counts, "nnz": nnz}
