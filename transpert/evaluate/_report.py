"""A Markdown report a person reads: score, intervals, flags, PDS diagnostics and plots.

Plots need matplotlib (the ``plot`` extra); without it the report is still written, with a
note saying which plots were skipped.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from transpert._io import atomic_path
from transpert.evaluate._html import write_html_report
from transpert.metrics import discrimination_scores, norm_matched_pds, pds_scale_curve

logger = logging.getLogger("transpert.evaluate")

#: one sentence above each plot in the report: what it shows and, for chosen panels, how chosen
_CAPTIONS = {
    "per_perturbation_metrics.png": "Distribution over perturbations of each per-perturbation "
                                    "metric (perturbations where it is undefined left out).",
    "pds_vs_scale.png": "Mean L1 PDS when every predicted delta is multiplied by c (dashed: the "
                        "prediction as given).",
    "pred_vs_real_delta.png": "Predicted against real delta per gene (log1p scale) for four chosen "
                              "perturbations: the two with the highest and the two with the lowest "
                              "L1 PDS (1 = best); the grey line is y = x.",
}

SCALES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


def pds_diagnostics(result, scales=SCALES, threads: int | None = None) -> dict:
    """L1 PDS vs a global scale factor on the predicted deltas, cosine PDS, norm-matched PDS."""
    bulk = result.bulk
    pred, real = bulk.pred_delta, bulk.real_delta
    return {
        "curve": pds_scale_curve(pred, real, bulk.labels, bulk.genes, scales=scales, threads=threads),
        "l1": discrimination_scores(pred, real, bulk.labels, bulk.genes, "l1", threads=threads),
        "cosine": discrimination_scores(pred, real, bulk.labels, bulk.genes, "cosine", threads=threads),
        "norm_matched": norm_matched_pds(pred, real, bulk.labels, bulk.genes, threads=threads),
    }


def _md_table(frame: pd.DataFrame, floatfmt: str = "{:.4f}") -> str:
    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return "NaN" if np.isnan(v) else floatfmt.format(v)
        return str(v)

    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    sep = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def _plots(result, diag, outdir: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return []
    written = []
    cols = [c for c in ("mae", "discrimination_score_l1", "overlap_at_N", "pearson_delta")
            if c in result.results.columns]
    if cols:
        fig, axes = plt.subplots(1, len(cols), figsize=(3.4 * len(cols), 3.2), squeeze=False)
        for ax, c in zip(axes[0], cols):
            v = result.results[c].to_numpy(dtype=float)
            v = v[result.defined[c].to_numpy() & ~np.isnan(v)]
            ax.hist(v, bins=20, color="#4477aa")
            ax.set_title(f"{c} (n = {v.size})", fontsize=9)
            ax.set_xlabel("per-perturbation value", fontsize=8)
            # at most four ticks a panel, so neighbouring labels never run into each other
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
            ax.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
            ax.tick_params(labelsize=8)
        axes[0][0].set_ylabel("perturbations", fontsize=8)
        fig.tight_layout()
        fig.savefig(outdir / "per_perturbation_metrics.png", dpi=110)
        plt.close(fig)
        written.append("per_perturbation_metrics.png")
    curve = diag["curve"]
    fig, ax = plt.subplots(figsize=(4, 3.2))
    ax.plot(curve["scale"], curve["mean_pds"], "o-", color="#aa3377")
    ax.set_xscale("log")
    ax.set_xlabel("global factor c on predicted deltas")
    ax.set_ylabel("mean L1 PDS")
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_title("L1 PDS as every predicted delta is scaled", fontsize=9)
    fig.tight_layout()
    fig.savefig(outdir / "pds_vs_scale.png", dpi=110)
    plt.close(fig)
    written.append("pds_vs_scale.png")
    bulk = result.bulk
    order = np.argsort(diag["l1"], kind="stable")
    pick = list(dict.fromkeys([*order[-2:][::-1], *order[:2]]))[:4]
    fig, axes = plt.subplots(1, len(pick), figsize=(3.3 * len(pick), 3.5), squeeze=False)
    for ax, i in zip(axes[0], pick):
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.tick_params(labelsize=8)
        ax.scatter(bulk.real_delta[i], bulk.pred_delta[i], s=3, alpha=0.5, color="#228833")
        lim = float(np.abs(np.concatenate([bulk.real_delta[i], bulk.pred_delta[i]])).max() or 1.0)
        ax.plot([-lim, lim], [-lim, lim], color="grey", lw=0.8)
        ax.set_xlim(-1.05 * lim, 1.05 * lim)
        ax.set_ylim(-1.05 * lim, 1.05 * lim)
        ax.set_title(f"{bulk.labels[i]} (L1 PDS {diag['l1'][i]:.2f})", fontsize=9)
        ax.set_xlabel("real delta (log1p)", fontsize=8)
        ax.set_ylabel("predicted delta", fontsize=8)
    fig.suptitle("Chosen perturbations: the two with the highest and the two with the lowest "
                 "L1 PDS (1 = best)", fontsize=9)
    fig.tight_layout()
    fig.savefig(outdir / "pred_vs_real_delta.png", dpi=110)
    plt.close(fig)
    written.append("pred_vs_real_delta.png")
    return written


def write_report(result, outdir, *, ci: pd.DataFrame | None = None, diag: dict | None = None,
                 title: str = "transpert evaluation", threads: int | None = None) -> Path:
    """Write ``outdir/report.md``, its PNG plots (when matplotlib is installed) and
    ``outdir/report.html``, the same report as one self-contained page (figures embedded).

    Parameters
    ----------
    result
        An :class:`~transpert.evaluate.EvaluationResult` (metrics on the log1p scale).
    outdir
        The folder to write into (created if missing).
    ci
        Bootstrap intervals of the aggregates (:func:`~transpert.evaluate.bootstrap_ci`), shown
        as a table; without them the plain means are shown.
    diag
        PDS diagnostics from :func:`pds_diagnostics`; computed when not given.
    title
        The report's first heading.
    threads
        Threads for the PDS diagnostics (numba); all cores by default.

    Returns
    -------
    Path
        ``outdir/report.md`` (``report.html`` and the plots are beside it).

    Examples
    --------
    >>> from transpert.evaluate import evaluate, write_report
    >>> result = evaluate("real.h5ad", "pred.h5ad", baseline="baseline.h5ad")  # doctest: +SKIP
    >>> write_report(result, "eval/")  # doctest: +SKIP
    PosixPath('eval/report.md')
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    diag = diag if diag is not None else pds_diagnostics(result, threads=threads)
    plots = _plots(result, diag, outdir)
    n = len(result.results)
    from transpert.evaluate._suites import get_suite

    suite = get_suite(result.suite)
    lines = [f"# {title}", "",
             f"Suite `{suite.name}` ({suite.reference}: {suite.description}). "
             f"Profile `{result.profile}`, {n} perturbations; metrics as {suite.reference} computes "
             "them (log1p scale, each file against its own controls).", ""]
    if result.score is not None:
        lines += ["## Score against the baseline", "",
                  "`1 - u/b` for best-0 metrics, `(u - b)/(1 - b)` for best-1 metrics, NaN to 0, "
                  "clipped at 0; `avg_score` is their mean"
                  + (" (the challenge score; the leaderboard showed 100x)." if result.profile == "vcc" else
                     f" over the {len(result.score) - 1} metrics of profile `{result.profile}`: not the "
                     "challenge's leaderboard score, which averages MAE, PDS and DES only (profile "
                     "`vcc`)."), "",
                  _md_table(result.score), ""]
    lines += ["## Aggregates with 95% bootstrap intervals (over perturbations)", ""]
    if ci is not None:
        lines += [_md_table(ci), "",
                  "`mean_cell_eval` is cell-eval's aggregate (one NaN makes it NaN); `mean` and the "
                  "interval leave out perturbations where the metric is undefined (`n_used`).", ""]
    else:
        means = pd.DataFrame({"metric": list(result.means()), "mean": list(result.means().values())})
        lines += [_md_table(means), ""]
    flags = result.flags
    if "n_de_real" in flags:
        none = int((flags["n_de_real"] == 0).sum())
        one = int((flags["n_de_real"] == 1).sum())
        lines += ["## Perturbations cell-eval scores by definition, not by prediction", "",
                  f"- {none} of {n} have no real DE gene: their overlap is 0 whatever the prediction "
                  "(a perfect prediction scores the fraction with DE genes), pr_auc/roc_auc are NaN.",
                  f"- {one} have exactly one real DE gene: de_spearman_lfc_sig is NaN.",
                  "- Full list in `flags.csv`.", ""]
    curve = diag["curve"]
    lines += ["## PDS diagnostics", "",
              f"- L1 PDS (challenge): {np.mean(diag['l1']):.4f}",
              f"- cosine PDS (scale-free): {np.mean(diag['cosine']):.4f}",
              f"- norm-matched L1 PDS (each predicted delta rescaled to its real delta's norm): "
              f"{np.mean(diag['norm_matched']):.4f}", "",
              "L1 PDS when every predicted delta is multiplied by c (arXiv:2511.16954: L1 PDS "
              "rewards inflated predictions; a curve still rising past c = 1 means the score "
              "depends on magnitude, not only on direction):", "",
              _md_table(curve), ""]
    if plots:
        lines += ["## Plots", ""]
        for p in plots:
            lines += [f"{_CAPTIONS.get(p, p)}", "", f"![{p}]({p})", ""]
    else:
        lines += ["_Plots skipped: matplotlib is not installed (`pip install transpert[plot]`)._", ""]
    path = outdir / "report.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))
    write_html_report(path)
    return path
