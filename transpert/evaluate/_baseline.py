"""The challenge's cell-mean baseline, built as ``cell-eval baseline`` (0.8.2) builds it.

``_baseline.py:build_base_mean_adata``: normalise the training file if it is raw counts; b =
mean over *all* label groups of the training file (control included) of each group's mean
log1p expression; every perturbation of the counts CSV (control rows dropped) gets ``n_cells``
rows equal to b (obs names ``p.0, p.1, ...``); the training control cells (log1p) are appended.

The training file is streamed (``transpert.data.open_cells``: one validation pass, one pass
for the pseudo-bulks, one for the control cells), never read whole, and the output is written
to h5ad in row blocks, so the dense baseline matrix is never held in memory whole either
(cell-eval reads the training file whole and builds the matrix with ``np.full``).
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from transpert._io import atomic_path
from transpert.data.tables import read_counts
from transpert.evaluate._inputs import check_control, open_input
from transpert.data.schema import CONTROL_LABEL, PERT_COL

BLOCK_ROWS = 4096
CONTROL_BLOCK_ROWS = 1024  # control cells densified this many at a time


def baseline_vector(opened, *, control: str = CONTROL_LABEL, threads: int | None = None):
    """The cell-mean baseline vector (float32, log1p scale) of an opened training file.

    ``opened``: :func:`transpert.evaluate._inputs.open_input`'s result (streamed; validated and
    summarised here, pseudo-bulks only).
    """
    from transpert.evaluate._runner import reduce_input

    check_control(opened.cells, control)
    prep = reduce_input(opened, pert_col=PERT_COL, control=control, threads=threads, de=False)
    # Mean of the per-group means (float32 like cell-eval's numpy mean over polars' f32 means).
    return prep.means.astype(np.float64).mean(axis=0).astype(np.float32)


def _control_blocks(opened, ctrl_rows: np.ndarray):
    """Yield (offset, dense float32 block) of the control cells, log1p scale, in file order."""
    done = 0
    for start, stop, chunk in opened.source.iter_log1p_chunks():
        lo, hi = np.searchsorted(ctrl_rows, [start, stop])
        rows = ctrl_rows[lo:hi] - start
        for s in range(0, rows.size, CONTROL_BLOCK_ROWS):
            block = chunk[rows[s:s + CONTROL_BLOCK_ROWS]].toarray().astype(np.float32, copy=False)
            yield done, block
            done += block.shape[0]


def build_baseline(train, counts, output=None, *, pert_col: str = PERT_COL,
                   control: str = CONTROL_LABEL, counts_col: str = "n_cells",
                   threads: int | None = None):
    """Build the cell-mean baseline prediction; log1p scale out.

    Every cell of every perturbation is the mean of the target's training cells (log1p), as
    ``cell-eval baseline`` writes the challenge's baseline. The training file is streamed, never
    read whole.

    Parameters
    ----------
    train
        The target's training cells: h5ad path or AnnData (raw counts or log1p).
    counts
        CSV path or DataFrame with ``pert_col`` and ``counts_col``: the cells to write per
        perturbation.
    output
        Where to write the baseline (block-wise); None keeps it in memory.
    pert_col, control, counts_col
        The perturbation column, the control label and the cell-number column.
    threads
        Cores to use (None: all available).

    Returns
    -------
    anndata.AnnData
        The baseline's cells (log1p float32), control cells included; backed read-only when
        ``output`` is given.

    Examples
    --------
    >>> from transpert.evaluate import build_baseline
    >>> build_baseline("train.h5ad", "pert_counts.csv", "baseline.h5ad")  # doctest: +SKIP
    """

    table = read_counts(counts, pert_col=pert_col, control=control, counts_col=counts_col,
                        minimum=0)
    opened = open_input(train, "train", pert_col, control)
    try:
        return _build(opened, table, output, pert_col=pert_col, control=control,
                      counts_col=counts_col, threads=threads)
    finally:
        opened.close()


def _build(opened, table, output, *, pert_col, control, counts_col, threads):
    import anndata as ad

    b = baseline_vector(opened, control=control, threads=threads)
    cells = opened.cells
    ctrl_rows = np.flatnonzero(cells.labels == control)
    n_base = int(table[counts_col].sum())
    labels = np.concatenate([np.repeat(table[pert_col].to_numpy(), table[counts_col].to_numpy()),
                             np.full(ctrl_rows.size, control, dtype=object)])
    obs_names = [f"p.{i}" for i in range(n_base)] + \
        list(opened.source.obs.index.astype(str).to_numpy()[ctrl_rows])
    obs = pd.DataFrame({pert_col: pd.Categorical(labels.astype(str))}, index=obs_names)
    var = pd.DataFrame(index=cells.var_names)
    n_genes = len(var)

    if output is None:
        X = np.empty((n_base + ctrl_rows.size, n_genes), dtype=np.float32)
        X[:n_base] = b
        for at, block in _control_blocks(opened, ctrl_rows):
            X[n_base + at:n_base + at + block.shape[0]] = block
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
            for at, block in _control_blocks(opened, ctrl_rows):
                dset[n_base + at:n_base + at + block.shape[0]] = block
    return ad.read_h5ad(output, backed="r")
