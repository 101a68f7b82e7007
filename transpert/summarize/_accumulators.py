"""The summaries engine's accumulators: what the pseudo-bulk and rank-sum passes fill, per group
and gene, and the small checks every pass shares (canonical CSR, column indices in range, the
float32 scale of pdex's means).

Values are on the log1p scale (``sums``, ``sums32``), raw counts for ``raw_sums``; ``u`` / ``p``
are the rank-sum statistics of each group against the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from transpert._errors import TranspertInputError
from transpert.summarize._groups import Groups


@dataclass
class Accumulators:
    """Raw results of the two passes, indexed by group code (rows) and gene (columns)."""

    groups: Groups
    n_genes: int
    sums: np.ndarray
    nonzero: np.ndarray
    sums32: np.ndarray
    raw_sums: np.ndarray | None = None
    u: np.ndarray | None = None
    p: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @classmethod
    def new(cls, groups: Groups, n_genes: int, raw: bool, pdex_means: bool = True) -> "Accumulators":
        """``pdex_means``: also accumulate the float32 means pdex builds its fold changes from
        (only the DE table of float32 values uses them; otherwise that third accumulator is
        skipped)."""
        g = len(groups.labels)
        return cls(groups, n_genes, np.zeros((g, n_genes)), np.zeros((g, n_genes), np.int64),
                   np.zeros((g, n_genes), np.float32) if pdex_means else None,
                   np.zeros((g, n_genes)) if raw else None)

    @property
    def sums32_arg(self) -> np.ndarray:
        """The float32 accumulator as the kernels take it: an empty array means skip it."""
        return np.zeros((0, 0), np.float32) if self.sums32 is None else self.sums32


def raise_bad_indices(n_rows: int, n_genes: int) -> None:
    if n_rows:
        raise TranspertInputError(
            f"malformed sparse matrix: {n_rows} row(s) hold a column index outside [0, {n_genes})"
        )


def canonical_csr(X) -> sp.csr_matrix:
    """CSR with sorted, duplicate-free indices, copying only when needed (input never modified)."""
    if sp.issparse(X):
        from transpert.kernels import rows_strictly_sorted

        X = X.tocsr() if X.format != "csr" else X
        # not X.has_canonical_format: with int64 indptr and int32 indices (how anndata reads
        # h5ad files) scipy's check copies the indices as int64 (+4.8 GB at VCC size)
        if not rows_strictly_sorted(X.indptr, X.indices):
            X = X.copy()
            X.sum_duplicates()
        return X
    return sp.csr_matrix(np.asarray(X))


def scale32(groups: Groups) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return (1.0 / np.maximum(groups.n_cells, 1)).astype(np.float32)
