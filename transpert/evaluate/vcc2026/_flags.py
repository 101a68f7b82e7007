"""Per-perturbation flags of a vcc2026 scoring: where a member's value is set by the real data's
definition rather than by the prediction (``flags.csv``).

Columns: ``n_de_real`` (real significant genes against the real control, BH < 0.05 within the
perturbation, the target gene excluded), ``lfc_nmae_scored`` (the real gate holds >= 10 genes, so
``de_wilcoxon_lfc_nmae`` scores it), ``reach_defined`` (>= 1 real significant gene),
``fidelity_defined`` (either side calls a significant gene), ``target_in_genes`` (the label is a
measured gene, so its column is excluded from the PDS and DE members; otherwise it is scored
without exclusion, as cell-eval2 warns).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transpert.evaluate.vcc2026._config import P_ADJ_THRESHOLD, SUITE
from transpert.evaluate.vcc2026._metrics import full_table


def flags_table(real, results: pd.DataFrame) -> pd.DataFrame:
    """The flags of every perturbation of ``real`` (a RealSummary) scored in ``results``."""
    genes = real.genes
    pos = {g: i for i, g in enumerate(genes)}
    by = results.set_index(["metric", "perturbation"])["value"]
    rows = []
    for p in real.labels:
        _, _, padj, present = full_table(real.side.de[p], genes.size)
        if p in pos:
            present[pos[p]] = False
        n_sig = int((present & (padj < P_ADJ_THRESHOLD)).sum())

        def has(metric):
            key = (metric, p)
            return key in by.index and not np.isnan(by[key])
        rows.append((SUITE, p, n_sig, has("de_wilcoxon_lfc_nmae"),
                     has("de_wilcoxon_direction_reach_raw"),
                     has("de_wilcoxon_direction_fidelity_yield_raw"), p in pos))
    return pd.DataFrame(rows, columns=["suite", "perturbation", "n_de_real", "lfc_nmae_scored",
                                       "reach_defined", "fidelity_defined", "target_in_genes"])
