"""`transpert demo`: the README's main command runs end to end and its numbers hold up."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from transpert.cli import main
from transpert.demo import DEMO_METHODS as METHODS


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--n-boot", "100"]) == 0
    printed = capsys.readouterr().out
    for step in range(1, 7):
        assert f"[{step}/6]" in printed
    assert "Leaderboard" in printed and str(out) in printed
    board = pd.read_csv(out / "leaderboard.csv")
    assert sorted(board["method"]) == sorted(METHODS)
    for method in METHODS:
        assert method in printed
        assert (out / "predictions" / f"{method}.h5ad").exists()
        assert (out / "evaluation" / f"{method}_results.csv").exists()
    # intervals contain their point estimates; scores are clipped at 0 like cell-eval's
    assert (board["score_ci_low"] <= board["score"] + 1e-9).all() and (board["score"] <= board["score_ci_high"] + 1e-9).all()
    assert (board["score"] >= 0).all()
    # the cell-mean method written as cell-eval writes the baseline: no gain over it (float32
    # rounding of the mean vector aside)
    assert board.set_index("method").loc["cell-mean", "score"] < 1e-4
    record = json.loads((out / "run.json").read_text())
    assert record["versions"]["transpert"] and record["timings"]["total_s"] > 0
    report = (out / "report.md").read_text()
    assert "| `transpert` |" in report and "reference weights" in report
    page = (out / "report.html").read_text()
    assert "<td><code>transpert</code></td>" in page and "reference weights" in page

    # independent check of the MAE column: pseudo-bulks of the written files with scanpy/numpy
    import scanpy as sc

    real = ad.read_h5ad(out / "real_heldout.h5ad")
    sc.pp.normalize_total(real)
    sc.pp.log1p(real)
    perts = sorted(set(real.obs["target_gene"].astype(str)) - {"non-targeting"})
    for method in ("transpert", "control"):
        pred = ad.read_h5ad(out / "predictions" / f"{method}.h5ad")
        mae = np.mean([np.abs(np.asarray(real[real.obs["target_gene"] == p].X.mean(0), dtype=np.float64).ravel()
                              - np.asarray(pred[pred.obs["target_gene"] == p].X.mean(0), dtype=np.float64).ravel()).mean()
                       for p in perts])
        assert board.set_index("method").loc[method, "mae"] == pytest.approx(mae, rel=1e-4)


def test_demo_rejects_unknown_method(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path / "d"), "--methods", "nope"]) == 2
    assert "unknown methods" in capsys.readouterr().err
