"""One side's summaries for the vcc2026 metrics, streamed from its raw counts.

- Profiles: ``log1p(TS * P / S)`` of each group's count sums (TS = 5e4; cell-eval2's
  ``bulk_lognorm`` comparator), and each group's delete-one jackknife correction
  ``((n-1)/n) * sum_g sum_i (v_ig - mean_i v_ig)^2`` with v the profile left without cell i
  (shifted by the full profile, as cell-eval2 does), its sums over the zero entries by an exact
  series: O(stored values), not O(cells x genes). One gene-major pass per group
  (``transpert.kernels._vcc2026_group``) makes the jackknife sums, the mean CPM and the sorted
  log1p(CPM) values the rank sums need.
- DE against the real control: per gene the Wilcoxon rank sum of log1p(CPM) values (CPM:
  x / (l / 1e6)), tie-corrected normal approximation with scanpy's arithmetic, over the genes
  whose real-control mean CPM exceeds 5; BH within the perturbation over those genes (scipy);
  log2 fold change of arithmetic CPM means with epsilon 1e-9.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from transpert._fdr import bh_qvalues
from transpert._parallel import kernel_threads
from transpert.evaluate.vcc2026._config import BULK_TARGET_SUM, EPSILON, MIN_CPM
from transpert.evaluate.vcc2026._inputs import Scanned, iter_groups
from transpert.kernels._vcc2026 import (
    control_index,
    control_tie_terms,
    ranksum_batch_indexed,
    ranksum_vs_control,
    ranksum_vs_indexed,
)
from transpert.kernels._vcc2026_group import (
    csc_scatter,
    csc_sums,
    group_gene_pass,
    jackknife_setup,
    select_halves,
)


SPLIT_GENES_ABOVE = 10_000_000  # stored values above which one group's pass is split by genes
PER_BUCKET = 2  # control values per bucket of the control's index (int32: 2 bytes per value)
DE_BATCH = 4  # groups tested against the control together (its values read once per gene)


def bulk_means(sums: np.ndarray) -> np.ndarray:
    """log1p(TS * P / S) per group from count sums (an all-zero group stays zero)."""
    totals = sums.sum(axis=1)
    scale = np.zeros_like(totals)
    ok = totals > 0
    scale[ok] = BULK_TARGET_SUM / totals[ok]
    return np.log1p(sums * scale[:, None])


@dataclass
class GroupPass:
    """One group's gene-major summaries (raw counts in): the jackknife correction ``jk``, the
    mean CPM per gene, and per gene its log1p(CPM) values sorted (``col_ptr``, ``values``)
    with the row (in the group) each came from (``rows``); zero counts store nothing. ``P``:
    the group's count sums when they were made here."""

    n: int
    jk: float
    mean_cpm: np.ndarray
    col_ptr: np.ndarray
    values: np.ndarray
    rows: np.ndarray
    P: np.ndarray | None = None


def group_pass(X, lib: np.ndarray, P: np.ndarray | None = None, values: bool = True,
               order: np.ndarray | None = None, with_rows: bool = True,
               split: bool | None = None) -> GroupPass:
    """Scatter one group's raw counts ``X`` (CSR, cell totals ``lib``) gene-major and summarise
    every gene once (:func:`transpert.kernels._vcc2026_group.group_gene_pass`): the delete-one
    jackknife correction of the profile log1p(TS * P / S) when the group sums ``P`` are given
    (``((n-1)/n) * sum_g sum_i (v_ig - mean_i v_ig)^2``, 0 below 2 cells or without counts),
    the mean CPM and, with ``values``, the sorted log1p(CPM) values. ``order``: summarise the
    rows ``X[order]``, in that order (a half split), without copying them; their count sums are
    then made here (``GroupPass.P``) and ``P`` is ignored. ``with_rows`` False: the sorted values
    without the row each came from (``GroupPass.rows`` empty; 4 bytes per stored value less:
    only the replicate anchor's halves need them). ``split``: whether a group above
    ``SPLIT_GENES_ABOVE`` stored values runs its gene pass on several threads (None: only from
    the main thread; inside a worker the other threads are usually busy already)."""
    G = X.shape[1]
    half = order is not None
    if not half:
        order = np.arange(X.shape[0], dtype=np.int64)
        nnz = X.nnz
    else:
        lib = lib[order]
        nnz = int((X.indptr[order + 1] - X.indptr[order]).sum())
    n = order.size
    col_ptr = np.zeros(G + 1, dtype=np.int64)
    rows = np.empty(nnz, dtype=np.int32)
    # float32 files keep float32 counts (every use widens them to float64 exactly)
    counts = np.empty(nnz, dtype=np.float32 if X.data.dtype == np.float32 else np.float64)
    csc_scatter(X.indptr, X.indices, X.data, order, G, col_ptr, rows, counts)
    own = None
    if half:
        own = np.zeros(G)
        csc_sums(col_ptr, counts, own)
        P = own
    nnz = int(col_ptr[-1])
    tot = float(P.sum()) if P is not None else 0.0
    do_jk = P is not None and n >= 2 and tot > 0.0
    ok, pw, D = jackknife_setup(lib, tot if do_jk else 1.0)
    s1 = np.zeros(G)
    s2 = np.zeros(G)
    mean = np.zeros(G)
    vals = np.empty(nnz if values else 0)
    ids = np.empty(nnz if values and with_rows else 0, dtype=np.int32)
    args = (col_ptr, rows, counts, lib, P if do_jk else mean, tot, BULK_TARGET_SUM, do_jk, ok,
            pw, D, s1, s2, mean, 1.0 / n, values, vals, ids)
    if split is None:
        split = threading.current_thread() is threading.main_thread()
    big = nnz > SPLIT_GENES_ABOVE and split
    k = kernel_threads() if big else 1
    # a large group (the control) on several threads, by gene ranges of equal stored values
    cuts = np.searchsorted(col_ptr, np.linspace(0, nnz, k + 1)[1:-1])
    bounds = np.r_[0, cuts, G]
    if k == 1:
        group_gene_pass(*args, 0, G)
    else:
        with ThreadPoolExecutor(k) as pool:
            list(pool.map(lambda r: group_gene_pass(*args, *r), zip(bounds[:-1], bounds[1:])))
    jk = 0.0
    if do_jk:
        q = s2 - s1 ** 2 / n
        jk = max(((n - 1) / n) * float(q.sum()), 0.0)
    return GroupPass(n, jk, mean, col_ptr, vals, ids, own)


def split_values(gp: GroupPass, halves: tuple, a: GroupPass, b: GroupPass):
    """The sorted log1p(CPM) values of two halves of a group (``halves``: the rows of each;
    ``a``, ``b`` their own passes, for the gene pointers), taken from the group's sorted
    values ``gp`` without sorting again: ``(values of a, values of b)``."""
    half = np.full(gp.n, -1, dtype=np.int8)
    half[halves[0]] = 0
    half[halves[1]] = 1
    na, nb = int(a.col_ptr[-1]), int(b.col_ptr[-1])
    va = np.empty(na + 1)  # one slot of slack (select_halves)
    vb = np.empty(nb + 1)
    select_halves(gp.col_ptr, gp.values, gp.rows, half, a.col_ptr, va, b.col_ptr, vb)
    return va[:na], vb[:nb]


@dataclass
class Control:
    """The real control's sorted log1p-CPM values per gene (and the row each came from), their
    tie terms, its mean CPM, the genes kept by the CPM filter, its raw counts and cell
    totals (the baseline's pool) and, for the control groups are tested against, the bucket
    index of its values (``index``: ``(idx_ptr, idx, scale)``, :func:`control_index`)."""

    col_ptr: np.ndarray
    values: np.ndarray
    m: int
    ties: np.ndarray
    mean_cpm: np.ndarray
    kept: np.ndarray  # gene indices with control mean CPM > MIN_CPM
    X: object
    lib: np.ndarray
    rows: np.ndarray | None = None
    index: tuple | None = None

    @classmethod
    def from_pass(cls, gp: GroupPass, X, lib) -> "Control":
        """The real control from its pass, with the bucket index of its values."""
        out = cls.from_sorted(gp.col_ptr, gp.values, gp.rows, gp.mean_cpm, X.shape[0], X, lib)
        G = gp.col_ptr.size - 1
        idx_ptr = np.empty(G + 1, dtype=np.int64)
        idx = np.empty(int((np.diff(gp.col_ptr) // PER_BUCKET + 2).sum()), dtype=np.int32)
        scale = np.empty(G)
        control_index(gp.col_ptr, gp.values, PER_BUCKET, idx_ptr, idx, scale)
        out.index = (idx_ptr, idx, scale)
        return out

    @classmethod
    def from_sorted(cls, col_ptr, values, rows, mean_cpm, m: int, X=None, lib=None
                    ) -> "Control":
        """From sorted log1p(CPM) values per gene of ``m`` cells and their mean CPM (raw
        counts ``X`` and totals ``lib`` kept only for the real control: the baseline's pool)."""
        ties = np.zeros(col_ptr.size - 1)
        control_tie_terms(col_ptr, values, m, ties)
        return cls(col_ptr, values, m, ties, mean_cpm,
                   np.flatnonzero(mean_cpm * 1.0 > MIN_CPM), X, lib, rows)

    @classmethod
    def from_cells(cls, X, lib) -> "Control":
        return cls.from_pass(group_pass(X, lib), X, lib)


@dataclass
class GroupDE:
    """One perturbation's DE table over the control's kept genes (gene indices ``kept``)."""

    kept: np.ndarray
    lfc: np.ndarray
    p: np.ndarray
    p_adj: np.ndarray


def group_de(X, lib, control: Control, gp: GroupPass | None = None) -> GroupDE:
    """Wilcoxon (scanpy's tie-corrected normal approximation) of one group's cells (raw counts
    ``X``, cell totals ``lib``; ``gp`` its :func:`group_pass` when already made) against the
    real control, on log1p(CPM); BH over the kept genes; log2FC of arithmetic CPM means."""
    if gp is None:
        gp = group_pass(X, lib)
    return de_from_sorted(gp.col_ptr, gp.values, X.shape[0], gp.mean_cpm, control)


def de_from_sorted(col_ptr, values, n1: int, mean_cpm: np.ndarray, control: Control) -> GroupDE:
    """:func:`group_de` from a group's sorted log1p(CPM) values per gene and its mean CPM."""
    G = col_ptr.size - 1
    ranksum = np.empty(G)
    tc = np.empty(G)
    if control.index is not None:
        ranksum_vs_indexed(col_ptr, values, n1, control.col_ptr, control.values, control.m,
                           control.ties, *control.index, ranksum, tc)
    else:
        ranksum_vs_control(col_ptr, values, n1, control.col_ptr, control.values, control.m,
                           control.ties, ranksum, tc)
    return de_from_ranksums(ranksum, tc, n1, mean_cpm, control)


def de_batch(passes: list, control: Control) -> list:
    """:func:`group_de` of several groups' passes at once (at most ``DE_BATCH``; the control
    must carry its bucket index): their rank sums gene by gene (:func:`ranksum_batch_indexed`),
    so each gene's control values are read from memory once for the batch. Each pass's arrays
    go to the kernel as they are (a batch of fewer groups repeats the first to fill the
    kernel's tuples: one compiled signature). Returns the :class:`GroupDE` of each pass, in
    order."""
    K = len(passes)
    if not 1 <= K <= DE_BATCH:
        raise ValueError(f"a DE batch holds 1 to {DE_BATCH} groups, got {K}")
    filled = passes + [passes[0]] * (DE_BATCH - K)
    n1 = np.array([gp.n for gp in filled], dtype=np.int64)
    G = control.col_ptr.size - 1
    # only the kept genes are tested (the others' entries stay NaN, never read)
    ranksum = np.full((K, G), np.nan)
    tc = np.full((K, G), np.nan)
    ranksum_batch_indexed(tuple(gp.col_ptr for gp in filled), tuple(gp.values for gp in filled),
                          n1, K, control.kept, control.col_ptr, control.values, control.m,
                          control.ties, *control.index, ranksum, tc)
    return [de_from_ranksums(ranksum[q], tc[q], gp.n, gp.mean_cpm, control)
            for q, gp in enumerate(passes)]


class DEBatches:
    """Groups' passes held until ``size`` of them are ready, then tested against the control
    together (:func:`de_batch`) by the thread that completed the batch; ``flush`` tests the
    rest. Each table goes to ``out[label]``; a group's values are dropped once tested."""

    def __init__(self, control: Control, out: dict, size: int = DE_BATCH):
        self.control = control
        self.out = out
        self.size = size
        self.items: list = []
        self.lock = threading.Lock()

    def add(self, label: str, gp: GroupPass) -> None:
        with self.lock:
            self.items.append((label, gp))
            if len(self.items) < self.size:
                return
            items, self.items = self.items, []
        self._test(items)

    def flush(self) -> None:
        with self.lock:
            items, self.items = self.items, []
        if items:
            self._test(items)

    def _test(self, items: list) -> None:
        tables = de_batch([gp for _, gp in items], self.control)
        for (label, _), table in zip(items, tables):
            self.out[label] = table


def de_from_ranksums(ranksum: np.ndarray, tc: np.ndarray, n1: int, mean_cpm: np.ndarray,
                     control: Control) -> GroupDE:
    """:func:`group_de` from a group's rank sums in group ∪ control and the pooled tie
    corrections per gene (all genes), its cell count and its mean CPM."""
    m = control.m
    kept = control.kept
    std_dev = np.sqrt(tc[kept] * n1 * m * (n1 + m + 1) / 12.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (ranksum[kept] - (n1 * ((n1 + m + 1) / 2.0))) / std_dev
    z[np.isnan(z)] = 0
    p = 2 * ndtr(-np.abs(z))  # scipy.stats.norm.sf(|z|), as scanpy computes it
    p_adj = bh_qvalues(p)  # scipy.stats.false_discovery_control(p, method="bh")
    mt = mean_cpm[kept]
    mr = control.mean_cpm[kept]
    with np.errstate(divide="ignore", invalid="ignore"):
        lfc = np.log2((mt + EPSILON) / (mr + EPSILON))
    return GroupDE(kept, lfc, p, p_adj)


class Workers:
    """Groups summarised side by side on :func:`transpert._parallel.kernel_threads` threads
    (the kernels are serial and release the GIL; the caller's thread keeps reading). At most
    one group per thread waits beyond those running, so memory holds a bounded number of
    groups. Results are the same in any order: each group writes only its own entries."""

    def __init__(self):
        self.n = kernel_threads()
        self.pool = ThreadPoolExecutor(self.n) if self.n > 1 else None
        self.inflight: set = set()

    def submit(self, fn, *args):
        """Run ``fn(*args)`` on a worker (here, without a pool); its future, or None."""
        if self.pool is None:
            fn(*args)
            return None
        job = self.pool.submit(fn, *args)
        self.inflight.add(job)
        if len(self.inflight) > 2 * self.n:
            # wait for whichever job ends first, not the oldest: jobs differ in length (a
            # batch of DE tests takes several groups' time), and waiting on the oldest left
            # the other threads without work behind it
            done, self.inflight = wait(self.inflight, return_when=FIRST_COMPLETED)
            for done_job in done:
                done_job.result()
        return job

    def map(self, fn, items) -> list:
        """``[fn(x) for x in items]``, side by side."""
        if self.pool is None:
            return [fn(x) for x in items]
        return list(self.pool.map(fn, items))

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        try:
            for job in self.inflight:
                if exc_type is None:
                    job.result()
                else:  # the caller's error wins (a bad input block): let the jobs end quietly
                    job.cancel() or job.exception()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class Side:
    """A side's profiles (groups x genes), jackknife corrections and DE tables (by group)."""

    groups: np.ndarray
    means: np.ndarray
    jk: np.ndarray
    de: dict


def summarize_side(scanned: Scanned, control_label: str, control: Control | None,
                   chunk_rows: int | None = None, hooks=None, keep_counts: bool = True
                   ) -> tuple[Side, Control]:
    """Stream a scanned file once more: jackknife of every group, DE of every perturbation
    against ``control`` (built from this file's control cells when None: the real side).
    ``hooks``, ``keep_counts``: see :func:`summarize_groups`."""
    code = int(np.flatnonzero(scanned.groups == control_label)[0])
    wanted = np.ones(scanned.groups.size, dtype=bool)
    if control is not None:
        wanted[code] = False  # not scored: read only for its checks and sums
    # the real control first (every test needs it); a prediction's control last (its reading
    # then overlaps the perturbations' work instead of holding it up)
    first, last = (code, None) if control is None else (None, code)
    groups = iter_groups(scanned, wanted, chunk_rows, first=first, last=last)
    return summarize_groups(scanned.groups, scanned.sums, groups, control_label, control, hooks,
                            keep_counts)


def summarize_groups(groups: np.ndarray, sums: np.ndarray, cells, control_label: str,
                     control: Control | None, hooks=None, keep_counts: bool = True
                     ) -> tuple[Side, Control]:
    """Jackknife and DE of the groups ``cells`` yields as ``(code, raw counts, cell totals)``;
    ``sums[code]`` must hold the group's count sums when it is yielded. With ``control`` None,
    the group labelled ``control_label`` is the control: built on a worker while the other
    groups are summarised, their passes waiting for it to be tested (with hooks: built before
    any group, groups that come earlier in the file held until then).
    ``hooks`` (the replicate anchor's collector, or None) is told of the control once it is
    known (``on_control(control, code)``) and of every perturbation while its cells are in
    memory (``on_group(code, X, lib, group_pass)``, which returns the group's DE table against
    the control, :func:`group_de`'s), so other work reuses this pass. ``keep_counts`` False:
    the control built here does not keep its raw counts (``Control.X``: only the baseline
    draws from them). Without hooks the groups are tested against the control
    ``DE_BATCH`` at a time (:class:`DEBatches`)."""
    ci = int(np.flatnonzero(groups == control_label)[0])
    jk = np.zeros(groups.size)
    de: dict = {}
    pending: dict = {}

    batches = None
    waiting: list = []  # (label, pass) of groups summarised before the control was ready
    gate = threading.Lock()
    control_ready = threading.Event()

    def tested(label, gp):
        """Test a group's pass against the control now, or once the control is built."""
        with gate:
            if batches is None:
                waiting.append((label, gp))
                return
        batches.add(label, gp)

    def scored(code, X, lib):
        gp = group_pass(X, lib, sums[code], with_rows=hooks is not None)
        jk[code] = gp.jk
        label = str(groups[code])
        if hooks is not None:  # the hooks test the group against the control with their halves
            de[label] = hooks.on_group(code, X, lib, gp)
        elif control is not None and control.index is None:  # a given control, no index
            de[label] = group_de(X, lib, control, gp)
        else:
            tested(label, gp)

    def build_control(code, X, lib):
        nonlocal control, batches
        try:
            # on all threads even from a worker: the passes waiting for it hold memory
            gp = group_pass(X, lib, sums[code], with_rows=hooks is not None, split=True)
            jk[code] = gp.jk
            built = Control.from_pass(gp, X, lib)
            if hooks is not None:
                hooks.on_control(built, ci)
            built.rows = None  # only the anchor's halves need each value's row
            if not keep_counts:
                built.X = None
            with gate:
                control = built
                batches = DEBatches(built, de)
                ready = waiting[:]
                waiting.clear()
        finally:  # set on failure too: a reading thread waiting for it then finds the error
            control_ready.set()
        for label, gp_ in ready:  # the reading thread goes on meanwhile
            batches.add(label, gp_)

    have_control = control is not None
    control_job = None
    with Workers() as pool:
        if hooks is not None and control is not None:
            hooks.on_control(control, ci)
        if control is not None and control.index is not None:
            batches = DEBatches(control, de)
        for code, X, lib in cells:
            if code == ci and not have_control:
                have_control = True
                if hooks is None:  # built on a worker while the perturbations go on
                    control_job = pool.submit(build_control, code, X, lib)
                    continue
                build_control(code, X, lib)  # the anchor needs it before any group
                for c2, (X2, lib2) in pending.items():
                    pool.submit(scored, c2, X2, lib2)
                pending.clear()
            elif code == ci:
                continue  # a given control is not summarised again
            elif not have_control and hooks is not None:
                pending[code] = (X, lib)  # the control comes later in this file
            else:
                if control_job is not None and len(waiting) >= 2 * pool.n:
                    # enough passes wait for the control: memory stays bounded until it is built
                    control_ready.wait()
                    if control is None:
                        control_job.result()  # raises what building the control raised
                    control_job = None
                pool.submit(scored, code, X, lib)
    if batches is not None:
        batches.flush()  # every group's pass is done: test the last, incomplete batch
    return Side(groups, bulk_means(sums), jk, de), control
