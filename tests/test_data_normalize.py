"""Scale detection and normalisation against scanpy (normalize_total(target_sum=None) + log1p).

The reference is scanpy itself, run on the same matrix. Tolerance 1e-6 absolute: the result is
float32 with values below ~10, where one float32 ulp is ~1e-6; for float32/integer input we
expect (and mostly get) bit-identical values because the same float32 operations run.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp

from transpert._errors import TranspertInputError
from helpers_data import counts_matrix
from transpert.data import detect_scale, normalize_log1p, open_cells

FORMATS = ["csr", "csc", "dense"]
DTYPES = [np.int32, np.int64, np.float32, np.float64]


def scanpy_log1p(X) -> np.ndarray:
    adata = ad.AnnData(X=X.copy())
    sc.pp.normalize_total(adata, target_sum=None)
    sc.pp.log1p(adata)
    out = adata.X
    return out.toarray() if sp.issparse(out) else np.asarray(out)


@pytest.mark.filterwarnings("ignore:Some cells have zero counts")
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_normalize_matches_scanpy_in_memory(fmt, dtype):
    X = counts_matrix(1, fmt=fmt, dtype=dtype)
    before = X.copy()
    ours = normalize_log1p(X)
    assert sp.isspmatrix_csr(ours) and ours.dtype == np.float32
    ref = scanpy_log1p(X)
    np.testing.assert_allclose(ours.toarray(), ref, rtol=0, atol=1e-6)
    if np.dtype(dtype) != np.float64:
        np.testing.assert_array_equal(ours.toarray(), ref)  # same float32 operations
    # zero-count cells stay zero (scanpy divides them by 1), no NaN anywhere
    assert np.isfinite(ours.data).all()
    assert ours[3].sum() == 0 and ours[50].sum() == 0
    # the input is not modified
    if sp.issparse(X):
        assert (X != before).nnz == 0
    else:
        np.testing.assert_array_equal(X, before)


def test_median_rule_differs_by_format_like_scanpy():
    # With many empty cells, scanpy's median is over all cells for sparse X and over non-empty
    # cells for dense X; we follow both (and the results really differ, so the test can fail).
    X = counts_matrix(2, n_obs=40, zero_cells=tuple(range(0, 40, 3)), dtype=np.float32)
    sparse_res = normalize_log1p(X).toarray()
    dense_res = normalize_log1p(X.toarray()).toarray()
    assert not np.allclose(sparse_res, dense_res)
    with pytest.warns(UserWarning, match="zero counts"):
        np.testing.assert_array_equal(sparse_res, scanpy_log1p(X))
    with pytest.warns(UserWarning, match="zero counts"):
        np.testing.assert_array_equal(dense_res, scanpy_log1p(X.toarray()))


def test_chunk_with_file_library_sizes_equals_whole():
    X = counts_matrix(3, dtype=np.int32)
    whole = normalize_log1p(X)
    lib = np.asarray(X.sum(axis=1)).ravel()
    target = np.median(lib.astype(np.float32))
    parts = [normalize_log1p(X[i:i + 10], library_sizes=lib[i:i + 10], target_sum=target)
             for i in range(0, X.shape[0], 10)]
    np.testing.assert_array_equal(sp.vstack(parts).toarray(), whole.toarray())


def test_explicit_target_sum_matches_scanpy():
    X = counts_matrix(4, zero_cells=())
    adata = ad.AnnData(X=X.copy())
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    np.testing.assert_array_equal(normalize_log1p(X, target_sum=1e4).toarray(), adata.X.toarray())


def test_detect_scale():
    X = counts_matrix(5)
    assert detect_scale(X) == "counts"
    assert detect_scale(normalize_log1p(X)) == "log1p"
    assert detect_scale(ad.AnnData(X=normalize_log1p(X))) == "log1p"
    assert detect_scale(np.zeros((3, 3))) == "counts"
    mixed = normalize_log1p(X).tolil()
    mixed[0, 0] = 20.0
    with pytest.raises(TranspertInputError, match="mixed scales"):
        detect_scale(mixed.tocsr())
    neg = X.toarray().astype(float)
    neg[1, 2] = -3.0
    with pytest.raises(TranspertInputError, match="negative.*-3.0"):
        detect_scale(neg)
    nan = X.toarray().astype(float)
    nan[0, 0] = np.nan
    with pytest.raises(TranspertInputError, match="1 NaN"):
        detect_scale(nan)


def test_normalize_rejects_log1p_input():
    X = normalize_log1p(counts_matrix(6))
    with pytest.raises(TranspertInputError, match="takes raw counts"):
        normalize_log1p(X)


def _write(tmp_path, X, name="cells.h5ad"):
    n = X.shape[0]
    obs = pd.DataFrame({"target_gene": np.where(np.arange(n) % 4 == 0, "non-targeting", "G1")},
                       index=[f"c{i}" for i in range(n)])
    var = pd.DataFrame(index=[f"g{j}" for j in range(X.shape[1])])
    path = tmp_path / name
    ad.AnnData(X=X, obs=obs, var=var).write_h5ad(path)
    return path


@pytest.mark.filterwarnings("ignore:Some cells have zero counts")
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", [np.int32, np.float32, np.float64])
def test_streamed_normalisation_matches_scanpy_whole_file(tmp_path, fmt, dtype):
    X = counts_matrix(7, fmt=fmt, dtype=dtype)
    path = _write(tmp_path, X)
    ref = scanpy_log1p(ad.read_h5ad(path).X)
    with open_cells(path) as cells:
        assert cells.scale == "counts"
        chunks = list(cells.iter_log1p_chunks(chunk_rows=9))
    assert [c[0] for c in chunks] == list(range(0, X.shape[0], 9))
    assert all(c[2].dtype == np.float32 for c in chunks)
    streamed = sp.vstack([c[2] for c in chunks]).toarray()
    np.testing.assert_allclose(streamed, ref, rtol=0, atol=1e-6)


def test_streamed_log1p_file_passes_through(tmp_path):
    X = normalize_log1p(counts_matrix(8))
    path = _write(tmp_path, X)
    with open_cells(path) as cells:
        assert cells.scale == "log1p"
        out = sp.vstack([c[2] for c in cells.iter_log1p_chunks(chunk_rows=10)])
    np.testing.assert_array_equal(out.toarray(), X.toarray())


def test_declared_counts_with_fractions_is_an_error(tmp_path):
    path = _write(tmp_path, normalize_log1p(counts_matrix(9)))
    with open_cells(path, schema={"counts": True}) as cells:
        with pytest.raises(TranspertInputError, match="schema says X holds raw counts"):
            next(cells.iter_log1p_chunks())
