"""Seeded test matrices for the data-layer tests (imported by tests/test_data_*.py)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def counts_matrix(seed: int, n_obs: int = 83, n_vars: int = 41, fmt: str = "csr", dtype=np.float32,
                  zero_cells: tuple[int, ...] = (3, 50), explicit_zeros: bool = True):
    """Seeded negative-binomial counts with empty cells and (sparse) explicitly stored zeros."""
    rng = np.random.default_rng(seed)
    depth = rng.lognormal(0, 0.8, size=(n_obs, 1))
    dense = rng.negative_binomial(2, 1 / (1 + 0.6 * depth), size=(n_obs, n_vars)).astype(np.int64)
    zero_cells = tuple(i for i in zero_cells if i < n_obs)
    dense[list(zero_cells)] = 0
    X = sp.csr_matrix(dense)
    if explicit_zeros and fmt != "dense":
        # store ~30 zeros explicitly, including in the empty cells
        rows = np.r_[rng.integers(0, n_obs, 28), list(zero_cells)].astype(np.int64)
        cols = rng.integers(0, n_vars, rows.size)
        pairs = np.unique(np.c_[rows, cols][dense[rows, cols] == 0], axis=0)
        coo = X.tocoo()
        X = sp.csr_matrix((np.r_[coo.data, np.zeros(len(pairs), dtype=coo.data.dtype)],
                           (np.r_[coo.row, pairs[:, 0]], np.r_[coo.col, pairs[:, 1]])), shape=X.shape)
        assert (X.data == 0).any()
    X = X.astype(dtype)
    if fmt == "csc":
        return X.tocsc()
    if fmt == "dense":
        return X.toarray()
    return X
