"""``transpert evaluate``: score a prediction against real cells as a suite's scorer does."""

from __future__ import annotations

import argparse

from transpert.cli._common import add_scoring_arguments, add_vcc2026_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # --suite comes with the scoring options (add_scoring_arguments), shared with rank
    parser.add_argument("--real", required=True, help="real cells (h5ad; raw counts or log1p)")
    parser.add_argument("--pred", required=True, help="predicted cells (h5ad), with control cells")
    parser.add_argument("--baseline", help="baseline prediction (h5ad, e.g. from `transpert "
                        "baseline`): adds score.csv")
    parser.add_argument("--profile", choices=["vcc", "full"], default="vcc",
                        help="vcc: mae, discrimination_score_l1, overlap_at_N; full: every "
                        "cell-eval metric except clustering/e-distance")
    parser.add_argument("-o", "--out", "--outdir", dest="outdir", required=True,
                        help="output directory (must be new or empty, see --overwrite)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing non-empty output directory whole")
    add_scoring_arguments(parser)
    parser.add_argument("--n-boot", type=int, default=1000,
                        help="bootstrap resamples for the intervals; 0 skips them")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--de-csv", action="store_true",
                        help="write the DE tables as cell-eval's long CSV (real_de.csv, "
                        "pred_de.csv) instead of summary h5ad files (slower for large data)")
    parser.add_argument("--no-report", action="store_true", help="skip report.md and plots")
    add_vcc2026_arguments(parser)


def run_vcc2026(args: argparse.Namespace) -> int:
    from transpert._errors import TranspertInputError
    from transpert._outputs import check_output_dir, output_dir
    from transpert._parallel import numba_threads
    from transpert.evaluate.vcc2026 import bootstrap_vcc2026, evaluate_vcc2026, \
        write_vcc2026_report

    if args.baseline:
        raise TranspertInputError("--baseline is not used by the vcc2026 suite; its baseline is "
                                  "built from the real cells (--anchor) or read from "
                                  "--real-bundle")
    check_output_dir(args.outdir, overwrite=args.overwrite)
    with numba_threads(args.threads):
        result = evaluate_vcc2026(args.pred, args.real, pert_col=args.pert_col,
                                  control=args.control, anchor=args.anchor,
                                  real_bundle=args.real_bundle, baseline_seed=args.baseline_seed,
                                  anchor_base_seed=args.anchor_base_seed,
                                  anchor_splits=args.anchor_splits,
                                  per_perturbation_anchor=args.anchor and args.n_boot > 0)
        ci = None
        if args.n_boot > 0:
            ci = bootstrap_vcc2026(result.results, baseline_results=result.baseline_results,
                                   anchor_values=result.anchor_values,
                                   fixed=None if args.anchor else result.reference,
                                   n_boot=args.n_boot, seed=args.seed)
    with output_dir(args.outdir, overwrite=args.overwrite) as stage:
        result.write(stage)
        if ci is not None and args.no_report:
            from transpert._io import write_csv_atomic
            write_csv_atomic(ci, stage / "ci.csv", index=False)
        if not args.no_report:
            write_vcc2026_report(result, stage, ci=ci)
    means = result.agg.set_index("statistic").loc["mean"]
    summary = ", ".join(f"{m} {means[m]:.4f}" for m in ("pds_cosine",
                                                         "expr_mse_unbiased_capped_norm",
                                                         "de_wilcoxon_sig_jaccard"))
    if result.avg_score is not None:
        summary += f"; avg_score {result.avg_score:.4f}"
    n = result.results["perturbation"].nunique()
    print(f"vcc2026: {n} perturbations: {summary}; written to {args.outdir}")
    return 0


def run(args: argparse.Namespace) -> int:
    from transpert.evaluate._suites import get_suite

    suite = get_suite(args.suite)  # an unknown or unavailable suite fails before any work
    if suite.name == "vcc2026":
        return run_vcc2026(args)
    if args.anchor or args.real_bundle:
        from transpert._errors import TranspertInputError
        raise TranspertInputError("--anchor and --real-bundle belong to --suite vcc2026")
    from transpert._outputs import check_output_dir, output_dir
    from transpert.evaluate import evaluate
    from transpert.evaluate._bootstrap import bootstrap_ci
    from transpert.evaluate._output import write_outputs

    check_output_dir(args.outdir, overwrite=args.overwrite)  # before the work, not after it
    result = evaluate(args.real, args.pred, profile=args.profile, baseline=args.baseline,
                      pert_col=args.pert_col, control=args.control, threads=args.threads,
                      memory_budget=args.memory_budget, ties=args.ties, suite=suite)
    ci = bootstrap_ci(result, n_boot=args.n_boot, seed=args.seed) if args.n_boot > 0 else None
    with output_dir(args.outdir, overwrite=args.overwrite) as stage:
        write_outputs(result, stage, ci=ci, de_csv=args.de_csv, report=not args.no_report,
                      threads=args.threads)
    means = result.means()
    summary = ", ".join(f"{k} {v:.4f}" for k, v in means.items() if k in ("mae", "discrimination_score_l1", "overlap_at_N"))
    if result.score is not None:
        avg = float(result.score["from_baseline"].iloc[-1])
        n_scored = len(result.score) - 1
        if args.profile == "vcc":
            summary += f"; avg_score vs the baseline, the challenge score, {avg:.4f} (x100 on the leaderboard: {100 * avg:.2f})"
        else:  # not the challenge's score: the mean over every metric of the profile
            summary += (f"; avg_score over the {n_scored} metrics of --profile {args.profile} {avg:.4f} "
                        "(not the challenge score, which averages MAE, PDS and DES: --profile vcc)")
    print(f"suite {result.suite} ({suite.reference}), {len(result.results)} perturbations: "
          f"{summary}; written to {args.outdir}")
    return 0
