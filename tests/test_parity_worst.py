"""The parity report (tests/parity/worst_differences.py) covers every stored metric of every
suite and finds the differences the parity tests allow, not more."""

from __future__ import annotations

import os
import sys

import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "parity"))
import worst_differences as wd  # noqa: E402

HERE = os.path.dirname(__file__)


def test_report_covers_every_metric_within_the_tests_tolerances():
    table = pd.DataFrame(wd.cell_eval_suites() + wd.vcc2026_suite())
    assert table["nan_pattern_equal"].all()
    assert (table["n"] > 0).all()
    for suite in ("vcc2025", "cell-eval-0.8.2"):
        stored = pd.read_csv(os.path.join(HERE, "parity", suite, "counts", "results.csv"))
        got = set(table.loc[(table.suite == suite) & (table.part == "results"), "metric"])
        assert got == set(stored.columns[1:])
    stored = pd.read_csv(os.path.join(HERE, "parity_vcc2026", "expected", "mixed", "results.csv"))
    got = set(table.loc[(table.suite == "vcc2026") & (table.part == "results"), "metric"])
    assert got == set(stored["metric"])
    # the loosest tolerance of the parity tests (float32 pseudo-bulks of the cell-eval suites)
    assert (table["worst_rel"] <= 1e-6).all(), table.sort_values("worst_rel").tail()
    vcc2026 = table[table.suite == "vcc2026"]
    assert (vcc2026["worst_rel"] <= 1e-9).all()
