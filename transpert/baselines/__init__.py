"""Baselines that every TransPert run is measured against, behind the shared predictor interface:
``fit(references: dict[str, summary], target_train: summary) -> self`` and
``predict(perturbations) -> AnnData``; the zero-shot ones (``zero-shot-*``) take the target's
control cells in place of ``target_train`` (obs = perturbations, var = target genes, layers ``mean``,
``delta``, ``log2fc``, optional ``deg_probability``; log1p scale).
"""

from __future__ import annotations

from ._base import Predictor, make_prediction
from ._deg_frequency import DegFrequencyBaseline
from ._linear import LinearBaseline, LinearTransferBaseline
from ._registry import BASELINES, get_baseline
from ._simple import CellMeanBaseline, ControlBaseline, ReferenceMeanBaseline, TrainMeanBaseline
from ._zero_shot import (ZeroShotControlBaseline, ZeroShotLinearBaseline, ZeroShotMeanResponseBaseline,
                         ZeroShotPredictor, ZeroShotReferenceMeanBaseline)

__all__ = [
    "BASELINES",
    "CellMeanBaseline",
    "ControlBaseline",
    "DegFrequencyBaseline",
    "LinearBaseline",
    "LinearTransferBaseline",
    "Predictor",
    "ReferenceMeanBaseline",
    "TrainMeanBaseline",
    "ZeroShotControlBaseline",
    "ZeroShotLinearBaseline",
    "ZeroShotMeanResponseBaseline",
    "ZeroShotPredictor",
    "ZeroShotReferenceMeanBaseline",
    "get_baseline",
    "make_prediction",
]
