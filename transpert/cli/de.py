"""``transpert de INPUT -o de.csv``: the all-perturbation Wilcoxon DE table (cell-eval's layout)."""

from __future__ import annotations

from transpert.cli.summarize import add_common


def add_arguments(parser) -> None:
    add_common(parser)
    parser.add_argument("-o", "--out", "--output", dest="output", required=True, help="CSV to write (one row per target x gene)")
    parser.add_argument("--means", choices=("pdex", "float64"), default="pdex",
                        help="pdex: float32 means as pdex 0.3.0 / cell-eval 0.8.2 (bit-exact); "
                             "float64: the summary's float64 means")


def run(args) -> int:
    from transpert._io import write_csv_atomic
    from transpert.summarize import de_table, summarize

    summary = summarize(args.input, pert_col=args.pert_col, control=args.control,
                        reference=args.reference, threads=args.threads,
                        memory_budget=args.memory_budget, backend=args.backend, min_cells=args.min_cells,
                        scheduler=args.scheduler,
                        show_progress=False if args.no_progress else None)
    table = de_table(summary, means=args.means)
    write_csv_atomic(table, args.output, index=False)
    print(f"wrote {args.output}: {len(table)} rows")
    return 0
