"""What every predictor shares: checking summary profiles, aligning genes, building a prediction.

A *summary profile* (see CONTRACTS.md, :func:`transpert.summarize.summarize`) is an AnnData with
obs = perturbations, var = genes (``var["control_mean"]``) and layers ``mean``, ``delta``,
``log2fc``, ``pvalue``, ``fdr`` ... all on the log1p scale (natural log1p of counts scaled to the
file's median library size). A *prediction* is the same shape of object for the requested
perturbations of the target line: layers ``mean`` (predicted log1p pseudo-bulk), ``delta``
(``mean`` minus the target's control mean), ``log2fc`` (pdex's fold change of those means) and,
when the method has one, ``deg_probability``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError
from transpert.data.schema import LOG1P_CLIP
from transpert.summarize import log2fc
from transpert.summarize._contract import (PROFILE_LAYERS, aligned_layer, check_perturbations,
                                           check_references, check_summary, dense_layer)

logger = logging.getLogger("transpert.baselines")


def make_prediction(perturbations: list[str], genes: pd.Index, control_mean: np.ndarray, delta: np.ndarray,
                    *, method: str, deg_probability: np.ndarray | None = None,
                    source: Iterable[str] | None = None, params: dict | None = None,
                    n_de_genes: int | None = None):
    """Assemble a pseudo-bulk prediction AnnData (log1p scale) from predicted deltas.

    ``mean = clip(control_mean + delta, 0, <15)``; ``delta`` is then recomputed as
    ``mean - control_mean`` so the two layers always agree. ``X`` holds ``mean``.
    ``n_de_genes``, when given, goes to ``obs["n_de_genes"]``: how many genes the prediction
    calls DE per perturbation (the writer then moves that many, ranked by ``deg_probability`` or,
    without it, by ``|delta|``).
    """
    import anndata as ad

    control_mean = np.asarray(control_mean, dtype=np.float64)
    delta = np.asarray(delta, dtype=np.float64)
    if not np.isfinite(delta).all():
        raise TranspertInputError(f"{method}: predicted deltas contain NaN or inf")
    mean = np.clip(control_mean[None, :] + delta, 0.0, LOG1P_CLIP)
    delta = mean - control_mean[None, :]
    obs = pd.DataFrame(index=pd.Index(perturbations, name="perturbation"))
    obs["source"] = list(source) if source is not None else method
    if n_de_genes is not None:
        obs["n_de_genes"] = np.full(len(perturbations), int(n_de_genes), dtype=np.int64)
    var = pd.DataFrame({"control_mean": control_mean}, index=pd.Index(genes, name="gene"))
    layers = {"mean": mean, "delta": delta, "log2fc": log2fc(mean, control_mean)}
    if deg_probability is not None:
        layers["deg_probability"] = np.clip(np.asarray(deg_probability, dtype=np.float64), 0.0, 1.0)
    pred = ad.AnnData(X=mean.copy(), obs=obs, var=var, layers=layers)
    pred.uns["transpert_prediction"] = {"method": method, "scale": "log1p", "params": dict(params or {})}
    return pred


class Predictor:
    """Base of the baselines: scikit-learn conventions (parameters in ``__init__``, learned
    attributes end in ``_``) and the shared ``fit(references, target_train)`` /
    ``predict(perturbations)`` interface."""

    #: registry name, set by subclasses
    name = "predictor"
    #: whether ``fit`` needs at least one reference summary
    needs_references = False
    #: how the writer should build this method's cells (``transpert.predict.write_prediction``'s
    #: ``cells``); None: the writer's default
    write_cells: str | None = None

    def get_params(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    def fit(self, references, target_train):
        """Learn from reference summaries (``{line: summary}``) and the target's training summary."""
        check_summary(target_train, "target_train", PROFILE_LAYERS + tuple(self._target_layers()))
        self.references_ = check_references(references, PROFILE_LAYERS, required=self.needs_references)
        self.genes_ = pd.Index(target_train.var_names.astype(str))
        self.control_mean_ = np.asarray(target_train.var["control_mean"], dtype=np.float64)
        self.train_perturbations_ = list(target_train.obs_names.astype(str))
        # how many genes a perturbation typically changes in the target: the methods without a
        # DE model call that many genes DE (their largest |delta|); None when the summary has no FDR
        self.n_de_genes_ = None
        if "fdr" in target_train.layers:
            self.n_de_genes_ = int(np.median((np.nan_to_num(dense_layer(target_train, "fdr"), nan=1.0) < 0.05).sum(axis=1)))
        self._fit(self.references_, target_train)
        return self

    def predict(self, perturbations):
        """Pseudo-bulk prediction (log1p scale) for ``perturbations`` on the target's genes."""
        if not hasattr(self, "genes_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(references, target_train) first")
        perts = check_perturbations(perturbations)
        delta, extra = self._predict(perts)
        extra.setdefault("n_de_genes", self.n_de_genes_)
        pred = make_prediction(perts, self.genes_, self.control_mean_, delta, method=self.name,
                               params=self.get_params(), **extra)
        if self.write_cells is not None:
            pred.uns["transpert_prediction"]["cells"] = self.write_cells
        return pred

    # subclasses implement these
    def _target_layers(self) -> tuple[str, ...]:
        return ()

    def _fit(self, references: dict, target_train) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict(self, perturbations: list[str]) -> tuple[np.ndarray, dict]:  # pragma: no cover
        raise NotImplementedError


def reference_delta_stack(references: dict, genes: pd.Index, perturbations: list[str]) -> np.ndarray:
    """Reference deltas as lines x perturbations x target genes (NaN where a line lacks either)."""
    return np.stack([aligned_layer(ref, "delta", genes, perturbations) for ref in references.values()])


def nanmean_lines(stack: np.ndarray) -> np.ndarray:
    """Mean over lines (axis 0) ignoring NaN; NaN where no line has a value."""
    count = np.sum(~np.isnan(stack), axis=0)
    total = np.nansum(stack, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
