"""The summaries engine: pseudo-bulk and rank-sum statistics for every group, in-memory or streamed.

Two passes over the cells (row order, CSR):
  A. pseudo-bulk: per (group, gene) sums of the log1p values (and of raw counts when the input
     is counts), non-zero counts, scipy-style float32 sums (for pdex-compatible means);
     the non-zero counts also size the gene blocks.
  B. rank sums: gene blocks gathered column-major (keys + group codes, zeros left out), ranked
     one block at a time; streamed input is first written to a block store (memory or scratch
     file) chunk by chunk, so memory is bounded by the budget, not by the number of cells.
     In memory, pass A's non-zero counts give every thread's write positions, so a block is
     gathered in one sweep with no counting pass (:class:`RowBlockGatherer`).
Threads split pass A and the gather by groups (whole groups per thread, rows in row order
within a group) and the ranking by genes; each thread's scratch is allocated once per block.
Cores: numba threads inside the kernels (default), or one numba thread per joblib worker
(``backend="joblib"``/``"dask"``: blocks are independent jobs). Every result is independent of
the number of threads, workers and chunks: sums are accumulated in row order by one thread, and
U / tie terms are exact integers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from transpert._errors import TranspertInputError
from transpert._parallel import numba_threads, resolve_threads
from transpert._progress import Progress
from transpert.summarize._accumulators import (Accumulators, canonical_csr, raise_bad_indices,
                                               scale32)
from transpert.summarize._blocks import BlockStore, plan_blocks
from transpert.summarize._groups import Groups

DEFAULT_MEMORY_BUDGET = 2 * 2**30
# streamed entries stay in memory when they take at most budget / STORE_FRACTION, else a scratch file
STORE_FRACTION = 3
BACKENDS = ("threads", "joblib", "dask")
# genes scattered per sweep over the rows by the in-memory gather (see scatter_rows_block)
SUB_GENES = 4096
_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "m": 2**20, "mb": 2**20, "g": 2**30, "gb": 2**30,
          "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_memory(budget) -> int:
    """Bytes from an int or a string such as ``"2GB"``, ``"500M"`` (binary units)."""
    if budget is None:
        return DEFAULT_MEMORY_BUDGET
    if isinstance(budget, (int, np.integer)) and not isinstance(budget, bool):
        value = int(budget)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(budget))
        if not m or m.group(2).lower() not in _UNITS:
            raise TranspertInputError(f"memory_budget: cannot read {budget!r} (e.g. 2GB, 500MB, 1073741824)")
        value = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if value < 64 * 2**20:
        raise TranspertInputError(f"memory_budget must be at least 64MB, got {budget!r}")
    return value


@dataclass
class KeyFormat:
    """How values become order-preserving unsigned keys (see ``kernels._gather``), and how a
    gene block holds them: 32-bit keys (float32 values) packed with their group code into one
    uint64 word (``packed``; the block's codes array is then empty), 64-bit keys beside an
    int32/int16 code array."""

    bits_dtype: np.dtype
    sign: np.uint64
    ones: np.uint64
    zero_key: np.uint64  # unsigned: 2**63 would not fit numba's int64 argument type
    packed: bool

    @classmethod
    def for_dtype(cls, dtype) -> "KeyFormat":
        if np.dtype(dtype) == np.float32:
            return cls(np.dtype(np.uint32), np.uint64(1 << 31), np.uint64(2**32 - 1), np.uint64(1 << 31), True)
        if np.dtype(dtype) == np.float64:
            return cls(np.dtype(np.uint64), np.uint64(1 << 63), np.uint64(2**64 - 1), np.uint64(1 << 63), False)
        raise TranspertInputError(f"expression values must be float32 or float64, got {dtype}")

    @property
    def key_dtype(self) -> np.dtype:
        """dtype of a block's ``keys`` array (packed words or plain keys)."""
        return np.dtype(np.uint64) if self.packed else self.bits_dtype

    @property
    def entry_bytes(self) -> int:
        """Bytes one gathered entry takes (an int32 code beside a plain key)."""
        return 8 if self.packed else self.bits_dtype.itemsize + 4

    def empty_block(self, n: int, code_dtype=np.int32):
        """Uninitialised (keys, codes) arrays for ``n`` entries."""
        codes = np.empty(0 if self.packed else n, dtype=code_dtype)
        return np.empty(n, dtype=self.key_dtype), codes


def accumulate_pseudobulk(acc: Accumulators, X: sp.csr_matrix, row_codes: np.ndarray,
                          raw: sp.csr_matrix | None, n_parts: int):
    """Pass A on one CSR chunk of log1p values (``raw``: the same rows' counts, or None).

    Returns the row plan (``part_of``, ``part_ptr``, ``part_rows``: which thread read which
    groups' rows), which the in-memory gather reuses.
    """
    from transpert.kernels import plan_row_parts, pseudobulk_csr

    plan = plan_row_parts(row_codes, X.indptr, len(acc.groups.labels), n_parts)
    _part_of, part_ptr, part_rows = plan
    bad = pseudobulk_csr(X.data, X.indices, X.indptr, row_codes, part_ptr, part_rows,
                         acc.sums, acc.nonzero, scale32(acc.groups), acc.sums32_arg)
    raise_bad_indices(bad, X.shape[1])
    if raw is not None:
        bad = pseudobulk_csr(raw.data, raw.indices, raw.indptr, row_codes, part_ptr, part_rows,
                             acc.raw_sums, np.zeros((0, 0), np.int64), scale32(acc.groups),
                             np.zeros((0, 0), np.float32))
        raise_bad_indices(bad, raw.shape[1])
    return plan


class RowBlockGatherer:
    """Gene blocks of an in-memory canonical CSR, in gene order, with no counting pass.

    The pseudo-bulk pass already counted every group's non-zeros per gene, so each thread's
    write positions are known; a per-row cursor remembers where the previous block ended, so
    over all blocks every stored entry is read once (no per-block row searches).
    """

    def __init__(self, X: sp.csr_matrix, row_codes: np.ndarray, plan, nonzero: np.ndarray,
                 fmt: KeyFormat, sub_genes: int = SUB_GENES, reuse: bool = False):
        part_of, self.part_ptr, self.part_rows = plan
        n_parts = self.part_ptr.shape[0] - 1
        self.part_nnz = np.zeros((n_parts, nonzero.shape[1]), dtype=np.int64)
        np.add.at(self.part_nnz, part_of, nonzero)
        self.X, self.row_codes, self.fmt = X, row_codes, fmt
        self.bits = X.data.view(fmt.bits_dtype)
        self.cursor = X.indptr[:-1].astype(np.int64)
        self.next_gene = 0
        self.sub_genes = sub_genes
        # reuse: one buffer for every block (the previous block must be consumed by then);
        # saves the page faults of a fresh allocation per block
        self.reuse = reuse
        self._keys = self._codes = None
        # group codes as int16 when they fit: 6 bytes per entry instead of 8 to write, sort, read
        self.code_dtype = np.dtype(np.int16 if nonzero.shape[0] <= np.iinfo(np.int16).max else np.int32)

    def block(self, g0: int, g1: int):
        """(keys, codes, gene_ptr) of genes [g0, g1); blocks must come in order from gene 0.
        With ``reuse`` the arrays are overwritten by the next call."""
        from transpert.kernels import scatter_rows_block

        if g0 != self.next_gene:
            raise RuntimeError(f"gene blocks must be gathered in order: expected {self.next_gene}, got {g0}")
        counts = self.part_nnz[:, g0:g1]
        gene_ptr = np.zeros(g1 - g0 + 1, dtype=np.int64)
        np.cumsum(counts.sum(axis=0), out=gene_ptr[1:])
        # part p writes gene g after the entries of parts < p
        part_pos = gene_ptr[:-1][None, :] + np.cumsum(counts, axis=0) - counts
        n = int(gene_ptr[-1])
        if self.reuse:
            if self._keys is None or self._keys.shape[0] < n:
                self._keys, self._codes = self.fmt.empty_block(n, self.code_dtype)
            keys, codes = self._keys[:n], self._codes[:n]
        else:
            keys, codes = self.fmt.empty_block(n, self.code_dtype)
        fmt, X = self.fmt, self.X
        scatter_rows_block(self.bits, X.indices, X.indptr, self.row_codes, self.part_ptr,
                           self.part_rows, self.cursor, g0, g1, fmt.sign, fmt.ones,
                           np.ascontiguousarray(part_pos), keys, codes, self.sub_genes)
        self.next_gene = g1
        return keys, codes, gene_ptr


def gather_block(X: sp.csr_matrix, row_codes, g0, g1, fmt: KeyFormat, n_parts: int):
    """Gene block [g0, g1) of a canonical CSR as (keys, codes, gene_ptr)."""
    from transpert.kernels import count_csr_block, scatter_csr_block

    bits = X.data.view(fmt.bits_dtype)
    counts = count_csr_block(bits, X.indices, X.indptr, row_codes, g0, g1, True, fmt.sign, n_parts)
    gene_ptr = np.concatenate([[0], np.cumsum(counts.sum(axis=0))]).astype(np.int64)
    keys, codes = fmt.empty_block(int(gene_ptr[-1]))
    scatter_csr_block(bits, X.indices, X.indptr, row_codes, g0, g1, True, fmt.sign, fmt.ones,
                      counts, gene_ptr[:-1].copy(), keys, codes)
    return keys, codes, gene_ptr


def _rank_job(keys, codes, gene_ptr, n_cells, ref, zero_key, continuity):
    """One block as an independent job (joblib / Dask worker): one numba thread."""
    from transpert.kernels import ranksum_block

    nb = gene_ptr.shape[0] - 1
    u = np.full((n_cells.shape[0], nb), np.nan)
    p = np.full((n_cells.shape[0], nb), np.nan)
    with numba_threads(1):
        ranksum_block(keys, codes, gene_ptr, n_cells, ref, zero_key, continuity, u, p, 0, 1)
    return u, p


def run_blocks(acc: Accumulators, block_iter, n_blocks: int, fmt: KeyFormat, threads: int,
               backend: str, continuity: bool, show_progress) -> None:
    """Pass B's ranking: ``block_iter`` yields (g0, g1, keys, codes, gene_ptr)."""
    from transpert.kernels import ranksum_block

    g = acc.groups
    acc.u = np.full((len(g.labels), acc.n_genes), np.nan)
    acc.p = np.full((len(g.labels), acc.n_genes), np.nan)
    with Progress(n_blocks, "rank-sum tests", unit="gene blocks", show=show_progress) as bar:
        if backend == "threads":
            with numba_threads(threads):
                for g0, _g1, keys, codes, gene_ptr in block_iter:
                    ranksum_block(keys, codes, gene_ptr, g.n_cells, g.ref, fmt.zero_key, continuity,
                                  acc.u, acc.p, g0, threads)
                    bar.update(1)
            return
        import joblib

        def jobs():
            for g0, g1, keys, codes, gene_ptr in block_iter:
                yield g0, g1, joblib.delayed(_rank_job)(keys, codes, gene_ptr, g.n_cells, g.ref,
                                                        fmt.zero_key, continuity)

        spans = []

        def tasks():
            for g0, g1, task in jobs():
                spans.append((g0, g1))
                yield task

        if backend == "dask":
            ctx = joblib.parallel_config(backend="dask")
            n_jobs = -1
        else:
            ctx = joblib.parallel_config(backend="loky", inner_max_num_threads=1)
            n_jobs = threads
        with ctx:
            results = joblib.Parallel(n_jobs=n_jobs, return_as="generator", pre_dispatch="n_jobs")(tasks())
            for i, (u, p) in enumerate(results):
                g0, g1 = spans[i]
                acc.u[:, g0:g1] = u
                acc.p[:, g0:g1] = p
                bar.update(1)


def compute_in_memory(X, raw, groups: Groups, *, threads, memory_budget, backend, de: bool,
                      continuity: bool, show_progress, check_scale: bool = False) -> Accumulators | None:
    """Both passes on an in-memory log1p matrix ``X`` (``raw``: its counts, or None).

    ``check_scale``: ``X`` is float values of a scale not yet known; pass A then also checks
    the values (:func:`pseudobulk_checked`) and returns None when ``X`` holds raw counts
    (the caller normalises and calls again); invalid values raise as
    :func:`transpert.data.detect_scale` does.
    """
    n_threads = resolve_threads(threads)
    if check_scale:
        acc, plan, X = pseudobulk_checked(X, groups, n_threads, pdex_means=de)
        if acc is None:
            return None
    else:
        X = canonical_csr(X)
        raw = canonical_csr(raw) if raw is not None else None
        acc = Accumulators.new(groups, X.shape[1], raw is not None,
                               pdex_means=de and X.dtype == np.float32)
        with numba_threads(n_threads) as n_parts:
            plan = accumulate_pseudobulk(acc, X, groups.codes, raw, n_parts)
    acc.info["passes"] = 1
    if not de:
        return acc
    fmt = KeyFormat.for_dtype(X.dtype)
    budget = parse_memory(memory_budget)
    max_entries = max(1, budget // 4 // (2 * fmt.entry_bytes))
    blocks = plan_blocks(acc.nonzero.sum(axis=0), max_entries)
    acc.info["gene_blocks"] = len(blocks)
    # numba threads rank a block before the next is gathered, so one buffer serves them all;
    # joblib/dask workers may still hold a block when the next one is gathered
    gatherer = RowBlockGatherer(X, groups.codes, plan, acc.nonzero, fmt, reuse=backend == "threads")

    def block_iter():
        for g0, g1 in blocks:
            with numba_threads(n_threads):
                keys, codes, gene_ptr = gatherer.block(g0, g1)
            yield g0, g1, keys, codes, gene_ptr

    run_blocks(acc, block_iter(), len(blocks), fmt, n_threads, backend, continuity, show_progress)
    return acc


def pseudobulk_checked(X, groups: Groups, n_threads: int, pdex_means: bool = True):
    """Pass A on float values of unknown scale, checking them in the same read.

    One read of every stored value gives the pseudo-bulk (as if ``X`` were log1p), the facts
    scale detection needs and the canonical-CSR check, instead of three passes. Returns
    ``(acc, plan, X)`` for log1p values (``X`` canonical, copied only if it was not), or
    ``(None, None, None)`` for raw counts. When a value is outside [0, 15) (NaN, infinite,
    negative, or counts/mixed scales) the verdict is left to :func:`transpert.data.detect_scale`
    on the original matrix, so errors and results are exactly those of the separate check.
    """
    from transpert.data import detect_scale
    from transpert.data.schema import FRACTION_EPS, LOG1P_MAX
    from transpert.kernels import plan_row_parts, pseudobulk_checked_csr

    original = X
    C = X.tocsr() if sp.issparse(X) else sp.csr_matrix(np.asarray(X))
    if C.dtype not in (np.float32, np.float64):
        raise TranspertInputError(f"expression values must be float32 or float64, got {C.dtype}")
    pdex_means = pdex_means and C.dtype == np.float32
    acc = Accumulators.new(groups, C.shape[1], False, pdex_means)
    codes = groups.codes
    with numba_threads(n_threads) as n_parts:
        plan = plan_row_parts(codes, C.indptr, len(groups.labels), n_parts)
        n_out, n_frac, n_unsorted, n_bad_rows = pseudobulk_checked_csr(
            C.data, C.indices, C.indptr, codes, plan[1], plan[2], np.flatnonzero(codes < 0),
            acc.sums, acc.nonzero, scale32(groups), acc.sums32_arg,
            C.dtype.type(FRACTION_EPS), C.dtype.type(LOG1P_MAX))
    raise_bad_indices(n_bad_rows, C.shape[1])
    if n_out == 0 and n_frac:
        # in range and not counts: the rows must agree on the scale (one parallel pass, no copy)
        from transpert.data._row_scale import check_rows_agree, row_evidence

        check_rows_agree(row_evidence(C), "AnnData")
    scale = ("counts" if n_frac == 0 else "log1p") if n_out == 0 else detect_scale(original)
    if scale == "counts":
        return None, None, None
    if n_unsorted:
        # duplicates or unsorted rows: the sums above are not those of the canonical matrix
        C = canonical_csr(C)
        acc = Accumulators.new(groups, C.shape[1], False, pdex_means)
        with numba_threads(n_threads) as n_parts:
            plan = accumulate_pseudobulk(acc, C, codes, None, n_parts)
    return acc, plan, C


def streamed_chunk_rows(cells, chunk_rows: int | None, budget: int) -> int:
    """Rows per chunk of the streamed passes: ``chunk_rows``, or the data layer's default
    (~16M entries, ~0.4 GB with their copies here, at a 2 GB budget) scaled to the budget."""
    if chunk_rows is not None:
        return int(chunk_rows)
    return int(max(64, cells.default_chunk_rows() * min(1.0, budget / DEFAULT_MEMORY_BUDGET)))


def compute_streamed(cells, groups: Groups, *, threads, memory_budget, backend, de: bool,
                     continuity: bool, show_progress, chunk_rows=None, scratch_dir=None,
                     pass_a: Accumulators | None = None, keep_float64: bool = False) -> Accumulators:
    """Both passes streamed from a :class:`transpert.data.CellSource` (bounded memory).

    ``pass_a``: pass A's accumulators when the caller already made them (a float32 file of
    undeclared scale read as log1p with its values checked in the same read:
    :func:`transpert.summarize._checked_stream.pseudobulk_checked_stream`, which must use the
    same ``chunk_rows``, see :func:`streamed_chunk_rows`); else pass A runs here.
    ``keep_float64``: a float64 file is normalised and ranked in float64 (as scanpy and the
    reference scorers do) instead of float32."""
    from transpert.kernels import count_csr_block, regroup_segments, scatter_csr_block

    n_threads = resolve_threads(threads)
    budget = parse_memory(memory_budget)
    chunk_rows = streamed_chunk_rows(cells, chunk_rows, budget)
    acc = pass_a
    counts_input = cells.scale == "counts"
    dtype = cells.log1p_dtype(keep_float64)  # float32 unless a float64 file keeps its precision

    def chunks(with_counts: bool):
        """Log1p chunks, and the stored counts of the same read when the input is counts and
        ``with_counts`` (the pseudo-bulk's count sums); every chunk is read from the file once.
        Pass B's chunks are pass A's again: when pass A found them all canonical they are not
        checked again (a pass over every column index)."""
        check = with_counts or not acc.info.get("canonical_chunks")
        if not (counts_input and with_counts):
            for start, stop, L in cells.iter_log1p_chunks(chunk_rows, show_progress=False,
                                                          keep_float64=keep_float64):
                yield start, stop, canonical_csr(L) if check else L, None
            return
        for start, stop, L, R in cells.iter_log1p_and_raw_chunks(chunk_rows, show_progress=False,
                                                                 keep_float64=keep_float64):
            yield start, stop, canonical_csr(L), canonical_csr(R)

    if acc is None:
        acc = Accumulators.new(groups, cells.n_vars, counts_input,
                               pdex_means=de and dtype == np.float32)
        with Progress(cells.n_obs, "pseudo-bulk", unit="cells", show=show_progress) as bar, \
                numba_threads(n_threads) as n_parts:
            for start, stop, L, R in chunks(with_counts=True):
                accumulate_pseudobulk(acc, L, groups.codes[start:stop], R, n_parts)
                bar.update(stop - start)
        acc.info.update(passes=1, chunk_rows=chunk_rows)
    if not de:
        return acc

    fmt = KeyFormat.for_dtype(dtype)
    entry_bytes = fmt.entry_bytes
    gene_nnz = acc.nonzero.sum(axis=0)
    max_entries = max(1, budget // 4 // (3 * entry_bytes))
    blocks = plan_blocks(gene_nnz, max_entries)
    block_sizes = [int(gene_nnz[g0:g1].sum()) for g0, g1 in blocks]
    in_memory = int(gene_nnz.sum()) * entry_bytes <= budget // STORE_FRACTION
    acc.info.update(gene_blocks=len(blocks), store="memory" if in_memory else "scratch file")
    with BlockStore(blocks, block_sizes, fmt.key_dtype, in_memory, scratch_dir, packed=fmt.packed) as store:
        with Progress(cells.n_obs, "gathering gene blocks", unit="cells", show=show_progress) as bar, \
                numba_threads(n_threads) as n_parts:
            for start, stop, L, _R in chunks(with_counts=False):
                rc = groups.codes[start:stop]
                bits = L.data.view(fmt.bits_dtype)
                counts = count_csr_block(bits, L.indices, L.indptr, rc, 0, acc.n_genes, True,
                                         fmt.sign, n_parts)
                per_gene = counts.sum(axis=0)
                ptr = np.concatenate([[0], np.cumsum(per_gene)]).astype(np.int64)
                keys, codes = fmt.empty_block(int(ptr[-1]))
                scatter_csr_block(bits, L.indices, L.indptr, rc, 0, acc.n_genes, True, fmt.sign,
                                  fmt.ones, counts, ptr[:-1].copy(), keys, codes)
                for b, (g0, g1) in enumerate(blocks):
                    store.write(b, keys[ptr[g0]:ptr[g1]], codes[ptr[g0]:ptr[g1]], per_gene[g0:g1])
                del keys, codes, L
                bar.update(stop - start)
        acc.info["passes"] = 2

        def block_iter():
            for b, (g0, g1) in enumerate(blocks):
                k_in, c_in, seg = store.read(b)
                keys = np.empty_like(k_in)
                codes = np.empty_like(c_in)
                gene_ptr = regroup_segments(k_in, c_in, seg, keys, codes)
                del k_in, c_in
                yield g0, g1, keys, codes, gene_ptr

        run_blocks(acc, block_iter(), len(blocks), fmt, n_threads, backend, continuity, show_progress)
    return acc
