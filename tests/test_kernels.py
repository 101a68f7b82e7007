"""Kernels against independent references: scipy's mannwhitneyu / ndtr, pandas groupby means."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scipy.special
import scipy.stats

from transpert.kernels import mwu_pvalue, ndtr, pseudobulk_csr, ranksum_block
from transpert.summarize._engine import KeyFormat, gather_block


def test_ndtr_matches_scipy():
    # down to ~1e-300 (below, libm's erfc returns subnormals where cephes returns 0)
    x = np.concatenate([np.linspace(-37, 37, 20001), [0.0, -0.7071067811865476, 1.0, -1.0]])
    ours = np.array([ndtr(v) for v in x])
    ref = scipy.special.ndtr(x)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=0)


def test_mwu_pvalue_all_tied_is_one():
    n1, n2 = 3, 5
    assert mwu_pvalue(n1 * n2 / 2, n1, n2, float((n1 + n2) ** 3 - (n1 + n2)), True) == 1.0


def _rank_all(X, codes, ref, dtype=np.float32, threads_parts=2):
    """Run gather + ranksum over the whole matrix as one block; returns (u, p) n_codes x genes."""
    X = sp.csr_matrix(X).astype(dtype) if not sp.issparse(X) else X.tocsr().astype(dtype)
    X.sort_indices()
    n_codes = codes.max() + 1
    n_cells = np.bincount(codes[codes >= 0], minlength=n_codes).astype(np.int64)
    fmt = KeyFormat.for_dtype(X.dtype)
    keys, kc, ptr = gather_block(X, codes, 0, X.shape[1], fmt, threads_parts)
    u = np.full((n_codes, X.shape[1]), np.nan)
    p = np.full((n_codes, X.shape[1]), np.nan)
    ranksum_block(keys, kc, ptr, n_cells, ref, fmt.zero_key, True, u, p, 0)
    return u, p


def _check_vs_scipy(X, codes, ref, u, p):
    X = np.asarray(X, dtype=np.float64)
    for c in range(codes.max() + 1):
        if c == ref or not np.any(codes == c):
            continue
        other = codes == ref if ref >= 0 else (codes >= 0) & (codes != c)
        for j in range(X.shape[1]):
            r = scipy.stats.mannwhitneyu(X[codes == c, j], X[other, j], method="asymptotic",
                                         use_continuity=True)
            assert u[c, j] == r.statistic, (c, j, u[c, j], r.statistic)
            np.testing.assert_allclose(p[c, j], r.pvalue, rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ranksum_heavy_ties_and_negatives_vs_scipy(dtype):
    rng = np.random.default_rng(1)
    n, g = 400, 12
    X = rng.choice([0.0, 0.0, 0.0, 1.0, 2.0, 0.5, -1.0, 3.25], size=(n, g)).astype(dtype)
    X[:, 0] = 0.0  # all-zero gene
    codes = rng.integers(-1, 5, n).astype(np.int64)  # -1: unlabelled cells, left out
    X[codes != 0, 1] = 0.0  # gene non-zero only in the reference group 0
    X[:, 2] = 2.0  # all values tie (no zeros at all)
    u, p = _rank_all(X, codes, ref=0, dtype=dtype)
    _check_vs_scipy(X, codes, 0, u, p)
    assert np.all(p[1:, 0] == 1.0) and np.all(p[1:, 2] == 1.0)


def test_ranksum_one_vs_rest_vs_scipy():
    rng = np.random.default_rng(2)
    X = np.where(rng.random((300, 8)) < 0.6, 0.0, np.round(rng.gamma(2.0, 1.0, (300, 8)), 1))
    codes = rng.integers(0, 4, 300).astype(np.int64)
    u, p = _rank_all(X, codes, ref=-1)
    _check_vs_scipy(X, codes, -1, u, p)


def test_ranksum_single_cell_groups_vs_scipy():
    rng = np.random.default_rng(3)
    X = np.where(rng.random((60, 6)) < 0.5, 0.0, rng.gamma(2.0, 1.0, (60, 6))).astype(np.float32)
    codes = np.full(60, 1, dtype=np.int64)
    codes[:30] = 2
    codes[7] = 0  # a control group of one cell
    codes[40] = 3  # a perturbation with one cell
    u, p = _rank_all(X, codes, ref=0)
    _check_vs_scipy(X, codes, 0, u, p)
    u, p = _rank_all(X, codes, ref=1)
    _check_vs_scipy(X, codes, 1, u, p)


def test_ranksum_explicit_zeros_equal_implicit():
    rng = np.random.default_rng(4)
    X = np.where(rng.random((200, 5)) < 0.7, 0.0, rng.gamma(2.0, 1.0, (200, 5))).astype(np.float32)
    codes = rng.integers(0, 3, 200).astype(np.int64)
    A = sp.csr_matrix(X)
    # the same matrix with every zero stored explicitly, a third of them as -0.0
    dense = X.copy()
    dense[(X == 0) & (rng.random(X.shape) < 0.3)] = -0.0
    B = sp.csr_matrix((dense.ravel(), (np.repeat(np.arange(200), 5),
                       np.tile(np.arange(5), 200))), shape=(200, 5))
    assert B.nnz == 1000 and A.nnz < 1000  # every zero stored explicitly
    ua, pa = _rank_all(A, codes, 0)
    ub, pb = _rank_all(B, codes, 0)
    np.testing.assert_array_equal(ua, ub)
    np.testing.assert_array_equal(pa, pb)
    _check_vs_scipy(X, codes, 0, ub, pb)


def test_pseudobulk_vs_pandas_groupby():
    rng = np.random.default_rng(5)
    n, g = 500, 30
    X = np.where(rng.random((n, g)) < 0.8, 0.0, rng.gamma(2.0, 1.0, (n, g))).astype(np.float32)
    codes = rng.integers(-1, 6, n).astype(np.int64)
    A = sp.csr_matrix(X)
    sums = np.zeros((6, g))
    nz = np.zeros((6, g), np.int64)
    n_cells = np.bincount(codes[codes >= 0], minlength=6)
    s32 = np.zeros((6, g), np.float32)
    pseudobulk_csr(A.data, A.indices, A.indptr, codes, g, True, 3, sums, nz,
                   (1.0 / n_cells).astype(np.float32), s32)
    frame = pd.DataFrame(X.astype(np.float64)).assign(code=codes)
    frame = frame[frame.code >= 0]
    ref_mean = frame.groupby("code").mean().to_numpy()
    np.testing.assert_allclose(sums / n_cells[:, None], ref_mean, rtol=1e-12, atol=1e-15)
    ref_nz = (frame.drop(columns="code") != 0).groupby(frame.code).sum().to_numpy()
    np.testing.assert_array_equal(nz, ref_nz)
    # the float32 mean is scipy.sparse's own float32 mean, bit for bit
    for c in range(6):
        np.testing.assert_array_equal(s32[c], np.asarray(A[codes == c].mean(axis=0)).ravel())
