"""Save and load a fitted TransPert without pickle: a directory a person can read.

``<path>/model.json``: format version, the parameters, the line weights table, the scale curve
and the chosen scales, the DEG classifier (coefficients, standardisation), its held-out report
and calibration, the target's scalar statistics, and the names of the arrays.
``<path>/arrays.npz``: plain numeric/string arrays (no object arrays, loaded with
``allow_pickle=False``): the target's per-gene statistics and each reference line's aligned
effects (``ref<i>__delta`` ...). Both files are written atomically.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError
from transpert._io import atomic_path

FORMAT = "transpert.TransPert"
FORMAT_VERSION = 2


def _clean(x):
    """JSON-safe: numpy scalars to Python, NaN/inf to None."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _frame_to_json(df: pd.DataFrame) -> dict:
    return {"index_name": df.index.name, "index": _clean(list(df.index)),
            "columns": {c: _clean(df[c].tolist()) for c in df.columns}}


def _frame_from_json(d: dict) -> pd.DataFrame:
    cols = {c: [np.nan if v is None else v for v in vals] for c, vals in d["columns"].items()}
    return pd.DataFrame(cols, index=pd.Index(d["index"], name=d["index_name"]))


def model_dir(path) -> Path:
    """``path`` as a directory to save a model into (created; refused if it is a file)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise TranspertInputError(f"model path {str(path)!r} exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_model_dir(path: Path, meta: dict, arrays: dict) -> Path:
    """Write ``arrays.npz`` and ``model.json`` into ``path``, each atomically."""
    with atomic_path(path / "arrays.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    with atomic_path(path / "model.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1, allow_nan=False))
    return path


def read_model_dir(path, fmt: str, version: int, what: str) -> tuple[dict, dict]:
    """(meta, arrays) of a directory written by :func:`write_model_dir`; a clear error when a
    file is missing, the JSON is unreadable, or the format or its version is not ``fmt`` /
    ``version`` (``what`` names the model in messages)."""
    path = Path(path)
    meta_file, array_file = path / "model.json", path / "arrays.npz"
    for f in (meta_file, array_file):
        if not f.is_file():
            raise TranspertInputError(f"{str(path)!r} is not a saved {what} model: {f.name} is missing")
    try:
        meta = json.loads(meta_file.read_text())
    except json.JSONDecodeError as exc:
        raise TranspertInputError(f"{str(meta_file)!r}: not valid JSON ({exc})") from None
    if meta.get("format") != fmt or meta.get("format_version") != version:
        raise TranspertInputError(
            f"{str(meta_file)!r}: format {meta.get('format')!r} version {meta.get('format_version')!r}; "
            f"this transpert reads {fmt!r} version {version}")
    with np.load(array_file, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return meta, arrays


def save_model(model, path) -> Path:
    """Write ``model`` (a fitted TransPert) to the directory ``path``."""
    path = model_dir(path)
    arrays = {f"target__{k}": v for k, v in model.target_.to_arrays().items()}
    for i, line in enumerate(model.lines_):
        arrays.update({f"ref{i}__{k}": v for k, v in line.to_arrays().items()})
    arrays["gene_slopes"] = model.gene_slopes_
    arrays["low_rank_basis"] = model.low_rank_basis_
    arrays["low_rank_map"] = model.low_rank_map_
    arrays["folds"] = np.concatenate([np.full(len(f), k) for k, f in enumerate(model.folds_)])
    arrays["fold_rows"] = np.concatenate(model.folds_)
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "params": _clean(model.get_params()),
        "lines": [line.name for line in model.lines_],
        "train_perturbations": list(map(str, model.train_perturbations_)),
        "target": _clean(model.target_.meta()),
        "weights": _frame_to_json(model.weights_),
        "scale_curve": _frame_to_json(model.scale_curve_),
        "gene_slope_global": model.gene_slope_global_,
        "stack_weights": model.stack_weights_,
        "common_scale": model.common_scale_, "specific_scale": model.specific_scale_,
        "deg_classifier": _clean(model.deg_classifier_.to_dict()),
        "deg_report": _clean(model.deg_report_),
        "deg_calibration": _frame_to_json(model.deg_calibration_),
        "deg_threshold": model.deg_threshold_, "deg_source": model.deg_source_,
        "deg_threshold_curve": _frame_to_json(model.deg_threshold_curve_),
        "n_features_in": model.n_features_in_,
    }
    return write_model_dir(path, meta, arrays)


def load_model(cls, path):
    """Read a model directory written by :func:`save_model`."""
    from transpert.transfer.deg_classifier import DEGClassifier
    from transpert.transfer.reference import ReferenceLine
    from transpert.transfer.target import TargetStats

    meta, arrays = read_model_dir(path, FORMAT, FORMAT_VERSION, "TransPert")
    model = cls(**meta["params"])
    tmeta = dict(meta["target"])
    if tmeta["knockdown_ratio"] is None:
        tmeta["knockdown_ratio"] = np.nan
    model.target_ = TargetStats.from_arrays(
        {k.split("__", 1)[1]: v for k, v in arrays.items() if k.startswith("target__")}, tmeta)
    model.lines_ = [
        ReferenceLine.from_arrays(name, {k.split("__", 1)[1]: v for k, v in arrays.items()
                                         if k.startswith(f"ref{i}__")})
        for i, name in enumerate(meta["lines"])]
    folds, rows = arrays["folds"], arrays["fold_rows"]
    model.folds_ = [np.sort(rows[folds == k]) for k in range(int(folds.max()) + 1)]
    model.train_perturbations_ = pd.Index(meta["train_perturbations"])
    model.genes_ = model.target_.genes
    model.weights_ = _frame_from_json(meta["weights"])
    model.scale_curve_ = _frame_from_json(meta["scale_curve"])
    model.gene_slopes_ = arrays["gene_slopes"]
    model.gene_slope_global_ = float(meta["gene_slope_global"])
    model.low_rank_basis_ = arrays["low_rank_basis"]
    model.low_rank_map_ = arrays["low_rank_map"]
    model.stack_weights_ = {k: float(v) for k, v in meta["stack_weights"].items()}
    model.common_scale_ = float(meta["common_scale"])
    model.specific_scale_ = float(meta["specific_scale"])
    model.deg_classifier_ = DEGClassifier.from_dict(meta["deg_classifier"])
    model.deg_report_ = {k: (np.nan if v is None else v) for k, v in meta["deg_report"].items()}
    model.deg_calibration_ = _frame_from_json(meta["deg_calibration"])
    model.deg_threshold_ = float(meta["deg_threshold"])
    model.deg_source_ = str(meta["deg_source"])
    model.deg_threshold_curve_ = _frame_from_json(meta["deg_threshold_curve"])
    model.n_features_in_ = int(meta["n_features_in"])
    return model
