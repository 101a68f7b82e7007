"""``evaluate_vcc2026``: cell-eval2 0.20.0's vcc2026 suite on a raw-count pair, with its score.

Inputs are raw counts (h5ad paths or AnnData). Outputs (``outdir``): ``results.csv`` and
``agg_results.csv`` in cell-eval2's layouts; with ``anchor=True`` the two reference points built
here from the real cells (``baseline_results.csv``, ``baseline_agg.csv``, ``anchor_splits.csv``,
``anchor_agg.csv``) and ``score.csv``; with ``real_bundle`` a directory written by
``cell-eval2 prep-real-bundle``, ``score.csv`` against its baseline and anchor. ``suite.json``
names the suite and its reference in every output folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pandas as pd

from transpert._errors import TranspertInputError
from transpert.data.schema import CONTROL_LABEL, PERT_COL
from transpert.evaluate.vcc2026._anchor import anchor_collector, replicate_anchor
from transpert.evaluate.vcc2026._baseline import baseline_side
from transpert.evaluate.vcc2026._bundle import (
    _means,
    check_real_matches,
    read_manifest,
    read_real_bundle,
)
from transpert.evaluate.vcc2026._config import REFERENCE, SUITE
from transpert.evaluate.vcc2026._flags import flags_table
from transpert.evaluate.vcc2026._run import (
    agg_table,
    metrics_from_sides,
    results_table,
    run_metrics,
    summarize_real,
)
from transpert.evaluate.vcc2026._score import score_table


@dataclass
class Vcc2026Result:
    """What :func:`evaluate_vcc2026` returns (every table in cell-eval2's layout).

    Attributes
    ----------
    results : DataFrame
        ``perturbation, metric, value``: one row per perturbation and per-perturbation metric
        (``results.csv``); NaN where cell-eval2 reports NaN.
    agg : DataFrame
        ``statistic`` (count, null_count, mean, std, min, max, median) x metric
        (``agg_results.csv``); ``expr_mse_unbiased_capped_norm`` has only its mean.
    baseline_results, baseline_agg : DataFrame or None
        The same two tables for the mean-response baseline (``anchor=True``).
    anchor_splits : DataFrame or None
        The replicate anchor's metrics per half split (``anchor=True``).
    anchor : DataFrame or None
        ``metric, replicate, replicate_sd, replicate_min, replicate_max``: the anchor *r*, the
        mean over the splits (``anchor=True``).
    score : DataFrame or None
        Per scored metric ``user`` (*u*), ``baseline`` (*b*), ``replicate`` (*r*),
        ``from_baseline`` and ``from_replicate`` (s = (u - b) / (r - b), clamped as cell-eval2
        does); last row ``avg_score``, the mean of ``from_replicate`` (``anchor=True`` or
        ``real_bundle``).
    anchor_values : DataFrame or None
        ``split_index, perturbation, metric, value``: the anchor's splits per perturbation
        (``anchor=True`` with ``per_perturbation_anchor=True``; for intervals).
    reference : tuple or None
        ``({metric: b}, {metric: r})``, the score's two reference points.
    flags : DataFrame
        Per perturbation, where a member is set by the real data's definition
        (:func:`~transpert.evaluate.vcc2026._flags.flags_table`).
    """

    results: pd.DataFrame
    agg: pd.DataFrame
    baseline_results: pd.DataFrame | None = None
    baseline_agg: pd.DataFrame | None = None
    anchor_splits: pd.DataFrame | None = None
    anchor: pd.DataFrame | None = None
    score: pd.DataFrame | None = None
    anchor_values: pd.DataFrame | None = None
    reference: tuple | None = None
    flags: pd.DataFrame | None = None

    @property
    def avg_score(self) -> float | None:
        """The anchored score (the mean of the six ``from_replicate`` values); None without
        reference points."""
        return None if self.score is None else float(self.score["from_replicate"].iloc[-1])

    def write(self, outdir) -> None:
        """Write every table present as CSV (``results.csv``, ``agg_results.csv``,
        ``baseline_results.csv``, ``baseline_agg.csv`` in cell-eval2's layouts;
        ``anchor_splits.csv``, ``anchor_agg.csv``, ``score.csv`` with a first ``suite`` column)
        and ``suite.json`` into ``outdir`` (created)."""
        os.makedirs(outdir, exist_ok=True)
        tables = {"results.csv": self.results, "agg_results.csv": self.agg,
                  "baseline_results.csv": self.baseline_results,
                  "baseline_agg.csv": self.baseline_agg, "anchor_splits.csv": self.anchor_splits,
                  "anchor_agg.csv": self.anchor, "score.csv": self.score}
        own = ("anchor_splits.csv", "anchor_agg.csv", "score.csv")  # transpert's layouts
        for name, table in tables.items():
            if table is not None:
                if name in own:
                    table = table.assign(suite=SUITE)[["suite", *table.columns]]
                table.to_csv(os.path.join(outdir, name), index=False)
        with open(os.path.join(outdir, "suite.json"), "w") as fh:
            json.dump({"suite": SUITE, "reference": REFERENCE}, fh, indent=1)


def open_real(real, pert_col: str, control: str, *, real_bundle=None, anchor: bool = False,
              chunk_rows: int | None = None, anchor_base_seed: int = 0, anchor_splits: int = 5):
    """The real side summarised once (:func:`summarize_real`), after the real bundle's checks
    (real data that is not the bundle's is refused before any work, as cell-eval2 score does).
    With ``anchor`` the replicate anchor's half splits are scored in the same pass."""
    if anchor and real_bundle is not None:
        raise TranspertInputError("--anchor and --real-bundle both supply the score's reference "
                                  "points; pass one")
    if real_bundle is not None:
        manifest, anchor_meta = read_manifest(real_bundle)
        check_real_matches(real_bundle, manifest, anchor_meta, real, pert_col, control)

    def anchor_hooks(opened, scanned):  # the anchor's half splits, scored in the one pass
        return anchor_collector(opened, scanned, pert_col, anchor_base_seed, anchor_splits)

    # only the baseline draws from the control's raw counts (300 MB at 6,000 cells): kept for it
    return summarize_real(real, pert_col, control, chunk_rows, anchor_hooks if anchor else None,
                          keep_counts=anchor)


def add_reference_points(out: Vcc2026Result, real_summary, *, anchor: bool, real_bundle,
                         baseline_seed: int = 0, anchor_base_seed: int = 0,
                         anchor_splits: int = 5, chunk_rows: int | None = None,
                         per_perturbation_anchor: bool = False,
                         reference: Vcc2026Result | None = None) -> None:
    """Fill ``out``'s baseline, anchor, ``reference`` and ``score`` (``anchor``: built from the
    real cells; ``real_bundle``: read; ``reference``: taken from another result on the same
    real data, so several predictions share one baseline and one anchor)."""
    if reference is not None:
        for name in ("baseline_results", "baseline_agg", "anchor_splits", "anchor",
                     "anchor_values", "reference"):
            setattr(out, name, getattr(reference, name))
    elif anchor:
        out.baseline_results = results_table(
            metrics_from_sides(real_summary, baseline_side(real_summary, baseline_seed)))
        out.baseline_agg = agg_table(out.baseline_results)
        if per_perturbation_anchor:
            out.anchor_splits, out.anchor, out.anchor_values = replicate_anchor(
                real_summary, anchor_base_seed, anchor_splits, chunk_rows, with_values=True)
        else:
            out.anchor_splits, out.anchor = replicate_anchor(real_summary, anchor_base_seed,
                                                             anchor_splits, chunk_rows)
        out.reference = (_means(out.baseline_agg),
                         dict(zip(out.anchor.metric, out.anchor.replicate)))
    elif real_bundle is not None:
        out.reference = read_real_bundle(real_bundle)
    if out.reference is not None:
        out.score = score_table(_means(out.agg), *out.reference)


def evaluate_vcc2026(pred, real, outdir=None, *, pert_col: str = PERT_COL,
                     control: str = CONTROL_LABEL, anchor: bool = False, real_bundle=None,
                     baseline_seed: int = 0, anchor_base_seed: int = 0, anchor_splits: int = 5,
                     chunk_rows: int | None = None,
                     per_perturbation_anchor: bool = False) -> Vcc2026Result:
    """Score raw-count predictions against raw-count real cells as ``cell-eval2 run --preset
    vcc2026`` does (cell-eval2 0.20.0, the Virtual Cell Challenge 2026 scorer).

    Both files are read in row chunks. The scorer normalises the counts itself: profiles are
    log1p(5e4 x group count sums / group total) with a jackknife noise correction, the Wilcoxon
    test ranks log1p(CPM) of each perturbation's cells against the real control cells, log2 fold
    changes are of CPM means (README, "The vcc2026 suite").

    Parameters
    ----------
    pred, real : h5ad path or AnnData of **raw UMI counts** (non-negative integers, no cell above
        1e6 counts), the same genes in the same order and the same perturbation labels, the
        control included (a prediction written by
        :func:`~transpert.predict.write_prediction` with ``format="counts"`` qualifies).
        Anything else raises :class:`~transpert._errors.TranspertInputError`.
    outdir : folder for the tables (:meth:`Vcc2026Result.write`); None: nothing written.
    pert_col, control : the perturbation column of ``obs`` and the control label.
    anchor : also build the score's two reference points from the real cells with cell-eval2's
        seeds: the mean-response baseline *b* (``cell-eval2 baseline``) and the replicate anchor
        *r* (``run --anchor``: ``anchor_splits`` half splits of the real cells), then the score.
    real_bundle : a directory written by ``cell-eval2 prep-real-bundle``: take *b* and *r* from it
        instead (:func:`read_real_bundle`); not with ``anchor``. As ``cell-eval2 score
        --real-bundle`` does, real data that is not the bundle's (cell-eval2's fingerprints of
        its cells, genes, labels and counts differ) or a bundle not built under the vcc2026
        rule is refused with a TranspertInputError naming what differs.
    baseline_seed, anchor_base_seed, anchor_splits : cell-eval2's seeds and number of splits.
    chunk_rows : cells read at a time (None: an automatic size).
    per_perturbation_anchor : with ``anchor``, also keep every split's per-perturbation values
        (``anchor_values``), which :func:`bootstrap_vcc2026` needs to resample the anchor.

    Returns
    -------
    Vcc2026Result
        ``results`` and ``agg`` (the six scored metrics and four diagnostics, on their own
        scales: PDS, shares and Jaccard in [0, 1], expression errors on the log1p profile scale,
        ``lfc_nmae`` a ratio of log2FC errors); with ``anchor`` or ``real_bundle`` also
        ``score`` and :attr:`Vcc2026Result.avg_score`.

    Examples
    --------
    >>> from transpert.evaluate.vcc2026 import evaluate_vcc2026
    >>> res = evaluate_vcc2026("pred_counts.h5ad", "real_counts.h5ad", "eval/",
    ...                        anchor=True)  # doctest: +SKIP
    >>> res.score[["metric", "user", "baseline", "replicate", "from_replicate"]]  # doctest: +SKIP
    >>> res.avg_score  # doctest: +SKIP
    """
    real_summary = open_real(real, pert_col, control, real_bundle=real_bundle, anchor=anchor,
                             chunk_rows=chunk_rows, anchor_base_seed=anchor_base_seed,
                             anchor_splits=anchor_splits)
    results = run_metrics(real_summary, pred, pert_col, chunk_rows)
    out = Vcc2026Result(results, agg_table(results))
    out.flags = flags_table(real_summary, results)
    add_reference_points(out, real_summary, anchor=anchor, real_bundle=real_bundle,
                         baseline_seed=baseline_seed, anchor_base_seed=anchor_base_seed,
                         anchor_splits=anchor_splits, chunk_rows=chunk_rows,
                         per_perturbation_anchor=per_perturbation_anchor)
    if outdir is not None:
        out.write(outdir)
    return out
