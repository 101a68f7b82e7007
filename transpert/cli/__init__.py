"""The ``transpert`` command line: a thin dispatcher over one module per subcommand.

Each subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int`` and imports its
heavy dependencies inside ``run``, so ``transpert --help`` stays fast. A subcommand with its own
sub-subcommands (``transpert data list``) adds them in ``add_arguments``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys

from transpert import __version__

# name -> (module, one-line help). Order is the order shown by --help.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("transpert.cli.demo", "simulated atlas end to end: summaries, fit, predict, evaluate, leaderboard"),
    "simulate": ("transpert.cli.simulate", "write a simulated multi-cell-line Perturb-seq atlas"),
    "data": ("transpert.cli.data", "list, fetch and verify the datasets of the manifest"),
    "summarize": ("transpert.cli.summarize", "pseudo-bulk and Wilcoxon DE summary profile of a dataset"),
    "de": ("transpert.cli.de", "all-perturbation Wilcoxon DE table (cell-eval's layout)"),
    "fit": ("transpert.cli.fit", "fit a TransPert model on reference and target-training data"),
    "predict": ("transpert.cli.predict", "predict held-out perturbations and write challenge-format cells"),
    "run": ("transpert.cli.run", "a whole reproducible run from a YAML config"),
    "evaluate": ("transpert.cli.evaluate", "score a prediction against real cells (cell-eval's metrics)"),
    "baseline": ("transpert.cli.baseline", "build the challenge's cell-mean baseline"),
    "rank": ("transpert.cli.rank", "rank several predictions on the generalist metrics"),
    "prep": ("transpert.cli.prep", "pack a prediction as a challenge submission (.vcc)"),
}


#: the commands that read cells or summaries: they share the input options below
INPUT_COMMANDS = ("summarize", "de", "fit", "predict", "run", "evaluate", "baseline", "rank", "prep")


def add_input_file_options(parser: argparse.ArgumentParser) -> None:
    """Options of every command that reads input files (one spelling, one rule everywhere)."""
    group = parser.add_argument_group("input files")
    group.add_argument("--duplicate-genes", choices=("error", "make_unique"), default="error",
                       help="two genes of one name in an input: error, or make_unique "
                       "(later ones renamed -1, -2 ..., as anndata does)")
    group.add_argument("--manifest", metavar="YAML", default=None,
                       help="extra dataset manifest merged over the packaged one, so its dataset "
                       "names can be given as inputs (default: none; also $TRANSPERT_MANIFEST)")


@contextlib.contextmanager
def _input_rules(args):
    """The input options in force while a command runs (and only then)."""
    import os

    from transpert.data.manifest import MANIFEST_ENV
    from transpert.data.schema import duplicate_genes

    old = os.environ.get(MANIFEST_ENV)
    manifest = getattr(args, "manifest", None)
    if manifest is not None:
        from transpert.data.manifest import read_manifest_file

        read_manifest_file(manifest)  # a missing or bad file is reported before any work
        os.environ[MANIFEST_ENV] = os.pathsep.join(filter(None, [old, str(manifest)]))
    try:
        with duplicate_genes(getattr(args, "duplicate_genes", None) or "error"):
            yield
    finally:
        if manifest is not None:
            if old is None:
                os.environ.pop(MANIFEST_ENV, None)
            else:
                os.environ[MANIFEST_ENV] = old


def _compile_notice(command: str):
    """One line on stderr when numba compiles transpert's kernels (the first run), for the
    commands that use them."""
    if command == "data":
        return contextlib.nullcontext()
    from transpert.kernels._compile_notice import compile_notice

    return compile_notice(lambda text: print(f"transpert {command}: {text}", file=sys.stderr, flush=True))


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """One way of writing defaults in every command's help: "(default: X)" after the text.

    An option whose help says nothing of its default gets "(default: X)" appended when it has
    a value worth saying (not None, False or empty); a help text may write its own
    "(default: ...)" where the default needs words (e.g. "all available"). Descriptions and
    epilogs are printed as written (``run``'s config reference).
    """

    def _get_help_string(self, action):
        text = action.help or ""
        if "%(default)" in text or "(default:" in text:
            return text
        default = action.default
        if action.option_strings and default not in (None, False, argparse.SUPPRESS) and default != []:
            text += " (default: %(default)s)"
        return text


def build_parser(load: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only the subcommand ``load`` has its module imported."""
    parser = argparse.ArgumentParser(
        prog="transpert", formatter_class=HelpFormatter,
        description="Predict perturbation responses across cell lines with statistics, "
        "and evaluate predictions as the Virtual Cell Challenge did.",
    )
    parser.add_argument("--version", action="version", version=f"transpert {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)
        if name == load:
            module = importlib.import_module(module_name)
            module.add_arguments(sp)
            if name in INPUT_COMMANDS:
                add_input_file_options(sp)
            sp.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if a in SUBCOMMANDS), None)
    parser = build_parser(load=command)
    args = parser.parse_args(argv)
    # transpert's own log from INFO (-vv: DEBUG); other libraries' only from WARNING, so their
    # chatter (anndata's "... storing 'x' as categorical" on every write) stays off the terminal
    # unless -vv asks for everything
    debug = args.verbose >= 2
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("transpert").setLevel(logging.DEBUG if debug else logging.INFO)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0 if args.command is None else 2
    from transpert._errors import TranspertInputError

    try:
        with _input_rules(args), _compile_notice(args.command):
            return int(args._run(args) or 0)
    except TranspertInputError as err:
        print(f"transpert {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        # the file system, not transpert: an unreadable file, a full disk, no permission
        print(f"transpert {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
