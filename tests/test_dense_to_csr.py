"""Dense rows to CSR (the read of a dense h5ad's chunks): exactly what scipy stores."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from transpert.kernels import dense_to_csr_arrays


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_equals_scipy_csr_of_the_array(dtype):
    rng = np.random.default_rng(1)
    block = ((rng.random((300, 257)) < 0.3) * rng.integers(1, 9, (300, 257))).astype(dtype)
    block[7] = 0  # an empty row
    if dtype != np.int32:
        block[3, 4], block[5, 6], block[8, 9] = np.nan, -0.0, 0.25  # NaN stored, -0.0 not
    data, indices, indptr = dense_to_csr_arrays(block)
    want = sp.csr_matrix(block)
    assert (data.dtype, indices.dtype, indptr.dtype) == (want.data.dtype, want.indices.dtype, want.indptr.dtype)
    np.testing.assert_array_equal(indptr, want.indptr)
    np.testing.assert_array_equal(indices, want.indices)
    np.testing.assert_array_equal(data, want.data)  # NaN == NaN here


def test_empty_and_non_contiguous_blocks():
    for block in (np.zeros((0, 5), np.float32), np.zeros((4, 0), np.float32), np.zeros((3, 5), np.float32)):
        data, indices, indptr = dense_to_csr_arrays(block)
        assert data.size == indices.size == 0 and list(indptr) == [0] * (block.shape[0] + 1)
    base = np.arange(60, dtype=np.float32).reshape(6, 10) % 4
    view = base[::2, 1::3]  # strided
    data, indices, indptr = dense_to_csr_arrays(view)
    want = sp.csr_matrix(view)
    assert np.array_equal(data, want.data) and np.array_equal(indices, want.indices) \
        and np.array_equal(indptr, want.indptr)


def test_dense_file_reads_as_the_csr_file(tmp_path):
    # the same simulated cells stored dense and CSR read back as the same rows
    from transpert.data.storage import H5Matrix
    from transpert.data.simulate import write_large_dataset

    kw = dict(n_cells=400, n_genes=120, n_perturbations=6, seed=2)
    write_large_dataset(tmp_path / "c.h5ad", **kw)
    write_large_dataset(tmp_path / "d.h5ad", **kw, layout="dense")
    c, d = H5Matrix(tmp_path / "c.h5ad", "X"), H5Matrix(tmp_path / "d.h5ad", "X")
    try:
        for start, stop in ((0, 400), (17, 18), (100, 263)):
            a, b = c.read_rows(start, stop), d.read_rows(start, stop)
            assert (a != b).nnz == 0 and b.has_canonical_format
    finally:
        c.close()
        d.close()
