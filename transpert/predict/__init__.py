"""Challenge-format predictions: expand a pseudo-bulk prediction to cells, log1p float32 CSR
(2025 format) or integer raw counts (``format="counts"``, 2026 format).

- :func:`write_prediction`: the file (streamed, one perturbation at a time).
- :func:`predicted_pseudobulk`: the pseudo-bulk a raw-count file reproduces for a prediction,
  ``log1p(50,000 x fraction)`` per gene; :func:`pseudobulk_of_counts` recomputes it from
  written cells (both as cell-eval2's ``vcc2026`` reads counts).
"""

from __future__ import annotations

from ._counts import BULK_TARGET_SUM, predicted_pseudobulk, pseudobulk_of_counts
from ._cells import build_prediction_cells
from ._writer import CHALLENGE_MAX_CELLS, FORMATS, write_prediction

__all__ = ["BULK_TARGET_SUM", "CHALLENGE_MAX_CELLS", "FORMATS", "build_prediction_cells",
           "predicted_pseudobulk", "pseudobulk_of_counts", "write_prediction"]
