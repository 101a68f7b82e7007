"""transpert._fdr.bh_qvalues against scipy.stats.false_discovery_control (the reference the
vcc2026 and pdex-era suites call), value for value, and the normal tail the vcc2026 DE uses."""

import numpy as np
import pytest
from scipy.special import ndtr
from scipy.stats import false_discovery_control, norm

from transpert._fdr import bh_qvalues


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bh_qvalues_equal_scipy_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    p = rng.random(3000) ** 3
    p[:200] = p[200:400]  # ties
    p[400:450] = 1.0
    p[450:460] = 0.0
    rng.shuffle(p)
    assert np.array_equal(bh_qvalues(p), false_discovery_control(p, method="bh"))


def test_bh_qvalues_leave_nan_out_and_handle_empty():
    p = np.array([0.01, np.nan, 0.04, 0.03])
    got = bh_qvalues(p)
    assert np.isnan(got[1])
    assert np.array_equal(got[[0, 2, 3]], false_discovery_control(p[[0, 2, 3]], method="bh"))
    assert bh_qvalues(np.array([])).shape == (0,)


def test_two_sided_normal_tail_equals_scipy_stats():
    z = np.r_[np.linspace(-40, 40, 4001), np.inf, -np.inf, 0.0]
    assert np.array_equal(2 * ndtr(-np.abs(z)), 2 * norm.sf(np.abs(z)))
