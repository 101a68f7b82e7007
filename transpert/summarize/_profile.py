"""The summary profile AnnData: assembling it, saving and loading it.

Layout (CONTRACTS.md): obs = perturbations (control and reference group excluded), obs
``n_cells``; var = genes, var ``control_mean`` (log1p scale) and ``control_frac_expressing``;
layers ``mean`` (log1p-scale pseudo-bulk), ``delta`` (mean - control_mean), ``log2fc``,
``statistic`` (U of the perturbation group), ``pvalue``, ``fdr``, ``frac_expressing``; with raw
counts input also ``counts_sum``, ``counts_mean``; ``mean_f32`` (scipy's float32 mean, what pdex
builds its fold changes from) when the log1p values are float32. ``X`` is the ``mean`` layer.
uns ``transpert``: source, checksum, normalisation, labels, version and parameters.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError
from transpert.summarize._contract import validate_summary

REQUIRED_LAYERS = ("mean", "delta", "log2fc", "statistic", "pvalue", "fdr", "frac_expressing")


def build_profile(acc, var_names, *, uns: dict, log2fc_method: str, fdr_method: str, de: bool,
                  threads: int = 1):
    """Summary AnnData from the engine's accumulators (float64 layers, float32 ``mean_f32``);
    ``threads``: how many threads the row-wise log2FC and FDR may use."""
    import anndata as ad

    from transpert.summarize._effects import bh_fdr, log2fc

    g = acc.groups
    rows = g.tested
    n = g.n_cells.astype(np.float64)[:, None]
    ctrl = g.control
    # only the reported rows are divided (the accumulators also hold the control/reference)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = acc.sums[rows] / n[rows]
        control_mean = acc.sums[ctrl] / n[ctrl]
        control_frac = acc.nonzero[ctrl] / n[ctrl]
        frac = acc.nonzero[rows] / n[rows]
    layers = {
        "mean": mean,
        "delta": mean - control_mean[None, :],
        "log2fc": _rows_in_threads(lambda m: log2fc(m, control_mean, log2fc_method), mean, threads),
        "frac_expressing": frac,
    }
    if de:
        layers["statistic"] = acc.u[rows]
        layers["pvalue"] = pvalues = acc.p[rows]
        if fdr_method == "per_perturbation":  # rows are corrected independently
            layers["fdr"] = _rows_in_threads(lambda p: bh_fdr(p, fdr_method), pvalues, threads)
        else:
            layers["fdr"] = bh_fdr(pvalues, fdr_method)
    if acc.raw_sums is not None:
        layers["counts_sum"] = acc.raw_sums[rows]
        with np.errstate(invalid="ignore", divide="ignore"):
            layers["counts_mean"] = acc.raw_sums[rows] / n[rows]
    var = pd.DataFrame({"control_mean": control_mean,
                        "control_frac_expressing": control_frac}, index=pd.Index(var_names, dtype=str))
    if acc.sums32 is not None:
        layers["mean_f32"] = acc.sums32[rows]
        var["control_mean_f32"] = acc.sums32[ctrl]
    if acc.raw_sums is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            var["control_counts_mean"] = acc.raw_sums[ctrl] / n[ctrl]
    obs = pd.DataFrame({"n_cells": g.n_cells[rows].astype(np.int64)},
                       index=pd.Index(g.labels[rows], dtype=str))
    obs.index.name = None
    var.index.name = None
    summary = ad.AnnData(X=layers["mean"].copy(), obs=obs, var=var, layers=layers)
    summary.uns["transpert"] = uns
    return summary


def _rows_in_threads(func, matrix: np.ndarray, n_threads: int) -> np.ndarray:
    """``func(matrix)`` computed on row ranges in ``n_threads`` threads (numpy's ufuncs and sorts
    release the GIL); the same numbers, since ``func`` treats every row on its own."""
    if n_threads < 2 or matrix.shape[0] < 2 * n_threads:
        return func(matrix)
    from concurrent.futures import ThreadPoolExecutor

    cuts = np.linspace(0, matrix.shape[0], n_threads + 1).astype(int)
    with ThreadPoolExecutor(n_threads) as pool:
        parts = list(pool.map(func, [matrix[a:b] for a, b in zip(cuts[:-1], cuts[1:])]))
    return np.vstack(parts)


def file_checksum(path, algorithm: str = "sha256", block: int = 2**24) -> str:
    """Hex digest of a file, read in blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def write_summary(summary, path) -> Path:
    """Save a summary profile as h5ad, atomically (uns parameters stored as JSON text).

    Parameters
    ----------
    summary
        A summary profile (:func:`summarize`): layers on the log1p scale (``mean``, ``delta``),
        log2FC, test statistics.
    path
        The h5ad file to write (replaced only once fully written).

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> from transpert.summarize import summarize, write_summary, read_summary
    >>> write_summary(summarize("papalexi_thp1"), "thp1_summary.h5ad")  # doctest: +SKIP
    >>> read_summary("thp1_summary.h5ad").layers["delta"].shape  # doctest: +SKIP
    (25, 299)
    """
    from transpert._io import write_h5ad_atomic

    validate_summary(summary, where="write_summary")
    out = summary.copy()
    meta = out.uns.get("transpert", {})
    out.uns["transpert"] = json.dumps(meta, default=_json_default)
    return write_h5ad_atomic(out, path)


def read_summary(path):
    """Load a summary profile written by :func:`write_summary` (checks its layout).

    Parameters
    ----------
    path
        An h5ad file written by :func:`write_summary`.

    Returns
    -------
    anndata.AnnData
        The summary profile: obs = perturbations, var = genes with ``control_mean``, layers
        ``mean`` and ``delta`` (log1p scale), ``log2fc``, ``statistic``, ``pvalue``, ``fdr``,
        ``frac_expressing``; ``uns["transpert"]`` back as a dict.

    Raises
    ------
    TranspertInputError
        When the file is missing or is not a summary profile.

    Examples
    --------
    >>> from transpert.summarize import read_summary
    >>> summary = read_summary("transpert-demo/summaries/target_train.h5ad")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise TranspertInputError(f"{path}: no such file")
    from transpert._h5files import read_h5ad

    summary = read_h5ad(path)
    meta = summary.uns.get("transpert")
    if isinstance(meta, str):
        summary.uns["transpert"] = json.loads(meta)
    validate_summary(summary, where=str(path))
    return summary


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.ndarray,)):
        return obj.tolist()
    if isinstance(obj, (Path, os.PathLike)):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
