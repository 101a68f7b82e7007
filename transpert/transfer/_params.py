"""Checks of TransPert's constructor parameters, run at the start of ``fit`` (scikit-learn
convention: ``__init__`` stores, ``fit`` validates)."""

from __future__ import annotations

import numpy as np

from transpert._errors import TranspertInputError
from transpert.transfer.aggregate import SHRINKAGE
from transpert.transfer.target import COMMON_CENTERS

SCALE_COMPONENTS = ("both", "specific")
DEG_MAGNITUDES = ("auto", "floor", "model")
SCALE_PDS = ("fold", "pooled")
#: what the DEG call can be based on (``deg_sources``)
DEG_SOURCES = ("classifier", "frequency")


def check_params(model) -> None:
    """Raise :class:`TranspertInputError` naming the first TransPert parameter out of its range."""
    if model.scale_components not in SCALE_COMPONENTS:
        raise TranspertInputError(
            f"scale_components must be one of {SCALE_COMPONENTS}, got {model.scale_components!r}")
    if not (isinstance(model.common_shrinkage, (int, float)) and np.isfinite(model.common_shrinkage)
            and model.common_shrinkage >= 0):
        raise TranspertInputError(
            f"common_shrinkage must be a number >= 0, got {model.common_shrinkage!r}")
    sources = [model.deg_sources] if isinstance(model.deg_sources, str) else list(model.deg_sources)
    if not sources or any(src not in DEG_SOURCES for src in sources):
        raise TranspertInputError(
            f"deg_sources must be a non-empty list of {DEG_SOURCES}, got {model.deg_sources!r}")
    if model.common_center not in COMMON_CENTERS:
        raise TranspertInputError(
            f"common_center must be one of {COMMON_CENTERS}, got {model.common_center!r}")
    if model.scale_pds not in SCALE_PDS:
        raise TranspertInputError(f"scale_pds must be one of {SCALE_PDS}, got {model.scale_pds!r}")
    if model.deg_magnitude not in DEG_MAGNITUDES:
        raise TranspertInputError(
            f"deg_magnitude must be one of {DEG_MAGNITUDES}, got {model.deg_magnitude!r}")

    if model.shrinkage not in SHRINKAGE:
        raise TranspertInputError(f"shrinkage must be one of {SHRINKAGE}, got {model.shrinkage!r}")
    if not isinstance(model.low_rank, int) or model.low_rank < 0:
        raise TranspertInputError(f"low_rank must be an integer >= 0, got {model.low_rank!r}")
    if not (model.low_rank_ridge >= 0):
        raise TranspertInputError(f"low_rank_ridge must be >= 0, got {model.low_rank_ridge!r}")
    if not (model.gene_slope_penalty >= 0):
        raise TranspertInputError(
            f"gene_slope_penalty must be >= 0, got {model.gene_slope_penalty!r}")
    if not (0 < model.fdr_threshold < 1):
        raise TranspertInputError(f"fdr_threshold must be in (0, 1), got {model.fdr_threshold!r}")
    if not isinstance(model.cv_folds, int) or model.cv_folds < 2:
        raise TranspertInputError(f"cv_folds must be an integer >= 2, got {model.cv_folds!r}")
    if not isinstance(model.cv_repeats, int) or model.cv_repeats < 1:
        raise TranspertInputError(f"cv_repeats must be an integer >= 1, got {model.cv_repeats!r}")
    if not isinstance(model.min_shared, int) or model.min_shared < 1:
        raise TranspertInputError(f"min_shared must be an integer >= 1, got {model.min_shared!r}")
