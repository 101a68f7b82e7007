"""Every command that reads files x every bad input: a non-zero exit, one message naming the
file and what is wrong, no traceback, and nothing new or changed where the command writes.

Commands are run in process (``transpert.cli.main``); files are tiny (~300 cells x 30 genes).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from _evaluate_synth import make_pair
from transpert.cli import main

N_GENES = 30


def _log1p(X: np.ndarray) -> np.ndarray:
    lib = X.sum(axis=1, keepdims=True)
    return np.log1p(X / np.maximum(lib, 1) * np.median(lib)).astype(np.float32)


def _write(adata: ad.AnnData, path: Path) -> Path:
    adata.write_h5ad(path)
    return path


def _with_X(adata: ad.AnnData, X) -> ad.AnnData:
    out = adata.copy()
    out.X = sp.csr_matrix(np.asarray(X, dtype=np.float32))
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    """Good files and one bad variant of the real cells per kind of bad input."""
    d = tmp_path_factory.mktemp("inputs")
    real, pred = make_pair(3, n_perts=6, n_genes=N_GENES, cells=24, ctrl_cells=48)
    ref, _ = make_pair(4, n_perts=6, n_genes=N_GENES, cells=24, ctrl_cells=48)
    pred = _with_X(pred, _log1p(pred.X.toarray()))
    f = {"real": _write(real, d / "real.h5ad"), "pred": _write(pred, d / "pred.h5ad"),
         "ref": _write(ref, d / "ref.h5ad")}
    counts = real.obs["target_gene"].value_counts().rename_axis("target_gene").reset_index(name="n_cells")
    counts.to_csv(d / "counts.csv", index=False)
    f["counts"] = d / "counts.csv"
    pd.Series(real.var_names).to_csv(d / "genes.csv", index=False, header=False)
    f["genes"] = d / "genes.csv"

    X = real.X.toarray()
    bad = {}
    bad["missing"] = d / "missing.h5ad"
    bad["empty"] = d / "empty.h5ad"
    bad["empty"].write_bytes(b"")
    bad["text"] = d / "table.h5ad"
    bad["text"].write_text("target_gene,n_cells\nA,3\n")
    truncated = (d / "real.h5ad").read_bytes()
    bad["truncated"] = d / "truncated.h5ad"
    bad["truncated"].write_bytes(truncated[: len(truncated) // 2])
    bad["directory"] = d / "folder.h5ad"
    bad["directory"].mkdir()
    bad["not_anndata"] = d / "plain_hdf5.h5ad"
    with h5py.File(bad["not_anndata"], "w") as h:
        h["values"] = np.arange(3)
    for kind, value in (("nan", np.nan), ("inf", np.inf), ("negative", -2.0)):
        Y = X.copy()
        Y[5, 3] = value
        bad[kind] = _write(_with_X(real, Y), d / f"{kind}.h5ad")
    Y = _log1p(X)
    Y[7, 2] = 16.5  # fractional values reaching 15
    bad["log1p_range"] = _write(_with_X(real, Y), d / "log1p_range.h5ad")
    shallow = np.minimum(X, 14)  # counts below 15, as in shallow data: only the rows tell
    Y = shallow.copy()
    half = np.arange(X.shape[0]) >= X.shape[0] // 2
    Y[half] = _log1p(shallow)[half]
    bad["mixed_scales"] = _write(_with_X(real, Y), d / "mixed_scales.h5ad")
    bad["scaled_counts"] = _write(_with_X(real, X * 0.5), d / "half_counts.h5ad")
    dup = real.copy()
    dup.var_names = [*real.var_names[:-1], real.var_names[0]]
    bad["duplicate_genes"] = _write(dup, d / "duplicate_genes.h5ad")
    nocol = real.copy()
    nocol.obs = nocol.obs.rename(columns={"target_gene": "guide"})
    bad["no_pert_col"] = _write(nocol, d / "no_pert_col.h5ad")
    noctrl = real[real.obs["target_gene"] != "non-targeting"].copy()
    bad["no_controls"] = _write(noctrl, d / "no_controls.h5ad")
    relabelled = real.copy()
    relabelled.obs["target_gene"] = relabelled.obs["target_gene"].astype(str).replace(
        {"non-targeting": "control"})
    bad["controls_named_otherwise"] = _write(relabelled, d / "controls_named_control.h5ad")
    f["bad"] = bad
    return f


# what each bad input's message must say (besides the file's name), lower case
EXPECT = {
    "missing": "no such file|not found",
    "empty": "the file is empty",
    "text": "not an hdf5 file",
    "truncated": "truncated",
    "directory": "is a directory",
    "not_anndata": "not an anndata",
    "nan": "nan",
    "inf": "infinite",
    "negative": "negative",
    "log1p_range": "15",
    "mixed_scales": "different scales",
    "scaled_counts": "multiples of one value",
    "duplicate_genes": "duplicate gene",
    "no_pert_col": "perturbation column 'target_gene'",
    "no_controls": "control",
    # the controls are there under another label: the message names it, however many labels
    "controls_named_otherwise": "control label 'non-targeting' not found.*looks like a control: 'control'",
}


def _commands(f: dict, bad: Path, out: Path) -> dict[str, list[str]]:
    """Every command that reads files, with ``bad`` in the place of one cells input."""
    s = str
    return {
        "summarize": ["summarize", s(bad), "-o", s(out / "summary.h5ad"), "--threads", "1"],
        "de": ["de", s(bad), "-o", s(out / "de.csv"), "--threads", "1"],
        "evaluate --real": ["evaluate", "--real", s(bad), "--pred", s(f["pred"]), "-o", s(out / "ev"),
                            "--threads", "1", "--n-boot", "0"],
        "evaluate --pred": ["evaluate", "--real", s(f["real"]), "--pred", s(bad), "-o", s(out / "ev"),
                            "--threads", "1", "--n-boot", "0"],
        "rank": ["rank", "--real", s(f["real"]), "--pred", s(bad), s(f["pred"]), "-o", s(out / "rank"),
                 "--threads", "1", "--n-boot", "0"],
        "baseline": ["baseline", "--train", s(bad), "--counts", s(f["counts"]), "-o", s(out / "base.h5ad")],
        "prep": ["prep", s(bad), "--genes", s(f["genes"]), "-o", s(out / "sub.vcc"),
                 "--expected-gene-dim", "-1"],
        "fit --target-train": ["fit", "--reference", s(f["ref"]), "--target-train", s(bad),
                               "-o", s(out / "model"), "--threads", "1"],
        "fit --reference": ["fit", "--reference", s(bad), "--target-train", s(f["ref"]),
                            "-o", s(out / "model"), "--threads", "1"],
        "predict": ["predict", "--method", "cell-mean", "--reference", s(f["ref"]), "--target-train", s(bad),
                    "--counts", s(f["counts"]), "-o", s(out / "pred.h5ad"), "--pseudobulk",
                    s(out / "pb.h5ad"), "--threads", "1"],
    }


# cells a command does not read as cells with a perturbation column / control / value checks
NOT_APPLICABLE = {
}


def snapshot(root: Path) -> dict:
    """Every file under ``root`` with its size and modification time, and every folder (a
    folder's own time changes when a staging folder is made and removed in it: not compared)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out[str((Path(dirpath) / name).relative_to(root))] = "dir"
        for name in filenames:
            p = Path(dirpath) / name
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def run_cli(argv, capsys) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err


COMMANDS = list(_commands({"pred": "", "real": "", "ref": "", "counts": "", "genes": ""},
                          Path("b"), Path("o")))


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", list(EXPECT))
def test_bad_input(inputs, tmp_path, capsys, command, kind):
    if (command, kind) in NOT_APPLICABLE:
        pytest.skip("not an error for this command")
    bad = inputs["bad"][kind]
    out = tmp_path / "out"
    out.mkdir()
    argv = _commands(inputs, bad, out)[command]
    before_out, before_in = snapshot(tmp_path), snapshot(bad.parent)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, err = run_cli(argv, capsys)
    noise = [f"{w.category.__name__}: {w.message}" for w in caught
             if issubclass(w.category, (UserWarning, RuntimeWarning))]
    assert noise == [], f"warnings besides the message: {noise}"
    assert code != 0, f"{command} accepted {kind}"
    assert "Traceback" not in err
    assert err.startswith("transpert ") and "error:" in err, err
    assert bad.name in err, f"message does not name the file: {err}"
    import re

    assert re.search(EXPECT[kind], err.lower()), err
    assert snapshot(tmp_path) == before_out, "the output location changed"
    assert snapshot(bad.parent) == before_in, "an input changed"
