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


@pytest.fixture(scope="module")
def written(summaries, tmp_path_factory):
    """The reference summaries written to h5ad, as the run writes them."""
    refs, _, _ = summaries
    folder = tmp_path_factory.mktemp("summaries")
    for name, ref in refs.items():
        ref.write_h5ad(folder / f"{name}.h5ad")
    return {name: folder / f"{name}.h5ad" for name in refs}


def test_layers_on_disk_reads_the_file_lazily_and_closes_it(summaries, written):
    import h5py

    from transpert._h5files import layers_on_disk

    refs, _, _ = summaries
    name, path = next(iter(written.items()))
    with layers_on_disk(path, FIT_LAYERS) as lazy:
        assert set(lazy.layers) == set(FIT_LAYERS)
        assert all(isinstance(lazy.layers[k], h5py.Dataset) for k in FIT_LAYERS)
        assert lazy.obs.equals(refs[name].obs) and lazy.var.equals(refs[name].var)
        for k in FIT_LAYERS:
            np.testing.assert_array_equal(np.asarray(lazy.layers[k]), refs[name].layers[k])
            np.testing.assert_array_equal(lazy.layers[k][3:7], refs[name].layers[k][3:7])
        layer = lazy.layers["delta"]
    with pytest.raises(Exception):
        layer[0:1]  # the file is closed with the block


@pytest.mark.parametrize("method", [m for m in METHODS])
def test_every_method_predicts_the_same_from_references_on_disk(summaries, written, method, monkeypatch):
    import contextlib

    from transpert._h5files import layers_on_disk
    from transpert.transfer import reference

    monkeypatch.setattr(reference, "ROW_BLOCK", 5)  # 12 perturbations: blocks of 5, 5 and 2
    refs, train, perts = summaries
    _, want = fit_predict(method, refs, train, perts)
    with contextlib.ExitStack() as files:
        lazy = {k: files.enter_context(layers_on_disk(p, FIT_LAYERS)) for k, p in written.items()}
        _, got = fit_predict(method, lazy, train, perts)
    assert set(got.layers) == set(want.layers)
    for k in want.layers:
        np.testing.assert_array_equal(np.asarray(got.layers[k]), np.asarray(want.layers[k]), err_msg=k)


def test_reference_line_read_in_blocks_equals_the_whole_layer_formulas(summaries, monkeypatch):
    """ReferenceLine.from_summary reads a block of perturbations at a time: its arrays are those
    of the formulas applied to whole layers (brute force here)."""
    import pandas as pd

    from transpert.transfer import reference

    refs, train, _ = summaries
    ref = next(iter(refs.values())).copy()  # the fixture's summaries stay as they are
    ref.layers["log2fc"][0, :3] = [np.nan, np.inf, -np.inf]
    ref.layers["pvalue"][1, :2] = [np.nan, 0.0]
    ref.layers["delta"][2:, 4] = np.nan  # a gene measured once only
    genes = pd.Index(train.var_names[::-1]).append(pd.Index(["absent"]))
    monkeypatch.setattr(reference, "ROW_BLOCK", 5)
    line = reference.ReferenceLine.from_summary("L", ref, genes, 0.05)
    pos = ref.var_names.get_indexer(genes)
    cols = pos[pos >= 0]
    delta = np.asarray(ref.layers["delta"], dtype=np.float64)[:, cols]
    with np.errstate(divide="ignore"):
        want = {"delta": delta.astype(np.float32),
                "log2fc": np.clip(np.nan_to_num(ref.layers["log2fc"][:, cols], nan=0.0), -10, 10).astype(np.float32),
                "neglog10p": np.minimum(-np.log10(np.nan_to_num(ref.layers["pvalue"][:, cols], nan=1.0)),
                                        50).astype(np.float32),
                "sig": np.nan_to_num(ref.layers["fdr"][:, cols], nan=1.0) < 0.05}
    want["mean_delta"] = np.nanmean(delta, axis=0)
    for k, v in want.items():
        np.testing.assert_array_equal(getattr(line, k), v, err_msg=k)
        assert getattr(line, k).flags.f_contiguous == v.flags.f_contiguous, k  # same sums downstream
    np.testing.assert_array_equal(line.gene_positions, np.flatnonzero(pos >= 0))
