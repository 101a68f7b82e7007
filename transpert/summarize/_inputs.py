"""Reading a method's inputs as summary profiles: a summary file is used as it is, cells (a path,
a manifest dataset or an AnnData; raw counts or log1p) are summarised on the way."""

from __future__ import annotations

import logging
from pathlib import Path

from transpert._errors import TranspertInputError
from transpert._io import copy_atomic, write_h5ad_atomic
from transpert.data.manifest import is_manifest_name
from transpert.data.schema import CONTROL_LABEL, PERT_COL
from transpert.summarize._api import summarize
from transpert.summarize._contract import is_summary
from transpert.summarize._profile import with_decoded_record

logger = logging.getLogger("transpert.summarize")


def read_input(source, *, what: str, pert_col: str = PERT_COL, control: str = CONTROL_LABEL,
               threads: int | None = None, show_progress: bool | None = None, scheduler=None,
               out=None):
    """Read ``source`` (h5ad path or AnnData) as a summary profile.

    A summary profile (layers ``mean``/``delta``, var ``control_mean``) is used as it is; anything
    else is taken for cells and summarised. Returns ``(summary, cells)``, ``cells`` being the
    source itself when it held cells, else ``None``. ``scheduler``: cells in a file are
    summarised on that Dask cluster (see :func:`summarize`); an AnnData in memory is not.

    ``out``: an h5ad path; the summary is written there instead of returned (cells summarised
    block of perturbation rows by block, never whole in memory; a summary file copied as it
    is) and ``summary`` is that path (:class:`pathlib.Path`).
    """
    import anndata as ad

    kw = dict(pert_col=pert_col, control=control, threads=threads, show_progress=show_progress)
    if out is not None:
        out = Path(out)
        kw["out"] = out
    if isinstance(source, ad.AnnData):
        adata = source
    else:
        path = Path(source)
        if not path.exists():
            if is_manifest_name(source):
                logger.info("%s: dataset %r of the manifest; summarising", what, source)
                return summarize(str(source), scheduler=scheduler, **kw), str(source)
            raise TranspertInputError(f"{what}: no such file, and no dataset of that name in the manifest: {path}")
        from transpert._h5files import read_h5ad

        adata = read_h5ad(path, backed="r")
        if is_summary(adata):
            adata.file.close()
            if out is not None:
                copy_atomic(path, out)
                return out, None
            return with_decoded_record(read_h5ad(path)), None
        adata.file.close()
        logger.info("%s: %s holds cells; summarising", what, path)
        return summarize(str(path), scheduler=scheduler, **kw), str(path)
    if is_summary(adata):
        if out is not None:
            write_h5ad_atomic(adata, out)
            return out, None
        return adata, None
    logger.info("%s: summarising %d cells", what, adata.n_obs)
    return summarize(adata, **kw), adata
