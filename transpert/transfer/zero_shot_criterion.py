"""A profile-level criterion for zero-shot TransPert's leave-one-line-out (``criterion="profile"``).

**A summary-level stand-in, not the vcc2026 scorer.** The 2026 Virtual Cell Challenge scores
predicted *cells* with cell-eval2's ``vcc2026`` suite (cosine discrimination, expression errors,
Wilcoxon DE agreement, log-fold-change error, each anchored to a baseline). Inside a fit there
are no predicted cells, only predicted profiles, so this criterion computes metrics in the same
spirit from summaries: the prediction's log1p means, deltas and DE calls against a held-out
line's own summary (its pseudo-bulk and Wilcoxon test). It ranks candidate scales and weights;
its values are not vcc2026 scores and must not be reported as such.

Per held-out line, for perturbations ``P`` and genes ``G`` (all log1p scale unless stated):

* ``pds_cosine``: mean over P of cell-eval's discrimination score with cosine distance of the
  deltas (:func:`transpert.metrics.discrimination_scores`, ``1 - rank/N``, 1 = best);
  anchored ``2 * (pds - 0.5)`` (0 = chance);
* ``mse``: mean squared error of the predicted log1p profile; anchored ``1 - mse / mse_0`` with
  ``mse_0`` that of the no-change prediction (the control profile);
* ``de_direction``: among the genes significant in the held-out line (``fdr < 0.05``), the
  fraction the prediction moves in the same direction (a delta of 0 is no agreement);
* ``de_jaccard``: Jaccard index of the predicted DE set and the significant set (1 when both
  are empty);
* ``lfc_nmae``: over the significant genes, ``mean |lfc_pred - lfc_real| / mean |lfc_real|``
  (log2 fold changes, :func:`transpert.summarize.log2fc`); anchored ``1 - nmae`` (the no-change
  prediction scores 0).

Each anchored value is clipped below at -1 (a very bad value on one metric cannot swamp the
others) and ``score`` is their mean (the four DE terms are means over the perturbations that
have a significant gene). A criterion is any callable with this signature returning a dict with
``score``; the default is the noise-aware :func:`transpert.transfer.zero_shot_noise.noise_criterion`
(this one, comparing profiles only, chose effects too small for the cells to show).
"""

from __future__ import annotations

import numpy as np

from transpert.metrics import discrimination_scores
from transpert.summarize import log2fc

#: the anchored components of :func:`profile_criterion`, averaged into ``score``
COMPONENTS = ("pds_cosine", "mse", "de_direction", "de_jaccard", "lfc_nmae")


def profile_criterion(pred_delta: np.ndarray, pred_called: np.ndarray, real_delta: np.ndarray,
                      real_sig: np.ndarray, control_mean: np.ndarray, perturbations, genes, *,
                      pds_values: np.ndarray | None = None) -> dict:
    """Score a predicted held-out line against its summary (see the module docstring).

    ``pred_delta``/``real_delta``: (n_perts, n_genes) log1p deltas against the held-out line's
    ``control_mean`` (log1p); ``pred_called``/``real_sig``: boolean DE calls. Returns the raw
    metrics, their anchored values (``anchored_<name>``) and ``score``. ``pds_values``: the
    per-perturbation PDS when already known (e.g. a bootstrap resample of perturbations, whose
    PDS must stay ranked among the full set), else computed here.
    """
    pred_delta = np.nan_to_num(np.asarray(pred_delta, dtype=np.float64))
    real_delta = np.nan_to_num(np.asarray(real_delta, dtype=np.float64))
    ctrl = np.asarray(control_mean, dtype=np.float64)[None, :]
    pred_mean = np.clip(ctrl + pred_delta, 0.0, None)
    real_mean = np.clip(ctrl + real_delta, 0.0, None)
    labels = list(perturbations)
    out: dict = {}
    if pds_values is not None:
        out["pds_cosine"] = float(np.mean(pds_values))
    elif len(labels) >= 2:
        out["pds_cosine"] = float(np.mean(discrimination_scores(
            (pred_mean - ctrl).astype(np.float32), (real_mean - ctrl).astype(np.float32), labels,
            list(genes), metric="cosine")))
    else:
        out["pds_cosine"] = 0.5
    mse0 = float(np.mean((real_mean - ctrl) ** 2))
    out["mse"] = float(np.mean((pred_mean - real_mean) ** 2))
    has = real_sig.any(axis=1)
    pred_sign, real_sign = np.sign(pred_mean - ctrl), np.sign(real_mean - ctrl)
    lfc_p, lfc_r = log2fc(pred_mean, ctrl), log2fc(real_mean, ctrl)
    lfc_p = np.clip(np.nan_to_num(lfc_p, nan=0.0, posinf=10, neginf=-10), -10, 10)
    lfc_r = np.clip(np.nan_to_num(lfc_r, nan=0.0, posinf=10, neginf=-10), -10, 10)
    inter = (real_sig & pred_called).sum(axis=1)
    union = (real_sig | pred_called).sum(axis=1)
    out["de_jaccard"] = float(np.mean(np.where(union > 0, inter / np.maximum(union, 1), 1.0)))
    n_sig = real_sig.sum(axis=1)[has]
    agree = ((pred_sign == real_sign) & real_sig).sum(axis=1)[has]
    err = (np.abs(lfc_p - lfc_r) * real_sig).sum(axis=1)[has]
    size = (np.abs(lfc_r) * real_sig).sum(axis=1)[has]
    out["de_direction"] = float(np.mean(agree / n_sig)) if has.any() else np.nan
    out["lfc_nmae"] = float(np.mean(np.where(size > 0, err / np.where(size > 0, size, 1.0), 0.0))) \
        if has.any() else np.nan
    anchored = {
        "pds_cosine": 2.0 * (out["pds_cosine"] - 0.5),
        "mse": 1.0 - out["mse"] / mse0 if mse0 > 0 else 0.0,
        "de_direction": out["de_direction"],
        "de_jaccard": out["de_jaccard"],
        "lfc_nmae": 1.0 - out["lfc_nmae"],
    }
    values = []
    for name in COMPONENTS:
        v = anchored[name]
        out[f"anchored_{name}"] = max(-1.0, v) if np.isfinite(v) else np.nan
        if np.isfinite(v):
            values.append(max(-1.0, v))
    out["score"] = float(np.mean(values)) if values else np.nan
    return out
