"""Rank sums of a group's half splits against the control's half splits, in one pass.

The replicate anchor of the vcc2026 suite (cell-eval2 0.20.0) tests, for every half split s of
the real cells, half h of a group against half h of the control. A half's sorted log1p(CPM)
values are a sub-multiset of the full group's (the control's), so each test needs, per distinct
value x of the full group, only

- how many of the x's of the group fall in each half (from each value's row), and
- how many control values of half h lie below x and equal x: the full control's positions of
  x (one search in its bucket index, shared by every split and by the full group's own test)
  turned into counts of one half by a rank query on the
  half's membership bits (:func:`half_masks`: per block of 64 sorted control values a bit
  mask and the count before the block, so a count is a table read plus a popcount).

The integers (doubled U, tie blocks, zero counts) are those of
:func:`transpert.kernels._vcc2026.ranksum_vs_control` on the halves' own sorted values, so the
rank sums and tie corrections are bit-identical, for the cost of about one full test instead
of one per half.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from transpert.kernels._vcc2026 import _cube_minus, indexed_place

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


@njit(cache=True)
def _popcount(x):  # pragma: no cover - compiled
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return np.int64((x * _H01) >> np.uint64(56))


@njit(cache=True)
def _rank(masks, counts, s, h, pos):  # pragma: no cover - compiled
    """Values of half h of split s among the control's sorted values [0, pos)."""
    blk = pos >> 6
    bit = np.uint64(pos & 63)
    below = (np.uint64(1) << bit) - np.uint64(1)
    return counts[blk, s, h] + _popcount(masks[blk, s, h] & below)


@njit(cache=True, nogil=True)
def half_masks(rows, half, masks, counts):  # pragma: no cover - compiled
    """Membership of the control's sorted values (``rows``: the control row of each, genes
    one after the other) in the halves: ``half[s, row]`` is 0, 1 or -1 (neither). Outputs,
    for block b of 64 values: ``masks[b, s, h]`` (uint64, bit i: value 64 b + i is in half h
    of split s) and ``counts[b, s, h]`` (int64, values of that half before the block); both
    need ``rows.size // 64 + 1`` blocks."""
    S = half.shape[0]
    masks[:] = 0
    run = np.zeros((S, 2), dtype=np.int64)
    for b in range(masks.shape[0]):
        counts[b] = run
        lo = b * 64
        hi = min(lo + 64, rows.size)
        for p in range(lo, hi):
            r = rows[p]
            for s in range(S):
                h = half[s, r]
                if h >= 0:
                    masks[b, s, h] |= np.uint64(1) << np.uint64(p - lo)
                    run[s, h] += 1


@njit(cache=True, nogil=True)
def ranksum_halves(g_ptr, g_vals, g_rows, half, n_half, c_ptr, c_vals, c_index, masks, counts,
                   c_m, c_ties, ranksum, tiecorr, m_full, full_ties, full_rs,
                   full_tc):  # pragma: no cover - compiled
    """Per split s, half h and gene: the rank sum of half h of the group in (half h of the
    group) ∪ (half h of the control), and the pooled tie correction, as
    :func:`~transpert.kernels._vcc2026.ranksum_vs_control` gives them on the halves' sorted
    values.

    g_ptr, g_vals, g_rows : the full group's sorted log1p(CPM) values per gene and the group
        row of each; ``half[s, row]`` (int8: 0, 1, -1) the group's halves, ``n_half[s, h]``
        their cells.
    c_ptr, c_vals : the full control's sorted values per gene, ``c_index`` their bucket index
        ``(idx_ptr, idx, scale)`` (:func:`~transpert.kernels._vcc2026.control_index`);
        ``masks``, ``counts`` its halves (:func:`half_masks`); ``c_m[s, h]`` the control halves' cells and
        ``c_ties[s, h, g]`` their tie terms (``control_tie_terms`` of each half).
    ranksum, tiecorr : float64 (S, 2, n_genes) outputs.
    m_full, full_ties : the full control's cells and tie terms; full_rs, full_tc : outputs,
        the full group's rank sum and tie correction against the full control (the same
        search serves both).
    """
    S = half.shape[0]
    G = g_ptr.size - 1
    idx_ptr, idx, scale = c_index
    u2 = np.zeros((S, 2), dtype=np.int64)
    ties = np.zeros((S, 2))
    gnz = np.zeros((S, 2), dtype=np.int64)
    cz = np.zeros((S, 2), dtype=np.int64)
    r_lo = np.zeros((S, 2), dtype=np.int64)
    bcnt = np.zeros(2, dtype=np.int64)
    n1 = half.shape[1]
    Nf = n1 + m_full
    for g in range(G):
        glo = g_ptr[g]
        ghi = g_ptr[g + 1]
        clo = c_ptr[g]
        chi = c_ptr[g + 1]
        for s in range(S):
            for h in range(2):
                lo = _rank(masks, counts, s, h, clo)
                r_lo[s, h] = lo
                cz[s, h] = c_m[s, h] - (_rank(masks, counts, s, h, chi) - lo)
                u2[s, h] = 0
                ties[s, h] = 0.0
                gnz[s, h] = 0
        gzf = n1 - (ghi - glo)
        czf = m_full - (chi - clo)
        u2f = gzf * czf
        tf = full_ties[g]
        if gzf > 0:
            tf += _cube_minus(gzf + czf) - _cube_minus(czf)
        i0 = idx_ptr[g]
        i1 = idx_ptr[g + 1]
        sc = scale[g]
        k = glo
        while k < ghi:
            x = g_vals[k]
            j = k + 1
            while j < ghi and g_vals[j] == x:
                j += 1
            a0, a1 = indexed_place(c_vals, clo, chi, x, idx, i0, i1, sc)
            eqf = a1 - a0
            u2f += (j - k) * (2 * (czf + (a0 - clo)) + eqf)
            tf += _cube_minus(j - k + eqf) - _cube_minus(eqf)
            if j == k + 1:  # one value (the usual case): only its own half moves, no branch
                row = g_rows[k]
                tied = a1 > a0
                for s in range(S):
                    h = half[s, row]
                    if h < 0:
                        continue
                    ra0 = _rank(masks, counts, s, h, a0)
                    eq = _rank(masks, counts, s, h, a1) - ra0 if tied else 0
                    u2[s, h] += 2 * (cz[s, h] + (ra0 - r_lo[s, h])) + eq
                    ties[s, h] += _cube_minus(1 + eq) - _cube_minus(eq)
                    gnz[s, h] += 1
                k = j
                continue
            for s in range(S):
                bcnt[0] = 0
                bcnt[1] = 0
                for p in range(k, j):
                    h = half[s, g_rows[p]]
                    if h >= 0:
                        bcnt[h] += 1
                for h in range(2):
                    b = bcnt[h]
                    if b == 0:
                        continue
                    gnz[s, h] += b
                    ra0 = _rank(masks, counts, s, h, a0)
                    eq = _rank(masks, counts, s, h, a1) - ra0 if a1 > a0 else 0
                    below = cz[s, h] + (ra0 - r_lo[s, h])
                    u2[s, h] += b * (2 * below + eq)
                    ties[s, h] += _cube_minus(b + eq) - _cube_minus(eq)
            k = j
        full_rs[g] = u2f / 2.0 + n1 * (n1 + 1) / 2.0
        full_tc[g] = 1.0 - tf / _cube_minus(Nf) if Nf >= 2 else 1.0
        for s in range(S):
            for h in range(2):
                nh = n_half[s, h]
                N = nh + c_m[s, h]
                gz = nh - gnz[s, h]
                t = c_ties[s, h, g]
                if gz > 0:
                    t += _cube_minus(gz + cz[s, h]) - _cube_minus(cz[s, h])
                t += ties[s, h]
                ranksum[s, h, g] = (u2[s, h] + gz * cz[s, h]) / 2.0 + nh * (nh + 1) / 2.0
                tiecorr[s, h, g] = 1.0 - t / _cube_minus(N) if N >= 2 else 1.0
