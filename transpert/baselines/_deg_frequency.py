"""DEG-frequency baseline: the target's training statistics that the challenge winner built on.

Which genes respond to *any* perturbation of a line is largely a property of the line (stress,
cell-cycle and highly expressed genes respond to many knockdowns). This baseline predicts, for
every requested perturbation alike (log1p scale):

* ``deg_probability[g]`` = fraction of training perturbations in which gene g was significant
  (``fdr < alpha``), shrunk towards 0 for genes barely expressed in the target's controls
  (``control_mean < min_mean``), which the Wilcoxon test cannot call significant;
* ``delta[g]`` = the mean training delta of g over the perturbations where g *was* significant
  (its typical effect when it responds), 0 where g never was;
* ``n_de_genes`` = the median number of DEGs of a training perturbation: the writer calls that
  many genes DE, the most frequent ones (a set of expected size, rather than a probability cut).

So the genes predicted DE, their direction and their order by magnitude come from the training
DEG frequency and the typical significant effect, nothing perturbation-specific.
"""

from __future__ import annotations

import numpy as np

from transpert._errors import TranspertInputError

from ._base import Predictor, dense_layer


class DegFrequencyBaseline(Predictor):
    """Training DEG frequency + typical significant effect (see the module docstring).

    Parameters
    ----------
    alpha : FDR threshold defining a training DEG (cell-eval's 0.05).
    min_mean : control log1p mean below which a gene's probability is set to 0.
    """

    name = "deg-frequency"

    def __init__(self, alpha: float = 0.05, min_mean: float = 0.0):
        self.alpha = alpha
        self.min_mean = min_mean

    def _target_layers(self):
        return ("fdr",)

    def _fit(self, references, target_train):
        if not 0 < self.alpha < 1:
            raise TranspertInputError(f"deg-frequency: alpha must be in (0, 1), got {self.alpha!r}")
        sig = dense_layer(target_train, "fdr") < self.alpha  # NaN fdr counts as not significant
        delta = dense_layer(target_train, "delta")
        n_sig = sig.sum(axis=0)
        self.frequency_ = n_sig / sig.shape[0]
        self.frequency_[self.control_mean_ < self.min_mean] = 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            self.typical_delta_ = np.where(n_sig > 0, (delta * sig).sum(axis=0) / np.maximum(n_sig, 1), 0.0)

    def _predict(self, perturbations):
        n = len(perturbations)
        return (np.tile(self.typical_delta_, (n, 1)),
                {"deg_probability": np.tile(self.frequency_, (n, 1))})
