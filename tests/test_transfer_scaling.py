"""Cross-validated global scaling (transpert.transfer.scaling) recovers known scale factors."""

from __future__ import annotations

import numpy as np
import pytest

from transpert._errors import TranspertInputError
from transpert.evaluate import discrimination_scores
from transpert.transfer import TransPert, select_scale
from helpers_transfer import synthetic_lines


def _components(seed=0, n=30, g=120):
    rng = np.random.default_rng(seed)
    common = np.broadcast_to(rng.normal(0, 0.05, g), (n, g)).copy()
    specific = (rng.random((n, g)) < 0.1) * rng.normal(0, 0.5, (n, g))
    labels = [f"P{i}" for i in range(n)]
    genes = [f"G{j}" for j in range(g)]
    return rng, common, specific, labels, genes


@pytest.mark.parametrize("metric", ["pds", "mae", "proxy", "balanced"])
@pytest.mark.parametrize("k", [0.5, 1.75, 3.0])
def test_known_scale_is_recovered(metric, k):
    rng, common, specific, labels, genes = _components()
    real = 0.75 * common + k * specific + rng.normal(0, 0.01, specific.shape)
    baseline = np.broadcast_to(real.mean(axis=0), real.shape)
    curve, a, b = select_scale(common, specific, None, real, labels, genes, metric=metric,
                               baseline=baseline)
    assert (a, b) == (0.75, k)
    assert curve["chosen"].sum() == 1
    row = curve[curve["chosen"]].iloc[0]
    assert (row["common_scale"], row["specific_scale"]) == (0.75, k)
    # the curve's PDS is the evaluation suite's PDS of that prediction
    if metric != "mae":
        pds = discrimination_scores(0.75 * common + k * specific, real, labels, genes).mean()
        assert row["pds"] == pytest.approx(pds, rel=1e-12)


def test_fixed_entries_are_not_scaled():
    rng, common, specific, labels, genes = _components(seed=1)
    real = common + 2.0 * specific
    fixed = np.full(real.shape, np.nan)
    fixed[0] = 5.0  # a fallback row: whatever the scales, prediction 5
    curve, a, b = select_scale(common, specific, fixed, real, labels, genes, metric="mae")
    pred = np.where(np.isfinite(fixed), fixed, a * common + b * specific)
    chosen = curve[curve["chosen"]].iloc[0]
    assert chosen["mae"] == pytest.approx(np.abs(pred - real).mean(), rel=1e-12)
    assert b == 2.0


def test_estimator_recovers_the_effect_scale_of_a_clean_reference():
    refs, target, _ = synthetic_lines(seed=12, n_perturbations=60, n_genes=200, target_scale=2.0,
                                      noise_sd=0.005, lines={"A": {"shared": 1.0, "scale": 1.0}})
    model = TransPert(scale_components="specific", gene_slopes=False, low_rank=0,
                      scale_metric="pds").fit(refs, target[:45].copy())
    assert model.common_scale_ == 1.0
    assert model.specific_scale_ == 2.0
    curve = model.scale_curve_
    assert (curve["common_scale"] == 1.0).all()
    assert list(curve["specific_scale"]) == sorted(curve["specific_scale"])
    # the full model: the per-gene slopes absorb the factor 2, the global scale stays near 1
    full = TransPert().fit(refs, target[:45].copy())
    effective = full.specific_scale_ * (full.stack_weights_["gene_wise"] * np.median(full.gene_slopes_)
                                        + full.stack_weights_["low_rank"])
    assert effective == pytest.approx(2.0, rel=0.15)


def test_bad_scale_arguments():
    rng, common, specific, labels, genes = _components()
    with pytest.raises(TranspertInputError, match="scale_metric"):
        select_scale(common, specific, None, specific, labels, genes, metric="r2")
    with pytest.raises(TranspertInputError, match="specific_scales"):
        select_scale(common, specific, None, specific, labels, genes, specific_scales=[])
    with pytest.raises(TranspertInputError, match="baseline"):
        select_scale(common, specific, None, specific, labels, genes, metric="proxy")


def test_balanced_curve_matches_brute_force_and_penalises_overshoot():
    """The 'balanced' criterion is (clipped s_PDS + unclipped s_MAE) / 2, recomputed here from the
    evaluation suite's PDS and numpy's MAE; unlike the clipped proxy it does not ignore an MAE
    worse than the baseline's."""
    rng, common, specific, labels, genes = _components(seed=3)
    real = common + 1.0 * specific + rng.normal(0, 0.05, specific.shape)
    baseline = np.broadcast_to(real.mean(axis=0), real.shape)
    pds_b = discrimination_scores(baseline, real, labels, genes).mean()
    mae_b = np.abs(baseline - real).mean()
    curve, a, b = select_scale(common, specific, None, real, labels, genes, metric="balanced",
                               baseline=baseline)
    for _, row in curve.iterrows():
        pred = row["common_scale"] * common + row["specific_scale"] * specific
        s_pds = max(0.0, (discrimination_scores(pred, real, labels, genes).mean() - pds_b) / (1 - pds_b))
        s_mae = 1 - np.abs(pred - real).mean() / mae_b
        assert row["balanced"] == pytest.approx((s_pds + s_mae) / 2, rel=1e-9, abs=1e-12)
        assert row["proxy"] == pytest.approx((s_pds + max(0.0, s_mae)) / 2, rel=1e-9, abs=1e-12)
    best = curve.loc[curve["balanced"].idxmax()]
    assert (a, b) == (best["common_scale"], best["specific_scale"])
    assert b <= 1.5  # an inflated specific scale costs MAE, so it is not chosen


def test_fold_pds_ranks_each_perturbation_within_its_fold():
    """With ``groups`` the curve's PDS is the mean over folds of the evaluation suite's PDS of
    each fold on its own (brute force), not the PDS among all perturbations."""
    rng, common, specific, labels, genes = _components(seed=5, n=23)
    real = common + 1.5 * specific + rng.normal(0, 0.2, specific.shape)
    baseline = np.broadcast_to(real.mean(axis=0), real.shape)
    groups = [np.sort(g) for g in np.array_split(rng.permutation(len(labels)), 5)]
    curve, a, b = select_scale(common, specific, None, real, labels, genes, metric="balanced",
                               baseline=baseline, groups=groups)
    lab = np.asarray(labels)
    for _, row in curve.iterrows():
        pred = row["common_scale"] * common + row["specific_scale"] * specific
        by_fold = np.concatenate([discrimination_scores(pred[g], real[g], list(lab[g]), genes)
                                  for g in groups])
        assert row["pds"] == pytest.approx(by_fold.mean(), rel=1e-12)
    pooled, _, _ = select_scale(common, specific, None, real, labels, genes, metric="balanced",
                                baseline=baseline)
    assert not np.allclose(curve["pds"], pooled["pds"])  # a different criterion, not a relabelling
    # folds of one perturbation are left out of PDS; none of two: PDS is pooled
    singles = [np.array([i]) for i in range(len(labels))]
    alone, _, _ = select_scale(common, specific, None, real, labels, genes, metric="balanced",
                               baseline=baseline, groups=singles)
    np.testing.assert_allclose(alone["pds"], pooled["pds"], rtol=1e-12)
    mixed = [np.array([0])] + groups[1:]
    part, _, _ = select_scale(common, specific, None, real, labels, genes, metric="pds",
                              groups=mixed, common_scales=[1.0], specific_scales=[1.5])
    pred = common + 1.5 * specific
    expected = np.concatenate([discrimination_scores(pred[g], real[g], list(lab[g]), genes)
                               for g in groups[1:]]).mean()
    assert part["pds"].iloc[0] == pytest.approx(expected, rel=1e-12)


def test_pooled_pds_penalises_a_common_component_fitted_on_the_other_folds():
    """The reason for ``scale_pds="fold"``: pure-noise perturbations around a shared response,
    the common component estimated on the other folds. Pooled, PDS ranks each held-out
    perturbation against the ones its common component was fitted on (closer to it), so
    the prediction scores below the chance level of a constant; per fold it does not."""
    rng = np.random.default_rng(7)
    n, g = 40, 300
    shared = rng.normal(0, 0.3, g)
    real = shared + rng.normal(0, 0.3, (n, g))
    labels = [f"P{i}" for i in range(n)]
    genes = [f"G{j}" for j in range(g)]
    groups = [np.arange(i, i + 8) for i in range(0, n, 8)]
    common = np.empty((n, g))
    for held in groups:
        common[held] = real[np.setdiff1d(np.arange(n), held)].mean(axis=0)
    pooled = discrimination_scores(common, real, labels, genes).mean()
    lab = np.asarray(labels)
    by_fold = np.concatenate([discrimination_scores(common[h], real[h], list(lab[h]), genes)
                              for h in groups]).mean()
    chance_pooled, chance_fold = (n + 1) / (2 * n), (8 + 1) / (2 * 8)
    assert pooled < chance_pooled - 0.1
    assert by_fold == pytest.approx(chance_fold, abs=0.1)
