"""``transpert demo``: the whole product on a simulated atlas, end to end, in under a minute.

1. simulate reference lines and a target line sharing one panel of knockdowns (raw counts);
2. hold out a third of the target's perturbations (and half of its control cells) as the "real"
   answer; the rest is the target's training data;
3. summarise every reference line and the target's training cells (pseudo-bulk + Wilcoxon DE);
4. fit TransPert and every baseline on those summaries, predict the held-out perturbations and
   write each prediction as challenge-format cells; and zero-shot TransPert
   (``transpert-zero-shot``), which sees none of the target's training perturbations, only its
   control cells: how much the target's own training perturbations are worth;
5. evaluate every prediction against the held-out real cells with cell-eval's metrics, the
   challenge score against the cell-mean baseline (bootstrap 95% intervals over perturbations)
   and the generalist mean rank; print the leaderboard and write it with a report.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from transpert._versions import versions
from transpert.data.split import split_perturbations
from transpert.evaluate.leaderboard import Leaderboard, evaluate_methods, leaderboard_markdown
from transpert.evaluate._html import write_html_report
from transpert.methods import METHODS, ZERO_SHOT_METHODS, fit_predict
from transpert.summarize import summarize
from transpert._io import write_csv_atomic, write_h5ad_atomic
from transpert.data.schema import CONTROL_LABEL, PERT_COL

logger = logging.getLogger("transpert.demo")

#: the demo's methods: TransPert, every few-shot baseline and zero-shot TransPert
DEMO_METHODS = tuple(m for m in METHODS if m not in ZERO_SHOT_METHODS) + ("transpert-zero-shot",)
#: zero-shot TransPert's grids in the demo (coarser than the defaults, to stay within the demo's time)
DEMO_ZERO_SHOT_PARAMS = {"temperatures": (0.02, float("inf")), "shrinkages": ("js", "none"), "specific_scales": (0.5, 1.0, 1.5),
                         "common_scales": (0.5, 1.0), "deg_thresholds": (0.5, 0.2, 0.05),
                         "deg_max_rows": 20_000}


@dataclass
class DemoResult:
    out_dir: Path
    leaderboard: Leaderboard
    timings: dict
    files: dict


class _Steps:
    """Numbered progress lines with elapsed time (the demo's log)."""

    def __init__(self, total: int, echo):
        self.total, self.echo, self.n, self.t0 = total, echo, 0, time.perf_counter()
        self.timings: dict[str, float] = {}
        self._last = self.t0
        self._name = None

    def start(self, name: str, text: str) -> None:
        if self._name is not None:
            self.echo(f"      done in {time.perf_counter() - self._last:.1f} s")
        self._close()
        self.n += 1
        self._name = name
        self.echo(f"[{self.n}/{self.total}] {text} ...")

    def _close(self) -> None:
        now = time.perf_counter()
        if self._name is not None:
            self.timings[self._name] = now - self._last
        self._last = now

    def done(self) -> float:
        if self._name is not None:
            self.echo(f"      done in {time.perf_counter() - self._last:.1f} s")
        self._close()
        self._name = None
        return time.perf_counter() - self.t0


def _subset(adata, mask):
    out = adata[mask].copy()
    out.obs_names_make_unique()
    return out


def run_demo(out_dir: str | Path = "transpert-demo", *, seed: int = 0, heldout_fraction: float = 1 / 3,
             methods=DEMO_METHODS, n_genes: int = 1000, n_perturbations: int = 48,
             cells_per_perturbation: int = 60, n_control_cells: int = 600, threads: int | None = None,
             n_boot: int = 1000, move: str = "pseudobulk", echo=print,
             show_progress: bool | None = False) -> DemoResult:
    """Run the demo; write everything under ``out_dir``; return the leaderboard and timings."""
    import anndata as ad

    from transpert.data.simulate import simulate_atlas
    from transpert.evaluate import build_baseline
    from transpert.predict import write_prediction

    out = Path(out_dir)
    (out / "summaries").mkdir(parents=True, exist_ok=True)
    (out / "predictions").mkdir(parents=True, exist_ok=True)
    steps = _Steps(6, echo)
    files: dict[str, str] = {}

    steps.start("simulate", f"simulating an atlas: 3 reference lines + 1 target, {n_perturbations} "
                f"knockdowns, {n_genes} genes")
    atlas = simulate_atlas(out / "atlas", seed=seed, n_genes=n_genes, n_perturbations=n_perturbations,
                           cells_per_perturbation=cells_per_perturbation, n_control_cells=n_control_cells)
    target = atlas.lines[atlas.target_line]
    if not isinstance(target, ad.AnnData):
        target = ad.read_h5ad(target)
    control = CONTROL_LABEL
    labels = target.obs[PERT_COL].astype(str).to_numpy()

    steps.start("split", "holding out target perturbations and half of the target's controls")
    perts = sorted(set(labels) - {control})
    train_perts, heldout = split_perturbations(perts, heldout_fraction, seed=seed)
    rng = np.random.default_rng(seed)
    ctrl_rows = np.flatnonzero(labels == control)
    ctrl_heldout = np.zeros(len(labels), dtype=bool)
    ctrl_heldout[rng.choice(ctrl_rows, len(ctrl_rows) // 2, replace=False)] = True
    is_train = np.isin(labels, train_perts) | ((labels == control) & ~ctrl_heldout)
    is_real = np.isin(labels, heldout) | ctrl_heldout
    target_train = _subset(target, is_train)
    real = _subset(target, is_real)
    files["target_train"] = str(write_h5ad_atomic(target_train, out / "target_train.h5ad"))
    files["real"] = str(write_h5ad_atomic(real, out / "real_heldout.h5ad"))
    counts = (pd.Series(labels[np.isin(labels, heldout)]).value_counts().rename_axis(PERT_COL)
              .rename("n_cells").reset_index().sort_values(PERT_COL, kind="stable"))
    files["counts"] = str(write_csv_atomic(counts, out / "heldout_counts.csv", index=False))
    echo(f"      {len(train_perts)} training perturbations, {len(heldout)} held out "
         f"({int(counts['n_cells'].sum())} real cells), {int(ctrl_heldout.sum())} held-out controls")

    steps.start("summaries", "summarising reference lines and the target's training cells "
                "(pseudo-bulk + Wilcoxon DE)")
    references = {}
    for name in atlas.reference_lines:
        cells = atlas.lines[name]
        references[name] = summarize(cells, threads=threads, show_progress=show_progress)
        files[f"summary_{name}"] = str(write_h5ad_atomic(references[name], out / "summaries" / f"{name}.h5ad"))
    train_summary = summarize(target_train, threads=threads, show_progress=show_progress)
    files["summary_target_train"] = str(write_h5ad_atomic(train_summary, out / "summaries" / "target_train.h5ad"))

    steps.start("predict", f"fitting and predicting with {len(methods)} methods, writing challenge-format cells")
    genes = list(target.var_names)
    predictions, fitted = {}, {}
    for method in methods:
        t = time.perf_counter()
        if method in ZERO_SHOT_METHODS:  # the target's control cells only
            controls = target_train[target_train.obs[PERT_COL].astype(str).to_numpy() == control]
            model, pred = fit_predict(method, references, controls, heldout,
                                      DEMO_ZERO_SHOT_PARAMS if method == "transpert-zero-shot" else None)
        else:
            model, pred = fit_predict(method, references, train_summary, heldout)
        path = out / "predictions" / f"{method}.h5ad"
        write_prediction(pred, target_train, counts, genes, path, seed=seed, max_cells=None, move=move)
        predictions[method] = str(path)
        fitted[method] = model
        echo(f"      {method:<16} {time.perf_counter() - t:5.1f} s")
    baseline_path = out / "predictions" / "cell-eval_cell-mean_baseline.h5ad"
    write_h5ad_atomic(build_baseline(target_train, counts), baseline_path)
    files["baseline"] = str(baseline_path)
    files.update({f"prediction_{k}": v for k, v in predictions.items()})

    steps.start("evaluate", "evaluating every prediction against the held-out cells (cell-eval metrics)")
    board = evaluate_methods(files["real"], predictions, str(baseline_path), threads=threads,
                                n_boot=n_boot, seed=seed, show_progress=show_progress)

    steps.start("report", "writing the leaderboard and report")
    eval_dir = out / "evaluation"
    eval_dir.mkdir(exist_ok=True)
    for name, res in board.results.items():
        write_csv_atomic(res.results, eval_dir / f"{name}_results.csv", index=False)
        write_csv_atomic(board.intervals[name], eval_dir / f"{name}_intervals.csv", index=False)
    files["leaderboard"] = str(write_csv_atomic(board.table, out / "leaderboard.csv", index=False))
    total = steps.done()
    timings = {**{k: round(v, 2) for k, v in steps.timings.items()}, "total_s": round(total, 2)}
    params = {"seed": seed, "heldout_fraction": heldout_fraction, "methods": list(methods), "n_genes": n_genes,
              "n_perturbations": n_perturbations, "cells_per_perturbation": cells_per_perturbation,
              "n_control_cells": n_control_cells, "n_boot": n_boot, "move": move, "heldout": heldout}
    tp = fitted.get("transpert")
    report = _report(board, params, timings, tp, atlas)
    files["report"] = str(out / "report.md")
    (out / "report.md").write_text(report)
    files["report_html"] = str(write_html_report(out / "report.md"))
    (out / "run.json").write_text(json.dumps({"params": params, "timings": timings, "versions": versions(),
                                              "files": files}, indent=2, default=str))
    files["run"] = str(out / "run.json")
    return DemoResult(out_dir=out, leaderboard=board, timings=timings, files=files)


def _report(board: Leaderboard, params: dict, timings: dict, transpert_model, atlas) -> str:
    lines = ["# transpert demo report", "",
             f"Simulated atlas (seed {params['seed']}): reference lines {', '.join(atlas.reference_lines)}, "
             f"target `{atlas.target_line}`; {params['n_perturbations']} knockdowns x {params['n_genes']} genes. "
             f"{len(params['heldout'])} target perturbations held out and predicted; the others are training data.",
             "",
             "Score: the challenge score (mean over MAE, PDS, DES of the improvement over the cell-mean "
             "baseline, clipped at 0), x100, with a 95% bootstrap interval over held-out perturbations. "
             "Mean rank: average rank over the seven generalist metrics (1 = best). Scored with the "
             f"`{board.suite}` suite (see the README's section on evaluation suites).", "",
             leaderboard_markdown(board.table), ""]
    if transpert_model is not None and hasattr(transpert_model, "weights_"):
        lines += ["## TransPert: fitted reference weights", "", "```",
                  transpert_model.weights_.to_string(), "```", ""]
        truth = getattr(atlas.truth, "lines", None)
        if truth is not None and "similarity_to_target" in truth.columns:
            lines += ["True similarity of each line to the target (simulation):", "", "```",
                      truth["similarity_to_target"].to_string(), "```", ""]
        for attr in ("common_scale_", "specific_scale_", "deg_source_", "deg_threshold_"):
            if hasattr(transpert_model, attr):
                lines.append(f"- {attr.rstrip('_')}: {getattr(transpert_model, attr)}")
        lines.append("")
    lines += ["## Timings (seconds)", "", "```", json.dumps(timings, indent=2), "```", ""]
    return "\n".join(lines)
