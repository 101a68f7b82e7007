"""A run config with ``suite: vcc2026``: predictions written as raw counts, ranked by the anchored
score of cell-eval2's vcc2026 suite (reference points built from the real cells), on simulated
raw counts; each method's score equals an independent ``evaluate_vcc2026`` of its file."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from transpert.cli import main
from transpert.evaluate.vcc2026 import evaluate_vcc2026


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    from transpert.data.simulate import simulate_atlas

    d = tmp_path_factory.mktemp("run26")
    atlas = simulate_atlas(seed=4, n_reference_lines=2, similarity=(0.9, 0.2), n_genes=200,
                           n_perturbations=10, cells_per_perturbation=150, n_control_cells=300,
                           effect_scale=2.0, n_programs=40, frac_no_effect=0.0,
                           reference_depth=200_000)
    for name in atlas.reference_lines:
        atlas.lines[name].write_h5ad(d / f"{name}.h5ad")
    target = atlas.lines[atlas.target_line]
    labels = target.obs["target_gene"].astype(str).to_numpy()
    perts = sorted(set(labels) - {"non-targeting"})
    held = perts[:4]
    ctrl = np.flatnonzero(labels == "non-targeting")
    real_ctrl = np.zeros(len(labels), bool)
    real_ctrl[ctrl[::2]] = True
    target[~np.isin(labels, held) & ~real_ctrl].copy().write_h5ad(d / "train.h5ad")
    target[np.isin(labels, held) | real_ctrl].copy().write_h5ad(d / "real.h5ad")
    pd.DataFrame({"target_gene": held, "n_cells": [120, 100, 110, 90]}).to_csv(
        d / "counts.csv", index=False)
    (d / "run.yaml").write_text(
        "output: out\nreferences: {ref1: ref1.h5ad, ref2: ref2.h5ad}\ntarget_train: train.h5ad\n"
        "counts: counts.csv\nreal: real.h5ad\nmethods: [cell-mean, reference-mean]\n"
        "suite: vcc2026\nn_boot: 20\nthreads: 1\n")
    return d


def test_run_with_vcc2026_suite(config, capsys):
    assert main(["run", str(config / "run.yaml")]) == 0
    text = capsys.readouterr().out
    assert "suite vcc2026" in text
    out = config / "out"
    board = pd.read_csv(out / "leaderboard.csv")
    assert set(board.suite) == {"vcc2026"} and sorted(board.prediction) == ["cell-mean",
                                                                           "reference-mean"]
    assert "Suite `vcc2026`" in (out / "leaderboard.md").read_text()
    assert json.loads((out / "suite.json").read_text())["suite"] == "vcc2026"
    for method in board.prediction:
        path = out / "predictions" / f"{method}.h5ad"
        cells = ad.read_h5ad(path)
        x = cells.X.data if hasattr(cells.X, "data") else np.asarray(cells.X)
        assert np.array_equal(x, np.round(x)) and x.min() >= 0  # raw counts
        alone = evaluate_vcc2026(path, config / "real.h5ad", anchor=True)
        got = board.set_index("prediction").loc[method, "avg_score"]
        assert got == pytest.approx(alone.avg_score, rel=1e-12)
        ci = pd.read_csv(out / "evaluation" / f"{method}_ci.csv")
        assert set(ci.suite) == {"vcc2026"}
        low, high = ci.set_index("metric").loc["score:avg_score", ["ci_low", "ci_high"]]
        assert low <= got <= high
