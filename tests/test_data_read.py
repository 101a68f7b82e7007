"""Reading cells: chunked reads equal whole reads for every storage format, the schema mapping,
cell filters, and the real Datlinger / Papalexi files through manifest-style mappings."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from helpers_data import counts_matrix
from transpert._errors import TranspertInputError
from transpert.data import CellSource, Schema, open_cells, read_cells
from transpert.data import storage as read_mod  # the chunk and scan sizes live with the back-ends

DATLINGER = "datlinger2021_jurkat_stim_unstim_subset.h5ad"
PAPALEXI = "papalexi2021_thp1_lowmoi_subset.h5ad"


def write_cells(tmp_path, X, *, obs=None, var=None, name="cells.h5ad", layers=None):
    n_obs, n_vars = X.shape
    if obs is None:
        labels = np.array(["ctrl", "A", "B", "C"])[np.arange(n_obs) % 4]
        obs = pd.DataFrame({"perturbation": labels,
                            "context": np.where(np.arange(n_obs) % 3 == 0, "x", "y")},
                           index=[f"cell{i}" for i in range(n_obs)])
    if var is None:
        var = pd.DataFrame({"symbol": [f"G{j}" for j in range(n_vars)]},
                           index=[f"ENSG{j:011d}" for j in range(n_vars)])
    path = tmp_path / name
    ad.AnnData(X=X, obs=obs, var=var, layers=layers or {}).write_h5ad(path)
    return path


SCHEMA = {"pert_col": "perturbation", "control_label": "ctrl", "gene_symbols": "symbol",
          "gene_ids": "index"}


def stored_csr(X) -> sp.csr_matrix:
    return X.tocsr() if sp.issparse(X) else sp.csr_matrix(X)


@pytest.mark.parametrize("fmt", ["csr", "csc", "dense"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32, np.float64])
@pytest.mark.parametrize("chunk_rows", [1, 7, 1000])
def test_chunked_read_equals_whole(tmp_path, monkeypatch, fmt, dtype, chunk_rows):
    monkeypatch.setattr(read_mod, "CSC_SCAN_BLOCK", 37)  # several scan blocks per CSC chunk
    X = counts_matrix(11, fmt=fmt, dtype=dtype)
    path = write_cells(tmp_path, X)
    expected = stored_csr(X)
    with open_cells(path, schema=SCHEMA) as cells:
        assert cells.format == fmt and cells.dtype == np.dtype(dtype)
        chunks = list(cells.iter_chunks(chunk_rows=chunk_rows))
    bounds = [(a, b) for a, b, _ in chunks]
    assert bounds == [(i, min(i + chunk_rows, X.shape[0])) for i in range(0, X.shape[0], chunk_rows)]
    got = sp.vstack([c for _, _, c in chunks], format="csr")
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got.toarray(), expected.toarray())
    # explicit stored zeros survive chunking (same stored entries, not just the same values)
    assert got.nnz == expected.nnz
    np.testing.assert_array_equal(got.indptr, expected.indptr)
    whole = read_cells(path, schema=SCHEMA)
    np.testing.assert_array_equal(whole.X.toarray(), expected.toarray())


@pytest.mark.parametrize("chunk_rows", [1, 5, 13, 64])
def test_large_csc_is_regrouped_by_rows_once(tmp_path, monkeypatch, chunk_rows):
    """A CSC file beyond one scan block is regrouped by rows once (scratch files, removed on
    close), and every chunk read from the buckets equals the stored rows, explicit zeros and
    column order included, for chunks that cross bucket boundaries."""
    monkeypatch.setattr(read_mod, "CSC_SCAN_BLOCK", 53)
    monkeypatch.setattr(read_mod, "CSC_BUCKET_ENTRIES", 40)  # a few rows a bucket
    built = []
    original = read_mod.RowBuckets.__init__

    def spy(self, matrix):
        built.append(matrix.path)
        original(self, matrix)

    monkeypatch.setattr(read_mod.RowBuckets, "__init__", spy)
    X = counts_matrix(15, n_obs=97, fmt="csc", dtype=np.float32)
    path = write_cells(tmp_path, X)
    expected = stored_csr(X)
    with open_cells(path, schema=SCHEMA) as cells:
        chunks = list(cells.iter_chunks(chunk_rows=chunk_rows))
        scratch = cells._matrix._buckets.dir
        assert scratch.exists() and cells._matrix._buckets.rows_per_bucket < chunk_rows + 10
        again = list(cells.iter_chunks(chunk_rows=7))  # a second pass reuses the buckets
    assert not scratch.exists()
    assert len(built) == 1
    for got in (sp.vstack([c for *_, c in chunks], format="csr"),
                sp.vstack([c for *_, c in again], format="csr")):
        for part in ("indptr", "indices", "data"):
            np.testing.assert_array_equal(getattr(got, part), getattr(expected, part))


def test_default_chunk_size_is_used(tmp_path, monkeypatch):
    monkeypatch.setattr(read_mod, "TARGET_CHUNK_ENTRIES", 200)
    monkeypatch.setattr(read_mod, "MIN_CHUNK_ROWS", 1)
    X = counts_matrix(12)
    with open_cells(write_cells(tmp_path, X), schema=SCHEMA) as cells:
        chunks = list(cells.iter_chunks())
        per_row = X.nnz / X.shape[0]
        assert len(chunks) == -(-X.shape[0] // int(200 // per_row)) > 1
        np.testing.assert_array_equal(sp.vstack([c for *_, c in chunks]).toarray(), X.toarray())


@pytest.mark.parametrize("fmt", ["csr", "csc", "dense"])
def test_cell_filter_chunks(tmp_path, fmt):
    X = counts_matrix(13, n_obs=101, fmt=fmt)
    path = write_cells(tmp_path, X)
    schema = dict(SCHEMA, cell_filter='context == "x"')
    keep = np.arange(101) % 3 == 0
    with open_cells(path, schema=schema) as cells:
        assert cells.n_obs == keep.sum()
        assert (cells.obs.index == [f"cell{i}" for i in np.flatnonzero(keep)]).all()
        chunks = list(cells.iter_chunks(chunk_rows=4))
    assert [b - a for a, b, _ in chunks] == [4] * (keep.sum() // 4) + ([keep.sum() % 4] if keep.sum() % 4 else [])
    got = sp.vstack([c for *_, c in chunks]).toarray()
    np.testing.assert_array_equal(got, stored_csr(X)[keep].toarray())


def test_canonical_schema_mapping(tmp_path):
    X = counts_matrix(14, n_obs=12, n_vars=5, explicit_zeros=False)
    path = write_cells(tmp_path, X)
    with open_cells(path, schema=SCHEMA) as cells:
        assert "perturbation" not in cells.obs.columns
        assert list(cells.obs["target_gene"][:4]) == ["non-targeting", "A", "B", "C"]
        assert cells.obs["target_gene"].dtype == object
        assert list(cells.var_names) == [f"G{j}" for j in range(5)]
        assert list(cells.var["gene_id"]) == [f"ENSG{j:011d}" for j in range(5)]
        assert cells.scale == "counts"
    # filter on a list of values, and a mapping filter, give the same cells
    a = open_cells(path, schema=dict(SCHEMA, cell_filter="perturbation in ['A', 'ctrl']"))
    b = open_cells(path, schema=dict(SCHEMA, cell_filter={"perturbation": ["A", "ctrl"]}))
    assert list(a.obs.index) == list(b.obs.index) and a.n_obs == 6
    a.close(), b.close()


def test_schema_errors(tmp_path):
    X = counts_matrix(15, n_obs=12, n_vars=5, explicit_zeros=False)
    path = write_cells(tmp_path, X)
    with pytest.raises(TranspertInputError, match=r"cells.h5ad.*'target'.*not in obs"):
        open_cells(path, schema=dict(SCHEMA, pert_col="target"))
    with pytest.raises(TranspertInputError, match=r"cells.h5ad.*'nope'.*not in var"):
        open_cells(path, schema=dict(SCHEMA, gene_symbols="nope"))
    with pytest.raises(TranspertInputError, match=r"'condition' not in obs"):
        open_cells(path, schema=dict(SCHEMA, cell_filter='condition == "stim"'))
    with pytest.raises(TranspertInputError, match="keeps no cells"):
        open_cells(path, schema=dict(SCHEMA, cell_filter='context == "z"'))
    with pytest.raises(TranspertInputError, match="each clause"):
        Schema(cell_filter="__import__('os').system('true')")
    with pytest.raises(TranspertInputError, match="unknown schema field"):
        Schema.from_dict({"pert_column": "x"})
    with pytest.raises(TranspertInputError, match="no such file"):
        open_cells(tmp_path / "missing.h5ad")


def test_duplicate_symbols(tmp_path):
    X = counts_matrix(16, n_obs=8, n_vars=4, explicit_zeros=False)
    var = pd.DataFrame({"symbol": ["A", "B", "A", "A"]}, index=[f"ENSG{j}" for j in range(4)])
    path = write_cells(tmp_path, X, var=var)
    with pytest.raises(TranspertInputError, match=r"duplicate gene name.*\['A'\]"):
        open_cells(path, schema=SCHEMA)
    with open_cells(path, schema=dict(SCHEMA, duplicate_genes="make_unique")) as cells:
        assert list(cells.var_names) == ["A", "B", "A-1", "A-2"]
        assert list(cells.var["gene_id"]) == ["ENSG0", "ENSG1", "ENSG2", "ENSG3"]


def test_layer_and_in_memory_sources(tmp_path):
    X = counts_matrix(17, n_obs=20, n_vars=6)
    logged = sp.csr_matrix(np.log1p(X.toarray()))
    path = write_cells(tmp_path, logged, layers={"counts": X})
    with open_cells(path, schema=dict(SCHEMA, matrix="layers/counts")) as cells:
        np.testing.assert_array_equal(sp.vstack([c for *_, c in cells.iter_chunks(3)]).toarray(), X.toarray())
    adata = ad.read_h5ad(path)
    mem = open_cells(adata, schema=dict(SCHEMA, matrix="layers/counts"))
    assert isinstance(mem, CellSource) and mem.path is None
    np.testing.assert_array_equal(sp.vstack([c for *_, c in mem.iter_chunks(6)]).toarray(), X.toarray())
    backed = ad.read_h5ad(path, backed="r")
    with open_cells(backed, schema=SCHEMA) as cells:
        assert cells.path == path and cells.scale == "log1p"
    backed.file.close()


# ---------------------------------------------------------------- the real files, by mapping
DATLINGER_SCHEMA = {"pert_col": "target", "control_label": "control", "guide_col": "perturbation",
                    "context_col": "condition", "counts": True}


@pytest.mark.parametrize("condition, n_cells, n_controls", [("stimulated", 3859, 140),
                                                            ("unstimulated", 3641, 60)])
def test_real_datlinger_contexts(test_data_dir, condition, n_cells, n_controls):
    schema = dict(DATLINGER_SCHEMA, cell_filter=f'condition == "{condition}"')
    with open_cells(test_data_dir / DATLINGER, schema=schema) as cells:
        assert cells.shape == (n_cells, 2000)
        labels = cells.obs["target_gene"]
        assert (labels == "non-targeting").sum() == n_controls
        assert labels.nunique() == 21  # 20 targets + controls
        assert (cells.obs["condition"] == condition).all()
        # chunked read equals anndata's own read of the same cells
        got = sp.vstack([c for *_, c in cells.iter_chunks(chunk_rows=500)]).toarray()
    ref = ad.read_h5ad(test_data_dir / DATLINGER)
    ref = ref[ref.obs["condition"] == condition]
    np.testing.assert_array_equal(got, ref.X.toarray())
    assert list(cells.var_names) == list(ref.var_names)


def test_real_papalexi(test_data_dir):
    schema = {"pert_col": "target", "control_label": "non-targeting", "guide_col": "grna",
              "batch_col": "bio_rep"}
    adata = read_cells(test_data_dir / PAPALEXI, schema=schema)
    assert adata.shape == (20729, 299)
    assert (adata.obs["target_gene"] == "non-targeting").sum() == 2386
    assert adata.obs["target_gene"].nunique() == 26
    ref = ad.read_h5ad(test_data_dir / PAPALEXI)
    np.testing.assert_array_equal(adata.X.toarray(), ref.X.toarray())
    # the knockdown the provenance reports: STAT1 mean 2.81 UMI in STAT1 cells vs 12.79 in controls
    stat1 = adata[:, "STAT1"].X.toarray().ravel()
    labels = adata.obs["target_gene"].to_numpy()
    assert stat1[labels == "STAT1"].mean() == pytest.approx(2.81, abs=0.01)
    assert stat1[labels == "non-targeting"].mean() == pytest.approx(12.79, abs=0.01)


def test_real_datlinger_streamed_log1p_matches_scanpy_on_the_context(test_data_dir):
    # the median library size is the filtered context's own, as scanpy on that subset
    import scanpy as sc

    with open_cells("datlinger_jurkat_unstimulated") as cells:
        got = sp.vstack([c for *_, c in cells.iter_log1p_chunks(chunk_rows=700)]).toarray()
    ref = ad.read_h5ad(test_data_dir / DATLINGER)
    ref = ref[ref.obs["condition"] == "unstimulated"].copy()
    sc.pp.normalize_total(ref, target_sum=None)
    sc.pp.log1p(ref)
    np.testing.assert_allclose(got, ref.X.toarray(), rtol=0, atol=1e-6)
