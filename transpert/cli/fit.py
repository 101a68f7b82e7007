"""``transpert fit``: fit a TransPert model and save it (JSON + npz, no pickle) for ``predict --model``;
a control-only ``--target-train`` fits and saves zero-shot TransPert."""

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
    from transpert.cli.predict import _zero_shot_target

    if _zero_shot_target(args.target_train, args.pert_col, args.control):
        return _fit_zero_shot(args, kw)
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


def _fit_zero_shot(args, kw) -> int:
    """``transpert fit`` for a target known only by its control cells: zero-shot TransPert."""
    from transpert._h5files import read_h5ad
    from transpert._outputs import output_dir
    from transpert.cli._common import parse_params, read_references
    from transpert.data.tables import reference_sources
    from transpert.methods import make_predictor

    controls = read_h5ad(args.target_train)
    refs = read_references(reference_sources(args.reference), **kw)
    params = {"pert_col": args.pert_col, "control": args.control, **parse_params(args.param)}
    model = make_predictor("transpert-zero-shot", params).fit(refs, controls)
    with output_dir(args.output, overwrite=args.overwrite) as stage:
        model.save(stage)
    print(f"zero-shot: {args.target_train} holds only control cells ({controls.n_obs} cells); saved "
          f"zero-shot TransPert model to {args.output}/ (fitted on {len(refs)} reference lines)")
    print(model.weights_.to_string())
    return 0
