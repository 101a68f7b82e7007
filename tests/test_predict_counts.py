"""Raw-count predictions (``write_prediction(..., format="counts")``), checked against brute force:
the pseudo-bulk recomputed by hand from the written integers, scipy's Mann-Whitney U on
CPM-normalised cells, and the rules cell-eval2's ``vcc2026`` validation applies (non-negative
integers, at most 1e6 counts per cell, controls present, the gene order). With
``TRANSPERT_CELL_EVAL2_PYTHON`` pointing at a python with cell-eval2 0.20.0, cell-eval2 itself
runs the ``vcc2026`` preset on the file."""

from __future__ import annotations

import os
import subprocess

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.stats import false_discovery_control, mannwhitneyu

from transpert._errors import TranspertInputError
from transpert.baselines import make_prediction
from transpert.data import normalize_log1p
from transpert.data.schema import CONTROL_LABEL, PERT_COL
from transpert.predict import write_prediction

G, M = 500, 1200
T = 50_000.0  # cell-eval2 vcc2026's pseudo-bulk total


def _controls(seed=0):
    rng = np.random.default_rng(seed)
    level = rng.lognormal(-1.0, 1.5, G)
    lib = rng.lognormal(np.log(20_000), 0.3, M)
    lam = np.outer(lib, level / level.sum()) * rng.gamma(2.0, 0.5, (M, G))
    X = rng.poisson(lam).astype(np.float32)
    genes = [f"G{i:04d}" for i in range(G)]
    obs = pd.DataFrame({PERT_COL: [CONTROL_LABEL] * M}, index=[f"c{i}" for i in range(M)])
    return ad.AnnData(sp.csr_matrix(X), obs=obs, var=pd.DataFrame(index=genes))


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    ctrl = _controls()
    genes = list(ctrl.var_names)
    cm = np.asarray(normalize_log1p(ctrl.X, target_sum=float(np.median(np.asarray(ctrl.X.sum(axis=1))))).mean(axis=0)).ravel()
    rng = np.random.default_rng(1)
    expressed = np.flatnonzero(cm > 0.3)
    picked = rng.choice(expressed, 19, replace=False)
    de, kd = picked[:16], picked[16:]
    # named after genes of the panel, as cell-eval2 matches each perturbation to its target gene
    perts = [genes[k] for k in kd]
    delta = np.zeros((3, G))
    prob = np.zeros((3, G))
    up, down = de[:8], de[8:]
    delta[0, up], delta[0, down] = 0.8, -0.6
    prob[0, de] = 0.9
    delta[1, de[:4]] = -cm[de[:4]]  # knocked out entirely
    prob[1, de[:4]] = 0.9
    delta[2] = rng.normal(0.0, 0.03, G)  # small changes, none called DE
    delta[2] = np.maximum(delta[2], -cm)
    delta[0, kd[0]], delta[1, kd[1]] = -0.8 * cm[kd[0]], -0.8 * cm[kd[1]]  # the knockdowns
    prob[0, kd[0]] = prob[1, kd[1]] = 0.9
    down = np.append(down, kd[0])
    pred = make_prediction(perts, pd.Index(genes), cm, delta, method="test", deg_probability=prob)
    counts = pd.DataFrame({PERT_COL: perts, "n_cells": [300, 250, 300]})
    out = tmp_path_factory.mktemp("counts") / "pred.h5ad"
    backed = write_prediction(pred, ctrl, counts, genes, out, format="counts", seed=3)
    backed.file.close()
    written = ad.read_h5ad(out)
    return dict(ctrl=ctrl, genes=genes, pred=pred, counts=counts, out=out, written=written,
                de={perts[0]: (up, down), perts[1]: (np.array([], int), np.append(de[:4], kd[1]))},
                cm=cm, perts=perts)


def _by_hand_pseudobulk(cells):
    s = np.asarray(cells.sum(axis=0), dtype=np.float64).ravel()
    return s, np.log1p(T * s / s.sum())


def _predicted_fractions(case, i):
    """The module's definition computed here from scratch: pooled control fractions times the
    predicted ratio of expm1 means, renormalised."""
    totals = np.asarray(case["ctrl"].X.sum(axis=0), dtype=np.float64).ravel()
    c = totals / totals.sum()
    mean, delta = case["pred"].layers["mean"][i], case["pred"].layers["delta"][i]
    rho = np.expm1(mean) / np.expm1(mean - delta)
    q = c * np.where(np.expm1(mean - delta) > 0, rho, 0.0)
    return q / q.sum()


def test_file_follows_the_vcc2026_input_rules(case):
    w = case["written"]
    X = w.X
    assert sp.issparse(X) and X.nnz > 0
    assert list(w.var_names) == case["genes"]
    assert X.data.min() >= 0 and np.array_equal(X.data, np.round(X.data))
    assert np.asarray(X.sum(axis=1)).max() <= 1e6
    labels = w.obs[PERT_COL].astype(str).to_numpy()
    p = case["perts"]
    assert dict(pd.Series(labels).value_counts()) == {p[0]: 300, p[1]: 250, p[2]: 300, CONTROL_LABEL: M}
    # the control cells are the target's, raw and unchanged
    got = X[labels == CONTROL_LABEL].toarray()
    assert np.array_equal(got, case["ctrl"].X.toarray())
    assert w.uns["transpert_cells"]["scale"] == "counts"


@pytest.mark.parametrize("i", [0, 1, 2])
def test_pseudobulk_is_the_prediction_to_rounding(case, i):
    w, pert = case["written"], case["perts"][i]
    cells = w.X[(w.obs[PERT_COL].astype(str) == pert).to_numpy()]
    s, pb = _by_hand_pseudobulk(cells)
    f = _predicted_fractions(case, i)
    # each gene's total is round(q * N0): off by <= 0.5 count, the grand total by <= G/2, so the
    # normalised value differs by at most T * (0.5 + f * G / 2) / sum(S) (plus float error)
    bound = T * (0.5 + f * G / 2) / s.sum() + 1e-9
    assert np.all(np.abs(np.expm1(pb) - T * f) <= bound)
    assert np.abs(pb - np.log1p(T * f)).max() < 0.01
    # the public helpers say the same: the target profile and the recomputation from cells
    from transpert.predict import predicted_pseudobulk, pseudobulk_of_counts

    layers = case["pred"].layers
    np.testing.assert_allclose(predicted_pseudobulk(layers["mean"][i], layers["delta"][i], case["ctrl"].X)[0],
                               np.log1p(T * f), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(pseudobulk_of_counts(cells), pb, rtol=1e-6, atol=1e-9)


def _cpm_pvalues(w, pert):
    X = w.X.toarray().astype(np.float64)
    cpm = X / X.sum(axis=1, keepdims=True) * 1e6
    labels = w.obs[PERT_COL].astype(str).to_numpy()
    a, b = cpm[labels == pert], cpm[labels == CONTROL_LABEL]
    p = np.array([mannwhitneyu(a[:, g], b[:, g]).pvalue for g in range(X.shape[1])])
    lfc = np.log2((a.mean(axis=0) + 1e-9) / (b.mean(axis=0) + 1e-9))
    return np.nan_to_num(p, nan=1.0), lfc


@pytest.mark.parametrize("i", [0, 1])
def test_rank_sum_finds_the_predicted_de_genes_in_their_direction(case, i):
    pert = case["perts"][i]
    p, lfc = _cpm_pvalues(case["written"], pert)
    q = false_discovery_control(p)
    up, down = case["de"][pert]
    called = set(np.flatnonzero(q < 0.05))
    assert set(up) | set(down) <= called
    assert np.all(lfc[up] > 0) and np.all(lfc[down] < 0)
    # at most one false call at FDR 5% among the ~490 genes left alone
    assert len(called - set(up) - set(down)) <= 1


def test_small_uncalled_changes_stay_non_significant(case):
    p, _ = _cpm_pvalues(case["written"], case["perts"][2])
    assert (false_discovery_control(p) < 0.05).sum() <= 1


def test_same_seed_same_counts_any_threads_and_default_400_cells(case, tmp_path):
    a = write_prediction(case["pred"], case["ctrl"], case["counts"], case["genes"], tmp_path / "a.h5ad",
                         format="counts", seed=3, threads=1)  # the fixture used every core
    a.file.close()
    assert (ad.read_h5ad(tmp_path / "a.h5ad").X != case["written"].X).nnz == 0
    b = write_prediction(case["pred"], case["ctrl"], None, case["genes"][::-1], tmp_path / "b.h5ad",
                         format="counts")
    b.file.close()
    b = ad.read_h5ad(tmp_path / "b.h5ad")
    assert list(b.var_names) == case["genes"][::-1]
    assert (b.obs[PERT_COL].astype(str) == case["perts"][0]).sum() == 400


def test_huge_prediction_is_capped_at_1e6_counts_per_cell(case, tmp_path):
    ctrl = case["ctrl"]
    delta = np.zeros((1, G))
    delta[0, 0] = 12.0  # an absurd increase: ~e^12 times the control level
    pred = make_prediction(["BIG"], pd.Index(case["genes"]), case["cm"], delta, method="test",
                           deg_probability=(np.abs(delta) > 0).astype(float))
    out = write_prediction(pred, ctrl, pd.DataFrame({PERT_COL: ["BIG"], "n_cells": [20]}), case["genes"],
                           tmp_path / "big.h5ad", format="counts")
    out.file.close()
    X = ad.read_h5ad(tmp_path / "big.h5ad").X
    assert np.asarray(X.sum(axis=1)).max() <= 1e6
    assert np.array_equal(X.data, np.round(X.data)) and X.data.min() >= 0


def test_normalised_controls_are_refused(case, tmp_path):
    ctrl = case["ctrl"].copy()
    ctrl.X = normalize_log1p(ctrl.X)
    with pytest.raises(TranspertInputError, match="raw UMI counts"):
        write_prediction(case["pred"], ctrl, case["counts"], case["genes"], tmp_path / "x.h5ad", format="counts")


def test_unknown_format_is_refused(case, tmp_path):
    with pytest.raises(TranspertInputError, match="format"):
        write_prediction(case["pred"], case["ctrl"], case["counts"], case["genes"], tmp_path / "x.h5ad",
                         format="tsv")


def test_cli_predict_format_counts(tmp_path, capsys):
    """``transpert predict --format counts``: a counts table without ``n_cells``
    (400 cells each), the target's raw control cells written unchanged, genes in its order."""
    from transpert.cli import main
    from transpert.data.simulate import simulate_atlas

    atlas = simulate_atlas(seed=3, n_reference_lines=2, similarity=(0.8, 0.3), n_genes=200,
                           n_perturbations=12, cells_per_perturbation=30, n_control_cells=150)
    refs = []
    for name in atlas.reference_lines:
        atlas.lines[name].write_h5ad(tmp_path / f"{name}.h5ad")
        refs.append(str(tmp_path / f"{name}.h5ad"))
    target = atlas.lines[atlas.target_line]
    labels = target.obs[PERT_COL].astype(str).to_numpy()
    held = sorted(set(labels) - {CONTROL_LABEL})[:3]
    target[~np.isin(labels, held)].copy().write_h5ad(tmp_path / "train.h5ad")
    pd.DataFrame({PERT_COL: held}).to_csv(tmp_path / "counts.csv", index=False)
    rc = main(["predict", "--method", "reference-mean", "--reference", *refs, "--target-train", str(tmp_path / "train.h5ad"),
               "--counts", str(tmp_path / "counts.csv"), "--format", "counts", "-o", str(tmp_path / "p.h5ad")])
    assert rc == 0, capsys.readouterr().err
    assert "integer raw counts" in capsys.readouterr().out
    pred = ad.read_h5ad(tmp_path / "p.h5ad")
    assert list(pred.var_names) == list(target.var_names)
    assert np.array_equal(pred.X.data, np.round(pred.X.data)) and pred.X.data.min() >= 0
    n = pred.obs[PERT_COL].astype(str).value_counts()
    assert [n[p] for p in held] == [400] * 3 and n[CONTROL_LABEL] == (labels == CONTROL_LABEL).sum()
    written = pred.X[(pred.obs[PERT_COL].astype(str) == CONTROL_LABEL).to_numpy()].toarray()
    assert np.array_equal(written, target.X[labels == CONTROL_LABEL].toarray())


CE2 = os.environ.get("TRANSPERT_CELL_EVAL2_PYTHON")


@pytest.mark.skipif(not (CE2 and os.path.exists(CE2)),
                    reason="set TRANSPERT_CELL_EVAL2_PYTHON to a python with cell-eval2 0.20.0")
def test_cell_eval2_vcc2026_accepts_and_scores_the_file(case, tmp_path):
    # the "real" side: the controls plus, for each perturbation, cells written from a different seed
    other = write_prediction(case["pred"], case["ctrl"], case["counts"], case["genes"], tmp_path / "real.h5ad",
                             format="counts", seed=99)
    other.file.close()
    out = tmp_path / "ce2"
    run = subprocess.run([CE2, "-c", "import sys; from cell_eval2.cli import main; sys.exit(main())", "run",
                          "-ap", str(case["out"]), "-ar", str(tmp_path / "real.h5ad"), "--preset", "vcc2026",
                          "--pert-col", PERT_COL, "--no-cache-strict", "-o", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    results = list(out.glob("*results*.csv"))
    assert results, list(out.iterdir())
    # two writes of one prediction (different seeds) must agree on what cell-eval2 reads: the DE
    # calls (Jaccard of significant genes), their directions and the perturbation ranking
    res = pd.read_csv(out / "results.csv")
    value = res.pivot_table(index="perturbation", columns="metric", values="value")
    kd = case["perts"][:2]
    assert np.all(value.loc[kd, "de_wilcoxon_sig_jaccard"] >= 0.9)
    assert np.all(value.loc[kd, "de_wilcoxon_direction_reach_raw"] >= 0.9)
    assert np.all(value["pds_cosine"] == 1.0)
