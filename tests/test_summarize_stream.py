"""Summaries written to their file block of perturbation rows by block (``summarize(..., out=)``,
``transpert summarize -o``): the file equals ``write_summary`` of the in-memory summary, element
by element and bit for bit, on awkward data; the table-wide FDR computed from row blocks equals
the whole table's."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy.stats import false_discovery_control

from helpers_summaries import assert_same_h5, awkward_cells
from transpert.summarize import _profile_rows, _writer, bh_fdr, read_summary, summarize, write_summary


def _reference_file(source, path, **kw):
    """What the summary file was before streaming: the in-memory summary, written whole."""
    write_summary(summarize(source, **kw), path)
    return path


@pytest.mark.parametrize("scale,dense,kw", [
    ("counts", False, {}),
    ("log1p", False, {}),
    ("counts", True, {}),
    ("counts", False, {"fdr": "table", "log2fc": "clipped"}),
    ("log1p", False, {"reference": "P3"}),
    ("counts", False, {"de": False}),
    ("counts", False, {"reference": "rest"}),
])
def test_file_equals_write_summary(tmp_path, monkeypatch, scale, dense, kw):
    cells = tmp_path / "cells.h5ad"
    awkward_cells(scale, dense=dense).write_h5ad(cells)
    expected = _reference_file(str(cells), tmp_path / "whole.h5ad", **kw)
    # rows computed and written a few at a time: blocks of 3 rows (8 perturbations)
    monkeypatch.setattr(_writer, "BLOCK_BYTES", 3 * _profile_rows.ProfileLayout(True, True, True).row_bytes(37))
    out = summarize(str(cells), out=tmp_path / "streamed.h5ad", **kw)
    assert out == tmp_path / "streamed.h5ad"
    assert_same_h5(expected, out)
    assert read_summary(out).n_obs == (7 if kw.get("reference") == "P3" else 8)


def test_in_memory_anndata_to_a_file(tmp_path):
    adata = awkward_cells("counts", seed=4)
    expected = _reference_file(adata, tmp_path / "whole.h5ad", threads=2)
    out = summarize(adata, out=str(tmp_path / "streamed.h5ad"), threads=2)
    assert_same_h5(expected, out)


def test_cli_writes_the_same_file(tmp_path):
    from transpert.cli import main

    cells = tmp_path / "cells.h5ad"
    awkward_cells("log1p", seed=0).write_h5ad(cells)
    expected = _reference_file(str(cells), tmp_path / "whole.h5ad", fdr="table")
    assert main(["summarize", str(cells), "-o", str(tmp_path / "cli.h5ad"), "--fdr", "table",
                 "--no-progress"]) == 0
    assert_same_h5(expected, tmp_path / "cli.h5ad")


def test_failure_leaves_nothing_at_the_path(tmp_path, monkeypatch):
    cells = tmp_path / "cells.h5ad"
    awkward_cells("counts").write_h5ad(cells)
    monkeypatch.setattr(_writer, "BLOCK_BYTES", 1)  # one row per block
    calls = []
    original = _writer.layer_rows

    def fail_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return original(*args, **kwargs)

    monkeypatch.setattr(_writer, "layer_rows", fail_on_third)
    with pytest.raises(RuntimeError, match="disk full"):
        summarize(str(cells), out=tmp_path / "out.h5ad")
    assert sorted(os.listdir(tmp_path)) == ["cells.h5ad"]  # no file, no temporary left


@pytest.mark.parametrize("step", [1, 7, 1 << 22])
def test_table_fdr_from_row_blocks_equals_the_whole_table(monkeypatch, step):
    rng = np.random.default_rng(1)
    p = np.round(rng.random((23, 41)) ** 3, 3)  # many ties, exact zeros
    p[rng.random(p.shape) < 0.1] = np.nan
    p[0, :5] = 1.0
    monkeypatch.setattr(_profile_rows, "Q_STEP", step)
    table = _profile_rows.TableFDR.from_blocks(p[a:a + 5] for a in range(0, 23, 5))
    got = np.vstack([table(p[a:a + 4]) for a in range(0, 23, 4)])
    whole = bh_fdr(p, "table")
    assert np.array_equal(got, whole, equal_nan=True)  # bit for bit
    ok = ~np.isnan(p)
    np.testing.assert_allclose(got[ok], false_discovery_control(p[ok]), rtol=1e-14, atol=0)
    assert np.isnan(got[~ok]).all()


def test_read_input_writes_the_summary_to_out(tmp_path):
    """A method's input written to a summary file: cells (a file or in memory) summarised into it
    block by block, a summary file copied as it is, a summary in memory written."""
    import filecmp

    from transpert.summarize import read_input

    cells = tmp_path / "cells.h5ad"
    adata = awkward_cells("counts", seed=2)
    adata.write_h5ad(cells)
    expected = _reference_file(str(cells), tmp_path / "whole.h5ad")
    path, source = read_input(str(cells), what="cells", out=tmp_path / "from_file.h5ad")
    assert path == tmp_path / "from_file.h5ad" and source == str(cells)
    assert_same_h5(expected, path)
    path, source = read_input(adata, what="cells", out=tmp_path / "from_memory.h5ad")
    assert source is adata  # the record of an in-memory source has no file: its own reference
    assert_same_h5(_reference_file(adata, tmp_path / "memory_whole.h5ad"), path)
    path, source = read_input(str(expected), what="summary", out=tmp_path / "copied.h5ad")
    assert source is None and filecmp.cmp(expected, path, shallow=False)
    summary = read_summary(expected)
    # read as it is, the record comes back a dict, as read_summary gives it (zero-shot reads it)
    as_is, _ = read_input(str(expected), what="summary")
    assert as_is.uns["transpert"] == summary.uns["transpert"] and isinstance(summary.uns["transpert"], dict)
    path, source = read_input(summary, what="summary", out=tmp_path / "written.h5ad")
    again = read_summary(path)
    assert source is None and list(again.obs_names) == list(summary.obs_names)
    for name in summary.layers:
        np.testing.assert_array_equal(again.layers[name], summary.layers[name])
