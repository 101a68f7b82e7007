"""DEG classifier, average precision and calibration (transpert.transfer.deg_classifier)."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from sklearn.metrics import average_precision_score

from transpert._errors import TranspertInputError
from transpert.transfer import DEGClassifier, TransPert, average_precision, calibration_table
from helpers_transfer import synthetic_lines


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(500) < 0.1
    score = np.round(rng.random(500) + y * 0.3, 1)  # rounded: many ties
    assert average_precision(y, score) == pytest.approx(average_precision_score(y, score), rel=1e-12)
    assert np.isnan(average_precision(np.zeros(10), rng.random(10)))


def test_calibration_table_by_hand():
    y = np.array([0, 1, 0, 1, 1, 0])
    p = np.array([0.05, 0.08, 0.55, 0.51, 0.95, 1.0])
    t = calibration_table(y, p, n_bins=2)
    assert t["n"].tolist() == [2, 4]
    assert t["mean_predicted"].tolist() == pytest.approx([0.065, (0.55 + 0.51 + 0.95 + 1.0) / 4])
    assert t["observed_rate"].tolist() == pytest.approx([0.5, 0.5])


def test_unpenalised_fit_matches_statsmodels_irls():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(4000, 3)) * [1.0, 2.0, 0.5] + [0.0, 1.0, -1.0]
    eta = -1.0 + X @ [0.8, -0.4, 1.5]
    y = rng.random(4000) < 1 / (1 + np.exp(-eta))
    clf = DEGClassifier(alpha=0.0).fit(X, y)
    ref = sm.GLM(y.astype(float), sm.add_constant(X), family=sm.families.Binomial()).fit()
    # our coefficients are on standardised features: map the reference onto that scale
    beta = ref.params[1:] * clf.feature_scale_
    intercept = ref.params[0] + ref.params[1:] @ clf.feature_mean_
    # BFGS stops at gradient norm 1e-5 (scipy default): coefficients agree to ~1e-4
    np.testing.assert_allclose(clf.coef_, np.r_[intercept, beta], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(clf.predict_proba(X), ref.predict(sm.add_constant(X)), atol=1e-4)


def test_ridge_penalty_shrinks_toward_zero():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(2000, 4))
    y = rng.random(2000) < 1 / (1 + np.exp(-(X @ [1.0, -1.0, 0.5, 0.0])))
    free = DEGClassifier(alpha=0.0).fit(X, y).coef_
    ridge = DEGClassifier(alpha=1.0).fit(X, y).coef_
    assert np.linalg.norm(ridge[1:]) < 0.7 * np.linalg.norm(free[1:])


def test_one_class_and_bad_input():
    clf = DEGClassifier().fit(np.ones((10, 2)), np.zeros(10))
    assert np.allclose(clf.predict_proba(np.zeros((3, 2))), 0.5 / 11)
    with pytest.raises(TranspertInputError, match="do not match"):
        DEGClassifier().fit(np.ones((10, 2)), np.zeros(9))
    with pytest.raises(TranspertInputError, match="alpha"):
        DEGClassifier(alpha=-1).fit(np.ones((10, 2)), np.zeros(10))


def test_classifier_beats_chance_on_held_out_perturbations():
    refs, target, _ = synthetic_lines(seed=8, n_perturbations=50, n_genes=200,
                                      lines={"A": {"shared": 0.8}, "B": {"shared": 0.5}})
    model = TransPert(specific_scales=(0.5, 1.0, 1.5)).fit(refs, target[:40].copy())
    report = model.deg_report_
    assert report["n_perturbations"] == 40 and report["n_folds"] == 5
    # held-out AUPRC far above the prevalence (the AUPRC of a random ranking)
    assert report["auprc"] > 3 * report["prevalence"]
    assert report["auprc"] > 0.5
    cal = model.deg_calibration_
    assert cal["n"].sum() == 40 * 200
    # calibrated overall: the mean predicted probability is close to the observed rate
    mean_pred = (cal["n"] * cal["mean_predicted"]).sum() / cal["n"].sum()
    assert mean_pred == pytest.approx(report["prevalence"], abs=0.02)
    coef = model.deg_classifier_.coefficients()
    assert coef["ref_abs_delta"] > 0  # larger reference effects -> more likely DE


def test_classifier_features_beat_target_frequency_alone():
    """The reference features carry information beyond the gene's training DE frequency."""
    refs, target, _ = synthetic_lines(seed=9, n_perturbations=50, n_genes=200,
                                      lines={"A": {"shared": 0.9}})
    model = TransPert(specific_scales=(1.0,)).fit(refs, target[:40].copy())
    test = list(target.obs_names[40:])
    pred = model.predict(test)
    y = np.asarray(target[test].layers["fdr"]) < 0.05
    freq = np.broadcast_to(model.target_.de_count, y.shape)
    assert average_precision(y, pred.layers["deg_probability"]) > average_precision(y, freq) + 0.2
