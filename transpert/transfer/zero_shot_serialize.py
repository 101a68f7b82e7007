"""Save and load a fitted zero-shot TransPert without pickle, laid out as the few-shot model's.

``<path>/model.json``: format ``transpert.ZeroShotTransPert`` and its version, the parameters
(a criterion given as a callable is not saved: it is only used by ``fit``, so it is written as
null with its name in ``criterion_name``), the chosen temperature, shrinkage, scales, DEG
threshold and source, the lines' median knockdown ratio, the DEG classifier (coefficients,
standardisation), the tables (line weights, leave-one-line-out curve, threshold curve, per-line
criterion, weight check) and the target's control description. ``<path>/arrays.npz``: the
target's genes, log1p control means and fractions expressing, and each reference line's aligned
effects (``ref<i>__delta`` ...), loaded with ``allow_pickle=False``. Both files are written
atomically. Predictions of a loaded model are identical to the saved one's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from transpert.transfer.serialize import (
    _clean,
    _frame_from_json,
    _frame_to_json,
    model_dir,
    read_model_dir,
    write_model_dir,
)

FORMAT = "transpert.ZeroShotTransPert"
FORMAT_VERSION = 1
_TABLES = ("weights_", "cv_curve_", "deg_threshold_curve_", "lolo_", "weight_check_")
_SCALARS = ("temperature_", "common_scale_", "specific_scale_", "deg_threshold_", "knockdown_ratio_")


def saved_format(path) -> str | None:
    """The ``format`` written in ``<path>/model.json`` (None when there is no readable one)."""
    try:
        return json.loads((Path(path) / "model.json").read_text()).get("format")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def save_zero_shot(model, path) -> Path:
    """Write ``model`` (a fitted :class:`~transpert.transfer.ZeroShotTransPert`) to directory ``path``."""
    path = model_dir(path)
    t = model.target_
    arrays = {"target__genes": np.asarray(t.genes, dtype=str), "target__control_mean": t.control_mean,
              "target__control_frac": t.control_frac}
    for i, line in enumerate(model.lines_):
        arrays.update({f"ref{i}__{k}": v for k, v in line.to_arrays().items()})
    params = model.get_params()
    crit = params.get("criterion")
    params["criterion"] = crit if crit is None or isinstance(crit, str) else None
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "params": _clean(params),
        "criterion_name": crit if crit is None or isinstance(crit, str) else getattr(crit, "__name__", repr(crit)),
        "lines": [line.name for line in model.lines_],
        "target": {"n_cells": int(t.n_cells), "source": t.source},
        **{k.rstrip("_"): _clean(float(getattr(model, k))) for k in _SCALARS},
        "shrinkage": model.shrinkage_, "deg_source": model.deg_source_, "n_groups": int(model.n_groups_),
        "deg_classifier": None if model.deg_classifier_ is None else _clean(model.deg_classifier_.to_dict()),
        "tables": {k.rstrip("_"): None if getattr(model, k) is None else _frame_to_json(getattr(model, k))
                   for k in _TABLES},
    }
    return write_model_dir(path, meta, arrays)


def load_zero_shot(cls, path):
    """Read a model directory written by :func:`save_zero_shot`."""
    from transpert.transfer.deg_classifier import DEGClassifier
    from transpert.transfer.reference import ReferenceLine
    from transpert.transfer.zero_shot_target import ControlProfile

    meta, arrays = read_model_dir(path, FORMAT, FORMAT_VERSION, "zero-shot TransPert")
    params = dict(meta["params"])
    for k in ("temperatures", "common_scales", "specific_scales", "deg_thresholds", "shrinkages"):
        if params.get(k) is not None:  # JSON has no inf: null is the equal-weight temperature
            params[k] = tuple(float("inf") if v is None else v for v in params[k])
    model = cls(**params)
    genes = pd.Index(arrays["target__genes"].astype(str))
    model.target_ = ControlProfile(genes=genes, control_mean=arrays["target__control_mean"],
                                   control_frac=arrays["target__control_frac"],
                                   n_cells=int(meta["target"]["n_cells"]), source=str(meta["target"]["source"]))
    model.lines_ = [ReferenceLine.from_arrays(name, {k.split("__", 1)[1]: v for k, v in arrays.items()
                                                     if k.startswith(f"ref{i}__")})
                    for i, name in enumerate(meta["lines"])]
    for k in _SCALARS:
        v = meta[k.rstrip("_")]
        setattr(model, k, float("inf") if v is None and k == "temperature_" else np.nan if v is None else float(v))
    model.shrinkage_, model.deg_source_ = str(meta["shrinkage"]), str(meta["deg_source"])
    model.n_groups_ = int(meta["n_groups"])
    model.deg_classifier_ = None if meta["deg_classifier"] is None else DEGClassifier.from_dict(meta["deg_classifier"])
    for k in _TABLES:
        d = meta["tables"][k.rstrip("_")]
        table = None if d is None else _frame_from_json(d)
        if table is not None and "temperature" in table:  # JSON has no inf: null is equal weights
            table["temperature"] = table["temperature"].fillna(float("inf"))
        setattr(model, k, table)
    model.genes_ = genes
    return model
