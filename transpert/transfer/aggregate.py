"""Similarity-weighted combination of the reference lines' effects.

For perturbation p and target gene g, with L(p, g) the lines that perturbed p and measured g,
every statistic is the weighted mean ``sum_l w_l x_l(p, g) / sum_l w_l`` over L(p, g): the line
weights renormalised over the lines that have a value there. So a perturbation present in only
some lines uses those, and a gene missing from a line uses the others. Where L(p, g) is empty the
result is NaN and ``weight_sum`` is 0; the estimator decides what to put there (it falls back
to the target's training data and records it).

Statistics (log1p scale for deltas):

* ``delta``: weighted mean delta; ``specific``: weighted mean of ``f * (delta - line mean
  delta)``, the perturbation-specific part with each line's generic response removed, shrunk by
  a factor ``f`` in [0, 1] from the line's own test of that delta (``shrinkage``):

  - ``"js"``: positive-part James-Stein, ``f = max(0, 1 - 1/z^2)`` with ``z`` the two-sided
    normal quantile of the p-value. A delta that is pure noise has ``E[z^2] = 1``: it is
    mostly set to 0, while clear effects are kept nearly whole. Noise in the references would
    otherwise be transferred to every gene (it costs MAE and blurs the direction of the effect);
  - ``"significant"``: ``f = 1`` where the line's FDR is below the threshold, else 0;
  - ``"none"``: ``f = 1``;
* ``log2fc`` (capped, see :mod:`transpert.transfer.reference`), ``neglog10p``;
* ``frac_sig``: weighted fraction of lines where the gene is significant (fdr < threshold);
* ``sign``: weighted mean of sign(delta), in [-1, 1]; ``|sign|`` is the lines' agreement on the
  direction (1 = all agree).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from transpert._errors import TranspertInputError
from transpert.transfer.reference import ReferenceLine

SHRINKAGE = ("js", "significant", "none")
STATISTICS = ("delta", "specific", "log2fc", "neglog10p", "frac_sig", "sign")


@dataclass
class Aggregate:
    """Weighted reference statistics for a list of perturbations (arrays n_perts x n_genes)."""

    perturbations: list[str]
    delta: np.ndarray
    specific: np.ndarray
    log2fc: np.ndarray
    neglog10p: np.ndarray
    frac_sig: np.ndarray
    sign: np.ndarray
    weight_sum: np.ndarray  # sum of the weights of the lines with a value at (p, g)
    n_lines: np.ndarray  # per perturbation: reference lines that perturbed it
    lines: list[list[str]]  # per perturbation: their names


def shrink_factor(line: ReferenceLine, rows: np.ndarray, shrinkage: str) -> np.ndarray | float:
    """The factor applied to the line's specific effects on ``rows`` (see the module docstring)."""
    if shrinkage == "none":
        return 1.0
    if shrinkage == "significant":
        return line.sig[rows].astype(np.float64)
    from scipy.special import ndtri

    p = np.power(10.0, -line.neglog10p[rows].astype(np.float64))
    z = -ndtri(p / 2.0)  # two-sided: |z| with P(|Z| > |z|) = p (accurate for tiny p)
    with np.errstate(divide="ignore"):
        return np.clip(1.0 - 1.0 / (z * z), 0.0, 1.0)


def aggregate(lines: Sequence[ReferenceLine], weights: Mapping[str, float],
              perturbations: Sequence[str], n_genes: int, shrinkage: str = "js") -> Aggregate:
    """Weighted mean of each reference statistic for ``perturbations`` over ``n_genes`` target genes.

    ``weights`` maps line name -> non-negative weight (need not sum to 1); lines with weight 0
    contribute nothing but still count in ``n_lines`` when they perturbed p.
    """
    if shrinkage not in SHRINKAGE:
        raise TranspertInputError(f"shrinkage must be one of {SHRINKAGE}, got {shrinkage!r}")
    perts = list(perturbations)
    n = len(perts)
    sums = {s: np.zeros((n, n_genes)) for s in STATISTICS}
    wsum = np.zeros((n, n_genes))
    n_lines = np.zeros(n, dtype=np.int64)
    names: list[list[str]] = [[] for _ in range(n)]
    for line in lines:
        found, rows = line.rows(perts)
        if len(found) == 0:
            continue
        n_lines[found] += 1
        for k in found:
            names[k].append(line.name)
        w = float(weights[line.name])
        if w == 0:
            continue
        cols = line.gene_positions
        block = np.ix_(found, cols)
        d = line.delta[rows].astype(np.float64)
        ok = np.isfinite(d)
        # a NaN delta (a gene the line measured but could not estimate) counts as missing
        wmask = np.where(ok, w, 0.0)
        d0 = np.where(ok, d, 0.0)
        values = {
            "delta": d0,
            "specific": np.where(ok, (d - line.mean_delta[None, :])
                                 * shrink_factor(line, rows, shrinkage), 0.0),
            "log2fc": np.where(ok, line.log2fc[rows], 0.0),
            "neglog10p": np.where(ok, line.neglog10p[rows], 0.0),
            "frac_sig": np.where(ok, line.sig[rows], 0.0),
            "sign": np.sign(d0),
        }
        for s, v in values.items():
            sums[s][block] += wmask * v
        wsum[block] += wmask
    with np.errstate(invalid="ignore", divide="ignore"):
        means = {s: np.where(wsum > 0, sums[s] / wsum, np.nan) for s in STATISTICS}
    return Aggregate(perturbations=perts, weight_sum=wsum, n_lines=n_lines, lines=names, **means)
