"""The TransPert estimator: transfer perturbation effects from reference lines to a target line.

All inputs and outputs are summary profiles on the log1p scale (natural log1p of counts
normalised to the median library size). The fit, step by step:

1. align every reference line to the target's genes (:mod:`.reference`);
2. weight the lines by how well their effects agree with the target's on the shared training
   perturbations and how alike their controls are (:mod:`.similarity`) -> ``weights_``;
3. K-fold over the target's training perturbations, repeated ``cv_repeats`` times with
   different random fold plans: in each fold, weights and the target's typical (median, shrunk)
   effect from the other folds, reference aggregate for the held-out ones (:mod:`.aggregate`),
   giving out-of-fold predictions of every training perturbation in every repeat;
4. the specific component's model: per-gene transfer slopes (:mod:`.gene_slopes`,
   ``gene_slopes_``) and a low-rank map of reference effects onto target effects
   (:mod:`.low_rank`), stacked by non-negative least squares on out-of-fold predictions
   (``stack_weights_``); then choose the scales of the common and the perturbation-specific
   component on those out-of-fold predictions by a balanced challenge-score proxy or PDS
   (:mod:`.scaling`) -> ``scale_curve_``, ``common_scale_``, ``specific_scale_``;
5. the DEG classifier (:mod:`.deg_classifier`): evaluated fold by fold on held-out training
   perturbations (``deg_report_``, ``deg_calibration_``), then fit on all of them; the
   probability threshold of the DEG call chosen on the out-of-fold probabilities by DES
   (:mod:`.deg_call`, ``deg_threshold_``), jointly with the call's source (``deg_source_``): the
   classifier's probability or the target's plain training DEG frequency, whichever recovers the
   held-out perturbations' significant genes better (the classifier on ties).

``predict`` combines the same pieces for any perturbations (a training perturbation is
predicted from the references too, not copied); a perturbation that no reference line measured
gets the target's common training effect (per gene the median over the training
perturbations, shrunk; ``source = "target_train_mean"``, the name kept for compatibility, with a
warning).

Out-of-fold care: weights, the target's common effect, the knockdown ratio, the gene slopes and the
low-rank map are refit without each held-out fold; the two stacking weights and the scales are
then chosen on all out-of-fold rows (a mild optimism of the reported curve, 2-4 numbers).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError
from transpert.summarize import log2fc
from transpert.summarize._contract import (TARGET_LAYERS, check_perturbations, check_references,
                                           check_summary, dense_layer)
from transpert.transfer._params import DEG_SOURCES, check_params
from transpert.transfer.aggregate import aggregate
from transpert.transfer.cross_validation import (SpecificModel, choose_scales, evaluate_deg_classifier,
                                                 fit_specific_model, fold_plan, oof_deg_frequency,
                                                 out_of_fold, untransferable)
from transpert.transfer.deg_call import DEFAULT_DEG_THRESHOLDS, best_row, select_deg_threshold
from transpert.transfer.deg_classifier import DEGClassifier, de_logit, deg_features
from transpert.transfer.reference import ReferenceLine
from transpert.transfer.similarity import line_weights
from transpert.transfer.target import TargetStats

SOURCE_REFERENCES = "references"
SOURCE_FALLBACK = "target_train_mean"


class TransPert:
    """Statistical transfer of perturbation effects from reference cell lines (TransPert).

    The measurements behind each default are in ``benchmarks/README.md`` ("Why TransPert's
    defaults").

    Parameters
    ----------
    weighting : {"softmax", "uniform"}
        How line scores become weights (:func:`transpert.transfer.similarity.line_weights`).
    temperature : float
        Softmax temperature on the line score (smaller = more weight on the most similar line).
    delta_weight, control_weight : float
        Weights of effect agreement and control-profile similarity in the line score.
    min_shared : int
        Training perturbations a line must share with the target for its effect agreement to
        count.
    shrinkage : {"js", "significant", "none"}
        How each reference's perturbation-specific effects are shrunk by their own significance
        before they are combined (:func:`transpert.transfer.aggregate.aggregate`).
    gene_slopes : bool
        Multiply each gene's specific effect by its transfer slope, learnt on the training
        perturbations and shrunk toward the global slope (:mod:`transpert.transfer.gene_slopes`).
    gene_slope_penalty : float
        Strength of that shrinkage (in units of the median gene's signal; 0 = none).
    low_rank : int
        Rank of the low-rank map from reference effects to target effects
        (:mod:`transpert.transfer.low_rank`); 0 leaves it out.
    low_rank_ridge : float
        Ridge penalty of that map (relative to the median squared singular value kept).
    common_shrinkage : float
        How strongly each gene's typical training effect (the common component) is shrunk towards
        0 by its own standard error (:func:`transpert.transfer.target.common_effect`): 1
        (default) is the positive-part James-Stein estimate, 0 the plain mean.
    scale_components : {"both", "specific"}
        Scale the common (target's typical effect) and the specific component separately, or only
        the specific one (common fixed at 1).
    common_scales, specific_scales : sequence of float or None
        Grids searched (None: :data:`~transpert.transfer.scaling.DEFAULT_COMMON_SCALES`,
        :data:`~transpert.transfer.scaling.DEFAULT_SPECIFIC_SCALES`).
    scale_metric : {"balanced", "proxy", "pds", "mae"}
        Criterion for the scale, evaluated on out-of-fold predictions of the training
        perturbations (see :mod:`transpert.transfer.scaling`). The default, ``"balanced"``, is
        the mean of the baseline-normalised PDS (clipped at 0, as the challenge) and MAE (not
        clipped).
    scale_pds : {"fold", "pooled"}
        How the scale criterion's PDS ranks the out-of-fold predictions: ``"fold"`` (default)
        ranks each held-out training perturbation among its own fold only, as the challenge
        ranks a test perturbation among the test set; ``"pooled"`` ranks it among all training
        perturbations, which penalises the common component (fit on the others, so closer to
        them) for a reason the evaluation does not have (:func:`~transpert.transfer.scaling.select_scale`).
    common_center : {"median", "mean"}
        The common component's centre per gene over the training perturbations
        (:func:`transpert.transfer.target.common_effect`), before the shrinkage. ``"median"``
        (default): MAE is an absolute error, whose best constant prediction is the median, and
        a few perturbations with large effects pull the mean away from the typical one.
    cv_folds : int
        Folds over the target's training perturbations (capped at their number).
    cv_repeats : int
        Repeats of the K-fold cross-validation, each with its own random fold plan (repeat 0
        is the plan of ``folds_``). The scales and the stacking weights are chosen on the
        out-of-fold predictions of every repeat (the criterion averaged over repeats, PDS still
        ranked within each repeat's folds); the DEG classifier and threshold use repeat 0. Why:
        with a few training perturbations the criterion of one fold plan is noisy (on Datlinger,
        10 training perturbations in folds of 2, the chosen specific scale ranged over 0-2.25
        for the same data split differently), and averaging over fold plans is the standard
        remedy for that variance (repeated K-fold).
    fdr_threshold : float
        A gene is significant when its FDR is below this (0.05, as the challenge).
    deg_thresholds : sequence of float or None
        DEG-probability thresholds from which a gene is called DE in a prediction
        (``obs["n_de_genes"]``, what the writer shifts in every cell); the one with the best
        out-of-fold DES is chosen (:mod:`transpert.transfer.deg_call`; ``deg_threshold_``,
        ``deg_threshold_curve_``). None: :data:`~transpert.transfer.deg_call.DEFAULT_DEG_THRESHOLDS`;
        one value: that threshold.
    deg_sources : sequence of {"classifier", "frequency"}
        Candidate scores for the DEG call, chosen with the threshold by out-of-fold DES
        (``deg_source_``; the first listed wins ties): the classifier's probability, or the
        fraction of training perturbations in which the gene was significant (what the
        ``deg-frequency`` baseline calls). Why both: with a handful of significant
        (perturbation, gene) pairs in the whole training set (the Datlinger data: 2-4 among
        15 x 2,000) the penalised classifier gives every gene a probability below any
        threshold, while the frequency still says which gene recurs. The chosen score is the
        prediction's ``deg_probability``.
    deg_magnitude : {"auto", "floor", "model"}
        ``"auto"`` (default): ``"floor"`` when the DEG call comes from the training DEG frequency
        (``deg_source_ == "frequency"``: a target-only call that says which gene recurs, not by
        how much it moves in this perturbation, so it gets the size it has when it does),
        ``"model"`` when it comes from the classifier (whose calls go with the model's own
        perturbation-specific deltas). ``"floor"``: a gene called DE (probability >=
        ``deg_threshold_``) is predicted to move by at least the mean ``|delta|`` it had in the
        training perturbations where it was significant
        (:func:`transpert.transfer.target.significant_effect`; direction from the model's own
        delta, or from those training effects when the model predicts no change), so that the
        written cells make it significant as called; the threshold's cross-validated DES sees the
        same rule. ``"model"``: the model's delta as is.
    deg_alpha : float
        Ridge penalty of the DEG classifier (statsmodels scaling, standardised features).
    deg_max_rows : int
        Rows (perturbation x gene) the classifier is fit on at most (uniform subsample).
    knockdown : bool
        Predict the perturbed gene's own expression from the target's median knockdown ratio.
    random_state : int
        Seed of the folds and the subsampling.
    threads : int or None
        Cores for the PDS computation (see :mod:`transpert._parallel`).
    show_progress : bool or None
        Progress of the cross-validation (None: a bar on a terminal).

    Examples
    --------
    >>> from transpert.summarize import summarize
    >>> from transpert.transfer import TransPert
    >>> refs = {"K562": summarize("replogle_k562_essential"), "RPE1": summarize("replogle_rpe1")}  # doctest: +SKIP
    >>> model = TransPert().fit(refs, summarize("h1_train.h5ad"))  # doctest: +SKIP
    >>> prediction = model.predict(["GENE1", "GENE2"])  # doctest: +SKIP
    >>> model.weights_["weight"]  # doctest: +SKIP
    """

    def __init__(self, weighting: str = "softmax", temperature: float = 0.05,
                 delta_weight: float = 1.0, control_weight: float = 0.5, min_shared: int = 2,
                 shrinkage: str = "js", gene_slopes: bool = True, gene_slope_penalty: float = 1.0,
                 low_rank: int = 10, low_rank_ridge: float = 0.1,
                 common_shrinkage: float = 1.0, scale_components: str = "both", common_scales: Sequence[float] | None = None,
                 specific_scales: Sequence[float] | None = None, scale_metric: str = "balanced",
                 scale_pds: str = "fold", common_center: str = "median",
                 cv_folds: int = 5, cv_repeats: int = 5, fdr_threshold: float = 0.05,
                 deg_thresholds: Sequence[float] | None = None,
                 deg_sources: Sequence[str] = DEG_SOURCES, deg_magnitude: str = "auto",
                 deg_alpha: float = 1e-4,
                 deg_max_rows: int = 300_000, knockdown: bool = True, random_state: int = 0,
                 threads: int | None = None, show_progress: bool | None = False):
        self.weighting = weighting
        self.temperature = temperature
        self.delta_weight = delta_weight
        self.control_weight = control_weight
        self.min_shared = min_shared
        self.shrinkage = shrinkage
        self.gene_slopes = gene_slopes
        self.gene_slope_penalty = gene_slope_penalty
        self.low_rank = low_rank
        self.low_rank_ridge = low_rank_ridge
        self.common_shrinkage = common_shrinkage
        self.scale_components = scale_components
        self.common_scales = common_scales
        self.specific_scales = specific_scales
        self.scale_metric = scale_metric
        self.scale_pds = scale_pds
        self.common_center = common_center
        self.cv_folds = cv_folds
        self.cv_repeats = cv_repeats
        self.fdr_threshold = fdr_threshold
        self.deg_thresholds = deg_thresholds
        self.deg_sources = deg_sources
        self.deg_magnitude = deg_magnitude
        self.deg_alpha = deg_alpha
        self.deg_max_rows = deg_max_rows
        self.knockdown = knockdown
        self.random_state = random_state
        self.threads = threads
        self.show_progress = show_progress

    # ----------------------------------------------------------------- sklearn conventions
    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        """The constructor parameters (scikit-learn convention)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> "TransPert":
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise TranspertInputError(f"TransPert has no parameter {name!r}; parameters: {valid}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        default = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if v != default[k]]
        return f"TransPert({', '.join(changed)})"

    # ----------------------------------------------------------------------------- fit
    def fit(self, references: Mapping, target_train) -> "TransPert":
        """Fit on reference summary profiles ``{line: AnnData}`` and the target's training summary.

        Summaries as :func:`transpert.summarize.summarize` writes them (log1p scale). The target
        needs layers ``delta`` and ``fdr`` and var ``control_mean``; references also ``log2fc`` and
        ``pvalue``. Returns ``self``.
        """
        check_params(self)
        check_references(references)
        check_summary(target_train, "target_train", TARGET_LAYERS, min_obs=2)
        target_delta = _finite_delta(target_train)
        target_sig = np.nan_to_num(dense_layer(target_train, "fdr"), nan=1.0) < self.fdr_threshold
        genes = pd.Index(target_train.var_names.astype(str))
        perts = pd.Index(target_train.obs_names.astype(str))

        # 1. the target's statistics and the reference lines, aligned to the target's genes
        self.target_ = TargetStats.from_summary(target_train, self.fdr_threshold,
                                                self.common_shrinkage, self.common_center)
        self.lines_ = _reference_lines(references, genes, self.fdr_threshold)
        # 2. line weights from all training perturbations
        self.weights_ = self._weights(target_delta, perts, np.arange(len(perts)))
        # 3. out-of-fold components over cv_repeats fold plans (repeat 0's plan is folds_)
        self.folds_ = fold_plan(len(perts), self.cv_folds, self.random_state)
        repeats = [(self.folds_, out_of_fold(self, target_delta, target_sig, perts, genes, self.folds_))]
        for r in range(1, self.cv_repeats):
            folds = fold_plan(len(perts), self.cv_folds, self.random_state, r)
            repeats.append((folds, out_of_fold(self, target_delta, target_sig, perts, genes, folds,
                                               scales_only=True)))
        oof = repeats[0][1]
        # 4. the specific component's model (gene slopes, low-rank map, stacking)
        specific, oof_specifics = fit_specific_model(self, repeats, target_delta)
        transferable = bool(np.any(oof.specific_raw))
        if not transferable:
            specific = untransferable(specific, len(genes))
        self.gene_slopes_, self.gene_slope_global_ = specific.gene_slopes, specific.gene_slope_global
        self.low_rank_basis_, self.low_rank_map_ = specific.low_rank_basis, specific.low_rank_map
        self.stack_weights_ = specific.stack_weights
        # 5. the scales of the common and the specific component
        scales = choose_scales(self, repeats, oof_specifics, target_delta, perts, genes,
                               transferable=transferable)
        self.scale_curve_ = scales.curve
        self.common_scale_, self.specific_scale_ = scales.common_scale, scales.specific_scale
        # 6. the DEG classifier, evaluated on held-out folds
        deg_eval = evaluate_deg_classifier(self, self.folds_, oof, target_sig)
        self.deg_report_, self.deg_calibration_ = deg_eval.report, deg_eval.calibration
        # 7. the DEG call: its source and threshold, by out-of-fold DES
        oof_delta = self.common_scale_ * oof.common + self.specific_scale_ * oof_specifics[0]
        self.deg_source_, self.deg_threshold_, self.deg_threshold_curve_ = self._choose_deg_call(
            oof, oof_delta, {"classifier": deg_eval.probability,
                             "frequency": oof_deg_frequency(self.folds_, target_sig)}, target_sig)
        # 8. the classifier used for prediction: all training perturbations, leave-one-out DE rate
        X = deg_features(oof.agg, de_logit(self.target_.de_count - target_sig, len(perts) - 1),
                         self.target_.control_mean, self.target_.control_frac,
                         genes.get_indexer(perts))
        self.deg_classifier_ = DEGClassifier(self.deg_alpha, self.deg_max_rows,
                                             self.random_state).fit(X, target_sig.ravel())
        self.n_features_in_ = X.shape[1]
        self.genes_ = genes
        self.train_perturbations_ = perts
        return self

    def _choose_deg_call(self, oof, oof_delta, scores: dict, target_sig) -> tuple[str, float, pd.DataFrame]:
        """The DEG call's source and probability threshold with the best out-of-fold DES, and the
        curve over every (source, threshold) tried."""
        fixed = np.isfinite(oof.fixed)
        # DES ranks the called genes by |log2FC|: rank them as they will be predicted. The floor
        # applies to every called gene, so flooring every gene ranks the called ones exactly as
        # the prediction will; the knocked-down gene keeps its fixed value.
        floored = np.where(fixed, oof.fixed, _floor_called(
            oof_delta, np.ones_like(target_sig), oof.sig_magnitude, oof.sig_sign))
        oof_delta = np.where(fixed, oof.fixed, oof_delta)
        grid = DEFAULT_DEG_THRESHOLDS if self.deg_thresholds is None else tuple(self.deg_thresholds)
        curves = []
        for source in ([self.deg_sources] if isinstance(self.deg_sources, str) else self.deg_sources):
            ranked = floored if self._floors(source) else oof_delta
            curve, _ = select_deg_threshold(scores[source], ranked, target_sig,
                                            self.target_.control_mean, grid)
            curves.append(curve.assign(source=source))
        # over both sources, as within one: best DES, then more genes called, then listed first
        curve = pd.concat(curves, ignore_index=True)
        best = best_row(curve)
        curve["chosen"] = np.arange(len(curve)) == best
        return str(curve["source"].iloc[best]), float(curve["threshold"].iloc[best]), curve

    def _weights(self, target_delta, perts, rows) -> pd.DataFrame:
        return line_weights(self.lines_, target_delta[rows], perts[rows], self.target_.genes,
                            self.target_.control_mean, method=self.weighting,
                            delta_weight=self.delta_weight, control_weight=self.control_weight,
                            temperature=self.temperature, min_shared=self.min_shared)

    def _specific(self, agg_specific: np.ndarray) -> np.ndarray:
        """The model's specific component from aggregated reference specific effects."""
        return SpecificModel(self.gene_slopes_, self.gene_slope_global_, self.low_rank_basis_,
                             self.low_rank_map_, self.stack_weights_).apply(agg_specific)

    def _floors(self, source: str) -> bool:
        """Whether called genes get the significant-magnitude floor with this DEG source."""
        return self.deg_magnitude == "floor" or (self.deg_magnitude == "auto" and source == "frequency")

    # ------------------------------------------------------------------------- predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "deg_classifier_"):
            raise TranspertInputError("this TransPert is not fitted yet: call fit(references, target_train)")

    def predict(self, perturbations: Sequence[str]):
        """Predicted target summaries for ``perturbations`` (AnnData, log1p scale).

        obs = perturbations with ``source`` (``"references"`` or ``"target_train_mean"`` when no
        reference line measured it) and ``n_reference_lines``; var = target genes with
        ``control_mean``; layers ``mean`` (control mean + delta, clipped at 0; also ``X``),
        ``delta``, ``log2fc`` (pdex's, from the predicted and control means),
        ``deg_probability`` (the chosen call score, ``deg_source_``: the classifier's probability or
        the training DEG frequency); obs ``n_de_genes``: genes with
        ``deg_probability >= deg_threshold_``. With ``deg_magnitude="floor"`` the called genes'
        deltas are at least their significant training magnitude.
        """
        import anndata as ad

        self._check_fitted()
        perts = check_perturbations(perturbations)
        t = self.target_
        n, g = len(perts), len(t.genes)
        weights = self.weights_["weight"]
        agg = aggregate(self.lines_, weights, perts, g, self.shrinkage)
        delta = self.common_scale_ * t.common_delta[None, :] + \
            self.specific_scale_ * self._specific(agg.specific)
        none = agg.n_lines == 0
        delta[none] = t.common_delta
        gene_col = t.genes.get_indexer(pd.Index(perts))
        X = deg_features(agg, de_logit(t.de_count, t.n_train), t.control_mean, t.control_frac,
                         gene_col)
        if self.deg_source_ == "frequency":
            prob = np.tile(t.de_count / t.n_train, (n, 1))
        else:
            prob = self.deg_classifier_.predict_proba(X).reshape(n, g)
        if self._floors(self.deg_source_):
            delta = _floor_called(delta, prob >= self.deg_threshold_,
                                  t.sig_magnitude[None, :], t.sig_sign[None, :])
        if self.knockdown:  # the perturbed gene's own expression: the measured knockdown ratio
            for i in np.flatnonzero(gene_col >= 0):
                kd = t.knockdown_delta(gene_col[i])
                if np.isfinite(kd):
                    delta[i, gene_col[i]] = kd
        if none.any():
            missing = [p for p, m in zip(perts, none) if m]
            warnings.warn(
                f"{len(missing)} perturbation(s) are in no reference line and are predicted by "
                f"the target's common training effect (source 'target_train_mean'): "
                f"{missing[:10]}{' ...' if len(missing) > 10 else ''}", UserWarning, stacklevel=2)
        mean = np.clip(t.control_mean[None, :] + delta, 0.0, None)
        delta = mean - t.control_mean[None, :]
        obs = pd.DataFrame({
            "source": pd.Categorical(np.where(none, SOURCE_FALLBACK, SOURCE_REFERENCES),
                                     categories=[SOURCE_REFERENCES, SOURCE_FALLBACK]),
            "n_reference_lines": agg.n_lines.astype(np.int64),
            # genes called DE (what the writer shifts in every cell): the cross-validated threshold
            "n_de_genes": (prob >= self.deg_threshold_).sum(axis=1).astype(np.int64),
        }, index=pd.Index(perts, name="perturbation"))
        var = pd.DataFrame({"control_mean": t.control_mean}, index=pd.Index(t.genes, name="gene"))
        out = ad.AnnData(X=mean.astype(np.float32), obs=obs, var=var)
        out.layers["mean"] = mean.astype(np.float32)
        out.layers["delta"] = delta.astype(np.float32)
        out.layers["log2fc"] = log2fc(mean, t.control_mean).astype(np.float32)
        out.layers["deg_probability"] = prob.astype(np.float32)
        out.uns["transpert_prediction"] = {"method": "transpert", "scale": "log1p",
                                "common_scale": self.common_scale_,
                                "specific_scale": self.specific_scale_,
                                "deg_source": self.deg_source_,
                                "deg_threshold": self.deg_threshold_}
        return out

    # ----------------------------------------------------------------- save / load
    def save(self, path) -> "TransPert":
        """Write the fitted model to directory ``path`` (``model.json`` + ``arrays.npz``; no pickle)."""
        from transpert.transfer.serialize import save_model

        self._check_fitted()
        save_model(self, path)
        return self

    @classmethod
    def load(cls, path) -> "TransPert":
        """Read a model written by :meth:`save`."""
        from transpert.transfer.serialize import load_model

        return load_model(cls, path)


def _floor_called(delta: np.ndarray, called: np.ndarray, magnitude: np.ndarray,
                  sign: np.ndarray) -> np.ndarray:
    """``delta`` (log1p) with every called gene moved by at least ``magnitude``: direction of
    ``delta`` itself, or ``sign`` where ``delta`` is 0 (arrays broadcast to ``delta``)."""
    direction = np.where(delta != 0, np.sign(delta), sign)
    floored = direction * np.maximum(np.abs(delta), magnitude)
    return np.where(called & (magnitude > 0), floored, delta)


def _finite_delta(target_train) -> np.ndarray:
    """The target's training deltas (log1p), which must all be finite."""
    delta = dense_layer(target_train, "delta")
    if not np.isfinite(delta).all():
        r, c = np.argwhere(~np.isfinite(delta))[0]
        raise TranspertInputError(
            f"target_train: layer 'delta' must be finite; perturbation {target_train.obs_names[r]!r}, "
            f"gene {target_train.var_names[c]!r} has {delta[r, c]!r}")
    return delta


def _reference_lines(references: Mapping, genes: pd.Index, fdr_threshold: float) -> list[ReferenceLine]:
    """Every reference line aligned to the target's genes; a line sharing no gene is an error."""
    lines = [ReferenceLine.from_summary(name, ref, genes, fdr_threshold) for name, ref in references.items()]
    for line in lines:
        if len(line.gene_positions) == 0:
            raise TranspertInputError(
                f"reference line {line.name!r} shares no gene with target_train "
                f"(e.g. reference {references[line.name].var_names[0]!r}, target {genes[0]!r})")
    return lines
