"""transpert.evaluate: the Virtual Cell Challenge metrics exactly as the reference scorers compute
them, one suite per scorer (:data:`SUITES`): ``vcc2025`` (default; the 2025 leaderboard's
cell-eval 0.6.6 + pdex 0.1.27) and ``cell-eval-0.8.2``.

Everything here works on the log1p scale (median-library-size normalised counts, natural
log1p); raw-count inputs are normalised per file on the way in, as cell-eval does.
"""

from transpert.evaluate._baseline import build_baseline
from transpert.evaluate._bootstrap import bootstrap_ci, generalist_ranking, paired_comparison
from transpert.evaluate._metrics import GENERALIST, PROFILES
from transpert.metrics import (
    discrimination_scores,
    distance_matrix,
    norm_matched_pds,
    pds_scale_curve,
)
from transpert.evaluate._registry import REGISTRY, BulkPair, DEPair, Metric, MetricValues
from transpert.evaluate._runner import EvaluationResult, evaluate, evaluate_prepared, prepare
from transpert.evaluate._prep import prep
from transpert.evaluate._report import pds_diagnostics, write_report
from transpert.evaluate._score import aggregate, score
from transpert.evaluate._suites import DEFAULT_SUITE, SUITES, Suite, get_suite

__all__ = [
    "DEFAULT_SUITE",
    "SUITES",
    "Suite",
    "get_suite",
    "GENERALIST",
    "PROFILES",
    "REGISTRY",
    "BulkPair",
    "DEPair",
    "EvaluationResult",
    "Metric",
    "MetricValues",
    "aggregate",
    "bootstrap_ci",
    "build_baseline",
    "generalist_ranking",
    "paired_comparison",
    "pds_diagnostics",
    "prep",
    "write_report",
    "discrimination_scores",
    "distance_matrix",
    "evaluate",
    "evaluate_prepared",
    "norm_matched_pds",
    "pds_scale_curve",
    "prepare",
    "score",
]
