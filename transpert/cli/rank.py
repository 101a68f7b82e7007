"""``transpert rank``: rank several predictions on the seven generalist metrics (mean rank)."""

from __future__ import annotations

import argparse

from transpert.cli._common import add_scoring_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--real", required=True, help="real cells (h5ad)")
    parser.add_argument("preds", nargs="+", help="prediction h5ad files (name = file stem)")
    parser.add_argument("-o", "--outdir", required=True, help="output directory")
    add_scoring_arguments(parser)
    parser.add_argument("--n-boot", type=int, default=1000,
                        help="bootstrap resamples for the paired comparison of the top two [%(default)s]")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed [%(default)s]")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from transpert._errors import TranspertInputError
    from transpert._io import atomic_path, write_csv_atomic
    from transpert.evaluate import GENERALIST, evaluate_prepared, prepare
    from transpert.evaluate._bootstrap import generalist_ranking, paired_comparison
    from transpert.evaluate._output import write_results_csv
    from transpert.evaluate._report import _md_table

    names = [Path(p).stem for p in args.preds]
    if len(set(names)) != len(names):
        raise TranspertInputError(f"prediction file names must differ (stems: {names})")
    kw = dict(pert_col=args.pert_col, control=args.control, threads=args.threads)
    # The real file is streamed and summarised once; each prediction is checked against it
    # before it is read, then streamed, scored and dropped (only summaries stay in memory).
    real = prepare(args.real, "real", memory_budget=args.memory_budget, **kw)
    results = {}
    outdir = Path(args.outdir)
    for name, path in zip(names, args.preds):
        pred = prepare(path, path, against=real, memory_budget=args.memory_budget, **kw)
        results[name] = evaluate_prepared(real, pred, metrics=GENERALIST, profile="generalist",
                                          ties=args.ties, **kw)
        pred.summary = None  # its DE arrays are kept; the full summary profile is not needed
        r = results[name]
        write_results_csv(r.results, r.defined, outdir / f"{name}_results.csv")
    ranking = generalist_ranking(results)
    write_csv_atomic(ranking, outdir / "ranking.csv", index=False)
    lines = ["# Generalist ranking", "", "Each prediction ranked on the seven metrics (1 = best), "
             "then by mean rank.", "", _md_table(ranking), ""]
    if len(results) >= 2 and args.n_boot > 0:
        a, b = ranking["prediction"].iloc[0], ranking["prediction"].iloc[1]
        cmp = paired_comparison(results[a], results[b], n_boot=args.n_boot, seed=args.seed,
                                names=(a, b))
        write_csv_atomic(cmp, outdir / "paired_top2.csv", index=False)
        lines += [f"## {a} vs {b}: paired bootstrap over perturbations", "", _md_table(cmp), ""]
    with atomic_path(outdir / "ranking.md") as tmp:
        tmp.write_text("\n".join(lines))
    print(ranking.to_string(index=False))
    return 0
