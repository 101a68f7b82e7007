"""The target line's control cells and the library size their counts are normalised to.

The writer (:func:`transpert.predict.write_prediction`) builds predicted cells from the target's
control cells on the log1p scale; raw counts are normalised to the same target sum the target's
summary used (the whole file's median library size), so predicted and summarised cells agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from transpert._errors import TranspertInputError
from transpert.data.manifest import is_manifest_name
from transpert.data.schema import CONTROL_LABEL, PERT_COL


def control_cells(cells, *, what: str, pert_col: str = PERT_COL, control: str = CONTROL_LABEL):
    """The control cells of ``cells`` (path, manifest name or AnnData), in memory, with ``obs[pert_col]``."""
    import anndata as ad

    if isinstance(cells, ad.AnnData):
        adata = cells
    elif not Path(cells).exists() and is_manifest_name(cells):
        from transpert.data.read import read_cells

        adata = read_cells(str(cells))
    else:
        from transpert._h5files import read_h5ad

        adata = read_h5ad(cells, backed="r")
    if pert_col not in adata.obs.columns:
        raise TranspertInputError(f"{what}: no obs column {pert_col!r} (columns: {list(adata.obs.columns)})")
    mask = (adata.obs[pert_col].astype(str) == control).to_numpy()
    if not mask.any():
        raise TranspertInputError(f"{what}: no control cells ({pert_col} == {control!r})")
    out = adata[mask]
    out = out.to_memory() if getattr(out, "isbacked", False) else out.copy()
    if getattr(adata, "isbacked", False):
        adata.file.close()
    return out


def file_median_library_size(cells, *, what: str, pert_col: str = PERT_COL,
                        control: str = CONTROL_LABEL) -> float | None:
    """The median total count per cell of a raw-count file (path, manifest name or AnnData), read
    in row chunks; None when it is log1p. The summaries normalise a file to this target, so the
    writer must normalise that file's control cells to it too (not to the controls' own median).
    ``pert_col``/``control``: the file's perturbation column and control label (the file is
    opened in them, as the summaries open it)."""
    from transpert.data.read import open_cells

    mapping = {}
    if pert_col != PERT_COL:
        mapping["pert_col"] = pert_col
    if control != CONTROL_LABEL:
        mapping["control_label"] = control
    with open_cells(cells, schema=mapping or None) as src:
        if src.scale != "counts":
            return None
        totals = np.concatenate([np.asarray(x.sum(axis=1)).ravel() for _, _, x in src.iter_chunks()])
    if totals.size == 0:
        raise TranspertInputError(f"{what}: no cells")
    return float(np.median(totals))


def target_controls(cells, *, whole_file_median: bool, pert_col: str = PERT_COL,
                    control: str = CONTROL_LABEL, what: str = "target controls"):
    """``(control cells, target_sum)`` for :func:`transpert.predict.write_prediction`: the
    control cells of ``cells`` (path, manifest name or AnnData) and, with ``whole_file_median``
    (``cells`` is the file the target's summary was made from), the whole file's median library
    size their raw counts are normalised to, as that summary's were; else None (the controls'
    own median, or log1p cells)."""
    controls = control_cells(cells, what=what, pert_col=pert_col, control=control)
    return controls, (file_median_library_size(cells, what=what, pert_col=pert_col, control=control)
                      if whole_file_median else None)
