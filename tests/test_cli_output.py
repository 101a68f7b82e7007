"""What the terminal shows in normal commands: no numpy or anndata noise, a notice when numba
compiles, the leaderboard's abbreviations explained, a score labelled for what it averages."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _evaluate_synth import make_pair
from transpert.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("output")
    real, pred = make_pair(7, n_perts=6, n_genes=24, cells=16, ctrl_cells=40)
    ref, _ = make_pair(8, n_perts=6, n_genes=24, cells=16, ctrl_cells=40)
    real.write_h5ad(d / "real.h5ad")
    pred.write_h5ad(d / "pred.h5ad")
    ref.write_h5ad(d / "ref.h5ad")
    counts = real.obs["target_gene"].value_counts().rename_axis("target_gene").reset_index(name="n_cells")
    counts[counts["target_gene"] != "non-targeting"].to_csv(d / "counts.csv", index=False)
    assert main(["baseline", "--train", str(d / "real.h5ad"), "--counts", str(d / "counts.csv"),
                 "-o", str(d / "base.h5ad")]) == 0
    return {k: d / f"{k}.h5ad" for k in ("real", "pred", "ref", "base")} | {"counts": d / "counts.csv"}


def test_evaluate_with_a_baseline_warns_nothing(files, tmp_path, capsys):
    """The baseline scored against itself leaves metrics without a defined value: their means
    are NaN, computed without numpy's 'Mean of empty slice'."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["evaluate", "--real", str(files["real"]), "--pred", str(files["base"]),
                     "--baseline", str(files["base"]), "-o", str(tmp_path / "ev"), "--n-boot", "20",
                     "--profile", "full", "--threads", "1", "--no-report"])
    assert code == 0
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
    ci = pd.read_csv(tmp_path / "ev" / "ci.csv")
    assert ci["mean"].isna().any()  # the case that used to warn is there
    out = capsys.readouterr().out
    assert "avg_score over the" in out and "metrics of --profile full" in out and "not the challenge score" in out


def test_the_vcc_profile_score_is_called_the_challenge_score(files, tmp_path, capsys):
    assert main(["evaluate", "--real", str(files["real"]), "--pred", str(files["pred"]),
                 "--baseline", str(files["base"]), "-o", str(tmp_path / "ev"), "--n-boot", "0",
                 "--threads", "1", "--no-report"]) == 0
    out = capsys.readouterr().out
    assert "avg_score vs the baseline, the challenge score," in out and "not the challenge score" not in out


def test_point_means_equal_nanmean_where_defined():
    from transpert.evaluate._bootstrap import _point_means

    rng = np.random.default_rng(1)
    values = rng.normal(size=(40, 5))
    values[rng.random(values.shape) < 0.3] = np.nan
    values[:, 2] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = _point_means(values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = np.nanmean(values, axis=0)
    np.testing.assert_array_equal(got, want)  # same sums and counts: bit for bit


def test_no_library_chatter_on_the_terminal(files, tmp_path):
    """A real process (the log handlers are the command line's own): predict writes a
    pseudo-bulk h5ad with string columns, which anndata used to announce on stderr."""
    env = dict(os.environ, PYTHONWARNINGS="default")
    argv = [sys.executable, "-m", "transpert", "predict", "--method", "cell-mean", "--reference",
            str(files["ref"]), "--target-train", str(files["real"]), "--counts", str(files["counts"]),
            "-o", str(tmp_path / "p.h5ad"), "--pseudobulk", str(tmp_path / "pb.h5ad"), "--threads", "1"]
    run = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "storing" not in run.stderr and "Warning" not in run.stderr, run.stderr
    assert "INFO transpert" in run.stderr  # transpert's own progress log is still shown


def test_compile_notice_once_and_only_when_numba_compiles():
    from numba import njit

    from transpert.kernels._compile_notice import NOTICE, compile_notice

    said = []
    with compile_notice(said.append):
        @njit(cache=False)
        def twice(x):
            return 2 * x

        @njit(cache=False)
        def thrice(x):
            return 3 * x

        assert twice(2) + thrice(2) == 10  # two compilations, one notice
    assert said == [NOTICE]
    said.clear()
    with compile_notice(said.append):
        assert twice(4) == 8  # compiled already: nothing said
    assert said == []


def test_leaderboard_legend_explains_every_abbreviation():
    from transpert.evaluate.leaderboard import GENERALIST_METRICS, LEGEND, _SHORT, format_legend

    text = format_legend()
    for metric in GENERALIST_METRICS:
        assert f"  {_SHORT[metric]} " in text and f"({metric}" in text or metric == "pr_auc"
    assert "  nan " in text and "  score " in text and "mean_rank" in text
    assert format_legend(markdown=True).count("\n- `") == len(LEGEND) - 1
    assert max(len(line) for line in text.splitlines()) <= 100
