"""``transpert run CONFIG.yaml``: a whole reproducible run (summaries, fit, predict, evaluate, report).

Config keys (paths relative to the config file; a reference that is not a file is a dataset name
of the manifest)::

    output: run1                      # directory written (config.yaml, run.json, ...)
    references: {K562: k562.h5ad, RPE1: rpe1_summary.h5ad}
    target_train: h1_train.h5ad       # cells (or a summary + target_controls: cells)
    counts: pert_counts.csv           # target_gene,n_cells: what to predict
    genes: gene_names.csv             # optional output gene order
    real: h1_heldout.h5ad             # optional: evaluate against these cells
    methods: [transpert, cell-mean, linear]   # default: all
    params: {transpert: {temperature: 0.05}}
    seed: 0
    pert_col: target_gene
    control: non-targeting
    max_cells: 100000
    cells: quantile                   # how non-moved genes are drawn: quantile | resample | mean
    move: pseudobulk                  # which genes reach their predicted mean: pseudobulk | de | all
    threads: 2
    scheduler: local:2                # optional: summarise cells on a dask.distributed cluster
                                      # (a scheduler address, or local:N worker processes)
    n_boot: 1000
    suite: vcc2025                    # the scorer: vcc2025 | cell-eval-0.8.2 | vcc2026 (cells
                                      # written as raw counts, ranked by cell-eval2's anchored
                                      # score with the baseline and anchor built from `real`)
"""

from __future__ import annotations


def add_arguments(parser) -> None:
    # The module docstring is the config reference: shown as written under --help (the
    # command line's HelpFormatter keeps descriptions and epilogs raw).
    parser.epilog = __doc__.split("\n", 1)[1].replace("::", ":")
    parser.add_argument("config", metavar="CONFIG.yaml", help="the run configuration (keys below)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the config's output directory whole when it exists and is not empty")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS|local:N",
                        help="summarise cells on a dask.distributed cluster (overrides the "
                        "config's scheduler key): a scheduler address or local:N worker processes")


def run(args) -> int:
    from transpert.run import run_config

    result = run_config(args.config, echo=lambda s: print(s, flush=True),
                           overwrite=args.overwrite, scheduler=args.scheduler)
    if result["leaderboard"] is not None:
        print()
        print(result["leaderboard"].to_text())
    print(f"\noutputs in {result['out_dir']}/ (config.yaml, run.json with versions and timings, "
          "summaries/, predictions/" + (", leaderboard.csv, evaluation/)" if result["leaderboard"] is not None else ")"))
    return 0
