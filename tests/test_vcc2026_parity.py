"""vcc2026 suite vs cell-eval2 0.20.0's stored outputs (tests/parity_vcc2026/expected, written by
tests/parity_vcc2026/regenerate.sh): every per-perturbation value, the NaN pattern, the omitted
lfc_nmae perturbations and the aggregate table.

Tolerance: 1e-9 relative (absolute 1e-12 near zero). The observed differences are at most a few
1e-14 (summation order of the jackknife's float64 sums); counts-based members (Jaccard,
fidelity, reach) and pds_cosine ranks agree exactly.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from transpert.evaluate.vcc2026 import agg_table, run_metrics, summarize_real

HERE = os.path.join(os.path.dirname(__file__), "parity_vcc2026")
FIX = os.path.join(HERE, "fixtures")
EXP = os.path.join(HERE, "expected")
COL = "target_gene"
RTOL, ATOL = 1e-9, 1e-12


@pytest.fixture(scope="module")
def real():
    return summarize_real(os.path.join(FIX, "real.h5ad"), pert_col=COL, chunk_rows=97)


def assert_results_equal(ours: pd.DataFrame, ref: pd.DataFrame) -> None:
    m = ref.merge(ours, on=["perturbation", "metric"], how="outer", suffixes=("_ref", "_us"),
                  indicator=True)
    assert (m["_merge"] == "both").all(), m[m["_merge"] != "both"]
    a, b = m["value_ref"].to_numpy(float), m["value_us"].to_numpy(float)
    assert np.array_equal(np.isnan(a), np.isnan(b)), m[np.isnan(a) != np.isnan(b)]
    ok = ~np.isnan(a)
    np.testing.assert_allclose(b[ok], a[ok], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", ["mixed", "replicate", "constant"])
def test_run_equals_cell_eval2(real, name):
    ours = run_metrics(real, os.path.join(FIX, f"{name}_pred.h5ad"), pert_col=COL, chunk_rows=53)
    ref = pd.read_csv(os.path.join(EXP, name, "results.csv"))
    assert_results_equal(ours, ref)
    agg = agg_table(ours).set_index("statistic")
    ref_agg = pd.read_csv(os.path.join(EXP, name, "agg_results.csv")).set_index("statistic")
    assert list(agg.columns) == list(ref_agg.columns)
    np.testing.assert_allclose(agg.to_numpy(float), ref_agg.loc[agg.index].to_numpy(float),
                               rtol=RTOL, atol=ATOL, equal_nan=True)
