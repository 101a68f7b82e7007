"""Metric helpers against their references (sklearn, scipy, polars), bootstrap, ranking, report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from _evaluate_synth import make_pair
from transpert.evaluate import (
    bootstrap_ci,
    evaluate,
    generalist_ranking,
    paired_comparison,
    write_report,
)
from transpert.evaluate._metrics import average_precision, pearson, roc_auc, spearman
from transpert.evaluate._score import aggregate

skm = pytest.importorskip("sklearn.metrics")
pl = pytest.importorskip("polars")
stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(300) < 0.2
    scores = np.round(rng.random(300) * 5, 1).astype(np.float32)  # many ties
    assert average_precision(labels, scores) == pytest.approx(
        skm.average_precision_score(labels, scores), rel=0, abs=1e-12)
    fpr, tpr, _ = skm.roc_curve(labels, scores)
    assert roc_auc(labels, scores) == pytest.approx(skm.auc(fpr, tpr), rel=0, abs=1e-12)


def test_correlations_match_references():
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    y = x + rng.normal(size=50)
    x[3], y[7] = np.inf, -np.inf
    frame = pl.DataFrame({"x": x, "y": y})
    expected = frame.select(pl.corr("x", "y", method="spearman")).item()
    assert spearman(x, y) == pytest.approx(expected, abs=1e-12)
    assert pearson(x[8:], y[8:]) == pytest.approx(stats.pearsonr(x[8:], y[8:])[0], abs=1e-12)
    assert np.isnan(spearman([1.0], [2.0]))
    assert np.isnan(pearson(np.ones(5), np.arange(5.0)))


def test_aggregate_matches_polars_describe():
    rng = np.random.default_rng(3)
    n = 11
    results = pd.DataFrame({"perturbation": [f"p{i}" for i in range(n)],
                            "a": rng.random(n), "b": rng.random(n), "c": rng.random(n),
                            "d": np.full(n, np.nan)})
    results.loc[2, "b"] = np.nan
    defined = pd.DataFrame({c: np.ones(n, dtype=bool) for c in results.columns})
    defined.loc[[1, 4], "c"] = False
    defined["d"] = False
    frame = pl.DataFrame({c: [None if not defined[c][i] else results[c][i] for i in range(n)]
                          for c in "abcd"}, schema={c: pl.Float64 for c in "abcd"})
    expected = frame.describe().to_pandas()
    got = aggregate(results, defined)
    assert list(got["statistic"]) == list(expected["statistic"])
    for c in "abcd":
        np.testing.assert_allclose(got[c].to_numpy(float), expected[c].to_numpy(float),
                                   rtol=0, atol=1e-12, equal_nan=True)


@pytest.fixture(scope="module")
def results():
    real, pred = make_pair(6)
    _, other = make_pair(7)
    other.obs_names = [f"o{i}" for i in range(other.n_obs)]
    a = evaluate(real, pred, profile="full", threads=1)
    b = evaluate(real, other, profile="full", threads=1)
    perfect = evaluate(real, real, profile="full", threads=1)
    return a, b, perfect


def test_bootstrap_ci_brute_force(results):
    a, _, _ = results
    ci = bootstrap_ci(a, n_boot=200, seed=5).set_index("metric")
    rng = np.random.default_rng(5)
    idx = rng.integers(0, len(a.results), size=(200, len(a.results)))
    v = a.results["mae"].to_numpy()
    boots = v[idx].mean(axis=1)
    assert ci.loc["mae", "ci_low"] == pytest.approx(np.quantile(boots, 0.025), abs=1e-12)
    assert ci.loc["mae", "ci_high"] == pytest.approx(np.quantile(boots, 0.975), abs=1e-12)
    assert ci.loc["mae", "mean"] == pytest.approx(v.mean(), abs=1e-12)
    # undefined perturbations (no real DE genes) are left out and counted
    assert ci.loc["de_spearman_lfc_sig", "n_used"] < len(a.results)
    # seeded: the same seed gives the same intervals
    pd.testing.assert_frame_equal(bootstrap_ci(a, n_boot=200, seed=5).set_index("metric"), ci)


def test_paired_comparison_and_ranking(results):
    a, b, perfect = results
    cmp = paired_comparison(perfect, a, n_boot=300, seed=0, names=("perfect", "a")).set_index("metric")
    assert cmp.loc["mae", "difference"] == pytest.approx(
        perfect.results["mae"].mean() - a.results["mae"].mean(), abs=1e-12)
    assert cmp.loc["mae", "better"] == "perfect"
    ranking = generalist_ranking({"a": a, "b": b, "perfect": perfect})
    assert ranking["prediction"].iloc[0] == "perfect"
    assert ranking.filter(like="rank_").shape[1] == 7
    np.testing.assert_allclose(ranking["mean_rank"], ranking.filter(like="rank_").mean(axis=1))


def test_report_written_with_and_without_matplotlib(results, tmp_path, monkeypatch):
    a, _, _ = results
    path = write_report(a, tmp_path / "with", ci=bootstrap_ci(a, n_boot=50))
    text = path.read_text()
    assert "PDS diagnostics" in text and "pds_vs_scale.png" in text
    assert (tmp_path / "with" / "pds_vs_scale.png").stat().st_size > 0
    import builtins

    real_import = builtins.__import__

    def no_mpl(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    text = write_report(a, tmp_path / "without").read_text()
    assert "Plots skipped: matplotlib is not installed" in text
    assert not list((tmp_path / "without").glob("*.png"))
