"""``prep`` reads a prediction in row chunks and writes what ``cell-eval prep`` 0.8.2 writes.

Reference: cell-eval's own ``strip_anndata`` on the whole file in memory. The h5ad inside each
``.vcc`` is compared value for value (X bit for bit, obs, genes). Chunks of 7 rows make every
file span several chunks, with a ragged last one.
"""

from __future__ import annotations

import shutil

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from _evaluate_synth import CONTROL, make_pair, unpack_vcc
from transpert._errors import TranspertInputError
from transpert.evaluate import prep

pytestmark = pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd command needed")
strip_anndata = pytest.importorskip("cell_eval._cli._prep").strip_anndata


def _prediction(kind: str) -> ad.AnnData:
    _, pred = make_pair(3, log1p=kind == "log1p")
    pred.obs["celltype"] = np.where(np.arange(pred.n_obs) % 2, "H1", "K562")
    if kind == "int-csc":
        pred.X = sp.csc_matrix(pred.X.astype(np.int64))
    elif kind == "dense":
        pred.X = pred.X.toarray()
    elif kind == "explicit-zeros":
        X = sp.csr_matrix(pred.X)
        X.data[::5] = 0.0  # stored zeros stay stored, as in cell-eval's copy
        pred.X = X
    return pred


@pytest.mark.parametrize("kind", ["counts", "log1p", "int-csc", "dense", "explicit-zeros"])
@pytest.mark.parametrize("encoding", [32, 64])
def test_prep_equals_cell_eval_prep(tmp_path, kind, encoding):
    pred = _prediction(kind)
    pred.write_h5ad(tmp_path / "pred.h5ad")
    genes = list(pred.var_names[::-1])  # prep must reorder to the gene list's order
    out = prep(tmp_path / "pred.h5ad", genes, tmp_path / "mine.vcc", celltype_col="celltype",
               encoding=encoding, chunk_rows=7, show_progress=False)
    strip_anndata(ad.read_h5ad(tmp_path / "pred.h5ad"), output_path=str(tmp_path / "ce.vcc"),
                  genelist=genes, celltype_col="celltype", encoding=encoding)
    mine, ce = unpack_vcc(out, tmp_path / "m"), unpack_vcc(tmp_path / "ce.vcc", tmp_path / "c")
    assert list(mine.var_names) == list(ce.var_names) == genes
    assert list(mine.obs_names) == list(ce.obs_names)
    pd.testing.assert_frame_equal(mine.obs.astype(str), ce.obs.astype(str))
    assert sp.issparse(mine.X) and mine.X.format == "csr"
    assert mine.X.dtype == ce.X.dtype == (np.float32 if encoding == 32 else np.float64)
    np.testing.assert_array_equal(mine.X.indptr, ce.X.indptr)
    np.testing.assert_array_equal(mine.X.indices, ce.X.indices)
    np.testing.assert_array_equal(mine.X.data, ce.X.data)  # bit for bit, stored zeros included


def test_prep_of_an_anndata_and_of_its_file_agree(tmp_path):
    pred = _prediction("counts")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    genes = list(pred.var_names)
    a = unpack_vcc(prep(pred, genes, tmp_path / "a.vcc", chunk_rows=5, show_progress=False), tmp_path / "a")
    b = unpack_vcc(prep(tmp_path / "pred.h5ad", genes, show_progress=False), tmp_path / "b")
    assert (tmp_path / "pred.prep.vcc").exists()  # the default output name
    np.testing.assert_array_equal(a.X.toarray(), b.X.toarray())


def test_prep_reads_the_file_in_chunks(tmp_path, monkeypatch):
    """Never more than ``chunk_rows`` rows from the file at a time, each row read twice (check,
    then write)."""
    from transpert.data import read as read_module

    pred = _prediction("counts")
    pred.write_h5ad(tmp_path / "pred.h5ad")
    spans = []
    original = read_module.H5Matrix.read_rows

    def spy(self, start, stop):
        spans.append((start, stop))
        return original(self, start, stop)

    monkeypatch.setattr(read_module.H5Matrix, "read_rows", spy)
    prep(tmp_path / "pred.h5ad", list(pred.var_names), tmp_path / "o.vcc", chunk_rows=11,
         show_progress=False)
    assert max(stop - start for start, stop in spans) <= 11
    rows_read = np.zeros(pred.n_obs, dtype=int)
    for start, stop in spans:
        rows_read[start:stop] += 1
    assert (rows_read == 2).all()


def test_prep_errors(tmp_path):
    pred = _prediction("log1p")
    genes = list(pred.var_names)
    kw = {"show_progress": False, "chunk_rows": 7}
    big = pred.copy()
    big.X = big.X.copy()
    big.X.data[-1] = 20.5  # fractional data beyond log1p's range: mixed scales
    with pytest.raises(TranspertInputError, match=">= 15"):
        prep(big, genes, tmp_path / "x.vcc", **kw)
    neg = pred.copy()
    neg.X = neg.X.copy()
    neg.X.data[3] = -0.5
    with pytest.raises(TranspertInputError, match="negative value"):
        prep(neg, genes, tmp_path / "x.vcc", **kw)
    # with allow_discrete the values are kept as they are, as cell-eval does
    prep(big, genes, tmp_path / "kept.vcc", allow_discrete=True, **kw)
    nan = pred.copy()
    nan.X = nan.X.copy()
    nan.X.data[0] = np.nan
    with pytest.raises(TranspertInputError, match="1 NaN"):
        prep(nan, genes, tmp_path / "x.vcc", **kw)
    no_ctrl = pred[pred.obs["target_gene"] != CONTROL].copy()
    with pytest.raises(TranspertInputError, match="must contain control cells"):
        prep(no_ctrl, genes, tmp_path / "x.vcc", **kw)
    with pytest.raises(TranspertInputError, match="genes differ"):
        prep(pred, genes[:-1], tmp_path / "x.vcc", **kw)
    with pytest.raises(TranspertInputError, match="exceed the maximum"):
        prep(pred, genes, tmp_path / "x.vcc", max_cell_dim=10, **kw)
    with pytest.raises(TranspertInputError, match="chunk_rows"):
        prep(pred, genes, tmp_path / "x.vcc", chunk_rows=0, show_progress=False)
    with pytest.raises(TranspertInputError, match="no such file"):
        prep(tmp_path / "missing.h5ad", genes, tmp_path / "x.vcc")
    assert not (tmp_path / "x.vcc").exists()
