"""Distributed summaries on ``dask.distributed``: workers read their own rows from the file.

The driver holds obs (the group of every cell) and the CSR row pointer, never the matrix:

1. scale and normalisation: unless the schema declares the scale, workers scan ranges of rows
   (value facts, row scale evidence, the distinct library sizes and their counts) and the
   driver merges them into the record :meth:`CellSource.normalization` gives (same median);
2. plan: the reference group's rows form one task; the other groups are packed into shards
   (whole groups, balanced by stored entries, each small enough that a worker's memory budget
   holds the shard, its results, the read window, the reference table and the rank-sum blocks:
   :func:`plan_worker_shards`);
3. the reference task returns its pseudo-bulk and its table (sorted distinct values and counts
   per gene); Dask hands that table to the workers of the shards, which read their rows, and
   return their groups' pseudo-bulk and rank-sum statistics (small: groups x genes);
4. the driver hands each result to a sink as it arrives: the summary file's writer
   (:class:`transpert.summarize._writer.SummaryFileSink`: one shard's results held at a time),
   or the accumulators of a summary returned in memory (:class:`AccumulatorSink`). The
   control group's results come first (its own task when it is not the reference).

Every number equals the single-machine engine's (see :mod:`transpert.summarize._shards`).
A worker that dies is replaced by Dask, which reruns its tasks (they are pure functions of the
file and row numbers). Scales: cells in as stored (raw counts or log1p); results log1p.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from transpert._errors import TranspertInputError
from transpert.summarize._engine import Accumulators, parse_memory
from transpert.summarize._groups import Groups

#: bytes a shard's worker holds per stored entry (the log1p CSR, 8 bytes, with the read's and
#: the gather's transients; counts also keep their stored CSR and the normalisation's copy: x2);
#: a shard holds at most memory_budget / SHARD_BYTES_PER_ENTRY entries
SHARD_BYTES_PER_ENTRY = 12
#: cells per scan task
SCAN_ROWS = 50_000
#: bytes a shard's worker holds per group and gene: its pseudo-bulk (sums, non-zeros, float32
#: sums, raw sums) and rank-sum statistics (U, p), 44 bytes, twice (the result Dask serialises)
GROUP_GENE_BYTES = 88
#: bytes per entry of a read window (``data._rows.read_file_rows``): CSR reads the window's values
#: and indices, the int64 positions of the chosen entries and their gathered copies (20); dense
#: reads the window and its chosen rows' copy (8)
READ_WINDOW_BYTES = {"csr": 20, "dense": 8}
#: bytes per reference entry of the reference table every shard's worker holds (uint32 key and
#: int32 count per distinct value of a gene; at most one per stored entry)
TABLE_BYTES_PER_ENTRY = 8


def _distributed():
    try:
        import distributed
    except ImportError:
        raise TranspertInputError(
            "scheduler: distributed summaries need dask.distributed; install it with "
            "pip install 'transpert[dask]'") from None
    return distributed


@contextlib.contextmanager
def connect(scheduler, threads: int | None = None):
    """A ``distributed.Client`` for ``scheduler``: a Client (used as is), ``"local:N"`` (a
    LocalCluster of N worker processes, ``threads`` threads each (one task per thread), default
    1, closed after), or
    a scheduler address such as ``tcp://host:8786``."""
    distributed = _distributed()
    import logging

    quiet = logging.getLogger("distributed")
    if quiet.level == logging.NOTSET:  # its INFO lines (workers starting ...) are not the user's log
        quiet.setLevel(logging.WARNING)
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise TranspertInputError(f"scheduler: expected an address or local:N, got {scheduler!r}")
    scheduler = scheduler.strip()
    if scheduler.startswith("local:"):
        try:
            n = int(scheduler.split(":", 1)[1])
        except ValueError:
            n = 0
        if n < 1:
            raise TranspertInputError(f"scheduler: {scheduler!r}: expected local:N with N >= 1 workers")
        with distributed.LocalCluster(n_workers=n, threads_per_worker=max(1, threads or 1),
                                      processes=True, dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            yield client
        return
    try:
        client = distributed.Client(scheduler, timeout="30s")
    except OSError as err:
        raise TranspertInputError(f"scheduler: cannot connect to {scheduler!r} ({err})") from None
    with client:
        yield client


def plan_shards(weights: np.ndarray, groups: list[int], max_weight: float, min_shards: int) -> list[list[int]]:
    """Pack ``groups`` (codes) into shards of about equal weight (stored entries): at least
    ``min_shards`` (when there are as many groups) and enough that none exceeds ``max_weight``
    unless one group does alone. Largest groups first, each to the lightest shard;
    deterministic. Each shard's codes come sorted."""
    if not groups:
        return []
    total = float(sum(weights[g] for g in groups))
    n = max(min_shards, math.ceil(total / max(1.0, max_weight)))
    n = min(n, len(groups))
    load = np.zeros(n)
    shards = [[] for _ in range(n)]
    for g in sorted(groups, key=lambda g: (-weights[g], g)):
        s = int(np.argmin(load))
        shards[s].append(g)
        load[s] += weights[g]
    return [sorted(s) for s in shards if s]


def worker_fixed_bytes(budget: int, ref_entries: int, n_vars: int, *, de: bool, dense: bool) -> int:
    """Bytes a shard's worker holds whatever its shard: the read window, and with ``de`` the
    reference table (at most :data:`TABLE_BYTES_PER_ENTRY` per stored reference entry, plus its
    gene pointer) and the rank-sum's gene blocks (``budget / GATHER_SHARE``)."""
    from transpert.data._rows import WINDOW_ENTRIES
    from transpert.summarize._shards import GATHER_SHARE

    read = WINDOW_ENTRIES * READ_WINDOW_BYTES["dense" if dense else "csr"]
    if not de:
        return read
    return read + TABLE_BYTES_PER_ENTRY * int(ref_entries) + 8 * (n_vars + 1) + budget // GATHER_SHARE


def plan_worker_shards(entries: np.ndarray, groups: list[int], ref: int, n_vars: int, *, budget: int,
                       per_entry: int, de: bool, dense: bool, min_shards: int):
    """Shards of ``groups`` (codes; ``entries``: stored entries per group, ``ref`` the reference
    group) sized so that a worker's planned memory stays under ``budget``: the shard's entries
    (``per_entry`` bytes each), its groups' results (:data:`GROUP_GENE_BYTES` per gene) and
    :func:`worker_fixed_bytes`. Returns ``(shards, planned bytes per shard)``; a single group
    over the budget is a shard alone (its plan says so)."""
    fixed = worker_fixed_bytes(budget, int(entries[ref]) if ref >= 0 else 0, n_vars, de=de, dense=dense)
    if fixed >= budget:
        raise TranspertInputError(
            f"memory_budget: {budget / 2**20:.0f} MB is below what every worker holds besides its "
            f"shard ({fixed / 2**20:.0f} MB: read window, reference table and rank-sum blocks); "
            f"give at least {2 * fixed / 2**20:.0f} MB")
    group_bytes = np.asarray(entries, dtype=np.float64) * per_entry + GROUP_GENE_BYTES * n_vars
    shards = plan_shards(group_bytes, groups, budget - fixed, min_shards)
    return shards, [fixed + float(group_bytes[s].sum()) for s in shards]


def _file_rows(cells) -> np.ndarray | None:
    """File row of each obs cell (None: the same numbers)."""
    return cells._rows


def normalization_on_cluster(client, cells, key: str) -> dict:
    """:meth:`CellSource.normalization` with the scan split over the workers."""
    from transpert.data import _row_scale
    from transpert.data import normalize as _norm
    from transpert.data._rows import scan_file_rows

    label = str(cells.path)
    if cells.schema.counts is False:
        return cells.normalization()  # declared log1p: nothing to read
    file_rows = _file_rows(cells)
    futures = []
    for o0 in range(0, cells.n_obs, SCAN_ROWS):
        o1 = min(cells.n_obs, o0 + SCAN_ROWS)
        rows = np.arange(o0, o1, dtype=np.int64) if file_rows is None else file_rows[o0:o1]
        futures.append(client.submit(scan_file_rows, str(cells.path), key, rows, o0,
                                     cells.default_chunk_rows(), pure=False))
    summary = _norm.value_summary(np.empty(0, dtype=cells.dtype))
    evidence = _row_scale.empty_evidence()
    distinct, counts = [], []
    for part in client.gather(futures):  # in obs order: the first offending value is the same
        summary = _norm.merge_summaries(summary, part["values"])
        evidence = _row_scale.merge_evidence(evidence, part["rows"])
        distinct.append(part["sizes"])
        counts.append(part["size_counts"])
    summary["rows"] = evidence
    scale = _norm.scale_from_summary(summary, label)
    if cells.schema.counts is True and scale != "counts":
        raise TranspertInputError(
            f"{label}: the schema says X holds raw counts but it has non-integer values "
            f"(e.g. {summary['first_fractional']!r})")
    if scale == "log1p":
        return {"input_scale": "log1p", "method": "none (already log1p)"}
    wdt = _norm.working_dtype(cells.dtype)
    include_zero = cells.format != "dense"
    target = _norm.median_from_histogram(np.concatenate(distinct).astype(wdt), np.concatenate(counts),
                                         include_zero)
    return {"input_scale": "counts", "method": "normalize_total(target_sum=median)+log1p",
            "target_sum": float(target), "median_over": "all cells" if include_zero else "non-empty cells",
            "working_dtype": str(wdt)}


def summarize_on_cluster(client, cells, groups: Groups, sink, *, memory_budget, de: bool,
                         continuity: bool, threads: int | None = None) -> tuple[dict, dict]:
    """(engine facts, normalisation record) of a file's cells, computed by the cluster; the
    results go to ``sink`` (:class:`AccumulatorSink`, or a
    :class:`transpert.summarize._writer.SummaryFileSink` writing the summary as they come).

    A file of float32 values whose scale is not declared, and whose first rows look log1p, is
    computed as log1p straight away, each task also checking its rows' values; the scan
    (:func:`normalization_on_cluster`) runs only when that check fails (counts, or invalid
    values: then the scan's verdict or error is the single-machine one), and the work again
    (``sink.start`` is then called again)."""
    if cells.schema.counts is None and np.dtype(cells.dtype) == np.float32 and np.all(groups.codes >= 0) \
            and _first_rows_look_log1p(cells):
        record = {"input_scale": "log1p", "method": "none (already log1p)"}
        info = compute_on_cluster(client, cells, groups, record, sink, memory_budget=memory_budget,
                                  de=de, continuity=continuity, threads=threads, check_scale=True)
        if info is not None:
            cells.set_checked_scale("log1p")
            return info, record
    record = normalization_on_cluster(client, cells, cells.schema.matrix)
    info = compute_on_cluster(client, cells, groups, record, sink, memory_budget=memory_budget, de=de,
                              continuity=continuity, threads=threads)
    return info, record


class AccumulatorSink:
    """Every group's results placed in one :class:`Accumulators` (for a summary returned in
    memory): ``start(layout)`` allocates it, ``place(codes, result)`` copies rows in."""

    def __init__(self, groups: Groups, n_genes: int):
        self.groups, self.n_genes, self.acc = groups, n_genes, None

    def start(self, layout) -> None:
        self.acc = Accumulators.new(self.groups, self.n_genes, layout.raw, pdex_means=layout.f32)
        if layout.de:
            self.acc.u = np.full((len(self.groups.labels), self.n_genes), np.nan)
            self.acc.p = np.full((len(self.groups.labels), self.n_genes), np.nan)

    def place(self, codes, result: dict) -> None:
        _place(self.acc, codes, result)


def _first_rows_look_log1p(cells, n_rows: int = 2000) -> bool:
    """The first rows' values are in [0, LOG1P_MAX) and some are fractional (read by the driver)."""
    from transpert.data.schema import FRACTION_EPS, LOG1P_MAX

    for _, _, block in cells.iter_chunks(min(n_rows, max(1, cells.n_obs)), show_progress=False):
        v = block.data
        if v.size == 0:
            continue
        return bool(np.all((v >= 0) & (v < LOG1P_MAX)) and np.any(v - np.floor(v) > FRACTION_EPS))
    return False


def compute_on_cluster(client, cells, groups: Groups, normalization: dict, sink, *, memory_budget,
                       de: bool, continuity: bool, threads: int | None = None, on_result=None,
                       check_scale: bool = False) -> dict | None:
    """Pseudo-bulk and rank-sum statistics of every group, computed by the cluster's workers and
    handed to ``sink`` as they arrive; returns the engine's facts (shards, workers, plan).

    ``cells``: an open :class:`transpert.data.CellSource` of a file (the workers open the same
    path: it must be on storage they share); ``groups``: the cells' groups against a reference
    group (not one-vs-rest). ``sink.start(layout)`` is called first (a
    :class:`transpert.summarize._profile_rows.ProfileLayout`), then ``sink.place(codes, result)``
    with the reference group's results, the control group's (its own task when it is not the
    reference: so it comes before any perturbation's), then each shard's as it arrives; the
    driver holds one shard's results at a time. ``on_result(i, n)`` is called after each
    shard's result was placed. ``check_scale``: the values are taken as log1p and checked by
    the tasks; returns None when they are not (every cell must then be in a group).
    """
    from transpert.summarize._profile_rows import ProfileLayout

    from transpert.summarize._shards import FileSpec, reference_task, shard_task

    if groups.ref < 0:
        raise TranspertInputError("scheduler: distributed summaries test against a reference group; "
                                  "reference='rest' (one-vs-rest) needs every cell's values per gene")
    budget = parse_memory(memory_budget)
    spec = FileSpec(path=str(cells.path), key=cells.schema.matrix, n_vars=cells.n_vars,
                    scale=normalization["input_scale"], target_sum=normalization.get("target_sum"),
                    working_dtype=normalization.get("working_dtype", "float32"),
                    check_scale=check_scale)
    file_rows = _file_rows(cells)
    n_file = cells._matrix.shape[0]
    if cells.format == "csr":
        per_row = np.diff(cells._matrix.indptr)
        per_row = per_row if file_rows is None else per_row[file_rows]
    else:
        per_row = np.full(cells.n_obs, cells.n_vars, dtype=np.int64)
    codes = groups.codes
    labelled = codes >= 0
    weights = np.bincount(codes[labelled], weights=per_row[labelled] + 1, minlength=len(groups.labels))
    # the control's pseudo-bulk is every perturbation's row's baseline: when it is not the
    # reference it is read by a task of its own, placed before any shard's results
    own_control = groups.control != groups.ref
    others = [c for c in range(len(groups.labels))
              if c not in (groups.ref, groups.control) and groups.n_cells[c] > 0]
    workers = client.scheduler_info().get("workers", {})
    n_workers = max(1, len(workers))
    # at least one shard per worker thread (each runs one task at a time)
    n_slots = max(n_workers, sum(int(w.get("nthreads", 1)) for w in workers.values()))
    per_entry = SHARD_BYTES_PER_ENTRY * (2 if spec.scale == "counts" else 1)
    shards, planned = plan_worker_shards(weights, others, groups.ref, cells.n_vars, budget=budget,
                                         per_entry=per_entry, de=de, dense=cells.format == "dense",
                                         min_shards=n_slots)
    order = np.argsort(codes, kind="stable")  # cells of each group, in row order
    bounds = np.concatenate([[0], np.cumsum(np.bincount(codes[labelled], minlength=len(groups.labels)))])
    first = int(np.sum(~labelled))

    def rows_of(group_codes):
        idx = np.sort(np.concatenate([order[first + bounds[c]:first + bounds[c + 1]] for c in group_codes]))
        return idx if file_rows is None else file_rows[idx], idx

    ref_rows, _ = rows_of([groups.ref])
    # the reference task runs alone (every shard waits for its table): it may use more threads
    ref_future = client.submit(reference_task, spec, ref_rows, de, threads, pure=False)
    control_future = None
    if own_control:
        control_future = client.submit(reference_task, spec, rows_of([groups.control])[0], de, 1,
                                       table=False, pure=False)
    futures = {}
    for i, shard in enumerate(shards):
        rows, idx = rows_of(shard)
        local = np.full(len(groups.labels), -1, dtype=np.int64)
        local[shard] = np.arange(len(shard))
        fut = client.submit(shard_task, spec, rows, local[codes[idx]], len(shard), ref_future,
                            de=de, continuity=continuity, memory_budget=budget, threads=1,
                            pure=False)
        futures[fut] = shard
    sink.start(ProfileLayout(de=de, raw=spec.scale == "counts", f32=de))
    facts = []
    # the reference's sums only: its table stays on the workers
    ref_result = client.submit(_without_table, ref_future, pure=False).result()
    facts.append(ref_result.get("scale_facts"))
    sink.place([groups.ref], ref_result)
    del ref_result
    if control_future is not None:
        result = control_future.result()
        facts.append(result.get("scale_facts"))
        sink.place([groups.control], result)
        control_future.release()
        del result
    distributed = _distributed()
    for k, fut in enumerate(distributed.as_completed(list(futures))):
        shard = futures.pop(fut)
        result = fut.result()
        fut.release()
        facts.append(result.get("scale_facts"))
        sink.place(shard, result)
        del result
        if on_result is not None:
            on_result(k, len(shards))
    ref_future.release()
    if check_scale and not _log1p_verdict(facts, str(cells.path)):
        return None
    return dict(passes=1, scheduler=str(client.scheduler.address), workers=n_workers,
                shards=len(shards), file_rows=n_file, planned_worker_bytes=int(max(planned, default=0)))


def _without_table(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "table"}


def _log1p_verdict(facts: list[dict], label: str) -> bool:
    """Whether the tasks' value facts (every cell's, merged) are those of log1p values by
    :func:`transpert.data.normalize.scale_from_summary`; False also where it would raise."""
    from transpert.data import _row_scale
    from transpert.data import normalize as _norm

    summary = _norm.value_summary(np.empty(0, dtype=np.float32))
    evidence = _row_scale.empty_evidence()
    for part in facts:
        summary = _norm.merge_summaries(summary, part["values"])
        evidence = _row_scale.merge_evidence(evidence, part["rows"])
    summary["rows"] = evidence
    try:
        return _norm.scale_from_summary(summary, label) == "log1p"
    except TranspertInputError:
        return False


def _place(acc: Accumulators, codes: list[int], result: dict) -> None:
    """Copy a task's rows (local group i = ``codes[i]``) into the accumulators."""
    for name in ("sums", "nonzero", "sums32", "raw_sums", "u", "p"):
        target = getattr(acc, name)
        if target is not None and result.get(name) is not None:
            target[codes] = result[name]
