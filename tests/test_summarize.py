"""summarize / de_table against scipy, statsmodels, pandas, the METRICS.md definitions and pdex."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scipy.stats

from transpert._errors import TranspertInputError
from transpert.summarize import (
    DE_COLUMNS, bh_fdr, de_table, log2fc, read_summary, summarize, write_summary,
)

CTRL = "non-targeting"


def _log1p_cells(seed=0, n=900, g=25, fmt="csr"):
    rng = np.random.default_rng(seed)
    counts = rng.negative_binomial(2, 0.7, (n, g)).astype(np.float32)
    labels = rng.choice([CTRL, "AAA", "BBB", "CCC"], n, p=[0.4, 0.3, 0.2, 0.1])
    labels[5] = "SOLO"  # a perturbation with a single cell
    counts[labels == "BBB", 3] *= 3  # an effect
    counts[:, 4] = 0  # an all-zero gene
    counts[labels != CTRL, 5] = 0  # a gene expressed only in controls
    lib = counts.sum(1, keepdims=True)
    X = np.log1p(counts / np.maximum(lib, 1) * np.median(lib)).astype(np.float32)
    obs = pd.DataFrame({"target_gene": labels}, index=[f"c{i}" for i in range(n)])
    var = pd.DataFrame(index=[f"G{j}" for j in range(g)])
    M = {"csr": sp.csr_matrix, "csc": sp.csc_matrix, "dense": np.asarray}[fmt](X)
    return ad.AnnData(M, obs=obs, var=var), X, labels, counts


@pytest.mark.parametrize("fmt", ["csr", "csc", "dense"])
def test_summary_matches_scipy_and_pandas(fmt):
    adata, X, labels, _ = _log1p_cells(fmt=fmt)
    before = adata.X.copy()
    s = summarize(adata, threads=2, show_progress=False)
    after = adata.X
    if sp.issparse(before):
        assert (before != after).nnz == 0
    else:
        np.testing.assert_array_equal(before, after)
    assert list(s.obs_names) == ["AAA", "BBB", "CCC", "SOLO"]
    X64 = X.astype(np.float64)
    ctrl = labels == CTRL
    for t in s.obs_names:
        for j in range(X.shape[1]):
            r = scipy.stats.mannwhitneyu(X64[labels == t, j], X64[ctrl, j], method="asymptotic",
                                         use_continuity=True)
            assert s[t].layers["statistic"][0, j] == r.statistic
            np.testing.assert_allclose(s[t].layers["pvalue"][0, j], r.pvalue, rtol=1e-12, atol=0)
    means = pd.DataFrame(X64).groupby(labels).mean()
    np.testing.assert_allclose(s.layers["mean"], means.loc[s.obs_names].to_numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(s.var["control_mean"], means.loc[CTRL].to_numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(s.layers["delta"], s.layers["mean"] - s.var["control_mean"].to_numpy())
    frac = pd.DataFrame(X64 != 0).groupby(labels).mean()
    np.testing.assert_allclose(s.layers["frac_expressing"], frac.loc[s.obs_names].to_numpy())
    np.testing.assert_array_equal(s.obs["n_cells"], pd.Series(labels).value_counts()[s.obs_names])
    assert np.all(s.layers["pvalue"][:, 4] == 1.0)  # all-zero gene


def test_fdr_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    p = rng.random((5, 200)) ** 3
    p[0, :10] = p[0, 10]  # ties
    ours = bh_fdr(p)
    for i in range(5):
        np.testing.assert_allclose(ours[i], multipletests(p[i], method="fdr_bh")[1], rtol=1e-14)
    np.testing.assert_allclose(bh_fdr(p, "table").ravel(),
                               multipletests(p.ravel(), method="fdr_bh")[1], rtol=1e-14)


def test_log2fc_definition_with_infinities():
    mean = np.log1p(np.array([[0.0, 0.0, 3.0, 1.0, 50.0]]))
    ctrl = np.log1p(np.array([0.0, 2.0, 0.0, 4.0, 1.0]))
    exact = log2fc(mean, ctrl)[0]
    np.testing.assert_array_equal(exact[:3], [0.0, -np.inf, np.inf])
    np.testing.assert_allclose(exact[3:], np.log2(np.expm1(mean[0, 3:]) / np.expm1(ctrl[3:])), rtol=1e-15)
    clipped = log2fc(mean, ctrl, "clipped")[0]
    # pdex 0.1.27 replaces only the undefined ratios; the finite ratio 50 is kept, not clipped
    np.testing.assert_allclose(clipped, np.log2([1.0, 1 / 20, 20.0, np.expm1(mean[0, 3]) / np.expm1(ctrl[3]), 50.0]),
                               rtol=1e-15)


def test_de_table_agrees_with_pdex():
    from pdex import pdex

    adata, *_ = _log1p_cells(seed=3, n=1500, g=30)
    ref = pdex(adata, groupby="target_gene", mode="ref", threads=1, is_log1p=True, epsilon=0.0,
               reference=CTRL, as_pandas=True)
    ours = de_table(summarize(adata, threads=1, show_progress=False))
    assert tuple(ref.columns) == DE_COLUMNS == tuple(ours.columns)
    assert (ref["target"].to_numpy() == ours["target"].to_numpy()).all()
    assert (ref["feature"].to_numpy() == ours["feature"].to_numpy()).all()
    for col in ("target_mean", "ref_mean", "log2_fold_change", "percent_change", "statistic",
                "target_membership", "ref_membership"):
        np.testing.assert_array_equal(ours[col].to_numpy(), ref[col].to_numpy(), err_msg=col)
        assert ours[col].dtype == ref[col].dtype, col
    # pdex's numba erfc differs from scipy's by ulps; both are scipy-exact to ~1e-15
    np.testing.assert_allclose(ours["p_value"], ref["p_value"], rtol=1e-12, atol=0)
    np.testing.assert_allclose(ours["fdr"], ref["fdr"], rtol=1e-12, atol=0)


def test_streamed_file_equals_in_memory_and_threads(tmp_path, monkeypatch):
    import transpert.summarize._engine as engine

    adata, *_ = _log1p_cells(seed=5, n=700, g=20)
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    mem1 = summarize(adata, threads=1, show_progress=False)
    mem2 = summarize(adata, threads=2, show_progress=False)
    streamed = summarize(path, threads=2, chunk_rows=97, show_progress=False)
    monkeypatch.setattr(engine, "STORE_FRACTION", 10**12)  # force the scratch-file store
    on_disk = summarize(str(path), threads=1, chunk_rows=250, show_progress=False)
    assert on_disk.uns["transpert"]["engine"]["store"] == "scratch file"
    assert streamed.uns["transpert"]["checksum"].startswith("sha256:")
    for other in (mem2, streamed, on_disk):
        for layer in mem1.layers:
            np.testing.assert_array_equal(mem1.layers[layer], other.layers[layer], err_msg=layer)
        pd.testing.assert_frame_equal(mem1.var, other.var)


def test_counts_input_is_normalised(tmp_path):
    from transpert.data import normalize_log1p

    adata, _, labels, counts = _log1p_cells(seed=6, n=500, g=15)
    raw = ad.AnnData(sp.csr_matrix(counts), obs=adata.obs, var=adata.var)
    s = summarize(raw, threads=1, show_progress=False)
    s_log = summarize(ad.AnnData(normalize_log1p(sp.csr_matrix(counts)), obs=adata.obs, var=adata.var),
                      threads=1, show_progress=False)
    np.testing.assert_array_equal(s.layers["mean"], s_log.layers["mean"])
    np.testing.assert_array_equal(s.layers["pvalue"], s_log.layers["pvalue"])
    declared = summarize(raw, threads=1, show_progress=False, scale="counts")
    np.testing.assert_array_equal(s.layers["mean"], declared.layers["mean"])
    assert s.uns["transpert"]["normalization"]["input_scale"] == "counts"
    sums = pd.DataFrame(counts.astype(np.float64)).groupby(labels).sum()
    np.testing.assert_allclose(s.layers["counts_sum"], sums.loc[s.obs_names].to_numpy(), rtol=1e-12)
    path = tmp_path / "raw.h5ad"
    raw.write_h5ad(path)
    streamed = summarize(path, threads=2, chunk_rows=128, show_progress=False)
    for layer in s.layers:
        np.testing.assert_array_equal(s.layers[layer], streamed.layers[layer], err_msg=layer)


def _count_row_reads(monkeypatch, n_rows: int) -> np.ndarray:
    """How many times each row of an h5ad file is read from now on (filled in as it happens)."""
    from transpert.data.storage import H5Matrix

    reads = np.zeros(n_rows, dtype=int)
    original = H5Matrix.read_rows

    def spy(self, start, stop):
        reads[start:stop] += 1
        return original(self, start, stop)

    monkeypatch.setattr(H5Matrix, "read_rows", spy)
    return reads


def test_streamed_counts_read_each_row_three_times(tmp_path, monkeypatch):
    """A raw-count file is read once to learn the scale and library sizes, once for the
    pseudo-bulk (log1p values and count sums from the same read) and once to gather the DE
    blocks; the result equals the in-memory one. The first chunk is read once more: pass A
    first tries the values as log1p, and gives up at the first chunk holding only integers."""

    adata, _, _, counts = _log1p_cells(seed=7, n=400, g=12)
    raw = ad.AnnData(sp.csr_matrix(counts), obs=adata.obs, var=adata.var)
    path = tmp_path / "raw.h5ad"
    raw.write_h5ad(path)
    reads = _count_row_reads(monkeypatch, raw.n_obs)
    streamed = summarize(path, threads=1, chunk_rows=64, show_progress=False)
    assert (reads[64:] == 3).all() and (reads[:64] == 4).all(), np.unique(reads)
    in_memory = summarize(raw, threads=1, show_progress=False)
    for layer in in_memory.layers:
        np.testing.assert_array_equal(in_memory.layers[layer], streamed.layers[layer], err_msg=layer)


def test_streamed_log1p_read_each_row_twice(tmp_path, monkeypatch):
    """A log1p file's scale is checked in the pseudo-bulk pass (no scan): two reads; the result
    and the normalisation record equal the in-memory ones; a file with a value out of the
    log1p range still gets the scan's error."""

    adata, *_ = _log1p_cells(seed=9, n=400, g=12)
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    path = tmp_path / "log1p.h5ad"
    adata.write_h5ad(path)
    reads = _count_row_reads(monkeypatch, adata.n_obs)
    streamed = summarize(path, threads=1, chunk_rows=64, show_progress=False)
    assert (reads == 2).all(), np.unique(reads)
    in_memory = summarize(adata, threads=1, show_progress=False)
    assert streamed.uns["transpert"]["normalization"] == in_memory.uns["transpert"]["normalization"]
    for layer in in_memory.layers:
        np.testing.assert_array_equal(in_memory.layers[layer], streamed.layers[layer], err_msg=layer)
    bad = adata.copy()
    bad.X = bad.X.copy()
    bad.X.data[-1] = -1.5
    bad.write_h5ad(tmp_path / "bad.h5ad")
    with pytest.raises(TranspertInputError, match="negative"):
        summarize(tmp_path / "bad.h5ad", threads=1, chunk_rows=64, show_progress=False)


def test_joblib_and_dask_backends_equal_threads():
    distributed = pytest.importorskip("distributed")
    adata, *_ = _log1p_cells(seed=7, n=600, g=18)
    base = summarize(adata, threads=2, show_progress=False, memory_budget="64MB")
    jl = summarize(adata, threads=2, backend="joblib", show_progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        dk = summarize(adata, backend="dask", show_progress=False)
    for other in (jl, dk):
        for layer in ("statistic", "pvalue", "fdr", "mean"):
            np.testing.assert_array_equal(base.layers[layer], other.layers[layer])


def test_reference_options_and_table_fdr():
    adata, X, labels, _ = _log1p_cells(seed=8, n=400, g=6)
    s = summarize(adata, reference="AAA", fdr="table", threads=1, show_progress=False)
    assert "AAA" not in s.obs_names and CTRL not in s.obs_names
    X64 = X.astype(np.float64)
    r = scipy.stats.mannwhitneyu(X64[labels == "BBB", 2], X64[labels == "AAA", 2], method="asymptotic")
    assert s["BBB"].layers["statistic"][0, 2] == r.statistic
    np.testing.assert_allclose(s.layers["fdr"], bh_fdr(s.layers["pvalue"], "table"))
    rest = summarize(adata, reference="rest", threads=1, show_progress=False)
    r = scipy.stats.mannwhitneyu(X64[labels == "CCC", 1], X64[labels != "CCC", 1], method="asymptotic")
    assert rest["CCC"].layers["statistic"][0, 1] == r.statistic
    np.testing.assert_allclose(rest["CCC"].layers["pvalue"][0, 1], r.pvalue, rtol=1e-12)


def test_write_read_roundtrip(tmp_path):
    adata, *_ = _log1p_cells(seed=9, n=300, g=8)
    s = summarize(adata, threads=1, show_progress=False)
    path = write_summary(s, tmp_path / "sub" / "summary.h5ad")
    back = read_summary(path)
    for layer in s.layers:
        np.testing.assert_array_equal(s.layers[layer], back.layers[layer])
    assert back.uns["transpert"]["control"] == CTRL
    pd.testing.assert_frame_equal(s.obs, back.obs)


def test_bad_input_errors():
    adata, *_ = _log1p_cells(seed=10, n=100, g=8)
    with pytest.raises(TranspertInputError, match="no column 'guide'"):
        summarize(adata, pert_col="guide", show_progress=False)
    with pytest.raises(TranspertInputError, match="control label 'NTC'"):
        summarize(adata, control="NTC", show_progress=False)
    with pytest.raises(TranspertInputError, match="fdr must be one of"):
        summarize(adata, fdr="bonferroni", show_progress=False)
    with pytest.raises(TranspertInputError, match="memory_budget"):
        summarize(adata, memory_budget="lots", show_progress=False)


def test_cli_summarize_and_de(tmp_path):
    from transpert.cli import main

    adata, X, labels, _ = _log1p_cells(seed=11, n=300, g=7)
    path = tmp_path / "cells.h5ad"
    adata.write_h5ad(path)
    out = tmp_path / "summary.h5ad"
    assert main(["summarize", str(path), "-o", str(out), "--threads", "1", "--no-progress"]) == 0
    direct = summarize(adata, threads=1, show_progress=False)
    back = read_summary(out)
    np.testing.assert_array_equal(back.layers["pvalue"], direct.layers["pvalue"])
    csv = tmp_path / "de.csv"
    assert main(["de", str(path), "-o", str(csv), "--no-progress"]) == 0
    table = pd.read_csv(csv)
    assert tuple(table.columns) == DE_COLUMNS
    expected = de_table(direct)
    np.testing.assert_allclose(table["p_value"], expected["p_value"], rtol=1e-14)  # CSV text round trip
    assert main(["summarize", str(path), "-o", str(out), "--control", "NTC", "--no-progress"]) == 2


def test_file_with_its_own_perturbation_column_and_control_label(test_data_dir):
    # A file whose target column and control label are not the canonical ones is summarised
    # through the mapping, exactly as the same cells read into canonical form first.
    from transpert.data import read_cells

    path = test_data_dir / "datlinger2021_jurkat_stim_unstim_subset.h5ad"
    from_file = summarize(path, pert_col="target", control="control", show_progress=False,
                          checksum=False)
    canonical = read_cells(path, schema={"pert_col": "target", "control_label": "control"})
    in_memory = summarize(canonical, show_progress=False)
    assert list(from_file.obs_names) == list(in_memory.obs_names)
    assert from_file.n_obs == 20
    for layer in ("mean", "statistic", "pvalue", "fdr"):
        np.testing.assert_array_equal(from_file.layers[layer], in_memory.layers[layer])
    recorded = from_file.uns["transpert"]
    assert recorded["pert_col"] == "target" and recorded["control"] == "control"


def test_group_codes_of_a_categorical_column_equal_cell_by_cell_codes():
    # the categorical fast path (categories mapped, not cells) must give the same labels and
    # codes as converting every cell's label: unused categories, empty labels, NaN, order
    from transpert.summarize._groups import _codes_of, _codes_of_values

    rng = np.random.default_rng(0)
    pool = np.array(["non-targeting", "B", "a", "", "Z9", "b"], dtype=object)
    cells = pool[rng.integers(0, len(pool), 500)]
    cells[rng.random(500) < 0.1] = None
    column = pd.Series(pd.Categorical(cells, categories=["unused", "b", "", "non-targeting",
                                                          "Z9", "a", "B"]))
    labels, codes = _codes_of(column)
    ref_labels, ref_codes = _codes_of_values(column)
    np.testing.assert_array_equal(labels, ref_labels)
    assert labels.dtype == ref_labels.dtype
    np.testing.assert_array_equal(codes, ref_codes)
    assert "unused" not in labels and "" not in labels
    # integer categories print as their numbers, as the cell-by-cell conversion does
    ints = pd.Series(pd.Categorical(rng.integers(0, 12, 300)))
    for a, b in zip(_codes_of(ints), _codes_of_values(ints)):
        np.testing.assert_array_equal(a, b)


def test_streamed_log1p_with_unsorted_rows(tmp_path):
    """Chunks that are not canonical CSR (rows' indices reversed) are made canonical in both
    passes of a log1p file: the same summary as the sorted matrix in memory."""
    adata, *_ = _log1p_cells(seed=11, n=300, g=10)
    X = sp.csr_matrix(adata.X, dtype=np.float32)
    rev = X.copy()
    for i in range(rev.shape[0]):
        lo, hi = rev.indptr[i], rev.indptr[i + 1]
        rev.indices[lo:hi] = rev.indices[lo:hi][::-1].copy()
        rev.data[lo:hi] = rev.data[lo:hi][::-1].copy()
    rev.has_sorted_indices = False
    messy = ad.AnnData(rev, obs=adata.obs, var=adata.var)
    messy.write_h5ad(tmp_path / "messy.h5ad")
    streamed = summarize(tmp_path / "messy.h5ad", threads=1, chunk_rows=64, show_progress=False)
    assert streamed.uns["transpert"]["engine"]["canonical_chunks"] in (False, 0, "False")
    reference = summarize(ad.AnnData(X, obs=adata.obs, var=adata.var), threads=1, show_progress=False)
    for layer in reference.layers:
        np.testing.assert_array_equal(reference.layers[layer], streamed.layers[layer], err_msg=layer)
