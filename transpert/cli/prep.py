"""``transpert prep``: pack a prediction as a challenge submission (.vcc), as ``cell-eval prep``."""

from __future__ import annotations

from transpert.data.schema import CONTROL_LABEL, PERT_COL
import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred", help="prediction h5ad")
    parser.add_argument("--genes", required=True, help="gene_names.csv (no header; expected order)")
    parser.add_argument("-o", "--out", "--output", dest="output", help="output .vcc (default: <pred>.prep.vcc)")
    parser.add_argument("--pert-col", default=PERT_COL, help="obs column with the perturbation labels")
    parser.add_argument("--celltype-col", default=None, help="cell-type column to keep (optional)")
    parser.add_argument("--control", default=CONTROL_LABEL, help="label of the control cells in that column")
    parser.add_argument("--output-pert-col", default=PERT_COL,
                        help="name of the perturbation column in the .vcc")
    parser.add_argument("--output-celltype-col", default="celltype",
                        help="name of the cell-type column in the .vcc (with --celltype-col)")
    parser.add_argument("--encoding", type=int, choices=[32, 64], default=32, help="float bits of the stored values")
    parser.add_argument("--allow-discrete", action="store_true",
                        help="keep integer data as is (no log1p normalisation)")
    parser.add_argument("--expected-gene-dim", type=int, default=18080,
                        help="expected number of genes (the challenge's); another number is warned "
                        "about; -1 disables the check")
    parser.add_argument("--max-cell-dim", type=int, default=200000,
                        help="maximum number of cells; -1 disables the check")


def run(args: argparse.Namespace) -> int:
    from transpert.evaluate import prep

    out = prep(args.pred, args.genes, args.output, pert_col=args.pert_col,
               celltype_col=args.celltype_col, ntc_name=args.control,
               output_pert_col=args.output_pert_col, output_celltype_col=args.output_celltype_col,
               encoding=args.encoding, allow_discrete=args.allow_discrete,
               expected_gene_dim=None if args.expected_gene_dim == -1 else args.expected_gene_dim,
               max_cell_dim=None if args.max_cell_dim == -1 else args.max_cell_dim)
    print(f"wrote {out}")
    return 0
