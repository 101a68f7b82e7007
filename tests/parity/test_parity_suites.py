"""transpert's suites against the stored outputs of their reference scorers (no venv needed).

The references were written by ``tests/parity/regenerate.py`` (cell-eval 0.6.6 + pdex 0.1.27 for
``vcc2025``, cell-eval 0.8.2 for ``cell-eval-0.8.2``; versions in each ``VERSIONS.txt``) on the
fixtures of ``parity_fixtures.py``, regenerated here from their seeds. Compared: every metric of
the full profile per perturbation, the aggregates, the DE calls and the score.

Tolerances. Counts and the DE calls (FDR < 0.05): exactly. Overlaps, precisions and PDS (ratios
of integers): 1e-14 relative, far below the 1/N step of an overlap (polars prints about 15
significant digits in its CSV, and divides differently).
pr_auc, roc_auc, de_direction_match, de_sig_genes_recall, de_spearman_sig: 1e-9 relative.
Where the arithmetic does not allow 1e-9:
- mae, mse, mae_delta, mse_delta, pearson_delta: cell-eval's pseudo-bulks are polars means
  summed in float32; transpert sums in float64 and rounds to float32, so the means differ in
  the last float32 bits: 1e-6 relative (observed <= 2e-7).
- de_spearman_lfc_sig: polars computes the Spearman correlation of the float32 fold-change
  columns with float32 arithmetic (the same 2e-8 difference appears when transpert reads
  cell-eval's own DE tables): 1e-7 absolute.
- the score: a ratio of the above means: 1e-6 relative.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from parity_fixtures import FIXTURES, counts_table, make_fixture
from transpert.evaluate import build_baseline, evaluate

HERE = Path(__file__).resolve().parent
SUITES = ("vcc2025", "cell-eval-0.8.2")
EXACT_PREFIX = ("overlap", "precision", "de_nsig_counts", "discrimination_score")
BULK = ("mae", "mse", "mae_delta", "mse_delta", "pearson_delta")


def tolerance(metric: str) -> dict:
    """assert_allclose arguments for ``metric`` (see the module docstring)."""
    if metric.startswith(EXACT_PREFIX):
        # ratios of integer counts: equal counts, at most the last bit of the division apart
        return dict(rtol=1e-14, atol=0)
    if metric in BULK:
        return dict(rtol=1e-6, atol=1e-12)
    if metric == "de_spearman_lfc_sig":
        return dict(rtol=0, atol=1e-7)
    return dict(rtol=1e-9, atol=1e-15)


@pytest.fixture(scope="module", params=list(FIXTURES))
def fixture(request):
    return request.param, make_fixture(request.param)


@pytest.mark.parametrize("suite", SUITES)
def test_results_and_aggregates(fixture, suite):
    name, (real, pred, _) = fixture
    ref_dir = HERE / suite / name
    mine = evaluate(real, pred, profile="full", threads=1, suite=suite)
    assert mine.suite == suite
    ref = pd.read_csv(ref_dir / "results.csv")
    assert list(ref.columns) == list(mine.results.columns)
    assert list(ref["perturbation"]) == list(mine.results["perturbation"])
    for c in ref.columns[1:]:
        null = ref[c].isna().to_numpy() & ~np.isin(
            pd.read_csv(ref_dir / "results.csv", keep_default_na=False)[c].to_numpy(), ["NaN"])
        np.testing.assert_array_equal(~mine.defined[c].to_numpy(), null, err_msg=c)
        np.testing.assert_allclose(mine.results[c].to_numpy(float)[~null],
                                   ref[c].to_numpy(float)[~null], err_msg=c, **tolerance(c))
    agg = pd.read_csv(ref_dir / "agg_results.csv")
    assert list(agg["statistic"]) == list(mine.agg_results["statistic"])
    for c in agg.columns[1:]:
        np.testing.assert_allclose(mine.agg_results[c].to_numpy(float), agg[c].to_numpy(float),
                                   err_msg=c, **tolerance(c))
    # the awkward cases are really there
    by_pert = mine.results.set_index("perturbation")
    assert by_pert.loc["P02", "de_nsig_counts_pred"] == by_pert.loc["P03", "de_nsig_counts_pred"]
    assert "NOT_A_GENE" in by_pert.index


@pytest.mark.parametrize("suite", SUITES)
def test_de_calls_and_fold_changes(fixture, suite):
    """The DE tables themselves: the same significant calls, fold changes to float32 precision."""
    name, (real, pred, _) = fixture
    mine = evaluate(real, pred, profile="vcc", threads=1, suite=suite)
    genes = list(mine.de.genes)
    for which, lfc, fdr in (("real", mine.de.real_lfc, mine.de.real_fdr),
                            ("pred", mine.de.pred_lfc, mine.de.pred_fdr)):
        table = pd.read_csv(HERE / suite / name / f"{which}_de.csv.gz")
        r = pd.Index(mine.de.labels).get_indexer(table["target"].astype(str))
        c = pd.Index(genes).get_indexer(table["feature"].astype(str))
        assert (r >= 0).all() and (c >= 0).all() and len(table) == lfc.size
        ref_sig = table["fdr"].to_numpy(np.float64).astype(np.float32) < np.float32(0.05)
        np.testing.assert_array_equal(fdr[r, c] < np.float32(0.05), ref_sig, err_msg=which)
        if "log2_fold_change" in table:
            ref_lfc = table["log2_fold_change"].to_numpy(np.float64)
        else:
            ref_lfc = np.log2(table["fold_change"].to_numpy(np.float64))
        got = lfc[r, c].astype(np.float64)
        inf = np.isinf(ref_lfc)
        np.testing.assert_array_equal(got[inf], ref_lfc[inf], err_msg=which)
        # pdex 0.1.27 divides float32 means (float32 sums), pdex 0.3.0 float64 ones; transpert
        # rounds its float64 log2FC to float32: a few float32 ulps of the means apart at most.
        np.testing.assert_allclose(got[~inf], ref_lfc[~inf], rtol=0, atol=5e-6, err_msg=which)
        np.testing.assert_allclose(fdr[r, c], table["fdr"].to_numpy(np.float64), rtol=2e-5,
                                   atol=1e-30, err_msg=which)


@pytest.mark.parametrize("suite", SUITES)
def test_score(fixture, suite, tmp_path):
    name, (real, pred, train) = fixture
    base = build_baseline(train, counts_table(real))
    mine = evaluate(real, pred, profile="vcc", baseline=base, threads=1, suite=suite)
    ref = pd.read_csv(HERE / suite / name / "score.csv")
    assert list(ref["metric"]) == list(mine.score["metric"])
    np.testing.assert_allclose(mine.score["from_baseline"].to_numpy(float),
                               ref["from_baseline"].to_numpy(float), rtol=1e-6, atol=1e-12)
