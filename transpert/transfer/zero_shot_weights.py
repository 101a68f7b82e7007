"""Line weights for a zero-shot target: what can be measured without a target perturbation.

Without target perturbations, effect agreement (the few-shot weight's main evidence,
:mod:`transpert.transfer.similarity`) cannot be measured. What is left is the target's control
profile, and how the reference lines respond:

* ``control_corr``: Pearson correlation of a line's control log1p profile with the target's,
  over shared genes (how alike the cells are before perturbation);
* ``responsive_corr``: the same correlation weighted per gene by its *responsiveness*, the mean
  |delta| of that gene over every perturbation of every reference line (log1p). This is the
  response-structure part: a line's effects on a gene depend on that gene's baseline expression
  in the line (a gene silent in a line cannot go down in it; highly expressed responsive genes
  carry most of the effects), so agreement of baselines matters on the genes that respond, not
  on the house-keeping genes that dominate a plain correlation.

``score = (1 - structure_weight) * control_corr + structure_weight * responsive_corr``; the
weights are ``softmax(score / temperature)`` (``temperature=inf``: equal weights). The
temperature is not fixed: zero-shot TransPert chooses it by leave-one-line-out
(:mod:`transpert.transfer.zero_shot`), where the answer is known.

Exact copies: lines whose aligned summaries are identical (same perturbations, genes, deltas
and controls) form one *group* and share one line's weight, so adding an exact copy of a line
changes no prediction (the copy is also held out with its original in the leave-one-line-out).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from transpert.transfer.reference import ReferenceLine, copy_groups


def _weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(w) & (w > 0)
    if ok.sum() < 3:
        return np.nan
    x, y, w = x[ok], y[ok], w[ok] / w[ok].sum()
    xc, yc = x - (w * x).sum(), y - (w * y).sum()
    denom = np.sqrt((w * xc * xc).sum() * (w * yc * yc).sum())
    return float((w * xc * yc).sum() / denom) if denom > 0 else np.nan


def responsiveness(lines: Sequence[ReferenceLine], n_genes: int) -> np.ndarray:
    """Per target gene, the mean |delta| (log1p) over every perturbation of every line that
    measured it (0 where none did)."""
    total, count = np.zeros(n_genes), np.zeros(n_genes)
    for line in lines:
        d = np.abs(line.delta.astype(np.float64))
        ok = np.isfinite(d)
        total[line.gene_positions] += np.where(ok, d, 0.0).sum(axis=0)
        count[line.gene_positions] += ok.sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def zero_shot_weights(lines: Sequence[ReferenceLine], target_control_mean: np.ndarray,
                      response: np.ndarray, *, temperature: float,
                      structure_weight: float = 0.5) -> pd.DataFrame:
    """Weights of ``lines`` for a target known by its control log1p profile (see the module).

    ``response``: per target gene responsiveness (:func:`responsiveness`). Returns a DataFrame
    indexed by line: ``control_corr``, ``responsive_corr``, ``score``, ``group``, ``weight``
    (sums to 1; a group of k exact copies shares one share of the softmax).
    """
    target_control_mean = np.asarray(target_control_mean, dtype=np.float64)
    rows = []
    for line in lines:
        t = target_control_mean[line.gene_positions]
        ones = np.ones(len(t))
        rows.append({"line": line.name,
                     "control_corr": _weighted_pearson(line.control_mean, t, ones),
                     "responsive_corr": _weighted_pearson(line.control_mean, t,
                                                          response[line.gene_positions])})
    table = pd.DataFrame(rows).set_index("line")
    resp = table["responsive_corr"].fillna(table["control_corr"])
    score = ((1 - structure_weight) * table["control_corr"].fillna(0.0)
             + structure_weight * resp.fillna(0.0))
    table["score"] = score
    groups = np.asarray(copy_groups(lines))
    table["group"] = groups
    if np.isinf(temperature):
        w = np.ones(len(table))
    else:
        z = score.to_numpy() / temperature
        w = np.exp(z - z.max())
    # a group of k exact copies: each copy gets 1/k of one line's share
    sizes = pd.Series(groups).map(pd.Series(groups).value_counts()).to_numpy()
    w = w / sizes
    table["weight"] = w / w.sum()
    return table
