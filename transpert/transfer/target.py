"""What the model keeps from the target's training summary (log1p scale throughout).

Per gene: control mean, fraction of control cells expressing it, how many training
perturbations made it significant (``de_count`` of ``n_train``), the mean training delta, the
target's generic response (``common_delta``, :func:`common_effect`: the median or mean training
delta, shrunk; the
``common`` component and the fallback prediction), and the size and direction the gene has when
it *is* significant (``sig_magnitude``, ``sig_sign``, :func:`significant_effect`: what a gene
called DE is predicted to move by at least). And one number: the knockdown ratio, the median over training perturbations whose own gene is measured
of ``expm1(mean of that gene) / expm1(its control mean)`` — how far CRISPRi lowers the target
gene's expression in this line, on the linear scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from transpert.summarize._contract import control_frac_expressing, dense_layer

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


#: what :func:`common_effect` centres on
COMMON_CENTERS = ("mean", "median")


def common_effect(delta: np.ndarray, strength: float = 1.0, center: str = "mean") -> np.ndarray:
    """The target's generic response per gene from training deltas ``(n_perturbations, n_genes)``
    (log1p scale in, log1p-scale delta out).

    Each gene's centre over perturbations (``center``: ``"mean"``, or ``"median"``, the best
    constant under an absolute error such as the challenge's MAE and robust to the few
    perturbations with large effects) shrunk towards 0 by ``max(0, 1 - strength * se^2 /
    c^2)`` with ``c`` the centre and ``se^2`` its squared standard error, ``var / n`` for the mean
    and ``pi / 2 * var / n`` for the median (its large-sample variance under normal noise):
    ``strength`` 0 is the plain centre, 1 the positive-part James-Stein estimate, larger values
    keep only genes whose centre is more than ``sqrt(strength)`` standard errors from 0. Why: a gene whose mean effect is not larger than
    its own sampling noise contributes only noise to the common component, and that noise is
    *anti*-informative for the held-out perturbations: a mean over the other perturbations moves
    away from each held-out perturbation's own noise, which pushes every held-out prediction away
    from its true profile (PDS below chance when held-out folds are scored together; measured on
    the Datlinger data, where the plain mean gives PDS 0.42-0.44 against 0.525 for any constant
    prediction). Genes with a consistent mean effect keep it almost unshrunk.
    """
    if not (np.isfinite(strength) and strength >= 0):
        raise ValueError(f"common shrinkage strength must be a finite number >= 0, got {strength!r}")
    if center not in COMMON_CENTERS:
        raise ValueError(f"common center must be one of {COMMON_CENTERS}, got {center!r}")
    n = delta.shape[0]
    centre = delta.mean(axis=0) if center == "mean" else np.median(delta, axis=0)
    if strength == 0 or n < 2:
        return centre
    # the median's sampling variance is pi/2 times the mean's (normal data, large n)
    se2 = delta.var(axis=0, ddof=1) / n * (1.0 if center == "mean" else np.pi / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(centre != 0, np.clip(1.0 - strength * se2 / centre ** 2, 0.0, 1.0), 0.0)
    return centre * factor


def significant_effect(delta: np.ndarray, sig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per gene, the mean |delta| over the training perturbations where it was significant and
    the sign of its summed significant delta (0 and 0 where it never was). Log1p scale.

    A gene the model calls DE is predicted to move by at least this magnitude: calling a gene DE
    while predicting a shift far smaller than any shift that was ever detected for it is
    self-contradictory (the written cells would not make it significant).
    """
    n_sig = sig.sum(axis=0)
    magnitude = np.where(n_sig > 0, (np.abs(delta) * sig).sum(axis=0) / np.maximum(n_sig, 1), 0.0)
    return magnitude, np.sign((delta * sig).sum(axis=0))


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
    common_delta: np.ndarray
    sig_magnitude: np.ndarray
    sig_sign: np.ndarray

    @classmethod
    def from_summary(cls, target, fdr_threshold: float,
                     common_shrinkage: float = 1.0, common_center: str = "mean") -> "TargetStats":
        genes = pd.Index(target.var_names.astype(str))
        delta = dense_layer(target, "delta")
        ctrl = np.asarray(target.var["control_mean"], dtype=np.float64)
        frac, source = control_frac_expressing(target)
        sig = np.nan_to_num(dense_layer(target, "fdr"), nan=1.0) < fdr_threshold
        magnitude, sign = significant_effect(delta, sig)
        return cls(genes=genes, control_mean=ctrl, control_frac=np.nan_to_num(frac, nan=0.0),
                   control_frac_source=source, de_count=sig.sum(axis=0).astype(np.float64),
                   n_train=target.n_obs, mean_delta=delta.mean(axis=0),
                   knockdown_ratio=knockdown_ratio(delta, pd.Index(target.obs_names.astype(str)),
                                                   genes, ctrl),
                   common_delta=common_effect(delta, common_shrinkage, common_center),
                   sig_magnitude=magnitude, sig_sign=sign)

    def knockdown_delta(self, gene_col: int) -> float:
        """Predicted delta (log1p) of a perturbation's own gene ``gene_col`` (NaN: no estimate)."""
        if not np.isfinite(self.knockdown_ratio):
            return np.nan
        ctrl = self.control_mean[gene_col]
        return float(np.log1p(self.knockdown_ratio * np.expm1(ctrl)) - ctrl)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"genes": np.asarray(self.genes, dtype=str), "control_mean": self.control_mean,
                "control_frac": self.control_frac, "de_count": self.de_count,
                "mean_delta": self.mean_delta, "common_delta": self.common_delta,
                "sig_magnitude": self.sig_magnitude, "sig_sign": self.sig_sign}

    def meta(self) -> dict:
        return {"n_train": self.n_train, "knockdown_ratio": self.knockdown_ratio,
                "control_frac_source": self.control_frac_source}

    @classmethod
    def from_arrays(cls, arrays, meta: dict) -> "TargetStats":
        return cls(genes=pd.Index(arrays["genes"].astype(str)), control_mean=arrays["control_mean"],
                   control_frac=arrays["control_frac"],
                   control_frac_source=meta["control_frac_source"], de_count=arrays["de_count"],
                   n_train=int(meta["n_train"]), mean_delta=arrays["mean_delta"],
                   knockdown_ratio=float(meta["knockdown_ratio"]),
                   common_delta=arrays["common_delta"], sig_magnitude=arrays["sig_magnitude"],
                   sig_sign=arrays["sig_sign"])
