"""Which genes a prediction calls DE: the DEG-probability threshold, chosen by cross-validated DES.

The writer (:func:`transpert.predict.write_prediction`) shifts the genes a prediction calls DE in
every cell, so the evaluation's DE test finds them; cell-eval's DES then compares, per
perturbation, the real significant genes with the first ``k`` called genes ranked by |log2FC|
(``k`` = number of real DEGs). A fixed threshold of 0.5 on the classifier's probability calls no
gene at all when DEGs are rare and uncertain (e.g. real data with 0-1 DEGs per perturbation),
which guarantees DES = 0; a low threshold calls many false genes, which can push true ones out of
the first ``k``. So the threshold is chosen like the scales: on out-of-fold predictions of the
target's training perturbations (out-of-fold DEG probabilities and deltas), by the mean DES that
the call would get against the training perturbations' own significant genes. Ties go to the
threshold that calls *more* genes: DES never penalises an extra called gene by itself, only by
pushing a true one out of the first ``k``, which the out-of-fold DES would have shown; so with
no evidence either way (e.g. DES 0 at every threshold when a single training perturbation has
a significant gene, so no held-out fold can recover it) the call that can still catch a
recurring DEG is kept. Remaining ties (the same genes called) go to the earlier threshold.

Inputs are ``(n_perturbations, n_genes)`` arrays; deltas on the log1p scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError
from transpert.summarize import log2fc

#: thresholds searched by default, the challenge-era 0.5 first
DEFAULT_DEG_THRESHOLDS = (0.5, 0.4, 0.3, 0.2, 0.1, 0.05)


def _abs_log2fc(delta: np.ndarray, control_mean: np.ndarray) -> np.ndarray:
    """|log2 fold change| of the predicted means ``control + delta`` (clipped at 0) over the
    control (pdex's fold change of log1p means, :func:`transpert.summarize.log2fc`)."""
    return np.abs(log2fc(np.clip(control_mean[None, :] + delta, 0.0, None), control_mean[None, :]))


def des_of_call(called: np.ndarray, pred_delta: np.ndarray, real_sig: np.ndarray,
                control_mean: np.ndarray) -> np.ndarray:
    """Per-perturbation DES of a DEG call, as cell-eval's ``overlap_at_N`` computes it.

    ``called``/``real_sig``: boolean (n, g); the called genes are ranked by the predicted
    |log2FC| (ties in gene order, infinite first); DES_p = |real ∩ first k called| / k with
    k = |real|, 0 when k = 0.
    """
    lfc = _abs_log2fc(pred_delta, control_mean)
    out = np.zeros(called.shape[0])
    for i in range(called.shape[0]):
        k = int(real_sig[i].sum())
        cols = np.flatnonzero(called[i])
        if k == 0 or cols.size == 0:
            continue
        first = cols[np.argsort(-lfc[i, cols], kind="stable")[:k]]
        out[i] = real_sig[i, first].sum() / k
    return out


def best_row(curve: pd.DataFrame) -> int:
    """Position of the best row of a curve with ``des`` and ``mean_called``: highest DES, then
    most genes called, then the earliest row."""
    des = curve["des"].to_numpy()
    tied = np.flatnonzero(np.isclose(des, des.max(), rtol=0.0, atol=1e-12))
    called = curve["mean_called"].to_numpy()[tied]
    return int(tied[np.flatnonzero(called == called.max())[0]])


def select_deg_threshold(prob: np.ndarray, pred_delta: np.ndarray, real_sig: np.ndarray,
                         control_mean: np.ndarray,
                         thresholds: Sequence[float] = DEFAULT_DEG_THRESHOLDS) -> tuple[pd.DataFrame, float]:
    """The threshold of the grid with the highest mean out-of-fold DES (ties: the one calling
    more genes, then the earlier one; see the module docstring).

    Returns ``(curve, threshold)``; the curve has one row per threshold: ``threshold``,
    ``des`` (mean over perturbations), ``mean_called`` (genes called per perturbation), ``chosen``.
    """
    thresholds = [float(t) for t in thresholds]
    if not thresholds or not all(0.0 < t <= 1.0 for t in thresholds):
        raise TranspertInputError(f"deg_thresholds must be a non-empty list of numbers in (0, 1], got {thresholds!r}")
    rows = []
    for t in thresholds:
        called = prob >= t
        rows.append({"threshold": t, "des": float(des_of_call(called, pred_delta, real_sig, control_mean).mean()),
                     "mean_called": float(called.sum(axis=1).mean())})
    curve = pd.DataFrame(rows)
    best = best_row(curve)
    curve["chosen"] = np.arange(len(curve)) == best
    return curve, float(curve["threshold"].iloc[best])
