"""The worst difference between transpert and each suite's stored reference outputs, per metric.

The parity tests say *whether* every value is within its tolerance; this script says *how far*
the worst one is, per suite and metric, over all fixtures (for a release note or an issue). It
reads the same stored outputs as the tests (``tests/parity/<suite>/`` written by cell-eval 0.6.6 +
pdex 0.1.27 and cell-eval 0.8.2, ``tests/parity_vcc2026/expected`` written by cell-eval2 0.20.0)
and needs no reference tool.

Per metric: the number of values compared (both defined), whether the undefined (NaN) pattern is
the same, the worst absolute difference and the worst relative difference |a - b| / |ref| over
values whose reference is not 0 (exact zeros are counted in the absolute column).

    python tests/parity/worst_differences.py [--markdown]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
sys.path[:0] = [str(HERE), str(TESTS)]

from parity_fixtures import FIXTURES, counts_table, make_fixture  # noqa: E402


def _compare(suite: str, part: str, metric: str, ours, ref) -> dict:
    a = np.asarray(ref, dtype=float)
    b = np.asarray(ours, dtype=float)
    same_nan = bool(np.array_equal(np.isnan(a), np.isnan(b)))
    ok = ~np.isnan(a) & ~np.isnan(b)
    diff = np.abs(a[ok] - b[ok])
    nonzero = a[ok] != 0
    rel = diff[nonzero] / np.abs(a[ok][nonzero])
    return {"suite": suite, "part": part, "metric": metric, "n": int(ok.sum()),
            "nan_pattern_equal": same_nan,
            "worst_abs": float(diff.max()) if diff.size else 0.0,
            "worst_rel": float(rel.max()) if rel.size else 0.0}


def cell_eval_suites() -> list[dict]:
    """vcc2025 and cell-eval-0.8.2: per-perturbation results of the full profile and the score."""
    from transpert.evaluate import build_baseline, evaluate

    rows = []
    for suite in ("vcc2025", "cell-eval-0.8.2"):
        per_metric: dict[tuple[str, str], list] = {}
        for name in FIXTURES:
            real, pred, train = make_fixture(name)
            ref_dir = HERE / suite / name
            mine = evaluate(real, pred, profile="full", threads=1, suite=suite)
            ref = pd.read_csv(ref_dir / "results.csv")
            ours = mine.results.set_index("perturbation").loc[ref["perturbation"]]
            for c in ref.columns[1:]:
                got = ours[c].to_numpy(float).copy()
                got[~mine.defined.set_index(mine.results["perturbation"]).loc[
                    ref["perturbation"], c].to_numpy()] = np.nan
                per_metric.setdefault(("results", c), []).append((got, ref[c].to_numpy(float)))
            base = build_baseline(train, counts_table(real))
            scored = evaluate(real, pred, profile="vcc", baseline=base, threads=1, suite=suite)
            sref = pd.read_csv(ref_dir / "score.csv").set_index("metric")
            sgot = scored.score.set_index("metric").loc[sref.index]
            per_metric.setdefault(("score", "from_baseline"), []).append(
                (sgot["from_baseline"].to_numpy(float), sref["from_baseline"].to_numpy(float)))
        for (part, metric), pairs in per_metric.items():
            rows.append(_compare(suite, part, metric, np.concatenate([p[0] for p in pairs]),
                                 np.concatenate([p[1] for p in pairs])))
    return rows


def vcc2026_suite() -> list[dict]:
    """vcc2026: per-perturbation results of three predictions, the baseline, the anchor splits
    and the score against the stored real bundle."""
    import tempfile

    from transpert.evaluate.vcc2026 import evaluate_vcc2026, run_metrics, summarize_real
    from transpert.evaluate.vcc2026._anchor import replicate_anchor
    from transpert.evaluate.vcc2026._baseline import baseline_side
    from transpert.evaluate.vcc2026._run import metrics_from_sides, results_table

    fix = TESTS / "parity_vcc2026" / "fixtures"
    exp = TESTS / "parity_vcc2026" / "expected"
    col = "target_gene"
    real = summarize_real(os.fspath(fix / "real.h5ad"), pert_col=col)
    per_metric: dict[tuple[str, str], list] = {}

    def add(part, ours: pd.DataFrame, ref: pd.DataFrame, keys):
        m = ref.merge(ours, on=keys, how="inner", suffixes=("_ref", "_us"))
        if len(m) != len(ref):
            raise AssertionError(f"{part}: {len(ref) - len(m)} reference rows have no match")
        for metric, g in m.groupby("metric"):
            per_metric.setdefault((part, metric), []).append(
                (g["value_us"].to_numpy(float), g["value_ref"].to_numpy(float)))

    for name in ("mixed", "replicate", "constant"):
        ours = run_metrics(real, os.fspath(fix / f"{name}_pred.h5ad"), pert_col=col)
        add("results", ours, pd.read_csv(exp / name / "results.csv"), ["perturbation", "metric"])
    add("baseline", results_table(metrics_from_sides(real, baseline_side(real, seed=0))),
        pd.read_csv(exp / "baseline" / "baseline_results.csv"), ["perturbation", "metric"])
    splits, _ = replicate_anchor(real, base_seed=0, n_splits=5)
    add("anchor splits", splits, pd.read_csv(exp / "anchor" / "anchor_splits.csv"),
        ["split_index", "metric"])
    for name in ("mixed", "constant"):
        with tempfile.TemporaryDirectory() as tmp:
            out = evaluate_vcc2026(os.fspath(fix / f"{name}_pred.h5ad"),
                                   os.fspath(fix / "real.h5ad"), tmp, pert_col=col,
                                   real_bundle=os.fspath(exp / "bundle"))
        ref = pd.read_csv(exp / name / "score.csv").set_index("metric")
        got = out.score.set_index("metric").loc[ref.index]
        per_metric.setdefault(("score", "from_replicate"), []).append(
            (got["from_replicate"].to_numpy(float), ref["from_replicate"].to_numpy(float)))
    return [_compare("vcc2026", part, metric, np.concatenate([p[0] for p in pairs]),
                     np.concatenate([p[1] for p in pairs]))
            for (part, metric), pairs in per_metric.items()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = p.parse_args(argv)
    table = pd.DataFrame(cell_eval_suites() + vcc2026_suite())
    if args.markdown:
        cols = list(table.columns)
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        for r in table.itertuples(index=False):
            print("| " + " | ".join(f"{v:.1e}" if isinstance(v, float) else str(v)
                                    for v in r) + " |")
    else:
        with pd.option_context("display.max_rows", None, "display.width", 200):
            print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
