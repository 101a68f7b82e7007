"""Zero-shot TransPert and the zero-shot baselines, on data where the answer is known."""

from __future__ import annotations

import json
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from helpers_transfer import make_summary, synthetic_lines, write_zero_shot_case
from transpert._errors import TranspertInputError
from transpert.methods import ZERO_SHOT_METHODS, fit_predict, zero_shot_method
from transpert.transfer import ZeroShotTransPert, control_profile, profile_criterion

#: small grids keep each fit to a second or two
FAST = dict(temperatures=(0.01, 0.05, float("inf")), specific_scales=(0.5, 1.0, 1.5), shrinkages=("js",),
            common_scales=(0.0, 1.0), deg_thresholds=(0.5, 0.2), deg_max_rows=20_000)


@pytest.fixture(scope="module")
def data():
    refs, target, truth = synthetic_lines(
        40, 200, lines={"A": {"shared": 0.95}, "B": {"shared": 0.6}, "C": {"shared": 0.2}}, seed=5)
    ctrl = pd.Series(target.var["control_mean"].to_numpy(), index=target.var_names)
    return refs, target, ctrl


@pytest.fixture(scope="module")
def base(data):
    refs, _, ctrl = data
    return ZeroShotTransPert(**FAST).fit(refs, ctrl)


def _score(pred, target) -> float:
    sig = np.asarray(target.layers["fdr"]) < 0.05
    called = np.asarray(pred.layers["deg_probability"]) >= pred.uns["transpert_prediction"]["deg_threshold"]
    return profile_criterion(pred.layers["delta"], called, target.layers["delta"], sig,
                             target.var["control_mean"].to_numpy(), list(target.obs_names),
                             list(target.var_names))["score"]


def test_weights_rank_lines_by_true_relevance(base):
    model = base
    w = model.weights_["weight"]
    assert w["A"] > w["B"] > w["C"]
    # the leave-one-line-out check: the zero-shot score orders lines as their measured agreement
    check = model.weight_check_
    for held, sub in check.groupby("held_out"):
        assert sub.sort_values("score")["line"].tolist() == sub.sort_values("effect_corr")["line"].tolist()


def test_target_that_is_a_copy_of_a_line_gets_that_line(data):
    refs, _, _ = data
    ctrl_b = pd.Series(refs["B"].var["control_mean"].to_numpy(), index=refs["B"].var_names)
    model = ZeroShotTransPert(**FAST).fit(refs, ctrl_b)
    assert model.weights_["weight"].idxmax() == "B"
    assert model.weights_.loc["B", "control_corr"] == pytest.approx(1.0)


def test_adding_an_exact_copy_of_a_line_changes_nothing(data, base):
    refs, target, ctrl = data
    perts = list(target.obs_names)
    copied = ZeroShotTransPert(**FAST).fit({**refs, "A_copy": refs["A"].copy()}, ctrl)
    assert (copied.temperature_, copied.common_scale_, copied.specific_scale_, copied.deg_threshold_) == \
        (base.temperature_, base.common_scale_, base.specific_scale_, base.deg_threshold_)
    w = copied.weights_["weight"]
    assert w["A"] == pytest.approx(w["A_copy"]) and w["A"] + w["A_copy"] == pytest.approx(base.weights_.loc["A", "weight"])
    np.testing.assert_allclose(copied.predict(perts).layers["delta"], base.predict(perts).layers["delta"], atol=1e-6)


def test_a_line_of_pure_noise_barely_moves_the_score(data, base):
    refs, target, ctrl = data
    rng = np.random.default_rng(0)
    genes, perts = list(target.var_names), list(target.obs_names)
    noise_ctrl = rng.permutation(target.var["control_mean"].to_numpy())  # unrelated cells
    noise = make_summary(rng.normal(0, 0.3, (len(perts), len(genes))), noise_ctrl, perts, genes, noise_sd=0.3)
    model = ZeroShotTransPert(**FAST).fit({**refs, "noise": noise}, ctrl)
    assert model.weights_.loc["noise", "weight"] < 0.01
    assert abs(_score(model.predict(perts), target) - _score(base.predict(perts), target)) < 0.03


def test_beats_the_zero_shot_baselines_on_known_structure(data):
    refs, target, ctrl = data
    perts = list(target.obs_names)
    sig = np.asarray(target.layers["fdr"]) < 0.05
    scores = {}
    for method in ZERO_SHOT_METHODS:
        model, pred = fit_predict(method, refs, ctrl, perts, FAST if method == "transpert-zero-shot" else None)
        k = pred.obs["n_de_genes"].to_numpy()
        rank = np.asarray(pred.layers["deg_probability"] if "deg_probability" in pred.layers
                          else np.abs(pred.layers["delta"]))
        called = np.zeros(rank.shape, bool)
        for i, order in enumerate(np.argsort(-rank, axis=1, kind="stable")):
            called[i, order[:k[i]]] = True
        scores[method] = profile_criterion(pred.layers["delta"], called, target.layers["delta"], sig,
                                           ctrl.to_numpy(), perts, list(target.var_names))["score"]
    assert scores["transpert-zero-shot"] > max(v for k, v in scores.items() if k != "transpert-zero-shot")


def test_unmeasured_perturbation_gets_the_generic_response_and_is_flagged(data, base):
    _, _, ctrl = data
    model = base
    with pytest.warns(UserWarning, match="generic response"):
        pred = model.predict(["P30", "NEVER_SEEN"])
    assert list(pred.obs["source"]) == ["references", "generic_response"]
    comps = model._components(["NEVER_SEEN"])
    expected = np.clip(ctrl.to_numpy() + model.common_scale_ * comps.generic, 0, None) - ctrl.to_numpy()
    np.testing.assert_allclose(pred.layers["delta"][1], expected, atol=1e-6)


def test_one_reference_line_falls_back_to_defaults(data):
    refs, target, ctrl = data
    with pytest.warns(UserWarning, match="nothing to cross-validate"):
        model = ZeroShotTransPert(**FAST).fit({"A": refs["A"]}, ctrl)
    assert (model.common_scale_, model.specific_scale_, model.deg_source_) == (1.0, 1.0, "reference_significance")
    pred = model.predict(list(target.obs_names))
    np.testing.assert_array_equal(pred.layers["deg_probability"], (np.asarray(refs["A"].layers["fdr"]) < 0.05))


def test_control_profile_from_raw_counts_matches_numpy():
    rng = np.random.default_rng(1)
    counts = rng.poisson(2.0, (30, 12)).astype(np.float32)
    counts[0, 0] = 0
    cells = ad.AnnData(X=sp.csr_matrix(counts), obs=pd.DataFrame({"target_gene": ["non-targeting"] * 30}),
                       var=pd.DataFrame(index=[f"g{i}" for i in range(12)]))
    prof = control_profile(cells)
    size = counts.sum(axis=1, keepdims=True)
    expected = np.log1p(counts / size * np.median(size)).mean(axis=0)
    np.testing.assert_allclose(prof.control_mean, expected, rtol=1e-5)
    np.testing.assert_allclose(prof.control_frac, (counts > 0).mean(axis=0))
    cells.obs["target_gene"] = ["STAT1"] + ["non-targeting"] * 29
    with pytest.raises(TranspertInputError, match="not controls"):
        control_profile(cells)


def test_criterion_against_hand_computation():
    ctrl = np.array([1.0, 1.0, 0.5, 2.0])
    real = np.array([[0.5, -0.5, 0.0, 0.0], [0.0, 0.0, 0.4, -0.2]])
    pred = np.array([[0.4, 0.1, 0.0, 0.0], [0.0, 0.0, 0.2, -0.3]])
    real_sig = np.array([[True, True, False, False], [False, False, True, False]])
    called = np.array([[True, False, False, True], [False, False, True, False]])
    out = profile_criterion(pred, called, real, real_sig, ctrl, ["p1", "p2"], ["a", "b", "c", "d"])
    assert out["de_jaccard"] == pytest.approx((1 / 3 + 1) / 2)
    assert out["de_direction"] == pytest.approx((1 / 2 + 1) / 2)
    assert out["mse"] == pytest.approx(np.mean((pred - real) ** 2))

    def lfc(d):
        return np.log2(np.expm1(ctrl + d) / np.expm1(ctrl))
    lp, lr = lfc(pred), lfc(real)
    nmae = [np.abs(lp[0, :2] - lr[0, :2]).mean() / np.abs(lr[0, :2]).mean(),
            np.abs(lp[1, 2] - lr[1, 2]) / np.abs(lr[1, 2])]
    assert out["lfc_nmae"] == pytest.approx(np.mean(nmae))
    anchored = [2 * (out["pds_cosine"] - 0.5), 1 - out["mse"] / np.mean(real ** 2), out["de_direction"],
                out["de_jaccard"], 1 - out["lfc_nmae"]]
    assert out["score"] == pytest.approx(np.mean([max(-1, a) for a in anchored]))


def test_zero_shot_baselines_against_hand_computations(data):
    refs, target, ctrl = data
    perts = ["P1", "P2", "P33"]
    genes = list(ctrl.index)
    deltas = [np.asarray(refs[k][perts, genes].layers["delta"]) for k in "ABC"]
    _, pred = fit_predict("zero-shot-reference-mean", refs, ctrl, perts)
    np.testing.assert_allclose(pred.layers["delta"], np.clip(ctrl.to_numpy() + np.mean(deltas, axis=0), 0, 15)
                               - ctrl.to_numpy(), atol=1e-9)
    _, pred = fit_predict("zero-shot-mean-response", refs, ctrl, perts)
    response = np.mean([np.asarray(refs[k].layers["delta"]).mean(axis=0) for k in "ABC"], axis=0)
    np.testing.assert_allclose(pred.layers["delta"][0], np.clip(ctrl.to_numpy() + response, 0, 15) - ctrl.to_numpy(),
                               atol=1e-9)
    _, pred = fit_predict("zero-shot-control", refs, ctrl, perts)
    assert not np.asarray(pred.layers["delta"]).any()
    # the linear model fitted on the references, by explicit inverses
    model, pred = fit_predict("zero-shot-linear", refs, ctrl, perts, {"n_components": 3, "ridge": 0.5})
    all_perts = sorted(refs["A"].obs_names)
    y = np.mean([np.asarray(refs[k][all_perts, genes].layers["delta"]) for k in "ABC"], axis=0).T
    yc = y - y.mean(axis=1, keepdims=True)
    u, s, vt = np.linalg.svd(yc, full_matrices=False)
    g, p = u[:, :3] * s[:3], vt[:3].T * s[:3]
    w = np.linalg.inv(g.T @ g + 0.5 * np.eye(3)) @ g.T @ yc @ p @ np.linalg.inv(p.T @ p + 0.5 * np.eye(3))
    expected = (g @ w @ p[[all_perts.index(x) for x in perts]].T).T + y.mean(axis=1)
    np.testing.assert_allclose(pred.layers["delta"], np.clip(ctrl.to_numpy() + expected, 0, 15) - ctrl.to_numpy(),
                               atol=1e-8)


def test_zero_shot_method_mapping():
    assert zero_shot_method("transpert") == "transpert-zero-shot"
    assert zero_shot_method("cell-mean") == "zero-shot-mean-response"
    assert zero_shot_method("zero-shot-linear") == "zero-shot-linear"
    with pytest.raises(TranspertInputError, match="no zero-shot counterpart"):
        zero_shot_method("deg-frequency")


def test_cli_detects_zero_shot(tmp_path, capsys):
    from transpert.cli import main

    # half of the controls are the zero-shot input, the other half are real
    atlas, refs, target, labels, perts = write_zero_shot_case(tmp_path, 15, slice(None, None, 2))
    ctrl_rows = np.flatnonzero(labels == "non-targeting")
    args = ["predict", "--reference", *refs, "--target-train", str(tmp_path / "controls.h5ad"),
            "--counts", str(tmp_path / "counts.csv")]
    params = ["--param", 'temperatures=[0.05, "inf"]', "--param", "specific_scales=[0.5, 1.0]",
              "--param", "deg_max_rows=10000"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*args, *params, "-o", str(tmp_path / "p.h5ad"), "--pseudobulk", str(tmp_path / "pb.h5ad")]) == 0
    out = capsys.readouterr().out
    assert "zero-shot" in out and "transpert-zero-shot" in out
    pb = ad.read_h5ad(tmp_path / "pb.h5ad")
    assert pb.uns["transpert_prediction"]["zero_shot"] and list(pb.obs_names) == perts
    cells = ad.read_h5ad(tmp_path / "p.h5ad")
    assert (cells.obs["target_gene"].value_counts()[perts] == 15).all()
    assert main([*args, "--method", "deg-frequency", "-o", str(tmp_path / "q.h5ad")]) == 2
    assert "no zero-shot counterpart" in capsys.readouterr().err

    # `transpert run`: the zero_shot key; methods mapped to their zero-shot counterparts
    real_rows = np.isin(labels, perts)
    real_rows[ctrl_rows[1::2]] = True
    held = target[real_rows].copy()
    held.write_h5ad(tmp_path / "real.h5ad")
    config = tmp_path / "run.yaml"
    config.write_text("references: {%s}\ntarget_train: controls.h5ad\ncounts: counts.csv\n"
                      "real: real.h5ad\noutput: out\nmethods: [control, reference-mean]\nzero_shot: true\n"
                      "n_boot: 20\n" % ", ".join(f"{n}: {n}.h5ad" for n in atlas.reference_lines))
    assert main(["run", str(config)]) == 0
    printed = capsys.readouterr().out
    assert "zero-shot: the target is known by" in printed
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["zero_shot"] is True
    assert sorted(record["predictions"]) == ["zero-shot-control", "zero-shot-reference-mean"]
    board = pd.read_csv(tmp_path / "out" / "leaderboard.csv")
    assert sorted(board["method"]) == ["zero-shot-control", "zero-shot-reference-mean"]


def test_criterion_is_pluggable(data):
    refs, _, ctrl = data
    calls = []

    def smallest_effects(pred_delta, pred_called, real_delta, real_sig, control_mean, perts, genes):
        calls.append(len(perts))
        return {"score": -float(np.abs(pred_delta).mean())}

    model = ZeroShotTransPert(**{**FAST, "common_scales": (0.0, 1.0), "specific_scales": (0.0, 1.0)},
                              criterion=smallest_effects, one_se_rule=False).fit(refs, ctrl)
    assert calls and (model.common_scale_, model.specific_scale_) == (0.0, 0.0)
