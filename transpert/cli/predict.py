"""``transpert predict``: predict held-out perturbations and write challenge-format cells.

One step (``--method`` with ``--reference``/``--target-train``) or two (``--model`` from
``transpert fit``). The perturbations predicted are those of the ``--counts`` table.

Zero-shot: when ``--target-train`` holds only control cells (every ``--pert-col`` value is the
control label), the target has no training perturbation; the method is replaced by its
zero-shot counterpart (``transpert`` -> ``transpert-zero-shot``,
:func:`transpert.methods.zero_shot_method`), fitted on the references and the control cells, and
the output says so.
"""

from __future__ import annotations

METHOD_HELP = ("transpert, control, cell-mean, train-mean, reference-mean, linear, linear-transfer, "
               "deg-frequency; zero-shot (a --target-train of control cells only): transpert-zero-shot, "
               "zero-shot-control, zero-shot-reference-mean, zero-shot-mean-response, zero-shot-linear")


def add_arguments(parser) -> None:
    from transpert.cli._common import add_input_arguments

    parser.add_argument("--method", default="transpert", help=f"one of: {METHOD_HELP} (default: %(default)s)")
    parser.add_argument("--model", metavar="MODEL", help="a TransPert model saved by `transpert fit` (no refit); "
                        "with a control-only --target-train, a zero-shot one")
    add_input_arguments(parser, target_required=True)
    parser.add_argument("--counts", required=True, metavar="COUNTS.csv",
                        help="target_gene,n_cells table: the perturbations to predict and their cells "
                        "(with --format counts the n_cells column may be left out: 400 cells each)")
    parser.add_argument("--format", choices=("log1p", "counts"), default="log1p",
                        help="cells written: 'log1p' normalised values (2025 challenge) or 'counts' integer "
                        "raw UMI counts built from the target's raw control cells (2026 challenge, "
                        "cell-eval2 vcc2026) (default: %(default)s)")
    parser.add_argument("--genes", metavar="GENES.csv",
                        help="gene order of the output, one column, no header (default: the target's genes)")
    parser.add_argument("--target-controls", metavar="CELLS.h5ad",
                        help="the target's control cells, needed when --target-train is a summary profile")
    parser.add_argument("-o", "--out", "--output", dest="output", required=True, metavar="PRED.h5ad", help="the prediction written")
    parser.add_argument("--pseudobulk", metavar="PB.h5ad", help="also write the pseudo-bulk prediction here")
    parser.add_argument("--max-cells", type=int, default=None,
                        help="cap on cells written, controls included; counts scaled down to fit "
                        "(default: 100000, the 2025 challenge's, for log1p; no cap for counts; -1: no cap)")
    parser.add_argument("--cells", choices=("quantile", "resample", "mean"), default=None,
                        help="how control cells are drawn for each perturbation (default: the method's "
                        "choice: 'mean' for cell-mean, as cell-eval writes its baseline; else 'quantile')")
    parser.add_argument("--move", choices=("pseudobulk", "de", "all"), default="pseudobulk",
                        help="which genes are moved to their predicted means: 'pseudobulk' every gene, the "
                        "non-DE ones on a few cells so they stay non-significant; 'de' only the predicted "
                        "DEGs; 'all' every gene in every cell (default: %(default)s)")
    parser.add_argument("--deg-threshold", type=float, default=0.5,
                        help="deg_probability from which a gene is moved (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cell sampling (default: %(default)s)")


def run(args) -> int:
    import logging

    from transpert.data.controls import target_controls
    from transpert.methods import fit_predict
    from transpert.summarize import read_input
    from transpert._errors import TranspertInputError
    from transpert.cli._common import parse_params, read_references
    from transpert.data.tables import read_counts, read_gene_list, reference_sources

    from transpert._outputs import check_output_file

    log = logging.getLogger("transpert.predict")
    check_output_file(args.output)  # before the work, not after it
    if args.pseudobulk:
        check_output_file(args.pseudobulk, option="--pseudobulk")
    kw = dict(pert_col=args.pert_col, control=args.control, threads=args.threads)
    from transpert.predict._counts import with_default_cells

    counts = with_default_cells(args.counts, None, args.pert_col, "n_cells", args.control) \
        if args.format == "counts" else args.counts
    counts = read_counts(counts, pert_col=args.pert_col)
    perts = [p for p in counts[args.pert_col] if p != args.control]
    if _zero_shot_target(args.target_train, args.pert_col, args.control):
        return _run_zero_shot(args, counts, perts, log)
    target_summary, target_cells = read_input(args.target_train, what=f"target-train ({args.target_train})", **kw)
    # the control cells are read before the fit, so a problem with them stops the command
    # before any work is done or any file written
    controls_source = args.target_controls or target_cells
    if controls_source is None:
        raise TranspertInputError("--target-train is a summary profile: give the target's control cells "
                                  "with --target-controls")
    controls, target_sum = target_controls(controls_source,
                                              whole_file_median=controls_source is target_cells,
                                              pert_col=args.pert_col, control=args.control)
    if args.model:
        if args.method not in ("transpert",):
            raise TranspertInputError("--model is a TransPert model: leave --method at 'transpert'")
        from transpert.transfer import TransPert

        model = TransPert.load(args.model)
        log.info("loaded TransPert model %s", args.model)
        prediction = model.predict(perts)
    else:
        refs = read_references(reference_sources(args.reference), **kw)
        _, prediction = fit_predict(args.method, refs, target_summary, perts, parse_params(args.param))
    genes = read_gene_list(args.genes) if args.genes else list(target_summary.var_names)
    return _write_cells(args, prediction, controls, counts, genes, target_sum, len(perts))


def _write_cells(args, prediction, controls, counts, genes, target_sum, n_perts: int, note: str = "") -> int:
    """Write the prediction's cells (and ``--pseudobulk``, after them: a failure leaves neither
    file) and say what was written."""
    from transpert._io import write_h5ad_atomic
    from transpert.predict import write_prediction

    out = write_prediction(prediction, controls, counts, genes, args.output, pert_col=args.pert_col,
                           control=args.control, max_cells=_max_cells(args),
                           deg_threshold=args.deg_threshold, cells=args.cells, move=args.move,
                           seed=args.seed, target_sum=target_sum, show_progress=None,
                           format=args.format, threads=args.threads)
    if args.pseudobulk:
        write_h5ad_atomic(prediction, args.pseudobulk)
    info = out.uns["transpert_cells"]
    print(f"wrote {args.output}: {out.n_obs} cells ({n_perts} perturbations + {info['n_control_cells']} "
          f"controls) x {out.n_vars} genes, "
          + ("integer raw counts" if args.format == "counts" else "log1p float32")
          + (f"; cell counts scaled by {info['cap_factor']:.4f} to respect --max-cells" if info["cap_factor"] < 1 else "")
          + note)
    out.file.close()
    return 0


def _max_cells(args):
    """``--max-cells``: unset -> the writer's default for the format, -1 -> no cap."""
    return "auto" if args.max_cells is None else None if args.max_cells == -1 else args.max_cells


def _zero_shot_target(source, pert_col: str, control: str) -> bool:
    """Whether ``source`` (a file) holds only control cells, or a summary without perturbations."""
    from pathlib import Path

    if not Path(source).exists():
        return False
    from transpert._h5files import read_h5ad
    from transpert.transfer import only_controls

    adata = read_h5ad(source, backed="r")
    try:
        return only_controls(adata, pert_col=pert_col, control=control)
    finally:
        adata.file.close()


def _run_zero_shot(args, counts, perts, log) -> int:
    """``transpert predict`` for a target known only by its control cells."""
    from transpert._errors import TranspertInputError
    from transpert.cli._common import parse_params, read_references
    from transpert.data.controls import target_controls
    from transpert.data.tables import read_gene_list, reference_sources
    from transpert.methods import fit_predict, zero_shot_method

    # the cells the prediction is built from: --target-controls when given (needed when
    # --target-train is a summary without perturbations), else the control-only file itself
    controls, target_sum = target_controls(args.target_controls or args.target_train, whole_file_median=True,
                                           pert_col=args.pert_col, control=args.control)
    if args.model:
        from transpert.transfer import ZeroShotTransPert
        from transpert.transfer.zero_shot_serialize import FORMAT, saved_format

        if saved_format(args.model) != FORMAT:
            raise TranspertInputError("--target-train holds only control cells (zero-shot) but --model is not a "
                                      "zero-shot TransPert model (save one with `transpert fit` on a control-only "
                                      "--target-train), or leave out --model to fit zero-shot TransPert")
        if args.method not in ("transpert", "transpert-zero-shot"):
            raise TranspertInputError("--model is a zero-shot TransPert model: leave --method at 'transpert'")
        model = ZeroShotTransPert.load(args.model)
        print(f"zero-shot: {args.target_train} holds only control cells ({controls.n_obs} cells); predicting "
              f"with the zero-shot TransPert model {args.model} (no refit)")
        prediction = model.predict(perts)
        method = "transpert-zero-shot"
    else:
        method = zero_shot_method(args.method)
        how = f" (the zero-shot counterpart of --method {args.method})" if method != args.method else ""
        print(f"zero-shot: {args.target_train} holds only control cells ({controls.n_obs} cells, no target "
              f"perturbation); predicting with {method}{how} from the reference lines alone")
        refs = read_references(reference_sources(args.reference), pert_col=args.pert_col, control=args.control,
                               threads=args.threads)
        params = parse_params(args.param)
        if method == "transpert-zero-shot":
            params = {"pert_col": args.pert_col, "control": args.control, **params}
        model, prediction = fit_predict(method, refs, controls, perts, params)
    if method == "transpert-zero-shot":
        log.info("zero-shot TransPert: temperature %s, scales %.2f (generic) %.2f (specific), DEG threshold %s",
                 model.temperature_, model.common_scale_, model.specific_scale_, model.deg_threshold_)
    genes = read_gene_list(args.genes) if args.genes else list(controls.var_names)
    return _write_cells(args, prediction, controls, counts, genes, target_sum, len(perts),
                        note=f"; zero-shot prediction ({method})")
