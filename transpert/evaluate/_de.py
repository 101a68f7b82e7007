"""DE results for evaluation: from the summaries engine, or from a cell-eval/pdex DE table.

Both give (N, G) float32 log2 fold changes and FDRs aligned with the sorted labels and the
genes of the real file; cell-eval casts its DE tables to float32 before any metric.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError


def arrays_from_summary(summary, labels: np.ndarray, genes: np.ndarray, name: str):
    """float32 (log2fc, fdr) rows in ``labels`` order from a summary profile."""
    obs = pd.Index(summary.obs_names.astype(str))
    rows = obs.get_indexer(labels)
    if (rows < 0).any():
        missing = [str(x) for x in np.asarray(labels)[rows < 0][:5]]
        raise TranspertInputError(f"{name}: DE summary lacks perturbations {missing}")
    if not np.array_equal(np.asarray(summary.var_names.astype(str)), np.asarray(genes)):
        raise TranspertInputError(f"{name}: DE summary genes differ from the cells' genes")
    lfc = np.asarray(summary.layers["log2fc"])[rows].astype(np.float32)
    fdr = np.asarray(summary.layers["fdr"])[rows].astype(np.float32)
    return lfc, fdr


def arrays_from_table(table: pd.DataFrame, labels: np.ndarray, genes: np.ndarray, name: str):
    """float32 (log2fc, fdr) from a long DE table with cell-eval/pdex columns
    (``target, feature, log2_fold_change, fdr``; pdex 0.1.27's tables have ``fold_change``
    instead, whose log2 is taken with NaN -> 0 as cell-eval 0.6.6 does). Missing rows:
    log2FC 0, FDR 1."""
    if "log2_fold_change" not in table.columns and "fold_change" in table.columns:
        with np.errstate(divide="ignore", invalid="ignore"):
            lfc = np.log2(table["fold_change"].to_numpy(dtype=np.float64))
        table = table.assign(log2_fold_change=np.nan_to_num(lfc, nan=0.0, posinf=np.inf,
                                                            neginf=-np.inf))
    need = {"target", "feature", "log2_fold_change", "fdr"}
    missing = need - set(table.columns)
    if missing:
        raise TranspertInputError(f"{name}: DE table lacks columns {sorted(missing)}")
    r = pd.Index(labels).get_indexer(table["target"].astype(str))
    c = pd.Index(genes).get_indexer(table["feature"].astype(str))
    ok = (r >= 0) & (c >= 0)
    lfc = np.zeros((len(labels), len(genes)), dtype=np.float32)
    fdr = np.ones((len(labels), len(genes)), dtype=np.float32)
    lfc[r[ok], c[ok]] = table["log2_fold_change"].to_numpy(dtype=np.float64)[ok]
    fdr[r[ok], c[ok]] = table["fdr"].to_numpy(dtype=np.float64)[ok]
    return lfc, fdr
