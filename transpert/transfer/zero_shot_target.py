"""The target line of a zero-shot prediction: what is known of it from its control cells alone.

A zero-shot target is a cell line nobody perturbed: only its non-targeting control cells were
sequenced. :func:`control_profile` reduces whatever describes those controls to a
:class:`ControlProfile`: per gene the control pseudo-bulk (mean over control cells of log1p of
counts normalised to the cells' median library size, as :func:`transpert.summarize.summarize`
computes a summary's ``var["control_mean"]``) and the fraction of control cells expressing it.

Accepted descriptions (:func:`control_profile`):

* an AnnData of cells (raw counts or log1p; a ``pert_col`` column, when present, must say
  every cell is a control);
* a summary profile (var ``control_mean``; its perturbations, if any, are ignored);
* a pandas Series of log1p control means indexed by gene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError
from transpert.data.schema import CONTROL_LABEL, PERT_COL


@dataclass
class ControlProfile:
    """A line's controls: ``genes``, ``control_mean`` (log1p pseudo-bulk) and ``control_frac``
    (fraction of control cells with a non-zero count; NaN-free), plus ``n_cells`` (0 when only
    the profile was given) and ``source`` (what it was built from)."""

    genes: pd.Index
    control_mean: np.ndarray
    control_frac: np.ndarray
    n_cells: int
    source: str


def only_controls(adata, pert_col: str = PERT_COL, control: str = CONTROL_LABEL) -> bool:
    """True when ``adata`` (cells or summary) describes control cells only: a summary profile
    without perturbations, or cells whose ``obs[pert_col]`` is ``control`` everywhere."""
    from transpert.summarize._contract import is_summary

    if is_summary(adata):
        return adata.n_obs == 0
    if pert_col not in adata.obs.columns:
        return False
    labels = adata.obs[pert_col].astype(str).to_numpy()
    return len(labels) > 0 and bool((labels == control).all())


def control_profile(target_controls, *, pert_col: str = PERT_COL,
                    control: str = CONTROL_LABEL) -> ControlProfile:
    """The :class:`ControlProfile` of ``target_controls`` (see the module docstring).

    Cells in: raw counts are normalised to their median library size and log1p'd
    (:func:`transpert.data.normalize.normalize_log1p`); log1p cells are used as they are. Out:
    log1p control means per gene.
    """
    import anndata as ad

    if isinstance(target_controls, pd.Series):
        mean = np.asarray(target_controls, dtype=np.float64)
        _check_mean(mean, target_controls.index, "target controls (Series)")
        return ControlProfile(genes=pd.Index(target_controls.index.astype(str)), control_mean=mean,
                              control_frac=1.0 - np.exp(-np.expm1(mean)), n_cells=0,
                              source="Series of control means")
    if not isinstance(target_controls, ad.AnnData):
        raise TranspertInputError(
            "target controls: expected control cells (AnnData), a summary profile or a Series of "
            f"log1p control means, got {type(target_controls).__name__}")
    from transpert.summarize._contract import control_frac_expressing, is_summary

    genes = pd.Index(target_controls.var_names.astype(str))
    if not genes.is_unique:
        raise TranspertInputError(f"target controls: gene names are not unique (e.g. "
                                  f"{genes[genes.duplicated()][0]!r})")
    if is_summary(target_controls):
        mean = np.asarray(target_controls.var["control_mean"], dtype=np.float64)
        _check_mean(mean, genes, "target controls (summary var 'control_mean')")
        frac, _ = control_frac_expressing(target_controls)
        return ControlProfile(genes=genes, control_mean=mean, control_frac=np.nan_to_num(frac),
                              n_cells=0, source="summary profile")
    cells = target_controls
    if pert_col in cells.obs.columns:
        labels = cells.obs[pert_col].astype(str).to_numpy()
        bad = labels != control
        if bad.any():
            raise TranspertInputError(
                f"target controls: {int(bad.sum())} cells are not controls ({pert_col} = "
                f"{labels[bad][0]!r}, expected {control!r}); a zero-shot target has control cells only")
    if cells.n_obs == 0:
        raise TranspertInputError("target controls: no cells")
    from transpert.data.normalize import detect_scale, normalize_log1p

    X = cells.X
    logged = normalize_log1p(X) if detect_scale(X) == "counts" else X
    mean = np.asarray(logged.mean(axis=0), dtype=np.float64).ravel()
    nonzero = (logged > 0).sum(axis=0) if hasattr(logged, "toarray") else (np.asarray(logged) > 0).sum(axis=0)
    frac = np.asarray(nonzero, dtype=np.float64).ravel() / cells.n_obs
    return ControlProfile(genes=genes, control_mean=mean, control_frac=frac, n_cells=int(cells.n_obs),
                          source="control cells")


def _check_mean(mean: np.ndarray, genes, what: str) -> None:
    bad = ~np.isfinite(mean) | (mean < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise TranspertInputError(f"{what}: control means must be finite and >= 0 (log1p); gene "
                                  f"{list(genes)[i]!r} has {mean[i]!r}")
