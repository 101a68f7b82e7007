"""vcc2026 kernels against brute force: the one-pass group summaries (jackknife sums with the
series for zero entries, direct for deep cells and for a cell holding every count; mean CPM;
sorted log1p(CPM) values with their rows, integral, fractional and deep counts, crowded buckets
and ties), the selection of a half's rows from sorted values, and the rank sum / tie correction
of a group in group ∪ control (scipy's rankdata and tiecorrect on the pooled values)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import rankdata, tiecorrect

from transpert.kernels._vcc2026 import (
    control_index,
    control_tie_terms,
    indexed_place,
    ranksum_vs_control,
    ranksum_vs_indexed,
)
from transpert.kernels._vcc2026_group import (
    csc_scatter,
    group_gene_pass,
    jackknife_setup,
    select_halves,
)


def one_pass(X, lib, P=None, ts=5e4):
    """(col_ptr, sorted values, their rows, s1, s2, mean CPM) of one group."""
    n, G = X.shape
    ptr = np.zeros(G + 1, dtype=np.int64)
    rows = np.empty(X.nnz, dtype=np.int32)
    counts = np.empty(X.nnz)
    order = np.arange(n, dtype=np.int64)
    csc_scatter(X.indptr, X.indices, X.data, order, G, ptr, rows, counts)
    S = float(P.sum()) if P is not None else 1.0
    ok, pw, D = jackknife_setup(lib, S)
    s1, s2, mean = np.zeros(G), np.zeros(G), np.zeros(G)
    vals = np.empty(ptr[-1])
    ids = np.empty(ptr[-1], dtype=np.int32)
    group_gene_pass(ptr, rows, counts, lib, P if P is not None else mean, S, ts, P is not None,
                    ok, pw, D, s1, s2, mean, 1.0 / n, True, vals, ids, 0, G)
    return ptr, vals, ids, s1, s2, mean


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
    *_, s1, s2, _ = one_pass(X, lib, P, ts)
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

    gp, gv = one_pass(Xg, lg)[:2]
    cp, cv = one_pass(Xc, lc)[:2]
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


@pytest.mark.parametrize("kind", ["counts", "deep", "fractional", "tied"])
def test_sorted_values_mean_cpm_and_halves_brute_force(kind):
    rng = np.random.default_rng(7)
    n, G = 300, 60
    mu = rng.gamma(0.4, 3.0, size=G) * (40 if kind == "deep" else 1)  # deep: counts > 64
    X = rng.poisson(mu[None, :] * rng.gamma(4, 0.25, size=(n, 1))).astype(np.float32)
    if kind == "fractional":  # the baseline's scaled counts
        X = (X * rng.uniform(0.1, 3.0, size=G)).astype(np.float32)
    if kind == "tied":  # duplicated cells and one crowded value: ties and a crowded bucket
        X[100:200] = X[0]
        X[:, 0] = 1.0
    X[5, :] = 0.0
    X[5, 1] = 3.0
    X = sp.csr_matrix(X)
    lib = np.asarray(X.sum(1), dtype=float).ravel()
    lib[100:150] = lib[0]
    ptr, vals, ids, _, _, mean = one_pass(X, lib)
    D = X.toarray().astype(float)
    f = lib / 1e6
    np.testing.assert_allclose(mean, (D / f[:, None]).mean(0), rtol=1e-12)
    half = rng.integers(-1, 2, size=n).astype(np.int8)  # half A, half B or neither
    ptrs, outs = [], []
    for h in (0, 1):
        ptrs.append(np.r_[0, np.cumsum([np.count_nonzero(D[half == h, g]) for g in range(G)])])
        outs.append(np.full(ptrs[h][-1] + 1, np.nan))  # one slot of slack
    select_halves(ptr, vals, ids, half, ptrs[0], outs[0], ptrs[1], outs[1])
    for g in range(G):
        nz = np.flatnonzero(D[:, g])
        want = np.array([math.log1p(D[i, g] / f[i]) for i in nz])
        got = vals[ptr[g]:ptr[g + 1]]
        assert np.array_equal(got, np.sort(want))  # the same float values, ascending
        back = np.array([math.log1p(D[i, g] / f[i]) for i in ids[ptr[g]:ptr[g + 1]]])
        assert np.array_equal(back, got)  # each value's row
        for h in (0, 1):
            mine = np.sort([w for i, w in zip(nz, want) if half[i] == h])
            assert np.array_equal(outs[h][ptrs[h][g]:ptrs[h][g + 1]], mine)


def test_half_pass_equals_pass_of_the_copied_rows():
    """A half summarised in place (``order``) equals the pass of ``X[order]``: sums,
    jackknife, mean CPM and the gene pointers, bit for bit."""
    from transpert.evaluate.vcc2026._stats import group_pass

    rng = np.random.default_rng(11)
    X = sp.csr_matrix(rng.poisson(rng.gamma(0.4, 3.0, size=80)[None, :],
                                  size=(120, 80)).astype(np.float32))
    lib = np.asarray(X.sum(1), dtype=float).ravel()
    order = rng.permutation(120)[:60]
    half = group_pass(X, lib, values=False, order=order)
    Xh = X[order]
    P = np.asarray(Xh.sum(0), dtype=float).ravel()
    copy = group_pass(Xh, lib[order], P, values=False)
    assert np.array_equal(half.P, P)
    assert half.jk == copy.jk > 0
    assert np.array_equal(half.mean_cpm, copy.mean_cpm)
    assert np.array_equal(half.col_ptr, copy.col_ptr)


def test_pass_split_by_gene_ranges_is_bit_identical(monkeypatch):
    """A large group's pass run on gene ranges side by side equals the one-range pass."""
    from transpert.evaluate.vcc2026 import _stats

    rng = np.random.default_rng(5)
    X = sp.csr_matrix(rng.poisson(rng.gamma(0.4, 3.0, size=300)[None, :],
                                  size=(200, 300)).astype(np.float32))
    lib = np.asarray(X.sum(1), dtype=float).ravel()
    P = np.asarray(X.sum(0), dtype=float).ravel()
    one = _stats.group_pass(X, lib, P)
    monkeypatch.setattr(_stats, "SPLIT_GENES_ABOVE", 0)
    monkeypatch.setattr(_stats, "kernel_threads", lambda: 3)
    split = _stats.group_pass(X, lib, P)
    assert split.jk == one.jk
    for name in ("mean_cpm", "col_ptr", "values", "rows"):
        assert np.array_equal(getattr(split, name), getattr(one, name))


def test_pass_without_rows_gives_the_same_values(monkeypatch):
    """A pass that keeps no row per value (the run's groups and control) gives the same
    sorted values, mean CPM and jackknife as the full pass, on one thread and by gene ranges."""
    from transpert.evaluate.vcc2026 import _stats

    rng = np.random.default_rng(8)
    # counts up to 90 (both sides of the log1p table), some large
    D = np.ceil(rng.random((300, 40)) * 90.0) * (rng.random((300, 40)) < 0.3)
    D[:, 5] = 3.0  # a crowded gene of equal values
    D[(rng.random(D.shape) < 0.03) & (D > 0)] = 2.5e3
    X = sp.csr_matrix(D)
    lib = np.asarray(X.sum(1), dtype=float).ravel()
    P = np.asarray(X.sum(0), dtype=float).ravel()
    full = _stats.group_pass(X, lib, P)
    for split in (False, True):
        if split:
            monkeypatch.setattr(_stats, "SPLIT_GENES_ABOVE", 0)
            monkeypatch.setattr(_stats, "kernel_threads", lambda: 3)
        bare = _stats.group_pass(X, lib, P, with_rows=False)
        assert bare.rows.size == 0 and bare.jk == full.jk
        for name in ("mean_cpm", "col_ptr", "values"):
            assert np.array_equal(getattr(bare, name), getattr(full, name))


def index_of(cp, cv, per_bucket=2):
    G = cp.size - 1
    idx_ptr, scale = np.empty(G + 1, dtype=np.int64), np.empty(G)
    idx = np.empty(int((np.diff(cp) // per_bucket + 2).sum()), dtype=np.int32)
    control_index(cp, cv, per_bucket, idx_ptr, idx, scale)
    return idx_ptr, idx, scale


@pytest.mark.parametrize("per_bucket", [1, 2, 4])
def test_indexed_place_equals_searchsorted(per_bucket):
    """Both places of a value in a gene's sorted control values, through the bucket index
    (the branch-free window and the crowded-bucket search), equal numpy's searchsorted: values
    inside, on and outside the range, ties, crowded buckets, a single value, an empty gene."""
    rng = np.random.default_rng(11)
    genes = [np.sort(rng.uniform(0, 5, 300)), np.sort(np.r_[rng.uniform(0, 5, 50), [2.5] * 40]),
             np.sort(np.round(rng.uniform(0, 3, 200), 1)), np.array([1.0]), np.zeros(0),
             np.full(20, 3.0), np.sort(np.r_[np.full(30, 1.0), rng.uniform(1, 9, 30)])]
    cp = np.r_[0, np.cumsum([v.size for v in genes])].astype(np.int64)
    cv = np.concatenate(genes)
    idx_ptr, idx, scale = index_of(cp, cv, per_bucket)
    for g, v in enumerate(genes):
        xs = np.r_[v, rng.uniform(-1, 10, 200), [-1.0, 0.0, 5.0, 9.0, 100.0]]
        for x in xs:
            a0, a1 = indexed_place(cv, cp[g], cp[g + 1], x, idx, idx_ptr[g], idx_ptr[g + 1],
                                   scale[g])
            assert a0 - cp[g] == np.searchsorted(v, x, "left")
            assert a1 - cp[g] == np.searchsorted(v, x, "right")


@pytest.mark.parametrize("per_bucket", [1, 2, 7])
@pytest.mark.parametrize("kind", ["tied", "continuous", "constant"])
def test_indexed_ranksum_equals_the_merge(kind, per_bucket):
    """The rank sum through the control's bucket index equals the merge's, bit for bit, and
    brute force: ties within and across the sides, values below the control's smallest and
    above its largest, a gene empty on one side, a gene whose control values are all equal."""
    rng = np.random.default_rng(5)
    G, n1, m = 50, 33, 140
    dg = rng.poisson(rng.gamma(0.5, 3.0, size=G), size=(n1, G)).astype(np.float32)
    dc = rng.poisson(rng.gamma(0.5, 3.0, size=G), size=(m, G)).astype(np.float32)
    dg[:, 2] = 0
    dc[:, 3] = 0
    dc[:, 4] = np.where(dc[:, 4] > 0, 2.0, 0.0)
    lg = np.full(n1, 1000.0) if kind != "continuous" else rng.uniform(500, 3000, n1)
    lc = np.full(m, 1000.0) if kind == "tied" else rng.uniform(500, 3000, m)
    if kind == "constant":
        lc[:] = 1000.0
        dc[:] = np.where(dc > 0, 1.0, 0.0)
    gp, gv = one_pass(sp.csr_matrix(dg), lg)[:2]
    cp, cv = one_pass(sp.csr_matrix(dc), lc)[:2]
    ties = np.zeros(G)
    control_tie_terms(cp, cv, m, ties)
    want, want_tc, rs, tc = np.empty((4, G))
    ranksum_vs_control(gp, gv, n1, cp, cv, m, ties, want, want_tc)
    ranksum_vs_indexed(gp, gv, n1, cp, cv, m, ties, *index_of(cp, cv, per_bucket), rs, tc)
    assert np.array_equal(rs, want)
    assert np.array_equal(tc, want_tc)
    vg = np.log1p(dg / (lg[:, None] / 1e6))
    vc = np.log1p(dc / (lc[:, None] / 1e6))
    for g in range(G):
        assert rs[g] == rankdata(np.r_[vg[:, g], vc[:, g]])[:n1].sum()


@pytest.mark.parametrize("seed", [0, 1])
def test_half_ranksums_equal_the_halves_own_tests(seed):
    """ranksum_halves (every split's halves in one pass over the full group, the control's
    halves as rank tables) equals ranksum_vs_control on each half's own sorted values against
    its control half, bit for bit; ties across and within the sides (equal depths), odd sizes
    (a cell in neither half), a gene empty in a half, and more than 64 control values per
    gene (several mask blocks); and the full group's own test."""
    from transpert.kernels._vcc2026_halves import half_masks, ranksum_halves

    rng = np.random.default_rng(seed)
    G, n1, m, S = 30, 41, 157, 3
    dg = rng.poisson(1.2, size=(n1, G)).astype(np.float32)
    dg[:, 3] = 0
    Xg = sp.csr_matrix(dg)
    Xc = sp.csr_matrix(rng.poisson(1.5, size=(m, G)).astype(np.float32))
    lg = np.r_[np.full(20, 1000.0), rng.uniform(800, 1500, n1 - 20)]
    lc = np.r_[np.full(60, 1000.0), rng.uniform(800, 1500, m - 60)]
    gp, gv, gr = one_pass(Xg, lg)[:3]
    cp, cv, cr = one_pass(Xc, lc)[:3]

    def halves(n):
        half = np.full((S, n), -1, dtype=np.int8)
        for s in range(S):
            perm = rng.permutation(n)
            h = n // 2
            half[s, perm[:h]], half[s, perm[h:2 * h]] = 0, 1
        return half

    hg, hc = halves(n1), halves(m)
    n_half = np.array([[np.sum(hg[s] == h) for h in (0, 1)] for s in range(S)], dtype=np.int64)
    c_m = np.array([[np.sum(hc[s] == h) for h in (0, 1)] for s in range(S)], dtype=np.int64)
    want_rs, want_tc, c_ties = np.empty((3, S, 2, G))
    for s in range(S):
        for h in (0, 1):
            pg, vg = one_pass(Xg[np.flatnonzero(hg[s] == h)], lg[hg[s] == h])[:2]
            pc, vc = one_pass(Xc[np.flatnonzero(hc[s] == h)], lc[hc[s] == h])[:2]
            control_tie_terms(pc, vc, c_m[s, h], c_ties[s, h])
            ranksum_vs_control(pg, vg, n_half[s, h], pc, vc, c_m[s, h], c_ties[s, h],
                               want_rs[s, h], want_tc[s, h])
    blocks = cv.size // 64 + 1
    masks = np.empty((blocks, S, 2), dtype=np.uint64)
    counts = np.empty((blocks, S, 2), dtype=np.int64)
    half_masks(cr, hc, masks, counts)
    rs, tc = np.empty((2, S, 2, G))
    full_ties, want_f, want_ftc, full_rs, full_tc = np.empty((5, G))
    control_tie_terms(cp, cv, m, full_ties)
    ranksum_vs_control(gp, gv, n1, cp, cv, m, full_ties, want_f, want_ftc)
    ranksum_halves(gp, gv, gr, hg, n_half, cp, cv, index_of(cp, cv), masks, counts, c_m, c_ties,
                   rs, tc, m, full_ties, full_rs, full_tc)
    assert np.array_equal(rs, want_rs)
    assert np.array_equal(tc, want_tc)
    assert np.array_equal(full_rs, want_f)  # the full group's test from the same search
    assert np.array_equal(full_tc, want_ftc)


def test_batched_de_equals_one_group_at_a_time():
    """Groups tested against the control together (de_batch: gene by gene over the batch)
    give each group's DE table of group_de, bit for bit: groups of different sizes, a gene
    with no value in one group, ties with the control."""
    from transpert.evaluate.vcc2026 import _stats

    rng = np.random.default_rng(4)
    G = 60
    mu = rng.gamma(0.5, 3.0, size=G)

    def cells(n):
        X = rng.poisson(mu, size=(n, G)).astype(np.float32)
        return sp.csr_matrix(X), np.asarray(X.sum(1), dtype=float).ravel()

    control = _stats.Control.from_cells(*cells(150))
    groups = [cells(n) for n in (40, 7, 33, 2)]
    groups[1][0][:, 3] = 0
    groups[1][0].eliminate_zeros()
    passes = [_stats.group_pass(X, lib) for X, lib in groups]
    for first in (0, 1):  # a full batch, and one of fewer groups (the kernel's tuples filled)
        batched = _stats.de_batch(passes[first:], control)
        assert len(batched) == len(groups) - first
        for (X, lib), gp, got in zip(groups[first:], passes[first:], batched):
            want = _stats.group_de(X, lib, control, gp)
            for name in ("kept", "lfc", "p", "p_adj"):
                assert np.array_equal(getattr(got, name), getattr(want, name), equal_nan=True)
    with pytest.raises(ValueError, match="1 to"):
        _stats.de_batch(passes + passes[:1], control)
