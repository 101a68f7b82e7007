"""The accuracy benchmark's protocol and aggregation (benchmarks/bench_accuracy.py).

References: brute force on the expanded (repeated) samples with scipy / numpy, pandas ranks,
transpert.evaluate.score (cell-eval's score_agg_metrics) for the per-evaluation score, and the
closed form (N + 1) / (2N) of a constant prediction's PDS among N perturbations.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_accuracy as ba  # noqa: E402

from transpert.evaluate import score as ev_score  # noqa: E402


def _expanded(w_row):
    return np.repeat(np.arange(w_row.size), w_row.astype(int))


def _brute_spearman_sig(real_n, pred_n, w_row):
    i = _expanded(w_row)
    keep = real_n[i] > 0
    if not keep.any():
        return 1.0
    x, y = real_n[i][keep], pred_n[i][keep]
    if x.size < 2 or (x == x[0]).all() or (y == y[0]).all():
        return np.nan
    return spearmanr(x, y)[0]


def test_weighted_spearman_sig_equals_expanded_sample():
    rng = np.random.default_rng(3)
    n, k = 9, 4
    real_n = rng.integers(0, 4, n).astype(float)  # ties and zeros (left out) on purpose
    pred_n = rng.integers(0, 5, (k, n)).astype(float)
    pred_n[1] = 7.0  # a constant prediction side -> NaN
    w = ba.bootstrap_weights(n, 300, seed=1)
    w = np.vstack([np.ones((1, n)), w, np.zeros((1, n))])
    w[-1, real_n == 0] = 3  # only perturbations without a real DE gene -> 1.0
    got = ba.weighted_spearman_sig(real_n, pred_n, w)
    want = np.array([[_brute_spearman_sig(real_n, pred_n[j], row) for j in range(k)] for row in w])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=0, atol=1e-12)
    assert (got[-1] == 1.0).all()
    assert np.isnan(got[0, 1])  # the constant prediction side


def test_weighted_means_equal_expanded_nanmean():
    rng = np.random.default_rng(4)
    vals = rng.normal(size=(3, 7, 2))
    vals[0, 2, 1] = np.nan
    w = ba.bootstrap_weights(7, 50, seed=2)
    got = ba.weighted_means(vals, w)
    for b, row in enumerate(w):
        i = _expanded(row)
        want = np.array([[np.nanmean(vals[k][i, j]) if (~np.isnan(vals[k][i, j])).any() else np.nan
                          for j in range(2)] for k in range(3)])
        np.testing.assert_allclose(got[b], want, rtol=1e-12, equal_nan=True)


def test_bootstrap_weights_are_resample_multiplicities():
    w = ba.bootstrap_weights(11, 40, seed=5)
    idx = np.random.default_rng(5).integers(0, 11, size=(40, 11))
    np.testing.assert_array_equal(w, np.stack([np.bincount(r, minlength=11) for r in idx]))


def _evaluation(rng, perts, n_methods, repeat):
    n = len(perts)
    vals = rng.uniform(0.05, 0.9, size=(n_methods + 1, n, len(ba.METRICS)))
    return ba.Evaluation(perts=np.asarray(perts), vals=vals, real_nsig=rng.integers(0, 5, n).astype(float),
                         pred_nsig=rng.integers(0, 5, (n_methods + 1, n)).astype(float),
                         pb=rng.uniform(size=(n_methods, n, 3)), repeat=repeat)


def test_point_score_and_rank_are_means_over_evaluations():
    rng = np.random.default_rng(6)
    methods = ["transpert", "a", "b"]
    perts = [f"P{i}" for i in range(8)]
    evals = [_evaluation(rng, perts[:4], 3, 0), _evaluation(rng, perts[4:], 3, 0),
             _evaluation(rng, perts[2:6], 3, 1), _evaluation(rng, perts[:2] + perts[6:], 3, 1)]
    table, _ = ba.leaderboard(evals, methods, perts, n_boot=20, seed=0)
    table = table.set_index("method")
    scores, ranks = [], []
    for ev in evals:
        means = ev.vals.mean(axis=1)
        means[:, ba.SIG] = [_brute_spearman_sig(ev.real_nsig, ev.pred_nsig[k], np.ones(len(ev.perts)))
                            for k in range(len(methods) + 1)]
        base = dict(zip(ba.VCC_METRICS, means[-1, ba.VCC]))
        scores.append([100 * ev_score(dict(zip(ba.VCC_METRICS, means[k, ba.VCC])), base)
                       .set_index("metric").loc["avg_score", "from_baseline"] for k in range(len(methods))])
        frame = pd.DataFrame(means[:-1], columns=ba.METRICS)
        frame["mae"] = -frame["mae"]  # best 0: lower is better
        ranks.append(frame.rank(ascending=False, method="average", na_option="bottom").mean(axis=1).to_numpy())
    np.testing.assert_allclose(table.loc[methods, "score"], np.mean(scores, axis=0), rtol=1e-12)
    np.testing.assert_allclose(table.loc[methods, "mean_rank"], np.mean(ranks, axis=0), rtol=1e-12)
    by_repeat = [np.mean(scores[:2], axis=0), np.mean(scores[2:], axis=0)]
    np.testing.assert_allclose(table.loc[methods, "score_split_min"], np.min(by_repeat, axis=0), rtol=1e-12)


def test_repeats_share_the_perturbation_resample():
    """A perturbation's resampled weight is the same in every repeat: R identical copies of a
    split give the same interval as one (independent per-fold resampling would narrow it)."""
    rng = np.random.default_rng(7)
    methods = ["transpert", "a"]
    perts = [f"P{i}" for i in range(10)]
    one = [_evaluation(rng, perts[:5], 2, 0), _evaluation(rng, perts[5:], 2, 0)]
    copies = [ba.Evaluation(**{**e.__dict__, "repeat": r}) for r in range(4) for e in one]
    t1, p1 = ba.leaderboard(one, methods, perts, n_boot=200, seed=1)
    t4, p4 = ba.leaderboard(copies, methods, perts, n_boot=200, seed=1)
    cols = ["score", "score_ci_low", "score_ci_high", "mean_rank_ci_low", "mean_rank_ci_high",
            "p_transpert_beats_score"]
    pd.testing.assert_frame_equal(t1[["method", *cols]], t4[["method", *cols]])
    pd.testing.assert_frame_equal(p1, p4)


def test_split_folds_partition():
    perts = np.array([f"P{i}" for i in range(20)])
    folds = ba.split_folds(perts, 3, np.random.default_rng(0))
    assert sorted(len(f) for f in folds) == [6, 7, 7]
    assert sorted(np.concatenate(folds)) == sorted(perts)


@pytest.fixture(scope="module")
def small_task():
    from transpert.data.simulate import simulate_atlas

    atlas = simulate_atlas(seed=2, n_genes=150, n_perturbations=12, cells_per_perturbation=20, n_control_cells=80)

    def relabel(cells):  # labels that are not gene names, so PDS drops no column (closed form below)
        lab = cells.obs["target_gene"].astype(str)
        cells.obs["target_gene"] = np.where(lab == ba.CONTROL, lab, "KO_" + lab)
        return cells

    return ({n: relabel(atlas.lines[n]) for n in atlas.reference_lines}, relabel(atlas.lines[atlas.target_line]))


@pytest.mark.parametrize("protocol", ["folds", "pooled"])
def test_run_task_ranks_among_the_right_perturbations(small_task, tmp_path, protocol):
    refs, target = small_task
    methods = ["control", "cell-mean"]
    n_folds, n_repeats = 2, (2 if protocol == "folds" else 1)
    evals, perts = ba.run_task(refs, target, protocol=protocol, n_folds=n_folds, n_repeats=n_repeats, seed=0,
                               methods=methods, workdir=tmp_path, log=lambda s: None)
    assert len(evals) == (n_folds * n_repeats if protocol == "folds" else 1)
    for r in range(n_repeats):
        mine = [e for e in evals if e.repeat == r]
        # each repeat's evaluations hold every perturbation exactly once
        assert sorted(np.concatenate([e.perts for e in mine])) == sorted(perts)
        if protocol == "folds":
            rng = np.random.default_rng(r)
            want = sorted(sorted(f) for f in ba.split_folds(perts, n_folds, rng))
            assert sorted(sorted(e.perts) for e in mine) == want
    for e in evals:
        n = len(e.perts)
        # 'control' predicts delta 0 for every perturbation: its pseudo-bulk PDS is a constant
        # prediction's, (N + 1) / (2N) with N the perturbations of THIS evaluation
        assert e.pb[0, :, 2].mean() == pytest.approx((n + 1) / (2 * n), abs=1e-12)
        # 'cell-mean' written is cell-eval's baseline: the same metric values (up to float32
        # rounding of the written cells, relative ~1e-7, so 1e-5 is ample and still tight)
        np.testing.assert_allclose(e.vals[1], e.vals[-1], rtol=1e-5, atol=1e-9, equal_nan=True)
    table, _ = ba.leaderboard(evals, methods, perts, n_boot=10, seed=0)
    assert table.set_index("method").loc["cell-mean", "score"] == pytest.approx(0, abs=1e-4)  # x100, float32 cells


def test_accuracy_across_seeds_summary():
    """bench_accuracy_seeds.summarise: per-seed leaders, means over seeds and strict wins, checked
    by hand on three made-up seed records (a tie is not a win)."""
    import bench_accuracy_seeds as bas

    def record(tp, a, b):  # (score, rank) of transpert, "a" and "b"
        return {"tasks": [{"task": "t", "score": {"transpert": tp[0], "a": a[0], "b": b[0]},
                           "mean_rank": {"transpert": tp[1], "a": a[1], "b": b[1]}}]}

    records = {0: record((5.0, 2.0), (4.0, 2.5), (1.0, 3.0)),
               100: record((3.0, 2.8), (3.5, 2.2), (1.0, 3.0)),
               200: record((2.0, 2.0), (2.0, 2.0), (0.5, 4.0))}
    s = bas.summarise(records)["t"]
    assert [r["other_score_method"] for r in s["per_seed"]] == ["a", "a", "a"]
    assert s["seeds_best_score"] == 1 and s["seeds_best_rank"] == 1  # seed 200 ties: no win
    assert s["mean_score"]["transpert"] == pytest.approx(10 / 3)
    assert s["mean_rank"]["a"] == pytest.approx(6.7 / 3)
    assert s["best_other_mean_score"] == "a" and s["best_other_mean_rank"] == "a"
    assert "strictly first on score in 1 of 3 seeds" in bas.markdown({"t": s})
