"""transpert.evaluate: the Virtual Cell Challenge metrics exactly as cell-eval 0.8.2 computes them.

Everything here works on the log1p scale (median-library-size normalised counts, natural
log1p); raw-count inputs are normalised per file on the way in, as cell-eval does.
"""

from transpert.evaluate._pds import (
    discrimination_scores,
    distance_matrix,
    norm_matched_pds,
    pds_scale_curve,
)

__all__ = [
    "discrimination_scores",
    "distance_matrix",
    "norm_matched_pds",
    "pds_scale_curve",
]
