"""A reference summary held for fitting (``fitting_view``: obs, var and the layers methods fit on)
predicts exactly as the whole summary, with every registered method."""

from __future__ import annotations

import numpy as np
import pytest

from transpert.data.schema import CONTROL_LABEL, PERT_COL
from transpert.methods import METHODS, fit_predict
from transpert.summarize import summarize
from transpert.summarize._contract import FIT_LAYERS, fitting_view


@pytest.fixture(scope="module")
def summaries():
    from transpert.data.simulate import simulate_atlas

    atlas = simulate_atlas(seed=5, n_reference_lines=2, similarity=(0.8, 0.3), n_genes=120,
                           n_perturbations=12, cells_per_perturbation=25, n_control_cells=120)
    refs = {name: summarize(atlas.lines[name], show_progress=False) for name in atlas.reference_lines}
    target = atlas.lines[atlas.target_line]
    labels = target.obs[PERT_COL].astype(str).to_numpy()
    perts = sorted(set(labels) - {CONTROL_LABEL})
    train = summarize(target[~np.isin(labels, perts[:3])].copy(), show_progress=False)
    return refs, train, perts[:3]


def test_view_keeps_the_fit_layers_and_shares_them(summaries):
    refs, _, _ = summaries
    full = next(iter(refs.values()))
    view = fitting_view(full)
    assert set(view.layers) == set(FIT_LAYERS) and set(full.layers) > set(FIT_LAYERS)
    assert view.obs.equals(full.obs) and view.var.equals(full.var)
    assert all(np.shares_memory(view.layers[k], full.layers[k]) for k in FIT_LAYERS)


@pytest.mark.parametrize("method", [m for m in METHODS])
def test_every_method_predicts_the_same_from_the_view(summaries, method):
    refs, train, perts = summaries
    _, want = fit_predict(method, refs, train, perts)
    _, got = fit_predict(method, {k: fitting_view(v) for k, v in refs.items()}, train, perts)
    assert set(got.layers) == set(want.layers)
    for k in want.layers:
        np.testing.assert_array_equal(np.asarray(got.layers[k]), np.asarray(want.layers[k]), err_msg=k)
