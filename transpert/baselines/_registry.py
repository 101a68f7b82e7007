"""Baselines by name (the names the CLI's ``--method`` accepts)."""

from __future__ import annotations

from transpert._errors import TranspertInputError

from ._deg_frequency import DegFrequencyBaseline
from ._linear import LinearBaseline, LinearTransferBaseline
from ._zero_shot import ZERO_SHOT_BASELINES
from ._simple import CellMeanBaseline, ControlBaseline, ReferenceMeanBaseline, TrainMeanBaseline

#: name -> predictor class; every class follows fit(references, target_train) / predict(perturbations).
BASELINES = {
    cls.name: cls
    for cls in (ControlBaseline, CellMeanBaseline, TrainMeanBaseline, ReferenceMeanBaseline,
                LinearBaseline, LinearTransferBaseline, DegFrequencyBaseline, *ZERO_SHOT_BASELINES)
}


def get_baseline(name: str, **params):
    """A new, unfitted baseline ``name`` with ``params``; unknown names list the known ones."""
    try:
        cls = BASELINES[name]
    except KeyError:
        raise TranspertInputError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}") from None
    return cls(**params)
