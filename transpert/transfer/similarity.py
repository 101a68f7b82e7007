"""How much to trust each reference line: similarity weights between lines.

Each reference line gets a score from two kinds of evidence, both Pearson correlations:

* **effect agreement** (``delta_corr``): the correlation of the line's deltas with the target's
  over every (perturbation, gene) both measured, i.e. the target's training perturbations that
  the line also perturbed, on shared genes. The perturbed gene's own column is left out: its
  knockdown is large in every line and would make any two lines look alike.
* **control similarity** (``control_corr``): the correlation of the control log1p mean
  expression profiles over shared genes (how alike the cells are before perturbation).

``score = (delta_weight * delta_corr + control_weight * control_corr) / (delta_weight +
control_weight)``. A line that shares fewer than ``min_shared`` training perturbations with
the target has no usable ``delta_corr``; it is set to 0 (no evidence of agreement), unless no line
has one, in which case only control similarity counts. Weights are then

* ``method="softmax"``: ``w = exp(score / temperature)``, normalised to sum to 1. A small
  temperature concentrates the weight on the best line (an exact copy of the target gets nearly
  all of it); a large one tends to equal weights.
* ``method="uniform"``: equal weights (the unweighted reference mean).

The table also reports ``slope``: the least-squares slope (through 0) of the target's deltas on
the line's, i.e. how much larger or smaller effects are in the target (informative; the global
scaling step is what corrects magnitude).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError
from transpert.transfer.reference import ReferenceLine, copy_groups

WEIGHT_METHODS = ("softmax", "uniform")


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return np.nan
    x, y = x[ok] - x[ok].mean(), y[ok] - y[ok].mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denom) if denom > 0 else np.nan


def line_weights(lines: Sequence[ReferenceLine], target_delta: np.ndarray,
                 target_perturbations: pd.Index, target_genes: pd.Index,
                 target_control_mean: np.ndarray, *, method: str = "softmax",
                 delta_weight: float = 1.0, control_weight: float = 0.5,
                 temperature: float = 0.05, min_shared: int = 2) -> pd.DataFrame:
    """Weights of the reference lines (a DataFrame indexed by line, column ``weight`` sums to 1).

    ``target_delta``: the target's training deltas (log1p scale), rows ``target_perturbations``,
    columns ``target_genes``; ``target_control_mean``: log1p control means of those genes.
    Columns: ``n_genes_shared``, ``n_perturbations_shared``, ``delta_corr``, ``control_corr``,
    ``slope``, ``score``, ``weight``. Lines that are exact copies of each other
    (:func:`transpert.transfer.reference.copy_groups`) share one line's weight.
    """
    if method not in WEIGHT_METHODS:
        raise TranspertInputError(f"weighting must be one of {WEIGHT_METHODS}, got {method!r}")
    if temperature <= 0:
        raise TranspertInputError(f"temperature must be > 0, got {temperature!r}")
    if delta_weight < 0 or control_weight < 0 or delta_weight + control_weight == 0:
        raise TranspertInputError(
            f"delta_weight and control_weight must be >= 0 and not both 0, got "
            f"{delta_weight!r}, {control_weight!r}")
    target_perturbations = pd.Index(target_perturbations)
    gene_of_pert = pd.Index(target_genes).get_indexer(target_perturbations)
    rows = []
    for line in lines:
        pos_t, pos_r = line.rows(target_perturbations)
        ctrl_corr = _pearson(line.control_mean, np.asarray(target_control_mean)[line.gene_positions])
        delta_corr, slope = np.nan, np.nan
        if len(pos_t) >= min_shared:
            t = target_delta[np.ix_(pos_t, line.gene_positions)].astype(np.float64)
            r = line.delta[pos_r].astype(np.float64)
            # leave out the perturbed gene's own column (its knockdown agrees trivially)
            col_of_gene = np.full(line.n_target_genes, -1)
            col_of_gene[line.gene_positions] = np.arange(len(line.gene_positions))
            for k, g in enumerate(gene_of_pert[pos_t]):
                if g >= 0 and col_of_gene[g] >= 0:
                    t[k, col_of_gene[g]] = np.nan
            delta_corr = _pearson(r.ravel(), t.ravel())
            ok = np.isfinite(r) & np.isfinite(t)
            rr = (r[ok] ** 2).sum()
            slope = float((r[ok] * t[ok]).sum() / rr) if rr > 0 else np.nan
        rows.append({"line": line.name, "n_genes_shared": len(line.gene_positions),
                     "n_perturbations_shared": len(pos_t), "delta_corr": delta_corr,
                     "control_corr": ctrl_corr, "slope": slope})
    table = pd.DataFrame(rows).set_index("line")
    any_delta = table["delta_corr"].notna().any()
    dw = delta_weight if any_delta else 0.0
    if dw + control_weight == 0:  # only delta evidence was asked for and there is none
        dw, cw = 0.0, 1.0
    else:
        cw = control_weight
    score = (dw * table["delta_corr"].fillna(0.0) + cw * table["control_corr"].fillna(0.0)) / (dw + cw)
    table["score"] = score
    if method == "uniform":
        w = np.ones(len(table))
    else:
        z = score.to_numpy() / temperature
        w = np.exp(z - z.max())  # shift for numerical stability; softmax is shift-invariant
    # k exact copies of one line share that line's weight: a duplicated file adds no evidence
    groups = pd.Series(copy_groups(lines))
    w = w / groups.map(groups.value_counts()).to_numpy()
    table["weight"] = w / w.sum()
    return table
