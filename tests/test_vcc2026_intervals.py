"""vcc2026 bootstrap intervals, paired comparisons and flags against brute force.

The brute force redraws the same resamples (``default_rng(seed).integers(0, n, (B, n))``),
builds each resampled long table by hand (duplicated perturbations renamed so each copy counts),
aggregates it with ``agg_table`` (the table checked against cell-eval2's agg_results.csv) and
scores it with ``score_table`` (checked against cell-eval2's score.csv); the interval is numpy's
percentile of those. Equal to 1e-12 (the same float operations in another order)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from transpert._errors import TranspertInputError
from transpert.evaluate.vcc2026 import (
    agg_table,
    bootstrap_vcc2026,
    evaluate_vcc2026,
    paired_vcc2026,
    summarize_real,
)
from transpert.evaluate.vcc2026._anchor import replicate_anchor
from transpert.evaluate.vcc2026._config import SCORED
from transpert.evaluate.vcc2026._score import ORDER, score_member, score_table
from test_vcc2026_parity import COL, FIX

B, SEED = 25, 7


@pytest.fixture(scope="module")
def mixed():
    return evaluate_vcc2026(os.path.join(FIX, "mixed_pred.h5ad"), os.path.join(FIX, "real.h5ad"),
                            pert_col=COL, anchor=True, per_perturbation_anchor=True)


@pytest.fixture(scope="module")
def replicate():
    return evaluate_vcc2026(os.path.join(FIX, "replicate_pred.h5ad"),
                            os.path.join(FIX, "real.h5ad"), pert_col=COL)


def _resample(table: pd.DataFrame, labels: list, rows: np.ndarray) -> pd.DataFrame:
    parts = []
    for k, i in enumerate(rows):
        part = table[table.perturbation == labels[i]].copy()
        part["perturbation"] = f"{labels[i]}#{k}"
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _means(table: pd.DataFrame) -> dict:
    return agg_table(table).set_index("statistic").loc["mean"].astype(float).to_dict()


def _brute(result, idx, *, resampled: bool):
    labels = sorted(result.results.perturbation.unique())
    u_rows, s_rows = [], []
    for rows in idx:
        u = _means(_resample(result.results, labels, rows))
        if resampled:
            b = _means(_resample(result.baseline_results, labels, rows))
            per_split = [_means(_resample(t.drop(columns="split_index"), labels, rows))
                         for _, t in result.anchor_values.groupby("split_index")]
            r = {m: float(np.mean([s[m] for s in per_split])) for m in SCORED}
        else:
            b, r = result.reference
        u_rows.append([u[m] for m in SCORED])
        try:  # every member defined: score_table's row (checked against cell-eval2's score.csv)
            s_rows.append(score_table(u, b, r).set_index("metric")["from_replicate"].to_numpy())
        except TranspertInputError:  # some member has no headroom on this resample
            row = []
            for m in ORDER:
                try:
                    row.append(score_member(m, u[m], b[m], r[m]))
                except TranspertInputError:
                    row.append(np.nan)
            s_rows.append(np.array(row + [np.nan]))
    return np.array(u_rows), np.array(s_rows)


def _quantiles(x):
    x = x[~np.isnan(x)]
    return np.quantile(x, 0.025), np.quantile(x, 0.975)


@pytest.mark.parametrize("resampled", [True, False])
def test_intervals_equal_brute_force(mixed, resampled):
    if resampled:
        ci = bootstrap_vcc2026(mixed.results, baseline_results=mixed.baseline_results,
                               anchor_values=mixed.anchor_values, n_boot=B, seed=SEED)
    else:
        ci = bootstrap_vcc2026(mixed.results, fixed=mixed.reference, n_boot=B, seed=SEED)
    ci = ci.set_index("metric")
    assert set(ci.suite) == {"vcc2026"}
    assert set(ci.reference_points) == {"resampled" if resampled else "fixed"}
    n = mixed.results.perturbation.nunique()
    idx = np.random.default_rng(SEED).integers(0, n, size=(B, n))
    u, s = _brute(mixed, idx, resampled=resampled)
    agg = _means(mixed.results)
    for k, m in enumerate(SCORED):
        assert ci.loc[m, "mean"] == pytest.approx(agg[m], rel=1e-12)
        np.testing.assert_allclose([ci.loc[m, "ci_low"], ci.loc[m, "ci_high"]],
                                   _quantiles(u[:, k]), rtol=1e-12)
    order = list(mixed.score.metric)  # cell-eval2's row order, avg_score last
    for k, m in enumerate(order):
        row = ci.loc[f"score:{m}"]
        assert row["mean"] == pytest.approx(mixed.score.from_replicate.iloc[k], rel=1e-12)
        assert row["n_undefined"] == int(np.isnan(s[:, k]).sum())
        np.testing.assert_allclose([row["ci_low"], row["ci_high"]], _quantiles(s[:, k]),
                                   rtol=1e-12)


def test_paired_equals_brute_force(mixed, replicate):
    cmp = paired_vcc2026(replicate.results, mixed.results,
                         baseline_results=mixed.baseline_results,
                         anchor_values=mixed.anchor_values, n_boot=B, seed=SEED,
                         names=("replicate", "mixed")).set_index("metric")
    n = mixed.results.perturbation.nunique()
    idx = np.random.default_rng(SEED).integers(0, n, size=(B, n))
    ua, sa = _brute(replicate_with(mixed, replicate), idx, resampled=True)
    ub, sb = _brute(mixed, idx, resampled=True)
    d = sa[:, -1] - sb[:, -1]
    np.testing.assert_allclose([cmp.loc["score:avg_score", "ci_low"],
                                cmp.loc["score:avg_score", "ci_high"]], _quantiles(d), rtol=1e-12)
    k = SCORED.index("expr_mse_unbiased_capped_norm")
    np.testing.assert_allclose([cmp.loc[SCORED[k], "ci_low"], cmp.loc[SCORED[k], "ci_high"]],
                               _quantiles(ua[:, k] - ub[:, k]), rtol=1e-12)
    # the replicate (drawn from the real model) has the lower expression error: "better" says so
    hi = cmp.loc[SCORED[k], "ci_high"]
    assert (cmp.loc[SCORED[k], "better"] == "replicate") == (hi < 0)


def replicate_with(reference, other):
    """``other``'s results with ``reference``'s baseline and anchor (same real data)."""
    out = type(reference)(other.results, other.agg)
    out.baseline_results, out.anchor_values = reference.baseline_results, reference.anchor_values
    out.reference = reference.reference
    return out


def test_anchor_values_mean_to_replicate_anchor():
    real = summarize_real(os.path.join(FIX, "real.h5ad"), pert_col=COL)
    splits, anchor = replicate_anchor(real, base_seed=3, n_splits=2)
    splits2, anchor2, values = replicate_anchor(real, base_seed=3, n_splits=2, with_values=True)
    pd.testing.assert_frame_equal(splits, splits2)
    pd.testing.assert_frame_equal(anchor, anchor2)
    # every split's per-perturbation values aggregate to that split's value
    for i, table in values.groupby("split_index"):
        mine = _means(table.drop(columns="split_index"))
        ref = splits[splits.split_index == i].set_index("metric")["value"]
        for m in SCORED:
            assert mine[m] == pytest.approx(ref[m], rel=1e-12)


def test_flags_by_hand(mixed):
    f = mixed.flags.set_index("perturbation")
    res = mixed.results.set_index(["metric", "perturbation"])["value"]
    assert set(f.suite) == {"vcc2026"}
    assert not f.loc["ABSENT1", "target_in_genes"] and f.loc["GENE001", "target_in_genes"]
    for p, row in f.iterrows():
        reach = res.get(("de_wilcoxon_direction_reach_raw", p), np.nan)
        assert row.reach_defined == (not np.isnan(reach)) == (row.n_de_real > 0)
        assert row.lfc_nmae_scored == (("de_wilcoxon_lfc_nmae", p) in res.index)
        if row.lfc_nmae_scored:
            assert row.n_de_real >= 10


def test_cli_evaluate_writes_intervals_flags_and_report(tmp_path, capsys):
    from transpert.cli import main
    from test_vcc2026_parity import EXP

    out = tmp_path / "ev"
    assert main(["evaluate", "--suite", "vcc2026", "--real", os.path.join(FIX, "real.h5ad"),
                 "--pred", os.path.join(FIX, "mixed_pred.h5ad"), "--pert-col", COL,
                 "--real-bundle", os.path.join(EXP, "bundle"), "--n-boot", "30",
                 "-o", str(out)]) == 0
    ci = pd.read_csv(out / "ci.csv")
    assert set(ci.suite) == {"vcc2026"} and set(ci.reference_points) == {"fixed"}
    stored = pd.read_csv(os.path.join(EXP, "mixed", "score.csv")).set_index("metric")
    avg = ci.set_index("metric").loc["score:avg_score"]
    assert avg["mean"] == pytest.approx(stored.loc["avg_score", "from_replicate"], rel=1e-9)
    assert avg["ci_low"] <= avg["mean"] <= avg["ci_high"]
    assert set(pd.read_csv(out / "flags.csv").suite) == {"vcc2026"}
    report = (out / "report.md").read_text()
    assert "Suite `vcc2026`" in report and "pds_cosine" in report and "held fixed" in report
    assert (out / "report.html").exists()
    out2 = tmp_path / "ev2"
    assert main(["evaluate", "--suite", "vcc2026", "--real", os.path.join(FIX, "real.h5ad"),
                 "--pred", os.path.join(FIX, "mixed_pred.h5ad"), "--pert-col", COL,
                 "--n-boot", "0", "--no-report", "-o", str(out2)]) == 0
    assert not (out2 / "ci.csv").exists() and not (out2 / "report.md").exists()
