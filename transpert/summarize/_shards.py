"""What a worker computes for a distributed summary: one shard of perturbations, or the reference.

Every function here is a plain function of a file path and row numbers (no driver state), so
a Dask worker runs it, and Dask can run it again elsewhere when a worker dies.

- :func:`reference_task`: the reference group's rows -> its pseudo-bulk and its *table* (per
  gene, the sorted distinct log1p values and their counts: :func:`transpert.kernels.reference_table`).
- :func:`shard_task`: a shard's rows (whole groups) -> their pseudo-bulk, and their rank-sum
  statistics against the reference's table (:func:`transpert.kernels.ranksum_vs_table`),
  gene block by gene block.

Values are read and normalised as :class:`transpert.data.CellSource` does for the same rows
(stored values; counts: ``normalize_log1p`` with the row's own library size and the file's
target sum), and sums are accumulated per group in row order by one thread (as the
single-machine engine does), so every number equals the single-machine summary's.
Scales: stored values in (raw counts or log1p); results on the log1p scale, ``raw_sums`` on
the counts scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transpert._parallel import numba_threads

#: the rank-sum's gene blocks of a shard take this share of the memory budget
GATHER_SHARE = 4


@dataclass(frozen=True)
class FileSpec:
    """Where a worker finds the cells and how it normalises them."""

    path: str
    key: str
    n_vars: int
    scale: str  # "counts" or "log1p"
    target_sum: float | None = None
    working_dtype: str = "float32"
    #: the scale is not established yet: the values are taken as log1p and each task also
    #: returns the facts a scan would give for its rows (the driver decides)
    check_scale: bool = False


def load_rows(spec: FileSpec, rows: np.ndarray):
    """(log1p float32 canonical CSR, stored counts canonical CSR or None) of sorted file rows."""
    from transpert.data._rows import open_matrix, read_file_rows
    from transpert.data.normalize import normalize_log1p
    from transpert.summarize._engine import canonical_csr

    matrix = open_matrix(spec.path, spec.key)
    try:
        X = read_file_rows(matrix, rows)
    finally:
        matrix.close()
    if spec.scale == "counts":
        wdt = np.dtype(spec.working_dtype)
        sizes = np.asarray(X.sum(axis=1, dtype=np.float64)).ravel().astype(wdt)
        L = normalize_log1p(X, library_sizes=sizes, target_sum=wdt.type(spec.target_sum), check=False)
        return canonical_csr(L), canonical_csr(X)
    return canonical_csr(X.astype(np.float32)), None


def _task_threads(threads: int | None) -> int:
    """Numba threads of one task: ``threads``, default 1 (a Dask worker runs one task per
    thread of its own, so its threads are already busy with as many shards)."""
    return max(1, int(threads)) if threads else 1


def _pseudobulk(spec: FileSpec, X, raw, codes: np.ndarray, n_groups: int, de: bool, n_threads: int):
    from transpert.summarize._engine import Accumulators, accumulate_pseudobulk
    from transpert.summarize._groups import Groups

    n_cells = np.bincount(codes, minlength=n_groups).astype(np.int64)
    groups = Groups(labels=np.arange(n_groups).astype(str), codes=codes, n_cells=n_cells,
                    control=-1, ref=-1)
    acc = Accumulators.new(groups, spec.n_vars, raw is not None, pdex_means=de)
    with numba_threads(n_threads) as n_parts:
        plan = accumulate_pseudobulk(acc, X, codes, raw, n_parts)
    return acc, plan


def _sums(acc) -> dict:
    return {"sums": acc.sums, "nonzero": acc.nonzero, "sums32": acc.sums32, "raw_sums": acc.raw_sums}


def _scale_facts(spec: FileSpec, X) -> dict | None:
    """What :meth:`CellSource.scan` learns about these rows' stored values (value facts, row
    kinds; row numbers are the shard's, used only to decide), when the scale is being checked."""
    if not spec.check_scale:
        return None
    from transpert.data import _row_scale
    from transpert.data import normalize as _norm

    return {"values": _norm.value_summary(X.data), "rows": _row_scale.row_evidence(X)}


def reference_task(spec: FileSpec, rows: np.ndarray, de: bool, threads: int | None = None,
                   table: bool = True) -> dict:
    """The reference group (sorted file ``rows``): pseudo-bulk and, with ``de`` and ``table``,
    its table ``(keys uint32, counts int32, ptr)``. ``table=False``: the pseudo-bulk only (the
    control group when it is not the reference; with ``de`` its float32 sums too)."""
    from transpert.kernels import reference_table
    from transpert.summarize._engine import KeyFormat

    n_threads = _task_threads(threads)
    X, raw = load_rows(spec, rows)
    acc, _ = _pseudobulk(spec, X, raw, np.zeros(X.shape[0], dtype=np.int64), 1, de, n_threads)
    out = _sums(acc)
    out["n_cells"] = X.shape[0]
    out["scale_facts"] = _scale_facts(spec, X)
    if de and table:
        fmt = KeyFormat.for_dtype(np.float32)
        C = X.tocsc()
        del X, raw
        with numba_threads(n_threads):
            out["table"] = reference_table(C.data.view(np.uint32), C.indptr.astype(np.int64),
                                           fmt.sign, fmt.ones)
    return out


def shard_task(spec: FileSpec, rows: np.ndarray, codes: np.ndarray, n_groups: int, reference,
               *, de: bool, continuity: bool, memory_budget: int, threads: int | None = None) -> dict:
    """One shard: sorted file ``rows`` with their group ``codes`` in [0, n_groups); with ``de``,
    every group's U and p against ``reference`` (a :func:`reference_task` result)."""
    from transpert.kernels import ranksum_vs_table
    from transpert.summarize._blocks import plan_blocks
    from transpert.summarize._engine import KeyFormat, RowBlockGatherer

    n_threads = _task_threads(threads)
    X, raw = load_rows(spec, rows)
    acc, plan = _pseudobulk(spec, X, raw, codes, n_groups, de, n_threads)
    del raw
    out = _sums(acc)
    out["scale_facts"] = _scale_facts(spec, X)
    if not de:
        return out
    fmt = KeyFormat.for_dtype(np.float32)
    keys, counts, ptr = reference["table"]
    n_ref = np.int64(reference["n_cells"])
    u = np.full((n_groups, spec.n_vars), np.nan)
    p = np.full((n_groups, spec.n_vars), np.nan)
    max_entries = max(1, memory_budget // GATHER_SHARE // (2 * fmt.entry_bytes))
    gatherer = RowBlockGatherer(X, codes, plan, acc.nonzero, fmt, reuse=True)
    n_cells = acc.groups.n_cells
    with numba_threads(n_threads) as n_parts:
        for g0, g1 in plan_blocks(acc.nonzero.sum(axis=0), max_entries):
            words, _, gene_ptr = gatherer.block(g0, g1)
            ranksum_vs_table(words, gene_ptr, keys, counts, ptr[g0:g1 + 1], n_cells, n_ref,
                             fmt.zero_key, continuity, u, p, g0, n_parts)
    out["u"], out["p"] = u, p
    return out
