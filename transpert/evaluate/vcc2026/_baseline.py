"""The mean-response baseline b of the vcc2026 score, as ``cell-eval2 baseline`` builds it.

The profile (raw-count scale): the equal-weight mean over the non-control perturbations of
their mean count vectors, each perturbation's own target gene left out of that gene's mean.
Cells are emitted per perturbation (sorted labels) by drawing control cells with replacement
(``numpy.random.default_rng(seed).integers``, one draw per perturbation of its cell count) and
scaling each gene by profile / control mean (0 where the control mean is 0), stored as float32
counts (fractional: the baseline is exempt from the integral-counts rule). The emitted groups
are scored as an ordinary submission; nothing is written to disk, one group is held at a time.
"""

from __future__ import annotations

import numpy as np

from transpert._errors import TranspertInputError
from transpert.evaluate.vcc2026._metrics import target_columns
from transpert.evaluate.vcc2026._stats import Side, summarize_groups
from transpert.kernels._vcc2026 import count_row_checks, group_sums_csr


def emission_scale(real) -> np.ndarray:
    """profile / control mean per gene (raw-count scale), 0 where the control mean is 0."""
    groups = list(real.side.groups)
    labels = real.labels
    genes = real.genes
    bulk = real.scanned.means[[groups.index(p) for p in labels]]
    if len(labels) < 2:
        raise TranspertInputError("the mean-response baseline needs at least 2 perturbations")
    total = bulk.sum(axis=0)
    count = np.full(genes.size, float(len(labels)))
    for i, j in target_columns(labels, genes).items():
        total[j] -= bulk[i, j]
        count[j] -= 1.0
    profile = total / count
    ctrl = real.scanned.means[groups.index(real.control_label)]
    zero = ctrl <= 0
    return np.where(zero, 0.0, profile / np.where(zero, 1.0, ctrl))


def _emitted(real, scale: np.ndarray, seed: int, sums: np.ndarray):
    groups = list(real.side.groups)
    ctrl_X = real.control.X
    rng = np.random.default_rng(seed)
    n = real.scanned.n_cells
    codes = [groups.index(p) for p in real.labels]
    draws = [rng.integers(0, ctrl_X.shape[0], size=int(n[c])) for c in codes]
    for code, idx in zip(codes, draws):
        X = ctrl_X[idx].copy()
        X.data = (X.data * scale[X.indices]).astype(np.float32)
        X.eliminate_zeros()
        lib = np.zeros(X.shape[0])
        count_row_checks(X.indptr, X.data, lib, np.zeros(X.shape[0], dtype=np.int64))
        group_sums_csr(X.indptr, X.indices, X.data, np.zeros(X.shape[0], dtype=np.int64),
                       sums[code:code + 1])
        yield code, X, lib


def baseline_side(real, seed: int = 0) -> Side:
    """The baseline prediction's summaries (profiles, jackknife, DE against the real control)."""
    sums = np.zeros_like(real.scanned.sums)
    cells = _emitted(real, emission_scale(real), seed, sums)
    side, _ = summarize_groups(real.side.groups, sums, cells, real.control_label, real.control)
    return side
