"""Several predictions scored on the same real cells: the leaderboard of ``transpert run``, the
demo and the accuracy benchmark (challenge score x100 with its bootstrap interval, the seven
generalist metrics and their mean rank). Cells on any scale; metrics on log1p as
:func:`transpert.evaluate.evaluate` computes them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd

from transpert.data.schema import CONTROL_LABEL, PERT_COL

logger = logging.getLogger("transpert.evaluate")

#: the three challenge metrics (cell-eval ``vcc`` profile) and the seven of the generalist ranking
VCC_METRICS = ("mae", "discrimination_score_l1", "overlap_at_N")
GENERALIST_METRICS = ("mae", "discrimination_score_l1", "overlap_at_N", "pearson_delta",
                      "de_spearman_lfc_sig", "pr_auc", "de_spearman_sig")


@dataclass
class Leaderboard:
    """Predictions evaluated on the same real cells.

    ``table``: one row per method (challenge score x100 with its bootstrap interval, the seven
    generalist metrics, their mean rank), best score first. ``results``: per method the
    per-perturbation results (generalist metrics); ``intervals``: per method the bootstrap table.
    """

    table: pd.DataFrame
    results: dict = field(default_factory=dict)
    intervals: dict = field(default_factory=dict)
    suite: str = "vcc2025"

    def to_text(self, legend: bool = True) -> str:
        """The fixed-width table, and (``legend``) what its columns mean."""
        text = format_leaderboard(self.table)
        return f"{text}\n\n{format_legend()}" if legend else text


def evaluate_methods(real, predictions: dict, baseline, *, pert_col: str = PERT_COL,
                     control: str = CONTROL_LABEL, threads: int | None = None, n_boot: int = 1000,
                     seed: int = 0, show_progress: bool | None = None,
                     suite: str | None = None) -> Leaderboard:
    """Evaluate every prediction (name -> h5ad path or AnnData of cells) against ``real``.

    Metrics are the ``suite``'s (default ``vcc2025``, the 2025 leaderboard's cell-eval 0.6.6 +
    pdex 0.1.27; see :mod:`transpert.evaluate._suites`); the challenge score is against
    ``baseline`` (the cell-mean baseline's cells, :func:`transpert.evaluate.build_baseline`) with
    a bootstrap interval over perturbations; the generalist mean rank is over the seven metrics.
    """
    from transpert import evaluate as ev
    from transpert._progress import track
    from transpert.evaluate._bootstrap import bootstrap_ci, generalist_ranking

    from transpert.evaluate._suites import cell_eval_suite as get_suite

    suite = get_suite(suite).name
    kw = dict(pert_col=pert_col, control=control, threads=threads, suite=suite)
    real_p = ev.prepare(real, "real", **kw)
    base_p = ev.prepare(baseline, "baseline", **kw)
    base_vcc = ev.evaluate_prepared(real_p, base_p, metrics=VCC_METRICS, **kw)
    rows, results, intervals = [], {}, {}
    for name, pred in track(predictions.items(), len(predictions), "evaluating", "prediction", show_progress):
        pred_p = ev.prepare(pred, f"prediction {name}", **kw)
        vcc = ev.evaluate_prepared(real_p, pred_p, metrics=VCC_METRICS, **kw)
        gen = ev.evaluate_prepared(real_p, pred_p, metrics=GENERALIST_METRICS, **kw)
        vcc.baseline = base_vcc
        vcc.score = ev.score(vcc.means(), base_vcc.means())
        ci = bootstrap_ci(vcc, n_boot=n_boot, seed=seed)
        ci_gen = bootstrap_ci(gen, n_boot=n_boot, seed=seed)
        avg = ci.set_index("metric").loc["score:avg_score"]
        rows.append({"suite": suite, "method": name, "score": 100 * avg["mean"], "score_ci_low": 100 * avg["ci_low"],
                     "score_ci_high": 100 * avg["ci_high"]})
        results[name] = gen
        intervals[name] = pd.concat([ci, ci_gen[~ci_gen["metric"].isin(ci["metric"])]], ignore_index=True)
        logger.info("evaluated %s: score %.2f", name, 100 * avg["mean"])
    ranking = generalist_ranking(results, metrics=GENERALIST_METRICS).set_index("prediction")
    table = pd.DataFrame(rows).set_index("method")
    table = table.join(ranking[list(GENERALIST_METRICS) + ["mean_rank"]])
    table = table.sort_values(["score", "mean_rank"], ascending=[False, True], kind="stable").reset_index()
    table = table[["method"] + [c for c in table.columns if c != "method"]]
    return Leaderboard(table=table, results=results, intervals=intervals, suite=suite)


_SHORT = {"discrimination_score_l1": "PDS", "overlap_at_N": "DES", "mae": "MAE",
          "pearson_delta": "pearson_d", "de_spearman_lfc_sig": "sp_lfc_sig", "pr_auc": "pr_auc",
          "de_spearman_sig": "sp_nsig", "mean_rank": "mean_rank"}


#: what each leaderboard column means, printed under the table (text and Markdown)
LEGEND = (
    ("score", "the challenge score x100: MAE, PDS and DES each scored against the cell-mean "
              "baseline (0 = the baseline, 100 = perfect), averaged"),
    ("MAE", "mean absolute error of the pseudo-bulk expression (mae; lower is better)"),
    ("PDS", "perturbation discrimination score, L1 (discrimination_score_l1; 1 = best)"),
    ("DES", "overlap of predicted and real DE genes (overlap_at_N)"),
    ("pearson_d", "Pearson correlation of predicted and real change from control (pearson_delta)"),
    ("sp_lfc_sig", "Spearman correlation of log2FC over the real DE genes (de_spearman_lfc_sig)"),
    ("pr_auc", "precision-recall AUC of the DE calls (pr_auc)"),
    ("sp_nsig", "Spearman correlation of the numbers of DE genes across perturbations "
                "(de_spearman_sig)"),
    ("mean_rank", "mean of the ranks on the seven metrics MAE ... sp_nsig (1 = best; every "
                  "metric but MAE is best at 1)"),
    ("nan", "undefined: e.g. sp_nsig of a prediction that calls the same number of DE genes "
            "(none, for control) for every perturbation, which has no order to correlate; "
            "ranked last on that metric"),
)


def format_legend(markdown: bool = False) -> str:
    """The leaderboard's column legend, one line per abbreviation."""
    if markdown:
        return "\n".join(f"- `{k}`: {v}" for k, v in LEGEND)
    import textwrap

    width = max(len(k) for k, _ in LEGEND)
    return "\n".join(textwrap.fill(v, 100, initial_indent=f"  {k.ljust(width)}  ",
                                    subsequent_indent=" " * (width + 4)) for k, v in LEGEND)


def format_leaderboard(table: pd.DataFrame) -> str:
    """A fixed-width text leaderboard (score x100 with its 95% bootstrap interval)."""
    cols = ["method", "score", "95% CI"] + [_SHORT[c] for c in GENERALIST_METRICS] + ["mean_rank"]
    lines = []
    for _, r in table.iterrows():
        cells = [str(r["method"]), f"{r['score']:.2f}", f"[{r['score_ci_low']:.2f}, {r['score_ci_high']:.2f}]"]
        cells += [("nan" if pd.isna(r[m]) else f"{r[m]:.3f}") for m in GENERALIST_METRICS]
        cells.append(f"{r['mean_rank']:.2f}")
        lines.append(cells)
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(cols)]
    fmt = lambda row: "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths)))  # noqa: E731
    return "\n".join([fmt(cols), fmt(["-" * w for w in widths])] + [fmt(line) for line in lines])


def leaderboard_markdown(table: pd.DataFrame) -> str:
    """The leaderboard as a Markdown table."""
    head = ["method", "score (x100)", "95% CI"] + [_SHORT[c] for c in GENERALIST_METRICS] + ["mean rank"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        vals = [f"`{r['method']}`", f"{r['score']:.2f}", f"[{r['score_ci_low']:.2f}, {r['score_ci_high']:.2f}]"]
        vals += [("nan" if pd.isna(r[m]) else f"{r[m]:.3f}") for m in GENERALIST_METRICS]
        vals.append(f"{r['mean_rank']:.2f}")
        out.append("| " + " | ".join(vals) + " |")
    return "\n".join(out) + "\n\n" + format_legend(markdown=True)
