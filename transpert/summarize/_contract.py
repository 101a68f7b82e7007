"""The summary-profile contract: what every consumer of a summary may rely on, checked in one place.

A summary profile (CONTRACTS.md, :func:`transpert.summarize.summarize`) is an AnnData with
obs = perturbations, var = genes with ``control_mean`` (the control pseudo-bulk, log1p scale),
and layers ``mean`` (log1p pseudo-bulk), ``delta`` (mean - control mean), ``log2fc``,
``statistic``, ``pvalue``, ``fdr``, ``frac_expressing``. Predictors (baselines, TransPert) and the
writer take summaries through these checks; each raises :class:`TranspertInputError` naming the
summary, the layer or column and the offending value, before anything is computed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError

#: the layers that make an AnnData a summary profile (with var ``control_mean``)
PROFILE_LAYERS = ("mean", "delta")
#: layers a reference line must have for the transfer model
REFERENCE_LAYERS = ("delta", "log2fc", "pvalue", "fdr")
#: layers the target's training summary must have for the transfer model
TARGET_LAYERS = ("delta", "fdr")
# Column names under which a summary may carry the fraction of control cells expressing a gene.
CONTROL_FRAC_COLUMNS = ("control_frac_expressing", "frac_expressing_control", "control_frac")
#: the layers a method fits on (a reference held in memory for fitting keeps these only)
FIT_LAYERS = ("mean", "delta", "log2fc", "pvalue", "fdr", "frac_expressing")


def is_summary(adata) -> bool:
    """True when ``adata`` looks like a summary profile (layers ``mean``/``delta``, var ``control_mean``)."""
    layers = getattr(adata, "layers", None)
    var = getattr(adata, "var", None)
    return (layers is not None and var is not None and all(k in layers for k in PROFILE_LAYERS)
            and "control_mean" in var.columns)


def dense_layer(adata, layer: str) -> np.ndarray:
    """A layer as a dense float64 array (summaries are small: perturbations x genes)."""
    x = adata.layers[layer]
    if hasattr(x, "toarray"):
        x = x.toarray()
    return np.asarray(x, dtype=np.float64)


def aligned_layer(summary, name: str, genes: pd.Index, perturbations: Iterable[str] | None = None) -> np.ndarray:
    """``summary.layers[name]`` re-indexed to ``perturbations`` x ``genes``; NaN where absent."""
    values = dense_layer(summary, name)
    rows = summary.obs_names if perturbations is None else pd.Index(list(perturbations))
    r = summary.obs_names.get_indexer(rows)
    c = summary.var_names.get_indexer(genes)
    out = np.full((len(rows), len(genes)), np.nan)
    rr, cc = np.nonzero(r >= 0)[0], np.nonzero(c >= 0)[0]
    out[np.ix_(rr, cc)] = values[np.ix_(r[rr], c[cc])]
    return out


def check_summary(adata, name: str, layers: Iterable[str] = (), *, min_obs: int = 1) -> None:
    """Check that ``adata`` is a usable summary profile with ``layers``; ``name`` labels it."""
    import anndata

    if not isinstance(adata, anndata.AnnData):
        raise TranspertInputError(
            f"{name}: expected an AnnData summary profile, got {type(adata).__name__}")
    if not any(k in adata.layers for k in PROFILE_LAYERS) and "control_mean" not in adata.var:
        raise TranspertInputError(
            f"{name}: not a summary profile (needs layers {list(PROFILE_LAYERS)} and "
            f"var['control_mean']; found layers {sorted(adata.layers)}). Summarise cells with "
            "transpert.summarize.summarize.")
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
    layers = tuple(layers)
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


def check_references(references, layers: Iterable[str] = REFERENCE_LAYERS, *, required: bool = True) -> dict:
    """``references`` as a dict of line name -> summary profile with ``layers``; ``required``
    demands at least one line."""
    if references is None and not required:
        return {}
    if not isinstance(references, Mapping) or (required and len(references) == 0):
        raise TranspertInputError(
            "references: expected a non-empty dict {line name: summary AnnData}, got "
            f"{type(references).__name__} of length {len(references) if hasattr(references, '__len__') else '?'}")
    for line, adata in references.items():
        if not isinstance(line, str) or not line:
            raise TranspertInputError(f"references: line names must be non-empty strings, got {line!r}")
        check_summary(adata, f"reference line {line!r}", layers)
    return dict(references)


def check_perturbations(perturbations, control: str | None = None) -> list[str]:
    """The requested perturbations as a list of unique non-empty strings; a bare string, an empty
    list, a repeated label or the control label (when given) is an error."""
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
    if control is not None and control in seen:
        raise TranspertInputError(f"perturbations: the control label {control!r} is not a perturbation to predict")
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


def fitting_view(summary):
    """``summary`` with what methods fit on only: obs, var, uns and the :data:`FIT_LAYERS` it
    has (log1p-scale ``mean`` / ``delta``, ``log2fc``, ``pvalue``, ``fdr``, ``frac_expressing``);
    X and the other layers (counts means and sums, float32 means, U statistics) are left out.
    The arrays are shared, not copied: the caller drops ``summary`` to free the rest (a run
    holding four real-size references keeps 6 of their 11 perturbations x genes arrays)."""
    import anndata as ad

    return ad.AnnData(obs=summary.obs, var=summary.var, uns=summary.uns,
                      layers={k: summary.layers[k] for k in FIT_LAYERS if k in summary.layers})


def validate_summary(summary, where: str = "<memory>") -> None:
    """Raise if ``summary`` lacks what a written summary file holds (obs ``n_cells``, var
    ``control_mean``, layers ``mean``, ``delta``, ``log2fc``, ``frac_expressing``)."""
    if "n_cells" not in summary.obs.columns:
        raise TranspertInputError(f"{where}: summary obs has no 'n_cells' column")
    if "control_mean" not in summary.var.columns:
        raise TranspertInputError(f"{where}: summary var has no 'control_mean' column")
    missing = [k for k in ("mean", "delta", "log2fc", "frac_expressing") if k not in summary.layers]
    if missing:
        raise TranspertInputError(f"{where}: summary has no layer(s) {', '.join(missing)}")
