"""A leaderboard of several raw-count predictions under the vcc2026 suite (``transpert rank
--suite vcc2026``): the real cells summarised once, one baseline and one replicate anchor (built
here, or read from a real bundle) shared by every prediction, each prediction's anchored score
with its bootstrap interval, and a paired comparison of the top two on the same resamples.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from transpert._errors import TranspertInputError
from transpert._io import atomic_path, write_csv_atomic
from transpert._progress import track
from transpert.data.schema import CONTROL_LABEL, PERT_COL
from transpert.evaluate.vcc2026._api import (
    Vcc2026Result,
    add_reference_points,
    open_real,
)
from transpert.evaluate._html import write_html_report
from transpert.evaluate._report import _md_table
from transpert.evaluate.vcc2026._config import REFERENCE, SCORED, SUITE
from transpert.evaluate.vcc2026._flags import flags_table
from transpert.evaluate.vcc2026._intervals import bootstrap_vcc2026, paired_vcc2026
from transpert.evaluate.vcc2026._run import agg_table, run_metrics


@dataclass
class Vcc2026Leaderboard:
    """``table``: one row per prediction, best anchored score first (``suite, rank,
    prediction, avg_score`` with its interval, the six members' aggregates); ``results``: name
    -> :class:`~transpert.evaluate.vcc2026.Vcc2026Result`; ``intervals``: name -> its bootstrap
    table; ``paired``: the top two compared (None with fewer than two or ``n_boot=0``)."""

    table: pd.DataFrame
    results: dict = field(default_factory=dict)
    intervals: dict = field(default_factory=dict)
    paired: pd.DataFrame | None = None
    reference_points: str = "the mean-response baseline and the replicate anchor built from " \
                            "the real cells"
    suite: str = SUITE

    def to_text(self) -> str:
        """The table as fixed-width text (scores on the suite's scale, 1 = the anchor)."""
        return (f"suite {SUITE} ({REFERENCE}), against {self.reference_points}\n"
                + self.table.drop(columns=["suite"]).to_string(index=False,
                                                               float_format="{:.4f}".format))


def write_leaderboard(board: Vcc2026Leaderboard, outdir, *, title: str = "vcc2026 ranking",
                      stem: str = "ranking", per_prediction=None) -> None:
    """Write ``<stem>.csv``, ``<stem>.md`` and ``report.html`` (the same page), ``paired_top2.csv``,
    ``flags.csv`` and ``suite.json`` into ``outdir``, and per prediction ``<name>_results.csv``
    (cell-eval2's long layout) and ``<name>_ci.csv`` into ``per_prediction`` (default
    ``outdir``). Every table but the cell-eval2 layouts carries a ``suite`` column."""
    outdir = Path(outdir)
    per = Path(per_prediction) if per_prediction is not None else outdir
    per.mkdir(parents=True, exist_ok=True)
    for name, res in board.results.items():
        write_csv_atomic(res.results, per / f"{name}_results.csv", index=False)
        if name in board.intervals:
            write_csv_atomic(board.intervals[name], per / f"{name}_ci.csv", index=False)
    first = next(iter(board.results.values()))
    write_csv_atomic(first.flags, outdir / "flags.csv", index=False)
    write_csv_atomic(board.table, outdir / f"{stem}.csv", index=False)
    (outdir / "suite.json").write_text(json.dumps({"suite": SUITE, "reference": REFERENCE}))
    resampled = next(iter(board.intervals.values())).reference_points.iloc[-1] == "resampled" \
        if board.intervals else None
    lines = [f"# {title}", "",
             f"Suite `{SUITE}` ({REFERENCE}). Predictions ranked by the anchored score (the "
             "unclipped mean of six members, each s = (u - b) / (r - b); 0 = the mean-response "
             f"baseline, 1 = the replicate anchor) against {board.reference_points}"
             + ("" if resampled is None else
                "; 95% bootstrap intervals over perturbations ("
                + ("b and r recomputed on each resample)" if resampled else
                   "the bundle's b and r held fixed)")) + ".", "",
             _md_table(board.table.drop(columns=["suite"])), ""]
    if board.paired is not None:
        a, b = board.paired.columns[2], board.paired.columns[3]
        write_csv_atomic(board.paired, outdir / "paired_top2.csv", index=False)
        lines += [f"## {a} vs {b}: paired bootstrap over perturbations", "",
                  "The same resamples for both; `better` names the prediction better on a row "
                  "when the interval of the difference excludes 0.", "",
                  _md_table(board.paired.drop(columns=["suite"])), ""]
    with atomic_path(outdir / f"{stem}.md") as tmp:
        tmp.write_text("\n".join(lines))
    write_html_report(outdir / f"{stem}.md")


def _intervals(res: Vcc2026Result, resampled: bool, n_boot: int, seed: int):
    if resampled:
        return bootstrap_vcc2026(res.results, baseline_results=res.baseline_results,
                                 anchor_values=res.anchor_values, n_boot=n_boot, seed=seed)
    return bootstrap_vcc2026(res.results, fixed=res.reference, n_boot=n_boot, seed=seed)


def rank_vcc2026(real, predictions: dict, *, real_bundle=None, pert_col: str = PERT_COL,
                 control: str = CONTROL_LABEL, baseline_seed: int = 0,
                 anchor_base_seed: int = 0, anchor_splits: int = 5, n_boot: int = 1000,
                 seed: int = 0, chunk_rows: int | None = None,
                 show_progress: bool | None = None) -> Vcc2026Leaderboard:
    """Score every prediction (name -> h5ad path or AnnData of **raw counts**) against ``real``
    (raw counts) with cell-eval2 0.20.0's vcc2026 suite and rank them by the anchored score.

    The score's reference points come from ``real_bundle`` (a ``cell-eval2 prep-real-bundle``
    directory; real data that is not the bundle's is refused) or are built once from the real
    cells (baseline seed, anchor base seed and splits as cell-eval2's). Intervals: percentile
    bootstrap over perturbations, the same resamples for every prediction (``seed``); with
    reference points built here b and r are recomputed on each resample, with a bundle they are
    fixed (:func:`~transpert.evaluate.vcc2026.bootstrap_vcc2026`).

    Returns
    -------
    Vcc2026Leaderboard
        Scores on the suite's scale (0 = the mean-response baseline, 1 = the replicate anchor,
        unclipped mean of six members); member aggregates on their own scales.
    """
    if not predictions:
        raise TranspertInputError("ranking needs at least one prediction")
    real_summary = open_real(real, pert_col, control, real_bundle=real_bundle,
                             anchor=real_bundle is None, chunk_rows=chunk_rows,
                             anchor_base_seed=anchor_base_seed, anchor_splits=anchor_splits)
    resampled = real_bundle is None and n_boot > 0
    results, intervals, rows, first = {}, {}, [], None
    for name, pred in track(predictions.items(), len(predictions), "scoring", "prediction",
                            show_progress):
        table = run_metrics(real_summary, pred, pert_col, chunk_rows)
        res = Vcc2026Result(table, agg_table(table))
        res.flags = flags_table(real_summary, table)
        add_reference_points(res, real_summary, anchor=real_bundle is None,
                             real_bundle=real_bundle, baseline_seed=baseline_seed,
                             anchor_base_seed=anchor_base_seed, anchor_splits=anchor_splits,
                             chunk_rows=chunk_rows, per_perturbation_anchor=resampled,
                             reference=first)
        if first is None:
            first = res
        results[name] = res
        means = res.agg.set_index("statistic").loc["mean"]
        row = {"suite": SUITE, "prediction": name, "avg_score": res.avg_score}
        if n_boot > 0:
            ci = _intervals(res, resampled, n_boot, seed)
            intervals[name] = ci
            avg = ci.set_index("metric").loc["score:avg_score"]
            row.update(avg_score_ci_low=avg["ci_low"], avg_score_ci_high=avg["ci_high"])
        row.update({m: float(means[m]) for m in SCORED})
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("avg_score", ascending=False, kind="stable")
    table.insert(1, "rank", range(1, len(table) + 1))
    table = table.reset_index(drop=True)
    paired = None
    if len(results) >= 2 and n_boot > 0:
        a, b = table.prediction.iloc[0], table.prediction.iloc[1]
        ref = results[a]
        kw = (dict(baseline_results=ref.baseline_results, anchor_values=ref.anchor_values)
              if resampled else dict(fixed=ref.reference))
        paired = paired_vcc2026(results[a].results, results[b].results, n_boot=n_boot,
                                seed=seed, names=(a, b), **kw)
    where = (f"the real bundle {real_bundle}" if real_bundle is not None else
             Vcc2026Leaderboard.reference_points)
    return Vcc2026Leaderboard(table, results, intervals, paired, reference_points=where)
