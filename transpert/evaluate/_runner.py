"""The one runner: validate inputs, build pseudo-bulks and DE once per file, run the metrics.

``evaluate(real, pred, suite=...)`` reproduces ``cell-eval run`` of the suite's version (0.6.6 +
pdex 0.1.27 for ``vcc2025``, the default; 0.8.2 for ``cell-eval-0.8.2``) for the registered metrics:
``results`` (one row per perturbation, cell-eval's columns), ``agg_results`` (polars
``describe`` layout) and, with a baseline, ``score`` (``cell-eval score``).

Each file is reduced to its summary in a stream: opened backed, its values validated in one
pass (which also fixes the scale and the library sizes), then read in row chunks by the
summaries engine within a memory budget (pass A: pseudo-bulks; pass B: rank sums). Only one
file is being read at a time and no cell matrix is ever held whole; what stays in memory is
the summary (perturbations x genes). All files are opened and their genes and labels checked
before any is read, so a mismatch fails at once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError
from transpert._parallel import numba_threads
from transpert.evaluate._de import arrays_from_summary, arrays_from_table
from transpert.evaluate._inputs import Cells, Opened, check_control, check_pair, open_input, validate_values
from transpert.evaluate._metrics import PROFILES, TIE_ORDERS
from transpert.evaluate._registry import REGISTRY, BulkPair, DEPair
from transpert.evaluate._score import aggregate, column_mean, score
from transpert.evaluate._suites import Suite, cell_eval_suite as get_suite
from transpert.data.schema import CONTROL_LABEL, PERT_COL

logger = logging.getLogger("transpert.evaluate")


@dataclass
class Prepared:
    """One file reduced to what the metrics need: pseudo-bulks and (lazily) DE."""

    cells: Cells | None
    groups: np.ndarray  # sorted labels, control included
    means: np.ndarray  # (len(groups), G) float32, log1p scale
    n_cells: np.ndarray  # cells per group
    summary: object = None  # DE summary profile (AnnData) once computed
    de_table: pd.DataFrame | None = None  # or a precomputed cell-eval/pdex DE table
    de_arrays: tuple | None = None
    suite: str | None = None  # the suite whose DE choices the summary was built with


def reduce_input(opened: Opened, *, pert_col: str, control: str, threads: int | None,
                 de: bool = True, memory_budget=None, chunk_rows: int | None = None,
                 suite: str | Suite | None = None) -> Prepared:
    """Validate one opened file and stream it through the summaries engine (closes nothing).

    Pseudo-bulks (log1p scale, float64 sums in row order rounded to float32: what cell-eval's
    polars mean over the densified float32 matrix gives) and, with ``de``, the DE summary with
    the ``suite``'s fold changes and FDR (see :mod:`transpert.evaluate._suites`).
    """
    from transpert.summarize import summarize

    suite = get_suite(suite)
    validate_values(opened)
    cells = opened.cells
    summary = summarize(opened.source, pert_col=PERT_COL, control=control, threads=threads,
                        memory_budget=memory_budget, de=de, checksum=False, chunk_rows=chunk_rows,
                        show_progress=False, fdr=suite.fdr, log2fc=suite.log2fc,
                        keep_float64=True)  # the scorers rank a float64 file in float64
    groups = np.array(sorted(set(np.unique(cells.labels))))
    rows = pd.Index(summary.obs_names.astype(str)).get_indexer(groups)
    means = np.empty((len(groups), len(cells.var_names)), dtype=np.float32)
    is_ctrl = groups == control
    means[is_ctrl] = summary.var["control_mean"].to_numpy(dtype=np.float64).astype(np.float32)
    means[~is_ctrl] = np.asarray(summary.layers["mean"])[rows[~is_ctrl]].astype(np.float32)
    n_cells = pd.Series(cells.labels).value_counts().reindex(groups).to_numpy()
    return Prepared(cells=cells, groups=groups, means=means, n_cells=n_cells,
                    summary=summary if de else None, suite=suite.name)


def prepare(source, which: str, *, pert_col: str = PERT_COL, control: str = CONTROL_LABEL,
            threads: int | None = None, de: bool = True, memory_budget=None,
            against: Prepared | None = None, chunk_rows: int | None = None,
            suite: str | Suite | None = None) -> Prepared:
    """One file (h5ad path or AnnData, counts or log1p) reduced to pseudo-bulks and DE.

    Streamed (see the module docstring); log1p scale out. ``against``: a prepared real file
    whose genes and labels this one must match (checked before the file is read).
    ``memory_budget``: the summaries engine's budget (e.g. ``"1GB"``; default 2 GiB).
    ``suite``: whose DE choices to use (default ``"vcc2025"``; see :func:`evaluate`).
    """
    suite = get_suite(suite)
    opened = open_input(source, which, pert_col, control)
    try:
        if against is not None:
            check_pair(against.cells, opened.cells, control)
        else:
            check_control(opened.cells, control)
        return reduce_input(opened, pert_col=pert_col, control=control, threads=threads, de=de,
                            memory_budget=memory_budget, chunk_rows=chunk_rows, suite=suite)
    finally:
        opened.close()


def release(prep: Prepared) -> None:
    """Drop any cell matrix held in memory (streamed files hold none; kept for callers)."""
    if prep.cells is not None:
        prep.cells.X = None


def _de_arrays(prep: Prepared, labels, genes, *, pert_col, control, threads, name):
    if prep.de_arrays is None:
        if prep.de_table is not None:
            prep.de_arrays = arrays_from_table(prep.de_table, labels, genes, name)
        else:
            if prep.summary is None:
                raise TranspertInputError(
                    f"{name}: prepared without DE (de=False) but a DE metric was asked for; "
                    "prepare the file with de=True")
            prep.de_arrays = arrays_from_summary(prep.summary, labels, genes, name)
    return prep.de_arrays


@dataclass
class EvaluationResult:
    """What ``evaluate`` returns. ``results``/``defined``: per perturbation (``defined`` is
    False where cell-eval has a null: the metric has no value for that perturbation, as
    opposed to NaN). ``agg_results``: cell-eval's describe layout. ``score``: with a baseline."""

    profile: str
    metrics: tuple[str, ...]
    results: pd.DataFrame
    defined: pd.DataFrame
    agg_results: pd.DataFrame
    flags: pd.DataFrame
    bulk: BulkPair
    de: DEPair | None
    real: Prepared
    pred: Prepared
    score: pd.DataFrame | None = None
    baseline: "EvaluationResult | None" = None
    timings: dict = field(default_factory=dict)
    suite: str = "vcc2025"

    def means(self) -> dict[str, float]:
        """Mean of each results column (polars semantics: nulls skipped, NaN propagates)."""
        return {c: column_mean(self.results[c].to_numpy(dtype=np.float64), self.defined[c].to_numpy())
                for c in self.results.columns if c != "perturbation"}


def _flags(labels, de: DEPair | None, real: Prepared, pred: Prepared) -> pd.DataFrame:
    """Per-perturbation facts that explain nulls and NaNs instead of hiding them."""
    idx_r = pd.Index(real.groups).get_indexer(labels)
    idx_p = pd.Index(pred.groups).get_indexer(labels)
    out = pd.DataFrame({"perturbation": labels, "n_cells_real": real.n_cells[idx_r],
                        "n_cells_pred": pred.n_cells[idx_p]})
    if de is not None:
        n_real = de.real_sig.sum(axis=1)
        n_pred = de.pred_sig.sum(axis=1)
        n_genes = de.real_sig.shape[1]
        out["n_de_real"] = n_real
        out["n_de_pred"] = n_pred
        notes = []
        for r, p in zip(n_real, n_pred):
            f = []
            if r == 0:
                f.append("no real DE genes: overlap 0 by definition; pr_auc/roc_auc undefined (NaN); "
                         "de_spearman_lfc_sig, de_direction_match, de_sig_genes_recall null")
            elif r == 1:
                f.append("one real DE gene: de_spearman_lfc_sig NaN")
            if r == n_genes:
                f.append("every gene DE in real: pr_auc/roc_auc undefined (NaN)")
            if p == 0:
                f.append("no predicted DE genes")
            if p == n_genes:
                f.append("every gene DE in prediction (typical of constant cells)")
            notes.append("; ".join(f))
        out["flags"] = notes
    return out


def _run_metrics(names, bulk: BulkPair, de: DEPair | None):
    columns: dict[str, np.ndarray] = {}
    defined: dict[str, np.ndarray] = {}
    # cell-eval computes DE metrics first, then the AnnData metrics: that is its column order.
    ordered = [m for m in names if REGISTRY[m].kind == "de"] + \
              [m for m in names if REGISTRY[m].kind == "bulk"]
    for name in ordered:
        metric = REGISTRY[name]
        out = metric(de if metric.kind == "de" else bulk)
        for col, mv in out.items():
            columns[col] = mv.values
            defined[col] = mv.defined
    return columns, defined


def _resolve_metrics(profile: str, metrics) -> tuple[str, ...]:
    if metrics is not None:
        unknown = [m for m in metrics if m not in REGISTRY]
        if unknown:
            raise TranspertInputError(f"unknown metrics {unknown}; known: {sorted(REGISTRY)}")
        return tuple(metrics)
    if profile not in PROFILES:
        raise TranspertInputError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    return PROFILES[profile]


def _check_ties(ties: str) -> None:
    if ties not in TIE_ORDERS:
        raise TranspertInputError(f"ties must be one of {TIE_ORDERS}, got {ties!r}")


def evaluate_prepared(real: Prepared, pred: Prepared, *, profile: str = "vcc", metrics=None,
                      pert_col: str = PERT_COL, control: str = CONTROL_LABEL,
                      threads: int | None = None, ties: str = "gene",
                      suite: str | Suite | None = None) -> EvaluationResult:
    """Metrics for two prepared files (see :func:`evaluate`). ``suite`` None: the suite the
    real file was prepared with; files prepared under different suites are refused."""
    suite = get_suite(suite if suite is not None else real.suite)
    for prep, which in ((real, "real"), (pred, "pred")):
        if prep.summary is not None and prep.suite not in (None, suite.name):
            raise TranspertInputError(
                f"the {which} file was prepared under suite {prep.suite!r}, not {suite.name!r}; "
                "prepare both files with the suite you evaluate with")
    names = _resolve_metrics(profile, metrics)
    _check_ties(ties)
    t0 = time.perf_counter()
    if real.cells is not None and pred.cells is not None:
        labels_all = check_pair(real.cells, pred.cells, control)
    else:
        labels_all = real.groups
    labels = labels_all[labels_all != control]
    genes = real.cells.var_names.to_numpy() if real.cells is not None else None
    ri = pd.Index(real.groups).get_indexer(labels)
    pi = pd.Index(pred.groups).get_indexer(labels)
    rc = int(np.flatnonzero(real.groups == control)[0])
    pc = int(np.flatnonzero(pred.groups == control)[0])
    bulk = BulkPair(labels=labels, genes=genes, real_means=real.means[ri], pred_means=pred.means[pi],
                    real_control=real.means[rc], pred_control=pred.means[pc])
    de = None
    timings = {}
    if any(REGISTRY[m].kind == "de" for m in names):
        t = time.perf_counter()
        kw = dict(pert_col=pert_col, control=control, threads=threads)
        real_lfc, real_fdr = _de_arrays(real, labels, genes, name="real", **kw)
        pred_lfc, pred_fdr = _de_arrays(pred, labels, genes, name="pred", **kw)
        de = DEPair(labels, genes, real_lfc, real_fdr, pred_lfc, pred_fdr, ties=ties,
                    fdr_floor=suite.fdr_floor)
        timings["de_s"] = time.perf_counter() - t
    t = time.perf_counter()
    with numba_threads(threads):
        columns, defined = _run_metrics(names, bulk, de)
    timings["metrics_s"] = time.perf_counter() - t
    results = pd.DataFrame({"perturbation": labels, **columns})
    for col in ("de_nsig_counts_real", "de_nsig_counts_pred"):
        if col in results:
            results[col] = results[col].astype(np.int64)
    defined_df = pd.DataFrame({"perturbation": np.ones(len(labels), dtype=bool), **defined})
    agg = aggregate(results, defined_df)
    timings["total_s"] = time.perf_counter() - t0
    return EvaluationResult(profile=profile, metrics=names, results=results, defined=defined_df,
                            agg_results=agg, flags=_flags(labels, de, real, pred), bulk=bulk,
                            de=de, real=real, pred=pred, timings=timings, suite=suite.name)


def evaluate(real, pred, *, profile: str = "vcc", baseline=None, metrics=None,
             pert_col: str = PERT_COL, control: str = CONTROL_LABEL,
             threads: int | None = None, memory_budget=None, ties: str = "gene",
             suite: str | Suite | None = None) -> EvaluationResult:
    """Score a prediction against real cells exactly as the ``suite``'s scorer does.

    Parameters
    ----------
    real, pred, baseline
        h5ad paths or AnnData (not modified). Raw integer counts are normalised per file
        (median library size, log1p); fractional data must already be log1p, in [0, 15).
        The prediction must have the real file's genes in the same order, the same labels,
        and control cells. ``baseline`` (e.g. from :func:`build_baseline`) adds ``score``.
    profile
        ``"vcc"`` (mae, discrimination_score_l1, overlap_at_N) or ``"full"`` (every metric
        of cell-eval's full profile except pearson_edistance and clustering_agreement).
    metrics
        Explicit metric names instead of a profile.
    threads
        Cores for the DE engine and kernels (None: all available).
    memory_budget
        Memory the summaries engine may use per file (e.g. ``"1GB"``; None: its default, 2 GiB).
        Files are streamed from disk one at a time, never read whole.
    ties
        Order of significant genes tied in ``|log2FC|`` for the overlap/precision metrics:
        ``"gene"`` (file order, deterministic) or ``"polars"`` (cell-eval's own polars ranking,
        whose tie order depends on polars' thread count; see ``_metrics.ranked_significant``).
    suite
        Which scorer to reproduce (:data:`transpert.evaluate.SUITES`): ``"vcc2025"`` (default:
        the 2025 leaderboard, cell-eval 0.6.6 + pdex 0.1.27) or ``"cell-eval-0.8.2"``.

    Returns
    -------
    EvaluationResult
        Per-perturbation ``results`` and cell-eval's ``agg_results`` (log1p-scale metrics;
        overlap and precision on the Wilcoxon DE of each file against its own controls),
        ``flags``, the pseudo-bulks (``bulk``) and DE arrays (``de``), ``score`` with a
        baseline, and the ``suite`` it was scored under.

    Examples
    --------
    >>> from transpert.evaluate import evaluate, bootstrap_ci
    >>> result = evaluate("real.h5ad", "pred.h5ad", baseline="baseline.h5ad")  # doctest: +SKIP
    >>> result.score  # doctest: +SKIP
    >>> bootstrap_ci(result)  # doctest: +SKIP
    """
    suite = get_suite(suite)
    names = _resolve_metrics(profile, metrics)
    _check_ties(ties)
    kw = dict(pert_col=pert_col, control=control, threads=threads)
    reduce_kw = dict(kw, de=any(REGISTRY[m].kind == "de" for m in names),
                     memory_budget=memory_budget, suite=suite)
    opened: list[Opened] = []
    try:
        # Open everything and check genes and labels before reading any matrix.
        for source, which in ((real, "real"), (pred, "pred"), (baseline, "baseline")):
            if source is not None:
                opened.append(open_input(source, which, pert_col, control))
        check_control(opened[0].cells, control)
        for other in opened[1:]:
            check_pair(opened[0].cells, other.cells, control)
        # One file at a time, each closed as soon as it is reduced.
        prepared = []
        for o in opened:
            prepared.append(reduce_input(o, **reduce_kw))
            o.close()
    finally:
        for o in opened:
            o.close()
    real_p, pred_p = prepared[0], prepared[1]
    result = evaluate_prepared(real_p, pred_p, profile=profile, metrics=names, ties=ties,
                               suite=suite, **kw)
    if baseline is not None:
        result.baseline = evaluate_prepared(real_p, prepared[2], profile=profile, metrics=names,
                                            ties=ties, suite=suite, **kw)
        result.score = score(result.means(), result.baseline.means())
    return result
