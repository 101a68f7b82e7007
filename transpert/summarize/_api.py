"""``summarize``: a dataset's cells -> its summary profile (pseudo-bulk + DE per perturbation)."""

from __future__ import annotations

import logging

import numpy as np

from transpert._errors import TranspertInputError
from transpert._parallel import resolve_threads
from transpert.data.schema import CONTROL_LABEL, MIN_CELLS, PERT_COL
from transpert.summarize._effects import FDR_METHODS, LOG2FC_METHODS
from transpert.summarize._checked_stream import pseudobulk_checked_stream
from transpert.summarize._engine import (BACKENDS, compute_in_memory, compute_streamed, parse_memory,
                                         streamed_chunk_rows)
from transpert.summarize._groups import make_groups
from transpert.summarize._profile import build_profile, file_checksum

logger = logging.getLogger(__name__)


def summarize(cells, *, pert_col: str = PERT_COL, control: str = CONTROL_LABEL,
              reference: str | None = None, threads: int | None = None, memory_budget=None,
              fdr: str = "per_perturbation", log2fc: str = "exact", show_progress: bool | None = None,
              de: bool = True, backend: str = "threads", continuity: bool = True,
              checksum: bool = True, chunk_rows: int | None = None, scratch_dir=None,
              scale: str | None = None, min_cells: int = MIN_CELLS, scheduler=None,
              keep_float64: bool = False, out=None):
    """Summary profile of a dataset: per-perturbation pseudo-bulk and Wilcoxon DE vs control.

    ``cells``: an AnnData in memory (computed in place, nothing copied but what must be), or a
    path, manifest name, backed AnnData or :class:`transpert.data.CellSource` (streamed from
    disk in row chunks; memory bounded by ``memory_budget``, e.g. ``"2GB"``, default 2 GiB).
    Scale: raw counts are normalised on the way (median library size, log1p, as
    :func:`transpert.data.normalize_log1p`); log1p values (see CONTRACTS.md) are used as they
    are. Every statistic is on the log1p scale except the ``counts_*`` layers.

    ``reference``: None (the control group), ``"rest"`` (one-vs-rest) or another group label;
    the reference group is left out of obs. ``fdr``: ``"per_perturbation"`` (BH over each
    perturbation's genes, cell-eval 0.8.2) or ``"table"`` (BH over all of them, challenge-era).
    ``log2fc``: ``"exact"`` (METRICS.md) or ``"clipped"`` (pdex 0.1.27: x/0 -> 20, 0/y -> 1/20, 0/0 -> 1).
    ``de=False`` computes only the pseudo-bulk. ``threads``: cores (None = all available);
    ``backend``: ``"threads"`` (numba threads), ``"joblib"`` (``threads`` worker processes, one
    gene block per job) or ``"dask"`` (joblib's dask backend: needs a ``distributed.Client``).
    The rank-sum test is scipy's ``mannwhitneyu(x_pert, x_ref, method="asymptotic",
    use_continuity=continuity)``: U of the perturbation group, two-sided p, tie-corrected.
    Results are identical for any ``threads``, ``backend``, ``chunk_rows`` and in-memory vs
    streamed input.

    ``keep_float64`` (streamed input): a float64 file is normalised and ranked in float64, as
    scanpy and the reference scorers do, instead of float32 (twice the memory per entry).

    ``scale`` (in-memory AnnData only): ``"log1p"`` or ``"counts"`` when the caller already
    knows it, skipping :func:`transpert.data.detect_scale` (one parallel pass over the stored
    values, ~0.2-0.6 s at VCC size); None detects it.

    ``min_cells``: perturbations with fewer cells (default 3) are kept but flagged in
    ``obs["few_cells"]`` and named in a warning: their DE calls rest on one or two cells.

    ``scheduler`` (a file's cells only): compute on a ``dask.distributed`` cluster, whose
    workers read their own rows from the file (the path must be on storage they share): a
    scheduler address (``"tcp://host:8786"``), ``"local:N"`` (a LocalCluster of N worker
    processes, ``threads`` threads each, started and closed here) or a ``distributed.Client``.
    Needs ``pip install 'transpert[dask]'``; the numbers are those of the single-machine engine
    (see :mod:`transpert.summarize._distributed`); ``memory_budget`` is then per worker task.

    ``out``: an h5ad path: the summary is written there block of perturbation rows by block as
    its rows are ready, never whole in memory, and the path is returned (read it with
    :func:`read_summary`, or its layers one at a time with h5py / ``anndata.io.read_elem``). The
    file equals :func:`write_summary` of the summary returned without ``out``, layer by layer, bit
    for bit. On one machine the engine's per-group results (44 bytes per perturbation and gene)
    are then all the summary costs, instead of those and the summary's ~11 layers and their copy
    for writing; on a cluster (``scheduler``) the driver holds the control group's statistics
    and one shard's results at a time, not every perturbation's. With ``fdr="table"`` (BH over
    the whole table) the p-values are read back at the end, 16 bytes per perturbation and gene.

    Returns an AnnData (see :mod:`transpert.summarize._profile` for the layout), or the path
    ``out`` as a :class:`pathlib.Path`.

    Examples
    --------
    >>> from transpert.summarize import summarize
    >>> summary = summarize("papalexi_thp1", threads=2)  # doctest: +SKIP
    >>> summary.layers["fdr"].shape  # perturbations x genes  # doctest: +SKIP
    (25, 299)
    >>> summarize("cells.h5ad", out="summary.h5ad", scheduler="local:2")  # doctest: +SKIP
    PosixPath('summary.h5ad')
    """
    import anndata as ad

    if fdr not in FDR_METHODS:
        raise TranspertInputError(f"fdr must be one of {FDR_METHODS}, got {fdr!r}")
    if log2fc not in LOG2FC_METHODS:
        raise TranspertInputError(f"log2fc must be one of {LOG2FC_METHODS}, got {log2fc!r}")
    if backend not in BACKENDS:
        raise TranspertInputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    parse_memory(memory_budget)
    if isinstance(min_cells, bool) or not isinstance(min_cells, (int, np.integer)) or min_cells < 1:
        raise TranspertInputError(f"min_cells must be a whole number >= 1, got {min_cells!r}")
    opts = dict(threads=threads, memory_budget=memory_budget, backend=backend, de=de,
                continuity=continuity, show_progress=show_progress)
    if scheduler is not None and isinstance(cells, ad.AnnData) and not cells.isbacked:
        raise TranspertInputError("scheduler: distributed summaries read the cells from a file on "
                                  "shared storage; pass its path, not an AnnData in memory")
    sink = None  # the summary file's writer when the results go there as they come (a cluster's)
    if isinstance(cells, ad.AnnData) and not cells.isbacked:
        groups = make_groups(cells.obs, pert_col, control, reference)
        acc = None
        if scale is None and _float_values(cells.X):
            # scale detection, the canonical check and the pseudo-bulk in one read of the values
            acc = compute_in_memory(cells.X, None, groups, check_scale=True, **opts)
            normalization = dict(_LOG1P_RECORD)
        if acc is None:
            X, raw, normalization = _in_memory_matrix(cells.X, "counts" if scale is None and
                                                      _float_values(cells.X) else scale)
            acc = compute_in_memory(X, raw, groups, **opts)
        var_names = cells.var_names
        info = acc.info
        source = {"source": "AnnData (in memory)", "checksum": None}
    else:
        from transpert.data import open_cells
        from transpert.data.schema import CONTROL_LABEL, PERT_COL

        # A file is mapped onto the canonical schema when it is opened: the user's column and
        # control label go into that mapping, and the groups are then read from the canonical
        # names (a CellSource the caller opened is already canonical).
        mapping = {}
        if not hasattr(cells, "iter_chunks"):
            if pert_col != PERT_COL:
                mapping["pert_col"] = pert_col
            if control != CONTROL_LABEL:
                mapping["control_label"] = control
        source_cells = open_cells(cells, schema=mapping or None)
        try:
            label = str(source_cells.path) if source_cells.path is not None else source_cells.name
            canonical_ref = CONTROL_LABEL if (mapping and reference == control) else reference
            groups = make_groups(source_cells.obs, PERT_COL if mapping else pert_col,
                                 CONTROL_LABEL if mapping else control, canonical_ref, label,
                                 shown=(pert_col, control))
            if scheduler is not None:
                sink = _file_sink(out, groups, source_cells.var_names, log2fc, fdr, min_cells, threads)
                acc, info, normalization, digest = _on_cluster(source_cells, groups, scheduler,
                                                               checksum, opts, sink)
            else:
                # the checksum is read in a thread beside the engine (hashlib releases the GIL;
                # the engine's file reads leave a core idle much of the time)
                with _Checksum(source_cells.path if checksum else None) as digest_of:
                    rows = streamed_chunk_rows(source_cells, chunk_rows, parse_memory(memory_budget))
                    pass_a = pseudobulk_checked_stream(source_cells, groups, rows, resolve_threads(threads),
                                                       de, show_progress)
                    acc = compute_streamed(source_cells, groups, chunk_rows=rows, pass_a=pass_a,
                                           scratch_dir=scratch_dir, keep_float64=keep_float64,
                                           **opts)
                    normalization = dict(source_cells.normalization())
                    digest = digest_of()
                info = acc.info
            var_names = source_cells.var_names
            source = {"source": label, "checksum": f"sha256:{digest}" if digest else None}
        finally:
            if source_cells is not cells:
                source_cells.close()
    from transpert import __version__

    ref_label = None if groups.ref < 0 else str(groups.labels[groups.ref])
    uns = {
        **source,
        "normalization": normalization,
        "pert_col": pert_col,
        "control": control,
        "reference": "rest" if groups.ref < 0 else ref_label,
        "reference_n_cells": int(groups.n_cells[groups.ref]) if groups.ref >= 0 else -1,
        "control_n_cells": int(groups.n_cells[groups.control]),
        "n_cells_unlabelled": int(np.sum(groups.codes < 0)),
        "version": __version__,
        "parameters": {"fdr": fdr, "log2fc": log2fc, "de": de, "continuity": continuity,
                       "test": "Mann-Whitney U, two-sided, asymptotic, tie-corrected",
                       "backend": backend, "memory_budget": parse_memory(memory_budget)},
        "engine": {k: (v if isinstance(v, (int, str)) else str(v)) for k, v in info.items()},
    }
    uns["min_cells"] = int(min_cells)
    if out is not None:
        if sink is None:  # the single-machine engine's accumulators, fed block of rows by block
            from transpert.summarize._profile_rows import ProfileLayout
            from transpert.summarize._writer import place_accumulators

            sink = _file_sink(out, groups, var_names, log2fc, fdr, min_cells, threads)
            with sink:
                sink.start(ProfileLayout(de=de, raw=acc.raw_sums is not None, f32=acc.sums32 is not None))
                place_accumulators(sink, acc)
            del acc
        with sink:
            warn_few_cells(sink.obs, min_cells, source["source"])
            return sink.finish(uns)
    summary = build_profile(acc, var_names, uns=uns, log2fc_method=log2fc, fdr_method=fdr, de=de,
                            threads=resolve_threads(threads))
    flag_few_cells(summary, min_cells, source["source"])
    return summary


def _file_sink(out, groups, var_names, log2fc: str, fdr: str, min_cells: int, threads):
    """The writer of a summary file at ``out`` (None: the summary is returned in memory)."""
    if out is None:
        return None
    from transpert.summarize._writer import SummaryFileSink

    return SummaryFileSink(out, groups, var_names, log2fc_method=log2fc, fdr_method=fdr,
                           min_cells=min_cells, threads=resolve_threads(threads))


def flag_few_cells(summary, min_cells: int, where: str) -> None:
    """``obs["few_cells"]``: True for perturbations with fewer than ``min_cells`` cells (a
    Wilcoxon call from one or two cells is not evidence); warns naming them."""
    summary.obs["few_cells"] = summary.obs["n_cells"].to_numpy() < min_cells
    warn_few_cells(summary.obs, min_cells, where)


def warn_few_cells(obs, min_cells: int, where: str) -> None:
    """The warning naming the perturbations of ``obs`` (``n_cells``) with too few cells."""
    few = obs["n_cells"].to_numpy() < min_cells
    if few.any():
        names = [f"{p} ({n})" for p, n in obs.loc[few, "n_cells"].items()]
        logger.warning(
            "%s: %d perturbation(s) with fewer than %d cells: %s%s; kept, flagged in "
            "obs['few_cells']: their DE calls rest on too few cells (--min-cells sets the minimum)",
            where, len(names), min_cells, ", ".join(names[:10]), " ..." if len(names) > 10 else "")


class _Checksum:
    """``file_checksum(path)`` computed in a background thread (None: no checksum)."""

    def __init__(self, path):
        self.path = path
        self._pool = self._future = None

    def __enter__(self):
        if self.path is not None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="transpert-checksum")
            self._future = self._pool.submit(file_checksum, self.path)
        return lambda: None if self._future is None else self._future.result()

    def __exit__(self, *exc):
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _on_cluster(cells, groups, scheduler, checksum: bool, opts: dict, file_sink=None):
    """(accumulators, engine facts, normalisation record, checksum or None) computed by a Dask
    cluster; the checksum is read by a worker too, alongside the statistics. With ``file_sink``
    the results go there as they come and no accumulators are returned (None)."""
    from transpert.summarize._distributed import AccumulatorSink, connect, summarize_on_cluster

    if cells.path is None:
        raise TranspertInputError("scheduler: distributed summaries read the cells from a file on "
                                  "shared storage; these cells are in memory")
    sink = file_sink if file_sink is not None else AccumulatorSink(groups, cells.n_vars)
    try:
        with connect(scheduler, opts["threads"]) as client:
            digest = client.submit(file_checksum, str(cells.path), pure=False) if checksum else None
            info, normalization = summarize_on_cluster(client, cells, groups, sink,
                                                       memory_budget=opts["memory_budget"], de=opts["de"],
                                                       continuity=opts["continuity"], threads=opts["threads"])
            digest = digest.result() if digest is not None else None
    except BaseException:
        if file_sink is not None:
            file_sink.abort()
        raise
    acc = sink.acc if file_sink is None else None
    if acc is not None:
        acc.info.update(info)
    return acc, info, normalization, digest


_LOG1P_RECORD = {"input_scale": "log1p", "method": "none (already log1p)"}


def _float_values(X) -> bool:
    """True for a float32/float64 matrix (its scale is checked within the pseudo-bulk pass)."""
    return X is not None and getattr(X, "dtype", None) in (np.float32, np.float64)


def _in_memory_matrix(X, scale=None):
    """(log1p matrix, raw counts or None, normalisation record) for an in-memory ``X``."""
    import scipy.sparse as sp

    from transpert.data import detect_scale, normalize_log1p

    if X is None:
        raise TranspertInputError("summarize: the AnnData has no X")
    if not sp.issparse(X):
        X = np.asarray(X)
    if scale is None:
        scale = detect_scale(X)
    elif scale not in ("counts", "log1p"):
        raise TranspertInputError(f"scale must be 'counts', 'log1p' or None, got {scale!r}")
    if scale == "counts":
        return normalize_log1p(X), X, {"input_scale": "counts",
                                       "method": "normalize_total(target_sum=median)+log1p"}
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float32)
    return X, None, dict(_LOG1P_RECORD)
