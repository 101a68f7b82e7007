"""Input handling: every error cell-eval raises (with a message saying what to fix), scale
detection and normalisation against scanpy, pseudo-bulks against pandas."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from _evaluate_synth import CONTROL, make_pair
from transpert._errors import TranspertInputError
from transpert.evaluate import evaluate
from helpers_evaluate import detect_scale, group_means, normalize_log1p

sc = pytest.importorskip("scanpy")


@pytest.fixture
def pair():
    return make_pair(0, n_genes=20, cells=10, ctrl_cells=12)


def test_gene_order_mismatch(pair):
    real, pred = pair
    pred = pred[:, list(reversed(pred.var_names))].copy()
    with pytest.raises(TranspertInputError, match="same genes in a different order: reorder"):
        evaluate(real, pred, threads=1)


def test_gene_set_mismatch(pair):
    real, pred = pair
    pred.var_names = [f"X{i}" for i in range(pred.n_vars)]
    with pytest.raises(TranspertInputError, match="gene sets differ"):
        evaluate(real, pred, threads=1)
    with pytest.raises(TranspertInputError, match="has 19 genes but"):
        evaluate(real, pair[1][:, :19].copy(), threads=1)


def test_missing_controls_in_prediction(pair):
    real, pred = pair
    pred = pred[pred.obs["target_gene"] != CONTROL].copy()
    with pytest.raises(TranspertInputError, match="must contain control cells"):
        evaluate(real, pred, threads=1)


def test_missing_controls_in_real(pair):
    real, pred = pair
    with pytest.raises(TranspertInputError, match="control label 'ctrl' not found"):
        evaluate(real, pred, control="ctrl", threads=1)


def test_label_mismatch(pair):
    real, pred = pair
    pred = pred[pred.obs["target_gene"] != "G1"].copy()
    with pytest.raises(TranspertInputError, match=r"missing from the prediction: \['G1'\]"):
        evaluate(real, pred, threads=1)


def test_missing_column(pair):
    real, pred = pair
    with pytest.raises(TranspertInputError, match="perturbation column 'gene' not in obs"):
        evaluate(real, pred, pert_col="gene", threads=1)


def test_out_of_range_and_negative_values(pair):
    real, pred = pair
    bad = pred.copy()
    bad.X = sp.csr_matrix(np.log1p(bad.X.toarray()))
    bad.X.data[0] = 20.5
    with pytest.raises(TranspertInputError, match=r"maximum is 20.5 >= 15.*\[0, 15\)"):
        evaluate(real, bad, threads=1)
    neg = pred.copy()
    neg.X.data[0] = -1.0
    with pytest.raises(TranspertInputError, match="negative value"):
        evaluate(real, neg, threads=1)


def test_missing_file(tmp_path, pair):
    with pytest.raises(TranspertInputError, match="no such file \\(the real file\\)"):
        evaluate(tmp_path / "nope.h5ad", pair[1])


def test_bad_profile(pair):
    with pytest.raises(TranspertInputError, match="profile must be one of"):
        evaluate(*pair, profile="everything")


def test_inputs_not_modified(pair):
    real, pred = pair
    before = real.X.copy()
    evaluate(real, pred, threads=1)
    assert (real.X != before).nnz == 0


def test_detect_scale():
    counts = sp.csr_matrix(np.array([[0, 3, 1], [2, 0, 0]], dtype=np.float32))
    assert detect_scale(counts, "x") == "counts"
    assert detect_scale(np.log1p(counts.toarray()), "x") == "log1p"


@pytest.mark.parametrize("fmt", ["csr", "csc", "dense", "int"])
def test_normalize_matches_scanpy(fmt):
    rng = np.random.default_rng(1)
    X = rng.poisson(2.0, size=(40, 30)).astype(np.float32)
    X[3] = 0  # a cell with no counts
    a = ad.AnnData(X=X.copy())
    if fmt == "csr":
        src = sp.csr_matrix(X)
    elif fmt == "csc":
        src = sp.csc_matrix(X)
    elif fmt == "int":
        src = sp.csr_matrix(X.astype(np.int64))
    else:
        src = X.copy()
    a.X = src.copy()
    sc.pp.normalize_total(a)
    sc.pp.log1p(a)
    expected = a.X.toarray() if sp.issparse(a.X) else a.X
    got = normalize_log1p(src)
    got = got.toarray() if sp.issparse(got) else got
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    if fmt == "csr":
        inplace = normalize_log1p(src.copy(), inplace=True)
        np.testing.assert_array_equal(inplace.toarray(), expected)


def test_group_means_match_pandas():
    rng = np.random.default_rng(2)
    X = rng.random((50, 7)).astype(np.float32)
    X[X < 0.5] = 0
    labels = rng.choice(["b", "a", "c"], size=50)
    expected = pd.DataFrame(X.astype(np.float64)).groupby(labels).mean().loc[["a", "b", "c"]].to_numpy()
    for M in (sp.csr_matrix(X), X):
        got = group_means(M, labels, np.array(["a", "b", "c"]))
        np.testing.assert_array_equal(got, expected.astype(np.float32))
    # explicitly stored zeros do not change the means
    M = sp.csr_matrix(X)
    M.data[::3] = 0
    dense = M.toarray()
    np.testing.assert_array_equal(
        group_means(M, labels, np.array(["a", "b", "c"])),
        pd.DataFrame(dense.astype(np.float64)).groupby(labels).mean().to_numpy().astype(np.float32))
