"""``transpert fit``: fit a TransPert model and save it (JSON + npz, no pickle) for ``predict --model``."""

from __future__ import annotations


def add_arguments(parser) -> None:
    from transpert.cli._common import add_input_arguments

    add_input_arguments(parser, target_required=True)
    parser.add_argument("-o", "--output", required=True, metavar="MODEL", help="model directory written")


def run(args) -> int:
    from transpert import pipeline as pl
    from transpert._errors import TranspertInputError
    from transpert.cli._common import parse_params, read_references, reference_sources

    if not args.reference:
        raise TranspertInputError("transpert fit needs at least one --reference")
    kw = dict(pert_col=args.pert_col, control=args.control, threads=args.threads)
    target, _ = pl.read_input(args.target_train, what=f"target-train ({args.target_train})", **kw)
    refs = read_references(reference_sources(args.reference), **kw)
    model = pl.make_predictor("transpert", parse_params(args.param)).fit(refs, target)
    model.save(args.output)
    print(f"saved TransPert model to {args.output}/ (fitted on {len(refs)} reference lines, "
          f"{target.n_obs} target training perturbations)")
    if hasattr(model, "weights_"):
        print(model.weights_.to_string())
    return 0
