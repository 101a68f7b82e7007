"""The fused pseudo-bulk pass (values checked and accumulated in one read) against the
separate passes it replaces: ``pseudobulk_csr``, ``detect_scale`` and the canonical-CSR check."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from transpert._errors import TranspertInputError
from transpert._parallel import numba_threads
from transpert.data import detect_scale
from transpert.kernels import plan_row_parts, pseudobulk_checked_csr, pseudobulk_csr
from transpert.summarize import summarize


def _matrix(rng, n=300, g=40, density=0.2, dtype=np.float32):
    X = sp.random(n, g, density=density, format="csr", random_state=rng, dtype=np.float64)
    X.data = np.log1p(rng.poisson(3.0, X.data.size) + 1.0)
    return X.astype(dtype)


def _adata(X, rng, n_groups=6, unlabelled=5):
    labels = np.array(["non-targeting"] + [f"P{i}" for i in range(1, n_groups)], dtype=object)
    col = labels[rng.integers(0, n_groups, X.shape[0])]
    col[:n_groups] = labels  # every group present
    col[-unlabelled:] = None  # cells without a label: checked, not accumulated
    obs = pd.DataFrame({"target_gene": col}, index=[f"c{i}" for i in range(X.shape[0])])
    return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(X.shape[1])]))


def _run_checked(X, codes, n_groups, threads):
    with numba_threads(threads) as n_parts:
        plan = plan_row_parts(codes, X.indptr, n_groups, n_parts)
        sums = np.zeros((n_groups, X.shape[1]))
        nz = np.zeros((n_groups, X.shape[1]), np.int64)
        s32 = np.zeros((n_groups, X.shape[1]), np.float32)
        scale = (1.0 / np.maximum(np.bincount(codes[codes >= 0], minlength=n_groups), 1)).astype(np.float32)
        facts = pseudobulk_checked_csr(X.data, X.indices, X.indptr, codes, plan[1], plan[2],
                                       np.flatnonzero(codes < 0), sums, nz, scale, s32,
                                       X.dtype.type(1e-3), X.dtype.type(15.0))
        ref = (np.zeros_like(sums), np.zeros_like(nz), np.zeros_like(s32))
        pseudobulk_csr(X.data, X.indices, X.indptr, codes, plan[1], plan[2], *ref[:2], scale, ref[2])
    return facts, (sums, nz, s32), ref


@pytest.mark.parametrize("threads", [1, 2])
def test_checked_kernel_equals_plain_kernel_and_brute_force_facts(threads):
    rng = np.random.default_rng(0)
    X = _matrix(rng)
    codes = rng.integers(-1, 5, X.shape[0]).astype(np.int64)
    # bad values in an unlabelled row and in labelled rows; an unsorted row; an explicit zero
    bad_rows = [int(np.flatnonzero(codes < 0)[0]), int(np.flatnonzero(codes == 2)[0])]
    for r, val in zip(bad_rows, (np.nan, -1.0)):
        X.data[X.indptr[r]] = val
    X.data[X.indptr[10] + 1] = 0.0
    r = int(np.flatnonzero(np.diff(X.indptr) >= 3)[0])
    a = X.indptr[r]
    X.indices[a], X.indices[a + 1] = X.indices[a + 1], X.indices[a]
    facts, got, ref = _run_checked(X, codes, 5, threads)
    for x, y in zip(got, ref):
        np.testing.assert_array_equal(x, y)
    d = X.data.astype(np.float64)
    with np.errstate(invalid="ignore"):
        n_out = int(np.sum(~((d >= 0) & (d < 15.0))))
    n_unsorted = sum(int(np.sum(np.diff(X.indices[X.indptr[i]:X.indptr[i + 1]]) <= 0))
                     for i in range(X.shape[0]))
    assert facts[0] == n_out == 2
    assert facts[2] == n_unsorted == 1
    assert facts[1] > 0  # fractional log1p values present
    assert facts[3] == 0  # every column index in range
    # integer values (counts) only: no fraction found
    Y = X.copy()
    Y.data = np.floor(np.nan_to_num(np.abs(Y.data)))
    assert _run_checked(Y, codes, 5, threads)[0][1] == 0


def _same_profile(a, b):
    assert a.obs_names.tolist() == b.obs_names.tolist()
    np.testing.assert_array_equal(a.obs["n_cells"], b.obs["n_cells"])
    assert set(a.layers) == set(b.layers)
    for k in a.layers:
        np.testing.assert_array_equal(np.asarray(a.layers[k]), np.asarray(b.layers[k]), err_msg=k)
    for k in b.var.columns:
        np.testing.assert_array_equal(a.var[k].to_numpy(), b.var[k].to_numpy(), err_msg=k)
    assert a.uns["transpert"]["normalization"] == b.uns["transpert"]["normalization"]


@pytest.mark.parametrize("kind", ["csr", "csc", "dense", "float64", "unsorted", "duplicates"])
def test_default_path_equals_declared_scale(kind):
    rng = np.random.default_rng(1)
    X = _matrix(rng, dtype=np.float64 if kind == "float64" else np.float32)
    if kind == "csc":
        X = X.tocsc()
    elif kind == "dense":
        X = X.toarray()
    elif kind in ("unsorted", "duplicates"):
        # reverse each row's entries; for duplicates split every value into two halves
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        order = np.lexsort((-X.indices, rows))
        data, idx = X.data[order], X.indices[order]
        if kind == "duplicates":
            data = np.repeat(data / 2, 2)
            idx = np.repeat(idx, 2)
            rows = np.repeat(rows[order], 2)
        else:
            rows = rows[order]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=X.shape[0]))])
        X = sp.csr_matrix((data, idx, indptr), shape=X.shape)
    before = X.copy()
    a = _adata(X, rng)
    for threads in (1, 2):
        fused = summarize(a, de=False, threads=threads, show_progress=False)
        declared = summarize(a, de=False, threads=threads, show_progress=False, scale="log1p")
        _same_profile(fused, declared)
    # input not modified
    if sp.issparse(X):
        np.testing.assert_array_equal(a.X.data, before.data)
        np.testing.assert_array_equal(a.X.indices, before.indices)
    else:
        np.testing.assert_array_equal(a.X, before)
    # with DE too: the fused pass feeds the rank-sum gather
    _same_profile(summarize(a, threads=2, show_progress=False),
                  summarize(a, threads=2, show_progress=False, scale="log1p"))


def test_float_counts_are_detected_and_normalised():
    rng = np.random.default_rng(2)
    X = _matrix(rng)
    X.data = rng.poisson(4.0, X.data.size).astype(np.float32) + 1  # includes values >= 15 rarely
    X.data[0] = 40.0
    a = _adata(X, rng)
    assert detect_scale(X) == "counts"
    _same_profile(summarize(a, de=False, show_progress=False),
                  summarize(a, de=False, show_progress=False, scale="counts"))
    # counts below 15 only: decided by the fused pass itself
    X.data = np.minimum(X.data, 14)
    a = _adata(X, rng)
    _same_profile(summarize(a, de=False, show_progress=False),
                  summarize(a, de=False, show_progress=False, scale="counts"))
    assert summarize(a, de=False, show_progress=False).uns["transpert"]["normalization"]["input_scale"] == "counts"


@pytest.mark.parametrize("value", [np.nan, np.inf, -0.5, 20.5])
def test_invalid_values_raise_as_detect_scale(value):
    rng = np.random.default_rng(3)
    X = _matrix(rng)
    X.data[7] = value
    a = _adata(X, rng)
    with pytest.raises(TranspertInputError) as expected:
        detect_scale(X)
    with pytest.raises(TranspertInputError) as got:
        summarize(a, de=False, show_progress=False)
    assert str(got.value) == str(expected.value)


@pytest.mark.parametrize("bad_index", [-1, 40, 2**31 - 1])  # the matrix has 40 genes
@pytest.mark.parametrize("declared", [False, True])
def test_column_index_out_of_range_is_an_input_error_not_a_stray_write(bad_index, declared):
    # the kernels index accumulator rows without numba's negative-index wraparound; a malformed
    # matrix must be reported, and nothing written outside the accumulators
    rng = np.random.default_rng(3)
    X = _matrix(rng)
    r = int(np.flatnonzero(np.diff(X.indptr) >= 2)[0])
    X.indices[X.indptr[r + 1] - 1] = bad_index
    a = _adata(X, rng)
    with pytest.raises(TranspertInputError, match="column index outside"):
        summarize(a, de=False, threads=1, show_progress=False,
                  scale="log1p" if declared else None)
