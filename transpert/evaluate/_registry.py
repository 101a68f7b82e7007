"""The metric registry: every metric a small pure function with its name, kind and best value.

Two kinds, as in cell-eval: ``"bulk"`` metrics read pseudo-bulk means (:class:`BulkPair`),
``"de"`` metrics read the two DE results (:class:`DEPair`). A metric returns one float per
perturbation (NaN where undefined, with ``defined`` telling null from NaN, see
:class:`MetricValues`) or, for a few, a single value shared by all perturbations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class BulkPair:
    """Pseudo-bulks on the log1p scale, float32 as cell-eval builds them.

    ``real_means``/``pred_means``: (N, G) means of the N non-control labels (sorted);
    ``real_control``/``pred_control``: (G,) control means of each file.
    """

    labels: np.ndarray
    genes: np.ndarray
    real_means: np.ndarray
    pred_means: np.ndarray
    real_control: np.ndarray
    pred_control: np.ndarray

    @property
    def real_delta(self) -> np.ndarray:
        return self.real_means - self.real_control[None, :]

    @property
    def pred_delta(self) -> np.ndarray:
        return self.pred_means - self.pred_control[None, :]


@dataclass(frozen=True)
class DEPair:
    """Wilcoxon DE of each file against its own controls: (N, G) float32 log2FC and FDR."""

    labels: np.ndarray
    genes: np.ndarray
    real_lfc: np.ndarray
    real_fdr: np.ndarray
    pred_lfc: np.ndarray
    pred_fdr: np.ndarray
    fdr_threshold: float = 0.05
    ties: str = "gene"  # order of genes tied in |log2FC| (see _metrics.ranked_significant)
    fdr_floor: str = "clip"  # AUC scores: "clip" FDR to [1e-10, 1] (0.8.2) or "zero" -> 1e-10 (0.6.6)

    @property
    def real_sig(self) -> np.ndarray:
        return self.real_fdr < np.float32(self.fdr_threshold)

    @property
    def pred_sig(self) -> np.ndarray:
        return self.pred_fdr < np.float32(self.fdr_threshold)


@dataclass
class MetricValues:
    """Per-perturbation values; ``defined[i]`` False means null (no value), not NaN."""

    values: np.ndarray
    defined: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self):
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.defined is None:
            self.defined = np.ones(self.values.shape, dtype=bool)


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # "bulk" or "de"
    best: float | None  # 0.0, 1.0, or None (not scored against a baseline)
    func: Callable
    description: str
    kwargs: dict = field(default_factory=dict)
    # Columns it writes (a metric returning several series, e.g. de_nsig_counts_real/_pred).
    outputs: tuple[str, ...] = ()

    def __call__(self, data) -> dict[str, MetricValues]:
        out = self.func(data, **self.kwargs)
        if isinstance(out, dict):
            return out
        return {self.name: out}

    @property
    def columns(self) -> tuple[str, ...]:
        return self.outputs or (self.name,)


REGISTRY: dict[str, Metric] = {}


def register(name: str, kind: str, best: float | None, description: str, func: Callable,
             kwargs: dict | None = None, outputs: tuple[str, ...] = ()) -> None:
    if name in REGISTRY:
        raise ValueError(f"metric {name!r} already registered")
    if kind not in ("bulk", "de"):
        raise ValueError(f"kind must be 'bulk' or 'de', got {kind!r}")
    REGISTRY[name] = Metric(name, kind, best, func, description, dict(kwargs or {}), outputs)


def best_value(column: str) -> float | None:
    """Best value of a results column (None for unscored columns such as counts)."""
    metric = REGISTRY.get(column)
    return None if metric is None else metric.best
