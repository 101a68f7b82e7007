"""Atomic file output: write to a temporary file beside the target, then rename.

A failure part-way leaves nothing at the target path, so no later step can read half a file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; rename it onto ``target`` on success.

    The temporary file keeps the target's suffix (h5ad writers look at it) unless ``suffix`` says
    otherwise. On an exception the temporary file is removed and the target is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = target.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates the file 0600; give it the permissions a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_h5ad_atomic(adata, target: str | os.PathLike, compression: str | None = None) -> Path:
    """Write an AnnData to ``target`` atomically; returns the target path."""
    with atomic_path(target) as tmp:
        adata.write_h5ad(tmp, compression=compression)
    return Path(target)


def copy_atomic(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Copy the file ``source`` to ``target`` atomically; returns the target path."""
    import shutil

    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return Path(target)


def write_csv_atomic(frame, target: str | os.PathLike, **kwargs) -> Path:
    """Write a pandas DataFrame as CSV to ``target`` atomically; returns the target path."""
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, **kwargs)
    return Path(target)


def begin_csr_h5ad(f, shape: tuple[int, int]):
    """Mark an open, empty h5py file as an AnnData file and create its CSR ``X`` group of
    ``shape``; returns the group. For writers that stream X chunk by chunk: the caller adds
    ``data``, ``indices`` and ``indptr``, then obs, var and the other elements."""
    import numpy as np

    f.attrs["encoding-type"] = "anndata"
    f.attrs["encoding-version"] = "0.1.0"
    X = f.create_group("X")
    X.attrs["encoding-type"] = "csr_matrix"
    X.attrs["encoding-version"] = "0.1.0"
    X.attrs["shape"] = np.array(shape, dtype=np.int64)
    return X


class CSRRowWriter:
    """Writes an AnnData file's CSR ``X`` block of rows by block of rows, never holding it whole.

    ``append(csr)`` adds rows at the end (stored as given: sort or clean them first if needed);
    ``finish()`` checks that ``shape[0]`` rows came and writes the row pointer. obs, var and the
    other elements are then written by the caller (``anndata.io.write_elem``).
    """

    BLOCK = 1 << 20  # HDF5 chunk of the growing data / indices datasets

    def __init__(self, f, shape: tuple[int, int], dtype):
        import numpy as np

        self.shape = (int(shape[0]), int(shape[1]))
        group = begin_csr_h5ad(f, self.shape)
        self.group = group
        self.data = group.create_dataset("data", shape=(0,), maxshape=(None,), dtype=dtype,
                                         chunks=(self.BLOCK,))
        self.indices = group.create_dataset("indices", shape=(0,), maxshape=(None,),
                                            dtype=np.int32, chunks=(self.BLOCK,))
        self.indptr = np.zeros(self.shape[0] + 1, dtype=np.int64)
        self.rows = 0

    def append(self, block) -> None:
        n = block.shape[0]
        if block.shape[1] != self.shape[1] or self.rows + n > self.shape[0]:
            raise ValueError(f"block of shape {block.shape} does not fit at row {self.rows} of "
                             f"{self.shape}")
        lo = int(self.indptr[self.rows])
        hi = lo + int(block.indptr[-1])
        self.data.resize((hi,))
        self.indices.resize((hi,))
        self.data[lo:hi] = block.data[:hi - lo]
        self.indices[lo:hi] = block.indices[:hi - lo]
        self.indptr[self.rows + 1:self.rows + n + 1] = lo + block.indptr[1:]
        self.rows += n

    def finish(self) -> None:
        if self.rows != self.shape[0]:
            raise ValueError(f"{self.rows} rows written, {self.shape[0]} declared")
        self.group.create_dataset("indptr", data=self.indptr)


def write_h5ad_metadata(f, obs, var, uns: dict | None = None) -> None:
    """Write obs, var and uns (and the empty obsm, varm, layers, obsp, varp) into an h5ad file
    whose X a :class:`CSRRowWriter` wrote, encoded as ``AnnData.write_h5ad`` would (string
    columns as categoricals)."""
    import anndata as ad
    from anndata.io import write_elem

    meta = ad.AnnData(obs=obs, var=var)
    meta.strings_to_categoricals()
    write_elem(f, "obs", meta.obs)
    write_elem(f, "var", meta.var)
    write_elem(f, "uns", dict(uns or {}))
    for name in ("obsm", "varm", "layers", "obsp", "varp"):
        write_elem(f, name, {})
