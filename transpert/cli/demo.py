"""``transpert demo``: the simulated atlas end to end (see :mod:`transpert.demo`)."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("-o", "--out", default="transpert-demo", metavar="DIR",
                        help="output directory (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="simulation and split seed")
    parser.add_argument("--threads", type=int, default=None, help="cores to use (default: all available)")
    parser.add_argument("--methods", action="extend", nargs="+", default=None, metavar="METHOD",
                        help="methods to run (default: transpert, every few-shot baseline and transpert-zero-shot)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default: %(default)s)")


def run(args) -> int:
    import logging
    import time

    from transpert.methods import METHODS
    from transpert._errors import TranspertInputError
    from transpert.demo import DEMO_METHODS, run_demo

    if not getattr(args, "verbose", 0):  # the numbered steps are the demo's log; -v adds transpert's own
        logging.getLogger("transpert").setLevel(logging.WARNING)
    methods = tuple(args.methods) if args.methods else DEMO_METHODS
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise TranspertInputError(f"unknown methods {unknown}; known: {', '.join(METHODS)}")
    t0 = time.perf_counter()
    print(f"transpert demo: writing to {args.out}/", flush=True)
    result = run_demo(args.out, seed=args.seed, methods=methods, threads=args.threads, n_boot=args.n_boot,
                      echo=lambda s: print(s, flush=True))
    print()
    from transpert.evaluate._suites import get_suite

    suite = get_suite(result.leaderboard.suite)
    print(f"Leaderboard, scored by the {suite.name} suite ({suite.reference}) on the held-out target "
          "perturbations; score = challenge score x100 vs the cell-mean baseline, 95% bootstrap CI; "
          "mean_rank over the 7 generalist metrics, 1 = best:")
    print()
    print(result.leaderboard.to_text())
    print()
    print(f"done in {time.perf_counter() - t0:.1f} s. Outputs in {result.out_dir}/:")
    print("  report.md, leaderboard.csv   the leaderboard and the fitted TransPert weights")
    print("  report.html                  the same report as one page for a browser")
    print("  predictions/*.h5ad           challenge-format predictions (one per method)")
    print("  evaluation/                  per-perturbation metrics and bootstrap intervals")
    print("  summaries/, atlas/           summary profiles and the simulated cells")
    return 0
