"""Reading a vcc2026 input: cell-eval2's validation and the row-chunk passes over a file.

Input: an h5ad path or AnnData of raw counts, labels in ``obs[pert_col]``. The preset refuses a
matrix with a negative, non-finite or non-integral value, or a cell whose total exceeds 1e6
(``max_counts_per_cell``); a pair must share the gene axis (same names, same order) and the
perturbation labels, control included. Nothing is densified: :func:`scan_counts` reads the
labels; :func:`iter_groups` reads the file once in row chunks, checks each block's values, sums
it into the cell totals and group sums, and hands over each group's rows (raw counts, file
order) as soon as the group is complete, so memory holds one group at a time when a file is
grouped by perturbation (the usual layout) and at most the not-yet-complete groups otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from transpert._errors import TranspertInputError
from transpert._progress import Progress
from transpert.evaluate._inputs import Opened, open_input
from transpert.evaluate.vcc2026._config import MAX_COUNTS_PER_CELL
from transpert.kernels._vcc2026 import scan_rows


@dataclass
class Scanned:
    """What the first pass learns: groups (sorted labels), each cell's group code and total
    count, the (group, gene) sums of counts and the plain (group, gene) means of counts
    (float64, scipy's sparse mean: the mean-response baseline's input)."""

    opened: Opened
    groups: np.ndarray
    codes: np.ndarray
    n_cells: np.ndarray
    lib: np.ndarray
    sums: np.ndarray
    means: np.ndarray
    unscanned: bool = False  # values not read yet: iter_groups checks and sums them

    @property
    def name(self) -> str:
        return self.opened.cells.name

    @property
    def genes(self) -> np.ndarray:
        return np.asarray(self.opened.cells.var_names, dtype=str)


def open_counts(source, which: str, pert_col: str, control: str) -> Opened:
    """Open a raw-count file for streaming and check its gene names are unique."""
    opened = open_input(source, which, pert_col, control)
    genes = opened.cells.var_names
    if genes.has_duplicates:
        dup = genes[genes.duplicated()][0]
        opened.close()
        raise TranspertInputError(f"{opened.cells.name}: gene {dup!r} appears more than once in "
                                  "var_names; the vcc2026 suite needs unique gene names")
    if control not in set(opened.cells.labels):
        opened.close()
        raise TranspertInputError(f"{opened.cells.name}: no cell carries the control label "
                                  f"{control!r}")
    return opened


def scan_counts(opened: Opened) -> Scanned:
    """What the labels say of a raw-count file (groups, codes, cells per group), with empty
    cell totals and group sums: :func:`iter_groups`'s pass checks the values and fills them,
    block by block before handing groups over, so the file is read once."""
    labels = opened.cells.labels
    groups, codes = np.unique(labels, return_inverse=True)
    codes = codes.astype(np.int64)
    n_genes = len(opened.cells.var_names)
    n_cells = np.bincount(codes, minlength=groups.size)
    scanned = Scanned(opened, groups, codes, n_cells, np.zeros(labels.size),
                      np.zeros((groups.size, n_genes)), np.zeros((groups.size, n_genes)))
    scanned.unscanned = True
    return scanned


def _scan_block(scanned: Scanned, start: int, stop: int, block: sp.csr_matrix) -> None:
    """Checks, cell totals and group sums of rows [start, stop)."""
    lib = scanned.lib
    name = scanned.name
    bad = np.zeros(stop - start, dtype=np.int64)
    codes = scanned.codes[start:stop]
    # checks, totals and group sums in one read (a bad block raises below; its sums are moot)
    scan_rows(block.indptr, block.indices, block.data, codes, 1.0 / scanned.n_cells,
              lib[start:stop], bad, scanned.sums, scanned.means)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        if bad[i] & 8:
            raise TranspertInputError(
                f"{name}: cell {start + i} has a column index outside the file's "
                f"{scanned.sums.shape[1]} genes; the matrix is corrupt")
        what = ("a negative value" if bad[i] & 1 else "a NaN or infinite value" if bad[i] & 2
                else "a non-integral value")
        raise TranspertInputError(
            f"{name}: cell {start + i} holds {what}; the vcc2026 suite scores raw counts "
            "(non-negative integers)")
    over = np.flatnonzero(lib[start:stop] > MAX_COUNTS_PER_CELL)
    if over.size:
        i = int(over[0])
        raise TranspertInputError(
            f"{name}: cell {start + i} has {lib[start + i]:.0f} counts, above the vcc2026 "
            f"limit of {MAX_COUNTS_PER_CELL:.0f} per cell")


def check_pair(real: Scanned, pred: Scanned) -> None:
    """The pair's gene axes equal (names and order) and its perturbation labels the same."""
    if not np.array_equal(real.genes, pred.genes):
        if set(real.genes) == set(pred.genes):
            raise TranspertInputError(f"{pred.name}: genes are those of {real.name} in another "
                                      "order; reorder var_names to the real file's order")
        raise TranspertInputError(f"{pred.name}: var_names differ from {real.name}'s gene axis "
                                  f"({len(pred.genes)} vs {len(real.genes)} genes)")
    if not np.array_equal(real.groups, pred.groups):
        missing = sorted(set(real.groups) - set(pred.groups))
        extra = sorted(set(pred.groups) - set(real.groups))
        raise TranspertInputError(
            f"{pred.name}: perturbation labels differ from {real.name}'s (missing {missing[:5]}, "
            f"extra {extra[:5]}); the vcc2026 suite scores the same panel on both sides")


def iter_groups(scanned: Scanned, wanted: np.ndarray, chunk_rows: int | None = None,
                first: int | None = None, last: int | None = None
                ) -> Iterator[tuple[int, sp.csr_matrix, np.ndarray]]:
    """Pass over the file yielding ``(group code, CSR counts, cell totals)`` for every group
    with ``wanted[code]``, each once complete, rows in file order. The first pass over a file
    also checks its values and fills the cell totals and group sums (of every group), each
    block before any group it completes is handed over (a group's sums are whole when it is
    yielded). A file whose groups each lie in one run of rows (the usual layout) is read group
    by group, each in one piece (no row-chunk copies to cut and join), the group ``first``
    before the others and ``last`` after them when given (e.g. the real control first, which
    every test needs; a prediction's control last, whose reading then overlaps the others'
    work); ``chunk_rows`` given, or groups split over several runs: in row chunks, file order."""
    runs = group_runs(scanned.codes)
    if chunk_rows is None and np.unique(runs[:, 0]).size == runs.shape[0]:
        rank = np.ones(runs.shape[0], dtype=np.int64)
        rank[runs[:, 0] == first] = 0
        rank[runs[:, 0] == last] = 2
        yield from _iter_runs(scanned, wanted, runs[np.argsort(rank, kind="stable")])
        return
    need = np.where(wanted, scanned.n_cells, 0)
    pending: dict[int, list] = {}
    codes = scanned.codes
    scan = scanned.unscanned
    for start, stop, block in scanned.opened.source.iter_chunks(chunk_rows):
        block = sp.csr_matrix(block)
        if scan:
            _scan_block(scanned, start, stop, block)
        c = codes[start:stop]
        for code in np.unique(c):
            if not wanted[code]:
                continue
            rows = np.flatnonzero(c == code)
            pending.setdefault(int(code), []).append((block[rows], scanned.lib[start + rows]))
            need[code] -= rows.size
            if need[code] == 0:
                parts = pending.pop(int(code))
                X = parts[0][0] if len(parts) == 1 else sp.vstack([p[0] for p in parts], "csr")
                lib = np.concatenate([p[1] for p in parts])
                del parts  # the pieces go before the group is used (the control: 2 copies)
                yield int(code), X, lib
    scanned.unscanned = False


def group_runs(codes: np.ndarray) -> np.ndarray:
    """Maximal runs of equal group codes: rows ``(code, start, stop)`` (int64), in row order."""
    if codes.size == 0:
        return np.zeros((0, 3), dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(codes[1:] != codes[:-1]) + 1]
    stops = np.r_[starts[1:], codes.size]
    return np.stack([codes[starts], starts, stops], axis=1).astype(np.int64)


def _iter_runs(scanned: Scanned, wanted: np.ndarray, runs: np.ndarray
               ) -> Iterator[tuple[int, sp.csr_matrix, np.ndarray]]:
    """:func:`iter_groups` for a file whose groups each lie in one run of rows (``runs``, in
    the order to read them): each group read in one piece, checked and summed (the first
    pass), and handed over when wanted."""
    scan = scanned.unscanned
    source = scanned.opened.source
    with Progress(source.n_obs, f"reading {source.name}", unit="cells",
                  show=source.show_progress) as progress:
        step = source.default_chunk_rows()
        for code, start, stop in runs:
            if wanted[code]:
                X = sp.csr_matrix(source.read_cells(int(start), int(stop)))
                if scan:
                    _scan_block(scanned, int(start), int(stop), X)
                yield int(code), X, scanned.lib[start:stop].copy()
            elif scan:  # read only for its checks and sums: in row chunks, never whole
                for a in range(int(start), int(stop), step):
                    b = min(a + step, int(stop))
                    _scan_block(scanned, a, b, sp.csr_matrix(source.read_cells(a, b)))
            progress.update(int(stop - start))
    scanned.unscanned = False
