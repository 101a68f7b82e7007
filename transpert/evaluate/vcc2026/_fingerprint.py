"""The identity of a real file as cell-eval2 0.20.0 records it in a real bundle.

cell-eval2 stamps a bundle with two SHA-256 fingerprints of the real data it was built from
(``cache.fingerprint_adata``): a structural one (``anchor_meta.json``'s
``real_fingerprint_meta``) over the cell count, gene count, stored dtype of ``X``, the gene names
and the per-cell perturbation labels; and a content one (``manifest.json``'s
``real_fingerprint``), the same plus a hash of ``X``'s stored values (CSR ``data``, then
``indices`` and ``indptr`` as int64, indices sorted within rows; a dense matrix's C-order bytes).
``score --real-bundle`` refuses a submission whose run read real data with another fingerprint.

Here both are computed from the file itself, streamed: the obs/var metadata are read backed, the
matrix in row chunks straight from the HDF5 datasets (nothing densified, one chunk in memory).
Input scale: raw counts as stored (the hash is of the stored bytes, whatever the scale).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from transpert._errors import TranspertInputError
from transpert._h5files import open_h5, read_h5ad

CHUNK_ENTRIES = 1 << 24  # stored entries hashed at a time (~64 MB of float32 + indices)


def _hash_obj(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(repr(p).encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def _hash_str_array(values) -> str:
    arr = np.asarray(values, dtype=str)
    h = hashlib.sha256()
    h.update(arr.size.to_bytes(8, "little"))
    for v in arr:
        b = str(v).encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _hash_labels(labels) -> str:
    """Sorted label set, then every cell's code (int64, obs order)."""
    uniq, inv = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    h = hashlib.sha256()
    h.update(_hash_str_array(uniq).encode("ascii"))
    h.update(np.ascontiguousarray(inv.astype(np.int64, copy=False)))
    return h.hexdigest()


def _sorted_rows(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray | None):
    """(indices, data) with indices sorted within each row (a copy only when some row is not)."""
    starts = indptr[:-1] - indptr[0]
    step = np.diff(indices.astype(np.int64))
    inside = np.ones(step.size, dtype=bool)
    cut = starts[1:]
    inside[cut[(cut > 0) & (cut < indices.size)] - 1] = False  # a row may start below the last
    if not np.any(step[inside] < 0):
        return indices, data
    m = sp.csr_matrix((np.zeros(indices.size) if data is None else data, indices,
                       indptr - indptr[0]), shape=(indptr.size - 1, int(indices.max()) + 1))
    m.sort_indices()
    return m.indices, (None if data is None else m.data)


def _row_windows(indptr: np.ndarray):
    """Row ranges [a, b) of about CHUNK_ENTRIES stored entries each."""
    n = indptr.size - 1
    a = 0
    while a < n:
        b = int(np.searchsorted(indptr, indptr[a] + CHUNK_ENTRIES, side="right")) - 1
        b = min(max(b, a + 1), n)
        yield a, b
        a = b


def _rows_unsorted(indptr: np.ndarray, indices: np.ndarray) -> bool:
    sorted_idx, _ = _sorted_rows(indptr, indices, None)
    return sorted_idx is not indices


def _hash_csr_sorting(group, indptr: np.ndarray, h) -> None:
    """All of data, then all of indices (int64), each row's entries in gene order."""
    data, indices = group["data"], group["indices"]
    for what in ("data", "indices"):
        for a, b in _row_windows(indptr):
            lo, hi = int(indptr[a]), int(indptr[b])
            idx, vals = _sorted_rows(indptr[a:b + 1], indices[lo:hi],
                                     data[lo:hi] if what == "data" else None)
            h.update(np.ascontiguousarray(vals if what == "data" else idx.astype(np.int64)))


def _hash_csr_group(group) -> str:
    """The CSR matrix's hash, each stored array read once: data is hashed assuming every row's
    indices are sorted (how anndata and scipy write them); if the indices pass finds a row that
    is not, the matrix is hashed again with the rows sorted."""
    indptr = np.asarray(group["indptr"][:], dtype=np.int64)
    data, indices = group["data"], group["indices"]
    h = hashlib.sha256()
    for a, b in _row_windows(indptr):
        h.update(np.ascontiguousarray(data[int(indptr[a]):int(indptr[b])]))
    for a, b in _row_windows(indptr):
        idx = indices[int(indptr[a]):int(indptr[b])]
        if _rows_unsorted(indptr[a:b + 1], idx):
            h = hashlib.sha256()
            _hash_csr_sorting(group, indptr, h)
            break
        h.update(np.ascontiguousarray(idx.astype(np.int64, copy=False)))
    h.update(np.ascontiguousarray(indptr))
    return h.hexdigest()


def _hash_matrix_in_memory(X, h) -> None:
    if sp.issparse(X):
        xc = X.tocsr()
        if not xc.has_sorted_indices:
            xc = xc.copy()
            xc.sort_indices()
        h.update(np.ascontiguousarray(xc.data))
        h.update(np.ascontiguousarray(xc.indices.astype(np.int64, copy=False)))
        h.update(np.ascontiguousarray(xc.indptr.astype(np.int64, copy=False)))
    else:
        h.update(np.ascontiguousarray(np.asarray(X)))


def _hash_file_matrix(path) -> str:
    h = hashlib.sha256()
    with open_h5(path) as f:
        X = f["X"]
        kind = X.attrs.get("encoding-type", "array") if hasattr(X, "attrs") else "array"
        if isinstance(kind, bytes):
            kind = kind.decode()
        if kind == "csr_matrix":
            return _hash_csr_group(X)
        elif kind == "array" and not hasattr(X, "keys"):  # dense: C-order rows
            step = max(1, CHUNK_ENTRIES // max(1, X.shape[1]))
            for a in range(0, X.shape[0], step):
                h.update(np.ascontiguousarray(X[a:a + step]))
        else:  # CSC (rare for cells): cell-eval2 converts to CSR in memory, so do we
            import anndata as ad
            _hash_matrix_in_memory(ad.io.read_elem(X), h)
    return h.hexdigest()


@dataclass(frozen=True)
class RealIdentity:
    """A real file's identity in cell-eval2's terms: ``structure`` (``real_fingerprint_meta``),
    ``content`` (``real_fingerprint``), and the facts named in a refusal."""

    structure: str
    content: str
    n_cells: int
    n_genes: int
    dtype: str
    labels: tuple[str, ...]


def real_identity(source, pert_col: str) -> RealIdentity:
    """cell-eval2's two fingerprints of real data (h5ad path or AnnData; raw counts as stored).

    Reads obs and var backed and hashes ``X`` in row chunks (bounded memory).
    """
    if isinstance(source, (str, os.PathLike)):
        adata = read_h5ad(os.fspath(source), backed="r")
        try:
            dtype = str(adata.X.dtype)
            obs, names, shape = adata.obs, adata.var.index.values, adata.shape
        finally:
            adata.file.close()
        matrix_hash = lambda: _hash_file_matrix(os.fspath(source))  # noqa: E731
    else:
        obs, names, shape, dtype = source.obs, source.var.index.values, source.shape, \
            str(source.X.dtype)

        def matrix_hash():
            h = hashlib.sha256()
            _hash_matrix_in_memory(source.X, h)
            return h.hexdigest()
    if pert_col not in obs.columns:
        raise TranspertInputError(f"real data: no obs column {pert_col!r}")
    labels = obs[pert_col].to_numpy()
    parts = ["adata", int(shape[0]), int(shape[1]), dtype, _hash_str_array(names),
             _hash_labels(labels)]
    structure = _hash_obj(*parts)
    content = _hash_obj(*parts, matrix_hash())
    return RealIdentity(structure, content, int(shape[0]), int(shape[1]), dtype,
                        tuple(sorted(set(np.asarray(labels, dtype=str)))))
