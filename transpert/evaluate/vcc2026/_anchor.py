"""The replicate anchor r of the vcc2026 score, as ``cell-eval2 run --anchor`` builds it.

Split seeds: ``numpy.random.SeedSequence(base_seed).generate_state(n_splits)``. Each split draws,
per perturbation (the label column's group order), ``default_rng(seed).permutation`` of its
cells; half A takes the first floor(n/2), half B the next floor(n/2). Half B is scored as the
prediction against half A as the real data, each half with its OWN control cells (cell-eval2's
``control_source="pred"``: B's DE against B's control, B's effects against B's control). The
split's value per metric is the mean over perturbations (NaN dropped; the capped-norm ratio of
sums), except ``de_wilcoxon_lfc_nmae``: mean over perturbations of mean|lfc_A - lfc_B| / mean
|lfc_full| over the FULL real data's significant gate (>= 10 genes). The anchor is the mean of
the splits. The halves are scored while the real file is summarised (:class:`AnchorSplits`, the hooks of
that pass): each group's cells are read once for the run and the five splits, and every split's
rank sums come from one pass over the full group's sorted log1p(CPM) values against the full
control's (:mod:`transpert.kernels._vcc2026_halves`); the halves are never written.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError
from transpert.evaluate.vcc2026._config import BULK_TARGET_SUM, LFC_NMAE_MIN_GATE, P_ADJ_THRESHOLD
from transpert.evaluate.vcc2026._inputs import iter_groups, open_counts
from transpert.evaluate.vcc2026._metrics import de_metrics, expr_metrics, full_table, pds_cosine
from transpert.evaluate.vcc2026._run import RealSummary, agg_table, results_table
from transpert.evaluate.vcc2026._stats import (
    Control,
    GroupDE,
    GroupPass,
    Side,
    Workers,
    bulk_means,
    de_from_ranksums,
    group_pass,
    split_values,
)
from transpert.kernels._vcc2026_halves import half_masks, ranksum_halves


def split_seeds(base_seed: int, n_splits: int) -> list[int]:
    return [int(s) for s in np.random.SeedSequence(int(base_seed)).generate_state(n_splits)]


def _group_order(opened, pert_col: str, groups: np.ndarray) -> list:
    col = opened.source.raw_obs[pert_col]
    if isinstance(col.dtype, pd.CategoricalDtype):
        present = set(groups)
        return [str(c) for c in col.cat.categories if str(c) in present]
    return sorted(groups)


def _halves(groups: np.ndarray, codes: np.ndarray, name: str, order: list, seed: int) -> dict:
    """{code: (local rows of half A, local rows of half B)} in the permutation's order."""
    rng = np.random.default_rng(seed)
    groups = list(groups)
    out = {}
    for label in order:
        code = groups.index(label)
        idx = np.flatnonzero(codes == code)
        perm = rng.permutation(idx)
        h = perm.size // 2
        if h < 1:
            raise TranspertInputError(f"{name}: perturbation {label!r} has fewer than "
                                      "2 cells; the replicate anchor splits every group in halves")
        out[code] = (np.searchsorted(idx, perm[:h]), np.searchsorted(idx, perm[h:2 * h]))
    return out


class _Tables:
    """The DE tables of one side for one perturbation (what :func:`de_metrics` reads)."""

    def __init__(self, de: dict):
        self.de = de


def _nmae_one(full, a, b, genes: np.ndarray, label: str):
    """mean|lfc_A - lfc_B| / mean|lfc_full| over the full data's significant gate of one
    perturbation; None when the gate holds fewer than 10 genes or the denominator is 0."""
    lfc, _, padj, present = full_table(full, genes.size)
    hit = np.flatnonzero(genes == label)
    if hit.size and present[hit[0]]:
        present[hit[0]] = False
    gate = present & (padj < P_ADJ_THRESHOLD) & np.isfinite(lfc)
    la, _, _, ina = full_table(a, genes.size)
    lb, _, _, inb = full_table(b, genes.size)
    la = np.where(ina & np.isfinite(la), la, 0.0)[gate]
    lb = np.where(inb & np.isfinite(lb), lb, 0.0)[gate]
    ref = lfc[gate]
    n = ref.size
    if n < LFC_NMAE_MIN_GATE:
        return None
    den = float(np.abs(ref).sum() / n)
    if np.isfinite(den) and den != 0.0:
        return float(np.abs(la - lb).sum() / n) / den
    return None


class AnchorSplits:
    """The replicate anchor's half splits, built while the real cells pass (the hooks of
    :func:`~transpert.evaluate.vcc2026._stats.summarize_groups`): each perturbation's halves
    are scored while its cells are in memory, each half against its own half of the control:
    the control halves' sorted values are taken from the full control's (no re-sorting) and
    the groups' rank sums from the full group's and control's sorted values
    (:func:`~transpert.kernels._vcc2026_halves.ranksum_halves`)."""

    def __init__(self, groups: np.ndarray, codes: np.ndarray, name: str, order: list,
                 genes: np.ndarray, base_seed: int, n_splits: int):
        self.seeds = split_seeds(base_seed, n_splits)
        self.halves = [_halves(groups, codes, name, order, seed) for seed in self.seeds]
        self.groups = groups
        self.genes = genes
        self.sums = np.zeros((n_splits, 2, groups.size, genes.size))
        self.jk = np.zeros((n_splits, 2, groups.size))
        self.values = [{} for _ in self.seeds]  # per split: {metric: {label: value}}
        self.nmae = [{} for _ in self.seeds]  # per split: {label: reference lfc_nmae}
        self.controls = None
        self.pos = {g: i for i, g in enumerate(genes)}

    def _passes(self, s: int, code: int, X, lib):
        """Both halves' passes of split ``s`` of one group (sums, jackknife, mean CPM; rows in
        the permutation's order), their sums and jackknife kept for the profiles."""
        rows = self.halves[s][code]
        parts = [group_pass(X, lib, values=False, order=rows[h]) for h in (0, 1)]
        for h in (0, 1):
            self.sums[s, h, code] = parts[h].P
            self.jk[s, h, code] = parts[h].jk
        return parts

    def _membership(self, code: int, n: int) -> np.ndarray:
        """half[s, row] of a group's rows: 0 or 1 for its half in split s, -1 for neither."""
        half = np.full((len(self.seeds), n), -1, dtype=np.int8)
        for s in range(len(self.seeds)):
            rows = self.halves[s][code]
            half[s, rows[0]] = 0
            half[s, rows[1]] = 1
        return half

    def on_control(self, control: Control, code: int) -> None:
        full = GroupPass(control.m, 0.0, control.mean_cpm, control.col_ptr, control.values,
                         control.rows)

        def halves(s):
            parts = self._passes(s, code, control.X, control.lib)
            vals = split_values(full, self.halves[s][code], *parts)
            return [Control.from_sorted(parts[h].col_ptr, vals[h], None, parts[h].mean_cpm,
                                        parts[h].n) for h in (0, 1)]

        with Workers() as pool:
            self.controls = pool.map(halves, range(len(self.seeds)))
        # which half of each split every sorted control value belongs to, as rank tables
        n_blocks = control.values.size // 64 + 1
        S = len(self.seeds)
        self.masks = np.empty((n_blocks, S, 2), dtype=np.uint64)
        self.counts = np.empty((n_blocks, S, 2), dtype=np.int64)
        half_masks(control.rows, self._membership(code, control.m), self.masks, self.counts)
        self.full_control = control
        self.c_m = np.array([[c.m for c in pair] for pair in self.controls], dtype=np.int64)
        self.c_ties = np.stack([np.stack([c.ties for c in pair]) for pair in self.controls])

    def on_group(self, code: int, X, lib, gp: GroupPass, full_de: GroupDE | None = None
                 ) -> GroupDE:
        """Score every split's halves of one group (raw counts ``X``, totals ``lib``, ``gp``
        its full pass); returns its DE table against the full control (``full_de`` when
        given, else tested here in the same search of the control as the halves)."""
        label = str(self.groups[code])
        S = len(self.seeds)
        parts = [self._passes(s, code, X, lib) for s in range(S)]
        n_half = np.array([[p.n for p in pair] for pair in parts], dtype=np.int64)
        G = gp.col_ptr.size - 1
        ranksum = np.empty((S, 2, G))
        tc = np.empty((S, 2, G))
        full_rs = np.empty(G)
        full_tc = np.empty(G)
        ctrl = self.full_control
        ranksum_halves(gp.col_ptr, gp.values, gp.rows, self._membership(code, gp.n), n_half,
                       ctrl.col_ptr, ctrl.values, ctrl.index, self.masks, self.counts, self.c_m,
                       self.c_ties, ranksum, tc, ctrl.m, ctrl.ties, full_rs, full_tc)
        if full_de is None:
            full_de = de_from_ranksums(full_rs, full_tc, gp.n, gp.mean_cpm, ctrl)
        for s in range(S):
            tables = [de_from_ranksums(ranksum[s, h], tc[s, h], parts[s][h].n,
                                       parts[s][h].mean_cpm, self.controls[s][h])
                      for h in (0, 1)]
            one = de_metrics(_Tables({label: tables[0]}), _Tables({label: tables[1]}),
                             self.genes, [label], self.pos)
            for metric, by_label in one.items():
                self.values[s].setdefault(metric, {}).update(by_label)
            ref = _nmae_one(full_de, tables[0], tables[1], self.genes, label)
            if ref is not None:
                self.nmae[s][label] = ref
        return full_de

    def finish(self, real: RealSummary, with_values: bool = False) -> tuple:
        """(splits, anchor): per split and metric its value; per metric the mean over splits.
        With ``with_values`` also the long table ``split_index, perturbation, metric, value``
        of every split's per-perturbation values (``de_wilcoxon_lfc_nmae``: the anchor's
        per-perturbation reference), which intervals over perturbations resample."""
        groups = list(self.groups)
        ci = groups.index(real.control_label)
        rows = [groups.index(p) for p in real.labels]
        genes, labels = real.genes, real.labels
        records, frames = [], []
        for i, seed in enumerate(self.seeds):
            a = Side(self.groups, bulk_means(self.sums[i, 0]), self.jk[i, 0], {})
            b = Side(self.groups, bulk_means(self.sums[i, 1]), self.jk[i, 1], {})
            values = {m: dict(v) for m, v in self.values[i].items()}
            values["pds_cosine"] = pds_cosine(a.means[rows], b.means[rows], a.means[ci],
                                              genes, labels, pred_ctrl=b.means[ci])
            values.update(expr_metrics(a.means[rows], a.jk[rows], b.means[rows], b.jk[rows],
                                       a.means[ci], a.jk[ci], genes, labels,
                                       mass_target=BULK_TARGET_SUM))
            agg = agg_table(results_table(values)).set_index("statistic").loc["mean"]
            refs = [self.nmae[i][p] for p in labels if p in self.nmae[i]]  # sorted labels
            if not refs:
                raise TranspertInputError("the replicate anchor's lfc_nmae reference scores no "
                                          "perturbation (no gate of >= 10 significant genes)")
            agg["de_wilcoxon_lfc_nmae"] = float(np.mean(refs))
            for metric, value in agg.items():
                records.append((i, seed, metric, float(value)))
            if with_values:
                table = results_table({**values, "de_wilcoxon_lfc_nmae": self.nmae[i]})
                table.insert(0, "split_index", i)
                frames.append(table)
        splits = pd.DataFrame(records, columns=["split_index", "seed", "metric", "value"])
        anchor = (splits.groupby("metric", sort=True)["value"]
                  .agg(replicate="mean", replicate_sd=lambda v: float(np.std(v)),
                       replicate_min="min", replicate_max="max").reset_index())
        if with_values:
            return splits, anchor, pd.concat(frames, ignore_index=True)
        return splits, anchor


def anchor_collector(opened, scanned, pert_col: str, base_seed: int = 0,
                     n_splits: int = 5) -> AnchorSplits:
    """The :class:`AnchorSplits` of a scanned real file (cell-eval2's split seeds and group
    order), to pass as the hooks of its summarising pass."""
    order = _group_order(opened, pert_col, scanned.groups)
    return AnchorSplits(scanned.groups, scanned.codes, scanned.name, order, scanned.genes,
                        base_seed, n_splits)


def replicate_anchor(real: RealSummary, base_seed: int = 0, n_splits: int = 5,
                     chunk_rows: int | None = None, with_values: bool = False) -> tuple:
    """(splits, anchor) of the replicate anchor r, as ``cell-eval2 run --anchor`` builds it.

    Parameters
    ----------
    real : the summarised real cells (:func:`~transpert.evaluate.vcc2026.summarize_real`);
        when it was summarised with the anchor (``summarize_real(..., anchor=(seed, splits))``)
        and the same seed and number of splits, nothing is read again; otherwise the real file
        is read once more.
    base_seed, n_splits : cell-eval2's ``SeedSequence`` seed and number of half splits.
    chunk_rows : cells read at a time (None: automatic).
    with_values : also return every split's per-perturbation values (for intervals).

    Returns
    -------
    (DataFrame, DataFrame) or (DataFrame, DataFrame, DataFrame)
        ``split_index, seed, metric, value`` (each split's mean per metric, on the metric's
        own scale) and ``metric, replicate, replicate_sd, replicate_min, replicate_max``; with
        ``with_values`` also ``split_index, perturbation, metric, value``.
    """
    done = getattr(real, "anchor", None)
    if done is not None and done.seeds == split_seeds(base_seed, n_splits):
        return done.finish(real, with_values)
    opened = open_counts(real.source, "real", real.pert_col, real.control_label)
    real.scanned.opened = opened
    try:
        collector = anchor_collector(opened, real.scanned, real.pert_col, base_seed, n_splits)
        ctrl = real.control
        if ctrl.rows is None:  # summarised without the anchor: each value's row was dropped
            ctrl = Control.from_pass(group_pass(ctrl.X, ctrl.lib), ctrl.X, ctrl.lib)
        collector.on_control(ctrl, list(real.side.groups).index(real.control_label))
        wanted = real.side.groups != real.control_label
        for code, X, lib in iter_groups(real.scanned, wanted, chunk_rows):
            label = str(real.side.groups[code])
            collector.on_group(code, X, lib, group_pass(X, lib), real.side.de[label])
    finally:
        opened.close()
    return collector.finish(real, with_values)
