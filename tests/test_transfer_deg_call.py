"""The DEG-call threshold (transpert.transfer.deg_call): DES computed as cell-eval defines it, on
hand-made cases, and the threshold chosen where the answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from transpert._errors import TranspertInputError
from transpert.transfer.deg_call import des_of_call, select_deg_threshold


def test_des_of_call_by_hand():
    ctrl = np.full(5, 1.0)
    real = np.array([[0, 1, 0, 1, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=bool)
    called = np.array([[1, 1, 0, 1, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=bool)
    delta = np.array([[0.05, 1.0, 0.0, -0.5, 0.0], [1.0, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    # p0: k = 2, called genes by |log2FC|: g1, g3, g0 -> first 2 = {g1, g3} -> 1; p1: no real DEG
    # -> 0; p2: nothing called -> 0
    np.testing.assert_array_equal(des_of_call(called, delta, real, ctrl), [1.0, 0.0, 0.0])
    delta[0, 0] = 3.0  # g0 now has the largest fold change: first 2 = {g0, g1} -> 1/2
    np.testing.assert_array_equal(des_of_call(called, delta, real, ctrl), [0.5, 0.0, 0.0])


def test_threshold_chosen_where_the_true_degs_are():
    rng = np.random.default_rng(0)
    n, g = 20, 50
    real = np.zeros((n, g), dtype=bool)
    real[np.arange(n), rng.integers(0, g, n)] = True
    prob = np.where(real, 0.32, rng.uniform(0.0, 0.12, (n, g)))  # true DEGs at 0.32, others below
    delta = np.where(real, 0.5, 2.0 * rng.random((n, g)))  # false genes have larger fold changes
    curve, t = select_deg_threshold(prob, delta, real, np.full(g, 1.0))
    assert t == 0.3
    assert curve.loc[curve["chosen"], "des"].item() == 1.0
    assert curve.loc[curve["threshold"] == 0.5, "des"].item() == 0.0  # nothing called at 0.5
    assert curve.loc[curve["threshold"] == 0.05, "des"].item() < 1.0  # false genes push true ones out
    # a one-value grid is a fixed threshold; bad grids are refused
    assert select_deg_threshold(prob, delta, real, np.full(g, 1.0), thresholds=[0.5])[1] == 0.5
    with pytest.raises(TranspertInputError, match="deg_thresholds"):
        select_deg_threshold(prob, delta, real, np.full(g, 1.0), thresholds=[1.5])


def test_ties_go_to_the_threshold_calling_more_genes():
    from transpert.transfer.deg_call import best_row

    # one training perturbation with a DEG: no held-out fold can recover it, DES is 0 everywhere
    n, g = 6, 8
    real = np.zeros((n, g), dtype=bool)
    real[0, 3] = True
    prob = np.zeros((n, g))
    prob[1:, 3] = 0.07  # the gene recurs in the other folds' statistics, at a low score
    curve, t = select_deg_threshold(prob, np.full((n, g), -0.5), real, np.full(g, 1.0))
    assert (curve["des"] == 0.0).all()
    assert t == 0.05 and curve.loc[curve["chosen"], "mean_called"].item() == curve["mean_called"].max()
    # DES first, then genes called, then the earlier row
    frame = pd.DataFrame({"des": [0.2, 0.3, 0.3, 0.3], "mean_called": [9.0, 1.0, 2.0, 2.0]})
    assert best_row(frame) == 2
    assert best_row(pd.DataFrame({"des": [0.0, 0.0], "mean_called": [0.0, 0.0]})) == 0
