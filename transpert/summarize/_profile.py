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

import contextlib
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
    ``threads``: how many threads the row-wise log2FC and FDR may use. The rows are those
    :class:`transpert.summarize._writer.SummaryFileSink` writes to a file."""
    import anndata as ad

    from transpert.summarize._effects import bh_fdr
    from transpert.summarize._profile_rows import (RESULT_NAMES, ControlStats, ProfileLayout,
                                                   layer_rows)

    g = acc.groups
    rows = g.tested
    ctrl = g.control
    layout = ProfileLayout(de=de, raw=acc.raw_sums is not None, f32=acc.sums32 is not None)
    control = ControlStats.of(acc.sums[ctrl], acc.nonzero[ctrl],
                              None if acc.sums32 is None else acc.sums32[ctrl],
                              None if acc.raw_sums is None else acc.raw_sums[ctrl], int(g.n_cells[ctrl]))
    # only the reported rows are taken (the accumulators also hold the control/reference)
    results = {name: (None if getattr(acc, name) is None else getattr(acc, name)[rows])
               for name in RESULT_NAMES}
    layers = layer_rows(results, g.n_cells[rows], control, layout, log2fc_method=log2fc_method,
                        fdr_method=fdr_method, threads=threads)
    del results
    if de and fdr_method != "per_perturbation":
        layers["fdr"] = bh_fdr(layers["pvalue"], fdr_method)
    layers = {name: layers[name] for name, _ in layout.layers}  # the layout's order
    obs = pd.DataFrame({"n_cells": g.n_cells[rows].astype(np.int64)},
                       index=pd.Index(g.labels[rows], dtype=str))
    obs.index.name = None
    summary = ad.AnnData(X=layers["mean"].copy(), obs=obs, var=control.var(var_names), layers=layers)
    summary.uns["transpert"] = uns
    return summary


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

    summary = with_decoded_record(read_h5ad(path))
    validate_summary(summary, where=str(path))
    return summary


def with_decoded_record(summary):
    """``summary`` with ``uns["transpert"]`` (the summary's record, stored as JSON text by
    :func:`write_summary`) back as a dict, in place; returned for chaining."""
    meta = summary.uns.get("transpert")
    if isinstance(meta, str):
        summary.uns["transpert"] = json.loads(meta)
    return summary


@contextlib.contextmanager
def summary_on_disk(path, layers=None):
    """A summary file opened with its dense layers left on disk (h5py datasets, read by rows
    while the block is open; :func:`transpert._h5files.layers_on_disk`) and ``uns["transpert"]``
    back as a dict, as :func:`read_summary` gives it. Layers keep the file's scales (log1p
    ``mean``/``delta``, log2FC, p-values)."""
    from transpert._h5files import layers_on_disk

    with layers_on_disk(path, layers) as summary:
        yield with_decoded_record(summary)


def read_summary_obs(path):
    """(obs, number of genes) of a summary file, without reading its layers."""
    import h5py
    from anndata.io import read_elem

    with h5py.File(path, "r") as f:
        return read_elem(f["obs"]), int(f["var"][f["var"].attrs["_index"]].shape[0])


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
