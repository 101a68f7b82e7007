"""What the model keeps from the target's training summary (log1p scale throughout).

Per gene: control mean, fraction of control cells expressing it, how many training
perturbations made it significant (``de_count`` of ``n_train``), the mean training delta (the
target's generic response, the fallback prediction and the ``common`` component). And one
number: the knockdown ratio, the median over training perturbations whose own gene is measured
of ``expm1(mean of that gene) / expm1(its control mean)`` — how far CRISPRi lowers the target
gene's expression in this line, on the linear scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from transpert.transfer._inputs import control_frac_expressing, dense_layer

#: a knockdown ratio needs at least this many training perturbations whose gene is expressed
MIN_KNOCKDOWN_PERTURBATIONS = 3


def knockdown_ratio(delta: np.ndarray, perturbations: pd.Index, genes: pd.Index,
                    control_mean: np.ndarray) -> float:
    """Median linear-scale ratio perturbed / control of each perturbation's own gene (NaN if too few)."""
    col = genes.get_indexer(perturbations)
    ok = np.flatnonzero(col >= 0)
    ok = ok[control_mean[col[ok]] > 0]
    if len(ok) < MIN_KNOCKDOWN_PERTURBATIONS:
        return np.nan
    ctrl = control_mean[col[ok]]
    pert_mean = np.maximum(ctrl + delta[ok, col[ok]], 0.0)
    return float(np.median(np.expm1(pert_mean) / np.expm1(ctrl)))


@dataclass
class TargetStats:
    genes: pd.Index
    control_mean: np.ndarray
    control_frac: np.ndarray
    control_frac_source: str
    de_count: np.ndarray
    n_train: int
    mean_delta: np.ndarray
    knockdown_ratio: float

    @classmethod
    def from_summary(cls, target, fdr_threshold: float) -> "TargetStats":
        genes = pd.Index(target.var_names.astype(str))
        delta = dense_layer(target, "delta")
        ctrl = np.asarray(target.var["control_mean"], dtype=np.float64)
        frac, source = control_frac_expressing(target)
        sig = np.nan_to_num(dense_layer(target, "fdr"), nan=1.0) < fdr_threshold
        return cls(genes=genes, control_mean=ctrl, control_frac=np.nan_to_num(frac, nan=0.0),
                   control_frac_source=source, de_count=sig.sum(axis=0).astype(np.float64),
                   n_train=target.n_obs, mean_delta=delta.mean(axis=0),
                   knockdown_ratio=knockdown_ratio(delta, pd.Index(target.obs_names.astype(str)),
                                                   genes, ctrl))

    def knockdown_delta(self, gene_col: int) -> float:
        """Predicted delta (log1p) of a perturbation's own gene ``gene_col`` (NaN: no estimate)."""
        if not np.isfinite(self.knockdown_ratio):
            return np.nan
        ctrl = self.control_mean[gene_col]
        return float(np.log1p(self.knockdown_ratio * np.expm1(ctrl)) - ctrl)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"genes": np.asarray(self.genes, dtype=str), "control_mean": self.control_mean,
                "control_frac": self.control_frac, "de_count": self.de_count,
                "mean_delta": self.mean_delta}

    def meta(self) -> dict:
        return {"n_train": self.n_train, "knockdown_ratio": self.knockdown_ratio,
                "control_frac_source": self.control_frac_source}

    @classmethod
    def from_arrays(cls, arrays, meta: dict) -> "TargetStats":
        return cls(genes=pd.Index(arrays["genes"].astype(str)), control_mean=arrays["control_mean"],
                   control_frac=arrays["control_frac"],
                   control_frac_source=meta["control_frac_source"], de_count=arrays["de_count"],
                   n_train=int(meta["n_train"]), mean_delta=arrays["mean_delta"],
                   knockdown_ratio=float(meta["knockdown_ratio"]))
