"""Package-level checks: the CLI answers, every subcommand is importable, import stays light."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from transpert.cli import SUBCOMMANDS, main


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "transpert" in capsys.readouterr().out
    assert main([]) == 0


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_subcommand_has_help(name, capsys):
    module = importlib.import_module(SUBCOMMANDS[name][0])
    assert callable(module.add_arguments) and callable(module.run)
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert "usage: transpert" in capsys.readouterr().out


def test_import_is_light():
    # `import transpert` must not pull in numba, anndata or scanpy (the CLI's --help stays fast).
    code = "import sys, transpert, transpert.cli; print(sorted(m for m in ('numba','anndata','scanpy','numba.core') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "transpert", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "COMMAND" in out.stdout


def test_public_api_resolves_and_stays_deferred():
    """Every name of ``transpert.__all__`` resolves, and merely importing the package (or asking
    for its names with dir()) loads none of the heavy dependencies: each name is imported on first
    access, as scanpy's deferred imports do."""
    code = ("import sys, transpert; dir(transpert); "
            "heavy = sorted(m for m in ('numba', 'anndata', 'scanpy', 'pandas', 'scipy') if m in sys.modules); "
            "names = [n for n in transpert.__all__ if getattr(transpert, n, None) is None]; "
            "print(heavy, names)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] []"


def test_public_api_names_the_stage_functions():
    import transpert

    assert transpert.TransPert is importlib.import_module("transpert.transfer").TransPert
    assert transpert.write_prediction is importlib.import_module("transpert.predict").write_prediction
    assert set(transpert.METHODS) >= {"transpert", "cell-mean", "control"}
    with pytest.raises(AttributeError, match="no attribute"):
        transpert.not_a_name  # noqa: B018
