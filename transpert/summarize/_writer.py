"""A summary profile written to its h5ad file block of perturbation rows by block, as results come.

:class:`SummaryFileSink` takes per-group results (the control group's first, then any groups in
any order: a distributed shard's, or row blocks of the single-machine accumulators), turns each
perturbation's results into its layer rows (:mod:`transpert.summarize._profile_rows`) and
writes them into preallocated datasets laid out as ``AnnData.write_h5ad`` lays out a summary
from :func:`transpert.summarize.write_summary` (dense ``X`` = ``mean`` and layers, obs, var,
uns ``transpert`` as JSON text): the file reads back with ``anndata.read_h5ad`` equal to it,
layer by layer, bit for bit. The summary is never whole in memory: the sink holds the control
group's statistics and one block of rows (``fdr="table"``: also every p-value, 16 bytes each,
at the end). The file appears at its path only once complete (atomic rename).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from transpert.summarize._groups import Groups
from transpert.summarize._profile_rows import (RESULT_NAMES, ControlStats, ProfileLayout, TableFDR,
                                               layer_rows)

#: bytes of layer rows (with their transients) computed and written at once
BLOCK_BYTES = 64 * 2**20

_ARRAY = {"encoding-type": "array", "encoding-version": "0.2.0"}
_DICT = {"encoding-type": "dict", "encoding-version": "0.1.0"}


class SummaryFileSink:
    """Writes a summary profile to ``path`` from per-group results.

    ``groups``: the summarised cells' groups (obs = ``groups.tested``, in code order, with
    ``n_cells`` and ``few_cells``); ``var_names``: the genes. Call :meth:`start` with the layout
    (again to start over: a distributed run that had to redo its work), :meth:`place` with
    results, :meth:`finish` with uns; or :meth:`abort`. Also a context manager that aborts on
    an error.
    """

    def __init__(self, path, groups: Groups, var_names, *, log2fc_method: str, fdr_method: str,
                 min_cells: int, threads: int = 1):
        self.path = Path(path)
        self.groups = groups
        self.var_names = pd.Index(var_names, dtype=str)
        self.log2fc_method, self.fdr_method = log2fc_method, fdr_method
        self.threads = max(1, int(threads))
        tested = groups.tested
        self.position = np.full(len(groups.labels), -1, dtype=np.int64)
        self.position[tested] = np.arange(len(tested))
        obs = pd.DataFrame({"n_cells": groups.n_cells[tested].astype(np.int64)},
                           index=pd.Index(groups.labels[tested], dtype=str))
        obs.index.name = None
        obs["few_cells"] = obs["n_cells"].to_numpy() < min_cells
        self.obs = obs
        self.layout = self.control = None
        self._atomic = self._file = None
        self.rows_written = 0

    # -- life cycle --------------------------------------------------------------------------
    def start(self, layout: ProfileLayout) -> None:
        """(Re)open the temporary file with ``layout``'s datasets; results written so far are
        dropped."""
        import h5py

        from transpert._io import atomic_path

        self._close(keep=False)
        self.layout, self.control, self.rows_written = layout, None, 0
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        f = self._file = h5py.File(tmp, "w")
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        shape = (len(self.obs), len(self.var_names))
        _dataset(f, "X", shape, np.float64)
        group = f.create_group("layers")
        group.attrs.update(_DICT)
        for name, dtype in layout.layers:
            _dataset(group, name, shape, dtype)

    def place(self, codes, results: dict) -> None:
        """Results of groups ``codes`` (``results[name][i]``: group ``codes[i]``'s row, names as
        :data:`RESULT_NAMES`). The control group's must come before any perturbation's; the
        reference group's and rows not in obs are skipped."""
        codes = np.asarray(codes, dtype=np.int64)
        g = self.groups
        pos = self.position[codes]
        if self.control is None:
            hit = np.flatnonzero(codes == g.control)
            if hit.size == 0:
                if np.any(pos >= 0):
                    raise RuntimeError("summary rows: the control group's results must come first")
                return  # the reference group's (not a row of the summary)
            i = int(hit[0])
            self.control = ControlStats.of(
                results["sums"][i], results["nonzero"][i],
                None if results.get("sums32") is None or not self.layout.f32 else results["sums32"][i],
                None if results.get("raw_sums") is None or not self.layout.raw else results["raw_sums"][i],
                int(g.n_cells[g.control]))
        keep = np.flatnonzero(pos >= 0)
        if keep.size == 0:
            return
        step = max(1, BLOCK_BYTES // self.layout.row_bytes(len(self.var_names)))
        for a in range(0, keep.size, step):
            idx = keep[a:a + step]
            block = {name: (None if results.get(name) is None else results[name][idx])
                     for name in RESULT_NAMES}
            rows = layer_rows(block, g.n_cells[codes[idx]], self.control, self.layout,
                              log2fc_method=self.log2fc_method, fdr_method=self.fdr_method,
                              threads=self.threads)
            self._write_rows(pos[idx], rows)

    def finish(self, uns: dict) -> Path:
        """Writes obs, var, uns (``uns`` stored under ``transpert`` as JSON text) and, with
        ``fdr="table"``, the ``fdr`` layer; moves the file to its path. Returns the path."""
        from anndata.io import write_elem

        from transpert.summarize._profile import _json_default

        f = self._file
        if self.control is None or self.rows_written != len(self.obs):
            raise RuntimeError(f"summary rows: {self.rows_written} of {len(self.obs)} written")
        if self.layout.de and self.fdr_method == "table":
            self._table_fdr()
        # string columns become categoricals, as AnnData.write_h5ad writes them
        import anndata as ad

        meta = ad.AnnData(obs=self.obs, var=self.control.var(self.var_names))
        meta.strings_to_categoricals()
        write_elem(f, "obs", meta.obs)
        write_elem(f, "var", meta.var)
        write_elem(f, "uns", {"transpert": json.dumps(uns, default=_json_default)})
        for name in ("obsm", "varm", "obsp", "varp"):
            write_elem(f, name, {})
        self._close(keep=True)
        return self.path

    def abort(self) -> None:
        """Drops the temporary file (nothing appears at the path)."""
        self._close(keep=False)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:
            self.abort()

    # -- internals ---------------------------------------------------------------------------
    def _write_rows(self, positions: np.ndarray, rows: dict) -> None:
        f = self._file
        # runs of consecutive positions: one hyperslab each
        cuts = np.flatnonzero(np.diff(positions) != 1) + 1
        for lo, hi in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [positions.size]])):
            r0, r1 = int(positions[lo]), int(positions[hi - 1]) + 1
            f["X"][r0:r1] = rows["mean"][lo:hi]
            for name, array in rows.items():
                f["layers"][name][r0:r1] = array[lo:hi]
        self.rows_written += positions.size

    def _table_fdr(self) -> None:
        """The ``fdr`` layer of ``fdr="table"``, from the written p-values (read back in blocks)."""
        pvalue = self._file["layers"]["pvalue"]
        n = pvalue.shape[0]
        step = max(1, BLOCK_BYTES // max(1, 16 * pvalue.shape[1]))
        table = TableFDR.from_blocks(pvalue[a:a + step] for a in range(0, n, step))
        fdr = _dataset(self._file["layers"], "fdr", pvalue.shape, np.float64)
        for a in range(0, n, step):
            fdr[a:a + step] = table(pvalue[a:a + step])

    def _close(self, keep: bool) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._atomic is not None:
            atomic, self._atomic = self._atomic, None
            if keep:
                atomic.__exit__(None, None, None)
            else:
                try:
                    atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)
                except RuntimeError:
                    pass


def _dataset(group, name: str, shape, dtype):
    """A contiguous dense array element as anndata writes one (created empty, filled later)."""
    if name in group:
        return group[name]
    ds = group.create_dataset(name, shape=shape, dtype=dtype)
    ds.attrs.update(_ARRAY)
    return ds


def place_accumulators(sink: SummaryFileSink, acc) -> None:
    """Feeds a whole run's accumulators (every group's results, single-machine engine) to
    ``sink``: the control's first, then the perturbations' rows block by block."""
    g = acc.groups
    arrays = {name: getattr(acc, name) for name in RESULT_NAMES}
    sink.place([g.control], {k: (None if v is None else v[[g.control]]) for k, v in arrays.items()})
    tested = g.tested
    step = max(1, BLOCK_BYTES // sink.layout.row_bytes(acc.n_genes))
    for a in range(0, tested.size, step):
        codes = tested[a:a + step]
        sink.place(codes, {k: (None if v is None else v[codes]) for k, v in arrays.items()})
