"""The challenge's cell-mean baseline, built as ``cell-eval baseline`` (0.8.2) builds it.

``_baseline.py:build_base_mean_adata``: normalise the training file if it is raw counts; b =
mean over *all* label groups of the training file (control included) of each group's mean
log1p expression; every perturbation of the counts CSV (control rows dropped) gets ``n_cells``
rows equal to b (obs names ``p.0, p.1, ...``); the training control cells (log1p) are appended.

The output is written to h5ad in row blocks, so the dense baseline matrix is never held in
memory whole (cell-eval builds it with ``np.full``).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import scipy.sparse as sp

from transpert._errors import TranspertInputError
from transpert._io import atomic_path
from transpert.evaluate._inputs import group_means, prepare_cells

BLOCK_ROWS = 4096


def read_counts(counts, *, pert_col: str, control: str, counts_col: str = "n_cells") -> pd.DataFrame:
    """The ``target_gene,n_cells`` table (path or DataFrame) without control rows."""
    name = str(counts) if isinstance(counts, (str, os.PathLike)) else "counts table"
    if isinstance(counts, (str, os.PathLike)):
        if not os.path.exists(counts):
            raise TranspertInputError(f"counts file not found: {counts}")
        counts = pd.read_csv(counts)
    for col in (pert_col, counts_col):
        if col not in counts.columns:
            raise TranspertInputError(
                f"{name}: column {col!r} not found (columns: {', '.join(map(str, counts.columns))})"
            )
    n = pd.to_numeric(counts[counts_col], errors="coerce")
    bad = n.isna() | (n < 0) | (n != np.floor(n))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise TranspertInputError(
            f"{name}: {counts_col!r} must be non-negative integers; row {row} has "
            f"{counts[counts_col].iloc[row]!r}"
        )
    out = pd.DataFrame({pert_col: counts[pert_col].astype(str), counts_col: n.astype(np.int64)})
    return out[out[pert_col] != control].reset_index(drop=True)


def baseline_vector(train, *, pert_col: str = "target_gene", control: str = "non-targeting"):
    """(b, cells): the cell-mean baseline vector (float32, log1p) and the log1p training cells."""
    cells, adata = prepare_cells(train, "train", pert_col, control)
    cells.obs_names = adata.obs_names.astype(str).to_numpy()
    groups = np.array(sorted(set(np.unique(cells.labels))))
    if control not in set(groups):
        raise TranspertInputError(
            f"{cells.name}: control label {control!r} not found in {pert_col!r}; the baseline "
            "appends the training control cells"
        )
    means = group_means(cells.X, cells.labels, groups)
    # Mean of the per-group means (float32 like cell-eval's numpy mean over polars' f32 means).
    return means.astype(np.float64).mean(axis=0).astype(np.float32), cells


def build_baseline(train, counts, output=None, *, pert_col: str = "target_gene",
                   control: str = "non-targeting", counts_col: str = "n_cells"):
    """Build the cell-mean baseline prediction; log1p scale out.

    ``train``: h5ad path or AnnData (counts or log1p); ``counts``: CSV path or DataFrame with
    ``pert_col`` and ``counts_col``. With ``output`` the baseline is written there (block-wise)
    and returned backed read-only; without, it is returned in memory.
    """
    import anndata as ad

    table = read_counts(counts, pert_col=pert_col, control=control, counts_col=counts_col)
    b, cells = baseline_vector(train, pert_col=pert_col, control=control)
    ctrl_rows = np.flatnonzero(cells.labels == control)
    n_base = int(table[counts_col].sum())
    labels = np.concatenate([np.repeat(table[pert_col].to_numpy(), table[counts_col].to_numpy()),
                             np.full(ctrl_rows.size, control, dtype=object)])
    obs_names = [f"p.{i}" for i in range(n_base)] + list(cells.obs_names[ctrl_rows])
    obs = pd.DataFrame({pert_col: pd.Categorical(labels.astype(str))}, index=obs_names)
    var = pd.DataFrame(index=cells.var_names)
    n_genes = len(var)

    def control_block(start, stop):
        rows = ctrl_rows[start:stop]
        block = cells.X[rows]
        return block.toarray() if sp.issparse(block) else np.asarray(block)

    if output is None:
        X = np.empty((n_base + ctrl_rows.size, n_genes), dtype=np.float32)
        X[:n_base] = b
        for s in range(0, ctrl_rows.size, BLOCK_ROWS):
            e = min(s + BLOCK_ROWS, ctrl_rows.size)
            X[n_base + s:n_base + e] = control_block(s, e)
        return ad.AnnData(X=X, obs=obs, var=var)

    import h5py

    with atomic_path(output) as tmp:
        ad.AnnData(obs=obs, var=var).write_h5ad(tmp)
        with h5py.File(tmp, "r+") as f:
            if "X" in f:
                del f["X"]
            dset = f.create_dataset("X", shape=(n_base + ctrl_rows.size, n_genes), dtype=np.float32,
                                    chunks=(min(BLOCK_ROWS, max(1, n_base + ctrl_rows.size)), n_genes)
                                    if n_base + ctrl_rows.size else None)
            dset.attrs["encoding-type"] = "array"
            dset.attrs["encoding-version"] = "0.2.0"
            block = np.broadcast_to(b, (min(BLOCK_ROWS, max(n_base, 1)), n_genes))
            for s in range(0, n_base, BLOCK_ROWS):
                e = min(s + BLOCK_ROWS, n_base)
                dset[s:e] = block[: e - s]
            for s in range(0, ctrl_rows.size, BLOCK_ROWS):
                e = min(s + BLOCK_ROWS, ctrl_rows.size)
                dset[n_base + s:n_base + e] = control_block(s, e)
    return ad.read_h5ad(output, backed="r")
