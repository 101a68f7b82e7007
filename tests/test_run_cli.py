"""The command line: `transpert predict` (one and two steps), `transpert fit`, `transpert run`."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from transpert._errors import TranspertInputError
from transpert.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small simulated atlas written as files: two references, target train / held-out cells."""
    from transpert.data.simulate import simulate_atlas

    d = tmp_path_factory.mktemp("cli")
    atlas = simulate_atlas(seed=3, n_reference_lines=2, similarity=(0.8, 0.3), n_genes=200,
                           n_perturbations=16, cells_per_perturbation=30, n_control_cells=120)
    refs = {}
    for name in atlas.reference_lines:
        refs[name] = d / f"{name}.h5ad"
        atlas.lines[name].write_h5ad(refs[name])
    target = atlas.lines[atlas.target_line]
    labels = target.obs["target_gene"].astype(str).to_numpy()
    perts = sorted(set(labels) - {"non-targeting"})
    held = perts[:5]
    ctrl = np.flatnonzero(labels == "non-targeting")
    real_ctrl = np.zeros(len(labels), bool)
    real_ctrl[ctrl[::2]] = True
    train = target[~np.isin(labels, held) & ~real_ctrl].copy()
    real = target[np.isin(labels, held) | real_ctrl].copy()
    train.write_h5ad(d / "train.h5ad")
    real.write_h5ad(d / "real.h5ad")
    counts = pd.DataFrame({"target_gene": held, "n_cells": [20, 25, 30, 20, 22]})
    counts.to_csv(d / "counts.csv", index=False)
    return {"dir": d, "refs": refs, "train": d / "train.h5ad", "real": d / "real.h5ad",
            "counts": d / "counts.csv", "held": held, "genes": list(target.var_names), "train_adata": train}


def _check_prediction(path, files, n_controls):
    pred = ad.read_h5ad(path)
    assert list(pred.var_names) == files["genes"]
    assert pred.X.dtype == np.float32 and sp.issparse(pred.X) and pred.X.data.max() < 15
    n = pred.obs["target_gene"].value_counts()
    assert [n[p] for p in files["held"]] == [20, 25, 30, 20, 22]
    assert n["non-targeting"] == n_controls
    return pred


@pytest.mark.parametrize("method", ["cell-mean", "reference-mean", "linear-transfer"])
def test_predict_one_step_from_cells(files, tmp_path, method, capsys):
    refs = [f"{k}={v}" for k, v in files["refs"].items()]
    rc = main(["predict", "--method", method, "--reference", *refs, "--target-train", str(files["train"]),
               "--counts", str(files["counts"]), "-o", str(tmp_path / "p.h5ad"),
               "--pseudobulk", str(tmp_path / "pb.h5ad")])
    assert rc == 0, capsys.readouterr().err
    n_ctrl = int((files["train_adata"].obs["target_gene"] == "non-targeting").sum())
    _check_prediction(tmp_path / "p.h5ad", files, n_ctrl)
    pb = ad.read_h5ad(tmp_path / "pb.h5ad")
    assert list(pb.obs_names) == files["held"]
    if method == "cell-mean":
        # the pseudo-bulk is cell-eval's baseline vector computed from the same training cells
        from cell_eval._baseline import _build_pert_baseline
        import scanpy as sc

        cells = files["train_adata"].copy()
        sc.pp.normalize_total(cells)
        sc.pp.log1p(cells)
        expected = _build_pert_baseline(cells, pert_col="target_gene", control_pert="non-targeting")
        np.testing.assert_allclose(pb.layers["mean"][0], expected, rtol=1e-4, atol=1e-5)
    assert "wrote" in capsys.readouterr().out


def test_fit_then_predict_with_model(files, tmp_path, capsys):
    refs = [str(v) for v in files["refs"].values()]
    assert main(["fit", "--reference", *refs, "--target-train", str(files["train"]), "-o",
                 str(tmp_path / "model")]) == 0
    assert (tmp_path / "model").is_dir()
    assert main(["predict", "--model", str(tmp_path / "model"), "--target-train", str(files["train"]),
                 "--counts", str(files["counts"]), "-o", str(tmp_path / "p.h5ad"), "--max-cells", "150",
                 "--pseudobulk", str(tmp_path / "pb_model.h5ad")]) == 0
    out = capsys.readouterr().out
    assert "scaled by" in out
    assert ad.read_h5ad(tmp_path / "p.h5ad").n_obs <= 150
    # the saved model predicts what a model fitted in one step predicts
    assert main(["predict", "--method", "transpert", "--reference", *refs, "--target-train", str(files["train"]),
                 "--counts", str(files["counts"]), "-o", str(tmp_path / "q.h5ad"),
                 "--pseudobulk", str(tmp_path / "pb_direct.h5ad")]) == 0
    a, b = ad.read_h5ad(tmp_path / "pb_model.h5ad"), ad.read_h5ad(tmp_path / "pb_direct.h5ad")
    np.testing.assert_allclose(a.layers["mean"], b.layers["mean"], rtol=1e-6)


def test_predict_bad_input(files, tmp_path, capsys):
    assert main(["predict", "--method", "nope", "--target-train", str(files["train"]),
                 "--counts", str(files["counts"]), "-o", str(tmp_path / "p.h5ad")]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert main(["predict", "--method", "reference-mean", "--target-train", str(files["train"]),
                 "--counts", str(files["counts"]), "-o", str(tmp_path / "p.h5ad")]) == 2
    assert "reference" in capsys.readouterr().err
    assert main(["predict", "--method", "control", "--target-train", str(tmp_path / "missing.h5ad"),
                 "--counts", str(files["counts"]), "-o", str(tmp_path / "p.h5ad")]) == 2
    assert "missing.h5ad" in capsys.readouterr().err
    assert not (tmp_path / "p.h5ad").exists()


def test_run_config(files, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(
        "output: out\n"
        f"references: {{A: {files['refs']['ref1']}, B: {files['refs']['ref2']}}}\n"
        f"target_train: {files['train']}\n"
        f"counts: {files['counts']}\n"
        f"real: {files['real']}\n"
        "methods: [control, reference-mean, transpert]\n"
        "n_boot: 50\n"
        "seed: 1\n")
    assert main(["run", str(config)]) == 0, capsys.readouterr().err
    out = tmp_path / "out"
    record = json.loads((out / "run.json").read_text())
    assert record["versions"]["cell-eval"] == "0.8.2" and record["config"]["seed"] == 1
    assert (out / "config.yaml").read_text() == config.read_text()
    board = pd.read_csv(out / "leaderboard.csv")
    assert set(board["method"]) == {"control", "reference-mean", "transpert"}
    assert (out / "model" ).is_dir() and (out / "summaries" / "A.h5ad").exists()
    # each stage's seconds, said and recorded; the written summaries keep every layer
    stages = record["timings"]["stages"]
    assert {"summary A", "summary B", "summary target_train", "target controls",
            "fit and predict transpert", "write cells control"} <= set(stages)
    assert all(v >= 0 for v in stages.values()) and sum(stages.values()) <= record["timings"]["total_s"]
    assert {"statistic", "counts_mean"} <= set(ad.read_h5ad(out / "summaries" / "A.h5ad").layers)
    page = (out / "report.html").read_text()  # the leaderboard as a page for a browser
    assert all(f"<code>{m}</code>" in page for m in board["method"])
    # an independent check of one number: control's MAE from the two files with numpy
    import scanpy as sc

    real = ad.read_h5ad(files["real"])
    sc.pp.normalize_total(real)
    sc.pp.log1p(real)
    pred = ad.read_h5ad(out / "predictions" / "control.h5ad")
    mae = np.mean([np.abs(np.asarray(real[real.obs["target_gene"] == p].X.mean(0)).ravel()
                          - np.asarray(pred[pred.obs["target_gene"] == p].X.mean(0), dtype=np.float64).ravel()).mean()
                   for p in files["held"]])
    got = board.set_index("method").loc["control", "mae"]
    assert got == pytest.approx(mae, rel=1e-4)


def test_run_config_errors(tmp_path):
    from transpert.run import read_config

    bad = tmp_path / "bad.yaml"
    bad.write_text("output: o\ntarget_train: t.h5ad\ncounts: c.csv\nmethod: [x]\n")
    with pytest.raises(TranspertInputError, match="unknown keys"):
        read_config(bad)
    bad.write_text("output: o\ntarget_train: t.h5ad\ncounts: c.csv\nmethods: [magic]\n")
    with pytest.raises(TranspertInputError, match="magic"):
        read_config(bad)
    bad.write_text("output: o\ncounts: c.csv\n")
    with pytest.raises(TranspertInputError, match="target_train"):
        read_config(bad)


def test_run_config_on_a_local_cluster(files, tmp_path, capsys):
    """`transpert run --scheduler local:2`: the run's summaries of cells are computed by Dask
    workers, equal to the single machine's."""
    pytest.importorskip("distributed")
    from transpert.summarize import read_summary, summarize

    config = tmp_path / "run.yaml"
    config.write_text(
        "output: out\n"
        f"references: {{A: {files['refs']['ref1']}}}\n"
        f"target_train: {files['train']}\n"
        f"counts: {files['counts']}\n"
        "methods: [reference-mean]\n"
        "scheduler: local:1\n")
    assert main(["run", str(config), "--scheduler", "local:2"]) == 0, capsys.readouterr().err
    out = tmp_path / "out"
    for name, src in (("A", files["refs"]["ref1"]), ("target_train", files["train"])):
        got = read_summary(out / "summaries" / f"{name}.h5ad")
        assert got.uns["transpert"]["engine"]["workers"] == 2  # the option overrides the key
        want = summarize(str(src))
        for layer in want.layers:
            np.testing.assert_array_equal(want.layers[layer], got.layers[layer], err_msg=layer)
