"""Streaming evaluation: files are read in row chunks, never whole, one at a time, checked before
they are read; the streamed pseudo-bulks and DE equal the in-memory computation exactly."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from _evaluate_synth import CONTROL, make_pair
from transpert._errors import TranspertInputError
from transpert.data.read import CellSource
from transpert.data.storage import H5Matrix
from transpert.evaluate import GENERALIST, evaluate, prepare
from helpers_evaluate import group_means, normalize_log1p

KW = dict(pert_col="target_gene", control=CONTROL, threads=1)


@pytest.fixture
def paths(tmp_path):
    real, pred = make_pair(11)
    real.write_h5ad(tmp_path / "real.h5ad")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    return real, pred, tmp_path / "real.h5ad", tmp_path / "pred.h5ad"


@pytest.mark.parametrize("log1p", [False, True])
def test_streamed_means_equal_in_memory(tmp_path, log1p):
    """Pseudo-bulks from a path read 7 rows at a time equal the float64 group means of the
    whole normalised matrix (pandas-checked in test_evaluate_inputs), bit for bit."""
    real, _ = make_pair(12, log1p=log1p)
    real.write_h5ad(tmp_path / "r.h5ad")
    X = real.X if log1p else normalize_log1p(real.X)
    labels = real.obs["target_gene"].to_numpy(str)
    groups = np.array(sorted(set(labels)))
    expected = group_means(X, labels, groups)
    streamed = prepare(tmp_path / "r.h5ad", "real", chunk_rows=7, **KW)
    in_memory = prepare(real, "real", **KW)
    assert list(streamed.groups) == list(groups)
    np.testing.assert_array_equal(streamed.means, expected)
    np.testing.assert_array_equal(in_memory.means, expected)
    np.testing.assert_array_equal(streamed.n_cells, pd.Series(labels).value_counts()[groups].to_numpy())
    for layer in ("log2fc", "fdr", "pvalue", "statistic"):
        np.testing.assert_array_equal(streamed.summary.layers[layer], in_memory.summary.layers[layer],
                                      err_msg=layer)
    assert streamed.cells.X is None and streamed.cells.scale == ("log1p" if log1p else "counts")


def test_evaluate_streams_and_never_reads_whole(paths, monkeypatch):
    """No read_h5ad (whole-file read); every matrix row comes through the backed reader, each
    file read by the validation pass and the engine's two passes, one file after the other."""
    real, pred, real_path, pred_path = paths
    expected = evaluate(real, pred, profile="full", **KW).results

    def no_whole_read(*a, **k):
        raise AssertionError("read_h5ad called: a file was read whole")

    reads = []
    original = H5Matrix.read_rows

    def spy(self, start, stop):
        reads.append(self.path.name)
        return original(self, start, stop)

    monkeypatch.setattr(ad, "read_h5ad", no_whole_read)
    monkeypatch.setattr(H5Matrix, "read_rows", spy)
    got = evaluate(real_path, pred_path, profile="full", **KW).results
    pd.testing.assert_frame_equal(got, expected)
    # real: scan, pass A (log1p + raw), pass B (log1p + raw); pred likewise: all real reads first
    assert reads and set(reads) == {"real.h5ad", "pred.h5ad"}
    first_pred = reads.index("pred.h5ad")
    assert all(r == "pred.h5ad" for r in reads[first_pred:])


def test_mismatch_fails_before_any_read(paths, monkeypatch):
    real, pred, real_path, _ = paths
    scans = []
    monkeypatch.setattr(CellSource, "scan", lambda self, *a, **k: scans.append(1))
    bad = pred[pred.obs["target_gene"] != "G2"].copy()
    with pytest.raises(TranspertInputError, match=r"missing from the prediction: \['G2'\]"):
        evaluate(real_path, bad, **KW)
    with pytest.raises(TranspertInputError, match="must contain control cells"):
        prepare(pred[pred.obs["target_gene"] != CONTROL].copy(), "pred", against=_Fake(real), **KW)
    assert scans == []


class _Fake:
    """A prepared real file's metadata only (labels and genes), as the pair check reads it."""

    def __init__(self, adata):
        from transpert.evaluate._inputs import Cells

        self.cells = Cells("real", None, adata.obs["target_gene"].to_numpy(str),
                           pd.Index(adata.var_names), "counts")


def test_nan_and_inf_rejected(paths):
    real, pred, _, _ = paths
    bad = pred.copy()
    bad.X = sp.csr_matrix(np.log1p(bad.X.toarray()))
    bad.X.data[3] = np.nan
    with pytest.raises(TranspertInputError, match="pred AnnData: expression matrix has 1 NaN and 0 infinite"):
        evaluate(real, bad, **KW)
    bad.X.data[3] = np.inf
    with pytest.raises(TranspertInputError, match="0 NaN and 1 infinite"):
        evaluate(real, bad, **KW)


def test_empty_label_rejected(paths):
    real, pred, _, _ = paths
    pred.obs["target_gene"] = pred.obs["target_gene"].astype(str)
    pred.obs.iloc[0, 0] = ""
    with pytest.raises(TranspertInputError, match="1 cells have an empty label in 'target_gene'"):
        evaluate(real, pred, **KW)


def test_rank_summarises_real_once(paths, tmp_path, monkeypatch):
    """``transpert rank`` summarises the real file once for all predictions, and each
    prediction's metrics equal a separate ``evaluate`` of it."""
    import transpert.summarize as summ
    from transpert.cli import main

    real, pred, real_path, pred_path = paths
    other = pred.copy()
    other.X = pred.X.copy()
    other.X.data = np.round(other.X.data * 1.5)
    other.write_h5ad(tmp_path / "other.h5ad")
    calls = []
    original = summ.summarize

    def spy(cells, **k):
        calls.append(cells)
        return original(cells, **k)

    monkeypatch.setattr(summ, "summarize", spy)
    assert main(["rank", "--real", str(real_path), str(pred_path), str(tmp_path / "other.h5ad"),
                 "-o", str(tmp_path / "rk"), "--threads", "1", "--n-boot", "0",
                 "--control", CONTROL]) == 0
    assert len(calls) == 3  # real once, each prediction once
    monkeypatch.setattr(summ, "summarize", original)
    for name, adata in (("pred", pred), ("other", other)):
        want = evaluate(real, adata, metrics=GENERALIST, **KW)
        got = pd.read_csv(tmp_path / "rk" / f"{name}_results.csv")
        for c in want.results.columns[1:]:
            np.testing.assert_allclose(got[c].to_numpy(float), want.results[c].to_numpy(float),
                                       rtol=1e-12, atol=0, err_msg=f"{name} {c}")


def test_baseline_streamed_equals_scanpy_reference(tmp_path, monkeypatch):
    """build_baseline streams the training file: rows = mean of pandas group means of the
    scanpy-normalised file, then the control cells exactly as scanpy normalises them."""
    sc = pytest.importorskip("scanpy")
    from transpert.evaluate import build_baseline

    train, _ = make_pair(13)
    train.write_h5ad(tmp_path / "train.h5ad")
    counts = pd.DataFrame({"target_gene": ["G1", "G3"], "n_cells": [2, 3]})
    norm = train.copy()
    sc.pp.normalize_total(norm)
    sc.pp.log1p(norm)
    dense = norm.X.toarray()
    labels = train.obs["target_gene"].to_numpy(str)
    b = pd.DataFrame(dense.astype(np.float64)).groupby(labels).mean().to_numpy().astype(np.float32)
    b = b.astype(np.float64).mean(axis=0).astype(np.float32)
    ctrl = labels == CONTROL

    reads = []
    original = H5Matrix.read_rows

    def spy(self, start, stop):
        reads.append(stop - start)
        return original(self, start, stop)

    import transpert.data.storage as rd

    monkeypatch.setattr(rd, "TARGET_CHUNK_ENTRIES", 500)  # several chunks on this small file
    monkeypatch.setattr(H5Matrix, "read_rows", spy)
    written = build_baseline(tmp_path / "train.h5ad", counts, tmp_path / "base.h5ad").to_memory()
    monkeypatch.undo()
    assert reads and max(reads) < train.n_obs
    in_memory = build_baseline(train, counts)
    for base in (written, in_memory):
        X = np.asarray(base.X)
        np.testing.assert_array_equal(X[:5], np.broadcast_to(b, (5, train.n_vars)))
        np.testing.assert_array_equal(X[5:], dense[ctrl])
        assert list(base.obs_names[5:]) == list(train.obs_names[ctrl])
        assert list(base.obs["target_gene"][:5]) == ["G1", "G1", "G3", "G3", "G3"]


def test_csc_input_warns_and_agrees(paths, tmp_path, caplog):
    real, pred, real_path, _ = paths
    csc = pred.copy()
    csc.X = sp.csc_matrix(pred.X)
    csc.write_h5ad(tmp_path / "pred_csc.h5ad")
    with caplog.at_level("WARNING", logger="transpert.evaluate"):
        got = evaluate(real_path, tmp_path / "pred_csc.h5ad", **KW).results
    assert "stored as CSC" in caplog.text
    pd.testing.assert_frame_equal(got, evaluate(real, pred, **KW).results)


def test_float64_counts_are_ranked_in_float64(tmp_path):
    """A float64 counts file is normalised and ranked in float64, as scanpy keeps it and the
    reference scorers rank it: deep cells whose normalised values differ only below float32
    precision must not become ties. Reference: scipy's Mann-Whitney U on scanpy-style float64
    values, BH per perturbation (the cell-eval-0.8.2 suite)."""
    import anndata as ad
    import scipy.sparse as sp
    from scipy.stats import false_discovery_control, mannwhitneyu

    rng = np.random.default_rng(7)
    n_genes, cells, ctrl = 100, 60, 300
    base = rng.lognormal(2.0, 2.0, n_genes)
    base *= 50000 / base.sum()  # ~50,000 UMI per cell
    blocks = [rng.poisson(base, (ctrl, n_genes))]
    labels = [CONTROL] * ctrl
    for i in range(3):
        effect = np.exp(rng.normal(0, 0.5, n_genes) * (rng.random(n_genes) < 0.3))
        blocks.append(rng.poisson(base * effect, (cells, n_genes)))
        labels += [f"G{i}"] * cells
    X = np.vstack(blocks).astype(np.float64)
    obs = pd.DataFrame({"target_gene": labels}, index=[f"c{i}" for i in range(len(labels))])
    adata = ad.AnnData(X=sp.csr_matrix(X), obs=obs,
                       var=pd.DataFrame(index=[f"G{i}" for i in range(n_genes)]))
    adata.write_h5ad(tmp_path / "deep.h5ad")

    lib = X.sum(axis=1, keepdims=True)
    L = np.log1p(X / (lib / np.median(lib)))  # float64, as scanpy on a float64 file
    # the fixture has values that are distinct in float64 but tie in float32
    assert any(np.unique(L[:, j]).size > np.unique(L[:, j].astype(np.float32)).size
               for j in range(n_genes))
    lab = np.array(labels)
    pert = ["G0", "G1", "G2"]
    p = np.array([[mannwhitneyu(L[lab == g, j], L[lab == CONTROL, j]).pvalue
                   for j in range(n_genes)] for g in pert])
    want = np.vstack([false_discovery_control(row) for row in p])
    got = evaluate(tmp_path / "deep.h5ad", tmp_path / "deep.h5ad", profile="vcc", threads=1,
                   suite="cell-eval-0.8.2").de.real_fdr
    # DEPair holds float32 FDRs (cell-eval casts its DE tables to float32)
    np.testing.assert_allclose(got, want.astype(np.float32), rtol=1.2e-7)  # one float32 step
