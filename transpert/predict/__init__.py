"""Challenge-format predictions: expand a pseudo-bulk prediction to cells (log1p, float32 CSR)."""

from __future__ import annotations

from ._writer import CHALLENGE_MAX_CELLS, build_prediction_cells, write_prediction

__all__ = ["CHALLENGE_MAX_CELLS", "build_prediction_cells", "write_prediction"]
