"""vcc2026 score vs cell-eval2 0.20.0's stored outputs: the mean-response baseline
(``cell-eval2 baseline``), the replicate anchor (``run --anchor``: splits and means), the score
against the real bundle (``score --real-bundle``) both with the reference points built here and
read from the stored bundle. Tolerance 1e-9 relative (observed: <= 1e-13)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from transpert.evaluate.vcc2026 import evaluate_vcc2026, summarize_real
from transpert.evaluate.vcc2026._anchor import replicate_anchor, split_seeds
from transpert.evaluate.vcc2026._baseline import baseline_side
from transpert.evaluate.vcc2026._run import metrics_from_sides, results_table
from test_vcc2026_parity import ATOL, COL, EXP, FIX, RTOL, assert_results_equal


@pytest.fixture(scope="module")
def real():
    return summarize_real(os.path.join(FIX, "real.h5ad"), pert_col=COL)


def test_baseline_equals_cell_eval2(real):
    ours = results_table(metrics_from_sides(real, baseline_side(real, seed=0)))
    assert_results_equal(ours, pd.read_csv(os.path.join(EXP, "baseline", "baseline_results.csv")))


def test_anchor_equals_cell_eval2(real):
    splits, anchor = replicate_anchor(real, base_seed=0, n_splits=5, chunk_rows=101)
    ref = pd.read_csv(os.path.join(EXP, "anchor", "anchor_splits.csv"))
    assert sorted(set(splits.seed)) == sorted(set(ref.seed)) == sorted(split_seeds(0, 5))
    m = ref.merge(splits, on=["split_index", "metric"], suffixes=("_ref", "_us"))
    assert len(m) == len(ref) == len(splits)
    np.testing.assert_allclose(m.value_us, m.value_ref, rtol=RTOL, atol=ATOL)
    ref_agg = pd.read_csv(os.path.join(EXP, "anchor", "anchor_agg.csv")).set_index("metric")
    got = anchor.set_index("metric")
    np.testing.assert_allclose(got.loc[ref_agg.index, "replicate"], ref_agg["replicate"],
                               rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(got.loc[ref_agg.index, "replicate_sd"], ref_agg["replicate_sd"],
                               rtol=1e-7, atol=ATOL)


def _check_score(score: pd.DataFrame, name: str) -> None:
    ref = pd.read_csv(os.path.join(EXP, name, "score.csv")).set_index("metric")
    got = score.set_index("metric")
    assert list(got.index) == list(ref.index)
    np.testing.assert_allclose(got["from_replicate"], ref["from_replicate"], rtol=RTOL, atol=ATOL)
    fb = ref["from_baseline"].drop("avg_score")
    np.testing.assert_allclose(got.loc[fb.index, "from_baseline"], fb, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", ["mixed", "constant"])
def test_score_from_real_bundle(name, tmp_path):
    out = evaluate_vcc2026(os.path.join(FIX, f"{name}_pred.h5ad"), os.path.join(FIX, "real.h5ad"),
                           tmp_path, pert_col=COL, real_bundle=os.path.join(EXP, "bundle"))
    _check_score(out.score, name)
    assert sorted(os.listdir(tmp_path)) == ["agg_results.csv", "results.csv", "score.csv",
                                            "suite.json"]


def test_score_with_anchor_built_here(tmp_path):
    out = evaluate_vcc2026(os.path.join(FIX, "replicate_pred.h5ad"),
                           os.path.join(FIX, "real.h5ad"), tmp_path, pert_col=COL, anchor=True)
    _check_score(out.score, "replicate")
    assert out.avg_score == pytest.approx(
        pd.read_csv(os.path.join(EXP, "replicate", "score.csv")).from_replicate.iloc[-1],
        rel=RTOL)
