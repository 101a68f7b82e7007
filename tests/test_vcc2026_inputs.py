"""vcc2026 input rules (cell-eval2's preset refuses these): negative, fractional or non-finite
counts, a cell above 1e6 counts, a gene axis or panel that differs from the real file's; the
CLI turns each into one sentence and exit code 2. Also: streamed results do not depend on the
row-chunk size, and the CLI writes cell-eval2's tables plus suite.json."""

from __future__ import annotations

import json
import os

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from transpert._errors import TranspertInputError
from transpert.cli import main
from transpert.evaluate.vcc2026 import evaluate_vcc2026, run_metrics, summarize_real
from test_vcc2026_parity import COL, FIX


def _pair(tmp_path, edit):
    real = ad.read_h5ad(os.path.join(FIX, "real.h5ad"))
    pred = real.copy()
    X = pred.X.toarray()
    pred = edit(pred, X)
    path = tmp_path / "pred.h5ad"
    pred.write_h5ad(path)
    return os.path.join(FIX, "real.h5ad"), str(path)


def _set(i, j, v):
    def edit(a, X):
        X[i, j] = v
        a.X = sp.csr_matrix(X)
        return a
    return edit


@pytest.mark.parametrize("edit, words", [
    (_set(3, 5, -1.0), "negative"),
    (_set(3, 5, 0.5), "non-integral"),
    (_set(3, 5, np.nan), "NaN"),
    (_set(3, 5, 2e6), "above the vcc2026 limit"),
    (lambda a, X: a[:, ::-1].copy(), "another order"),
    (lambda a, X: a[a.obs[COL] != "GENE002"].copy(), "perturbation labels differ"),
])
def test_refused_inputs(tmp_path, edit, words):
    real, pred = _pair(tmp_path, edit)
    with pytest.raises(TranspertInputError, match=words):
        evaluate_vcc2026(pred, real, pert_col=COL)
    code = main(["evaluate", "--suite", "vcc2026", "--real", real, "--pred", pred,
                 "--pert-col", COL, "-o", str(tmp_path / "out")])
    assert code == 2
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bad_index", [-1, 10**6])
def test_corrupt_column_index_is_refused(tmp_path, bad_index):
    """A stored column index outside the genes (a corrupt CSR matrix) is refused with its cell
    before any kernel trusts it."""
    import shutil

    import h5py

    real = os.path.join(FIX, "real.h5ad")
    pred = tmp_path / "pred.h5ad"
    shutil.copy(os.path.join(FIX, "mixed_pred.h5ad"), pred)
    with h5py.File(pred, "r+") as f:
        start = int(f["X/indptr"][200])
        f["X/indices"][start] = bad_index
    with pytest.raises(TranspertInputError, match="cell 200 has a column index outside"):
        evaluate_vcc2026(str(pred), real, pert_col=COL)


def test_chunk_size_does_not_matter():
    real = summarize_real(os.path.join(FIX, "real.h5ad"), pert_col=COL, chunk_rows=1000)
    a = run_metrics(real, os.path.join(FIX, "mixed_pred.h5ad"), pert_col=COL, chunk_rows=1000)
    real = summarize_real(os.path.join(FIX, "real.h5ad"), pert_col=COL, chunk_rows=7)
    b = run_metrics(real, os.path.join(FIX, "mixed_pred.h5ad"), pert_col=COL, chunk_rows=7)
    pd.testing.assert_frame_equal(a, b, rtol=1e-13)


def test_group_reads_equal_row_chunks(tmp_path):
    """A grouped file is read group by group (chunk_rows None); the results equal those of
    row chunks bit for bit, and a file whose groups are split over several runs of rows (here:
    cells shuffled) takes the chunk path and gives the same numbers."""
    real_path, pred_path = os.path.join(FIX, "real.h5ad"), os.path.join(FIX, "mixed_pred.h5ad")
    real = summarize_real(real_path, pert_col=COL)
    a = run_metrics(real, pred_path, pert_col=COL)
    real_chunks = summarize_real(real_path, pert_col=COL, chunk_rows=53)
    b = run_metrics(real_chunks, pred_path, pert_col=COL, chunk_rows=53)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert np.array_equal(real.side.jk, real_chunks.side.jk)
    pred = ad.read_h5ad(pred_path)
    order = np.random.default_rng(0).permutation(pred.n_obs)
    shuffled = tmp_path / "shuffled.h5ad"
    pred[order].copy().write_h5ad(shuffled)
    c = run_metrics(real, str(shuffled), pert_col=COL)
    pd.testing.assert_frame_equal(a, c, rtol=1e-12)


@pytest.mark.parametrize("where", ["last", "middle"])
def test_control_anywhere_in_a_grouped_file(tmp_path, where):
    """The real control is built on a worker while the perturbations are summarised; groups
    that come before it wait for it to be tested. Results equal those of the file as given."""
    real_path, pred_path = os.path.join(FIX, "real.h5ad"), os.path.join(FIX, "mixed_pred.h5ad")
    want = run_metrics(summarize_real(real_path, pert_col=COL), pred_path, pert_col=COL)
    real = ad.read_h5ad(real_path)
    labels = real.obs[COL].astype(str).to_numpy()
    is_control = labels == "non-targeting"
    assert is_control[0] and is_control.sum() == 120  # the fixture's control comes first
    others = np.flatnonzero(~is_control)
    cut = others.size if where == "last" else others.size // 2
    order = np.r_[others[:cut], np.flatnonzero(is_control), others[cut:]]
    moved = tmp_path / "real.h5ad"
    real[order].copy().write_h5ad(moved)
    got = run_metrics(summarize_real(str(moved), pert_col=COL), pred_path, pert_col=COL)
    pd.testing.assert_frame_equal(want, got, check_exact=True)


@pytest.mark.timeout(120)
def test_an_error_building_the_control_reaches_the_caller(monkeypatch):
    """The real control is built on a worker while the reading thread goes on (and stops once
    enough passes wait for it): an error there is raised to the caller, with no hang."""
    import time

    from transpert.evaluate.vcc2026 import _stats

    def failing(*args, **kwargs):
        time.sleep(0.5)  # the perturbations' passes pile up meanwhile
        raise RuntimeError("control build failed")

    monkeypatch.setattr(_stats.Control, "from_pass", failing)
    with pytest.raises(RuntimeError, match="control build failed"):
        summarize_real(os.path.join(FIX, "real.h5ad"), pert_col=COL)


def test_read_cells_with_and_without_a_cell_filter(tmp_path):
    """CellSource.read_cells gives the rows [start, stop) of obs, after a cell filter too."""
    from transpert.data import open_cells
    from transpert.data.schema import Schema

    X = sp.random(40, 9, density=0.4, format="csr", random_state=1, dtype=np.float32)
    obs = pd.DataFrame({COL: ["a", "b"] * 20}, index=[f"c{i}" for i in range(40)])
    path = tmp_path / "x.h5ad"
    ad.AnnData(X, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(9)])).write_h5ad(path)
    with open_cells(path) as cells:
        assert np.array_equal(cells.read_cells(5, 17).toarray(), X[5:17].toarray())
        with pytest.raises(TranspertInputError, match="outside"):
            cells.read_cells(30, 41)
    schema = Schema(pert_col=COL, cell_filter={COL: ["b"]})
    with open_cells(path, schema=schema) as cells:
        kept = X[1::2].toarray()
        assert np.array_equal(cells.read_cells(3, 9).toarray(), kept[3:9])
        assert cells.read_cells(4, 4).shape == (0, 9)


def test_cli_writes_cell_eval2_tables(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["evaluate", "--suite", "vcc2026", "--real", os.path.join(FIX, "real.h5ad"),
                 "--pred", os.path.join(FIX, "mixed_pred.h5ad"), "--pert-col", COL,
                 "--real-bundle", os.path.join(FIX, "..", "expected", "bundle"),
                 "-o", str(out)]) == 0
    assert "avg_score 0.8401" in capsys.readouterr().out
    assert json.loads((out / "suite.json").read_text())["suite"] == "vcc2026"
    agg = pd.read_csv(out / "agg_results.csv")
    assert list(agg.statistic) == ["count", "null_count", "mean", "std", "min", "max", "median"]
    code = main(["evaluate", "--real", os.path.join(FIX, "real.h5ad"), "--pred",
                 os.path.join(FIX, "mixed_pred.h5ad"), "--anchor", "-o", str(tmp_path / "x")])
    assert code == 2  # --anchor belongs to the vcc2026 suite


def test_late_bad_value_is_reported_while_groups_are_being_scored(tmp_path):
    """A bad value in the last block is refused with its own message even though earlier
    groups are already being summarised side by side (the workers' jobs end quietly)."""
    real, pred = _pair(tmp_path, _set(-1, 5, -1.0))
    with pytest.raises(TranspertInputError, match="negative"):
        evaluate_vcc2026(pred, real, pert_col=COL, chunk_rows=7)
