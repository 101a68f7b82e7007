"""Zero-shot baselines: predictions for a target known only by its control cells.

Same interface as every predictor, with the target's controls in place of its training summary:
``fit(references: {line: summary}, target_controls)`` (control cells, a summary profile or a
Series of log1p control means; :func:`transpert.transfer.zero_shot_target.control_profile`) and
``predict(perturbations)``. All on the log1p scale; deltas are against the target's control
mean. How many genes each calls DE (``obs["n_de_genes"]``, its largest |delta|): the median over
reference lines of their median number of significant genes (``fdr < 0.05``) per perturbation.

* ``zero-shot-control``: no change (delta 0);
* ``zero-shot-reference-mean``: the unweighted mean of the reference lines' deltas for the same
  perturbation (per gene over the lines that measured both); a perturbation no line measured
  gets the mean response below;
* ``zero-shot-mean-response``: every perturbation gets the reference lines' mean perturbation
  response, per gene the mean over lines of that line's mean delta over all its perturbations
  (the learned counterpart of cell-eval2's baseline b, which is the target's own mean
  perturbation response and needs target perturbations);
* ``zero-shot-linear``: Ahlmann-Eltze et al.'s linear model (:mod:`._linear`) fitted where the
  data are, on the reference lines: ``Y`` = the lines' mean deltas (genes x perturbations),
  ``G`` and ``P`` the first K principal components of ``Y - b1ᵀ`` on the gene and perturbation
  sides, ``W`` the two-sided ridge solution; a prediction is ``G W p + b`` (a rank-K smoothing of
  the reference mean, which is what the cross-dataset model reduces to when the target has no
  perturbation to fit ``W`` on). A perturbation no line measured gets ``b``.
"""

from __future__ import annotations

import numpy as np

from ._base import Predictor, check_references, dense_layer, logger, nanmean_lines, reference_delta_stack
from ._linear import pca_scores, ridge_bilinear


def mean_response(references: dict, genes) -> np.ndarray:
    """Per target gene, the mean over lines of each line's mean delta over its perturbations
    (log1p; 0 where no line measured the gene)."""
    per_line = []
    for name, ref in references.items():
        stack = reference_delta_stack({name: ref}, genes, list(ref.obs_names.astype(str)))[0]
        count = np.sum(~np.isnan(stack), axis=0)
        per_line.append(np.where(count > 0, np.nansum(stack, axis=0) / np.maximum(count, 1), np.nan))
    return np.nan_to_num(nanmean_lines(np.stack(per_line)), nan=0.0)


class ZeroShotPredictor(Predictor):
    """Base of the zero-shot baselines: ``fit(references, target_controls)``."""

    needs_references = True
    zero_shot = True

    def fit(self, references, target_controls):
        """Learn from reference summaries and the target's controls (no target perturbation)."""
        from transpert.transfer.zero_shot_target import control_profile

        self.references_ = check_references(references, ("mean", "delta", "fdr"))
        profile = control_profile(target_controls)
        self.genes_ = profile.genes
        self.control_mean_ = profile.control_mean
        self.train_perturbations_ = []
        counts = [np.median((np.nan_to_num(dense_layer(r, "fdr"), nan=1.0) < 0.05).sum(axis=1))
                  for r in self.references_.values()]
        self.n_de_genes_ = int(np.median(counts))
        self.mean_response_ = mean_response(self.references_, self.genes_)
        self._fit(self.references_, None)
        return self


class ZeroShotControlBaseline(ZeroShotPredictor):
    """No change: every perturbation gets the target's control profile."""

    name = "zero-shot-control"

    def _fit(self, references, target_train):
        pass

    def _predict(self, perturbations):
        return np.zeros((len(perturbations), len(self.genes_))), {}


class ZeroShotMeanResponseBaseline(ZeroShotPredictor):
    """Every perturbation gets the reference lines' mean perturbation response."""

    name = "zero-shot-mean-response"

    def _fit(self, references, target_train):
        pass

    def _predict(self, perturbations):
        return np.tile(self.mean_response_, (len(perturbations), 1)), {}


class ZeroShotReferenceMeanBaseline(ZeroShotPredictor):
    """Unweighted mean of the reference lines' deltas for the same perturbation."""

    name = "zero-shot-reference-mean"

    def _fit(self, references, target_train):
        pass

    def _predict(self, perturbations):
        delta = nanmean_lines(reference_delta_stack(self.references_, self.genes_, perturbations))
        missing = np.isnan(delta).all(axis=1)
        if missing.any():
            logger.warning("zero-shot-reference-mean: %d of %d perturbations are in no reference line; "
                           "they get the lines' mean response", int(missing.sum()), len(perturbations))
        delta = np.where(np.isnan(delta), self.mean_response_[None, :], delta)
        return delta, {"source": np.where(missing, "fallback:mean-response", "reference")}


class ZeroShotLinearBaseline(ZeroShotPredictor):
    """Ahlmann-Eltze et al.'s linear model fitted on the reference lines (see the module)."""

    name = "zero-shot-linear"

    def __init__(self, n_components: int = 10, ridge: float = 0.1):
        self.n_components = n_components
        self.ridge = ridge

    def _fit(self, references, target_train):
        perts = sorted(set().union(*(map(str, r.obs_names) for r in references.values())))
        y = np.nan_to_num(nanmean_lines(reference_delta_stack(references, self.genes_, perts)), nan=0.0).T
        self.center_ = y.mean(axis=1)
        yc = y - self.center_[:, None]
        self.gene_embedding_ = pca_scores(yc, self.n_components, center=False)
        self.perturbation_embedding_ = pca_scores(yc.T, self.n_components, center=False)
        self.embedded_perturbations_ = perts
        self.coef_ = ridge_bilinear(yc, self.gene_embedding_, self.perturbation_embedding_, self.ridge)

    def _predict(self, perturbations):
        import pandas as pd

        idx = pd.Index(self.embedded_perturbations_).get_indexer(perturbations)
        ok = idx >= 0
        emb = np.zeros((len(perturbations), self.perturbation_embedding_.shape[1]))
        emb[ok] = self.perturbation_embedding_[idx[ok]]
        delta = (self.gene_embedding_ @ self.coef_ @ emb.T).T + self.center_[None, :]
        return delta, {"source": np.where(ok, "linear:references", "fallback:mean-delta")}


ZERO_SHOT_BASELINES = (ZeroShotControlBaseline, ZeroShotReferenceMeanBaseline,
                       ZeroShotMeanResponseBaseline, ZeroShotLinearBaseline)
