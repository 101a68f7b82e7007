"""numba kernels of the large simulated file: counter-based random numbers and NB sampling of
CSR rows (plain arrays only; kept beside the simulator that is their only user).

Why counter-based: every (cell, gene) entry draws from a stream that depends only on
``(seed, cell, gene)``. The output is therefore identical whatever the chunk size, the number of
threads or the order in which rows are processed, and a row can be regenerated on its own (the
writer samples each row twice: once to count non-zeros and library sizes, once to store).

Scale: counts are raw UMIs; the ``log1p`` fill writes ``log1p(count / library * target_sum)``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_STREAM = np.uint64(0xD1B54A32D192ED03)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2 ** -53

# NB means up to this are sampled by inversion from the first uniform (fast: most entries are
# zero after one comparison); larger means by gamma-Poisson.
_INVERSION_MAX_MEAN = 40.0


@njit(cache=True, inline="always")
def _mix(z):
    """splitmix64 finaliser (Steele, Lea & Flood 2014): a bijective 64-bit hash."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def _u01(bits):
    """Uniform in (0, 1) (never 0 or 1) from 64 random bits."""
    return (np.float64(bits >> _S11) + 0.5) * _TWO_M53


@njit(cache=True)
def row_key(seed, row):
    """The random stream key of one cell (row) of one file."""
    return _mix(np.uint64(seed) * _GOLDEN ^ _mix(np.uint64(row) + _STREAM))


@njit(cache=True, inline="always")
def _entry_bits(key, gene):
    # a splitmix64 sequence per row, indexed by gene
    return _mix(key + (np.uint64(gene) + np.uint64(1)) * _GOLDEN)


@njit(cache=True)
def _next_u(state):
    state = state + _GOLDEN
    return state, _u01(_mix(state))


@njit(cache=True)
def _std_normal(state):
    state, u1 = _next_u(state)
    state, u2 = _next_u(state)
    return state, math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@njit(cache=True)
def _gamma(state, shape):
    """Gamma(shape, 1) by Marsaglia & Tsang (2000); shape < 1 via the boost U^(1/shape)."""
    boost = 1.0
    if shape < 1.0:
        state, u = _next_u(state)
        boost = u ** (1.0 / shape)
        shape += 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        state, x = _std_normal(state)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        state, u = _next_u(state)
        if math.log(u) < 0.5 * x * x + d - d * v + d * math.log(v):
            return state, d * v * boost


@njit(cache=True)
def _poisson(state, lam):
    """Poisson(lam): inversion below 10, PTRS (Hoermann 1993) above, as numpy does."""
    if lam <= 0.0:
        return state, 0
    if lam < 10.0:
        state, u = _next_u(state)
        p = math.exp(-lam)
        cdf = p
        k = 0
        while u > cdf and k < 1000:
            k += 1
            p *= lam / k
            cdf += p
        return state, k
    slam = math.sqrt(lam)
    loglam = math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2.0)
    while True:
        state, uu = _next_u(state)
        state, v = _next_u(state)
        u = uu - 0.5
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return state, int(k)
        if k < 0.0 or (us < 0.013 and v > us):
            continue
        if (math.log(v) + math.log(invalpha) - math.log(a / (us * us) + b)
                <= -lam + k * loglam - math.lgamma(k + 1.0)):
            return state, int(k)


@njit(cache=True)
def nb_draw(bits, mu, phi):
    """One negative-binomial count (mean ``mu``, variance ``mu + phi mu^2``) from 64 random bits
    (and, for the rare large means, a stream seeded by them)."""
    if mu <= 0.0:
        return 0
    r = 1.0 / phi
    if mu <= _INVERSION_MAX_MEAN:
        # inversion on w = 1 - u: the count is 0 iff u >= q0 = 1 - P(0), P(0) = (1 + phi mu)^-r.
        # Most entries have phi mu << 1: there q0 = -expm1(-r log1p(phi mu)) by its Taylor
        # series (relative error < 1e-12 below 1e-3), sparing two transcendentals per entry.
        u = _u01(bits)
        if u >= mu:
            # P(count > 0) <= E[count] = mu, so u >= mu implies u >= q0: zero without computing
            # q0. With ~90% zeros this settles most entries with one hash and one comparison.
            return 0
        x = phi * mu
        if x < 1e-3:
            y = r * (x * (1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))))
        else:
            y = r * math.log1p(x)
        if y < 1e-3:
            q0 = y * (1.0 - y * (0.5 - y * (1.0 / 6.0 - y / 24.0)))
        else:
            q0 = -math.expm1(-y)
        if u >= q0:
            return 0
        w = 1.0 - u
        # P(k) = P(k-1) (k - 1 + r) / k * q
        q = x / (1.0 + x)
        pmf = 1.0 - q0
        cdf = pmf
        k = 0
        while cdf < w:
            k += 1
            pmf *= (k - 1.0 + r) / k * q
            cdf += pmf
            if pmf < 1e-300 or k > 100000:
                break
        return k
    state = _mix(bits ^ _STREAM)
    state, g = _gamma(state, r)
    state, k = _poisson(state, g * phi * mu)
    return k


@njit(cache=True)
def _sample_row(seed, row, group, depth, response, knockdown, abundance, phi,
                eff_indptr, eff_indices, eff_data, target_of_group, out_indices, out_counts, write):
    """Counts of one cell; returns (non-zeros, library size). Writes the non-zeros into
    ``out_indices`` / ``out_counts`` when ``write``. Effects of the cell's group are merged along
    the genes (sorted CSR indices)."""
    key = row_key(seed, row)
    n_genes = abundance.size
    j = eff_indptr[group]
    j_end = eff_indptr[group + 1]
    target = target_of_group[group]
    nnz = 0
    lib = 0
    for g in range(n_genes):
        mu = depth * abundance[g]
        if j < j_end and eff_indices[j] == g:
            mu *= math.exp(response * eff_data[j])
            j += 1
        if g == target:
            mu = depth * abundance[g] * math.exp(knockdown)
        c = nb_draw(_entry_bits(key, g), mu, phi[g])
        if c > 0:
            if write:
                out_indices[nnz] = g
                out_counts[nnz] = c
            nnz += 1
            lib += c
    return nnz, lib


@njit(cache=True, parallel=True)
def count_rows(seed, start, stop, groups, depth, response, knockdown, abundance, phi,
               eff_indptr, eff_indices, eff_data, target_of_group, out_nnz, out_lib):
    """First pass over rows ``start:stop``: non-zeros and library size of each."""
    dummy_i = np.empty(0, dtype=np.int32)
    dummy_c = np.empty(0, dtype=np.int64)
    for i in prange(stop - start):
        r = start + i
        nnz, lib = _sample_row(seed, r, groups[r], depth[r], response[r], knockdown[r], abundance, phi,
                               eff_indptr, eff_indices, eff_data, target_of_group, dummy_i, dummy_c, False)
        out_nnz[i] = nnz
        out_lib[i] = lib


@njit(cache=True, parallel=True)
def fill_rows(seed, start, stop, groups, depth, response, knockdown, abundance, phi,
              eff_indptr, eff_indices, eff_data, target_of_group, indptr, library, target_sum,
              log1p, out_indices, out_data):
    """Second pass: store rows ``start:stop`` at ``indptr[i] - indptr[0]`` (local CSR of the
    chunk), as float32 counts or ``log1p(count / library * target_sum)``."""
    base = indptr[0]
    for i in prange(stop - start):
        r = start + i
        lo = indptr[i] - base
        hi = indptr[i + 1] - base
        idx = out_indices[lo:hi]
        cnt = np.empty(hi - lo, dtype=np.int64)
        _sample_row(seed, r, groups[r], depth[r], response[r], knockdown[r], abundance, phi,
                    eff_indptr, eff_indices, eff_data, target_of_group, idx, cnt, True)
        if log1p:
            scale = target_sum / library[r]
            for t in range(hi - lo):
                out_data[lo + t] = np.float32(math.log1p(cnt[t] * scale))
        else:
            for t in range(hi - lo):
                out_data[lo + t] = np.float32(cnt[t])


@njit(cache=True, parallel=True)
def fill_dense_rows(seed, start, stop, groups, depth, response, knockdown, abundance, phi,
                    eff_indptr, eff_indices, eff_data, target_of_group, out, out_nnz, out_lib):
    """One pass over rows ``start:stop`` for a dense counts file: raw counts (float32) into the
    zeroed ``out[i, :]``, and each row's non-zeros and library size (the same draws as
    :func:`fill_rows`, so the dense file holds the CSR file's values)."""
    n_genes = abundance.size
    for i in prange(stop - start):
        r = start + i
        idx = np.empty(n_genes, dtype=np.int32)
        cnt = np.empty(n_genes, dtype=np.int64)
        nnz, lib = _sample_row(seed, r, groups[r], depth[r], response[r], knockdown[r], abundance, phi,
                               eff_indptr, eff_indices, eff_data, target_of_group, idx, cnt, True)
        for t in range(nnz):
            out[i, idx[t]] = np.float32(cnt[t])
        out_nnz[i] = nnz
        out_lib[i] = lib
