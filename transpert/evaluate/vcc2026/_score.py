"""The vcc2026 score: each scored member placed on s = (u - b) / (r - b), the context's score the
unclipped mean of the six (cell-eval2 ``score --real-bundle``'s ``from_replicate`` column).

u: the submission's aggregate (agg_results.csv's mean row), b: the mean-response baseline's,
r: the replicate anchor. Per-member policies as cell-eval2's catalog sets them with the anchor at
r: pds_cosine, fidelity yield, reach and Jaccard are linear and unclamped (a missing value
scores as the metric's floor 0 would); expr_mse_unbiased_capped_norm (lower is better) is
1 - (u - r) / (b - r) with a Box-Cox tail max(-6, -(x^2 - 1) / 2) below 0, clamped to [0, 1];
de_wilcoxon_lfc_nmae (lower is better) is linear, floored at -6.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError
from transpert.evaluate.vcc2026._config import LOWER_IS_BETTER, SCORED

PENALTY_EXPONENT = 2.0
PENALTY_CAP = 6.0
CLAMPS = {  # (low, high); None: unclamped there
    "expr_mse_unbiased_capped_norm": (0.0, 1.0),
    "de_wilcoxon_lfc_nmae": (-6.0, None),
}
BOXCOX = ("expr_mse_unbiased_capped_norm",)


def _raw(metric: str, u: float, b: float, r: float) -> float:
    if metric in LOWER_IS_BETTER:
        x = (u - r) / (b - r)
        s = 1.0 - x
        if s < 0.0 and metric in BOXCOX:
            try:
                s = max(-PENALTY_CAP, -(x ** PENALTY_EXPONENT - 1.0) / PENALTY_EXPONENT)
            except OverflowError:
                s = -PENALTY_CAP
        return s
    return (u - b) / (r - b)


def _clip(metric: str, s: float) -> float:
    low, high = CLAMPS.get(metric, (None, None))
    low = -math.inf if low is None else low
    high = math.inf if high is None else high
    if not math.isfinite(s):
        return low
    return low if s <= low else (high if s >= high else s)


def score_member(metric: str, u: float, b: float, r: float) -> float:
    """One member's scaled score (the checks cell-eval2 makes on the two ends included)."""
    if not (math.isfinite(b) and math.isfinite(r)):
        raise TranspertInputError(f"{metric}: the baseline ({b}) or the replicate ({r}) is not "
                                  "finite, so the score has no scale")
    headroom = (b - r) if metric in LOWER_IS_BETTER else (r - b)
    if not headroom > 0:
        raise TranspertInputError(f"{metric}: the replicate ({r:.6g}) leaves no headroom over "
                                  f"the baseline ({b:.6g}); the score is undefined")
    if u is None or not math.isfinite(u):
        if metric in CLAMPS:
            return _clip(metric, -math.inf)
        return _clip(metric, _raw(metric, 0.0, b, r))  # the metric's floor, 0
    return _clip(metric, _raw(metric, float(u), b, r))


#: cell-eval2 score's row order (the average is taken in this order)
ORDER = ("de_wilcoxon_lfc_nmae", "expr_mse_unbiased_capped_norm",
         "de_wilcoxon_direction_fidelity_yield_raw", "de_wilcoxon_direction_reach_raw",
         "de_wilcoxon_sig_jaccard", "pds_cosine")


def score_table(user: dict, baseline: dict, replicate: dict) -> pd.DataFrame:
    """Per scored member: user, baseline, replicate, from_baseline (the catalog's fixed anchor:
    1 for higher-is-better members, 0 for errors; reported, not averaged, as cell-eval2 does for
    a competition bundle) and from_replicate; last row avg_score, the mean of from_replicate."""
    assert set(ORDER) == set(SCORED)
    rows = []
    for m in ORDER:
        u, b, r = user.get(m), float(baseline[m]), float(replicate[m])
        fixed = 0.0 if m in LOWER_IS_BETTER else 1.0
        rows.append((m, u, b, r, score_member(m, u, b, fixed), score_member(m, u, b, r)))
    avg = float(np.mean([row[-1] for row in rows]))
    rows.append(("avg_score", np.nan, np.nan, np.nan, np.nan, avg))
    return pd.DataFrame(rows, columns=["metric", "user", "baseline", "replicate",
                                       "from_baseline", "from_replicate"])
