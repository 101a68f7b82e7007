"""TransPert's cross-validation over the target's training perturbations (log1p scale throughout).

Each step returns a small typed result and sets nothing on the estimator; the estimator's ``fit``
assigns what it learns. The steps, in the order ``fit`` runs them:

1. :func:`fold_plan`: a seeded K-fold partition of the training perturbations (one per repeat);
2. :func:`out_of_fold`: for every fold, the line weights, the target's common effect and the
   reference aggregate are fit without the held-out perturbations, giving out-of-fold components
   of every training perturbation (:class:`OutOfFold`);
3. :func:`fit_specific_model`: per-gene transfer slopes and a low-rank map of reference effects
   onto target effects, stacked by non-negative least squares on the out-of-fold rows of every
   repeat (:class:`SpecificModel`), and the stacked out-of-fold specific component of each repeat;
4. :func:`choose_scales`: the scales of the common and the specific component on the
   out-of-fold predictions of every repeat (:class:`ScaleChoice`);
5. :func:`evaluate_deg_classifier`: the DEG classifier's out-of-fold probabilities, AUPRC and
   calibration (:class:`DEGEvaluation`); :func:`oof_deg_frequency`: the training DEG frequency,
   out of fold.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from transpert._progress import Progress
from transpert.transfer.aggregate import Aggregate, aggregate
from transpert.transfer.deg_classifier import (DEGClassifier, average_precision,
                                               calibration_table, de_logit, deg_features)
from transpert.transfer.gene_slopes import fit_gene_slopes
from transpert.transfer.low_rank import apply_low_rank, fit_low_rank, stack_weights
from transpert.transfer.scaling import DEFAULT_COMMON_SCALES, DEFAULT_SPECIFIC_SCALES, select_scale
from transpert.transfer.target import common_effect, knockdown_ratio, significant_effect

#: the aggregate's fields the DEG classifier reads, kept out of fold for repeat 0
_AGGREGATE_FIELDS = ("delta", "specific", "log2fc", "neglog10p", "frac_sig", "sign", "weight_sum")


def fold_plan(n: int, n_folds: int, random_state: int, repeat: int = 0) -> list[np.ndarray]:
    """A K-fold partition of ``n`` rows (sorted positions per fold); repeat 0 is seeded by
    ``random_state`` alone, so it is the single-repeat plan."""
    k = min(n_folds, n)
    seed = random_state if repeat == 0 else [random_state, repeat]
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(f) for f in np.array_split(order, k)]


@dataclass
class OutOfFold:
    """Out-of-fold components of every training perturbation (rows) x target gene (log1p deltas).

    ``common``: the target's common effect fit on the other folds; ``specific_raw``: the weighted
    reference specific effects; ``fixed``: values that override the model (the perturbed gene's
    knockdown, the common effect where no line measured the perturbation), NaN elsewhere;
    ``baseline``: the cell-mean baseline's delta. Repeat 0 also keeps the aggregate (for the DEG
    classifier) and the significant magnitudes and signs (for the DEG call's floor).
    """

    common: np.ndarray
    specific_raw: np.ndarray
    fixed: np.ndarray
    baseline: np.ndarray
    agg: Aggregate | None = None
    sig_magnitude: np.ndarray | None = None
    sig_sign: np.ndarray | None = None


def out_of_fold(model, target_delta: np.ndarray, target_sig: np.ndarray, perts: pd.Index,
                genes: pd.Index, folds: list[np.ndarray], *, scales_only: bool = False) -> OutOfFold:
    """Out-of-fold components of one fold plan, from a fitted ``model``'s lines and target stats.

    ``scales_only``: just what the specific model and the scale criterion need, not the
    aggregate and significant magnitudes the DEG classifier uses (repeats after the first: saves
    their memory).
    """
    n, g = target_delta.shape
    common = np.empty((n, g))
    specific = np.zeros((n, g))
    fixed = np.full((n, g), np.nan)
    baseline = np.empty((n, g))
    if not scales_only:
        sig_magnitude = np.zeros((n, g))
        sig_sign = np.zeros((n, g))
    agg_parts: dict[str, np.ndarray] = {}
    n_lines = np.zeros(n, dtype=np.int64)
    gene_col = genes.get_indexer(perts)
    target = model.target_
    with Progress(len(folds), "TransPert cross-validation", "fold", show=model.show_progress) as progress:
        for held in folds:
            fit_rows = np.setdiff1d(np.arange(n), held)
            weights = model._weights(target_delta, perts, fit_rows)["weight"]
            agg = aggregate(model.lines_, weights, list(perts[held]), g, model.shrinkage)
            train_mean = target_delta[fit_rows].mean(axis=0)
            common_fold = common_effect(target_delta[fit_rows], model.common_shrinkage, model.common_center)
            common[held] = common_fold
            # the cell-mean baseline's delta: mean over the groups incl. control, minus control
            baseline[held] = train_mean * len(fit_rows) / (len(fit_rows) + 1)
            specific[held] = np.nan_to_num(agg.specific, nan=0.0)
            fixed[held[agg.n_lines == 0]] = common_fold
            if not scales_only:
                sig_magnitude[held], sig_sign[held] = significant_effect(target_delta[fit_rows],
                                                                         target_sig[fit_rows])
            if model.knockdown:
                ratio = knockdown_ratio(target_delta[fit_rows], perts[fit_rows], genes, target.control_mean)
                if np.isfinite(ratio):
                    for i in held[gene_col[held] >= 0]:
                        ctrl = target.control_mean[gene_col[i]]
                        fixed[i, gene_col[i]] = np.log1p(ratio * np.expm1(ctrl)) - ctrl
            n_lines[held] = agg.n_lines
            for field in () if scales_only else _AGGREGATE_FIELDS:
                agg_parts.setdefault(field, np.empty((n, g)))[held] = getattr(agg, field)
            progress.update(1)
    if scales_only:
        return OutOfFold(common=common, specific_raw=specific, fixed=fixed, baseline=baseline)
    return OutOfFold(common=common, specific_raw=specific, fixed=fixed, baseline=baseline,
                     agg=Aggregate(perturbations=list(perts), n_lines=n_lines, lines=[[] for _ in perts],
                                   **agg_parts),
                     sig_magnitude=sig_magnitude, sig_sign=sig_sign)


@dataclass
class SpecificModel:
    """The perturbation-specific component's model: per-gene transfer slopes (shrunk toward the
    global slope) and a low-rank map of reference effects onto target effects, stacked."""

    gene_slopes: np.ndarray
    gene_slope_global: float
    low_rank_basis: np.ndarray
    low_rank_map: np.ndarray
    stack_weights: dict

    def apply(self, agg_specific: np.ndarray) -> np.ndarray:
        """The specific component (log1p delta) from aggregated reference specific effects."""
        raw = np.nan_to_num(agg_specific, nan=0.0)
        out = self.stack_weights["gene_wise"] * raw * self.gene_slopes[None, :]
        if self.stack_weights["low_rank"] > 0:
            out += self.stack_weights["low_rank"] * apply_low_rank(raw, self.low_rank_basis, self.low_rank_map)
        return out


def fit_specific_model(model, repeats: list[tuple[list[np.ndarray], OutOfFold]],
                       target_delta: np.ndarray) -> tuple[SpecificModel, list[np.ndarray]]:
    """Gene slopes and the low-rank map, stacked; and each repeat's out-of-fold specific component.

    ``repeats``: ``(folds, out-of-fold)`` per cross-validation repeat. Each fold's held-out rows
    get the two components fit on the other folds' rows; the stacking weights are fit on all
    out-of-fold rows of every repeat, the final components on repeat 0's out-of-fold reference
    effects and residuals (all training perturbations).
    """
    g = target_delta.shape[1]
    parts = [_oof_specific_parts(model, folds, oof, target_delta) for folds, oof in repeats]
    raw, residual = repeats[0][1].specific_raw, parts[0][2]
    if model.gene_slopes:
        slopes, slope_global = fit_gene_slopes(raw, residual, model.gene_slope_penalty)
    else:
        slopes, slope_global = np.ones(g), 1.0
    if model.low_rank > 0:
        basis, lr_map = fit_low_rank(raw, residual, model.low_rank, model.low_rank_ridge)
        alpha, beta = stack_weights(*(np.concatenate(x) for x in zip(*parts)))
    else:
        basis, lr_map = np.zeros((g, 0)), np.zeros((0, g))
        alpha, beta = 1.0, 0.0
    specific = SpecificModel(gene_slopes=slopes, gene_slope_global=slope_global, low_rank_basis=basis,
                             low_rank_map=lr_map,
                             stack_weights={"gene_wise": float(alpha), "low_rank": float(beta)})
    return specific, [alpha * gene_oof + beta * low_oof for gene_oof, low_oof, _ in parts]


def _oof_specific_parts(model, folds, oof: OutOfFold, target_delta: np.ndarray):
    """Out-of-fold gene-wise and low-rank predictions of one repeat, and the residual."""
    n, g = target_delta.shape
    raw = oof.specific_raw
    residual = target_delta - oof.common
    gene_oof = np.zeros((n, g))
    low_oof = np.zeros((n, g))
    for held in folds:
        fit_rows = np.setdiff1d(np.arange(n), held)
        beta = fit_gene_slopes(raw[fit_rows], residual[fit_rows], model.gene_slope_penalty)[0] \
            if model.gene_slopes else 1.0
        gene_oof[held] = raw[held] * beta
        if model.low_rank > 0:
            v, w = fit_low_rank(raw[fit_rows], residual[fit_rows], model.low_rank, model.low_rank_ridge)
            low_oof[held] = apply_low_rank(raw[held], v, w)
    return gene_oof, low_oof, residual


def untransferable(specific: SpecificModel, n_genes: int) -> SpecificModel:
    """The specific model when no training perturbation was measured by any reference line:
    nothing to learn the transfer from, so the reference effects are transferred as they are
    (unit slopes, no low-rank term), with a warning."""
    warnings.warn(
        "no target training perturbation is in any reference line: the transfer "
        "(gene slopes, low-rank map, scales) cannot be learnt; using the weighted "
        "reference effects unscaled", UserWarning, stacklevel=3)
    return SpecificModel(gene_slopes=np.ones(n_genes), gene_slope_global=1.0,
                         low_rank_basis=specific.low_rank_basis, low_rank_map=specific.low_rank_map,
                         stack_weights={"gene_wise": 1.0, "low_rank": 0.0})


@dataclass
class ScaleChoice:
    """The chosen scales and the criterion over the grid (``curve``, one row per pair)."""

    curve: pd.DataFrame
    common_scale: float
    specific_scale: float


def choose_scales(model, repeats: list[tuple[list[np.ndarray], OutOfFold]], specifics: list[np.ndarray],
                  target_delta: np.ndarray, perts: pd.Index, genes: pd.Index, *,
                  transferable: bool) -> ScaleChoice:
    """Scales of the common and the specific component, chosen on the out-of-fold predictions of
    every repeat (criterion averaged over repeats; PDS ranked within each fold with
    ``scale_pds="fold"``). Without anything ``transferable``, both scales are 1."""
    if not transferable:
        common_grid, specific_grid = (1.0,), (1.0,)
    else:
        common_grid = (1.0,) if model.scale_components == "specific" else \
            tuple(model.common_scales if model.common_scales is not None else DEFAULT_COMMON_SCALES)
        specific_grid = tuple(model.specific_scales if model.specific_scales is not None
                              else DEFAULT_SPECIFIC_SCALES)
    n = len(perts)
    groups = [f + r * n for r, (folds, _) in enumerate(repeats) for f in folds]
    curve, common_scale, specific_scale = select_scale(
        np.concatenate([o.common for _, o in repeats]), np.concatenate(specifics),
        np.concatenate([o.fixed for _, o in repeats]), np.tile(target_delta, (len(repeats), 1)),
        list(perts) * len(repeats), list(genes), common_scales=common_grid,
        specific_scales=specific_grid, metric=model.scale_metric,
        baseline=np.concatenate([o.baseline for _, o in repeats]), threads=model.threads,
        groups=groups if model.scale_pds == "fold" else None)
    return ScaleChoice(curve=curve, common_scale=common_scale, specific_scale=specific_scale)


@dataclass
class DEGEvaluation:
    """The DEG classifier's out-of-fold probabilities (training perturbations x genes), with its
    held-out AUPRC (``report``) and calibration table."""

    probability: np.ndarray
    report: dict
    calibration: pd.DataFrame


def evaluate_deg_classifier(model, folds: list[np.ndarray], oof: OutOfFold,
                            target_sig: np.ndarray) -> DEGEvaluation:
    """Fit the DEG classifier fold by fold and predict each held-out fold's significant genes."""
    n, g = target_sig.shape
    target = model.target_
    gene_col = target.genes.get_indexer(pd.Index(oof.agg.perturbations))
    prob = np.empty((n, g))
    for held in folds:
        fit_rows = np.setdiff1d(np.arange(n), held)
        count = target_sig[fit_rows].sum(axis=0)
        X_fit = deg_features(_rows(oof.agg, fit_rows), de_logit(count - target_sig[fit_rows], len(fit_rows) - 1),
                             target.control_mean, target.control_frac, gene_col[fit_rows])
        clf = DEGClassifier(model.deg_alpha, model.deg_max_rows, model.random_state).fit(
            X_fit, target_sig[fit_rows].ravel())
        X_held = deg_features(_rows(oof.agg, held), de_logit(count, len(fit_rows)),
                              target.control_mean, target.control_frac, gene_col[held])
        prob[held] = clf.predict_proba(X_held).reshape(len(held), g)
    per_pert = [average_precision(target_sig[i], prob[i]) for i in range(n)]
    report = {
        "auprc": average_precision(target_sig.ravel(), prob.ravel()),
        "prevalence": float(target_sig.mean()),
        "mean_auprc_per_perturbation": float(np.nanmean(per_pert)) if np.isfinite(per_pert).any() else np.nan,
        "n_perturbations": int(n), "n_folds": len(folds),
    }
    return DEGEvaluation(probability=prob, report=report,
                         calibration=calibration_table(target_sig.ravel(), prob.ravel()))


def oof_deg_frequency(folds: list[np.ndarray], target_sig: np.ndarray) -> np.ndarray:
    """Out-of-fold DEG frequency: per fold, the fraction of the other folds' perturbations in
    which each gene was significant."""
    out = np.empty(target_sig.shape)
    for held in folds:
        fit_rows = np.setdiff1d(np.arange(target_sig.shape[0]), held)
        out[held] = target_sig[fit_rows].mean(axis=0)
    return out


def _rows(agg: Aggregate, rows: np.ndarray) -> Aggregate:
    """The aggregate restricted to some perturbations (rows)."""
    return Aggregate(perturbations=[agg.perturbations[i] for i in rows],
                     delta=agg.delta[rows], specific=agg.specific[rows], log2fc=agg.log2fc[rows],
                     neglog10p=agg.neglog10p[rows], frac_sig=agg.frac_sig[rows],
                     sign=agg.sign[rows], weight_sum=agg.weight_sum[rows],
                     n_lines=agg.n_lines[rows], lines=[agg.lines[i] for i in rows])
