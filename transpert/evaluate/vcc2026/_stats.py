"""One side's summaries for the vcc2026 metrics, streamed from its raw counts.

- Profiles: ``log1p(TS * P / S)`` of each group's count sums (TS = 5e4; cell-eval2's
  ``bulk_lognorm`` comparator), and each group's delete-one jackknife correction
  ``((n-1)/n) * sum_g sum_i (v_ig - mean_i v_ig)^2`` with v the profile left without cell i
  (shifted by the full profile, as cell-eval2 does), its sums over the zero entries by an exact
  series (``transpert.kernels._vcc2026.jackknife_sums``): O(stored values), not O(cells x genes).
- DE against the real control: per gene the Wilcoxon rank sum of log1p(CPM) values (CPM:
  x / (l / 1e6)), tie-corrected normal approximation with scanpy's arithmetic, over the genes
  whose real-control mean CPM exceeds 5; BH within the perturbation over those genes (scipy);
  log2 fold change of arithmetic CPM means with epsilon 1e-9.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import false_discovery_control, norm

from transpert.evaluate.vcc2026._config import BULK_TARGET_SUM, EPSILON, MIN_CPM
from transpert.evaluate.vcc2026._inputs import Scanned, iter_groups
from transpert.kernels._vcc2026 import (
    control_tie_terms,
    cpm_log1p_csc,
    jackknife_sums,
    mean_cpm_rows,
    ranksum_vs_control,
)

def bulk_means(sums: np.ndarray) -> np.ndarray:
    """log1p(TS * P / S) per group from count sums (an all-zero group stays zero)."""
    totals = sums.sum(axis=1)
    scale = np.zeros_like(totals)
    ok = totals > 0
    scale[ok] = BULK_TARGET_SUM / totals[ok]
    return np.log1p(sums * scale[:, None])


def jackknife(X, lib: np.ndarray, P: np.ndarray) -> float:
    """The delete-one jackknife correction of one group (raw counts X, cell totals lib, sums P)."""
    n = X.shape[0]
    if n < 2:
        return 0.0
    tot = float(P.sum())
    if tot <= 0.0:
        return 0.0
    s1 = np.zeros(P.size)
    s2 = np.zeros(P.size)
    jackknife_sums(X.indptr, X.indices, X.data, lib, P, tot, BULK_TARGET_SUM, s1, s2)
    q = s2 - s1 ** 2 / n
    return max(((n - 1) / n) * float(q.sum()), 0.0)


def _sorted_values(X, lib):
    col_ptr = np.zeros(X.shape[1] + 1, dtype=np.int64)
    values = np.empty(X.nnz)
    cpm_log1p_csc(X.indptr, X.indices, X.data, lib, X.shape[1], col_ptr, values)
    return col_ptr, values[:col_ptr[-1]]


def _mean_cpm(X, lib):
    out = np.zeros(X.shape[1])
    mean_cpm_rows(X.indptr, X.indices, X.data, lib, 1.0 / X.shape[0], out)
    return out


@dataclass
class Control:
    """The real control's sorted log1p-CPM values per gene, their tie terms, its mean CPM, the
    genes kept by the CPM filter, and its raw counts and cell totals (the baseline's pool)."""

    col_ptr: np.ndarray
    values: np.ndarray
    m: int
    ties: np.ndarray
    mean_cpm: np.ndarray
    kept: np.ndarray  # gene indices with control mean CPM > MIN_CPM
    X: object
    lib: np.ndarray

    @classmethod
    def from_cells(cls, X, lib) -> "Control":
        col_ptr, values = _sorted_values(X, lib)
        ties = np.zeros(X.shape[1])
        control_tie_terms(col_ptr, values, X.shape[0], ties)
        mean = _mean_cpm(X, lib)
        return cls(col_ptr, values, X.shape[0], ties, mean, np.flatnonzero(mean * 1.0 > MIN_CPM), X,
                   lib)


@dataclass
class GroupDE:
    """One perturbation's DE table over the control's kept genes (gene indices ``kept``)."""

    kept: np.ndarray
    lfc: np.ndarray
    p: np.ndarray
    p_adj: np.ndarray


def group_de(X, lib, control: Control) -> GroupDE:
    """Wilcoxon (scanpy's tie-corrected normal approximation) of one group's cells against the
    real control, on log1p(CPM); BH over the kept genes; log2FC of arithmetic CPM means."""
    n1 = X.shape[0]
    m = control.m
    col_ptr, values = _sorted_values(X, lib)
    G = X.shape[1]
    ranksum = np.empty(G)
    tc = np.empty(G)
    ranksum_vs_control(col_ptr, values, n1, control.col_ptr, control.values, m, control.ties,
                       ranksum, tc)
    kept = control.kept
    std_dev = np.sqrt(tc[kept] * n1 * m * (n1 + m + 1) / 12.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (ranksum[kept] - (n1 * ((n1 + m + 1) / 2.0))) / std_dev
    z[np.isnan(z)] = 0
    p = 2 * norm.sf(np.abs(z))
    p_adj = false_discovery_control(p, method="bh") if p.size else p
    mt = _mean_cpm(X, lib)[kept]
    mr = control.mean_cpm[kept]
    with np.errstate(divide="ignore", invalid="ignore"):
        lfc = np.log2((mt + EPSILON) / (mr + EPSILON))
    return GroupDE(kept, lfc, p, p_adj)


@dataclass
class Side:
    """A side's profiles (groups x genes), jackknife corrections and DE tables (by group)."""

    groups: np.ndarray
    means: np.ndarray
    jk: np.ndarray
    de: dict


def summarize_side(scanned: Scanned, control_label: str, control: Control | None,
                   chunk_rows: int | None = None) -> tuple[Side, Control]:
    """Stream a scanned file once more: jackknife of every group, DE of every perturbation
    against ``control`` (built from this file's control cells when None: the real side)."""
    wanted = np.ones(scanned.groups.size, dtype=bool)
    if control is not None:
        wanted[np.flatnonzero(scanned.groups == control_label)[0]] = False  # not scored
    groups = iter_groups(scanned, wanted, chunk_rows)
    return summarize_groups(scanned.groups, scanned.sums, groups, control_label, control)


def summarize_groups(groups: np.ndarray, sums: np.ndarray, cells, control_label: str,
                     control: Control | None) -> tuple[Side, Control]:
    """Jackknife and DE of the groups ``cells`` yields as ``(code, raw counts, cell totals)``;
    ``sums[code]`` must hold the group's count sums when it is yielded. With ``control`` None,
    the group labelled ``control_label`` is the control (DE of earlier groups waits for it)."""
    ci = int(np.flatnonzero(groups == control_label)[0])
    jk = np.zeros(groups.size)
    de: dict = {}
    pending: dict = {}
    for code, X, lib in cells:
        jk[code] = jackknife(X, lib, sums[code])
        if code == ci and control is None:
            control = Control.from_cells(X, lib)
            for c2, (X2, lib2) in pending.items():
                de[str(groups[c2])] = group_de(X2, lib2, control)
            pending.clear()
        elif code == ci:
            continue
        elif control is None:
            pending[code] = (X, lib)  # the control comes later in this file
        else:
            de[str(groups[code])] = group_de(X, lib, control)
    return Side(groups, bulk_means(sums), jk, de), control
