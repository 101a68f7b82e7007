"""The challenge-format prediction writer: format, cap, determinism, and that the DE test on the
written cells recovers the predicted DEG set and ordering (scipy's Wilcoxon + statsmodels' BH,
and cell-eval 0.8.2 itself)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.stats import mannwhitneyu
from statsmodels.stats.multitest import multipletests

from transpert._errors import TranspertInputError
from transpert.baselines import make_prediction
from transpert.predict import write_prediction


def write_and_read(*args, **kwargs):
    """``write_prediction``, then the file it wrote, read back whole (the tests look at every
    cell; the function itself returns the file opened backed)."""
    backed = write_prediction(*args, **kwargs)
    assert backed.isbacked
    return ad.read_h5ad(backed.filename)

N_GENES = 40
GENES = [f"g{i}" for i in range(N_GENES)]
PERTS = ["A", "B", "C"]


def _log1p_cells(rng, n, rates):
    counts = rng.poisson(rates, size=(n, len(rates))).astype(np.float64)
    lib = counts.sum(1, keepdims=True)
    return np.log1p(counts / lib * np.median(lib))


@pytest.fixture
def setting():
    rng = np.random.default_rng(0)
    rates = rng.uniform(0.3, 6.0, N_GENES)
    ctrl_x = _log1p_cells(rng, 300, rates)
    controls = ad.AnnData(sp.csr_matrix(ctrl_x.astype(np.float32)),
                          obs=pd.DataFrame({"target_gene": "non-targeting"}, index=[f"c{i}" for i in range(300)]),
                          var=pd.DataFrame(index=GENES))
    control_mean = np.asarray(controls.X.mean(0), dtype=np.float64).ravel()
    # predicted effects: perturbation i moves 4 + i genes, up and down, by different amounts
    delta = np.zeros((3, N_GENES))
    prob = np.zeros((3, N_GENES))
    for i in range(3):
        de = rng.choice(N_GENES, 4 + i, replace=False)
        delta[i, de] = rng.choice([-1, 1], de.size) * rng.uniform(0.3, 1.2, de.size) * np.maximum(control_mean[de], 0.5)
        prob[i, de] = 0.9
        delta[i, rng.choice(np.setdiff1d(np.arange(N_GENES), de), 5)] = 0.05  # small, not called DE
    pred = make_prediction(PERTS, pd.Index(GENES), control_mean, delta, method="test", deg_probability=prob)
    counts = pd.DataFrame({"target_gene": PERTS, "n_cells": [150, 200, 120]})
    return pred, controls, counts, rates


def _de(x, labels, control="non-targeting"):
    """Per-perturbation Wilcoxon vs controls (pdex 0.3.0's test) and BH within each perturbation."""
    ctrl = x[labels == control]
    out = {}
    for p in sorted(set(labels) - {control}):
        grp = x[labels == p]
        pvals = np.array([mannwhitneyu(grp[:, j], ctrl[:, j], method="asymptotic", use_continuity=True).pvalue
                          if np.ptp(np.r_[grp[:, j], ctrl[:, j]]) > 0 else 1.0 for j in range(x.shape[1])])
        fdr = multipletests(pvals, method="fdr_bh")[1]
        with np.errstate(divide="ignore", invalid="ignore"):
            lfc = np.log2(np.expm1(grp.mean(0)) / np.expm1(ctrl.mean(0)))
        out[p] = (fdr, lfc)
    return out


def test_written_cells_format_and_recover_predicted_degs(setting, tmp_path):
    pred, controls, counts, _ = setting
    genes = list(reversed(GENES))  # a different order than the prediction's
    out = write_and_read(pred, controls, counts, genes, tmp_path / "pred.h5ad", seed=1)
    back = ad.read_h5ad(tmp_path / "pred.h5ad")
    assert list(back.var_names) == genes
    assert sp.isspmatrix_csr(back.X) or isinstance(back.X, sp.csr_array)
    assert back.X.dtype == np.float32 and back.X.data.min() >= 0 and back.X.data.max() < 15
    assert np.any(back.X.data != np.round(back.X.data))  # reads as log1p, not counts
    n = back.obs["target_gene"].value_counts()
    assert n["A"] == 150 and n["B"] == 200 and n["C"] == 120 and n["non-targeting"] == 300
    assert (out.X != back.X).nnz == 0

    x = back.X.toarray().astype(np.float64)
    labels = back.obs["target_gene"].astype(str).to_numpy()
    order = pd.Index(GENES).get_indexer(genes)
    de = _de(x, labels)
    for i, p in enumerate(PERTS):
        want = pred.layers["deg_probability"][i, order] >= 0.5
        fdr, lfc = de[p]
        # the DE test on the written cells calls exactly the predicted DE genes
        np.testing.assert_array_equal(fdr < 0.05, want, err_msg=p)
        # genes left alone are a stratified sample of the controls: nowhere near significant
        assert fdr[~want].min() > 0.9
        # their written means are the predicted means (float32 storage: 1e-6 relative)
        np.testing.assert_allclose(x[labels == p][:, want].mean(0), pred.layers["mean"][i, order][want], rtol=1e-5)
        # and their order by |log2FC| (cell-eval's DES ranking) is the predicted one
        want_order = np.argsort(-np.abs(pred.layers["log2fc"][i, order][want]), kind="stable")
        got_order = np.argsort(-np.abs(lfc[want]), kind="stable")
        np.testing.assert_array_equal(got_order, want_order)


def test_quantile_kernel_is_a_stratified_sample():
    """Brute-force check: the i-th smallest sampled value of each gene lies in the i-th stratum of
    the sorted control values, and every cell gets one value per gene."""
    from transpert.kernels._quantile_cells import quantile_sample_csc

    rng = np.random.default_rng(7)
    x = rng.poisson(rng.uniform(0.1, 3, 12), size=(57, 12)).astype(np.float64)
    csc = sp.csc_matrix(x)
    data = csc.data.copy()
    for j in range(12):
        data[csc.indptr[j]:csc.indptr[j + 1]].sort()
    for n_out in (20, 57, 130):
        rows, cols, vals = quantile_sample_csc(csc.indptr.astype(np.int64), data, 57, n_out, 11)
        out = sp.csr_matrix((vals, (rows, cols)), shape=(n_out, 12)).toarray()
        assert len(set(zip(rows, cols))) == len(rows)  # no cell gets two values of a gene
        for j in range(12):
            full = np.sort(x[:, j])
            got = np.sort(out[:, j])
            for i in range(n_out):
                lo, hi = int(np.floor(i * 57 / n_out)), int(np.ceil((i + 1) * 57 / n_out)) - 1
                assert full[lo] <= got[i] <= full[hi]
        again = quantile_sample_csc(csc.indptr.astype(np.int64), data, 57, n_out, 11)
        assert all(np.array_equal(a, b) for a, b in zip((rows, cols, vals), again))


def test_resample_mode_keeps_whole_control_cells(setting, tmp_path):
    pred, controls, counts, _ = setting
    out = write_and_read(pred, controls, counts, GENES, tmp_path / "r.h5ad", cells="resample", move="de")
    de = pred.layers["deg_probability"][0] >= 0.5
    ctrl_rows = {tuple(r) for r in controls.X.toarray()[:, ~de].round(5)}
    a_cells = out[out.obs["target_gene"] == "A"].X.toarray()[:, ~de].round(5)
    assert all(tuple(r) in ctrl_rows for r in a_cells)
    with pytest.raises(TranspertInputError, match="quantile"):
        write_prediction(pred, controls, counts, GENES, tmp_path / "r.h5ad", cells="other")


def test_seeded_and_capped(setting, tmp_path, caplog):
    pred, controls, counts, _ = setting
    a = write_and_read(pred, controls, counts, GENES, tmp_path / "a.h5ad", seed=3)
    b = write_and_read(pred, controls, counts, GENES, tmp_path / "b.h5ad", seed=3)
    c = write_and_read(pred, controls, counts, GENES, tmp_path / "c.h5ad", seed=4)
    assert (a.X != b.X).nnz == 0 and (a.X != c.X).nnz > 0
    with caplog.at_level("WARNING", logger="transpert.predict"):
        capped = write_and_read(pred, controls, counts, GENES, tmp_path / "cap.h5ad", max_cells=385)
    assert capped.n_obs <= 385
    n = capped.obs["target_gene"].value_counts()
    # 770 requested -> factor 0.5
    assert (n["A"], n["B"], n["C"], n["non-targeting"]) == (75, 100, 60, 150)
    assert "exceed the cap" in caplog.text
    assert capped.uns["transpert_cells"]["cap_factor"] == pytest.approx(0.5)


def test_counts_input_controls_are_normalised(setting, tmp_path):
    """Raw-count controls are normalised to log1p (median library size) like scanpy does."""
    import scanpy as sc

    pred, _, counts, rates = setting
    rng = np.random.default_rng(5)
    raw = rng.poisson(rates, size=(200, N_GENES)).astype(np.float32)
    cells = ad.AnnData(sp.csr_matrix(raw), obs=pd.DataFrame({"target_gene": "non-targeting"},
                       index=[f"k{i}" for i in range(200)]), var=pd.DataFrame(index=GENES))
    out = write_and_read(pred, cells, counts, GENES, tmp_path / "p.h5ad")
    ref = cells.copy()
    sc.pp.normalize_total(ref)
    sc.pp.log1p(ref)
    ctrl = out[out.obs["target_gene"] == "non-targeting"].X.toarray()
    np.testing.assert_allclose(ctrl, ref.X.toarray(), rtol=1e-6)


def test_bad_input(setting, tmp_path):
    pred, controls, counts, _ = setting
    with pytest.raises(TranspertInputError, match="'D'"):
        write_prediction(pred, controls, pd.DataFrame({"target_gene": ["A", "D"], "n_cells": [3, 4]}),
                         GENES, tmp_path / "x.h5ad")
    with pytest.raises(TranspertInputError, match="n_cells"):
        write_prediction(pred, controls, pd.DataFrame({"target_gene": ["A"], "n_cells": [0.5]}), GENES,
                         tmp_path / "x.h5ad")
    with pytest.raises(TranspertInputError, match="not measured"):
        write_prediction(pred, controls, counts, GENES + ["zz"], tmp_path / "x.h5ad")
    with pytest.raises(TranspertInputError, match="too small"):
        write_prediction(pred, controls, counts, GENES, tmp_path / "x.h5ad", max_cells=3)
    assert not (tmp_path / "x.h5ad").exists()


@pytest.mark.skipif(shutil.which("zstd") is None, reason="cell-eval prep needs zstd")
def test_cell_eval_prep_and_run_accept_the_file(setting, tmp_path):
    """A written prediction passes `cell-eval prep` and `cell-eval run` (0.8.2) unchanged."""
    pred, controls, counts, rates = setting
    write_prediction(pred, controls, counts, GENES, tmp_path / "pred.h5ad")
    pd.Series(GENES).to_csv(tmp_path / "genes.csv", index=False, header=False)
    # a 'real' file: controls plus cells with the true shifts, as raw counts
    rng = np.random.default_rng(9)
    blocks, labels = [rng.poisson(rates, size=(300, N_GENES))], ["non-targeting"] * 300
    for p, n in zip(PERTS, counts["n_cells"]):
        blocks.append(rng.poisson(rates * rng.uniform(0.5, 2, N_GENES), size=(n, N_GENES)))
        labels += [p] * n
    real = ad.AnnData(sp.csr_matrix(np.vstack(blocks).astype(np.float32)),
                      obs=pd.DataFrame({"target_gene": labels}, index=[f"r{i}" for i in range(len(labels))]),
                      var=pd.DataFrame(index=GENES))
    real.write_h5ad(tmp_path / "real.h5ad")
    cell_eval = [sys.executable, "-m", "cell_eval"]
    prep = subprocess.run(cell_eval + ["prep", "-i", str(tmp_path / "pred.h5ad"), "-g", str(tmp_path / "genes.csv"),
                                       "-o", str(tmp_path / "pred.vcc")], capture_output=True, text=True)
    assert prep.returncode == 0, prep.stderr[-2000:]
    assert (tmp_path / "pred.vcc").stat().st_size > 0
    run = subprocess.run(cell_eval + ["run", "-ap", str(tmp_path / "pred.h5ad"), "-ar", str(tmp_path / "real.h5ad"),
                                      "--profile", "vcc", "-o", str(tmp_path / "ce")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    results = pd.read_csv(tmp_path / "ce" / "results.csv")
    assert list(results["perturbation"]) == PERTS
    assert results[["mae", "overlap_at_N", "discrimination_score_l1"]].notna().all().all()
    # move='pseudobulk' (default): cell-eval's MAE is that of the predicted pseudo-bulk itself
    import scanpy as sc

    sc.pp.normalize_total(real)
    sc.pp.log1p(real)
    rx, rl = real.X.toarray(), real.obs["target_gene"].to_numpy()
    want_mae = [np.abs(pred.layers["mean"][i] - rx[rl == p].mean(0)).mean() for i, p in enumerate(PERTS)]
    np.testing.assert_allclose(results["mae"], want_mae, rtol=1e-4)
    # cell-eval's own DE (pdex) on the written cells calls exactly the predicted DE genes
    pred_de = pd.read_csv(tmp_path / "ce" / "pred_de.csv")
    for i, p in enumerate(PERTS):
        called = set(pred_de.loc[(pred_de["target"] == p) & (pred_de["fdr"] < 0.05), "feature"])
        assert called == {g for g, x in zip(GENES, pred.layers["deg_probability"][i]) if x >= 0.5}, p


def test_n_de_genes_selects_top_genes(setting, tmp_path):
    """With obs['n_de_genes'] the writer moves that many genes, the most probable (or largest |delta|)."""
    pred, controls, counts, _ = setting
    p2 = pred.copy()
    p2.obs["n_de_genes"] = 2
    out = write_and_read(p2, controls, counts, GENES, tmp_path / "n.h5ad", move="de")
    table = out.uns["transpert_cells"]["per_perturbation"]
    assert list(table["n_de_genes_shifted"]) == [2, 2, 2]
    del p2.layers["deg_probability"]
    p2.obs["n_de_genes"] = 3
    out = write_and_read(p2, controls, counts, GENES, tmp_path / "m.h5ad", move="de")
    x = out.X.toarray()
    labels = out.obs["target_gene"].astype(str).to_numpy()
    ctrl = x[labels == "non-targeting"]
    for i, p in enumerate(PERTS):
        top = np.argsort(-np.abs(pred.layers["delta"][i]), kind="stable")[:3]
        np.testing.assert_allclose(x[labels == p][:, top].mean(0), pred.layers["mean"][i, top], rtol=1e-5)
        others = np.setdiff1d(np.arange(N_GENES), top)
        # untouched genes: the stratified control sample, mean within a few percent of the controls
        np.testing.assert_allclose(x[labels == p][:, others].mean(0), ctrl[:, others].mean(0), rtol=0.05, atol=0.01)


def test_move_all_matches_every_predicted_mean(setting, tmp_path):
    pred, controls, counts, _ = setting
    out = write_and_read(pred, controls, counts, GENES, tmp_path / "all.h5ad", move="all")
    x = out.X.toarray().astype(np.float64)
    labels = out.obs["target_gene"].astype(str).to_numpy()
    ctrl_mean = x[labels == "non-targeting"].mean(0)
    for i, p in enumerate(PERTS):
        moved = pred.layers["mean"][i] != pred.var["control_mean"].to_numpy()
        np.testing.assert_allclose(x[labels == p][:, moved].mean(0), pred.layers["mean"][i, moved], rtol=1e-5)
        np.testing.assert_allclose(x[labels == p][:, ~moved].mean(0), ctrl_mean[~moved], rtol=0.05, atol=0.01)
    with pytest.raises(TranspertInputError, match="move"):
        write_prediction(pred, controls, counts, GENES, tmp_path / "x.h5ad", move="some")


def test_concentrate_block_against_brute_force():
    """Each column's mean becomes the target; an increase fills the largest cells first (each up to
    just below 15), a decrease lowers the largest values to one level (checked by bisection)."""
    from transpert.data.schema import LOG1P_CLIP as LOG1P_MAX
    from transpert.predict._cells import _concentrate_block

    rng = np.random.default_rng(3)
    x = np.log1p(rng.poisson(rng.uniform(0.05, 4, 30), size=(60, 30))).astype(np.float64)
    target = x.mean(0) * rng.uniform(0.2, 3.0, 30)
    target[0], target[1] = 0.0, 14.0  # everything removed; more than one cell's room added
    out = _concentrate_block(x.copy(), target)
    np.testing.assert_allclose(out.mean(0), target, rtol=1e-12, atol=1e-12)
    assert out.min() >= 0 and out.max() <= LOG1P_MAX
    for j in range(30):
        changed = out[:, j] != x[:, j]
        if target[j] > x[:, j].mean():
            # the cells changed are the largest ones, and all but the last are filled up to the cap
            need = 60 * (target[j] - x[:, j].mean())
            room = np.sort(LOG1P_MAX - x[:, j])  # largest values have the least room
            assert changed.sum() == np.searchsorted(np.cumsum(room), need - 1e-9) + 1
            assert x[changed, j].min() >= x[~changed, j].max() if (~changed).any() else True
        elif target[j] < x[:, j].mean():
            lo, hi = 0.0, x[:, j].max()  # bisection for the level L with mean(min(x, L)) = target
            for _ in range(200):
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if np.minimum(x[:, j], mid).mean() < target[j] else (lo, mid)
            np.testing.assert_allclose(out[:, j], np.minimum(x[:, j], lo), atol=1e-9)


def test_pseudobulk_mode_every_mean_and_only_the_predicted_degs(setting, tmp_path):
    """move='pseudobulk': every gene's written mean is its predicted mean, and the DE test on the
    written cells (scipy Wilcoxon + BH) still calls exactly the predicted DE genes."""
    pred, controls, counts, _ = setting
    p2 = pred.copy()
    rng = np.random.default_rng(4)
    # non-DE genes get small (+-5%) but real predicted changes of either sign; much larger decreases
    # of a gene expressed in every cell cannot stay hidden from the rank test (module docstring)
    small = p2.layers["deg_probability"] < 0.5
    cm = p2.var["control_mean"].to_numpy()[None, :]
    p2.layers["mean"] = np.where(small, np.clip(cm * rng.uniform(0.95, 1.05, small.shape), 0, None), p2.layers["mean"])
    p2.layers["delta"] = p2.layers["mean"] - cm
    out = write_and_read(p2, controls, counts, GENES, tmp_path / "pb.h5ad", move="pseudobulk", seed=2)
    x = out.X.toarray().astype(np.float64)
    assert out.X.data.min() >= 0 and out.X.data.max() < 15
    labels = out.obs["target_gene"].astype(str).to_numpy()
    de = _de(x, labels)
    for i, p in enumerate(PERTS):
        np.testing.assert_allclose(x[labels == p].mean(0), p2.layers["mean"][i], rtol=1e-5, atol=1e-6)
        want = p2.layers["deg_probability"][i] >= 0.5
        np.testing.assert_array_equal(de[p][0] < 0.05, want, err_msg=p)


def test_the_file_is_written_one_perturbation_at_a_time(setting, tmp_path, monkeypatch):
    """``write_prediction`` appends each perturbation's cells as they are built (never the whole
    matrix) and the file holds exactly what the in-memory ``build_prediction_cells`` builds with
    the same seed, then the control cells."""
    import transpert._io as io
    from transpert.predict import build_prediction_cells
    from transpert.predict._writer import _control_matrix

    pred, controls, counts, _ = setting
    appended = []
    original = io.CSRRowWriter.append

    def spy(self, block):
        appended.append(block.shape[0])
        return original(self, block)

    monkeypatch.setattr(io.CSRRowWriter, "append", spy)
    written = write_and_read(pred, controls, counts, GENES, tmp_path / "s.h5ad", seed=5, max_cells=None)
    assert appended == list(counts["n_cells"]) + [300]  # one block per perturbation, then controls
    ctrl = _control_matrix(controls, GENES, "target_gene", "non-targeting", None)
    rng = np.random.default_rng(5)
    blocks, labels, table = build_prediction_cells(pred, ctrl, GENES, counts, rng=rng)
    expected = sp.vstack(blocks + [sp.csr_matrix(ctrl, dtype=np.float32)], format="csr")
    expected.sort_indices()
    expected.eliminate_zeros()
    for part in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(written.X, part), getattr(expected, part))
    assert list(written.obs["target_gene"].astype(str)) == labels + ["non-targeting"] * 300
    per_pert = written.uns["transpert_cells"]["per_perturbation"]
    assert list(per_pert["n_de_genes_shifted"]) == list(table["n_de_genes_shifted"])


def test_target_cells_given_as_a_file(setting, tmp_path):
    """A path to the target's raw-count cells (controls and perturbed cells) gives the same file
    as its control cells in memory normalised to the whole file's median library size (what
    its summary used), and not the file the controls' own median would give."""
    from transpert.data.controls import control_cells, file_median_library_size

    pred, _, counts, rates = setting
    rng = np.random.default_rng(9)
    labels = ["non-targeting"] * 300 + ["A"] * 60
    depth = np.r_[np.ones(300), np.full(60, 2.5)][:, None]  # perturbed cells sequenced deeper
    cells = ad.AnnData(sp.csr_matrix(rng.poisson(rates * depth).astype(np.float32)),
                       obs=pd.DataFrame({"target_gene": labels}, index=[f"c{i}" for i in range(360)]),
                       var=pd.DataFrame(index=GENES))
    cells.write_h5ad(tmp_path / "train.h5ad")
    from_file = write_and_read(pred, tmp_path / "train.h5ad", counts, GENES, tmp_path / "f.h5ad", seed=2)
    target_sum = file_median_library_size(cells, what="t")
    in_memory = write_and_read(pred, control_cells(cells, what="t"), counts, GENES, tmp_path / "m.h5ad",
                               seed=2, target_sum=target_sum)
    for part in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(from_file.X, part), getattr(in_memory.X, part))
    own_median = write_and_read(pred, control_cells(cells, what="t"), counts, GENES, tmp_path / "o.h5ad",
                                seed=2)
    ctrl = (from_file.obs["target_gene"] == "non-targeting").to_numpy()
    assert not np.allclose(from_file.X[ctrl].toarray(), own_median.X[ctrl].toarray())


def _concentrate_reference(block, target):
    """The vectorised NumPy formulation of the pseudobulk move (before the numba kernel)."""
    from transpert.data.schema import LOG1P_CLIP as LOG1P_MAX

    n = block.shape[0]
    order = np.argsort(-block, axis=0, kind="stable")
    vals = np.take_along_axis(block, order, axis=0)
    need = n * (target - vals.mean(axis=0))
    new = vals.copy()
    up = need > 0
    if up.any():
        room = LOG1P_MAX - vals[:, up]
        before = np.vstack([np.zeros((1, room.shape[1])), np.cumsum(room, axis=0)[:-1]])
        new[:, up] += np.clip(need[up][None, :] - before, 0.0, room)
    down = need < 0
    if down.any():
        v = vals[:, down]
        remove = np.minimum(-need[down], v.sum(axis=0))
        prefix = np.cumsum(v, axis=0)
        k = np.arange(1, n + 1)[:, None]
        nxt = np.vstack([v[1:], np.zeros((1, v.shape[1]))])
        kk = np.argmax(prefix - k * nxt >= remove[None, :] - 1e-12, axis=0)
        cols = np.arange(v.shape[1])
        level = (prefix[kk, cols] - remove) / (kk + 1)
        new[:, down] = np.minimum(v, np.maximum(level, 0.0)[None, :])
    out = np.empty_like(block)
    np.put_along_axis(out, order, new, axis=0)
    return out


def test_concentrate_kernel_equals_the_numpy_formulation():
    """The numba kernel behind move="pseudobulk" gives the NumPy formulation's bits: ties, zeros,
    increases past the cap, decreases past the column sum, unchanged columns."""
    from transpert.data.schema import LOG1P_CLIP as LOG1P_MAX
    from transpert.predict._cells import _concentrate_block

    rng = np.random.default_rng(4)
    block = np.round(rng.gamma(0.6, 1.2, (257, 60)), 1) * (rng.random((257, 60)) < 0.6)  # ties, zeros
    block[:, 5] = 0.0
    mean = block.mean(axis=0)
    target = mean * rng.uniform(0.3, 1.8, 60)
    target[:3] = [LOG1P_MAX, 20.0, -1.0]  # beyond what the cells hold, both ways
    target[3] = mean[3]  # no change
    target[5] = 0.4  # an all-zero column raised
    got = _concentrate_block(block.copy(), target)
    want = _concentrate_reference(block.copy(), target)
    np.testing.assert_array_equal(got, want)
    ok = (target >= 0) & (target < LOG1P_MAX * 0.9)
    np.testing.assert_allclose(got.mean(axis=0)[ok], target[ok], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("target_sum", [None, 1234.5])
def test_control_matrix_normalised_by_row_blocks_equals_the_whole_matrix(target_sum):
    """The writer normalises raw control counts a block of cells at a time into a float32 copy:
    the same values as ``normalize_log1p`` on the whole matrix made float64 (float64 arithmetic,
    float32 values), the counts left as they were, with explicit zeros, an all-zero cell and
    genes given out of the file's order; counts stored as integers or float64 give the same."""
    from transpert.data import normalize_log1p
    from transpert.predict._writer import _control_matrix, _normalised

    rng = np.random.default_rng(3)
    counts = sp.random(23, 30, density=0.3, random_state=4, format="csr",
                       data_rvs=lambda n: rng.integers(0, 9, n).astype(np.float32))
    counts[5] = 0
    counts = sp.csr_matrix(counts)
    counts.data[:4] = 0.0  # explicit zeros
    want = sp.csr_matrix(normalize_log1p(counts.astype(np.float64), target_sum=target_sum), dtype=np.float64)
    before = counts.copy()
    for source in (counts, counts.astype(np.int64), counts.astype(np.float64)):
        got = _normalised(source, target_sum, block=4)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.toarray(), want.toarray())
        np.testing.assert_array_equal(got.data, want.data)
        np.testing.assert_array_equal(got.indices, want.indices)
    for k in ("data", "indices", "indptr"):  # the counts are not touched
        np.testing.assert_array_equal(getattr(counts, k), getattr(before, k), err_msg=k)
    genes = [f"g{i}" for i in range(30)]
    cells = ad.AnnData(counts, var=pd.DataFrame(index=genes))
    for order in (genes, genes[::-1]):
        x = _control_matrix(cells, order, "target_gene", "non-targeting", target_sum)
        assert x.dtype == np.float32
        ref = sp.csr_matrix(want[:, [genes.index(g) for g in order]])
        ref.sort_indices()
        ref.eliminate_zeros()
        for k in ("data", "indices", "indptr"):
            np.testing.assert_array_equal(getattr(x, k), getattr(ref, k), err_msg=k)


def _awkward_csr(rng, dtype):
    """Random CSR with explicit zeros, an empty row and unsorted indices within rows."""
    x = sp.random(17, 12, density=0.4, random_state=int(rng.integers(1 << 30)), format="csr",
                  data_rvs=lambda n: rng.uniform(0, 5, n)).astype(dtype)
    x = sp.csr_matrix(x)
    x[3] = 0
    x = sp.csr_matrix(x)
    x.data[::7] = 0.0  # explicit zeros
    for r in range(x.shape[0]):  # unsorted column indices within each row
        a, b = x.indptr[r], x.indptr[r + 1]
        x.indices[a:b] = x.indices[a:b][::-1].copy()
        x.data[a:b] = x.data[a:b][::-1].copy()
    x.has_sorted_indices = False
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_control_column_means_equal_scipy_on_float64_bit_for_bit(dtype):
    """The writer's control mean (a kernel over the stored values) is scipy's ``mean(axis=0)`` of
    the matrix made float64, bit for bit, for float32 and float64 controls."""
    from transpert.predict._cells import _column_means

    rng = np.random.default_rng(11)
    for _ in range(5):
        x = _awkward_csr(rng, dtype)
        want = np.asarray(x.astype(np.float64).mean(axis=0)).ravel()
        np.testing.assert_array_equal(_column_means(x), want)


def test_sampler_sorted_values_equal_the_sorted_csc():
    """The quantile sampler's per-gene sorted values (no CSC copy of the controls) are the CSC
    matrix's ``indptr`` and its data sorted within each column."""
    from transpert.kernels._quantile_cells import column_sorted_values

    rng = np.random.default_rng(12)
    for dtype in (np.float32, np.float64):
        x = _awkward_csr(rng, dtype)
        csc = x.tocsc()
        csc.sort_indices()
        want = csc.data.copy()
        for j in range(csc.shape[1]):
            want[csc.indptr[j]:csc.indptr[j + 1]].sort()
        indptr, values = column_sorted_values(x.indices, x.data, x.shape[1])
        np.testing.assert_array_equal(indptr, csc.indptr)
        assert values.dtype == x.dtype
        np.testing.assert_array_equal(values, want)


@pytest.mark.parametrize("cells", ["quantile", "resample"])
def test_float32_controls_build_the_same_cells_as_float64(setting, cells):
    """Control cells held float32 (the writer's copy when their values are float32 ones) give the
    same cells, bit for bit, as the same values held float64."""
    from transpert.predict import build_prediction_cells
    from transpert.predict._writer import _control_matrix

    pred, controls, counts, _ = setting
    ctrl32 = _control_matrix(controls, GENES, "target_gene", "non-targeting", None)
    assert ctrl32.dtype == np.float32
    ctrl64 = sp.csr_matrix(ctrl32, dtype=np.float64)
    got = build_prediction_cells(pred, ctrl32, GENES, counts, cells=cells, rng=np.random.default_rng(5))
    want = build_prediction_cells(pred, ctrl64, GENES, counts, cells=cells, rng=np.random.default_rng(5))
    assert got[1] == want[1]
    for a, b in zip(got[0], want[0]):
        for part in ("indptr", "indices", "data"):
            np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
