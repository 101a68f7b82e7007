"""``transpert baseline``: the challenge's cell-mean baseline, as ``cell-eval baseline`` builds it."""

from __future__ import annotations

from transpert.data.schema import CONTROL_LABEL, PERT_COL
import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train", required=True, help="training cells (h5ad; counts or log1p)")
    parser.add_argument("--counts", required=True,
                        help="CSV with the perturbation column and n_cells (e.g. pert_counts_Validation.csv)")
    parser.add_argument("-o", "--out", "--output", dest="output", required=True, help="baseline h5ad to write")
    parser.add_argument("--pert-col", default=PERT_COL, help="perturbation column [%(default)s]")
    parser.add_argument("--control", default=CONTROL_LABEL, help="control label [%(default)s]")
    parser.add_argument("--counts-col", default="n_cells", help="cell-count column [%(default)s]")


def run(args: argparse.Namespace) -> int:
    from transpert.evaluate import build_baseline

    adata = build_baseline(args.train, args.counts, args.output, pert_col=args.pert_col,
                           control=args.control, counts_col=args.counts_col)
    print(f"baseline: {adata.n_obs} cells x {adata.n_vars} genes written to {args.output}")
    return 0
