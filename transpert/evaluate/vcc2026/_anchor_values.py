"""The replicate anchor of the vcc2026 score kept per perturbation, for intervals.

:func:`~transpert.evaluate.vcc2026._anchor.replicate_anchor` returns each split's means over
perturbations; a bootstrap over perturbations needs each split's value for every perturbation,
so that the anchor *r* can be recomputed on the same resample as the submission's *u* and the
baseline's *b*. :func:`anchor_with_values` runs the same splits (the anchor's own helpers: the
same seeds, halves and metrics) and returns the same ``(splits, anchor)`` tables plus the long
per-perturbation table; its means equal ``replicate_anchor``'s (tested).

Per split and perturbation: the nine per-perturbation members of half B scored against half A,
and ``de_wilcoxon_lfc_nmae`` as the anchor defines it (mean |lfc_A - lfc_B| over mean |lfc_full|
on the full real data's significant gate; NaN where the gate holds fewer than 10 genes).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError
from transpert.evaluate.vcc2026._anchor import (
    _group_order,
    _halves,
    _nmae_reference,
    _split_sides,
    split_seeds,
)
from transpert.evaluate.vcc2026._config import BULK_TARGET_SUM
from transpert.evaluate.vcc2026._inputs import open_counts
from transpert.evaluate.vcc2026._metrics import de_metrics, expr_metrics, pds_cosine
from transpert.evaluate.vcc2026._run import RealSummary, agg_table, results_table

NMAE = "de_wilcoxon_lfc_nmae"


def _nmae_per_perturbation(real: RealSummary, a, b) -> dict:
    """{label: the anchor's lfc_nmae of that perturbation}, gated perturbations only."""
    out = {}
    for p in real.labels:
        one = SimpleNamespace(genes=real.genes, labels=[p], side=real.side)
        try:
            out[p] = _nmae_reference(one, a, b)
        except TranspertInputError:  # fewer than 10 gated genes: not scored
            continue
    return out


def anchor_with_values(real: RealSummary, base_seed: int = 0, n_splits: int = 5,
                       chunk_rows: int | None = None
                       ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(splits, anchor, values): ``replicate_anchor``'s two tables and ``values``, the long
    table ``split_index, perturbation, metric, value`` (each member on its own scale)."""
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
    records, frames = [], []
    for i, seed in enumerate(seeds):
        a, b = _split_sides(real, _halves(real, order, seed), chunk_rows)
        values = de_metrics(a, b, genes, labels)
        values["pds_cosine"] = pds_cosine(a.means[rows], b.means[rows], a.means[ci],
                                          genes, labels, pred_ctrl=b.means[ci])
        values.update(expr_metrics(a.means[rows], a.jk[rows], b.means[rows], b.jk[rows],
                                   a.means[ci], a.jk[ci], genes, labels,
                                   mass_target=BULK_TARGET_SUM))
        values[NMAE] = _nmae_per_perturbation(real, a, b)
        if not values[NMAE]:
            raise TranspertInputError("the replicate anchor's lfc_nmae reference scores no "
                                      "perturbation (no gate of >= 10 significant genes)")
        table = results_table(values)
        agg = agg_table(table).set_index("statistic").loc["mean"]
        agg[NMAE] = float(np.mean(list(values[NMAE].values())))
        for metric, value in agg.items():
            records.append((i, seed, metric, float(value)))
        table.insert(0, "split_index", i)
        frames.append(table)
    splits = pd.DataFrame(records, columns=["split_index", "seed", "metric", "value"])
    anchor = (splits.groupby("metric", sort=True)["value"]
              .agg(replicate="mean", replicate_sd=lambda v: float(np.std(v)),
                   replicate_min="min", replicate_max="max").reset_index())
    return splits, anchor, pd.concat(frames, ignore_index=True)
