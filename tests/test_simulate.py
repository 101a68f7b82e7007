"""The small simulated atlas: determinism, schema, knockdown, sparsity, shared effects, no-effect
perturbations, file round trip, bad input.

Independent references: scipy's Mann-Whitney U (with statsmodels' Benjamini-Hochberg) for DE,
numpy's Pearson correlation, scanpy-style normalisation written out by hand.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scipy.stats as ss
from statsmodels.stats.multitest import multipletests

from transpert._errors import TranspertInputError
from transpert.data.simulate import load_atlas, read_truth, simulate_atlas

SMALL = dict(n_genes=600, n_perturbations=24, cells_per_perturbation=70, n_control_cells=250)


@pytest.fixture(scope="module")
def atlas():
    return simulate_atlas(seed=11, **SMALL)


def _log1p_norm(X) -> np.ndarray:
    """Median-library-size normalisation + natural log1p (scanpy normalize_total + log1p)."""
    X = X.toarray().astype(np.float64)
    lib = X.sum(axis=1)
    return np.log1p(X / lib[:, None] * np.median(lib[lib > 0]))


def _labels(adata) -> np.ndarray:
    return adata.obs["target_gene"].astype(str).to_numpy()


def _offtarget_mask(truth_frame: pd.DataFrame) -> np.ndarray:
    """Entries that are not a perturbation's own target gene (the knockdown)."""
    cols = list(truth_frame.columns)
    mask = np.ones(truth_frame.shape, dtype=bool)
    mask[np.arange(truth_frame.shape[0]), [cols.index(p) for p in truth_frame.index]] = False
    return mask


def test_same_seed_same_bytes_different_seed_differs():
    a = simulate_atlas(seed=5, **SMALL)
    b = simulate_atlas(seed=5, **SMALL)
    c = simulate_atlas(seed=6, **SMALL)
    for name in a.lines:
        xa, xb = a.lines[name].X, b.lines[name].X
        assert xa.data.tobytes() == xb.data.tobytes()
        assert xa.indices.tobytes() == xb.indices.tobytes()
        assert xa.indptr.tobytes() == xb.indptr.tobytes()
        pd.testing.assert_frame_equal(a.lines[name].obs, b.lines[name].obs)
        pd.testing.assert_frame_equal(a.truth.log_effects[name], b.truth.log_effects[name])
    xc = c.lines["target"].X
    xa = a.lines["target"].X
    assert xa.shape != xc.shape or (xa != xc).nnz > 0
    assert not a.truth.log_effects["target"].equals(c.truth.log_effects["target"])


def test_canonical_schema(atlas):
    assert atlas.reference_lines == ["ref1", "ref2", "ref3"] and atlas.target_line == "target"
    assert len(atlas.perturbations) == SMALL["n_perturbations"]
    for name, adata in atlas.lines.items():
        assert adata.n_vars == SMALL["n_genes"]
        assert adata.var_names.is_unique and adata.var["gene_id"].is_unique
        assert adata.var["gene_id"].str.match(r"^ENSG\d{11}$").all()
        assert {"target_gene", "guide_id", "batch"} <= set(adata.obs.columns)
        labels = _labels(adata)
        assert set(labels) == set(atlas.perturbations) | {"non-targeting"}
        assert (labels == "non-targeting").sum() == SMALL["n_control_cells"]
        # every label is a gene of the panel (so the PDS drops the target column)
        assert set(atlas.perturbations) <= set(adata.var_names)
        X = adata.X
        assert sp.isspmatrix_csr(X) and X.dtype == np.float32
        assert np.all(X.data == np.round(X.data)) and X.data.min() > 0  # counts, no stored zeros
        assert adata.obs_names.is_unique


def test_target_gene_knocked_down_in_every_line(atlas):
    for name, adata in atlas.lines.items():
        X = _log1p_norm(adata.X)
        labels = _labels(adata)
        ctrl = labels == "non-targeting"
        pvals, ratios = [], []
        for pert in atlas.perturbations:
            g = adata.var_names.get_loc(pert)
            x, y = X[labels == pert, g], X[ctrl, g]
            pvals.append(ss.mannwhitneyu(x, y, alternative="less").pvalue)
            ratios.append(np.expm1(x).mean() / np.expm1(y).mean())
        pvals, ratios = np.array(pvals), np.array(ratios)
        # CRISPRi efficiencies are 0.3-0.97: nearly every knockdown is visible at ~70 cells
        assert (pvals < 0.01).mean() >= 0.9, (name, pvals)
        assert np.median(ratios) < 0.4, (name, ratios)
        eff = atlas.truth.perturbations.query("line == @name").set_index("target_gene")
        assert eff["knockdown_efficiency"].between(0.3, 0.97).all()
        # stronger true knockdown -> lower measured ratio
        rho = ss.spearmanr(eff.loc[atlas.perturbations, "knockdown_efficiency"], ratios)[0]
        assert rho < 0, (name, rho)


def test_sparsity_in_band_and_lower_at_h1_depth():
    atlas = simulate_atlas(seed=2, target_depth="h1", **SMALL)
    zeros = {n: 1 - a.X.nnz / np.prod(a.shape) for n, a in atlas.lines.items()}
    for name in atlas.reference_lines:  # 10k UMI per cell, the default
        assert 0.85 <= zeros[name] <= 0.95, zeros
    assert zeros["target"] < min(zeros[n] for n in atlas.reference_lines) - 0.05, zeros
    assert atlas.truth.lines.loc["target", "depth_median"] == 50_000


def test_truth_shared_component_and_similarity_order(atlas):
    truth = atlas.truth
    target = truth.log_effects["target"]
    mask = _offtarget_mask(target)
    corr = {}
    for ref in atlas.reference_lines:
        ref_fx = truth.log_effects[ref]
        corr[ref] = np.corrcoef(ref_fx.to_numpy()[mask], target.to_numpy()[mask])[0, 1]
        # same target across lines vs different targets across lines
        active = truth.perturbations.query("line == @ref and has_effect")["target_gene"]
        a = ref_fx.loc[active].to_numpy() * mask[target.index.isin(active)]
        b = target.loc[active].to_numpy() * mask[target.index.isin(active)]
        same = [np.corrcoef(a[i], b[i])[0, 1] for i in range(len(a))]
        diff = [np.corrcoef(a[i], b[j])[0, 1] for i in range(len(a)) for j in range(len(a)) if i != j]
        assert np.mean(same) > np.mean(diff) + 0.3, (ref, np.mean(same), np.mean(diff))
    # requested similarities 0.8 / 0.6 / 0.4 are realised in order and roughly in size
    assert corr["ref1"] > corr["ref2"] > corr["ref3"], corr
    for ref, s in zip(atlas.reference_lines, (0.8, 0.6, 0.4)):
        assert abs(corr[ref] - s) < 0.15, corr


def test_perturbations_of_one_module_have_similar_effects(atlas):
    info = atlas.truth.perturbations.query("line == 'target' and has_effect")
    fx_ = atlas.truth.log_effects["target"].loc[info["target_gene"]]
    values = fx_.to_numpy() * _offtarget_mask(fx_)
    c = np.corrcoef(values)
    module = info["module"].to_numpy()
    same = module[:, None] == module[None, :]
    off_diag = ~np.eye(len(module), dtype=bool)
    assert (same & off_diag).any()
    assert c[same & off_diag].mean() > c[~same].mean() + 0.3, (c[same & off_diag].mean(), c[~same].mean())


def _pseudobulk_deltas(adata, perts) -> np.ndarray:
    X = _log1p_norm(adata.X)
    labels = _labels(adata)
    ctrl = X[labels == "non-targeting"].mean(axis=0)
    return np.stack([X[labels == p].mean(axis=0) - ctrl for p in perts])


def test_estimated_deltas_correlate_more_for_same_target(atlas):
    perts = atlas.perturbations
    target_delta = _pseudobulk_deltas(atlas.lines["target"], perts)
    keep = np.ones(target_delta.shape[1], dtype=bool)
    keep[[atlas.lines["target"].var_names.get_loc(p) for p in perts]] = False  # not the knockdowns
    active = atlas.truth.perturbations.query("line == 'target'")["has_effect"].to_numpy()
    for ref in atlas.reference_lines:
        ref_delta = _pseudobulk_deltas(atlas.lines[ref], perts)
        c = np.corrcoef(ref_delta[:, keep], target_delta[:, keep])[: len(perts), len(perts):]
        same = np.diag(c)[active]
        off = c[np.ix_(active, active)][~np.eye(active.sum(), dtype=bool)]
        # noisy (most genes carry only sampling noise), but clearly separated even for the
        # least similar reference (0.4)
        assert np.mean(same) > np.mean(off) + 0.1, (ref, np.mean(same), np.mean(off))
        assert ss.mannwhitneyu(same, off, alternative="greater").pvalue < 1e-3


def _n_de(adata, pert, X, labels) -> int:
    """Genes with BH FDR < 0.05 (two-sided Mann-Whitney vs controls), the target excluded."""
    x, y = X[labels == pert], X[labels == "non-targeting"]
    p = ss.mannwhitneyu(x, y, axis=0).pvalue
    p = np.where(np.isnan(p), 1.0, p)  # all-tied genes
    fdr = multipletests(p, method="fdr_bh")[1]
    fdr[adata.var_names.get_loc(pert)] = 1.0
    return int((fdr < 0.05).sum())


def test_no_effect_perturbations_have_no_de_and_others_do(atlas):
    adata = atlas.lines["target"]
    X, labels = _log1p_norm(adata.X), _labels(adata)
    info = atlas.truth.perturbations.query("line == 'target'").set_index("target_gene")
    n_de = {p: _n_de(adata, p, X, labels) for p in atlas.perturbations}
    inert = info.index[~info["has_effect"]]
    active = info.index[info["has_effect"]]
    assert len(inert) >= 2 and (info.loc[inert, "n_changed"] == 1).all()
    assert max(n_de[p] for p in inert) <= 3, {p: n_de[p] for p in inert}
    counts = np.array([n_de[p] for p in active])
    assert np.median(counts) >= 5 and counts.max() < 0.6 * adata.n_vars, counts
    # truly changed genes are a minority of genes
    assert (info.loc[active, "n_changed"] < 0.6 * adata.n_vars).all()


def test_typical_perturbation_has_tens_to_hundreds_of_de_genes():
    # the default gene count and ~100 cells per perturbation, as the brief states the claim
    atlas = simulate_atlas(seed=4, n_reference_lines=1, similarity=0.7, n_perturbations=30,
                           cells_per_perturbation=100, n_control_cells=300)
    adata = atlas.lines["target"]
    X, labels = _log1p_norm(adata.X), _labels(adata)
    info = atlas.truth.perturbations.query("line == 'target'").set_index("target_gene")
    counts = np.array([_n_de(adata, p, X, labels) for p in info.index[info["has_effect"]]])
    assert 10 <= np.median(counts) <= 300, counts
    assert counts.max() < 0.5 * adata.n_vars, counts


def test_write_and_reload(tmp_path, atlas):
    written = simulate_atlas(tmp_path / "atlas", seed=11, **SMALL)
    assert sorted(p.name for p in (tmp_path / "atlas").iterdir()) == sorted(
        ["ref1.h5ad", "ref2.h5ad", "ref3.h5ad", "target.h5ad", "truth.h5ad", "lines.csv",
         "truth_perturbations.csv"])
    back = load_atlas(tmp_path / "atlas")
    assert back.reference_lines == atlas.reference_lines and back.target_line == "target"
    assert back.perturbations == atlas.perturbations
    for name in atlas.lines:
        assert (back.lines[name].X != atlas.lines[name].X).nnz == 0
        assert back.lines[name].var["gene_id"].tolist() == atlas.lines[name].var["gene_id"].tolist()
        pd.testing.assert_frame_equal(back.truth.log_effects[name], written.truth.log_effects[name])
    truth = read_truth(tmp_path / "atlas")
    pd.testing.assert_frame_equal(truth.lines, atlas.truth.lines, check_dtype=False)
    csv = pd.read_csv(tmp_path / "atlas" / "truth_perturbations.csv")
    assert len(csv) == 4 * SMALL["n_perturbations"]
    assert not list(tmp_path.glob("atlas/.*"))  # no temporary files left


@pytest.mark.parametrize("kwargs, word", [
    (dict(similarity=(0.5, 0.5)), "similarity"),
    (dict(similarity=1.5), "similarity"),
    (dict(n_perturbations=0), "n_perturbations"),
    (dict(seed=-1), "seed"),
    (dict(target_depth="deep"), "target_depth"),
    (dict(line_names=["a", "a", "b", "c"]), "line_names"),
    (dict(n_control_cells=1), "n_control_cells"),
])
def test_bad_parameters_raise_clear_errors(kwargs, word):
    with pytest.raises(TranspertInputError, match=word):
        simulate_atlas(**kwargs)


def test_cli_writes_an_atlas(tmp_path, capsys):
    from transpert.cli import main

    out = tmp_path / "cli_atlas"
    code = main(["simulate", "-o", str(out), "--seed", "3", "--n-genes", "300", "--n-perturbations", "8",
                 "--cells-per-perturbation", "20", "--n-control-cells", "60", "--n-reference-lines", "2",
                 "--similarity", "0.9,0.3", "--target-depth", "h1"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "target.h5ad" in printed and "ref2.h5ad" in printed
    back = load_atlas(out)
    assert back.reference_lines == ["ref1", "ref2"] and back.lines["target"].n_vars == 300
    assert back.truth.lines["similarity_to_target"].tolist() == [0.9, 0.3, 1.0]
    assert back.truth.lines.loc["target", "depth_median"] == 50_000
    assert main(["simulate", "-o", str(tmp_path / "bad"), "--similarity", "2"]) == 2
    assert "similarity" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
