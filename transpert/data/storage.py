"""Storage back-ends: row access to an expression matrix, on disk (h5ad: CSR, CSC or dense) or in
memory, on whatever scale it is stored (the reader above them decides the scale).

:class:`H5Matrix` reads rows ``[start, stop)`` from an h5ad file with h5py. CSR and dense X are read
by slicing. CSC X stores columns, so rows are scattered over the whole file: a CSC matrix of one
scan block is scanned for each request; a larger one is bucketed once, on the first row request:
one pass over its stored entries writes each entry to the scratch file of its block of rows
(:class:`RowBuckets`), and each request then reads only the buckets it overlaps. (Scanning the whole
file for every chunk made a large CSC file quadratic in its size.) :class:`MemoryMatrix` gives the
same interface over an in-memory matrix.
"""

from __future__ import annotations

import logging
import shutil
import weakref
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from transpert._errors import TranspertInputError
from transpert._progress import Progress

logger = logging.getLogger(__name__)

#: default chunk size aims at about this many stored entries (~64 MB as float32 + int32; the
#: normalisation's temporaries make the peak a few times that).
TARGET_CHUNK_ENTRIES = 8 * 2**20
MIN_CHUNK_ROWS = 64
#: CSC files are scanned in blocks of this many stored entries.
CSC_SCAN_BLOCK = 8 * 2**20
#: a CSC file larger than one scan block is bucketed by rows, about this many entries a bucket
CSC_BUCKET_ENTRIES = 8 * 2**20


def default_chunk_rows(matrix) -> int:
    """Rows per chunk of a matrix backend (``shape``, ``nnz``) so that a chunk holds about
    ``TARGET_CHUNK_ENTRIES`` stored entries (at least ``MIN_CHUNK_ROWS``)."""
    n_file = max(1, matrix.shape[0])
    per_row = max(1.0, matrix.nnz / n_file)
    return int(max(MIN_CHUNK_ROWS, min(n_file, TARGET_CHUNK_ENTRIES // per_row)))


# ---------------------------------------------------------------------- matrix backends
class H5Matrix:
    """Row access to an expression matrix stored in an h5ad file (CSR, CSC or dense)."""

    def __init__(self, path: Path, key: str):
        import h5py

        from transpert._h5files import open_h5

        self.path = path
        self._buckets = None  # CSC only: rows regrouped in scratch files on first use
        self.file = open_h5(path)
        try:
            node = self.file
            for part in key.split("/"):
                if part not in node:
                    what = "not an AnnData h5ad file: " if key == "X" else ""
                    raise TranspertInputError(f"{path}: {what}no matrix {key!r} in the file")
                node = node[part]
            self.node = node
            if isinstance(node, h5py.Dataset):
                self.format = "dense"
                self.shape = tuple(int(s) for s in node.shape)
                self.dtype = node.dtype
                self.nnz = self.shape[0] * self.shape[1] if len(self.shape) == 2 else 0
            else:
                enc = node.attrs.get("encoding-type", node.attrs.get("h5sparse_format", ""))
                enc = enc.decode() if isinstance(enc, bytes) else str(enc)
                if enc in ("csr_matrix", "csr"):
                    self.format = "csr"
                elif enc in ("csc_matrix", "csc"):
                    self.format = "csc"
                else:
                    raise TranspertInputError(f"{path}: matrix {key!r} has unsupported encoding {enc!r}")
                shape = node.attrs.get("shape", node.attrs.get("h5sparse_shape"))
                self.shape = tuple(int(s) for s in shape)
                self.dtype = node["data"].dtype
                self.indptr = node["indptr"][...].astype(np.int64)
                self.nnz = int(self.indptr[-1])
            if len(self.shape) != 2:
                raise TranspertInputError(f"{path}: matrix {key!r} is not two-dimensional ({self.shape})")
        except Exception:
            self.file.close()
            raise

    def read_rows(self, start: int, stop: int) -> sp.csr_matrix:
        n_vars = self.shape[1]
        if self.format == "dense":
            from transpert.kernels import dense_to_csr_arrays

            data, indices, indptr = dense_to_csr_arrays(self.node[start:stop])
            return sp.csr_matrix((data, indices, indptr), shape=(stop - start, n_vars))
        if self.format == "csr":
            lo, hi = int(self.indptr[start]), int(self.indptr[stop])
            data = self.node["data"][lo:hi]
            indices = self.node["indices"][lo:hi]
            indptr = self.indptr[start : stop + 1] - lo
            return sp.csr_matrix((data, indices, indptr), shape=(stop - start, n_vars))
        if self.nnz > CSC_SCAN_BLOCK:
            if self._buckets is None:
                self._buckets = RowBuckets(self)
            return self._buckets.read_rows(start, stop)
        return self._scan_rows(start, stop)

    def _scan_rows(self, start: int, stop: int) -> sp.csr_matrix:
        """CSC rows ``[start, stop)`` by scanning every stored entry (small files)."""
        rows, cols, vals = [], [], []
        for lo, hi, idx, col, data in self.csc_blocks():
            keep = np.flatnonzero((idx >= start) & (idx < stop))
            if keep.size == 0:
                continue
            rows.append(idx[keep].astype(np.int64) - start)
            cols.append(col[keep])
            vals.append(data[keep])
        return csr_from_entries(rows, cols, vals, stop - start, self.shape[1], self.dtype)

    def csc_blocks(self):
        """A CSC matrix's stored entries in file order, in blocks of ``CSC_SCAN_BLOCK``:
        ``(lo, hi, row indices, column of each entry, values)``."""
        data_ds, idx_ds = self.node["data"], self.node["indices"]
        for lo in range(0, self.nnz, CSC_SCAN_BLOCK):
            hi = min(lo + CSC_SCAN_BLOCK, self.nnz)
            # the columns this block overlaps, each repeated over its entries in the block
            c0 = int(np.searchsorted(self.indptr, lo, side="right")) - 1
            c1 = int(np.searchsorted(self.indptr, hi - 1, side="right")) - 1
            span = np.diff(np.clip(self.indptr[c0:c1 + 2], lo, hi))
            cols = np.repeat(np.arange(c0, c1 + 1, dtype=np.int32), span)
            yield lo, hi, idx_ds[lo:hi], cols, data_ds[lo:hi]

    def close(self) -> None:
        if self._buckets is not None:
            self._buckets.close()
            self._buckets = None
        self.file.close()


def csr_from_entries(rows, cols, vals, n_rows, n_cols, dtype) -> sp.csr_matrix:
    """CSR from lists of (row, column, value) pieces in CSC order. COO -> CSR keeps explicit
    zeros, and entries that arrive in column order leave each row's indices sorted."""
    if not rows:
        return sp.csr_matrix((n_rows, n_cols), dtype=dtype)
    coo = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(n_rows, n_cols))
    return coo.tocsr()


class RowBuckets:
    """A CSC matrix's entries regrouped by blocks of rows in scratch files (two passes).

    Bucket ``b`` holds rows ``[b * rows_per_bucket, (b + 1) * rows_per_bucket)``. Pass 1 reads
    the row indices alone and counts each bucket's entries; pass 2 reads the entries block by
    block and writes each bucket's share at its place in three flat files (row, column, value),
    in CSC order. Scratch disk: the matrix's entries once more (8 + itemsize bytes each), in a
    temporary directory removed on close.
    """

    def __init__(self, matrix: "H5Matrix"):
        import tempfile

        n_rows, nnz = matrix.shape[0], matrix.nnz
        per_row = max(1.0, nnz / max(1, n_rows))
        self.rows_per_bucket = int(max(1, CSC_BUCKET_ENTRIES // per_row))
        n_buckets = -(-n_rows // self.rows_per_bucket)
        self.n_cols, self.dtype = matrix.shape[1], matrix.dtype
        self.dir = Path(tempfile.mkdtemp(prefix="transpert-csc-"))
        # removed on close, or when this object is collected / the interpreter exits
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.dir), ignore_errors=True)
        try:
            idx_ds = matrix.node["indices"]
            counts = np.zeros(n_buckets, dtype=np.int64)
            for lo in range(0, nnz, CSC_SCAN_BLOCK):
                rows = idx_ds[lo:min(lo + CSC_SCAN_BLOCK, nnz)].astype(np.int64)
                counts += np.bincount(rows // self.rows_per_bucket, minlength=n_buckets)
            self.offsets = np.concatenate([[0], np.cumsum(counts)])
            # plain files written and read at offsets (not memory-mapped: the pages would count
            # as the process's memory)
            self.files = {part: (open(self.dir / part, "w+b"), np.dtype(dt)) for part, dt in
                          (("row", np.int32), ("col", np.int32), ("val", self.dtype))}
            cursor = self.offsets[:-1].copy()
            with Progress(nnz, f"regrouping the CSC matrix of {matrix.path.name} by rows",
                          unit="entries") as progress:
                for lo, hi, idx, col, data in matrix.csc_blocks():
                    bucket = idx.astype(np.int64) // self.rows_per_bucket
                    if n_buckets <= np.iinfo(np.uint16).max:
                        bucket = bucket.astype(np.uint16)  # numpy's stable sort is a radix sort then
                    order = np.argsort(bucket, kind="stable")  # CSC order kept within a bucket
                    size = np.bincount(bucket, minlength=n_buckets)
                    bounds = np.concatenate([[0], np.cumsum(size)])
                    parts = {"row": idx[order], "col": col[order], "val": data[order]}
                    for b in np.flatnonzero(size):
                        for part, (f, dt) in self.files.items():
                            f.seek(int(cursor[b]) * dt.itemsize)
                            f.write(parts[part][bounds[b]:bounds[b + 1]].astype(dt, copy=False).tobytes())
                        cursor[b] += size[b]
                    progress.update(hi - lo)
            for f, _ in self.files.values():
                f.flush()
        except Exception:
            self.close()
            raise

    def _read(self, part: str, b: int) -> np.ndarray:
        f, dt = self.files[part]
        lo, hi = int(self.offsets[b]), int(self.offsets[b + 1])
        f.seek(lo * dt.itemsize)
        return np.frombuffer(f.read((hi - lo) * dt.itemsize), dtype=dt)

    def read_rows(self, start: int, stop: int) -> sp.csr_matrix:
        rows, cols, vals = [], [], []
        for b in range(start // self.rows_per_bucket, (stop - 1) // self.rows_per_bucket + 1):
            idx = self._read("row", b)
            keep = np.flatnonzero((idx >= start) & (idx < stop))
            if keep.size == 0:
                continue
            rows.append(idx[keep].astype(np.int64) - start)
            cols.append(self._read("col", b)[keep])
            vals.append(self._read("val", b)[keep])
        # buckets are visited in row order, each in CSC order: a row's entries stay column-sorted
        return csr_from_entries(rows, cols, vals, stop - start, self.n_cols, self.dtype)

    def close(self) -> None:
        for f, _ in getattr(self, "files", {}).values():
            f.close()
        self.files = {}
        self._cleanup()


class MemoryMatrix:
    """Row access to an in-memory matrix (AnnData.X or a layer)."""

    def __init__(self, X):
        self.X = X
        self.shape = tuple(X.shape)
        self.dtype = X.dtype
        if sp.issparse(X):
            self.format = X.format if X.format in ("csr", "csc") else "csr"
            if X.format not in ("csr", "csc"):
                self.X = X.tocsr()
            self.nnz = int(self.X.nnz)
        else:
            self.format = "dense"
            self.nnz = self.shape[0] * self.shape[1]

    def read_rows(self, start: int, stop: int) -> sp.csr_matrix:
        block = self.X[start:stop]
        return block.tocsr() if sp.issparse(block) else sp.csr_matrix(np.asarray(block))

    def close(self) -> None:
        pass
