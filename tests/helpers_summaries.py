"""Test data for summaries: awkward cells (ties, explicit zeros, all-zero genes, single-cell
groups), and a comparison of two summary files element by element."""

from __future__ import annotations

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from transpert.data.schema import CONTROL_LABEL, PERT_COL


def awkward_cells(scale: str, seed: int = 0, dense: bool = False) -> ad.AnnData:
    """Cells with ties (few distinct values), explicit zeros, all-zero genes, single-cell
    groups, a control group of 40 cells."""
    rng = np.random.default_rng(seed)
    labels = [CONTROL_LABEL] * 40 + [f"P{i}" for i in range(6) for _ in range(6 + 3 * i)] + ["S1", "S2"]
    order = rng.permutation(len(labels))
    labels = [labels[i] for i in order]
    n, g = len(labels), 37
    counts = rng.poisson(rng.gamma(0.6, 1.5, size=g), size=(n, g)).astype(np.float32)
    counts[:, [4, 20]] = 0  # all-zero genes
    counts[:, 9] = np.where(rng.random(n) < 0.5, 0, 2)  # one value tied everywhere
    counts[np.asarray(labels) == "P1", 11] = 0  # a group with a gene all zero
    if scale == "counts":
        X = counts
    else:
        lib = np.maximum(counts.sum(axis=1, keepdims=True), 1)
        X = np.round(np.log1p(counts / lib * 10.0), 1).astype(np.float32)  # rounded: many ties
    obs = pd.DataFrame({PERT_COL: pd.Categorical(labels)}, index=[f"c{i}" for i in range(n)])
    var = pd.DataFrame(index=[f"G{j}" for j in range(g)])
    if dense:
        return ad.AnnData(X=X, obs=obs, var=var)
    M = sp.csr_matrix(X)
    # explicit zeros stored in some rows
    rows = rng.choice(n, 10, replace=False)
    coo = M.tocoo()
    extra_r = np.repeat(rows, 2)
    extra_c = np.tile([4, 20], len(rows))
    M = sp.csr_matrix((np.concatenate([coo.data, np.zeros(len(extra_r), np.float32)]),
                       (np.concatenate([coo.row, extra_r]), np.concatenate([coo.col, extra_c]))),
                      shape=(n, g))
    M.sort_indices()
    return ad.AnnData(X=M, obs=obs, var=var)



def assert_same_h5(path_a, path_b, skip=()) -> None:
    """Two h5ad files hold the same elements: names, encoding attributes, dtypes, shapes and
    values (bit for bit; NaN where NaN), except the datasets named in ``skip``."""
    with h5py.File(path_a, "r") as fa, h5py.File(path_b, "r") as fb:
        names_a, names_b = [], []
        fa.visit(names_a.append)
        fb.visit(names_b.append)
        assert sorted(names_a) == sorted(names_b)
        assert dict(fa.attrs) == dict(fb.attrs)
        for name in names_a:
            ea, eb = fa[name], fb[name]
            assert type(ea) is type(eb), name
            assert sorted(ea.attrs) == sorted(eb.attrs), name
            for key in ea.attrs:
                np.testing.assert_array_equal(ea.attrs[key], eb.attrs[key], err_msg=f"{name} {key}")
            if isinstance(ea, h5py.Dataset) and name not in skip:
                assert ea.dtype == eb.dtype and ea.shape == eb.shape, name
                va, vb = ea[()], eb[()]
                if ea.dtype.kind == "f":
                    assert np.array_equal(va.view(f"u{ea.dtype.itemsize}"),
                                          vb.view(f"u{ea.dtype.itemsize}")), name  # bit for bit
                else:
                    np.testing.assert_array_equal(va, vb, err_msg=name)
