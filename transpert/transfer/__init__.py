"""transpert.transfer: the TransPert model (statistical transfer of perturbation effects).

Everything works on summary profiles (:mod:`transpert.summarize`) on the log1p scale.

- :class:`TransPert`: the estimator (``fit(references, target_train)``, ``predict(perturbations)``,
  ``save``/``load``), with inspectable ``weights_``, ``scale_curve_``, ``deg_report_``,
  ``deg_calibration_``, ``deg_threshold_curve_`` (with the chosen ``deg_source_``: classifier or
  training DEG frequency).
- :func:`line_weights`: similarity weights between reference lines and the target.
- :func:`aggregate`: similarity-weighted combination of reference effects.
- :class:`DEGClassifier`: penalised logistic regression for "gene significant in the target".
- :func:`select_scale`: the cross-validated global scaling.
- :func:`select_deg_threshold`: the DEG-call threshold, chosen by cross-validated DES.
- :class:`ZeroShotTransPert`: the target known by its control cells only
  (``fit(references, target_controls)``), everything chosen by leave-one-line-out over the
  reference lines; :func:`profile_criterion`, its default summary-level criterion.
- :func:`common_effect`: the target's typical training effect (per-gene median or mean), shrunk by its standard error.
"""

from transpert.transfer.aggregate import Aggregate, aggregate
from transpert.transfer.deg_call import select_deg_threshold
from transpert.transfer.deg_classifier import (FEATURES, DEGClassifier, average_precision,
                                               calibration_table, deg_features)
from transpert.transfer.estimator import TransPert
from transpert.transfer.reference import ReferenceLine
from transpert.transfer.scaling import select_scale
from transpert.transfer.similarity import line_weights
from transpert.transfer.target import common_effect
from transpert.transfer.zero_shot import ZeroShotTransPert
from transpert.transfer.zero_shot_criterion import profile_criterion
from transpert.transfer.zero_shot_target import control_profile, only_controls

__all__ = [
    "Aggregate",
    "DEGClassifier",
    "FEATURES",
    "ReferenceLine",
    "TransPert",
    "ZeroShotTransPert",
    "aggregate",
    "average_precision",
    "calibration_table",
    "common_effect",
    "control_profile",
    "deg_features",
    "line_weights",
    "only_controls",
    "profile_criterion",
    "select_deg_threshold",
    "select_scale",
]
