"""TransPert on the second generator (:func:`transpert.data.simulate.simulate_lowrank`), where each
line's true relevance to the target is known: its weights rank the lines by relevance, a line of
pure noise barely moves the held-out score, and an exact copy of a line shares the original's
weight (a group of exact copies counts once in the softmax), so the prediction does not move."""

from __future__ import annotations

import numpy as np
import pytest

from transpert.data.simulate import simulate_lowrank
from transpert.evaluate import discrimination_scores
from transpert.summarize import summarize
from transpert.transfer import TransPert


@pytest.fixture(scope="module")
def lowrank():
    atlas = simulate_lowrank(seed=1, relevance=(0.9, 0.6, 0.3), n_noise_lines=1, n_genes=400,
                             n_perturbations=40, cells_per_perturbation=40, n_control_cells=200)
    sums = {n: summarize(c, show_progress=False, threads=1) for n, c in atlas.lines.items()}
    target = sums[atlas.target_line]
    perts = list(target.obs_names)
    order = np.random.default_rng(0).permutation(len(perts))
    train, test = [perts[i] for i in order[:28]], [perts[i] for i in order[28:]]
    fits = {}

    def fit(names, copy_of=None):
        key = (tuple(names), copy_of)
        if key not in fits:
            refs = {n: sums[n] for n in names}
            if copy_of:
                refs[f"{copy_of}_copy"] = sums[copy_of].copy()
            model = TransPert(cv_repeats=2, threads=1).fit(refs, target[train].copy())
            fits[key] = (model, np.asarray(model.predict(test).layers["delta"], dtype=np.float64))
        return fits[key]

    real = np.asarray(target[test].layers["delta"], dtype=np.float64)
    return dict(atlas=atlas, fit=fit, real=real, test=test, genes=list(target.var_names),
                programme=["lr1", "lr2", "lr3"])


def _scores(case, delta):
    real = case["real"]
    return {"mae": float(np.abs(delta - real).mean()),
            "pearson": float(np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(delta, real)])),
            "pds": float(discrimination_scores(delta, real, case["test"], case["genes"]).mean())}


def _close(a, b):
    """"Barely moves": held-out MAE within 2%, mean Pearson delta and PDS within 0.02 (PDS moves in
    steps of 1/144 here: one rank of 12 perturbations among 12)."""
    assert abs(a["mae"] - b["mae"]) <= 0.02 * a["mae"], (a, b)
    assert abs(a["pearson"] - b["pearson"]) <= 0.02, (a, b)
    assert abs(a["pds"] - b["pds"]) <= 0.02, (a, b)


def test_weights_rank_lines_by_true_relevance(lowrank):
    model, _ = lowrank["fit"](lowrank["programme"] + ["noise1"])
    truth = lowrank["atlas"].truth.lines.loc[model.weights_.index, "similarity_to_target"]
    assert list(truth.sort_values(ascending=False).index) == ["lr1", "lr2", "lr3", "noise1"]
    score = model.weights_["score"]
    assert list(score.sort_values(ascending=False).index) == ["lr1", "lr2", "lr3", "noise1"]
    w = model.weights_["weight"].loc[["lr1", "lr2", "lr3", "noise1"]].to_numpy()
    assert np.all(np.diff(w) <= 0) and w[0] > 0.5


def test_a_noise_line_barely_moves_the_score(lowrank):
    _, base = lowrank["fit"](lowrank["programme"])
    model, noisy = lowrank["fit"](lowrank["programme"] + ["noise1"])
    assert model.weights_.loc["noise1", "weight"] < 0.01
    _close(_scores(lowrank, base), _scores(lowrank, noisy))


@pytest.mark.parametrize("copied", ["lr1", "lr2"])
def test_an_exact_copy_shares_its_lines_weight(lowrank, copied):
    base, d0 = lowrank["fit"](lowrank["programme"])
    model, d1 = lowrank["fit"](lowrank["programme"], copy_of=copied)
    w0, w1 = base.weights_["weight"], model.weights_["weight"]
    # the copy and the original split the original's weight; every other line keeps its own
    np.testing.assert_allclose(w1[f"{copied}_copy"], w1[copied], rtol=1e-12)
    np.testing.assert_allclose(w1[copied] + w1[f"{copied}_copy"], w0[copied], rtol=1e-9)
    others = [n for n in w0.index if n != copied]
    np.testing.assert_allclose(w1[others], w0[others], rtol=1e-9)
    _close(_scores(lowrank, d0), _scores(lowrank, d1))


def test_an_exact_copy_leaves_the_prediction_unchanged(lowrank):
    _, d0 = lowrank["fit"](lowrank["programme"])
    _, d1 = lowrank["fit"](lowrank["programme"], copy_of="lr2")
    assert np.abs(d1 - d0).max() < 1e-6
