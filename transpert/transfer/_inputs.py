"""Validation of the summary profiles the transfer model takes, and small array helpers.

A summary profile (CONTRACTS.md, :func:`transpert.summarize.summarize`) is an AnnData with
obs = perturbations, var = genes, var ``control_mean`` (log1p scale) and layers ``mean`` (log1p
pseudo-bulk), ``delta`` (mean - control mean, log1p scale), ``log2fc``, ``pvalue``, ``fdr``,
``frac_expressing``. Every check here raises :class:`TranspertInputError` naming the line, the
layer/column and the offending value, before the model computes anything.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError

#: layers every reference summary must have
REFERENCE_LAYERS = ("delta", "log2fc", "pvalue", "fdr")
#: layers the target training summary must have
TARGET_LAYERS = ("delta", "fdr")

# Column names under which a summary may carry the fraction of control cells expressing a gene.
CONTROL_FRAC_COLUMNS = ("control_frac_expressing", "frac_expressing_control", "control_frac")


def dense_layer(adata, layer: str) -> np.ndarray:
    """A layer as a dense float64 array (summaries are small: perturbations x genes)."""
    x = adata.layers[layer]
    if hasattr(x, "toarray"):
        x = x.toarray()
    return np.asarray(x, dtype=np.float64)


def check_summary(adata, name: str, layers: tuple[str, ...], *, min_obs: int = 1) -> None:
    """Check that ``adata`` is a usable summary profile; ``name`` labels it in messages."""
    import anndata

    if not isinstance(adata, anndata.AnnData):
        raise TranspertInputError(
            f"{name}: expected an AnnData summary profile, got {type(adata).__name__}")
    if adata.n_obs < min_obs:
        raise TranspertInputError(
            f"{name}: needs at least {min_obs} perturbation(s) in obs, has {adata.n_obs}")
    if adata.n_vars == 0:
        raise TranspertInputError(f"{name}: has no genes (var is empty)")
    for axis, index in (("obs", adata.obs_names), ("var", adata.var_names)):
        if not index.is_unique:
            dup = index[index.duplicated()][0]
            raise TranspertInputError(f"{name}: {axis} names are not unique (e.g. {dup!r})")
    if "control_mean" not in adata.var:
        raise TranspertInputError(
            f"{name}: var column 'control_mean' (log1p control pseudo-bulk) is missing; "
            f"var has {list(adata.var.columns)}")
    ctrl = np.asarray(adata.var["control_mean"], dtype=np.float64)
    bad = ~np.isfinite(ctrl) | (ctrl < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise TranspertInputError(
            f"{name}: var 'control_mean' must be finite and >= 0 (log1p scale); gene "
            f"{adata.var_names[i]!r} has {ctrl[i]!r}")
    for layer in layers:
        if layer not in adata.layers:
            raise TranspertInputError(
                f"{name}: layer {layer!r} is missing; layers are {list(adata.layers.keys())}")
    if "delta" in layers:
        delta = dense_layer(adata, "delta")
        if np.isinf(delta).any():
            r, c = np.argwhere(np.isinf(delta))[0]
            raise TranspertInputError(
                f"{name}: layer 'delta' has an infinite value at perturbation "
                f"{adata.obs_names[r]!r}, gene {adata.var_names[c]!r}")
    for layer in ("pvalue", "fdr"):
        if layer in layers:
            x = dense_layer(adata, layer)
            bad = (x < 0) | (x > 1)
            if bad.any():
                r, c = np.argwhere(bad)[0]
                raise TranspertInputError(
                    f"{name}: layer {layer!r} must lie in [0, 1]; perturbation "
                    f"{adata.obs_names[r]!r}, gene {adata.var_names[c]!r} has {x[r, c]!r}")


def check_references(references) -> None:
    """``references`` must be a non-empty mapping of line name -> summary profile."""
    if not isinstance(references, Mapping) or len(references) == 0:
        raise TranspertInputError(
            "references: expected a non-empty dict {line name: summary AnnData}, got "
            f"{type(references).__name__} of length {len(references) if hasattr(references, '__len__') else '?'}")
    for line, adata in references.items():
        if not isinstance(line, str) or not line:
            raise TranspertInputError(f"references: line names must be non-empty strings, got {line!r}")
        check_summary(adata, f"reference line {line!r}", REFERENCE_LAYERS)


def check_perturbations(perturbations) -> list[str]:
    """A list of unique perturbation labels (strings)."""
    if isinstance(perturbations, str):
        raise TranspertInputError(
            f"perturbations: expected a list of labels, got the single string {perturbations!r}")
    perts = list(perturbations)
    if not perts:
        raise TranspertInputError("perturbations: the list is empty")
    for p in perts:
        if not isinstance(p, str) or not p:
            raise TranspertInputError(f"perturbations: labels must be non-empty strings, got {p!r}")
    seen = pd.Index(perts)
    if not seen.is_unique:
        raise TranspertInputError(
            f"perturbations: {seen[seen.duplicated()][0]!r} is listed more than once")
    return perts


def control_frac_expressing(target) -> tuple[np.ndarray, str]:
    """Fraction of target control cells expressing each gene, and where it came from.

    Uses a var column (``control_frac_expressing`` or an alias) when the summary has one.
    Otherwise it falls back to the mean over training perturbations of the ``frac_expressing``
    layer: most perturbations leave most genes unchanged, so that mean is close to the controls'
    value; and if the layer is missing too, to ``1 - exp(-expm1(control_mean))``, the Poisson
    zero fraction at the control mean (a rough proxy).
    """
    for col in CONTROL_FRAC_COLUMNS:
        if col in target.var:
            return np.asarray(target.var[col], dtype=np.float64), f"var[{col!r}]"
    if "frac_expressing" in target.layers:
        return np.nanmean(dense_layer(target, "frac_expressing"), axis=0), \
            "mean of layer 'frac_expressing' over training perturbations"
    ctrl = np.asarray(target.var["control_mean"], dtype=np.float64)
    return 1.0 - np.exp(-np.expm1(ctrl)), "Poisson zero fraction at var 'control_mean'"
