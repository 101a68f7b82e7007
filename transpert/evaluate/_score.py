"""Aggregation (polars ``describe`` as cell-eval writes ``agg_results.csv``) and the
baseline-normalised score (``cell_eval._score.score_agg_metrics``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from transpert.evaluate._registry import best_value

STATISTICS = ("count", "null_count", "mean", "std", "min", "25%", "50%", "75%", "max")


def column_mean(values: np.ndarray, defined: np.ndarray) -> float:
    """polars mean: nulls skipped, a NaN makes it NaN, no value at all gives NaN (null)."""
    v = np.asarray(values, dtype=np.float64)[np.asarray(defined, dtype=bool)]
    return float(v.mean()) if v.size else float("nan")


def describe_column(values: np.ndarray, defined: np.ndarray) -> list[float]:
    """The nine rows of polars ``DataFrame.describe()`` for one numeric column (null -> NaN)."""
    v = np.asarray(values, dtype=np.float64)[np.asarray(defined, dtype=bool)]
    n = v.size
    nan = float("nan")
    if n == 0:
        return [0.0, float(len(values)), nan, nan, nan, nan, nan, nan, nan]
    mean = float(v.mean())
    std = float(v.std(ddof=1)) if n > 1 else nan
    finite = v[~np.isnan(v)]
    vmin = float(finite.min()) if finite.size else nan
    vmax = float(finite.max()) if finite.size else nan
    ordered = np.concatenate([np.sort(finite), v[np.isnan(v)]])  # NaN sorts last in polars
    # polars quantile(interpolation="nearest"): index floor(q * (n - 1) + 0.5)
    quantiles = [float(ordered[int(np.floor(q * (n - 1) + 0.5))]) for q in (0.25, 0.5, 0.75)]
    return [float(n), float(len(values) - n), mean, std, vmin, *quantiles, vmax]


def aggregate(results: pd.DataFrame, defined: pd.DataFrame) -> pd.DataFrame:
    """``agg_results``: a ``statistic`` column then one column per metric (cell-eval's layout)."""
    columns = [c for c in results.columns if c != "perturbation"]
    out = {"statistic": list(STATISTICS)}
    for c in columns:
        out[c] = describe_column(results[c].to_numpy(dtype=np.float64), defined[c].to_numpy())
    return pd.DataFrame(out)


def score(user_means: dict[str, float], base_means: dict[str, float]) -> pd.DataFrame:
    """Baseline-normalised score, exactly ``score_agg_metrics``.

    Best-0 metrics: 1 - u/b; best-1 metrics: (u - b)/(1 - b); NaN -> 0; clipped below at 0 (no
    upper clip). Best-0 metrics first, then best-1, in column order; last row ``avg_score``.
    Columns without a best value (counts) are skipped. Both inputs: metric -> mean.
    """
    if list(user_means) != list(base_means):
        raise ValueError(
            f"metric columns differ between prediction and baseline: {list(user_means)} != "
            f"{list(base_means)}"
        )
    zero = [m for m in user_means if best_value(m) == 0.0]
    one = [m for m in user_means if best_value(m) == 1.0]
    u0 = np.array([user_means[m] for m in zero], dtype=np.float64)
    b0 = np.array([base_means[m] for m in zero], dtype=np.float64)
    u1 = np.array([user_means[m] for m in one], dtype=np.float64)
    b1 = np.array([base_means[m] for m in one], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.concatenate([1.0 - u0 / b0, (u1 - b1) / (1 - b1)])
    s[np.isnan(s)] = 0.0
    s = np.clip(s, 0, None)
    return pd.DataFrame({
        "metric": zero + one + ["avg_score"],
        "from_baseline": np.concatenate([s, [s.mean()]]),
    })
