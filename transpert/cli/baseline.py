"""``transpert baseline``: the challenge's cell-mean baseline, as ``cell-eval baseline`` builds it."""

from __future__ import annotations

from transpert.data.schema import CONTROL_LABEL, PERT_COL
import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # --target-train as in fit/predict; --train, the old spelling, still accepted
    parser.add_argument("--target-train", "--train", dest="train", required=True, metavar="TRAIN.h5ad",
                        help="the target line's training cells (h5ad; counts or log1p)")
    parser.add_argument("--counts", required=True, metavar="COUNTS.csv",
                        help="CSV with the perturbation column and n_cells (e.g. pert_counts_Validation.csv)")
    parser.add_argument("-o", "--out", "--output", dest="output", required=True, help="baseline h5ad to write")
    parser.add_argument("--pert-col", default=PERT_COL, help="obs column with the perturbation labels")
    parser.add_argument("--control", default=CONTROL_LABEL, help="label of the control cells in that column")
    parser.add_argument("--counts-col", default="n_cells", help="cell-count column")


def run(args: argparse.Namespace) -> int:
    from transpert.evaluate import build_baseline

    adata = build_baseline(args.train, args.counts, args.output, pert_col=args.pert_col,
                           control=args.control, counts_col=args.counts_col)
    print(f"baseline: {adata.n_obs} cells x {adata.n_vars} genes written to {args.output}")
    return 0
