"""Messages a new user meets: they name what the user gave (the column, the label, the value) and
say it once, with the control label visible however many labels a file has."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from _evaluate_synth import make_pair
from transpert.cli import main
from transpert.data.labels import label_counts, label_overview, looks_like_control


def _run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("messages")
    real, _ = make_pair(5, n_perts=6, n_genes=20, cells=12, ctrl_cells=30)
    real.write_h5ad(d / "real.h5ad")
    # a Datlinger-like file: column 'target', 20 perturbations listed before 'control' in
    # alphabetical order and more frequent, so a shortened list of either kind used to hide it
    rng = np.random.default_rng(0)
    labels = np.repeat([f"A{i:02d}" for i in range(20)], 12).tolist() + ["control"] * 10
    X = rng.poisson(2.0, size=(len(labels), 20)).astype(np.float32)
    many = ad.AnnData(sp.csr_matrix(X), obs=pd.DataFrame({"target": labels},
                                                         index=[f"c{i}" for i in range(len(labels))]),
                      var=pd.DataFrame(index=[f"G{i}" for i in range(20)]))
    many.write_h5ad(d / "many.h5ad")
    pd.DataFrame({"target_gene": ["G1", "G2"], "n_cells": [3, 0]}).to_csv(d / "zero.csv", index=False)
    return {"real": d / "real.h5ad", "many": d / "many.h5ad", "zero": d / "zero.csv", "dir": d}


@pytest.mark.parametrize("command", ["summarize", "evaluate"])
def test_control_not_found_names_the_column_given_and_shows_the_control(files, tmp_path, capsys, command):
    many = files["many"]
    argv = (["summarize", many, "-o", tmp_path / "s.h5ad"] if command == "summarize" else
            ["evaluate", "--real", many, "--pred", many, "-o", tmp_path / "ev", "--n-boot", "0"])
    code, _, err = _run(argv + ["--pert-col", "target", "--threads", "1"], capsys)
    assert code == 2
    assert "obs['target']" in err and "target_gene" not in err, err
    assert "'control' (10 cells)" in err, err  # the real control label is shown, with its cells
    assert "and 13 more labels" in err, err  # 8 most frequent shown of 21
    assert "--control control" in err, err


@pytest.mark.parametrize("command", ["summarize", "evaluate"])
def test_control_given_wrong_on_a_non_targeting_file(files, tmp_path, capsys, command):
    real = files["real"]
    argv = (["summarize", real, "-o", tmp_path / "s.h5ad"] if command == "summarize" else
            ["evaluate", "--real", real, "--pred", real, "-o", tmp_path / "ev", "--n-boot", "0"])
    code, _, err = _run(argv + ["--control", "control", "--threads", "1"], capsys)
    assert code == 2
    assert "control label 'control' not found in obs['target_gene']" in err, err
    assert "'non-targeting' (30 cells)" in err and "--control non-targeting" in err, err
    assert "besides" not in err, err


def test_two_control_groups_are_called_ambiguous(files, tmp_path, capsys):
    a = ad.read_h5ad(files["real"])
    labels = a.obs["target_gene"].astype(str).to_numpy().copy()
    labels[labels == "G1"] = "control"
    a.obs["target_gene"] = labels
    path = tmp_path / "two_controls.h5ad"
    a.write_h5ad(path)
    code, _, err = _run(["summarize", path, "-o", tmp_path / "s.h5ad", "--control", "control",
                         "--threads", "1"], capsys)
    assert code == 2
    assert "12 cells labelled 'control'" in err and "30 labelled 'non-targeting'" in err, err
    assert "ambiguous" in err


def test_a_zero_in_the_counts_table_prints_as_zero(files, tmp_path, capsys):
    code, _, err = _run(["predict", "--method", "cell-mean", "--reference", files["real"],
                         "--target-train", files["real"], "--counts", files["zero"],
                         "-o", tmp_path / "p.h5ad", "--threads", "1"], capsys)
    assert code == 2
    assert "'G2' has 0" in err, err
    assert "np.int64" not in err and "np.float64" not in err, err


def test_evaluate_says_the_missing_column_once(files, tmp_path, capsys):
    real = files["real"]
    code, _, err = _run(["evaluate", "--real", real, "--pred", real, "-o", tmp_path / "ev",
                         "--n-boot", "0", "--pert-col", "guide", "--threads", "1"], capsys)
    assert code == 2
    assert err.count("perturbation column 'guide' not in obs") == 1, err
    assert err.count("columns:") == 1 and "--pert-col" in err, err


def test_label_overview_by_hand():
    counts = label_counts(["b", "a", "a", "NTC", "", None, "c", "c", "c"])
    assert list(counts.index) == ["c", "a", "NTC", "b"]  # by cells, then by label
    assert label_overview(counts, shown=2) == (
        "'c' (3 cells), 'a' (2) and 2 more labels; looks like a control: 'NTC' (1 cell)")
    assert [looks_like_control(x) for x in ("non-targeting", "sgNTC-3", "CTRL", "NT5E", "NEGR1", "safe_targeting")] \
        == [True, True, True, False, False, True]


@pytest.fixture(scope="module")
def one_cell(tmp_path_factory) -> Path:
    """The synthetic real file with perturbation G1 reduced to a single cell."""
    real, _ = make_pair(5, n_perts=6, n_genes=20, cells=12, ctrl_cells=30)
    labels = real.obs["target_gene"].astype(str).to_numpy()
    keep = (labels != "G1") | (np.cumsum(labels == "G1") == 1)
    path = tmp_path_factory.mktemp("one_cell") / "one_cell.h5ad"
    real[keep].copy().write_h5ad(path)
    return path


@pytest.mark.parametrize("min_cells, flagged", [(None, ["G1"]), (13, None), (1, [])])
def test_perturbations_with_few_cells_are_flagged_and_named(one_cell, tmp_path, capsys, caplog,
                                                           min_cells, flagged):
    import anndata

    out = tmp_path / "s.h5ad"
    extra = [] if min_cells is None else ["--min-cells", min_cells]
    caplog.set_level("WARNING")
    code, stdout, _ = _run(["summarize", one_cell, "-o", out, "--threads", "1", *extra], capsys)
    assert code == 0
    s = anndata.read_h5ad(out)
    n = s.obs["n_cells"]
    expected = list(n.index[n < (min_cells or 3)]) if flagged is None else flagged
    assert list(s.obs.index[s.obs["few_cells"].to_numpy(bool)]) == expected
    assert n["G1"] == 1 and (flagged is not None or len(expected) == len(n))  # 13: every group
    warned = [r.getMessage() for r in caplog.records if "few_cells" in r.getMessage()]
    if expected:
        assert len(warned) == 1 and "G1 (1)" in warned[0] and f"fewer than {min_cells or 3} cells" in warned[0]
        assert f"{len(expected)} flagged in obs['few_cells']" in stdout
    else:
        assert not warned and "flagged" not in stdout
    meta = s.uns["transpert"]
    meta = __import__("json").loads(meta) if isinstance(meta, str) else meta
    assert meta["min_cells"] == (min_cells or 3)


def test_min_cells_must_be_positive(one_cell, tmp_path, capsys):
    code, _, err = _run(["summarize", one_cell, "-o", tmp_path / "s.h5ad", "--min-cells", "0"], capsys)
    assert code == 2 and "min_cells must be a whole number >= 1, got 0" in err
    assert not (tmp_path / "s.h5ad").exists()


def test_prep_warns_when_the_gene_count_is_not_the_expected_one(tmp_path, capsys, caplog):
    _, pred = make_pair(5, n_perts=6, n_genes=20, cells=12, ctrl_cells=30, log1p=True)
    pred.write_h5ad(tmp_path / "pred.h5ad")
    pd.Series(pred.var_names).to_csv(tmp_path / "genes.csv", index=False, header=False)
    caplog.set_level("WARNING")
    code, _, _ = _run(["prep", tmp_path / "pred.h5ad", "--genes", tmp_path / "genes.csv",
                       "-o", tmp_path / "sub.vcc", "--expected-gene-dim", "18080"], capsys)
    assert code == 0 and (tmp_path / "sub.vcc").exists()
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("has 20 genes but --expected-gene-dim is 18080" in w for w in warned), warned
    caplog.clear()
    code, _, _ = _run(["prep", tmp_path / "pred.h5ad", "--genes", tmp_path / "genes.csv",
                       "-o", tmp_path / "sub2.vcc", "--expected-gene-dim", "20"], capsys)
    assert code == 0 and not [r for r in caplog.records if "expected-gene-dim" in r.getMessage()]
