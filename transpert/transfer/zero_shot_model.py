"""The pieces of a zero-shot prediction, for any target known by its control profile.

Used twice with the same code: by :class:`~transpert.transfer.zero_shot.ZeroShotTransPert`'s
``predict`` (target = the real target) and by its leave-one-line-out (target = a reference
line, known only by its controls, predicted from the other lines). Log1p scale throughout.

For perturbation p and target gene g, with weights w from :func:`zero_shot_weights`:

* ``generic[g]``: the lines' generic response, the weighted mean over lines of each line's mean
  delta over all its perturbations (what every perturbation of these lines does in common);
* ``specific[p, g]``: the weighted mean of the lines' perturbation-specific effects (each line's
  delta minus its generic response, James-Stein shrunk by its own p-value,
  :func:`transpert.transfer.aggregate.aggregate`);
* ``fixed[p, g]``: the perturbed gene's own knockdown, ``log1p(r * expm1(c)) - c`` with ``c``
  the target's control mean and ``r`` the lines' median knockdown ratio (linear scale); NaN
  elsewhere;
* DEG-classifier features (:func:`transpert.transfer.deg_classifier.deg_features`): the lines'
  statistics, the lines' DE frequency of each gene (in place of the target's training DE
  frequency, which a zero-shot target does not have) and the target's control mean and
  fraction expressing.

A prediction is ``a * generic + b * specific`` with ``fixed`` on top; a perturbation no line
measured gets ``a * generic`` (flagged by the estimator).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from transpert.transfer.aggregate import Aggregate, aggregate
from transpert.transfer.deg_classifier import deg_features
from transpert.transfer.reference import ReferenceLine
from transpert.transfer.target import knockdown_ratio
from transpert.transfer.reference import copy_groups
from transpert.transfer.zero_shot_weights import responsiveness, zero_shot_weights


@dataclass
class Components:
    """A zero-shot prediction's pieces for ``perturbations`` x target genes (see the module)."""

    weights: pd.DataFrame
    agg: Aggregate
    generic: np.ndarray
    specific: np.ndarray
    fixed: np.ndarray
    de_logit: np.ndarray
    gene_col: np.ndarray

    def delta(self, common_scale: float, specific_scale: float) -> np.ndarray:
        """The predicted deltas (log1p) at these scales."""
        out = common_scale * self.generic[None, :] + specific_scale * self.specific
        return np.where(np.isfinite(self.fixed), self.fixed, out)

    def features(self, control_mean: np.ndarray, control_frac: np.ndarray) -> np.ndarray:
        """DEG-classifier features, rows perturbation-major."""
        return deg_features(self.agg, self.de_logit, control_mean, control_frac, self.gene_col)


def line_knockdown_ratio(summary) -> float:
    """A reference summary's median knockdown ratio of its perturbations' own genes (linear
    scale; NaN when fewer than 3 perturbations target a measured, expressed gene)."""
    from transpert.summarize._contract import dense_layer

    genes = pd.Index(summary.var_names.astype(str))
    return knockdown_ratio(dense_layer(summary, "delta"), pd.Index(summary.obs_names.astype(str)),
                           genes, np.asarray(summary.var["control_mean"], dtype=np.float64))


def components(lines: Sequence[ReferenceLine], control_mean: np.ndarray, genes: pd.Index,
               perturbations: Sequence[str], *, temperature: float, structure_weight: float,
               shrinkage: str, kd_ratio: float) -> Components:
    """The :class:`Components` of a target with log1p ``control_mean`` over ``genes``, from
    ``lines`` aligned to those genes; ``kd_ratio``: the knockdown ratio (NaN: none)."""
    g = len(genes)
    groups = copy_groups(lines)
    distinct = [line for i, line in enumerate(lines) if groups[i] == i]  # one of each exact copy
    response = responsiveness(distinct, g)
    weights = zero_shot_weights(lines, control_mean, response, temperature=temperature,
                                structure_weight=structure_weight)
    w = weights["weight"]
    perts = list(perturbations)
    agg = aggregate(lines, w, perts, g, shrinkage)
    generic_sum, wsum, freq_sum = np.zeros(g), np.zeros(g), np.zeros(g)
    for line in lines:
        wl = float(w[line.name])
        generic_sum[line.gene_positions] += wl * np.nan_to_num(line.mean_delta)
        freq_sum[line.gene_positions] += wl * line.sig.mean(axis=0)
        wsum[line.gene_positions] += wl
    n_total = sum(len(line.perturbations) for line in distinct)
    with np.errstate(invalid="ignore", divide="ignore"):
        generic = np.where(wsum > 0, generic_sum / wsum, 0.0)
        freq = np.where(wsum > 0, freq_sum / wsum, 0.0)
    count = freq * n_total
    de_logit = np.log((count + 0.5) / (n_total - count + 0.5))
    gene_col = genes.get_indexer(pd.Index(perts))
    fixed = np.full((len(perts), g), np.nan)
    if np.isfinite(kd_ratio):
        for i in np.flatnonzero(gene_col >= 0):
            c = control_mean[gene_col[i]]
            fixed[i, gene_col[i]] = np.log1p(kd_ratio * np.expm1(c)) - c
    return Components(weights=weights, agg=agg, generic=generic,
                      specific=np.nan_to_num(agg.specific, nan=0.0), fixed=fixed,
                      de_logit=de_logit, gene_col=gene_col)


def top_k_calls(delta: np.ndarray, k: int) -> np.ndarray:
    """Boolean calls: the ``k`` genes of largest |delta| per row (none where |delta| is 0)."""
    called = np.zeros(delta.shape, dtype=bool)
    if k <= 0:
        return called
    k = min(k, delta.shape[1])
    top = np.argpartition(-np.abs(delta), k - 1, axis=1)[:, :k]
    np.put_along_axis(called, top, True, axis=1)
    return called & (delta != 0)
