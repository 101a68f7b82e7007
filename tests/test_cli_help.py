"""The command line speaks one language: every option has help, every default is written
"(default: X)", the same input has the same name across commands (old spellings kept)."""

from __future__ import annotations

import argparse
import re

import pytest

from transpert.cli import SUBCOMMANDS, HelpFormatter, build_parser, main


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser(load=command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def _all_parsers():
    for command in SUBCOMMANDS:
        parser = _subparser(command)
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            for name, p in nested[0].choices.items():
                yield f"{command} {name}", p
        else:
            yield command, parser


PARSERS = dict(_all_parsers())


def _help_of(parser, action) -> str:
    """The help text exactly as ``--help`` prints it (defaults expanded), on one line."""
    formatter = parser._get_formatter()
    return " ".join(formatter._expand_help(action).split())


@pytest.mark.parametrize("name", list(PARSERS))
def test_every_option_has_help_and_defaults_are_written_one_way(name):
    parser = PARSERS[name]
    assert isinstance(parser._get_formatter(), HelpFormatter), name
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        label = f"{name} {'/'.join(action.option_strings) or action.dest}"
        assert action.help and action.help is not argparse.SUPPRESS and action.help.strip(), f"{label}: no help"
        text = _help_of(parser, action)
        assert len(text) > 12, f"{label}: help too short: {text!r}"
        for wrong in (r"\[default", r"\[%\(", r"\(default\)", r"\(default [^:]", r"; default:"):
            assert not re.search(wrong, text), f"{label}: default not written '(default: X)': {text!r}"
        default = action.default
        if action.option_strings and default not in (None, False) and default != []:
            assert "(default: " in text, f"{label}: default {default!r} not shown: {text!r}"


def test_formatter_appends_the_default_once():
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter)
    parser.add_argument("--a", default=3, help="an option")
    parser.add_argument("--b", default=None, help="no default to say")
    parser.add_argument("--c", default=2, help="says its own (default: two)")
    parser.add_argument("--d", action="store_true", help="a flag")
    text = " ".join(parser.format_help().split())
    assert "an option (default: 3)" in text
    assert "no default to say" in text and "no default to say (default" not in text
    assert "says its own (default: two)" in text and "(default: two) (default" not in text
    assert "a flag (default" not in text


def test_the_target_training_cells_have_one_name():
    """``--target-train`` in fit, predict and baseline; baseline's old ``--train`` still works."""
    for command in ("fit", "predict", "baseline"):
        options = {s for a in PARSERS[command]._actions for s in a.option_strings}
        assert "--target-train" in options, command
    parser = build_parser(load="baseline")
    new = parser.parse_args(["baseline", "--target-train", "t.h5ad", "--counts", "c.csv", "-o", "b.h5ad"])
    old = parser.parse_args(["baseline", "--train", "t.h5ad", "--counts", "c.csv", "-o", "b.h5ad"])
    assert new.train == old.train == "t.h5ad"


def test_one_spelling_of_the_output_option():
    for name, parser in PARSERS.items():
        outputs = [a for a in parser._actions if "--out" in a.option_strings]
        writes = name not in ("data list", "data fetch", "data verify", "run")
        assert (len(outputs) == 1 and "-o" in outputs[0].option_strings) == writes, name


def test_summarize_help_names_fdr_and_log2fc(capsys):
    with pytest.raises(SystemExit):
        main(["summarize", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Benjamini-Hochberg" in text and "(default: per_perturbation)" in text
    assert "log2(expm1(mean) / expm1(control mean))" in text and "(default: exact)" in text
