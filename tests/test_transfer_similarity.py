"""Similarity weights between reference lines (transpert.transfer.similarity)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from transpert._errors import TranspertInputError
from transpert.transfer import ReferenceLine, line_weights
from helpers_transfer import synthetic_lines


def _lines(refs, genes):
    return [ReferenceLine.from_summary(n, a, genes) for n, a in refs.items()]


def _target_arrays(target):
    return (np.asarray(target.layers["delta"]), pd.Index(target.obs_names),
            pd.Index(target.var_names), np.asarray(target.var["control_mean"]))


def test_exact_copy_of_target_gets_nearly_all_weight():
    refs, target, _ = synthetic_lines(seed=3, lines={"A": {"shared": 0.8}, "B": {"shared": 0.4}})
    train = target[:40].copy()
    refs = {"copy": target.copy(), **refs}  # the target itself, every perturbation
    d, perts, genes, ctrl = _target_arrays(train)
    w = line_weights(_lines(refs, genes), d, perts, genes, ctrl)
    assert w.loc["copy", "delta_corr"] == pytest.approx(1.0, abs=1e-12)
    assert w.loc["copy", "control_corr"] == pytest.approx(1.0, abs=1e-12)
    # reference deltas are stored as float32 (relative precision ~6e-8)
    assert w.loc["copy", "slope"] == pytest.approx(1.0, abs=1e-6)
    # score gap copy vs A is ~0.2, so at the default temperature 0.05 the copy gets e^4 times A's
    assert w.loc["copy", "weight"] > 0.95
    sharp = line_weights(_lines(refs, genes), d, perts, genes, ctrl, temperature=0.02)
    assert sharp.loc["copy", "weight"] > 0.999
    assert w["weight"].sum() == pytest.approx(1.0)
    # the more similar of the two others weighs more
    assert w.loc["A", "weight"] > w.loc["B", "weight"]


def test_scores_match_brute_force_pearson():
    refs, target, _ = synthetic_lines(seed=4, n_perturbations=20, n_genes=80)
    ref = refs["A"][:12, 5:].copy()  # fewer perturbations, fewer genes than the target
    train = target[6:18].copy()
    d, perts, genes, ctrl = _target_arrays(train)
    w = line_weights(_lines({"A": ref}, genes), d, perts, genes, ctrl,
                     delta_weight=2.0, control_weight=1.0)
    shared_p = [p for p in perts if p in ref.obs_names]
    shared_g = [g for g in genes if g in ref.var_names]
    x, y = [], []
    for p in shared_p:
        for g in shared_g:
            if g == p:  # the knocked-down gene is left out
                continue
            # the model stores reference deltas as float32
            x.append(float(np.float32(ref[p, g].layers["delta"].item())))
            y.append(train[p, g].layers["delta"].item())
    expected = np.corrcoef(x, y)[0, 1]
    ctrl_r = np.corrcoef(ref.var.loc[shared_g, "control_mean"],
                         train.var.loc[shared_g, "control_mean"])[0, 1]
    row = w.loc["A"]
    assert row["n_perturbations_shared"] == len(shared_p) == 6
    assert row["n_genes_shared"] == len(shared_g)
    assert row["delta_corr"] == pytest.approx(expected, rel=1e-12)
    assert row["control_corr"] == pytest.approx(ctrl_r, rel=1e-12)
    assert row["score"] == pytest.approx((2 * expected + ctrl_r) / 3, rel=1e-12)
    assert row["slope"] == pytest.approx(np.dot(x, y) / np.dot(x, x), rel=1e-10)


def test_softmax_temperature_and_uniform():
    refs, target, _ = synthetic_lines(seed=5, lines={"A": {"shared": 0.9}, "B": {"shared": 0.2}})
    d, perts, genes, ctrl = _target_arrays(target[:30])
    lines = _lines(refs, genes)
    sharp = line_weights(lines, d, perts, genes, ctrl, temperature=0.01)
    soft = line_weights(lines, d, perts, genes, ctrl, temperature=10.0)
    uni = line_weights(lines, d, perts, genes, ctrl, method="uniform")
    assert sharp.loc["A", "weight"] > soft.loc["A", "weight"] > 0.5
    assert np.allclose(uni["weight"], 0.5)
    z = sharp["score"].to_numpy() / 0.01
    assert np.allclose(sharp["weight"], np.exp(z - z.max()) / np.exp(z - z.max()).sum())


def test_line_without_shared_perturbations_gets_zero_agreement():
    refs, target, _ = synthetic_lines(seed=6)
    only_test = refs["A"][40:].copy()  # shares no training perturbation
    d, perts, genes, ctrl = _target_arrays(target[:40])
    w = line_weights(_lines({"A": only_test, "B": refs["B"]}, genes), d, perts, genes, ctrl)
    assert w.loc["A", "n_perturbations_shared"] == 0
    assert np.isnan(w.loc["A", "delta_corr"])
    assert w.loc["A", "score"] == pytest.approx(w.loc["A", "control_corr"] * 0.5 / 1.5)
    # no line has shared perturbations: control similarity alone
    w2 = line_weights(_lines({"A": only_test}, genes), d, perts, genes, ctrl)
    assert w2.loc["A", "score"] == pytest.approx(w2.loc["A", "control_corr"])


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "best"}, "weighting"),
    ({"temperature": 0.0}, "temperature"),
    ({"delta_weight": 0.0, "control_weight": 0.0}, "delta_weight"),
])
def test_bad_parameters(kwargs, message):
    refs, target, _ = synthetic_lines(seed=7, n_perturbations=10, n_genes=40)
    d, perts, genes, ctrl = _target_arrays(target)
    with pytest.raises(TranspertInputError, match=message):
        line_weights(_lines(refs, genes), d, perts, genes, ctrl, **kwargs)
