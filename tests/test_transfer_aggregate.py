"""Weighted aggregation of reference effects (transpert.transfer.aggregate), against a brute-force loop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from transpert.transfer import ReferenceLine, aggregate
from helpers_transfer import synthetic_lines
from transpert.transfer.reference import LOG2FC_CAP, NEGLOG10P_CAP


@pytest.fixture
def ragged():
    """Three lines with different perturbation and gene sets; target genes include unmeasured ones."""
    refs, target, _ = synthetic_lines(seed=11, n_perturbations=16, n_genes=50,
                                      lines={"A": {"shared": 0.9}, "B": {"shared": 0.6},
                                             "C": {"shared": 0.3}})
    refs["A"] = refs["A"][:10, :40].copy()          # P0..P9, genes 0..39
    refs["B"] = refs["B"][5:14, 10:].copy()         # P5..P13, genes 10..49
    refs["C"] = refs["C"][[1, 3, 12], ::2].copy()   # three perturbations, every other gene
    # one gene no line measured: target gene list extended
    genes = pd.Index(list(target.var_names) + ["UNMEASURED"])
    lines = [ReferenceLine.from_summary(n, a, genes) for n, a in refs.items()]
    return refs, lines, genes


def _brute(refs, weights, perts, genes, stat):
    out = np.full((len(perts), len(genes)), np.nan)
    for i, p in enumerate(perts):
        for j, g in enumerate(genes):
            num = den = 0.0
            for name, a in refs.items():
                if p in a.obs_names and g in a.var_names:
                    d = np.float32(a[p, g].layers["delta"].item())
                    if stat == "delta":
                        v = d
                    elif stat == "specific":
                        v = d - np.nanmean(a[:, g].layers["delta"].astype(np.float32))
                    elif stat == "log2fc":
                        v = np.float32(np.clip(a[p, g].layers["log2fc"].item(), -LOG2FC_CAP, LOG2FC_CAP))
                    elif stat == "neglog10p":
                        v = np.float32(min(-np.log10(a[p, g].layers["pvalue"].item()), NEGLOG10P_CAP))
                    elif stat == "frac_sig":
                        v = float(a[p, g].layers["fdr"].item() < 0.05)
                    elif stat == "sign":
                        v = np.sign(d)
                    num += weights[name] * v
                    den += weights[name]
            if den > 0:
                out[i, j] = num / den
    return out


@pytest.mark.parametrize("stat", ["delta", "specific", "log2fc", "neglog10p", "frac_sig", "sign"])
def test_weighted_mean_over_available_lines(ragged, stat):
    refs, lines, genes = ragged
    weights = {"A": 0.5, "B": 0.3, "C": 0.2}
    perts = ["P0", "P3", "P7", "P12", "P13", "P15", "NOT_IN_ANY"]
    agg = aggregate(lines, weights, perts, len(genes), shrinkage="none")
    expected = _brute(refs, weights, perts, genes, stat)
    got = getattr(agg, stat)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    # float32 storage of reference values, float64 accumulation
    np.testing.assert_allclose(got[~np.isnan(got)], expected[~np.isnan(expected)], rtol=1e-6, atol=1e-6)


def test_coverage_bookkeeping(ragged):
    refs, lines, genes = ragged
    perts = ["P1", "P7", "P12", "P15", "NOT_IN_ANY"]
    agg = aggregate(lines, {"A": 1.0, "B": 1.0, "C": 2.0}, perts, len(genes))
    assert agg.n_lines.tolist() == [2, 2, 2, 0, 0]
    assert agg.lines == [["A", "C"], ["A", "B"], ["B", "C"], [], []]
    assert (agg.weight_sum[3:] == 0).all() and np.isnan(agg.delta[3:]).all()
    # the gene nobody measured
    assert (agg.weight_sum[:, -1] == 0).all()
    # P1: A (weight 1, genes 0..39) and C (weight 2, even genes) perturbed it
    assert agg.weight_sum[0, 14] == 3.0  # even column inside A's genes: both
    assert agg.weight_sum[0, 15] == 1.0  # odd column: A only
    assert agg.weight_sum[0, 42] == 2.0  # even column outside A's genes: C only


def test_zero_weight_line_counts_but_does_not_contribute(ragged):
    refs, lines, genes = ragged
    agg = aggregate(lines, {"A": 1.0, "B": 0.0, "C": 0.0}, ["P12"], len(genes))
    assert agg.n_lines.tolist() == [2]
    assert np.isnan(agg.delta).all()  # only B and C perturbed P12


@pytest.mark.parametrize("shrinkage", ["js", "significant"])
def test_shrinkage_of_specific_effects(ragged, shrinkage):
    from scipy import stats

    refs, lines, genes = ragged
    a = refs["A"]
    agg = aggregate([lines[0]], {"A": 1.0}, ["P4"], len(genes), shrinkage=shrinkage)
    raw = aggregate([lines[0]], {"A": 1.0}, ["P4"], len(genes), shrinkage="none")
    p = np.asarray(a["P4"].layers["pvalue"], dtype=np.float64)[0]
    if shrinkage == "js":
        z = stats.norm.isf(np.maximum(p, 1e-50) / 2)
        factor = np.clip(1 - 1 / z**2, 0, 1)
    else:
        factor = (np.asarray(a["P4"].layers["fdr"])[0] < 0.05).astype(float)
    got = agg.specific[0, :40]
    # p-values pass through float32 -log10 p: relative precision ~1e-6 on the factor
    np.testing.assert_allclose(got, raw.specific[0, :40] * factor, rtol=1e-5, atol=1e-7)
    assert (factor == 0).any() and (factor > 0.9).any()  # both regimes are exercised
    np.testing.assert_array_equal(agg.delta, raw.delta)  # only the specific part is shrunk
    with pytest.raises(Exception, match="shrinkage"):
        aggregate([lines[0]], {"A": 1.0}, ["P4"], len(genes), shrinkage="lasso")
