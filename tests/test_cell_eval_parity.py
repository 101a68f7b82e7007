"""Parity with cell-eval 0.8.2 itself: every metric per perturbation, aggregates and the score.

cell-eval is run through its Python API (``MetricsEvaluator``, the code behind ``cell-eval run``)
on small seeded pairs covering raw counts, log1p input, no / exactly one real DE gene, constant
predicted cells, infinite fold changes and ties. Floats must agree to 1e-6 (cell-eval sums in
float32 in places, we sum in float64), ranks, overlaps and counts exactly, nulls in the same
places. Two layers are checked: the metric layer on cell-eval's own DE tables, and the whole
pipeline with transpert's DE engine.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from _evaluate_synth import CONTROL, make_pair

cell_eval = pytest.importorskip("cell_eval")
pl = pytest.importorskip("polars")

from transpert.evaluate import build_baseline, evaluate, evaluate_prepared, prepare, score  # noqa: E402

SKIP = ["pearson_edistance", "clustering_agreement"]
EXACT = {"de_nsig_counts_real", "de_nsig_counts_pred", "discrimination_score_l1",
         "discrimination_score_l2", "discrimination_score_cosine"}


def _cell_eval(real_path, pred_path, outdir, profile):
    logging.getLogger("cell_eval").setLevel(logging.ERROR)
    ev = cell_eval.MetricsEvaluator(adata_pred=str(pred_path), adata_real=str(real_path),
                                    control_pert=CONTROL, pert_col="target_gene", num_threads=1,
                                    outdir=str(outdir))
    return ev.compute(profile=profile, skip_metrics=SKIP, break_on_error=True)


def _compare(ce_results, ce_agg, mine):
    ce = ce_results.to_pandas()
    assert list(ce.columns) == list(mine.results.columns)
    assert list(ce["perturbation"]) == list(mine.results["perturbation"])
    for c in ce.columns[1:]:
        expected = ce[c].to_numpy(dtype=float)
        got = mine.results[c].to_numpy(dtype=float)
        null = ce_results[c].is_null().to_numpy()
        np.testing.assert_array_equal(~mine.defined[c].to_numpy(), null, err_msg=c)
        if c in EXACT or c.startswith(("overlap", "precision")):
            np.testing.assert_array_equal(got[~null], expected[~null], err_msg=c)
        else:
            np.testing.assert_allclose(got[~null], expected[~null], rtol=0, atol=1e-6, err_msg=c)
    agg = ce_agg.to_pandas()
    assert list(agg.columns) == list(mine.agg_results.columns)
    for c in agg.columns[1:]:
        np.testing.assert_allclose(mine.agg_results[c].to_numpy(dtype=float),
                                   agg[c].to_numpy(dtype=float), rtol=0, atol=1e-6, err_msg=c)


def _write(tmp_path, seed, log1p=False):
    real, pred = make_pair(seed, log1p=log1p)
    real.write_h5ad(tmp_path / "real.h5ad")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    return tmp_path / "real.h5ad", tmp_path / "pred.h5ad"


@pytest.mark.parametrize("seed,log1p", [(0, False), (1, False), (2, True)])
def test_metric_layer_on_cell_eval_de(tmp_path, seed, log1p):
    """Our metrics on cell-eval's own DE tables equal cell-eval's metrics."""
    real_path, pred_path = _write(tmp_path, seed, log1p)
    ce_results, ce_agg = _cell_eval(real_path, pred_path, tmp_path / "ce", "full")
    kw = dict(pert_col="target_gene", control=CONTROL, threads=1, suite="cell-eval-0.8.2")
    real, pred = prepare(real_path, "real", **kw), prepare(pred_path, "pred", **kw)
    real.de_table = pd.read_csv(tmp_path / "ce" / "real_de.csv")
    pred.de_table = pd.read_csv(tmp_path / "ce" / "pred_de.csv")
    mine = evaluate_prepared(real, pred, profile="full", **kw)
    _compare(ce_results, ce_agg, mine)
    # The edge cases are really there.
    n_real = mine.results.set_index("perturbation")["de_nsig_counts_real"]
    assert n_real["G0"] == 0 and n_real["G1"] == 1
    assert np.isnan(mine.results.set_index("perturbation").loc["G1", "de_spearman_lfc_sig"])
    assert np.isinf(mine.de.real_lfc).any()


@pytest.mark.parametrize("profile", ["vcc", "full"])
def test_end_to_end_with_transpert_de(tmp_path, profile):
    """The whole pipeline (our normalisation, pseudo-bulks and DE engine) equals cell-eval."""
    real_path, pred_path = _write(tmp_path, 3)
    ce_results, ce_agg = _cell_eval(real_path, pred_path, tmp_path / "ce", profile)
    mine = evaluate(real_path, pred_path, profile=profile, threads=1, suite="cell-eval-0.8.2")
    _compare(ce_results, ce_agg, mine)


def test_baseline_and_score(tmp_path):
    """build_baseline equals cell-eval's build_base_mean_adata; the score equals score_agg_metrics."""
    real_path, pred_path = _write(tmp_path, 4)
    train, _ = make_pair(5)
    train.write_h5ad(tmp_path / "train.h5ad")
    counts = pd.DataFrame({"target_gene": ["G1", "G2", CONTROL, "G5"], "n_cells": [3, 0, 7, 2]})
    counts.to_csv(tmp_path / "counts.csv", index=False)
    ce_base = cell_eval.build_base_mean_adata(str(tmp_path / "train.h5ad"), str(tmp_path / "counts.csv"))
    mine = build_baseline(tmp_path / "train.h5ad", tmp_path / "counts.csv", tmp_path / "b.h5ad").to_memory()
    ce_x = ce_base.X.toarray() if hasattr(ce_base.X, "toarray") else np.asarray(ce_base.X)
    np.testing.assert_allclose(mine.X, ce_x, rtol=0, atol=1e-6)
    assert list(mine.obs_names) == list(ce_base.obs_names)
    assert list(mine.obs["target_gene"].astype(str)) == list(ce_base.obs["target_gene"].astype(str))

    # Full baseline of the real file's perturbations, then the score of a prediction.
    import anndata as ad

    r = ad.read_h5ad(real_path)
    counts = r.obs["target_gene"].value_counts().rename_axis("target_gene").reset_index(name="n_cells")
    counts.to_csv(tmp_path / "counts_real.csv", index=False)
    build_baseline(tmp_path / "train.h5ad", tmp_path / "counts_real.csv", tmp_path / "base.h5ad")
    _, agg_u = _cell_eval(real_path, pred_path, tmp_path / "ce_u", "vcc")
    _, agg_b = _cell_eval(real_path, tmp_path / "base.h5ad", tmp_path / "ce_b", "vcc")
    expected = cell_eval.score_agg_metrics(agg_u, agg_b).to_pandas()
    # score() on cell-eval's own aggregates is cell-eval's score, bit for bit.
    means = lambda agg: {c: float(agg.filter(pl.col("statistic") == "mean")[c][0]) for c in agg.columns[1:]}  # noqa: E731
    exact = score(means(agg_u), means(agg_b))
    assert list(exact["metric"]) == list(expected["metric"])
    np.testing.assert_array_equal(exact["from_baseline"].to_numpy(), expected["from_baseline"].to_numpy())
    # And end to end (our aggregates differ from cell-eval's by float32 rounding only).
    result = evaluate(real_path, pred_path, baseline=tmp_path / "base.h5ad", profile="vcc", threads=1,
                      suite="cell-eval-0.8.2")
    assert list(result.score["metric"]) == list(expected["metric"])
    np.testing.assert_allclose(result.score["from_baseline"], expected["from_baseline"], rtol=0, atol=1e-6)
