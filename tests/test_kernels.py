"""Kernels against independent references: scipy's mannwhitneyu / ndtr, pandas groupby means."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scipy.special
import scipy.stats

from transpert.kernels import (
    mwu_pvalue,
    ndtr,
    plan_row_parts,
    pseudobulk_csr,
    ranksum_block,
    value_facts,
)
from transpert.summarize._engine import KeyFormat, RowBlockGatherer, gather_block


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
    """Gather + rank the whole matrix as one block, both ways of gathering (a counting pass
    over row parts, and the in-memory gatherer fed by pseudo-bulk counts, in two gene blocks);
    checks they agree and returns (u, p), n_codes x genes."""
    X = sp.csr_matrix(X).astype(dtype) if not sp.issparse(X) else X.tocsr().astype(dtype)
    X.sort_indices()
    n_codes = codes.max() + 1
    n_cells = np.bincount(codes[codes >= 0], minlength=n_codes).astype(np.int64)
    fmt = KeyFormat.for_dtype(X.dtype)
    keys, kc, ptr = gather_block(X, codes, 0, X.shape[1], fmt, threads_parts)
    u = np.full((n_codes, X.shape[1]), np.nan)
    p = np.full((n_codes, X.shape[1]), np.nan)
    ranksum_block(keys, kc, ptr, n_cells, ref, fmt.zero_key, True, u, p, 0, threads_parts)
    plan = plan_row_parts(codes, X.indptr, n_codes, threads_parts)
    sums = np.zeros((n_codes, X.shape[1]))
    nz = np.zeros((n_codes, X.shape[1]), np.int64)
    pseudobulk_csr(X.data, X.indices, X.indptr, codes, plan[1], plan[2], sums, nz,
                   np.ones(n_codes, np.float32), np.zeros((0, 0), np.float32))
    gatherer = RowBlockGatherer(X, codes, plan, nz, fmt)
    u2 = np.full_like(u, np.nan)
    p2 = np.full_like(p, np.nan)
    half = X.shape[1] // 2
    for g0, g1 in ((0, half), (half, X.shape[1])):
        k2, c2, ptr2 = gatherer.block(g0, g1)
        np.testing.assert_array_equal(ptr2, ptr[g0:g1 + 1] - ptr[g0])
        ranksum_block(k2, c2, ptr2, n_cells, ref, fmt.zero_key, True, u2, p2, g0, 1)
    np.testing.assert_array_equal(u2, u)
    np.testing.assert_array_equal(p2, p)
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ref", [0, -1])
def test_ranksum_continuous_values_with_negatives_and_ties_vs_scipy(dtype, ref):
    # mostly distinct values (the scan's singleton path, every radix digit in use), some tied
    # blocks, values below zero (entries before the implicit zero block), for both key widths
    # (float32 keys sort packed; float64 keys sort apart and are packed as dense ranks)
    rng = np.random.default_rng(4)
    n, g = 500, 6
    X = rng.normal(0.5, 2.0, (n, g))
    X[rng.random((n, g)) < 0.5] = 0.0
    X[rng.random((n, g)) < 0.1] = 1.5  # tie blocks
    X = X.astype(dtype)
    codes = rng.integers(-1, 6, n).astype(np.int64)
    u, p = _rank_all(X, codes, ref=ref, dtype=dtype)
    _check_vs_scipy(X, codes, ref, u, p)


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
    _part_of, part_ptr, part_rows = plan_row_parts(codes, A.indptr, 6, 3)
    pseudobulk_csr(A.data, A.indices, A.indptr, codes, part_ptr, part_rows, sums, nz,
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


@pytest.mark.parametrize("n_parts", [1, 2, 5])
def test_pseudobulk_identical_for_any_part_count(n_parts):
    rng = np.random.default_rng(6)
    X = np.where(rng.random((300, 20)) < 0.7, 0.0, rng.gamma(2.0, 1.0, (300, 20))).astype(np.float32)
    codes = rng.integers(-1, 7, 300).astype(np.int64)
    A = sp.csr_matrix(X)
    out = []
    for parts in (1, n_parts):
        part_of, part_ptr, part_rows = plan_row_parts(codes, A.indptr, 7, parts)
        # every labelled row in exactly one part, each part's rows in row order, whole groups
        assert sorted(part_rows.tolist()) == np.flatnonzero(codes >= 0).tolist()
        for p in range(parts):
            rows = part_rows[part_ptr[p]:part_ptr[p + 1]]
            assert np.all(part_of[codes[rows]] == p)
            for c in np.unique(codes[rows]):  # whole groups, each in row order
                assert rows[codes[rows] == c].tolist() == np.flatnonzero(codes == c).tolist()
        sums = np.zeros((7, 20))
        s32 = np.zeros((7, 20), np.float32)
        pseudobulk_csr(A.data, A.indices, A.indptr, codes, part_ptr, part_rows, sums,
                       np.zeros((0, 0), np.int64), np.full(7, 0.25, np.float32), s32)
        out.append((sums, s32))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])


def _value_facts_reference(v):
    """numpy reference: counts, finite extremes and first indices, written the obvious way."""
    finite = np.isfinite(v)
    frac = finite & (np.modf(np.where(finite, v, 0))[0] > v.dtype.type(1e-3))
    neg = finite & (v < 0)
    idx = np.arange(v.size)
    return ([int(np.isnan(v).sum()), int(np.isinf(v).sum()), int(neg.sum()), int(frac.sum())],
            [float(v[finite].min()) if finite.any() else np.inf,
             float(v[finite].max()) if finite.any() else -np.inf],
            [int(idx[neg][0]) if neg.any() else -1, int(idx[frac][0]) if frac.any() else -1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_value_facts_vs_numpy(dtype):
    rng = np.random.default_rng(7)
    for trial in range(4):
        v = rng.integers(0, 20, 5000).astype(dtype)
        if trial >= 1:
            pos = rng.choice(5000, 12, replace=False)
            v[pos] = np.array([0.5, 1e-3, 1.0011, -2.0, -0.5, -0.0, np.nan, np.inf, -np.inf,
                               3.0004, 14.9, 0.0009], dtype=dtype)
        if trial == 3:
            v[:] = np.nan
        counts, extremes, firsts = value_facts(v, v.dtype.type(1e-3))
        ref = _value_facts_reference(v)
        assert counts.tolist() == ref[0]
        assert extremes.tolist() == ref[1]
        assert firsts.tolist() == ref[2]


def test_canonical_csr_no_copy_for_mixed_index_types_and_fixes_unsorted():
    from transpert.kernels import rows_strictly_sorted
    from transpert.summarize._engine import canonical_csr

    rng = np.random.default_rng(8)
    X = sp.random(50, 30, density=0.3, format="csr", dtype=np.float32, random_state=8)
    X.indptr = X.indptr.astype(np.int64)  # as anndata reads h5ad files; indices stay int32
    assert X.indices.dtype == np.int32
    assert rows_strictly_sorted(X.indptr, X.indices)
    assert canonical_csr(X) is X
    # rows with columns in decreasing order and duplicate entries: summed and sorted like
    # scipy's COO -> dense, input untouched
    coo = sp.coo_matrix((rng.random(40).astype(np.float32), (rng.integers(0, 5, 40),
                         rng.integers(0, 4, 40))), shape=(5, 4))
    data, indices, indptr = [], [], [0]
    for r in range(5):
        data.extend(coo.data[coo.row == r][::-1])
        indices.extend(coo.col[coo.row == r][::-1])
        indptr.append(len(indices))
    Z = sp.csr_matrix((np.array(data, np.float32), np.array(indices, np.int32), np.array(indptr)),
                      shape=(5, 4))
    before = (Z.data.copy(), Z.indices.copy())
    assert not rows_strictly_sorted(Z.indptr, Z.indices)
    C = canonical_csr(Z)
    assert rows_strictly_sorted(C.indptr, C.indices)
    np.testing.assert_allclose(C.toarray(), coo.toarray(), rtol=1e-6)
    np.testing.assert_array_equal(Z.data, before[0])
    np.testing.assert_array_equal(Z.indices, before[1])
