"""``transpert rank``: rank several predictions on the seven generalist metrics (mean rank), or
under ``--suite vcc2026`` by the anchored score of cell-eval2's vcc2026 suite."""

from __future__ import annotations

import argparse

from transpert.cli._common import add_scoring_arguments, add_vcc2026_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--real", required=True, help="real cells (h5ad)")
    parser.add_argument("preds", nargs="*", metavar="PRED.h5ad",
                        help="prediction h5ad files (name = file stem); or give them with --pred")
    parser.add_argument("--pred", action="extend", nargs="+", default=[], dest="pred_opt",
                        metavar="PRED.h5ad", help="prediction h5ad files, as `evaluate --pred`; repeatable")
    parser.add_argument("-o", "--out", "--outdir", dest="outdir", required=True,
                        help="output directory (must be new or empty, see --overwrite)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing non-empty output directory whole")
    add_scoring_arguments(parser)
    parser.add_argument("--n-boot", type=int, default=1000,
                        help="bootstrap resamples for the paired comparison of the top two (and, "
                        "under --suite vcc2026, for each score's interval); 0 skips them")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    add_vcc2026_arguments(parser, anchor_flag=False)


def run_vcc2026(args, preds: list, names: list) -> int:
    """``rank --suite vcc2026``: raw-count predictions ranked by the anchored score."""
    from transpert._outputs import check_output_dir, output_dir
    from transpert._parallel import numba_threads
    from transpert.evaluate.vcc2026._rank import rank_vcc2026, write_leaderboard

    check_output_dir(args.outdir, overwrite=args.overwrite)
    with numba_threads(args.threads):
        board = rank_vcc2026(args.real, dict(zip(names, preds)), real_bundle=args.real_bundle,
                             pert_col=args.pert_col, control=args.control,
                             baseline_seed=args.baseline_seed,
                             anchor_base_seed=args.anchor_base_seed,
                             anchor_splits=args.anchor_splits, n_boot=args.n_boot,
                             seed=args.seed)
    with output_dir(args.outdir, overwrite=args.overwrite) as outdir:
        write_leaderboard(board, outdir)
    print(board.to_text())
    return 0


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from transpert._errors import TranspertInputError
    from transpert._io import atomic_path, write_csv_atomic
    from transpert.evaluate import GENERALIST, evaluate_prepared, prepare
    from transpert.evaluate._bootstrap import generalist_ranking, paired_comparison
    from transpert.evaluate._output import write_results_csv
    from transpert._outputs import check_output_dir, output_dir
    from transpert.evaluate._html import write_html_report
    from transpert.evaluate._report import _md_table

    preds = list(args.preds) + list(args.pred_opt)
    if not preds:
        raise TranspertInputError("give the predictions to rank (PRED.h5ad ... or --pred PRED.h5ad ...)")
    names = [Path(p).stem for p in preds]
    if len(set(names)) != len(names):
        raise TranspertInputError(f"prediction file names must differ (stems: {names})")
    from transpert.evaluate._suites import cell_eval_suite, get_suite as any_suite

    if any_suite(args.suite).name == "vcc2026":
        return run_vcc2026(args, preds, names)
    if args.real_bundle:
        raise TranspertInputError("--real-bundle belongs to --suite vcc2026")
    get_suite = cell_eval_suite
    suite = get_suite(args.suite).name
    kw = dict(pert_col=args.pert_col, control=args.control, threads=args.threads, suite=suite)
    # The real file is streamed and summarised once; each prediction is checked against it
    # before it is read, then streamed, scored and dropped (only summaries stay in memory).
    check_output_dir(args.outdir, overwrite=args.overwrite)  # before the work, not after it
    real = prepare(args.real, "real", memory_budget=args.memory_budget, **kw)
    with output_dir(args.outdir, overwrite=args.overwrite) as outdir:
        results = {}
        for name, path in zip(names, preds):
            pred = prepare(path, path, against=real, memory_budget=args.memory_budget, **kw)
            results[name] = evaluate_prepared(real, pred, metrics=GENERALIST, profile="generalist",
                                              ties=args.ties, **kw)
            pred.summary = None  # its DE arrays are kept; the full summary profile is not needed
            r = results[name]
            write_results_csv(r.results, r.defined, outdir / f"{name}_results.csv")
        ranking = generalist_ranking(results)
        ranking.insert(0, "suite", suite)
        write_csv_atomic(ranking, outdir / "ranking.csv", index=False)
        lines = ["# Generalist ranking", "", f"Suite `{suite}` ({get_suite(suite).reference}). "
                 "Each prediction ranked on the seven metrics (1 = best), then by mean rank.", "", _md_table(ranking), ""]
        if len(results) >= 2 and args.n_boot > 0:
            a, b = ranking["prediction"].iloc[0], ranking["prediction"].iloc[1]
            cmp = paired_comparison(results[a], results[b], n_boot=args.n_boot, seed=args.seed,
                                    names=(a, b))
            cmp.insert(0, "suite", suite)
            write_csv_atomic(cmp, outdir / "paired_top2.csv", index=False)
            lines += [f"## {a} vs {b}: paired bootstrap over perturbations", "", _md_table(cmp), ""]
        with atomic_path(outdir / "ranking.md") as tmp:
            tmp.write_text("\n".join(lines))
        write_html_report(outdir / "ranking.md")  # report.html: the same page for a browser
    print(ranking.to_string(index=False))
    return 0
