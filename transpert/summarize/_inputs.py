"""Reading a method's inputs as summary profiles: a summary file is used as it is, cells (a path,
a manifest dataset or an AnnData; raw counts or log1p) are summarised on the way."""

from __future__ import annotations

import logging
from pathlib import Path

from transpert._errors import TranspertInputError
from transpert.data.manifest import is_manifest_name
from transpert.data.schema import CONTROL_LABEL, PERT_COL
from transpert.summarize._api import summarize
from transpert.summarize._contract import is_summary

logger = logging.getLogger("transpert.summarize")


def read_input(source, *, what: str, pert_col: str = PERT_COL, control: str = CONTROL_LABEL,
               threads: int | None = None, show_progress: bool | None = None, scheduler=None):
    """Read ``source`` (h5ad path or AnnData) as a summary profile.

    A summary profile (layers ``mean``/``delta``, var ``control_mean``) is used as it is; anything
    else is taken for cells and summarised. Returns ``(summary, cells)``, ``cells`` being the
    source itself when it held cells, else ``None``. ``scheduler``: cells in a file are
    summarised on that Dask cluster (see :func:`summarize`); an AnnData in memory is not.
    """
    import anndata as ad

    if isinstance(source, ad.AnnData):
        adata = source
    else:
        path = Path(source)
        if not path.exists():
            if is_manifest_name(source):
                logger.info("%s: dataset %r of the manifest; summarising", what, source)
                return summarize(str(source), pert_col=pert_col, control=control, threads=threads,
                                 show_progress=show_progress, scheduler=scheduler), str(source)
            raise TranspertInputError(f"{what}: no such file, and no dataset of that name in the manifest: {path}")
        from transpert._h5files import read_h5ad

        adata = read_h5ad(path, backed="r")
        if is_summary(adata):
            adata.file.close()
            return read_h5ad(path), None
        adata.file.close()
        logger.info("%s: %s holds cells; summarising", what, path)
        return summarize(str(path), pert_col=pert_col, control=control, threads=threads,
                         show_progress=show_progress, scheduler=scheduler), str(path)
    if is_summary(adata):
        return adata, None
    logger.info("%s: summarising %d cells", what, adata.n_obs)
    return summarize(adata, pert_col=pert_col, control=control, threads=threads,
                           show_progress=show_progress), adata
