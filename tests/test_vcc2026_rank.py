"""``rank --suite vcc2026``: a leaderboard of raw-count predictions by the anchored score.

On simulated raw counts (``simulate_atlas``: the target line as the real cells, two reference
lines as predictions, one similar to the target, one not): each score equals an independent
``evaluate_vcc2026(..., anchor=True)`` of that prediction, the avg_score interval equals the
brute-force bootstrap of test_vcc2026_intervals, the paired comparison is the top two's. Against
a real bundle: the scores equal cell-eval2 0.20.0's stored ``score --real-bundle`` outputs.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from transpert._errors import TranspertInputError
from transpert.cli import main
from transpert.evaluate.vcc2026 import evaluate_vcc2026
from transpert.evaluate.vcc2026._rank import rank_vcc2026
from test_vcc2026_intervals import _brute, _quantiles
from test_vcc2026_parity import COL, EXP, FIX, HERE

N_BOOT, SEED = 20, 3


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    from transpert.data.simulate import simulate_atlas

    out = tmp_path_factory.mktemp("atlas")
    simulate_atlas(out, seed=4, n_reference_lines=2, similarity=(0.9, 0.2), n_genes=200,
                   n_perturbations=10, cells_per_perturbation=150, n_control_cells=300,
                   effect_scale=2.0, n_programs=40, frac_no_effect=0.0,
                   reference_depth=200_000)
    return {name: str(out / f"{name}.h5ad") for name in ("target", "ref1", "ref2")}


@pytest.fixture(scope="module")
def board(atlas):
    return rank_vcc2026(atlas["target"], {"ref2": atlas["ref2"], "ref1": atlas["ref1"]},
                        n_boot=N_BOOT, seed=SEED)


def test_scores_equal_independent_evaluations(atlas, board):
    table = board.table.set_index("prediction")
    assert list(board.table["rank"]) == [1, 2]
    assert board.table.avg_score.is_monotonic_decreasing
    assert set(board.table.suite) == {"vcc2026"}
    for name in ("ref1",):  # ref2 shares ref1's baseline and anchor (checked through ref1)
        alone = evaluate_vcc2026(atlas[name], atlas["target"], anchor=True,
                                 per_perturbation_anchor=True)
        assert table.loc[name, "avg_score"] == pytest.approx(alone.avg_score, rel=1e-12)
        means = alone.agg.set_index("statistic").loc["mean"]
        for m in ("pds_cosine", "de_wilcoxon_sig_jaccard", "expr_mse_unbiased_capped_norm"):
            assert table.loc[name, m] == pytest.approx(means[m], rel=1e-12)
        n = alone.results.perturbation.nunique()
        idx = np.random.default_rng(SEED).integers(0, n, size=(N_BOOT, n))
        _, s = _brute(alone, idx, resampled=True)
        np.testing.assert_allclose(
            [table.loc[name, "avg_score_ci_low"], table.loc[name, "avg_score_ci_high"]],
            _quantiles(s[:, -1]), rtol=1e-12)


def test_paired_top_two(board):
    p = board.paired.set_index("metric")
    first, second = board.table.prediction.iloc[:2]
    assert list(board.paired.columns[2:4]) == [first, second]
    row = p.loc["score:avg_score"]
    assert row[first] - row[second] == pytest.approx(row["difference"])
    assert row["difference"] > 0
    # the line simulated at similarity 0.9 to the target beats the one at 0.2, clearly
    assert first == "ref1" and row["ci_low"] > 0 and row["better"] == "ref1"


def test_against_real_bundle_equals_cell_eval2():
    board = rank_vcc2026(os.path.join(FIX, "real.h5ad"),
                         {"mixed": os.path.join(FIX, "mixed_pred.h5ad"),
                          "constant": os.path.join(FIX, "constant_pred.h5ad")},
                         real_bundle=os.path.join(EXP, "bundle"), pert_col=COL, n_boot=10)
    table = board.table.set_index("prediction")
    for name in ("mixed", "constant"):
        ref = pd.read_csv(os.path.join(EXP, name, "score.csv")).set_index("metric")
        assert table.loc[name, "avg_score"] == pytest.approx(
            ref.loc["avg_score", "from_replicate"], rel=1e-9)
        assert set(board.intervals[name].reference_points) == {"fixed"}


def test_rank_refuses_real_data_not_the_bundles(tmp_path):
    import sys

    sys.path.insert(0, HERE)
    from make_fixtures import mismatch_pair

    real, pred = mismatch_pair("other_cells", FIX, str(tmp_path))
    with pytest.raises(TranspertInputError, match="other counts"):
        rank_vcc2026(real, {"p": pred}, real_bundle=os.path.join(EXP, "bundle"), pert_col=COL)


def test_cli_names_the_suite_in_every_file(atlas, tmp_path, capsys):
    out = tmp_path / "rank"
    assert main(["rank", "--suite", "vcc2026", "--real", atlas["target"], atlas["ref1"],
                 atlas["ref2"], "--n-boot", "5", "-o", str(out)]) == 0
    files = sorted(os.listdir(out))
    assert {"ranking.csv", "paired_top2.csv", "flags.csv", "ranking.md", "report.html",
            "suite.json", "ref1_results.csv", "ref1_ci.csv"} <= set(files)
    assert json.loads((out / "suite.json").read_text())["suite"] == "vcc2026"
    for f in ("ranking.csv", "paired_top2.csv", "flags.csv", "ref1_ci.csv"):
        assert set(pd.read_csv(out / f).suite) == {"vcc2026"}, f
    # results in cell-eval2's layout (the suite is in suite.json beside it)
    assert list(pd.read_csv(out / "ref1_results.csv").columns) == ["perturbation", "metric",
                                                                   "value"]
    assert "Suite `vcc2026`" in (out / "ranking.md").read_text()
    assert "vcc2026" in (out / "report.html").read_text()
    assert "ref1" in capsys.readouterr().out
