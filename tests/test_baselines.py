"""Baselines on data where the right answer is known."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from transpert._errors import TranspertInputError
from transpert.summarize import log2fc
from transpert.baselines import (
    BASELINES,
    CellMeanBaseline,
    ControlBaseline,
    DegFrequencyBaseline,
    LinearBaseline,
    LinearTransferBaseline,
    ReferenceMeanBaseline,
    TrainMeanBaseline,
    get_baseline,
)


def make_summary(delta, control_mean, perts, genes, fdr=None):
    """A summary profile built directly (obs = perturbations, var = genes, log1p scale)."""
    delta = np.asarray(delta, dtype=float)
    control_mean = np.asarray(control_mean, dtype=float)
    layers = {"mean": control_mean[None, :] + delta, "delta": delta}
    if fdr is not None:
        layers["fdr"] = np.asarray(fdr, dtype=float)
    return ad.AnnData(X=layers["mean"].copy(), obs=pd.DataFrame(index=list(perts)),
                      var=pd.DataFrame({"control_mean": control_mean}, index=list(genes)), layers=layers)


@pytest.fixture
def small():
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(30)]
    ctrl = rng.uniform(0.5, 2.0, 30)
    train = make_summary(rng.normal(0, 0.2, (6, 30)), ctrl, [f"P{i}" for i in range(6)], genes)
    ref = make_summary(rng.normal(0, 0.2, (10, 30)), rng.uniform(0.5, 2, 30), [f"P{i}" for i in range(10)], genes)
    return train, ref, genes, ctrl


def test_control_predicts_no_change(small):
    train, ref, genes, ctrl = small
    pred = ControlBaseline().fit({"r": ref}, train).predict(["P7", "P8"])
    assert list(pred.obs_names) == ["P7", "P8"] and list(pred.var_names) == genes
    np.testing.assert_array_equal(pred.layers["delta"], 0.0)
    np.testing.assert_array_equal(pred.layers["mean"], np.tile(ctrl, (2, 1)))
    np.testing.assert_array_equal(pred.layers["log2fc"], 0.0)


def test_cell_mean_equals_cell_eval_baseline(tmp_path):
    """cell-mean from a summary equals cell-eval 0.8.2's build_base_mean_adata on the same cells."""
    from cell_eval._baseline import _build_pert_baseline

    rng = np.random.default_rng(1)
    labels = np.repeat(["non-targeting", "A", "B", "C"], [50, 20, 35, 12])
    x = np.log1p(rng.poisson(rng.uniform(0.2, 5, 40), size=(len(labels), 40))).astype(np.float32)
    cells = ad.AnnData(X=x, obs=pd.DataFrame({"target_gene": labels}, index=[f"c{i}" for i in range(len(labels))]),
                       var=pd.DataFrame(index=[f"g{i}" for i in range(40)]))
    reference = _build_pert_baseline(cells, pert_col="target_gene", control_pert="non-targeting")
    # the summary, built independently with pandas group means
    means = pd.DataFrame(x.astype(np.float64), columns=cells.var_names).groupby(labels).mean()
    ctrl = means.loc["non-targeting"].to_numpy()
    summary = make_summary(means.loc[["A", "B", "C"]].to_numpy() - ctrl, ctrl, ["A", "B", "C"], cells.var_names)
    pred = CellMeanBaseline().fit({}, summary).predict(["D", "E"])
    np.testing.assert_allclose(pred.layers["mean"], np.tile(reference, (2, 1)), rtol=1e-6)  # float32 input


def test_written_cell_mean_is_the_challenge_baseline_and_scores_zero(tmp_path):
    """Written with the writer's defaults, the cell-mean prediction is cell-eval 0.8.2's baseline
    (raw-count training file; the controls normalised with the whole file's median), so its
    challenge score against that baseline is 0 (up to float32 rounding)."""
    from transpert import evaluate as ev
    from transpert.evaluate import build_baseline
    from transpert.predict import write_prediction
    from transpert.summarize import summarize

    rng = np.random.default_rng(2)
    labels = np.repeat(["non-targeting", "A", "B", "C", "D", "E"], [80, 30, 25, 40, 30, 30])
    rates = rng.uniform(0.2, 5, 50)
    mult = {"A": 1.0, "B": 1.5, "C": 0.6, "D": 1.2, "E": 0.8}
    counts_x = np.vstack([rng.poisson(rates * (mult.get(lab, 1.0) if j < 10 else 1.0), size=50)
                          for lab in labels for j in [0]]).astype(np.float32)
    obs = pd.DataFrame({"target_gene": labels}, index=[f"c{i}" for i in range(len(labels))])
    cells = ad.AnnData(X=counts_x, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(50)]))
    train = cells[np.isin(labels, ["non-targeting", "A", "B", "C"])].copy()
    real = cells[np.isin(labels, ["non-targeting", "D", "E"])].copy()
    counts = pd.DataFrame({"target_gene": ["D", "E"], "n_cells": [30, 30]})
    pred = CellMeanBaseline().fit({}, summarize(train, show_progress=False)).predict(["D", "E"])
    written = ad.read_h5ad(write_prediction(pred, train, counts, list(cells.var_names),
                                            tmp_path / "cm.h5ad", max_cells=None).filename)
    base = build_baseline(train, counts)
    lab_w, lab_b = (a.obs["target_gene"].astype(str).to_numpy() for a in (written, base))
    xw, xb = written.X.toarray(), np.asarray(base.X)
    for group in ("non-targeting", "D", "E"):
        np.testing.assert_allclose(np.sort(xw[lab_w == group], axis=0), np.sort(xb[lab_b == group], axis=0),
                                   rtol=2e-6, atol=1e-6)
    res = ev.evaluate(real, written, profile="vcc", baseline=base)
    score = res.score.set_index("metric")["from_baseline"]
    # DES and PDS exactly the baseline's; MAE equal up to float32 rounding of the mean vector
    # (cell-eval averages float32 group means, the summary float64 ones): |score| < 1e-6
    assert score["overlap_at_N"] == 0.0 and score["discrimination_score_l1"] == 0.0, score
    assert 0.0 <= score["avg_score"] < 1e-6, score


def test_train_mean_and_reference_mean(small):
    train, ref, genes, ctrl = small
    tm = TrainMeanBaseline().fit({}, train).predict(["P9"])
    np.testing.assert_allclose(tm.layers["delta"][0], train.layers["delta"].mean(0), atol=1e-12)

    # two lines, one missing a gene and one missing a perturbation: per-gene means over lines that have it
    ref2 = make_summary(np.full((2, 29), 1.0), np.ones(29), ["P7", "P20"], genes[1:])
    rm = ReferenceMeanBaseline().fit({"a": ref, "b": ref2}, train).predict(["P7", "P8", "P20", "NEW"])
    d = rm.layers["delta"]
    np.testing.assert_allclose(d[0, 0], ref.layers["delta"][7, 0])            # gene only in line a
    np.testing.assert_allclose(d[0, 1:], (ref.layers["delta"][7, 1:] + 1.0) / 2)  # both lines
    np.testing.assert_allclose(d[1], ref.layers["delta"][8])                  # only line a
    np.testing.assert_allclose(d[2, 1:], 1.0)                                  # only line b
    np.testing.assert_allclose(d[2, 0], train.layers["delta"].mean(0)[0])     # no line has gene 0
    np.testing.assert_allclose(d[3], train.layers["delta"].mean(0))            # no line: fallback
    assert list(rm.obs["source"]) == ["reference"] * 3 + ["fallback:train-mean"]


def test_reference_mean_needs_references(small):
    train, *_ = small
    with pytest.raises(TranspertInputError, match="reference"):
        ReferenceMeanBaseline().fit({}, train)


def _centred(rng, n, k):
    m = rng.normal(size=(n, k))
    return m - m.mean(axis=0)


def test_linear_transfer_recovers_exact_low_rank_effect():
    """Y = b + G0 W0 P0ᵀ with references spanning P0: held-out perturbations predicted exactly."""
    rng = np.random.default_rng(2)
    n_genes, k = 60, 4
    genes = [f"g{i}" for i in range(n_genes)]
    g0, w0 = rng.normal(size=(n_genes, k)), rng.normal(0, 0.3, size=(k, k))
    p_train, p_test = _centred(rng, 15, k), _centred(rng, 5, k)
    b = rng.normal(0, 0.1, n_genes)
    train_delta = b[None, :] + (g0 @ w0 @ p_train.T).T
    test_delta = b[None, :] + (g0 @ w0 @ p_test.T).T
    perts_train, perts_test = [f"T{i}" for i in range(15)], [f"H{i}" for i in range(5)]
    # reference effects: a different linear read-out of the same perturbation embedding
    h = rng.normal(size=(k, n_genes))
    ref = make_summary(np.vstack([p_train, p_test]) @ h, np.ones(n_genes), perts_train + perts_test, genes)
    train = make_summary(train_delta, np.full(n_genes, 7.0), perts_train, genes)
    model = LinearTransferBaseline(n_components=k, ridge=1e-10).fit({"ref": ref}, train)
    pred = model.predict(perts_test)
    np.testing.assert_allclose(pred.layers["delta"], test_delta, atol=1e-6)
    # a ridge penalty shrinks the effect towards b: the error grows with the penalty
    err = [np.abs(LinearTransferBaseline(n_components=k, ridge=r).fit({"ref": ref}, train)
                  .predict(perts_test).layers["delta"] - test_delta).mean() for r in (1e-10, 1.0, 100.0)]
    assert err[0] < err[1] < err[2]


def test_linear_gene_embedding_recovers_exact_low_rank_effect():
    """Single-dataset model: perturbation of gene g embedded as g's row of G."""
    rng = np.random.default_rng(3)
    n_genes, k = 50, 3
    genes = [f"g{i}" for i in range(n_genes)]
    g0 = rng.normal(size=(n_genes, k))
    train_idx, test_idx = np.arange(0, 20), np.arange(20, 25)
    g0[train_idx] -= g0[train_idx].mean(axis=0)  # so b is exactly the row mean of Y
    w0 = rng.normal(0, 0.3, size=(k, k))
    b = rng.normal(0, 0.1, n_genes)
    delta = lambda idx: b[None, :] + (g0 @ w0 @ g0[idx].T).T  # noqa: E731
    train = make_summary(delta(train_idx), np.full(n_genes, 7.0), [genes[i] for i in train_idx], genes)
    model = LinearBaseline(n_components=k, ridge=1e-10).fit({}, train)
    pred = model.predict([genes[i] for i in test_idx] + ["not-a-gene"])
    np.testing.assert_allclose(pred.layers["delta"][:5], delta(test_idx), atol=1e-6)
    np.testing.assert_allclose(pred.layers["delta"][5], delta(train_idx).mean(0), atol=1e-9)
    assert pred.obs["source"].iloc[-1] == "fallback:train-mean"


def test_linear_bad_parameters(small):
    train, ref, *_ = small
    with pytest.raises(TranspertInputError, match="embedding"):
        LinearBaseline(embedding="magic").fit({}, train)
    with pytest.raises(TranspertInputError, match="n_components"):
        LinearBaseline(n_components=0).fit({}, train)
    with pytest.raises(TranspertInputError, match="none of the"):
        LinearBaseline().fit({}, train)  # perturbations P0..P5 are not gene names G0..


def test_deg_frequency():
    genes = ["a", "b", "c", "d"]
    delta = np.array([[1.0, -0.5, 0.1, 0.0], [3.0, -0.1, 0.2, 0.0], [0.5, 0.2, 0.3, 0.0]])
    fdr = np.array([[0.01, 0.01, 0.5, np.nan], [0.01, 0.9, 0.5, 1.0], [0.5, 0.04, 0.5, 1.0]])
    train = make_summary(delta, [1.0, 1.0, 1.0, 0.0], ["p", "q", "r"], genes, fdr=fdr)
    pred = DegFrequencyBaseline().fit({}, train).predict(["x", "y"])
    np.testing.assert_allclose(pred.layers["deg_probability"][0], [2 / 3, 2 / 3, 0, 0])
    np.testing.assert_allclose(pred.layers["delta"][1], [2.0, (-0.5 + 0.2) / 2, 0.0, 0.0])
    with pytest.raises(TranspertInputError, match="fdr"):
        DegFrequencyBaseline().fit({}, make_summary(delta, np.ones(4), ["p", "q", "r"], genes))


def test_log2fc_matches_pdex():
    from pdex._math import log2_fold_change

    rng = np.random.default_rng(4)
    mean = np.concatenate([rng.uniform(0, 3, 20), [0.0, 0.5, 0.0]])
    ctrl = np.concatenate([rng.uniform(0, 3, 20), [0.0, 0.0, 0.3]])
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = log2_fold_change(np.expm1(mean), np.expm1(ctrl))
    np.testing.assert_allclose(log2fc(mean[None, :], ctrl)[0], expected, rtol=1e-12)
    assert list(expected[-3:]) == [0.0, np.inf, -np.inf]


def test_registry_and_interface(small):
    train, ref, genes, ctrl = small
    assert {"control", "cell-mean", "train-mean", "reference-mean", "linear", "linear-transfer",
            "deg-frequency"} <= set(BASELINES)
    with pytest.raises(TranspertInputError, match="known"):
        get_baseline("nope")
    with pytest.raises(TranspertInputError, match="not a summary"):
        ControlBaseline().fit({}, ad.AnnData(np.zeros((2, 2))))
    with pytest.raises(TranspertInputError, match="string"):
        ControlBaseline().fit({}, train).predict("P1")
    with pytest.raises(RuntimeError, match="not fitted"):
        ControlBaseline().predict(["P1"])
    # predictions stay on the log1p scale: mean clipped to [0, 15), delta consistent with it
    big = make_summary(np.full((2, 30), -50.0), ctrl, ["P0", "P1"], genes)
    pred = TrainMeanBaseline().fit({}, big).predict(["Z"])
    assert pred.layers["mean"].min() == 0.0
    np.testing.assert_allclose(pred.layers["delta"], pred.layers["mean"] - ctrl[None, :])


def test_methods_without_de_model_state_their_number_of_degs():
    genes = ["a", "b", "c", "d"]
    fdr = np.array([[0.01, 0.01, 0.5, 0.5], [0.01, 0.9, 0.5, 1.0], [0.01, 0.04, 0.01, 1.0]])
    train = make_summary(np.zeros((3, 4)), np.ones(4), ["p", "q", "r"], genes, fdr=fdr)
    for cls in (ControlBaseline, TrainMeanBaseline, CellMeanBaseline, DegFrequencyBaseline):
        pred = cls().fit({}, train).predict(["x"])
        assert int(pred.obs["n_de_genes"].iloc[0]) == 2  # median of 2, 1, 3 DEGs
    assert "n_de_genes" not in ControlBaseline().fit({}, make_summary(np.zeros((3, 4)), np.ones(4), ["p", "q", "r"],
                                                                      genes)).predict(["x"]).obs
