"""vcc2026 kernels against brute force: the jackknife sums (series for zero entries, direct for
deep cells and for a cell holding every count) and the rank sum / tie correction of a group in
group ∪ control (scipy's rankdata and tiecorrect on the pooled values)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import rankdata, tiecorrect

from transpert.kernels._vcc2026 import (
    control_tie_terms,
    cpm_log1p_csc,
    jackknife_sums,
    ranksum_vs_control,
)


@pytest.mark.parametrize("n, lone", [(300, False), (6, False), (3, True)])
def test_jackknife_sums_brute_force(n, lone):
    rng = np.random.default_rng(n)
    G = 200
    X = rng.poisson(rng.gamma(0.3, 2.0, size=G)[None, :] * rng.gamma(4, 0.25, size=(n, 1)))
    if lone:
        X[1:] = 0
        X[0, :3] += 1  # one cell holds every count: its leave-one-out profile is empty
    X = sp.csr_matrix(X.astype(np.float32))
    lib = np.asarray(X.sum(1), dtype=float).ravel()
    P = np.asarray(X.sum(0), dtype=float).ravel()
    S, ts = P.sum(), 5e4
    s1, s2 = np.zeros(G), np.zeros(G)
    jackknife_sums(X.indptr, X.indices, X.data, lib, P, S, ts, s1, s2)
    D = X.toarray().astype(float)
    b = np.log1p(ts * P / S)
    r = S - lib
    with np.errstate(divide="ignore", invalid="ignore"):
        V = np.where(r[:, None] > 0, np.log1p(ts * (P - D) / np.where(r > 0, r, 1)[:, None]),
                     0.0) - b
    np.testing.assert_allclose(s1, V.sum(0), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(s2, (V * V).sum(0), rtol=1e-10, atol=1e-15)


def test_ranksum_and_ties_brute_force():
    rng = np.random.default_rng(3)
    G, n1, m = 40, 25, 60
    Xg = sp.csr_matrix(rng.poisson(0.8, size=(n1, G)).astype(np.float32))
    Xc = sp.csr_matrix(rng.poisson(1.0, size=(m, G)).astype(np.float32))
    Xg[0, 5] = 0
    Xg.eliminate_zeros()
    lg = np.full(n1, 1000.0)  # equal depths: equal counts give tied values across groups
    lc = np.r_[np.full(m - 10, 1000.0), np.full(10, 2000.0)]

    def sorted_values(X, lib):
        ptr = np.zeros(G + 1, dtype=np.int64)
        vals = np.empty(X.nnz)
        cpm_log1p_csc(X.indptr, X.indices, X.data, lib, G, ptr, vals)
        return ptr, vals

    gp, gv = sorted_values(Xg, lg)
    cp, cv = sorted_values(Xc, lc)
    ties = np.zeros(G)
    control_tie_terms(cp, cv, m, ties)
    rs, tc = np.empty(G), np.empty(G)
    ranksum_vs_control(gp, gv, n1, cp, cv, m, ties, rs, tc)
    vg = np.log1p(Xg.toarray() / (lg[:, None] / 1e6))
    vc = np.log1p(Xc.toarray() / (lc[:, None] / 1e6))
    for g in range(G):
        ranks = rankdata(np.r_[vg[:, g], vc[:, g]])
        assert rs[g] == ranks[:n1].sum()
        assert tc[g] == pytest.approx(tiecorrect(ranks), rel=1e-14)
