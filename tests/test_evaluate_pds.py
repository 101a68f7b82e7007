"""PDS from delta matrices against cell-eval's own loop (sklearn pairwise distances + argsort)."""

from __future__ import annotations

import numpy as np
import pytest

from transpert._errors import TranspertInputError
from transpert.evaluate import discrimination_scores, norm_matched_pds, pds_scale_curve

skm = pytest.importorskip("sklearn.metrics")


def _cell_eval_loop(pred, real, labels, genes, metric):
    """cell-eval 0.8.2 metrics/_anndata.py:discrimination_score, restated on arrays."""
    genes = np.asarray(genes)
    perts = np.asarray(labels)
    out = []
    for p_idx, p in enumerate(perts):
        mask = np.flatnonzero(genes != p)
        d = skm.pairwise_distances(real[:, mask], pred[p_idx, mask].reshape(1, -1),
                                   metric=metric).flatten()
        rank = np.flatnonzero(np.argsort(d) == p_idx)[0]
        out.append(1 - rank / perts.size)
    return np.array(out)


def _deltas(seed, n=23, g=60, dtype=np.float32):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n, g)).astype(dtype)
    pred = (real + rng.normal(scale=1.5, size=(n, g))).astype(dtype)
    genes = [f"G{i}" for i in range(g)]
    labels = [f"G{i}" for i in range(0, 2 * n, 2)]  # every label is a gene: its column is dropped
    labels[3] = "not_a_gene"
    return pred, real, labels, genes


@pytest.mark.parametrize("metric", ["l1", "l2", "cosine"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_cell_eval_loop(metric, seed):
    pred, real, labels, genes = _deltas(seed)
    expected = _cell_eval_loop(pred, real, labels, genes, metric)
    got = discrimination_scores(pred, real, labels, genes, metric=metric)
    np.testing.assert_array_equal(got, expected)
    assert 0 < got.min() and got.max() <= 1


def test_perfect_and_constant_predictions():
    _, real, labels, genes = _deltas(5)
    assert np.all(discrimination_scores(real, real, labels, genes) == 1.0)
    const = np.zeros_like(real)
    expected = _cell_eval_loop(const, real, labels, genes, "l1")
    np.testing.assert_array_equal(discrimination_scores(const, real, labels, genes), expected)


def test_scale_curve_and_norm_matched():
    pred, real, labels, genes = _deltas(7, dtype=np.float64)
    curve = pds_scale_curve(pred, real, labels, genes, scales=[0.5, 1.0, 4.0])
    assert list(curve["scale"]) == [0.5, 1.0, 4.0]
    for c, v in zip(curve["scale"], curve["mean_pds"]):
        assert v == pytest.approx(_cell_eval_loop(c * pred, real, labels, genes, "l1").mean(), abs=0)
    nm = norm_matched_pds(pred, real, labels, genes)
    factor = np.linalg.norm(real, axis=1) / np.linalg.norm(pred, axis=1)
    np.testing.assert_array_equal(nm, _cell_eval_loop(pred * factor[:, None], real, labels, genes, "l1"))
    # Scaling every prediction by a constant does not change the norm-matched score.
    np.testing.assert_array_equal(norm_matched_pds(3 * pred, real, labels, genes), nm)


def test_bad_input():
    pred, real, labels, genes = _deltas(0)
    with pytest.raises(TranspertInputError, match="same shape"):
        discrimination_scores(pred[:-1], real, labels, genes)
    with pytest.raises(TranspertInputError, match="labels has"):
        discrimination_scores(pred, real, labels[:-1], genes)
    with pytest.raises(TranspertInputError, match="metric must be one of"):
        discrimination_scores(pred, real, labels, genes, metric="l3")
    bad = pred.copy()
    bad[0, 0] = np.nan
    with pytest.raises(TranspertInputError, match="finite"):
        discrimination_scores(bad, real, labels, genes)
