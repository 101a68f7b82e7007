"""The four baselines that need no model: control, cell-mean, train-mean, reference-mean.

All work on the log1p scale (summary profiles in, pseudo-bulk prediction out).
"""

from __future__ import annotations

import numpy as np

from ._base import Predictor, dense_layer, logger, nanmean_lines, reference_delta_stack


class ControlBaseline(Predictor):
    """Predicts no change: every perturbation gets the target's control mean (delta 0)."""

    name = "control"

    def _fit(self, references, target_train):
        pass

    def _predict(self, perturbations):
        return np.zeros((len(perturbations), len(self.genes_))), {}


class CellMeanBaseline(Predictor):
    """The Virtual Cell Challenge baseline: every perturbation gets the same vector ``b``.

    ``b`` is the mean over *all* groups of the training file, control included, of each group's
    mean log1p expression (cell-eval 0.8.2 ``build_base_mean_adata``). From a summary profile,
    whose obs exclude the control: ``b = (sum_p mean_p + control_mean) / (n_perturbations + 1)``.
    """

    name = "cell-mean"
    # written as cell-eval writes its baseline: every cell is b (so it scores exactly 0 against it)
    write_cells = "mean"

    def _fit(self, references, target_train):
        means = dense_layer(target_train, "mean")
        self.baseline_ = (means.sum(axis=0) + self.control_mean_) / (means.shape[0] + 1)

    def _predict(self, perturbations):
        delta = np.broadcast_to(self.baseline_ - self.control_mean_, (len(perturbations), len(self.genes_)))
        return np.array(delta), {}


class TrainMeanBaseline(Predictor):
    """The target's mean training effect: ``delta = mean_p delta_p`` over the training perturbations."""

    name = "train-mean"

    def _fit(self, references, target_train):
        self.mean_delta_ = dense_layer(target_train, "delta").mean(axis=0)

    def _predict(self, perturbations):
        return np.tile(self.mean_delta_, (len(perturbations), 1)), {}


class ReferenceMeanBaseline(Predictor):
    """Unweighted mean of the reference lines' deltas for the same perturbation.

    Per gene, the mean is over the lines that measured both the perturbation and the gene.
    A perturbation (or gene) that no reference line has falls back to the target's mean
    training effect (``train-mean``); ``obs["source"]`` says which perturbations did.
    """

    name = "reference-mean"
    needs_references = True

    def _fit(self, references, target_train):
        self.mean_delta_ = dense_layer(target_train, "delta").mean(axis=0)

    def _predict(self, perturbations):
        delta = nanmean_lines(reference_delta_stack(self.references_, self.genes_, perturbations))
        missing = np.isnan(delta).all(axis=1)
        if missing.any():
            logger.warning("reference-mean: %d of %d perturbations are in no reference line; "
                           "they get the target's mean training effect (e.g. %s)",
                           int(missing.sum()), len(perturbations),
                           ", ".join(np.asarray(perturbations)[missing][:5]))
        delta = np.where(np.isnan(delta), self.mean_delta_[None, :], delta)
        source = np.where(missing, "fallback:train-mean", "reference")
        return delta, {"source": source}
