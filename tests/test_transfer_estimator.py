"""The TransPert estimator: interface, fallbacks, save/load, bad input."""

from __future__ import annotations

import json
import math
import statistics

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from transpert._errors import TranspertInputError
from transpert.transfer import TransPert
from helpers_transfer import synthetic_lines

FAST = {"specific_scales": (0.5, 1.0, 1.5), "common_scales": (0.5, 1.0), "cv_folds": 3}


@pytest.fixture(scope="module")
def data():
    refs, target, truth = synthetic_lines(seed=21, n_perturbations=40, n_genes=120,
                                          lines={"A": {"shared": 0.9}, "B": {"shared": 0.5}})
    refs["B"] = refs["B"][10:, 30:].copy()  # B lacks P0..P9 and the first 30 genes
    return refs, target[:28].copy(), target, truth


@pytest.fixture(scope="module")
def model(data):
    refs, train, _, _ = data
    return TransPert(**FAST).fit(refs, train)


def test_prediction_layout(model, data):
    _, train, target, _ = data
    perts = ["P35", "P2", "P30"]
    pred = model.predict(perts)
    assert list(pred.obs_names) == perts
    assert list(pred.var_names) == list(train.var_names)
    assert set(pred.layers) == {"mean", "delta", "log2fc", "deg_probability"}
    assert pred.obs["source"].tolist() == ["references"] * 3
    assert pred.obs["n_reference_lines"].tolist() == [2, 1, 2]
    np.testing.assert_array_equal(pred.var["control_mean"], train.var["control_mean"])
    mean, delta = pred.layers["mean"], pred.layers["delta"]
    ctrl = train.var["control_mean"].to_numpy()
    assert (mean >= 0).all()
    np.testing.assert_allclose(mean, ctrl + delta, atol=1e-6)  # float32 layers
    np.testing.assert_array_equal(pred.X, mean)
    # log2fc is pdex's: log2(expm1(mean) / expm1(control mean))
    with np.errstate(divide="ignore"):
        expected = np.log2(np.expm1(mean.astype(np.float64)) / np.expm1(ctrl))
    ok = np.isfinite(expected)
    np.testing.assert_allclose(pred.layers["log2fc"][ok], expected[ok], rtol=1e-4, atol=1e-4)
    p = pred.layers["deg_probability"]
    assert ((p >= 0) & (p <= 1)).all()


def _brute_common(train, center: str = "median") -> np.ndarray:
    """Positive-part James-Stein median (or mean) delta per gene, written out independently."""
    d = np.asarray(train.layers["delta"], dtype=np.float64)
    n = d.shape[0]
    out = np.zeros(d.shape[1])
    for g in range(d.shape[1]):
        col = [float(v) for v in d[:, g]]
        m = statistics.median(col) if center == "median" else statistics.fmean(col)
        se2 = statistics.variance(col) / n * (math.pi / 2 if center == "median" else 1.0)
        if m != 0:
            out[g] = m * min(1.0, max(0.0, 1 - se2 / m**2))
    return out


def _brute_significant(train) -> tuple[np.ndarray, np.ndarray]:
    """Mean |delta| over the perturbations where a gene is significant, and the sign of the sum."""
    d = np.asarray(train.layers["delta"], dtype=np.float64)
    sig = np.nan_to_num(np.asarray(train.layers["fdr"], dtype=np.float64), nan=1.0) < 0.05
    mag, sign = np.zeros(d.shape[1]), np.zeros(d.shape[1])
    for g in range(d.shape[1]):
        rows = sig[:, g]
        if rows.any():
            mag[g] = np.abs(d[rows, g]).mean()
            sign[g] = np.sign(d[rows, g].sum())
    return mag, sign


def test_target_statistics_against_brute_force(model, data):
    _, train, _, _ = data
    # the default centre is the median (statistics.median as the independent reference)
    np.testing.assert_allclose(model.target_.common_delta, _brute_common(train), rtol=1e-10, atol=1e-12)
    mean_model = TransPert(**FAST, common_center="mean").fit(data[0], train)
    np.testing.assert_allclose(mean_model.target_.common_delta, _brute_common(train, "mean"),
                               rtol=1e-10, atol=1e-12)
    assert not np.allclose(mean_model.target_.common_delta, model.target_.common_delta)
    mag, sign = _brute_significant(train)
    assert (mag > 0).any()  # the fixture has significant genes, so the floor is exercised
    np.testing.assert_allclose(model.target_.sig_magnitude, mag, rtol=1e-10)
    np.testing.assert_array_equal(model.target_.sig_sign, sign)
    # a gene with a consistent effect keeps its mean; a pure-noise gene is shrunk to 0
    from transpert.transfer.target import common_effect

    x = np.column_stack([np.full(10, 0.5) + np.linspace(-0.01, 0.01, 10), np.tile([-1.0, 1.0], 5) + 0.01])
    c = common_effect(x, 1.0)
    assert c[0] == pytest.approx(0.5, rel=1e-3) and c[1] == 0.0
    np.testing.assert_allclose(common_effect(x, 0.0), x.mean(axis=0))
    # a strength s keeps a gene only when |mean| > sqrt(s) standard errors
    y = np.column_stack([np.r_[np.ones(5), -np.ones(5)] * 0.5 + 0.4,  # t = 0.4 / (0.5/3) = 2.4
                         np.r_[np.ones(5), -np.ones(5)] * 0.5 + 0.6])  # t = 3.6
    se = np.sqrt(y.var(axis=0, ddof=1) / 10)
    np.testing.assert_allclose(common_effect(y, 9.0), [0.0, 0.6 * (1 - 9 * se[1] ** 2 / 0.36)])
    # the median ignores a few perturbations with large effects that pull the mean
    z = np.r_[np.full(8, 0.2), 3.0, 4.0][:, None]
    assert common_effect(z, 0.0, "median")[0] == 0.2
    assert common_effect(z, 0.0, "mean")[0] == pytest.approx(0.86)
    with pytest.raises(ValueError, match="center"):
        common_effect(z, 1.0, "mode")


def test_prediction_follows_the_chosen_scales(model, data):
    refs, train, _, _ = data
    pred = model.predict(["P35"])
    t = model.target_
    w = model.weights_["weight"]
    # brute force: weighted mean of each line's delta minus its mean delta, over the lines
    spec = np.zeros(len(t.genes))
    den = np.zeros(len(t.genes))
    for name, ref in refs.items():
        cols = t.genes.get_indexer(ref.var_names)
        d = np.asarray(ref["P35"].layers["delta"], dtype=np.float32)[0].astype(np.float64)
        m = np.asarray(ref.layers["delta"], dtype=np.float32).astype(np.float64).mean(axis=0)
        # default shrinkage "js": positive-part James-Stein factor from the line's p-value
        p = np.asarray(ref["P35"].layers["pvalue"], dtype=np.float64)[0]
        z = stats.norm.isf(np.maximum(p, 1e-50) / 2)  # the model caps -log10 p at 50
        spec[cols] += w[name] * (d - m) * np.clip(1 - 1 / z**2, 0, 1)
        den[cols] += w[name]
    spec /= den
    spec = np.nan_to_num(spec)
    # the specific model: stacked gene-wise slopes and low-rank map (learnt attributes)
    sw = model.stack_weights_
    spec = sw["gene_wise"] * model.gene_slopes_ * spec + \
        sw["low_rank"] * (spec @ model.low_rank_basis_) @ model.low_rank_map_
    delta = model.common_scale_ * _brute_common(train) + model.specific_scale_ * spec
    # genes called DE move by at least their significant training magnitude (deg_magnitude="floor")
    mag, sign = _brute_significant(train)
    called = np.asarray(pred.layers["deg_probability"][0], dtype=np.float64) >= model.deg_threshold_
    called &= model._floors(model.deg_source_)
    for g in np.flatnonzero(called & (mag > 0)):
        direction = np.sign(delta[g]) if delta[g] != 0 else sign[g]
        delta[g] = direction * max(abs(delta[g]), mag[g])
    j = t.genes.get_loc("P35") if "P35" in t.genes else None
    mean = np.clip(t.control_mean + delta, 0, None)
    keep = np.ones(len(t.genes), bool)
    if j is not None:
        keep[j] = False
    np.testing.assert_allclose(pred.layers["mean"][0, keep], mean[keep], rtol=1e-5, atol=1e-5)


def test_knockdown_of_the_perturbed_gene(model, data):
    _, train, target, _ = data
    pred = model.predict(["P15"])  # P15 is also a gene (first half of the labels)
    j = list(train.var_names).index("P15")
    ctrl = train.var["control_mean"].iloc[j]
    # the simulated CRISPRi leaves 30% of the expression; the model's ratio is estimated from train
    ratio = model.target_.knockdown_ratio
    assert ratio == pytest.approx(0.3, abs=0.05)
    assert pred.layers["mean"][0, j] == pytest.approx(np.log1p(ratio * np.expm1(ctrl)), rel=1e-5)


def test_perturbation_in_no_reference_falls_back_with_warning(model):
    with pytest.warns(UserWarning, match="target_train_mean"):
        pred = model.predict(["P35", "UNSEEN"])
    assert pred.obs["source"].tolist() == ["references", "target_train_mean"]
    assert pred.obs["n_reference_lines"].tolist() == [2, 0]
    t = model.target_
    expected = np.clip(t.control_mean + t.common_delta, 0, None)
    called = pred.layers["deg_probability"][1] >= model.deg_threshold_
    keep = ~called | (t.sig_magnitude == 0) | (not model._floors(model.deg_source_))
    np.testing.assert_allclose(pred.layers["mean"][1, keep], expected[keep], rtol=1e-6, atol=1e-6)


def test_genes_missing_from_every_line(data):
    refs, train, _, _ = data
    refs = {"A": refs["A"][:, 5:].copy()}  # nobody measured the first five genes
    model = TransPert(**FAST).fit(refs, train)
    pred = model.predict(["P35"])
    t = model.target_
    # unmeasured genes: only the common component (no specific effect)
    np.testing.assert_allclose(
        pred.layers["delta"][0, :5],
        np.clip(t.control_mean[:5] + model.common_scale_ * t.common_delta[:5], 0, None) - t.control_mean[:5],
        atol=1e-6)


def test_save_load_round_trip_is_identical(model, tmp_path):
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["format"] == "transpert.TransPert" and meta["lines"] == ["A", "B"]
    loaded = TransPert.load(tmp_path / "m")
    assert loaded.get_params() == {**model.get_params(), "specific_scales": [0.5, 1.0, 1.5],
                                   "common_scales": [0.5, 1.0],
                                   "deg_sources": list(model.deg_sources)}
    pd.testing.assert_frame_equal(loaded.weights_, model.weights_)
    pd.testing.assert_frame_equal(loaded.scale_curve_, model.scale_curve_)
    perts = ["P35", "P2", "P30", "P0"]
    a, b = model.predict(perts), loaded.predict(perts)
    for layer in a.layers:
        np.testing.assert_array_equal(a.layers[layer], b.layers[layer])
    pd.testing.assert_frame_equal(a.obs, b.obs)
    assert loaded.deg_threshold_ == model.deg_threshold_
    assert loaded.deg_source_ == model.deg_source_ in ("classifier", "frequency")
    pd.testing.assert_frame_equal(loaded.deg_threshold_curve_, model.deg_threshold_curve_)
    # the DEG call the writer reads: genes at or above the cross-validated threshold
    np.testing.assert_array_equal(a.obs["n_de_genes"],
                                  (a.layers["deg_probability"] >= model.deg_threshold_).sum(axis=1))


def test_fit_is_deterministic(data):
    refs, train, _, _ = data
    a = TransPert(**FAST).fit(refs, train).predict(["P33"])
    b = TransPert(**FAST).fit(refs, train).predict(["P33"])
    for layer in a.layers:
        np.testing.assert_array_equal(a.layers[layer], b.layers[layer])


def test_params_follow_sklearn_conventions():
    m = TransPert(temperature=0.1)
    assert m.get_params()["temperature"] == 0.1
    assert m.set_params(cv_folds=3) is m and m.cv_folds == 3
    assert "temperature=0.1" in repr(m)
    with pytest.raises(TranspertInputError, match="no parameter"):
        m.set_params(nope=1)
    with pytest.raises(TranspertInputError, match="not fitted"):
        m.predict(["P1"])
    assert not any(k.endswith("_") for k in vars(m))  # nothing learned before fit


def test_bad_input_errors(data, tmp_path):
    refs, train, _, _ = data
    with pytest.raises(TranspertInputError, match="non-empty dict"):
        TransPert().fit({}, train)
    bad = train.copy()
    del bad.layers["fdr"]
    with pytest.raises(TranspertInputError, match="target_train: layer 'fdr' is missing"):
        TransPert().fit(refs, bad)
    bad = refs["A"].copy()
    bad.var = bad.var.drop(columns="control_mean")
    with pytest.raises(TranspertInputError, match="reference line 'A'.*control_mean"):
        TransPert().fit({"A": bad}, train)
    bad = train.copy()
    bad.layers["delta"] = np.asarray(bad.layers["delta"]).copy()
    bad.layers["delta"][3, 4] = np.nan
    with pytest.raises(TranspertInputError, match="perturbation 'P3', gene"):
        TransPert().fit(refs, bad)
    other = refs["A"].copy()
    other.var_names = [f"X{i}" for i in range(other.n_vars)]
    with pytest.raises(TranspertInputError, match="shares no gene"):
        TransPert().fit({"A": other}, train)
    with pytest.raises(TranspertInputError, match="scale_components"):
        TransPert(scale_components="all").fit(refs, train)
    with pytest.raises(TranspertInputError, match="at least 2"):
        TransPert().fit(refs, train[:1].copy())
    model = TransPert(**FAST).fit(refs, train)
    with pytest.raises(TranspertInputError, match="more than once"):
        model.predict(["P1", "P1"])
    with pytest.raises(TranspertInputError, match="single string"):
        model.predict("P1")
    with pytest.raises(TranspertInputError, match="not a saved TransPert"):
        TransPert.load(tmp_path)


def test_no_training_perturbation_in_any_reference(data):
    refs, train, target, _ = data
    only_test = {"A": refs["A"][28:].copy()}  # the reference perturbed only the test perturbations
    with pytest.warns(UserWarning, match="cannot be learnt"):
        model = TransPert(**FAST).fit(only_test, train)
    assert (model.common_scale_, model.specific_scale_) == (1.0, 1.0)
    assert model.weights_.loc["A", "n_perturbations_shared"] == 0
    pred = model.predict(["P35"])
    assert pred.obs["source"].tolist() == ["references"]
    # the reference's specific effect is transferred (not silently dropped)
    t = model.target_
    assert np.abs(pred.layers["delta"][0] - (np.clip(t.control_mean + t.mean_delta, 0, None)
                                             - t.control_mean)).max() > 0.1


def test_frequency_call_gets_the_significant_magnitude(data):
    refs, train, _, _ = data
    model = TransPert(**FAST, deg_sources=("frequency",)).fit(refs, train)
    assert model.deg_source_ == "frequency"
    assert set(model.deg_threshold_curve_["source"]) == {"frequency"}
    pred = model.predict(["P35", "P30"])
    sig = np.nan_to_num(np.asarray(train.layers["fdr"], dtype=np.float64), nan=1.0) < 0.05
    # the call score is the plain training DEG frequency
    np.testing.assert_allclose(pred.layers["deg_probability"], np.tile(sig.mean(axis=0), (2, 1)), rtol=1e-6)
    called = pred.layers["deg_probability"] >= model.deg_threshold_
    assert called.any()
    mag, _ = _brute_significant(train)
    j = [train.var_names.get_loc(p) if p in train.var_names else -1 for p in ("P35", "P30")]
    for i in range(2):
        cols = np.flatnonzero(called[i] & (mag > 0))
        cols = cols[cols != j[i]]  # the knocked-down gene keeps its measured ratio
        assert cols.size
        # moved by at least the gene's significant training magnitude (unless clipped at 0)
        d = np.abs(pred.layers["delta"][i, cols].astype(np.float64))
        ctrl = train.var["control_mean"].to_numpy()[cols]
        assert np.all((d >= mag[cols] - 1e-5) | (np.abs(d - ctrl) < 1e-5))
    # the classifier's calls keep the model's own deltas (deg_magnitude="auto")
    clf = TransPert(**FAST, deg_sources=("classifier",)).fit(refs, train)
    assert clf.deg_source_ == "classifier" and not clf._floors("classifier") and clf._floors("frequency")
    with pytest.raises(TranspertInputError, match="deg_sources"):
        TransPert(deg_sources=("magic",)).fit(refs, train)
    with pytest.raises(TranspertInputError, match="deg_magnitude"):
        TransPert(deg_magnitude="big").fit(refs, train)
    with pytest.raises(TranspertInputError, match="scale_pds"):
        TransPert(scale_pds="all").fit(refs, train)
    with pytest.raises(TranspertInputError, match="common_center"):
        TransPert(common_center="mode").fit(refs, train)


def test_scale_criterion_uses_the_model_folds(data):
    """With ``scale_pds="fold"`` (default) the scale curve's PDS is the per-fold PDS of the
    out-of-fold predictions over the model's own folds; ``"pooled"`` gives a different curve."""
    refs, train, _, _ = data
    fold = TransPert(**FAST).fit(refs, train)
    pooled = TransPert(**FAST, scale_pds="pooled").fit(refs, train)
    assert sum(len(f) for f in fold.folds_) == train.n_obs
    assert not np.allclose(fold.scale_curve_["pds"], pooled.scale_curve_["pds"])


def test_repeated_cross_validation_feeds_every_repeat_to_the_scale(data, monkeypatch):
    """``cv_repeats=R``: the scale criterion sees R independent fold plans (each a partition of
    the training perturbations, repeat 0 the plan of ``cv_repeats=1``), and in every repeat a
    held-out perturbation's common component is the median of the *other* folds' deltas only
    (brute force, per repeat and fold)."""
    import transpert.transfer.cross_validation as cv
    from transpert.transfer.target import common_effect

    refs, train, _, _ = data
    seen = {}

    def spy(common, specific, fixed, real, labels, genes, **kw):
        seen.update(common=common, real=real, labels=labels, groups=kw["groups"])
        return real_select(common, specific, fixed, real, labels, genes, **kw)

    real_select = cv.select_scale
    monkeypatch.setattr(cv, "select_scale", spy)
    model = TransPert(**FAST, cv_repeats=3).fit(refs, train)
    n = train.n_obs
    delta = np.asarray(train.layers["delta"], dtype=np.float64)
    assert seen["common"].shape == (3 * n, train.n_vars)
    np.testing.assert_array_equal(seen["real"], np.tile(delta, (3, 1)))
    assert seen["labels"] == list(train.obs_names) * 3
    plans = [[g - r * n for g in seen["groups"] if r * n <= g[0] < (r + 1) * n] for r in range(3)]
    for r, plan in enumerate(plans):
        assert len(plan) == FAST["cv_folds"]
        np.testing.assert_array_equal(np.sort(np.concatenate(plan)), np.arange(n))  # a partition
        for held in plan:
            rest = np.setdiff1d(np.arange(n), held)
            expected = common_effect(delta[rest], model.common_shrinkage, model.common_center)
            np.testing.assert_allclose(seen["common"][held + r * n], np.tile(expected, (len(held), 1)))
    # repeat 0 is the single-repeat plan; the other repeats are different random plans
    single = TransPert(**FAST).fit(refs, train)
    assert [list(f) for f in plans[0]] == [list(f) for f in single.folds_] == \
        [list(f) for f in model.folds_]
    assert len({tuple(map(tuple, p)) for p in plans}) == 3
    with pytest.raises(TranspertInputError, match="cv_repeats"):
        TransPert(cv_repeats=0).fit(refs, train)
