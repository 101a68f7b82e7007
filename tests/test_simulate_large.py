"""The large-file writer: NB sampler vs scipy, anndata opens the file backed, output independent of
chunking and threads, log1p file == scanpy normalisation of the counts file, knockdown, errors."""

from __future__ import annotations

import anndata as ad
import h5py
import numpy as np
import pytest
import scipy.stats as ss
from numba import njit

from transpert._errors import TranspertInputError
from transpert.kernels import _simulate as kr
from transpert.data.simulate import write_large_dataset

SMALL = dict(n_cells=900, n_genes=400, n_perturbations=12)


@njit(cache=True)
def _draws(seed, n, mu, phi):
    key = kr.row_key(np.uint64(seed), 0)
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        out[i] = kr.nb_draw(kr._entry_bits(key, i), mu, phi)
    return out


@pytest.mark.parametrize("mu, phi", [(0.002, 0.3), (0.05, 0.3), (0.8, 0.3), (6.0, 0.1),
                                     (30.0, 1.5), (39.9, 0.02), (150.0, 0.3), (2500.0, 0.05),
                                     (60.0, 4.0)])
def test_nb_sampler_matches_scipy_nbinom(mu, phi):
    # covers both branches (inversion up to a mean of 40, gamma-Poisson above; PTRS and shape<1)
    n = 40_000
    x = _draws(7, n, mu, phi)
    r = 1.0 / phi
    ref = ss.nbinom(r, 1.0 / (1.0 + phi * mu))
    # mean within 4 standard errors
    assert abs(x.mean() - mu) < 4 * np.sqrt(ref.var() / n), (x.mean(), mu)
    # chi-square goodness of fit over bins holding >= 50 expected draws each
    edges = np.unique(ref.ppf(np.linspace(0, 1, 41)[1:-1]))
    cuts = np.concatenate([[-0.5], edges + 0.5, [np.inf]])  # bin i = (edge[i-1], edge[i]]
    observed = np.histogram(x, bins=cuts)[0]
    expected = np.diff(np.concatenate([[0.0], ref.cdf(edges), [1.0]])) * n
    keep = expected >= 50
    if keep.sum() >= 2:
        obs = np.append(observed[keep], observed[~keep].sum())
        exp = np.append(expected[keep], expected[~keep].sum())
        obs, exp = obs[exp > 0], exp[exp > 0]
        assert ss.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > 1e-4
    else:  # nearly all zeros: compare P(0) within 4 SE
        p0 = ref.pmf(0)
        assert abs((x == 0).mean() - p0) < 4 * np.sqrt(p0 * (1 - p0) / n) + 1e-12


def test_file_opens_backed_with_canonical_schema(tmp_path):
    path = tmp_path / "big.h5ad"
    info = write_large_dataset(path, **SMALL, seed=3, density=0.11)
    a = ad.read_h5ad(path, backed="r")
    assert a.shape == (SMALL["n_cells"], SMALL["n_genes"])
    assert {"target_gene", "guide_id", "batch"} <= set(a.obs.columns)
    assert a.var_names.is_unique and a.var["gene_id"].is_unique
    labels = a.obs["target_gene"].astype(str).to_numpy()
    assert (labels == "non-targeting").sum() == round(38_176 / 300_000 * SMALL["n_cells"])
    perts = sorted(set(labels) - {"non-targeting"})
    assert len(perts) == SMALL["n_perturbations"] and set(perts) <= set(a.var_names)
    X = a.X[:]  # the whole small matrix, through anndata's backed reader
    assert X.format == "csr" and X.dtype == np.float32
    assert np.all(X.data == np.round(X.data)) and X.data.min() >= 1
    assert X.nnz == info.nnz
    # the spread is calibrated to the requested density (expected; sampling + effects move it)
    assert abs(info.density - 0.11) < 0.02, info.density
    a.file.close()


def _read_raw(path):
    with h5py.File(path, "r") as f:
        return {k: f["X"][k][:] for k in ("data", "indices", "indptr")}


def test_output_independent_of_chunks_and_threads(tmp_path):
    a = write_large_dataset(tmp_path / "a.h5ad", **SMALL, seed=5, chunk_rows=37, threads=1)
    b = write_large_dataset(tmp_path / "b.h5ad", **SMALL, seed=5, chunk_rows=None, threads=2)
    c = write_large_dataset(tmp_path / "c.h5ad", **SMALL, seed=6)
    ra, rb, rc = _read_raw(a.path), _read_raw(b.path), _read_raw(c.path)
    for k in ra:
        assert ra[k].dtype == rb[k].dtype and ra[k].tobytes() == rb[k].tobytes(), k
    assert ra["data"].size != rc["data"].size or not np.array_equal(ra["data"], rc["data"])
    oa, ob = ad.read_h5ad(a.path, backed="r"), ad.read_h5ad(b.path, backed="r")
    assert oa.obs.equals(ob.obs)
    oa.file.close()
    ob.file.close()


def test_log1p_file_equals_scanpy_normalisation_of_counts_file(tmp_path):
    import scanpy as sc

    counts = write_large_dataset(tmp_path / "counts.h5ad", **SMALL, seed=9, scale="counts")
    logged = write_large_dataset(tmp_path / "log.h5ad", **SMALL, seed=9, scale="log1p", chunk_rows=100)
    ref = ad.read_h5ad(counts.path)
    sc.pp.normalize_total(ref, target_sum=None)
    sc.pp.log1p(ref)
    got = ad.read_h5ad(logged.path).X
    want = ref.X.tocsr()
    assert np.array_equal(got.indptr, want.indptr) and np.array_equal(got.indices, want.indices)
    np.testing.assert_allclose(got.data, want.data, rtol=1e-6, atol=1e-6)
    assert 0 <= got.data.min() and got.data.max() < 15


def test_target_gene_knocked_down_and_grouped_order(tmp_path):
    info = write_large_dataset(tmp_path / "g.h5ad", n_cells=2000, n_genes=400, n_perturbations=10,
                               seed=2, order="grouped")
    a = ad.read_h5ad(info.path)
    labels = a.obs["target_gene"].astype(str).to_numpy()
    # grouped: each label occupies one contiguous run, controls first
    runs = [labels[0]] + [labels[i] for i in range(1, labels.size) if labels[i] != labels[i - 1]]
    assert len(runs) == len(set(runs)) == 11 and runs[0] == "non-targeting"
    X = a.X.toarray()
    lib = X.sum(axis=1)
    norm = X / lib[:, None] * np.median(lib)
    ctrl = norm[labels == "non-targeting"]
    ratios = [norm[labels == p, a.var_names.get_loc(p)].mean() / ctrl[:, a.var_names.get_loc(p)].mean()
              for p in runs[1:]]
    assert np.median(ratios) < 0.4 and max(ratios) < 0.8, ratios


def test_dense_layout_holds_the_csr_file_values(tmp_path):
    # the dense layout (Replogle / Nadig files) stores the same matrix as the CSR file of the seed
    csr = write_large_dataset(tmp_path / "c.h5ad", **SMALL, seed=4)
    dense = write_large_dataset(tmp_path / "d.h5ad", **SMALL, seed=4, layout="dense", chunk_rows=70)
    with h5py.File(dense.path, "r") as f:
        assert isinstance(f["X"], h5py.Dataset) and f["X"].dtype == np.float32
        assert f["X"].chunks is None  # contiguous, as anndata writes a dense X
    a, b = ad.read_h5ad(csr.path, backed="r"), ad.read_h5ad(dense.path, backed="r")
    assert isinstance(b.X[:], np.ndarray)
    np.testing.assert_array_equal(b.X[:], a.X[:].toarray())
    assert a.obs.equals(b.obs) and a.var.equals(b.var)
    assert np.count_nonzero(b.X[:]) == dense.nnz == csr.nnz
    a.file.close()
    b.file.close()
    # log1p (two passes: the median library size first) in the dense layout too
    logc = write_large_dataset(tmp_path / "lc.h5ad", **SMALL, seed=4, scale="log1p")
    logd = write_large_dataset(tmp_path / "ld.h5ad", **SMALL, seed=4, scale="log1p", layout="dense")
    np.testing.assert_array_equal(ad.read_h5ad(logd.path).X, ad.read_h5ad(logc.path).X.toarray())


def test_files_share_genes_and_targets_through_catalogue_positions(tmp_path):
    from transpert.data.simulate._genes import gene_ids, gene_symbols

    genes = np.array([3, 50, 7, 400, 11] + list(range(500, 895)))
    targets = [50, 400, 600, 7, 11, 510, 520, 530, 540, 550, 560, 570]
    info = write_large_dataset(tmp_path / "s.h5ad", **SMALL, seed=1, genes=genes, targets=targets)
    a = ad.read_h5ad(info.path, backed="r")
    assert list(a.var_names) == list(gene_symbols(895)[genes])
    assert list(a.var["gene_id"]) == list(gene_ids(895)[genes])
    perts = set(a.obs["target_gene"].astype(str)) - {"non-targeting"}
    assert perts == set(gene_symbols(895)[targets])
    a.file.close()


@pytest.mark.parametrize("kwargs, word", [
    (dict(scale="log2"), "scale"), (dict(order="random"), "order"), (dict(density=1.5), "density"),
    (dict(n_cells=10), "n_cells"), (dict(chunk_rows=0), "chunk_rows"), (dict(layout="csc"), "layout"),
    (dict(targets=[1, 2]), "targets"), (dict(genes=[1, 1] + list(range(2, 400))), "genes"),
    (dict(genes=list(range(400)), targets=list(range(390, 402))), "targets"),
])
def test_bad_parameters(tmp_path, kwargs, word):
    args = {**SMALL, **kwargs}
    with pytest.raises(TranspertInputError, match=word):
        write_large_dataset(tmp_path / "x.h5ad", **args)
    assert not (tmp_path / "x.h5ad").exists()


def test_cli_large(tmp_path, capsys):
    from transpert.cli import main

    out = tmp_path / "cli.h5ad"
    assert main(["simulate", "--large", "500", "-o", str(out), "--n-genes", "200",
                 "--n-perturbations", "5", "--scale", "log1p", "--seed", "1"]) == 0
    assert "500 cells x 200 genes" in capsys.readouterr().out
    a = ad.read_h5ad(out, backed="r")
    assert a.shape == (500, 200) and a.uns["simulation"]["scale"] == "log1p"
    a.file.close()
