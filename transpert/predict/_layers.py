"""What both prediction writers read from a pseudo-bulk prediction: its layers in the output's
gene order, and which genes it calls DE (the rule is described in :mod:`transpert.predict._cells`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError


def de_genes(prob, delta, n_de, deg_threshold, min_abs_delta) -> np.ndarray:
    """Columns of the genes predicted DE for one perturbation (the rule of both writers: see
    :mod:`transpert.predict._cells`)."""
    if n_de is not None:
        score = prob if prob is not None else np.abs(delta)
        order = np.argsort(-score, kind="stable")[:n_de]
        return np.sort(order[score[order] > 0])
    if prob is not None:
        return np.flatnonzero(prob >= deg_threshold)
    return np.flatnonzero(np.abs(delta) > min_abs_delta)


def prediction_layers(prediction, genes: list[str]):
    """``(cols, mean, delta, deg_probability or None, n_de_genes or None)`` of a pseudo-bulk
    prediction in ``genes`` order (log1p scale; ``cols[j] < 0``: gene ``j`` not predicted, its
    columns hold 0)."""
    cols = prediction.var_names.get_indexer(pd.Index(genes))

    def take(layer, fill=0.0):
        x = np.asarray(prediction.layers[layer], dtype=np.float64)
        return np.where(cols[None, :] >= 0, x[:, np.maximum(cols, 0)], fill)

    prob = take("deg_probability") if "deg_probability" in prediction.layers else None
    n_de = None
    if "n_de_genes" in prediction.obs.columns:
        n_de = pd.to_numeric(prediction.obs["n_de_genes"], errors="coerce").to_numpy()
        if np.isnan(n_de).any() or (n_de < 0).any():
            raise TranspertInputError("prediction: obs['n_de_genes'] must hold non-negative integers")
    return cols, take("mean"), take("delta"), prob, n_de
