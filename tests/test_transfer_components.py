"""Per-gene transfer slopes, the low-rank map and their stacking, against numpy/scipy solvers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import nnls

from transpert.transfer.gene_slopes import fit_gene_slopes
from transpert.transfer.low_rank import apply_low_rank, fit_low_rank, stack_weights


def test_gene_slopes_match_augmented_least_squares():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(30, 8)) * (rng.random((30, 8)) < 0.5)
    s[:, 7] = 0.0  # a gene without reference signal
    r = s * rng.normal(1.0, 0.5, 8) + rng.normal(0, 0.2, (30, 8))
    beta, beta0 = fit_gene_slopes(s, r, penalty=2.0)
    assert beta0 == pytest.approx(np.linalg.lstsq(s.reshape(-1, 1), r.ravel(), rcond=None)[0][0])
    ss = (s * s).sum(axis=0)
    lam = 2.0 * np.median(ss[ss > 0])
    for g in range(8):
        # ridge toward beta0 == least squares with one pseudo-observation (sqrt(lam), sqrt(lam)*beta0)
        a = np.r_[s[:, g], np.sqrt(lam)][:, None]
        b = np.r_[r[:, g], np.sqrt(lam) * beta0]
        assert beta[g] == pytest.approx(np.linalg.lstsq(a, b, rcond=None)[0][0], rel=1e-10)
    assert beta[7] == pytest.approx(beta0)
    free, _ = fit_gene_slopes(s, r, penalty=0.0)
    for g in range(7):
        assert free[g] == pytest.approx(np.linalg.lstsq(s[:, [g]], r[:, g], rcond=None)[0][0])


def test_low_rank_map_recovers_an_exact_linear_map():
    rng = np.random.default_rng(1)
    n, g, k = 40, 25, 3
    x = rng.normal(size=(n, k)) @ rng.normal(size=(k, g))  # reference effects of rank 3
    m = rng.normal(size=(g, g)) * 0.3
    y = x @ m  # target effects: a fixed linear map of them
    v, w = fit_low_rank(x, y, k=10, ridge=1e-9)
    assert v.shape == (g, k)  # capped at the rank of x
    x_new = rng.normal(size=(5, n)) @ x  # new perturbations in the span of the training ones
    np.testing.assert_allclose(apply_low_rank(x_new, v, w), x_new @ m, rtol=1e-6, atol=1e-6)
    # a larger ridge shrinks the map
    v2, w2 = fit_low_rank(x, y, k=10, ridge=10.0)
    assert np.linalg.norm(apply_low_rank(x, v2, w2)) < np.linalg.norm(y)
    # no signal at all
    v0, w0 = fit_low_rank(np.zeros((4, 6)), rng.normal(size=(4, 6)), 3, 0.1)
    assert v0.shape == (6, 0) and np.all(apply_low_rank(np.ones((2, 6)), v0, w0) == 0)


def _svd_reference(x, y, k, ridge):
    """The low-rank map straight from numpy's SVD (the definition in the module docstring)."""
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    keep = int(min(k, np.sum(s > s.max() * 1e-10)))
    v = vt[:keep].T
    z = x @ v
    w = np.linalg.solve(z.T @ z + ridge * np.median(s[:keep] ** 2) * np.eye(keep), z.T @ y)
    return v, w


@pytest.mark.parametrize("shape, k, decay", [((150, 3000), 10, 0.9), ((40, 500), 10, 0.2),
                                             ((12, 300), 20, 0.9), ((300, 200), 10, 0.9)])
def test_low_rank_map_equals_the_svd_definition(shape, k, decay):
    # the Gram-matrix route (wide x) and the SVD fallback (rank below k, or tall x) predict as the
    # SVD does: x V W is invariant to the singular vectors' signs; decay 0.2 leaves values ~1e-7
    # of the largest, below the Gram route's resolution, so the SVD decides the rank there
    rng = np.random.default_rng(shape[0])
    m, g = shape
    spectrum = decay ** np.arange(min(m, g))
    q1, _ = np.linalg.qr(rng.normal(size=(m, min(m, g))))
    q2, _ = np.linalg.qr(rng.normal(size=(g, min(m, g))))
    x = (q1 * spectrum) @ q2.T
    y = x @ rng.normal(size=(g, g)) * 0.01 + rng.normal(size=(m, g)) * 0.001
    v, w = fit_low_rank(x, y, k, 0.1)
    v0, w0 = _svd_reference(x, y, k, 0.1)
    assert v.shape == v0.shape
    probe = rng.normal(size=(7, g))
    want = apply_low_rank(probe, v0, w0)
    np.testing.assert_allclose(apply_low_rank(probe, v, w), want, rtol=0, atol=1e-9 * np.abs(want).max())


@pytest.mark.parametrize("seed", range(6))
def test_stack_weights_match_scipy_nnls(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(200, 2))
    a[:, 1] = a[:, 0] * rng.uniform(-1, 1) + a[:, 1] * rng.uniform(0.1, 1)
    y = a @ rng.normal(size=2) + rng.normal(0, 0.3, 200)
    expected, _ = nnls(a, y)
    np.testing.assert_allclose(stack_weights(a[:, 0], a[:, 1], y), expected, atol=1e-10)
