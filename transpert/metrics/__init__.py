"""transpert.metrics: the metric arithmetic that both the model and the evaluation use.

The model's cross-validation (:mod:`transpert.transfer.scaling`) chooses its scales with the
same perturbation discrimination score that :mod:`transpert.evaluate` reports, so the score lives
here, below both. Inputs are deltas on the log1p scale (pseudo-bulk minus control pseudo-bulk);
nothing here reads files.
"""

from transpert.metrics.pds import (
    PDS_METRICS,
    discrimination_scores,
    distance_matrix,
    norm_matched_pds,
    pds_scale_curve,
    ranks_from_distances,
)

__all__ = [
    "PDS_METRICS",
    "discrimination_scores",
    "distance_matrix",
    "norm_matched_pds",
    "pds_scale_curve",
    "ranks_from_distances",
]
