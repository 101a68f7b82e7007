"""cell-eval2 0.20.0's ``vcc2026`` suite (the Virtual Cell Challenge 2026 scorer) on raw counts,
streamed from disk: its validation, metrics, file layouts, baseline, replicate anchor and score.
"""

from transpert.evaluate.vcc2026._api import Vcc2026Result, evaluate_vcc2026
from transpert.evaluate.vcc2026._bundle import read_real_bundle
from transpert.evaluate.vcc2026._intervals import bootstrap_vcc2026, paired_vcc2026
from transpert.evaluate.vcc2026._rank import Vcc2026Leaderboard, rank_vcc2026
from transpert.evaluate.vcc2026._report import write_vcc2026_report
from transpert.evaluate.vcc2026._run import (
    RealSummary,
    agg_table,
    results_table,
    run_metrics,
    summarize_real,
)

__all__ = ["RealSummary", "Vcc2026Leaderboard", "Vcc2026Result", "agg_table", "bootstrap_vcc2026", "evaluate_vcc2026",
           "paired_vcc2026", "rank_vcc2026", "read_real_bundle", "results_table", "run_metrics",
           "summarize_real", "write_vcc2026_report"]
