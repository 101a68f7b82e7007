"""Write a pseudo-bulk prediction as cells in a Virtual Cell Challenge format, one perturbation at
a time (memory holds the target's control cells and one perturbation's cells).

``format="log1p"``: log1p cells, the 2025 challenge's format, built by
:mod:`transpert.predict._cells` (how the cells are made so that the challenge's DE test recovers
the predicted DE genes); ``format="counts"``: integer raw counts, the 2026 challenge's, built by
:mod:`transpert.predict._counts`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from transpert._errors import TranspertInputError
from transpert._io import CSRRowWriter, atomic_path, write_h5ad_metadata
from transpert._progress import Progress
from transpert.data.tables import read_counts, read_gene_list
from transpert.data.schema import CONTROL_LABEL, PERT_COL
from transpert.predict._cells import REPORT_COLUMNS, iter_prediction_cells, recorded_blocks

logger = logging.getLogger("transpert.predict")

#: largest value written: cell-eval requires log1p values in [0, 15)
#: the challenge's limit on the number of cells in a submission
CHALLENGE_MAX_CELLS = 100_000
#: what ``cells=`` accepts (see :func:`write_prediction`)
CELLS = ("quantile", "resample", "mean")
#: what ``format=`` accepts: log1p cells (2025 challenge) or raw counts (2026)
FORMATS = ("log1p", "counts")


def _control_matrix(target_controls, genes: list[str], pert_col: str, control: str,
                    target_sum: float | None) -> sp.csr_matrix:
    """Control cells as log1p CSR in ``genes`` order (normalised here if raw counts), a copy of its
    own: float32 when its values are float32 ones (raw counts normalised, as
    :func:`~transpert.data.normalize_log1p` gives them; log1p cells stored float32), else float64.
    The cells built from it are float64 (:class:`~transpert.predict._cells._ControlSampler`), so
    the file written is the same either way; float32 halves the copy (0.6 instead of 0.9 GB for
    H1's 38,176 training controls) and the sampler's sorted copy of it."""
    import anndata as ad

    if not isinstance(target_controls, ad.AnnData):
        raise TranspertInputError(f"target_controls must be an AnnData of control cells, got {type(target_controls).__name__}")
    adata = target_controls
    from transpert.data import detect_scale

    if target_sum is None and pert_col in adata.obs.columns and \
            (adata.obs[pert_col].astype(str) != control).any() and detect_scale(adata.X) == "counts":
        # a whole training file: normalise to ITS median library size, as the summaries (and
        # cell-eval, for the baseline) do, not to the control cells' own median; otherwise the
        # written controls and the predicted means would be on different scales
        totals = np.asarray(adata.X.sum(axis=1)).ravel()
        target_sum = float(np.median(totals if sp.issparse(adata.X) else totals[totals > 0]))
    if pert_col in adata.obs.columns:
        labels = adata.obs[pert_col].astype(str).to_numpy()
        if (labels != control).any():
            if not (labels == control).any():
                raise TranspertInputError(f"target_controls: no cell has {pert_col} == {control!r}")
            adata = adata[labels == control]
    if adata.n_obs == 0:
        raise TranspertInputError("target_controls: no control cells")
    missing = pd.Index(genes).difference(adata.var_names)
    if len(missing):
        raise TranspertInputError(f"target_controls: {len(missing)} genes of the gene list are not measured "
                                  f"(e.g. {list(missing[:3])})")
    x = adata.X
    x = sp.csr_matrix(x) if sp.issparse(x) else sp.csr_matrix(np.asarray(x))
    if detect_scale(x) == "counts":
        logger.info("target controls are raw counts: normalising to %s and log1p",
                    "the controls' median library size" if target_sum is None else f"{target_sum:g} per cell")
        x = _normalised(x, target_sum)
    else:  # log1p already: float32 values stay float32, anything else is made float64
        x = sp.csr_matrix((x.data.astype(np.float32 if x.dtype == np.float32 else np.float64, copy=True),
                           _index_copy(x.indices, x.shape), x.indptr.copy()), shape=x.shape)
    # genes chosen after normalising: library sizes are over every gene of the file
    columns = adata.var_names.get_indexer(genes)
    if not np.array_equal(columns, np.arange(x.shape[1])):  # the file's genes in its order: no copy
        x = sp.csr_matrix(x[:, columns])
    x.sort_indices()
    x.eliminate_zeros()
    return x


def _normalised(x: sp.csr_matrix, target_sum: float | None, block: int = 4096) -> sp.csr_matrix:
    """Raw counts (CSR, left as they are) to log1p of counts normalised to ``target_sum`` (None:
    the median library size), ``block`` cells at a time: float32 CSR with indices of its own, the
    same values as ``normalize_log1p(x.astype(float64), target_sum=target_sum)`` (float64
    arithmetic, float32 values), without a float64 copy of the whole matrix."""
    from transpert.data.normalize import default_include_zero_cells, median_library_size, normalize_log1p

    n = x.shape[0]
    sizes = np.empty(n)
    for a in range(0, n, block):  # each cell's total on its own: by blocks as on the whole
        sizes[a:a + block] = library_sizes_of_rows(x[a:a + block])
    if target_sum is None:
        target_sum = median_library_size(sizes, default_include_zero_cells(x))
    indptr = x.indptr - x.indptr[0]
    data = np.empty(indptr[-1], dtype=np.float32)
    for a in range(0, n, block):
        b = min(a + block, n)
        rows = normalize_log1p(x[a:b].astype(np.float64), library_sizes=sizes[a:b], target_sum=target_sum,
                               check=False)
        data[indptr[a]:indptr[b]] = rows.data
    return sp.csr_matrix((data, _index_copy(x.indices[x.indptr[0]:x.indptr[-1]], x.shape), indptr),
                         shape=x.shape)


def _index_copy(indices: np.ndarray, shape) -> np.ndarray:
    """A copy of CSR column indices, int32 when every index and the count fit (as the written
    file stores them): half the bytes of int64 ones."""
    fits = max(shape[1], indices.size) < np.iinfo(np.int32).max
    return indices.astype(np.int32 if fits else indices.dtype, copy=True)


def library_sizes_of_rows(rows: sp.csr_matrix) -> np.ndarray:
    """Per-cell totals of raw-count rows as ``library_sizes_of`` gives them for the rows made
    float64 (float64 sums)."""
    from transpert.data.normalize import library_sizes_of

    return library_sizes_of(rows.astype(np.float64))


def _cap(n_cells: np.ndarray, n_controls: int, max_cells: int | None) -> tuple[np.ndarray, int, float]:
    """Scale the per-perturbation and control counts down proportionally to fit ``max_cells``."""
    total = int(n_cells.sum()) + n_controls
    if max_cells is None or total <= max_cells:
        return n_cells, n_controls, 1.0
    factor = max_cells / total
    scaled = np.maximum(1, np.floor(n_cells * factor)).astype(np.int64)
    ctrl = max(1, int(np.floor(n_controls * factor)))
    if int(scaled.sum()) + ctrl > max_cells:
        raise TranspertInputError(f"max_cells={max_cells} is too small for {len(n_cells)} perturbations "
                                  "and the controls (at least one cell each)")
    return scaled, ctrl, factor


def write_prediction(pseudobulk_prediction, target_controls, counts, genes, out_path, *,
                     pert_col: str = PERT_COL, control: str = CONTROL_LABEL,
                     counts_col: str = "n_cells", max_cells: int | None | str = "auto",
                     deg_threshold: float = 0.5, min_abs_delta: float = 0.0, cells: str | None = None,
                     move: str = "pseudobulk", seed: int = 0, target_sum: float | None = None,
                     show_progress: bool | None = False, format: str = "log1p",
                     threads: int | None = None):
    """Write a challenge-format prediction h5ad from a pseudo-bulk prediction; returns it, opened
    backed (read-only: obs, var and uns in memory, X on disk).

    ``format="log1p"`` (default): log1p cells, the 2025 challenge's format (module docstring).
    ``format="counts"``: integer raw UMI counts, the 2026 challenge's (cell-eval2 ``vcc2026``):
    built from the target's raw control cells so that each perturbation's pseudo-bulk is the
    predicted one and the rank-sum test on CPM calls the predicted DE genes
    (:mod:`transpert.predict._counts` explains how); ``cells``/``move`` do not apply, the
    control cells are written raw, ``counts`` may be None (every predicted perturbation, 400
    cells each) or lack the ``n_cells`` column (400 each), and no cell exceeds 1e6 counts.

    The cells are built one perturbation at a time and appended to the file, so memory holds the
    target's control cells and one perturbation's cells, never the whole output.

    Parameters
    ----------
    pseudobulk_prediction : AnnData from a predictor's ``predict`` (obs = perturbations, var =
        genes, layers ``mean``/``delta`` on the log1p scale, optional ``deg_probability``).
    target_controls : AnnData of the target line's control cells (raw counts, normalised here to
        ``target_sum`` or their median library size, or log1p); other cells are ignored when
        ``obs[pert_col]`` is present. Or the path (or manifest name) of the target's cells, e.g.
        its training file: its control cells are read (the rest is not loaded) and, for raw
        counts without ``target_sum``, normalised to the whole file's median library size, as
        its summary was.
    counts : ``target_gene,n_cells`` CSV path or DataFrame: the cells to write per perturbation
        (a row for the control label is ignored: all control cells are written); with
        ``format="counts"`` also None or without ``n_cells`` (400 cells each).
    genes : gene order of the output (list or header-less CSV such as ``gene_names.csv``).
    out_path : the .h5ad written (atomically).
    pert_col, control, counts_col : the perturbation column (of ``obs`` and of ``counts``), the
        control label, the cell-count column of ``counts``.
    target_sum : library size the log1p controls are normalised to (None: their median, or the
        whole training file's when ``target_controls`` is a path); unused with
        ``format="counts"``, whose controls stay raw.
    format : ``"log1p"`` (the 2025 scorer, cell-eval) or ``"counts"`` (integer raw UMI counts,
        the 2026 scorer, :func:`transpert.evaluate.vcc2026.evaluate_vcc2026`).
    max_cells : cap on all cells written, controls included; when the request is larger every
        count is scaled down by the same factor, with a warning. ``"auto"``: the 2025
        challenge's 100,000 for log1p, no cap for counts (the 2026 task asks 300 x 400 cells
        plus the controls); None: no cap.
    deg_threshold, min_abs_delta : which genes are moved when the prediction has no
        ``obs["n_de_genes"]`` (see the module docstring).
    cells : ``"quantile"`` or ``"resample"``: how control cells are drawn (module docstring);
        ``"mean"``: every cell of a perturbation is its predicted pseudo-bulk, exactly as
        ``cell-eval baseline`` writes the cell-mean baseline (no DE call is made then); ``None``
        (default): what the prediction asks for in ``uns["transpert_prediction"]["cells"]`` (the
        ``cell-mean`` baseline asks for ``"mean"``, so that written it *is* the challenge's
        baseline and scores exactly 0 against it), else ``"quantile"``.
    move : ``"pseudobulk"`` (default) or ``"de"``: ``"de"`` moves only the genes predicted DE, so the DE test recovers the
        predicted DEG set; ``"pseudobulk"`` also brings every other gene to its predicted mean,
        concentrating that shift on a few cells so the gene stays non-significant (the written
        pseudo-bulk is the prediction, for MAE and PDS, and the DE test still sees the DEG call,
        for DES; module docstring); ``"all"`` moves every gene in every cell (pseudo-bulk exact,
        but which genes come out significant then depends on the size of their shifts, not on a
        DEG call).
    seed : seeds the sampling of control cells; same inputs and seed give the same file.
    show_progress : a progress bar over the cells written (None: on a terminal).
    threads : how many perturbations are built at once with ``format="counts"`` (None: every
        core).

    Returns
    -------
    anndata.AnnData
        The written file, opened backed read-only. ``X``: log1p float32 CSR in [0, 15)
        (``format="counts"``: integer raw counts stored as float32, at most 1e6 per cell), indices
        sorted, no stored zeros; ``obs[pert_col]``, control cells last; ``var_names`` = ``genes``;
        ``uns["transpert_cells"]`` records the settings and a per-perturbation table of cells
        written and genes shifted.

    Examples
    --------
    >>> from transpert.predict import write_prediction
    >>> cells = write_prediction(prediction, "h1_train.h5ad", "pert_counts.csv",
    ...                          "gene_names.csv", "prediction.h5ad")  # doctest: +SKIP

    Raw counts for the 2026 scorer (400 cells per predicted perturbation when no cell counts
    are given), then scored:

    >>> write_prediction(prediction, "h1_train.h5ad", None, "gene_names.csv",
    ...                  "prediction_counts.h5ad", format="counts")  # doctest: +SKIP
    >>> from transpert.evaluate.vcc2026 import evaluate_vcc2026
    >>> evaluate_vcc2026("prediction_counts.h5ad", "real_counts.h5ad",
    ...                  anchor=True).avg_score  # doctest: +SKIP
    """
    import anndata as ad
    import h5py

    from transpert.summarize._contract import check_perturbations

    if not (hasattr(pseudobulk_prediction, "layers") and "mean" in pseudobulk_prediction.layers
            and "delta" in pseudobulk_prediction.layers):
        raise TranspertInputError("pseudobulk_prediction: needs layers 'mean' and 'delta' (a predictor's output)")
    check_perturbations(list(pseudobulk_prediction.obs_names), control=control)
    if format not in FORMATS:
        raise TranspertInputError(f"format must be one of {FORMATS}, got {format!r}")
    if max_cells == "auto":
        max_cells = CHALLENGE_MAX_CELLS if format == "log1p" else None
    genes = read_gene_list(genes)
    if format == "counts":
        from transpert.predict._counts import with_default_cells

        counts = with_default_cells(counts, pseudobulk_prediction, pert_col, counts_col, control)
    table = read_counts(counts, pert_col=pert_col, counts_col=counts_col)
    if (table[pert_col] == control).any():
        logger.info("counts table lists the control %r: ignored, every control cell is written", control)
        table = table[table[pert_col] != control].reset_index(drop=True)
    absent = ~table[pert_col].isin(pseudobulk_prediction.obs_names)
    if absent.any():
        raise TranspertInputError(f"counts table asks for {int(absent.sum())} perturbations the prediction "
                                  f"does not have (e.g. {table[pert_col][absent].iloc[0]!r})")
    shared = pd.Index(genes).intersection(pseudobulk_prediction.var_names)
    if len(shared) == 0:
        raise TranspertInputError("the prediction shares no gene with the gene list")
    if len(shared) < len(genes):
        logger.warning("%d of %d genes of the gene list are not predicted; written as unchanged controls",
                       len(genes) - len(shared), len(genes))
    if isinstance(target_controls, (str, os.PathLike)):
        from transpert.data.controls import target_controls as controls_of

        target_controls, file_sum = controls_of(
            target_controls, whole_file_median=target_sum is None, pert_col=pert_col,
            control=control, what=f"target controls ({target_controls})")
        target_sum = file_sum if target_sum is None else target_sum
    if format == "counts":
        from transpert.predict._counts import raw_count_controls, select_controls

        controls = raw_count_controls(select_controls(target_controls, genes, pert_col, control))
    else:
        controls = _control_matrix(target_controls, genes, pert_col, control, target_sum)
    n_cells, n_ctrl, factor = _cap(table[counts_col].to_numpy(), controls.shape[0], max_cells)
    if factor < 1.0:
        logger.warning("requested %d cells (perturbations %d + controls %d) exceed the cap of %d: every "
                       "count scaled by %.4f to %d cells", int(table[counts_col].sum()) + controls.shape[0],
                       int(table[counts_col].sum()), controls.shape[0], max_cells, factor,
                       int(n_cells.sum()) + n_ctrl)
    if cells is None and format == "counts":
        cells = "quantile"  # unused: the counts cells are drawn by library size
    if cells is None:
        wanted = (pseudobulk_prediction.uns.get("transpert_prediction") or {}).get("cells")
        cells = str(wanted) if wanted else "quantile"
    if cells not in CELLS:
        raise TranspertInputError(f"cells must be one of {CELLS}, got {cells!r}")
    rng = np.random.default_rng(seed)
    # the control cells written last (all, or a sample under the cap), made when they are written
    kept = np.sort(rng.choice(controls.shape[0], n_ctrl, replace=False)) if n_ctrl < controls.shape[0] else None
    scaled = table.assign(**{counts_col: n_cells})
    n_total = int(n_cells.sum()) + (controls.shape[0] if kept is None else kept.size)
    labels, report = [], []
    if format == "counts":
        from transpert.predict._counts import iter_count_cells

        cells = move = "counts"
        built = iter_count_cells(pseudobulk_prediction, controls, genes, scaled, pert_col=pert_col,
                                 counts_col=counts_col, deg_threshold=deg_threshold,
                                 min_abs_delta=min_abs_delta, seed=seed, threads=threads)
    else:
        built = iter_prediction_cells(
            pseudobulk_prediction, controls, genes, scaled, pert_col=pert_col, counts_col=counts_col,
            deg_threshold=deg_threshold, min_abs_delta=min_abs_delta, cells=cells, move=move, rng=rng)
    blocks = recorded_blocks(built, labels, report)
    # one perturbation's cells in memory at a time, appended to the file as they are built
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as f:
        X = CSRRowWriter(f, (n_total, len(genes)), np.float32)
        with Progress(n_total, f"writing {Path(out_path).name}", unit="cells",
                      show=show_progress) as progress:
            for block in blocks:
                X.append(block)
                progress.update(block.shape[0])
            controls_out = sp.csr_matrix(controls if kept is None else controls[kept], dtype=np.float32)
            controls_out.sort_indices()
            controls_out.eliminate_zeros()
            X.append(controls_out)
            labels.extend([control] * controls_out.shape[0])
            progress.update(controls_out.shape[0])
        X.finish()
        report = pd.DataFrame(report, columns=[pert_col, *REPORT_COLUMNS])
        report["n_cells_requested"] = table[counts_col].to_numpy()
        uns = pseudobulk_prediction.uns
        method = (uns.get("transpert_prediction") or {}).get("method", "unknown")
        info = {
            "method": str(method), "seed": int(seed), "scale": format, "deg_threshold": float(deg_threshold),
            "min_abs_delta": float(min_abs_delta), "cells": cells, "move": move,
            "max_cells": -1 if max_cells is None else int(max_cells),
            "cap_factor": float(factor), "n_control_cells": int(controls_out.shape[0]),
            "per_perturbation": report.astype({pert_col: str}),
        }
        obs = pd.DataFrame({pert_col: pd.Categorical(labels)}, index=[f"cell{i}" for i in range(len(labels))])
        write_h5ad_metadata(f, obs, pd.DataFrame(index=pd.Index(genes)), {"transpert_cells": info})
    logger.info("wrote %s: %d cells (%d perturbations + %d controls) x %d genes", out_path, n_total,
                len(table), controls_out.shape[0], len(genes))
    return ad.read_h5ad(out_path, backed="r")
