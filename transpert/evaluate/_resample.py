"""The bootstrap's resampling draws, shared by every suite's intervals (a module of its own so
that the vcc2026 suite's intervals do not import the log1p suites' metrics and scipy.stats)."""

from __future__ import annotations

import numpy as np

from transpert._errors import TranspertInputError


def resample_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``n_boot`` draws of ``n`` row indices in [0, n) with replacement (``n_boot x n``),
    from ``numpy.random.default_rng(seed)``."""
    if n_boot < 1:
        raise TranspertInputError(f"n_boot must be >= 1, got {n_boot}")
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
