"""transpert.evaluate: the Virtual Cell Challenge metrics exactly as the reference scorers compute
them, one suite per scorer (:data:`SUITES`): ``vcc2025`` (default; the 2025 leaderboard's
cell-eval 0.6.6 + pdex 0.1.27) and ``cell-eval-0.8.2``.

Everything here works on the log1p scale (median-library-size normalised counts, natural
log1p); raw-count inputs are normalised per file on the way in, as cell-eval does.
"""

from importlib import import_module

# Names are imported on first use (PEP 562), so that a caller of one suite, e.g.
# ``transpert.evaluate.vcc2026``, does not pay for the others' imports (scipy.stats among them).
_HOME = {
    "build_baseline": "_baseline",
    "bootstrap_ci": "_bootstrap",
    "generalist_ranking": "_bootstrap",
    "paired_comparison": "_bootstrap",
    "GENERALIST": "_metrics",
    "PROFILES": "_metrics",
    "discrimination_scores": "transpert.metrics",
    "distance_matrix": "transpert.metrics",
    "norm_matched_pds": "transpert.metrics",
    "pds_scale_curve": "transpert.metrics",
    "REGISTRY": "_registry",
    "BulkPair": "_registry",
    "DEPair": "_registry",
    "Metric": "_registry",
    "MetricValues": "_registry",
    "EvaluationResult": "_runner",
    "evaluate": "_runner",
    "evaluate_prepared": "_runner",
    "prepare": "_runner",
    "prep": "_prep",
    "pds_diagnostics": "_report",
    "write_report": "_report",
    "aggregate": "_score",
    "score": "_score",
    "DEFAULT_SUITE": "_suites",
    "SUITES": "_suites",
    "Suite": "_suites",
    "get_suite": "_suites",
}


def __getattr__(name: str):
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = import_module(home if "." in home else f"{__name__}.{home}")
    value = getattr(module, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_HOME))


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
