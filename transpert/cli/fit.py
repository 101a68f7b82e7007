"""``transpert fit``: fit a TransPert model and save it (JSON + npz, no pickle) for ``predict --model``."""

from __future__ import annotations


def add_arguments(parser) -> None:
    from transpert.cli._common import add_input_arguments

    add_input_arguments(parser, target_required=True)
    parser.add_argument("-o", "--out", "--output", dest="output", required=True, metavar="MODEL",
                        help="model directory written (must be new or empty, see --overwrite)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing non-empty model directory whole")


def run(args) -> int:
    from transpert.methods import make_predictor
    from transpert.summarize import read_input
    from transpert._errors import TranspertInputError
    from transpert._outputs import check_output_dir, output_dir
    from transpert.cli._common import parse_params, read_references
    from transpert.data.tables import reference_sources

    if not args.reference:
        raise TranspertInputError("transpert fit needs at least one --reference")
    check_output_dir(args.output, overwrite=args.overwrite)  # before the work, not after it
    kw = dict(pert_col=args.pert_col, control=args.control, threads=args.threads)
    target, _ = read_input(args.target_train, what=f"target-train ({args.target_train})", **kw)
    refs = read_references(reference_sources(args.reference), **kw)
    model = make_predictor("transpert", parse_params(args.param)).fit(refs, target)
    with output_dir(args.output, overwrite=args.overwrite) as stage:
        model.save(stage)
    print(f"saved TransPert model to {args.output}/ (fitted on {len(refs)} reference lines, "
          f"{target.n_obs} target training perturbations)")
    if hasattr(model, "weights_"):
        print(model.weights_.to_string())
    return 0
