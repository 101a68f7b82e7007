"""The replicate anchor r of the vcc2026 score, as ``cell-eval2 run --anchor`` builds it.

Split seeds: ``numpy.random.SeedSequence(base_seed).generate_state(n_splits)``. Each split draws,
per perturbation (the label column's group order), ``default_rng(seed).permutation`` of its
cells; half A takes the first floor(n/2), half B the next floor(n/2). Half B is scored as the
prediction against half A as the real data, each half with its OWN control cells (cell-eval2's
``control_source="pred"``: B's DE against B's control, B's effects against B's control). The
split's value per metric is the mean over perturbations (NaN dropped; the capped-norm ratio of
sums), except ``de_wilcoxon_lfc_nmae``: mean over perturbations of mean|lfc_A - lfc_B| / mean
|lfc_full| over the FULL real data's significant gate (>= 10 genes). The anchor is the mean of
the splits. One pass over the real file per split; the halves are never written.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError
from transpert.evaluate.vcc2026._config import BULK_TARGET_SUM, LFC_NMAE_MIN_GATE, P_ADJ_THRESHOLD
from transpert.evaluate.vcc2026._inputs import iter_groups, open_counts
from transpert.evaluate.vcc2026._metrics import de_metrics, expr_metrics, full_table, pds_cosine
from transpert.evaluate.vcc2026._run import RealSummary, agg_table, results_table
from transpert.evaluate.vcc2026._stats import Control, Side, bulk_means, group_de, jackknife
from transpert.kernels._vcc2026 import group_sums_csr


def split_seeds(base_seed: int, n_splits: int) -> list[int]:
    return [int(s) for s in np.random.SeedSequence(int(base_seed)).generate_state(n_splits)]


def _group_order(opened, pert_col: str, groups: np.ndarray) -> list:
    col = opened.source.raw_obs[pert_col]
    if isinstance(col.dtype, pd.CategoricalDtype):
        present = set(groups)
        return [str(c) for c in col.cat.categories if str(c) in present]
    return sorted(groups)


def _halves(real: RealSummary, order: list, seed: int) -> dict:
    """{code: (local rows of half A, local rows of half B)} in the permutation's order."""
    rng = np.random.default_rng(seed)
    groups = list(real.side.groups)
    codes = real.scanned.codes
    out = {}
    for label in order:
        code = groups.index(label)
        idx = np.flatnonzero(codes == code)
        perm = rng.permutation(idx)
        h = perm.size // 2
        if h < 1:
            raise TranspertInputError(f"{real.scanned.name}: perturbation {label!r} has fewer than "
                                      "2 cells; the replicate anchor splits every group in halves")
        out[code] = (np.searchsorted(idx, perm[:h]), np.searchsorted(idx, perm[h:2 * h]))
    return out


def _sums(X):
    s = np.zeros((1, X.shape[1]))
    group_sums_csr(X.indptr, X.indices, X.data, np.zeros(X.shape[0], dtype=np.int64), s)
    return s[0]


def _split_sides(real: RealSummary, halves: dict, chunk_rows):
    groups = real.side.groups
    ci = list(groups).index(real.control_label)
    G = real.genes.size
    sides = []
    ctrl = real.control
    for h in (0, 1):
        rows = halves[ci][h]
        sides.append(dict(sums=np.zeros((groups.size, G)), jk=np.zeros(groups.size), de={},
                          control=Control.from_cells(ctrl.X[rows], ctrl.lib[rows])))
        sides[h]["sums"][ci] = _sums(ctrl.X[rows])
        sides[h]["jk"][ci] = jackknife(ctrl.X[rows], ctrl.lib[rows], sides[h]["sums"][ci])
    wanted = np.ones(groups.size, dtype=bool)
    wanted[ci] = False
    opened = open_counts(real.source, "real", real.pert_col, real.control_label)
    real.scanned.opened = opened
    try:
        for code, X, lib in iter_groups(real.scanned, wanted, chunk_rows):
            for h in (0, 1):
                rows = halves[code][h]
                Xh, libh = X[rows], lib[rows]
                s = sides[h]
                s["sums"][code] = _sums(Xh)
                s["jk"][code] = jackknife(Xh, libh, s["sums"][code])
                s["de"][str(groups[code])] = group_de(Xh, libh, s["control"])
    finally:
        opened.close()
    return [Side(groups, bulk_means(s["sums"]), s["jk"], s["de"]) for s in sides]


def _nmae_reference(real: RealSummary, a: Side, b: Side) -> float:
    """Mean over gated perturbations of mean|lfc_A - lfc_B| / mean|lfc_full| (full-data gate)."""
    genes = real.genes
    pos = {g: i for i, g in enumerate(genes)}
    values = []
    for p in real.labels:  # sorted, as cell-eval2 sorts the reference's rows
        lfc, _, padj, present = full_table(real.side.de[p], genes.size)
        if p in pos and present[pos[p]]:
            present[pos[p]] = False
        gate = present & (padj < P_ADJ_THRESHOLD) & np.isfinite(lfc)
        la, _, _, ina = full_table(a.de[p], genes.size)
        lb, _, _, inb = full_table(b.de[p], genes.size)
        la = np.where(ina & np.isfinite(la), la, 0.0)[gate]
        lb = np.where(inb & np.isfinite(lb), lb, 0.0)[gate]
        ref = lfc[gate]
        n = ref.size
        if n < LFC_NMAE_MIN_GATE:
            continue
        den = float(np.abs(ref).sum() / n)
        if np.isfinite(den) and den != 0.0:
            values.append(float(np.abs(la - lb).sum() / n) / den)
    if not values:
        raise TranspertInputError("the replicate anchor's lfc_nmae reference scores no "
                                  "perturbation (no gate of >= 10 significant genes)")
    return float(np.mean(values))


def replicate_anchor(real: RealSummary, base_seed: int = 0, n_splits: int = 5,
                     chunk_rows: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(splits, anchor): per split and metric its value; per metric the mean over splits."""
    seeds = split_seeds(base_seed, n_splits)
    opened = open_counts(real.source, "real", real.pert_col, real.control_label)
    try:
        order = _group_order(opened, real.pert_col, real.side.groups)
    finally:
        opened.close()
    groups = list(real.side.groups)
    ci = groups.index(real.control_label)
    rows = [groups.index(p) for p in real.labels]
    genes, labels = real.genes, real.labels
    records = []
    for i, seed in enumerate(seeds):
        a, b = _split_sides(real, _halves(real, order, seed), chunk_rows)
        values = de_metrics(a, b, genes, labels)
        values["pds_cosine"] = pds_cosine(a.means[rows], b.means[rows], a.means[ci],
                                          genes, labels, pred_ctrl=b.means[ci])
        values.update(expr_metrics(a.means[rows], a.jk[rows], b.means[rows], b.jk[rows],
                                   a.means[ci], a.jk[ci], genes, labels,
                                   mass_target=BULK_TARGET_SUM))
        agg = agg_table(results_table(values)).set_index("statistic").loc["mean"]
        agg["de_wilcoxon_lfc_nmae"] = _nmae_reference(real, a, b)
        for metric, value in agg.items():
            records.append((i, seed, metric, float(value)))
    splits = pd.DataFrame(records, columns=["split_index", "seed", "metric", "value"])
    anchor = (splits.groupby("metric", sort=True)["value"]
              .agg(replicate="mean", replicate_sd=lambda v: float(np.std(v)),
                   replicate_min="min", replicate_max="max").reset_index())
    return splits, anchor
