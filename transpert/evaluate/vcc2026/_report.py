"""The report of a vcc2026 scoring (``report.md`` and the self-contained ``report.html``): the
anchored score, bootstrap intervals, flags and the pds_cosine diagnostics, with the suite named.

Plots need matplotlib (the ``plot`` extra); without it the report says which were skipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from transpert._io import atomic_path, write_csv_atomic
from transpert.evaluate._html import write_html_report
from transpert.evaluate._report import _md_table
from transpert.evaluate.vcc2026._config import REFERENCE, SCORED, SUITE

PER_PERT_SCORED = [m for m in SCORED if m != "expr_mse_unbiased_capped_norm"]


def _plot(results: pd.DataFrame, outdir: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(PER_PERT_SCORED), figsize=(3.2 * len(PER_PERT_SCORED), 3.1),
                             squeeze=False)
    for ax, m in zip(axes[0], PER_PERT_SCORED):
        v = results.loc[results.metric == m, "value"].to_numpy(float)
        v = v[~np.isnan(v)]
        ax.hist(v, bins=20, color="#4477aa")
        ax.set_title(f"{m.replace('de_wilcoxon_', '')} (n = {v.size})", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        ax.tick_params(labelsize=8)
    axes[0][0].set_ylabel("perturbations", fontsize=8)
    fig.suptitle(f"suite {SUITE}: per-perturbation values", fontsize=9)
    fig.tight_layout()
    name = "per_perturbation_metrics.png"
    fig.savefig(outdir / name, dpi=110)
    plt.close(fig)
    return name


def _pds_lines(results: pd.DataFrame, flags: pd.DataFrame | None) -> list[str]:
    pds = results[results.metric == "pds_cosine"].set_index("perturbation")["value"]
    v = pds.to_numpy(float)
    order = pds.sort_values(kind="stable")
    lines = ["## PDS diagnostics (pds_cosine)", "",
             f"- mean {np.nanmean(v):.4f}, median {np.nanmedian(v):.4f}; "
             f"{int((v == 1.0).sum())} of {v.size} perturbations ranked first among the real "
             f"effects (1.0), {int((v <= 0.5).sum())} at or below chance (0.5).",
             "- pds_cosine compares directions of effects (cosine distance of log1p-profile "
             "deltas to the control), so it does not reward inflated magnitudes the way L1 PDS "
             "does; the magnitude is scored by `expr_mse_unbiased_capped_norm`.",
             f"- lowest: {', '.join(f'{p} {x:.3f}' for p, x in order.head(3).items())}; "
             f"highest: {', '.join(f'{p} {x:.3f}' for p, x in order.tail(3)[::-1].items())}."]
    if flags is not None and not flags.target_in_genes.all():
        absent = flags.perturbation[~flags.target_in_genes].tolist()
        lines.append(f"- {len(absent)} target(s) not among the genes, scored without the "
                     f"target's own column excluded (can inflate pds_cosine): {absent[:5]}.")
    return lines + [""]


def _flag_lines(flags: pd.DataFrame) -> list[str]:
    n = len(flags)
    return ["## Perturbations scored by definition, not by prediction", "",
            f"- {int((flags.n_de_real == 0).sum())} of {n} have no real DE gene: reach is NaN "
            "(left out of its mean), Jaccard is 1 only if the prediction calls none either.",
            f"- {int((~flags.lfc_nmae_scored).sum())} of {n} have fewer than 10 gated real DE "
            "genes: `de_wilcoxon_lfc_nmae` leaves them out.",
            f"- {int((~flags.fidelity_defined).sum())} of {n} have no DE call on either side: "
            "fidelity yield is NaN.",
            "- Full list in `flags.csv`.", ""]


def write_vcc2026_report(result, outdir, *, ci: pd.DataFrame | None = None,
                         title: str = "transpert evaluation") -> Path:
    """Write ``flags.csv``, ``ci.csv`` (when ``ci``), ``report.md``, its plot and
    ``report.html`` for a :class:`~transpert.evaluate.vcc2026.Vcc2026Result` into ``outdir``.

    Values on each member's own scale (pds_cosine, shares and Jaccard in [0, 1], expression
    errors on the log1p profile scale, ``lfc_nmae`` a ratio of log2FC errors). Returns the path
    of ``report.md``.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    n = result.results["perturbation"].nunique()
    if result.flags is not None:
        write_csv_atomic(result.flags, outdir / "flags.csv", index=False)
    if ci is not None:
        write_csv_atomic(ci, outdir / "ci.csv", index=False)
    lines = [f"# {title}", "",
             f"Suite `{SUITE}` ({REFERENCE}: the 2026 Virtual Cell Challenge's scorer), "
             f"{n} perturbations, raw-count inputs; `results.csv` and `agg_results.csv` in "
             "cell-eval2's layouts.", ""]
    if result.score is not None:
        lines += ["## Score", "",
                  "Each member placed on s = (u - b) / (r - b): u the prediction's aggregate, b "
                  "the mean-response baseline's, r the replicate anchor's (lower-is-better "
                  "members mirrored, policies as cell-eval2's); `avg_score` is the unclipped "
                  "mean of the six `from_replicate` values.", "",
                  _md_table(result.score.drop(columns=["from_baseline"])), ""]
    lines += ["## Aggregates with 95% bootstrap intervals (over perturbations)", ""]
    if ci is not None:
        kind = ci["reference_points"].iloc[-1]
        how = {"resampled": "u, b and r are recomputed on the same resample of perturbations "
                            "(the baseline's and every anchor split's per-perturbation values)",
               "fixed": "u is recomputed on each resample; b and r are the real bundle's "
                        "aggregates, held fixed (the bundle has no per-perturbation values)",
               "": "no reference points: members only"}[kind]
        lines += [_md_table(ci.drop(columns=["suite"])), "",
                  f"Percentile intervals; {how}. `n_undefined`: resamples on which the value "
                  "has no scale (no headroom r - b) or no perturbation defines it, left out.", ""]
    else:
        means = result.agg.set_index("statistic").loc["mean", list(SCORED)]
        lines += [_md_table(pd.DataFrame({"metric": means.index, "mean": means.to_numpy()})), ""]
    if result.flags is not None:
        lines += _flag_lines(result.flags)
    lines += _pds_lines(result.results, result.flags)
    plot = _plot(result.results, outdir)
    if plot:
        lines += ["## Plots", "", "Distribution over perturbations of each per-perturbation "
                  "scored member (NaN left out).", "", f"![{plot}]({plot})", ""]
    else:
        lines += ["_Plots skipped: matplotlib is not installed (`pip install transpert[plot]`)._",
                  ""]
    path = outdir / "report.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))
    write_html_report(path)
    return path
