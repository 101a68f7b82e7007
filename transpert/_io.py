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
