"""Perturbation discrimination score (PDS) from two delta matrices, and its diagnostics.

cell-eval 0.8.2 (``metrics/_anndata.py:discrimination_score``): for perturbation p, drop the
gene column named p (only when the label is a gene name), compute the distance between
``pred_delta[p]`` and every ``real_delta[j]``, rank them with ``np.argsort`` and score
``1 - rank(p) / N``. Range [1/N, 1]; best 1.

The functions here take deltas on the log1p scale (``mean_log1p(p) - mean_log1p(control)``),
rows aligned with ``labels``. For bit-level agreement with cell-eval pass float32 deltas (the
difference of float32 pseudo-bulks, which is what cell-eval builds); the distances themselves
are computed the way scikit-learn's ``pairwise_distances`` computes them for that metric.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from transpert._errors import TranspertInputError
from transpert._parallel import numba_threads
from transpert.kernels import l1_distances

PDS_METRICS = ("l1", "l2", "cosine")


def _exclude_index(labels: Sequence[str], gene_names: Sequence[str]) -> np.ndarray:
    """Column index of each label's own gene (-1 when the label is not a gene name)."""
    position = {g: i for i, g in enumerate(map(str, gene_names))}
    return np.array([position.get(str(label), -1) for label in labels], dtype=np.int64)


def _check(pred_delta, real_delta, labels, gene_names) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred_delta)
    real = np.asarray(real_delta)
    if pred.ndim != 2 or real.ndim != 2:
        raise TranspertInputError(
            f"pred_delta and real_delta must be 2-D (perturbations x genes); got shapes "
            f"{pred.shape} and {real.shape}"
        )
    if pred.shape != real.shape:
        raise TranspertInputError(
            f"pred_delta {pred.shape} and real_delta {real.shape} must have the same shape "
            "(same perturbations in the same order, same genes)"
        )
    if len(labels) != pred.shape[0]:
        raise TranspertInputError(
            f"labels has {len(labels)} entries but the deltas have {pred.shape[0]} rows"
        )
    if len(gene_names) != pred.shape[1]:
        raise TranspertInputError(
            f"gene_names has {len(gene_names)} entries but the deltas have {pred.shape[1]} columns"
        )
    if not (np.isfinite(pred).all() and np.isfinite(real).all()):
        raise TranspertInputError("pred_delta and real_delta must be finite (found NaN or inf)")
    if pred.dtype not in (np.float32, np.float64):
        pred = pred.astype(np.float64)
    if real.dtype not in (np.float32, np.float64):
        real = real.astype(np.float64)
    return np.ascontiguousarray(pred), np.ascontiguousarray(real)


def distance_matrix(pred_delta, real_delta, labels: Sequence[str], gene_names: Sequence[str],
                    metric: str = "l1", threads: int | None = None) -> np.ndarray:
    """Distances ``d[p, j]`` between predicted delta p and real delta j (log1p scale).

    The gene named like perturbation p (if any) is left out of row p, as cell-eval does.
    ``metric`` is ``"l1"`` (float64), ``"l2"`` or ``"cosine"`` (float32 when the deltas are
    float32, as scikit-learn returns them).
    """
    if metric not in PDS_METRICS:
        raise TranspertInputError(f"metric must be one of {PDS_METRICS}, got {metric!r}")
    pred, real = _check(pred_delta, real_delta, labels, gene_names)
    exclude = _exclude_index(labels, gene_names)
    if metric == "l1":
        if pred.dtype != real.dtype:
            pred, real = pred.astype(np.float64), real.astype(np.float64)
        with numba_threads(threads):
            return l1_distances(pred, real, exclude)
    n = pred.shape[0]
    out = None
    all_genes = np.ones(pred.shape[1], dtype=bool)
    # Rows sharing the same excluded column share one masked copy of the real matrix.
    for skip in np.unique(exclude):
        rows = np.flatnonzero(exclude == skip)
        mask = all_genes.copy()
        if skip >= 0:
            mask[skip] = False
        real_m = real[:, mask]
        pred_m = pred[rows][:, mask]
        block = _sklearn_like(real_m, pred_m, metric)  # (n_real, len(rows))
        if out is None:
            out = np.empty((n, n), dtype=block.dtype)
        out[rows] = block.T
    return out


def _sklearn_like(x: np.ndarray, y: np.ndarray, metric: str) -> np.ndarray:
    """``sklearn.metrics.pairwise_distances(x, y, metric)`` for dense l2 / cosine, same arithmetic."""
    if metric == "cosine":
        def normalize(a):
            norms = np.sqrt(np.einsum("ij,ij->i", a, a))
            norms[norms == 0.0] = 1.0
            return a / norms[:, np.newaxis]

        s = normalize(x) @ normalize(y).T
        s *= -1
        s += 1
        return np.clip(s, 0.0, 2.0)
    # l2: float32 inputs are upcast to float64, distances stored in float32 (sklearn's
    # _euclidean_distances_upcast); float64 inputs stay float64.
    x64 = x.astype(np.float64)
    y64 = y.astype(np.float64)
    xx = np.einsum("ij,ij->i", x64, x64)[:, None]
    yy = np.einsum("ij,ij->i", y64, y64)[None, :]
    d = -2 * x64 @ y64.T
    d += xx
    d += yy
    if x.dtype == np.float32 or y.dtype == np.float32:
        d = d.astype(np.float32)
    np.maximum(d, 0, out=d)
    return np.sqrt(d, out=d)


def ranks_from_distances(distances: np.ndarray) -> np.ndarray:
    """0-based rank of the true match ``p`` in ``argsort(distances[p])`` for every row p."""
    n = distances.shape[0]
    ranks = np.empty(n, dtype=np.int64)
    for p in range(n):
        order = np.argsort(distances[p])
        ranks[p] = int(np.flatnonzero(order == p)[0])
    return ranks


def discrimination_scores(pred_delta, real_delta, labels: Sequence[str],
                          gene_names: Sequence[str], metric: str = "l1",
                          threads: int | None = None) -> np.ndarray:
    """Per-perturbation PDS, exactly cell-eval 0.8.2's ``discrimination_score_<metric>``.

    Parameters
    ----------
    pred_delta, real_delta
        (N, G) arrays on the log1p scale: predicted and real pseudo-bulk minus the control
        pseudo-bulk of the same file. Row i of both is perturbation ``labels[i]``.
    labels
        N perturbation labels (control excluded). A label equal to a gene name drops that gene
        from its own row's distances.
    gene_names
        G gene names, the columns.
    metric
        ``"l1"`` (the challenge's PDS), ``"l2"`` or ``"cosine"``.

    Returns
    -------
    float64 array of N scores ``1 - rank/N`` in [1/N, 1] (1 = the true perturbation is the
    nearest real delta). Order follows ``labels``.

    Examples
    --------
    >>> import numpy as np
    >>> from transpert.metrics import discrimination_scores
    >>> real = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    >>> discrimination_scores(real, real, ["p1", "p2"], ["g1", "g2", "g3"])
    array([1., 1.])
    """
    d = distance_matrix(pred_delta, real_delta, labels, gene_names, metric=metric, threads=threads)
    n = d.shape[0]
    return 1.0 - ranks_from_distances(d) / n


def pds_scale_curve(pred_delta, real_delta, labels: Sequence[str], gene_names: Sequence[str],
                    scales: Sequence[float] = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
                    metric: str = "l1", threads: int | None = None):
    """Mean PDS when every predicted delta is multiplied by a global factor c (log1p scale).

    L1 PDS is not scale invariant (arXiv:2511.16954): inflating the predicted deltas moves it
    toward a magnitude-weighted sign agreement. Returns a DataFrame ``scale, mean_pds``.
    """
    import pandas as pd

    pred = np.asarray(pred_delta, dtype=np.float64)
    rows = []
    for c in scales:
        scores = discrimination_scores(c * pred, real_delta, labels, gene_names, metric=metric,
                                       threads=threads)
        rows.append({"scale": float(c), "mean_pds": float(scores.mean())})
    return pd.DataFrame(rows)


def norm_matched_pds(pred_delta, real_delta, labels: Sequence[str], gene_names: Sequence[str],
                     metric: str = "l1", threads: int | None = None) -> np.ndarray:
    """PDS after rescaling each predicted delta to the L2 norm of its own real delta.

    Removes the reward for predicted magnitude: only the direction of each prediction counts.
    A zero predicted delta stays zero. Log1p scale in; per-perturbation scores out.
    """
    pred = np.asarray(pred_delta, dtype=np.float64)
    real = np.asarray(real_delta, dtype=np.float64)
    pred_norm = np.linalg.norm(pred, axis=1)
    real_norm = np.linalg.norm(real, axis=1)
    factor = np.divide(real_norm, pred_norm, out=np.zeros_like(real_norm), where=pred_norm > 0)
    return discrimination_scores(pred * factor[:, None], real, labels, gene_names, metric=metric,
                                 threads=threads)
