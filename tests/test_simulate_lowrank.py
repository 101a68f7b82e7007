"""The second atlas generator (:func:`transpert.data.simulate.simulate_lowrank`): what it promises,
checked on its output against the truth it writes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from transpert._errors import TranspertInputError
from transpert.cli import main
from transpert.data.schema import CONTROL_LABEL, PERT_COL
from transpert.data.simulate import load_atlas, simulate_lowrank

KW = dict(n_genes=300, n_perturbations=30, cells_per_perturbation=20, n_control_cells=100)


@pytest.fixture(scope="module")
def atlas():
    return simulate_lowrank(seed=4, relevance=(0.95, 0.5, 0.0), n_noise_lines=1, **KW)


def test_same_seed_same_bytes_other_seed_other_data(atlas):
    again = simulate_lowrank(seed=4, relevance=(0.95, 0.5, 0.0), n_noise_lines=1, **KW)
    for name in atlas.lines:
        assert (again.lines[name].X != atlas.lines[name].X).nnz == 0
    other = simulate_lowrank(seed=5, relevance=(0.95, 0.5, 0.0), n_noise_lines=1, **KW)
    assert other.lines["target"].X.shape != atlas.lines["target"].X.shape or \
        (other.lines["target"].X != atlas.lines["target"].X).nnz > 0


def test_raw_counts_in_the_canonical_schema(atlas):
    for name, adata in atlas.lines.items():
        x = adata.X
        assert x.data.min() >= 0 and np.array_equal(x.data, np.round(x.data))
        labels = adata.obs[PERT_COL].astype(str)
        assert (labels == CONTROL_LABEL).sum() == KW["n_control_cells"]
        assert set(labels) - {CONTROL_LABEL} <= set(atlas.perturbations)
        assert {"guide_id", "batch", "cell_line"} <= set(adata.obs.columns)


def test_relevance_is_the_realised_effect_correlation(atlas):
    lines = atlas.truth.lines
    sim = lines["similarity_to_target"]
    # the loadings' correlation r drives the effect correlation (sampling spread ~0.1 at this size)
    assert sim["lr1"] > sim["lr2"] > max(sim["lr3"], sim["noise1"])
    assert abs(sim["lr1"] - 0.95) < 0.1 and abs(sim["lr2"] - 0.5) < 0.2
    assert abs(sim["lr3"]) < 0.2 and abs(sim["noise1"]) < 0.2
    assert list(lines["kind"]) == ["programme"] * 3 + ["noise", "target"]


def test_lines_differ_in_depth_and_coverage(atlas):
    lines = atlas.truth.lines
    depth = {n: float(np.median(np.asarray(a.X.sum(axis=1)).ravel()
                                / a.n_vars * KW["n_genes"])) for n, a in atlas.lines.items()}
    # default depths: the references spread over 4x (5k, 10k, 20k), noise at 10k, target 20k
    assert depth["lr1"] < depth["lr2"] < depth["lr3"]
    assert 3 < depth["lr3"] / depth["lr1"] < 5.5
    target = atlas.lines["target"]
    assert target.n_vars == KW["n_genes"]
    assert set(target.obs[PERT_COL].astype(str)) - {CONTROL_LABEL} == set(atlas.perturbations)
    for name in ["lr1", "lr2", "lr3", "noise1"]:
        a = atlas.lines[name]
        measured = set(a.obs[PERT_COL].astype(str)) - {CONTROL_LABEL}
        assert a.n_vars < KW["n_genes"] and len(measured) < len(atlas.perturbations)
        assert len(measured) == lines.loc[name, "n_perturbations_measured"]
        assert a.n_vars == lines.loc[name, "n_genes_measured"]
        assert set(atlas.truth.log_effects[name].index) == measured


def test_effects_are_heavy_tailed_and_the_knockdown_is_there(atlas):
    eff = atlas.truth.log_effects["target"]
    genes = list(eff.columns)
    own = np.array([eff.loc[p, p] for p in eff.index])
    assert np.all(own < np.log(1 - 0.05) + 1e-6)  # every target gene knocked down
    off = eff.to_numpy().copy()
    off[np.arange(len(eff)), [genes.index(p) for p in eff.index]] = 0
    nonzero = off[off != 0]
    assert stats.kurtosis(nonzero) > 2.0  # a Gaussian's excess kurtosis is 0


def test_written_atlas_loads_back(tmp_path):
    simulate_lowrank(tmp_path / "lr", seed=2, relevance=(0.8,), **KW)
    back = load_atlas(tmp_path / "lr")
    assert back.reference_lines == ["lr1"] and back.target_line == "target"
    assert back.truth.lines.loc["lr1", "kind"] == "programme"
    assert len(back.perturbations) == KW["n_perturbations"]


def test_cli_generator_lowrank(tmp_path, capsys):
    assert main(["simulate", "--generator", "lowrank", "-o", str(tmp_path / "d"), "--similarity", "0.9,0.2",
                 "--n-reference-lines", "2", "--noise-lines", "1", "--n-genes", "200", "--n-perturbations", "20",
                 "--cells-per-perturbation", "10", "--n-control-cells", "40"]) == 0
    out = capsys.readouterr().out
    assert "noise" in out and "low-rank" in out
    assert sorted(p.name for p in (tmp_path / "d").glob("*.h5ad")) == [
        "lr1.h5ad", "lr2.h5ad", "noise1.h5ad", "target.h5ad", "truth.h5ad"]


@pytest.mark.parametrize("kw, match", [({"relevance": (1.5,)}, "relevance"), ({"tail_df": 2}, "tail_df"),
                                       ({"frac_genes": 0}, "frac_genes"), ({"depths": [1, 2]}, "depths")])
def test_bad_parameters_name_themselves(kw, match):
    with pytest.raises(TranspertInputError, match=match):
        simulate_lowrank(**{**KW, **kw})
