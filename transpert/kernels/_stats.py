"""Scalar statistics shared by the rank-sum kernels: the normal tail and the asymptotic p-value.

Both follow scipy 1.17 operation for operation (``scipy.special.ndtr`` from cephes/xsf and
``scipy.stats._mannwhitneyu._get_mwu_z``), so p-values agree with scipy to the last few ulps.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_SQRT1_2 = 0.7071067811865476  # M_SQRT1_2, as cephes multiplies by it


@njit(cache=True)
def ndtr(a):
    """Standard normal CDF, cephes' ``ndtr``: erf near 0, erfc in the tails (no cancellation)."""
    if a != a:
        return a
    x = a * _SQRT1_2
    z = abs(x)
    if z < 1.0:
        return 0.5 + 0.5 * math.erf(x)
    y = 0.5 * math.erfc(z)
    if x > 0.0:
        y = 1.0 - y
    return y


@njit(cache=True, error_model="numpy")
def mwu_pvalue(u1, n1, n2, tie_term, continuity):
    """Two-sided asymptotic Mann-Whitney p-value of ``U1`` (scipy's formula and operation order).

    ``n1``/``n2`` are int64 group sizes, ``tie_term`` = sum over tie blocks of t^3 - t in the
    pooled sample. When every value ties the variance is 0, z = -inf and p = 1 (as scipy).
    """
    mu = n1 * n2 / 2
    n = n1 + n2
    s = np.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
    u2 = n1 * n2 - u1
    u = u1 if u1 >= u2 else u2
    numerator = u - mu
    if continuity:
        numerator -= 0.5
    z = numerator / s
    p = ndtr(-z) * 2.0
    if p > 1.0:
        p = 1.0
    elif p < 0.0:
        p = 0.0
    return p
