"""Opening h5ad inputs with a clear error for a file that is not one.

h5py and anndata report a truncated file ("truncated file: eof = ..."), an empty or text file
("file signature not found") or a directory (errno 21) as raw exceptions; every reader of an
input file opens it through here, so the user gets one sentence naming the file instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from pathlib import Path

from transpert._errors import TranspertInputError


def not_h5ad(path, err: BaseException) -> TranspertInputError:
    """The error for ``path`` that h5py / anndata could not read (``err``)."""
    path = Path(path)
    if path.is_dir():
        why = "it is a directory"
    elif path.exists() and path.stat().st_size == 0:
        why = "the file is empty"
    else:
        text = str(err)
        if "truncated file" in text:
            why = "the file is truncated (an interrupted download or copy?)"
        elif "file signature not found" in text:
            why = "it is not an HDF5 file (a CSV or text file given as h5ad?)"
        else:
            why = f"{type(err).__name__}: {text}"
    return TranspertInputError(f"{path}: not a readable h5ad file: {why}")


def open_h5(path):
    """``h5py.File(path, "r")``, or :class:`TranspertInputError` naming the file."""
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise not_h5ad(path, err) from None


@contextlib.contextmanager
def reading(path):
    """Turn a failure to parse ``path`` as h5ad inside the block into a clear error (a file that
    opens as HDF5 but is not an AnnData: no ``obs``/``var``, or unreadable elements)."""
    try:
        yield
    except TranspertInputError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as err:
        if isinstance(err, KeyError):
            found = re.search(r"object '([^']+)' doesn't exist", str(err))
            element = repr(found.group(1)) if found else str(err)
            raise TranspertInputError(
                f"{path}: not an AnnData h5ad file (no {element} element)") from None
        raise not_h5ad(path, err) from None


def read_h5ad(path, *, backed: str | None = None):
    """``anndata.read_h5ad`` with :func:`reading`'s errors; ``path`` must exist."""
    import anndata as ad

    if not os.path.exists(path):
        raise TranspertInputError(f"{path}: no such file")
    with reading(path), warnings.catch_warnings():
        # anndata's own note on duplicated names: transpert applies its one duplicate-genes rule
        # (an error naming the gene, or --duplicate-genes make_unique) right after reading
        warnings.filterwarnings("ignore", "Variable names are not unique", UserWarning)
        return ad.read_h5ad(path, backed=backed)


@contextlib.contextmanager
def layers_on_disk(path, layers=None):
    """An h5ad file opened as an AnnData whose dense layers stay on disk, for reading a few
    layers of a large file (e.g. a reference summary) block by block, while the block is open.

    obs, var and uns are read into memory; each dense layer (``layers``: the names wanted,
    None for all) is the file's ``h5py.Dataset`` (``np.asarray`` reads it whole, ``[a:b]`` reads
    rows ``a:b``); a sparse layer is read into memory. X is left out. Values are as stored (the
    file's scale). The file is closed when the block ends: the layers are unreadable after it.
    """
    import anndata as ad
    import h5py

    try:
        from anndata.io import read_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import read_elem

    if not os.path.exists(path):
        raise TranspertInputError(f"{path}: no such file")
    f = open_h5(path)
    try:
        with reading(path):
            obs, var = read_elem(f["obs"]), read_elem(f["var"])
            uns = read_elem(f["uns"]) if "uns" in f else {}
            group = f["layers"] if "layers" in f else {}
            wanted = list(group) if layers is None else [k for k in layers if k in group]
            held = {k: group[k] if isinstance(group[k], h5py.Dataset) else read_elem(group[k])
                    for k in wanted}
            adata = ad.AnnData(obs=obs, var=var, uns=uns, layers=held)
        yield adata
    finally:
        f.close()
