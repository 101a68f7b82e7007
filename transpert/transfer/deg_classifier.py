"""Which genes will be significantly changed in the target: a penalised logistic regression.

One row per (perturbation, gene); the label is "fdr < threshold in the target". Features
(:data:`FEATURES`), all computed without the row's own label:

* from the references (weighted over the lines that perturbed p and measured g, see
  :mod:`transpert.transfer.aggregate`; 0 where no line did): ``log1p(-log10 p)``,
  ``log1p(|log2FC|)``, direction agreement ``|weighted mean sign(delta)|``, weighted fraction of
  lines significant, ``|weighted delta|`` (log1p scale), and ``has_reference`` (1 when some line
  measured the pair);
* from the target: how often the gene is DE across the target's training perturbations, as a
  smoothed logit ``log((c + 0.5) / (n - c + 0.5))`` with c of n perturbations (for a training row
  the row's own perturbation is left out of c and n: leave-one-out, so the label does not leak);
  the gene's log1p control mean and the fraction of control cells expressing it; and
  ``is_target_gene`` (the perturbed gene itself, knocked down).

Features are standardised with the training rows' mean and sd, then a binomial GLM with an L2
penalty (``statsmodels`` ``GLM(..., Binomial()).fit_regularized(L1_wt=0)``, the intercept not
penalised) is fit. Large training sets are subsampled uniformly (``max_rows``), which keeps the
probabilities calibrated.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError
from transpert.transfer.aggregate import Aggregate

FEATURES = ("ref_log1p_neglog10p", "ref_log1p_abs_log2fc", "ref_sign_agreement", "ref_frac_sig",
            "ref_abs_delta", "has_reference", "target_de_logit", "target_control_mean",
            "target_control_frac", "is_target_gene")


def de_logit(count: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """Smoothed logit of a DE frequency: ``log((c + 0.5) / (n - c + 0.5))``."""
    return np.log((count + 0.5) / (n - count + 0.5))


def deg_features(agg: Aggregate, target_de_logit: np.ndarray, control_mean: np.ndarray,
                 control_frac: np.ndarray, gene_of_perturbation: np.ndarray) -> np.ndarray:
    """Feature matrix ``(n_perts * n_genes, len(FEATURES))``, rows perturbation-major.

    ``target_de_logit``: per gene ``(n_genes,)`` or per row ``(n_perts, n_genes)``;
    ``control_mean`` (log1p) and ``control_frac`` per gene; ``gene_of_perturbation``: for each
    perturbation the column of its own gene among the target genes, -1 if none.
    """
    n_p, n_g = agg.delta.shape
    has = agg.weight_sum > 0

    def f(x):
        return np.where(has, np.nan_to_num(x, nan=0.0), 0.0)

    is_target = np.zeros((n_p, n_g))
    ok = gene_of_perturbation >= 0
    is_target[np.flatnonzero(ok), gene_of_perturbation[ok]] = 1.0
    cols = [
        np.log1p(f(agg.neglog10p)), np.log1p(np.abs(f(agg.log2fc))), np.abs(f(agg.sign)),
        f(agg.frac_sig), np.abs(f(agg.delta)), has.astype(np.float64),
        np.broadcast_to(target_de_logit, (n_p, n_g)),
        np.broadcast_to(control_mean, (n_p, n_g)), np.broadcast_to(control_frac, (n_p, n_g)),
        is_target,
    ]
    return np.stack([np.asarray(c, dtype=np.float64).ravel() for c in cols], axis=1)


class DEGClassifier:
    """L2-penalised logistic regression of "gene DE in the target" on :data:`FEATURES`.

    ``alpha``: ridge penalty per observation (statsmodels' scaling: the loss is the mean negative
    log-likelihood + ``alpha/2 * |beta|^2`` on standardised features). Learned: ``coef_``
    (intercept first), ``feature_mean_``, ``feature_scale_``, ``n_rows_``, ``prevalence_``.
    """

    def __init__(self, alpha: float = 1e-4, max_rows: int = 300_000, random_state: int = 0):
        self.alpha = alpha
        self.max_rows = max_rows
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> "DEGClassifier":
        import statsmodels.api as sm
        from statsmodels.tools.sm_exceptions import ConvergenceWarning

        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if X.ndim != 2 or len(X) != len(y) or len(y) == 0:
            raise TranspertInputError(f"DEG classifier: X {X.shape} and y {y.shape} do not match")
        if self.alpha < 0:
            raise TranspertInputError(f"DEG classifier: alpha must be >= 0, got {self.alpha!r}")
        if len(y) > self.max_rows:
            keep = np.random.default_rng(self.random_state).choice(len(y), self.max_rows, replace=False)
            X, y = X[np.sort(keep)], y[np.sort(keep)]
        self.n_rows_ = len(y)
        self.prevalence_ = float(y.mean())
        self.feature_mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.feature_scale_ = np.where(scale > 0, scale, 1.0)  # constant features stay at 0
        if y.min() == y.max():
            # one class only: the MLE is at infinity; predict the (smoothed) base rate
            p = (y.sum() + 0.5) / (len(y) + 1.0)
            self.coef_ = np.zeros(X.shape[1] + 1)
            self.coef_[0] = np.log(p / (1 - p))
            return self
        Z = sm.add_constant(self._standardise(X), has_constant="add")
        alpha = np.full(Z.shape[1], float(self.alpha))
        alpha[0] = 0.0  # do not shrink the intercept (the base rate)
        model = sm.GLM(y, Z, family=sm.families.Binomial())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            result = model.fit_regularized(alpha=alpha, L1_wt=0.0)
        self.coef_ = np.asarray(result.params, dtype=np.float64)
        return self

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        return (X - self.feature_mean_) / self.feature_scale_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(DE) for each row of ``X`` (a vector, not sklearn's two columns)."""
        eta = self.coef_[0] + self._standardise(np.asarray(X, dtype=np.float64)) @ self.coef_[1:]
        return 1.0 / (1.0 + np.exp(-np.clip(eta, -50, 50)))

    def coefficients(self) -> pd.Series:
        """The fitted coefficients on standardised features, named."""
        return pd.Series(self.coef_, index=["intercept", *FEATURES])

    def to_dict(self) -> dict:
        return {"alpha": self.alpha, "max_rows": self.max_rows, "random_state": self.random_state,
                "coef": self.coef_.tolist(), "feature_mean": self.feature_mean_.tolist(),
                "feature_scale": self.feature_scale_.tolist(), "n_rows": self.n_rows_,
                "prevalence": self.prevalence_, "features": list(FEATURES)}

    @classmethod
    def from_dict(cls, d: dict) -> "DEGClassifier":
        if list(d["features"]) != list(FEATURES):
            raise TranspertInputError(
                f"saved DEG classifier has features {d['features']}, this version uses {list(FEATURES)}")
        clf = cls(alpha=d["alpha"], max_rows=d["max_rows"], random_state=d["random_state"])
        clf.coef_ = np.asarray(d["coef"], dtype=np.float64)
        clf.feature_mean_ = np.asarray(d["feature_mean"], dtype=np.float64)
        clf.feature_scale_ = np.asarray(d["feature_scale"], dtype=np.float64)
        clf.n_rows_ = int(d["n_rows"])
        clf.prevalence_ = float(d["prevalence"])
        return clf


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the precision-recall curve as ``sklearn.metrics.average_precision_score``.

    ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds, highest first (tied scores
    enter together). NaN when ``y`` has no positive.
    """
    y = np.asarray(y, dtype=bool).ravel()
    score = np.asarray(score, dtype=np.float64).ravel()
    if not y.any():
        return np.nan
    order = np.argsort(-score, kind="mergesort")
    s, yy = score[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # end of each tie block
    tps = np.cumsum(yy)[last]
    precision = tps / (last + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def calibration_table(y: np.ndarray, prob: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Binned calibration: for equal-width probability bins, mean predicted vs observed rate.

    Columns ``bin_low``, ``bin_high``, ``n``, ``mean_predicted``, ``observed_rate`` (empty bins
    dropped). A calibrated classifier has ``mean_predicted ~ observed_rate`` in every bin.
    """
    y = np.asarray(y, dtype=np.float64).ravel()
    prob = np.asarray(prob, dtype=np.float64).ravel()
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(prob, edges[1:-1], right=False), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        m = which == b
        if m.any():
            rows.append({"bin_low": edges[b], "bin_high": edges[b + 1], "n": int(m.sum()),
                         "mean_predicted": float(prob[m].mean()), "observed_rate": float(y[m].mean())})
    return pd.DataFrame(rows, columns=["bin_low", "bin_high", "n", "mean_predicted", "observed_rate"])
