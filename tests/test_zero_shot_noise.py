"""Zero-shot TransPert's noise-aware criterion and its save/load round trip."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from helpers_transfer import synthetic_lines, write_zero_shot_case
from transpert._errors import TranspertInputError
from transpert.transfer import ZeroShotTransPert
from transpert.transfer.zero_shot_noise import NoiseModel, cosine_discrimination, noise_criterion, raw_members

FAST = dict(temperatures=(0.05, float("inf")), specific_scales=(0.5, 1.0), shrinkages=("js",),
            common_scales=(0.0, 1.0), deg_thresholds=(0.5, 0.2), deg_max_rows=20_000)


@pytest.fixture(scope="module")
def data():
    refs, target, _ = synthetic_lines(
        30, 150, lines={"A": {"shared": 0.95}, "B": {"shared": 0.6}, "C": {"shared": 0.2}}, seed=7)
    ctrl = pd.Series(target.var["control_mean"].to_numpy(), index=target.var_names)
    return refs, target, ctrl


def test_noise_model_against_hand_computation():
    delta = np.array([[0.2, 0.0, 0.05], [0.1, 0.3, 0.01]])
    p = np.array([[0.001, 1.0, 0.5], [0.04, 0.0001, 0.9]])
    fdr = np.array([[0.003, 1.0, 0.6], [0.06, 0.0004, 0.9]])
    n_cells, n_ctrl = np.array([20.0, 40.0]), 100
    model = NoiseModel.from_summary(delta, p, fdr, np.array([1.0, 2.0, 0.5]), n_cells, n_ctrl)
    f = 1 / n_cells + 1 / n_ctrl
    z = norm.isf(p / 2)
    v0 = np.median([(0.2 / z[0, 0]) ** 2 / f[0], (0.1 / z[1, 0]) ** 2 / f[1]])  # both z > 1
    v1 = (0.3 / z[1, 1]) ** 2 / f[1]  # the other entry has delta 0
    c = np.median([v0 / 1.0, v1 / 2.0])  # gene 2 has no z > 1: c * control mean
    np.testing.assert_allclose(model.v, [v0, v1, c * 0.5], rtol=1e-12)
    np.testing.assert_allclose(model.se, np.sqrt(model.v * (1 / 30 + 1 / 100)), rtol=1e-12)
    np.testing.assert_allclose(model.ctrl_sd, np.sqrt(2 * model.v / 100), rtol=1e-12)
    assert model.z_crit == pytest.approx(norm.isf(0.001 / 2))  # the largest p with fdr < 0.05


def test_raw_members_against_hand_computation():
    ctrl = np.array([1.0, 1.0, 0.5, 2.0])
    real = np.array([[0.5, -0.5, 0.0, 0.1], [0.0, 0.0, 0.4, -0.2]])
    pred = np.array([[0.4, 0.1, 0.0, -0.3], [0.0, 0.0, 0.2, -0.3]])
    sig = np.array([[True, True, False, False], [False, False, True, False]])
    detect = np.array([[True, False, False, True], [False, False, True, True]])
    out = raw_members(pred, detect, real, sig, ctrl, ["p1", "p2"], list("abcd"), np.zeros(4))
    # yield: detectable calls with the real delta's sign, over max(#detectable, #significant)
    assert out["yield"] == pytest.approx((1 / 2 + 2 / 2) / 2)
    assert out["jaccard"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    # reach: p1's significant genes in the prediction's order (a detectable first): a right,
    # b wrong -> purity 1 then 1/2 -> prefix 1 of 2; p2: c right -> 1 of 1
    assert out["reach"] == pytest.approx((1 / 2 + 1) / 2)
    pm, rm = np.clip(ctrl + pred, 0, None), np.clip(ctrl + real, 0, None)
    assert out["mse"] == pytest.approx(((pm - rm) ** 2).sum() / ((rm - ctrl) ** 2).sum())
    assert np.isnan(out["lfc_nmae"])  # no perturbation has 10 significant genes


def test_noise_criterion_ranks_truth_above_shrunk_and_anchors_as_the_challenge(data):
    refs, _, _ = data
    line = refs["A"]
    noise = NoiseModel.from_anndata(line)
    real = np.nan_to_num(np.asarray(line.layers["delta"], dtype=np.float64))
    sig = np.nan_to_num(np.asarray(line.layers["fdr"], dtype=np.float64), nan=1.0) < 0.05
    args = (real, sig, line.var["control_mean"].to_numpy(), list(line.obs_names), list(line.var_names))
    truth = noise_criterion(real, sig, *args, noise=noise)
    shrunk = noise_criterion(real / 4, sig, *args, noise=noise)
    everything = np.ones_like(sig)  # the baseline's calls: every detectable gene
    mean = noise_criterion(np.broadcast_to(real.mean(axis=0), real.shape), everything, *args, noise=noise)
    assert truth["score"] > shrunk["score"] > mean["score"]
    assert shrunk["yield"] < truth["yield"]  # shrunk calls fall below detection
    # the mean response is the baseline: 0 on every defined higher-is-better member
    for m in ("pds_cosine", "yield", "reach", "jaccard"):
        assert mean[f"s_{m}"] == pytest.approx(0.0, abs=1e-12) or np.isnan(mean[f"s_{m}"])


def test_noise_criterion_is_used_by_name(data):
    refs, _, ctrl = data
    model = ZeroShotTransPert(**FAST, criterion="noise").fit(refs, ctrl)
    assert np.isfinite(model.cv_curve_["score"]).all()
    assert ZeroShotTransPert()._criterion() is noise_criterion  # the default
    from transpert.transfer import profile_criterion

    assert ZeroShotTransPert(criterion="profile")._criterion() is profile_criterion
    with pytest.raises(TranspertInputError, match="criterion must be"):
        ZeroShotTransPert(**FAST, criterion="nope").fit(refs, ctrl)


def test_save_load_round_trip_predicts_identically(data, tmp_path):
    refs, target, ctrl = data
    perts = [*list(target.obs_names[:10]), "NEVER_SEEN"]

    def custom(pred_delta, pred_called, real_delta, real_sig, control_mean, perts_, genes):
        return {"score": -float(np.mean((pred_delta - real_delta) ** 2))}

    for params in (dict(FAST), dict(FAST, criterion=custom)):
        model = ZeroShotTransPert(**params).fit(refs, ctrl)
        model.save(tmp_path / "m")
        loaded = ZeroShotTransPert.load(tmp_path / "m")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a, b = model.predict(perts), loaded.predict(perts)
        for layer in ("mean", "delta", "log2fc", "deg_probability"):
            np.testing.assert_array_equal(a.layers[layer], b.layers[layer])
        pd.testing.assert_frame_equal(a.obs, b.obs)
        assert a.uns["transpert_prediction"] == b.uns["transpert_prediction"]
        for attr in ("temperature_", "common_scale_", "specific_scale_", "deg_threshold_", "shrinkage_"):
            assert getattr(loaded, attr) == getattr(model, attr)
        pd.testing.assert_frame_equal(loaded.cv_curve_, model.cv_curve_, check_dtype=False)
    assert loaded.criterion is None  # a callable criterion is only used by fit and is not saved
    (tmp_path / "m" / "arrays.npz").unlink()
    with pytest.raises(TranspertInputError, match="arrays.npz is missing"):
        ZeroShotTransPert.load(tmp_path / "m")


def test_one_line_model_round_trips(data, tmp_path):
    refs, target, ctrl = data
    with pytest.warns(UserWarning, match="nothing to cross-validate"):
        model = ZeroShotTransPert(**FAST).fit({"A": refs["A"]}, ctrl)
    model.save(tmp_path / "one")
    loaded = ZeroShotTransPert.load(tmp_path / "one")
    perts = list(target.obs_names[:5])
    np.testing.assert_array_equal(model.predict(perts).layers["deg_probability"],
                                  loaded.predict(perts).layers["deg_probability"])


def test_cli_fit_then_predict_a_zero_shot_model(tmp_path, capsys):
    from transpert.cli import main

    _, refs, _, _, _ = write_zero_shot_case(tmp_path, 10)
    params = ["--param", 'temperatures=[0.05, "inf"]', "--param", "specific_scales=[0.5, 1.0]",
              "--param", "deg_max_rows=10000"]
    common = ["--target-train", str(tmp_path / "controls.h5ad")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["fit", "--reference", *refs, *common, *params, "-o", str(tmp_path / "model")]) == 0
        assert "saved zero-shot TransPert model" in capsys.readouterr().out
        assert main(["predict", *common, "--model", str(tmp_path / "model"), "--counts",
                     str(tmp_path / "counts.csv"), "-o", str(tmp_path / "p.h5ad"),
                     "--pseudobulk", str(tmp_path / "pb.h5ad")]) == 0
        assert "no refit" in capsys.readouterr().out
        assert main(["predict", "--reference", *refs, *common, *params, "--counts", str(tmp_path / "counts.csv"),
                     "-o", str(tmp_path / "q.h5ad"), "--pseudobulk", str(tmp_path / "qb.h5ad")]) == 0
    loaded, refit = ad.read_h5ad(tmp_path / "pb.h5ad"), ad.read_h5ad(tmp_path / "qb.h5ad")
    np.testing.assert_array_equal(loaded.layers["delta"], refit.layers["delta"])


def test_zero_shot_run_saves_the_model_it_predicted_with(tmp_path, capsys):
    """`transpert run` of a zero-shot config writes model/, and `predict --model` from it gives
    the run's own pseudo-bulk (no refit)."""
    from transpert.cli import main

    atlas, _, _, _, _ = write_zero_shot_case(tmp_path, 10)
    config = tmp_path / "run.yaml"
    config.write_text(
        "references: {%s}\ntarget_train: controls.h5ad\ncounts: counts.csv\noutput: out\n"
        "methods: [transpert]\nparams: {transpert-zero-shot: {temperatures: [0.05, .inf], "
        "specific_scales: [0.5, 1.0], deg_max_rows: 10000}}\n"
        % ", ".join(f"{n}: {n}.h5ad" for n in atlas.reference_lines))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["run", str(config)]) == 0
        assert (tmp_path / "out" / "model" / "model.json").exists()
        capsys.readouterr()
        assert main(["predict", "--target-train", str(tmp_path / "controls.h5ad"), "--model",
                     str(tmp_path / "out" / "model"), "--counts", str(tmp_path / "counts.csv"),
                     "-o", str(tmp_path / "p.h5ad"), "--pseudobulk", str(tmp_path / "pb.h5ad")]) == 0
        assert "no refit" in capsys.readouterr().out
    ran = ad.read_h5ad(tmp_path / "out" / "predictions" / "transpert-zero-shot.pseudobulk.h5ad")
    loaded = ad.read_h5ad(tmp_path / "pb.h5ad")
    assert list(ran.obs_names) == list(loaded.obs_names)
    np.testing.assert_array_equal(loaded.layers["delta"], ran.layers["delta"])


def test_cosine_discrimination_against_brute_force():
    rng = np.random.default_rng(3)
    genes = [f"g{i}" for i in range(30)]
    labels = ["g0", "g1", "x2", "x3", "x4"]  # two perturbed genes are in the panel
    real = rng.normal(size=(5, 30))
    pred = real + rng.normal(scale=1.5, size=(5, 30))
    pred[4] = pred[3]  # a tie
    keep = [i for i, g in enumerate(genes) if g not in labels]
    scores = []
    for i in range(5):
        d = [1 - np.dot(pred[i, keep], real[j, keep]) / np.linalg.norm(pred[i, keep]) / np.linalg.norm(real[j, keep])
             for j in range(5)]
        less = sum(x < d[i] for x in d)
        equal = sum(x == d[i] for x in d)
        scores.append(1 - (less + (equal - 1) / 2) / 4)
    assert cosine_discrimination(pred, real, labels, genes) == pytest.approx(np.mean(scores))
