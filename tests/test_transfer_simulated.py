"""TransPert end to end on the simulator's atlas (cells -> summaries -> fit -> predict), where the
truth is known: the most similar reference weighs most, the DEG classifier beats chance on
held-out perturbations, and predictions of held-out perturbations beat the non-transfer
baselines."""

from __future__ import annotations

import numpy as np
import pytest

from transpert.data.simulate import simulate_atlas
from transpert.evaluate import discrimination_scores
from transpert.summarize import summarize
from transpert.transfer import TransPert, average_precision


@pytest.fixture(scope="module")
def atlas_summaries():
    atlas = simulate_atlas(seed=3, n_genes=400, n_perturbations=40, cells_per_perturbation=60,
                           n_control_cells=300, similarity=(0.85, 0.5, 0.2))
    sums = {name: summarize(cells, show_progress=False, threads=1)
            for name, cells in atlas.lines.items()}
    return atlas, sums


def _pearson_rows(a, b):
    return np.mean([np.corrcoef(x, y)[0, 1] for x, y in zip(a, b)])


def test_transpert_on_simulated_atlas(atlas_summaries):
    atlas, sums = atlas_summaries
    target = sums[atlas.target_line]
    refs = {name: sums[name] for name in atlas.reference_lines}
    perts = list(target.obs_names)
    order = np.random.default_rng(0).permutation(len(perts))
    train = [perts[i] for i in order[:28]]
    test = [perts[i] for i in order[28:]]
    model = TransPert().fit(refs, target[train].copy())

    # weights follow the simulated similarity to the target (0.85 > 0.5 > 0.2)
    w = model.weights_["weight"]
    sim = atlas.truth.lines.loc[atlas.reference_lines, "similarity_to_target"]
    assert list(w.sort_values(ascending=False).index) == list(sim.sort_values(ascending=False).index)

    # the DEG classifier beats chance (AUPRC of a random ranking = prevalence) on held-out folds
    assert model.deg_report_["auprc"] > 3 * model.deg_report_["prevalence"]

    pred = model.predict(test)
    real = np.asarray(target[test].layers["delta"], dtype=np.float64)
    genes = list(target.var_names)
    d = np.asarray(pred.layers["delta"], dtype=np.float64)
    train_mean = np.asarray(target[train].layers["delta"]).mean(axis=0)
    ref_mean = np.nanmean([np.asarray(r[test].layers["delta"]) for r in refs.values()], axis=0)
    pds = discrimination_scores(d, real, test, genes).mean()
    pds_ref = discrimination_scores(ref_mean, real, test, genes).mean()
    pds_train = discrimination_scores(np.broadcast_to(train_mean, real.shape), real, test, genes).mean()
    assert pds > pds_train + 0.2
    assert pds > pds_ref  # more discriminative than the plain reference mean
    assert _pearson_rows(d, real) > _pearson_rows(ref_mean, real)
    assert np.abs(d - real).mean() < np.abs(ref_mean - real).mean()
    # held-out DEG ranking: the predicted probabilities find the target's significant genes
    y = np.asarray(target[test].layers["fdr"]) < 0.05
    assert average_precision(y, pred.layers["deg_probability"]) > 3 * y.mean()
