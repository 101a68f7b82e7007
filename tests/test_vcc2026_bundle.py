"""``--real-bundle`` refuses real data that is not the bundle's, as ``cell-eval2 score
--real-bundle`` does (stored: tests/parity_vcc2026/expected/mismatch/, written by
regenerate_mismatch.py with cell-eval2 0.20.0).

For each case the refusal must agree with cell-eval2's, and transpert's content fingerprint of the
real file must equal the ``source_fingerprint`` cell-eval2's run stamped (exact: a SHA-256).
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from transpert._errors import TranspertInputError
from transpert.cli import main
from transpert.evaluate.vcc2026 import evaluate_vcc2026
from transpert.evaluate.vcc2026 import _fingerprint
from transpert.evaluate.vcc2026._fingerprint import real_identity
from test_vcc2026_parity import COL, EXP, FIX, HERE

sys.path.insert(0, HERE)
from make_fixtures import MISMATCH_CASES, mismatch_pair  # noqa: E402

BUNDLE = os.path.join(EXP, "bundle")
WHAT = {  # the words of transpert's refusal that name what differs
    "genes": "gene names",
    "missing": "the bundle scored 12 perturbations",
    "other_cells": "the same cells, genes and labels but other counts",
    "float64": "float64",
}


def _stored(case: str) -> dict:
    with open(os.path.join(EXP, "mismatch", f"{case}.json")) as fh:
        return json.load(fh)


def test_fingerprints_equal_the_bundles():
    ident = real_identity(os.path.join(FIX, "real.h5ad"), COL)
    manifest = json.load(open(os.path.join(BUNDLE, "manifest.json")))
    meta = json.load(open(os.path.join(BUNDLE, "anchor_meta.json")))
    assert ident.content == manifest["real_fingerprint"]
    assert ident.structure == meta["real_fingerprint_meta"]
    adata = ad.read_h5ad(os.path.join(FIX, "real.h5ad"))  # in memory: the same identity
    assert real_identity(adata, COL) == ident


@pytest.mark.parametrize("case", MISMATCH_CASES)
def test_refuses_what_cell_eval2_refuses(case, tmp_path):
    stored = _stored(case)
    real, pred = mismatch_pair(case, FIX, str(tmp_path))
    assert real_identity(real, COL).content == stored["source_fingerprint"]
    if stored["refused"]:
        with pytest.raises(TranspertInputError) as err:
            evaluate_vcc2026(pred, real, pert_col=COL, real_bundle=BUNDLE)
        text = str(err.value)
        assert "was built from other real data" in text and WHAT[case] in text, text
        assert "\n" not in text
    else:
        out = evaluate_vcc2026(pred, real, pert_col=COL, real_bundle=BUNDLE)
        assert out.avg_score == pytest.approx(stored["avg_score"], rel=1e-9)


def test_cli_exit_2_names_the_difference(tmp_path, capsys):
    real, pred = mismatch_pair("missing", FIX, str(tmp_path))
    code = main(["evaluate", "--suite", "vcc2026", "--real", real, "--pred", pred,
                 "--pert-col", COL, "--real-bundle", BUNDLE, "-o", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "11" in err and "12 perturbations" in err
    assert not (tmp_path / "o").exists()


def _edited_bundle(tmp_path, **changes):
    path = tmp_path / "bundle"
    shutil.copytree(BUNDLE, path)
    manifest = json.load(open(path / "manifest.json"))
    for key, value in changes.items():
        if value is KeyError:
            del manifest[key]
        else:
            manifest[key] = value
    (path / "manifest.json").write_text(json.dumps(manifest))
    return str(path)


@pytest.mark.parametrize("changes, words", [
    ({"rule_digest": "0" * 64}, "competition rule 000000000000"),
    ({"rule_digest": None, "rule_mismatches": ["cache_strict is off"]},
     "diagnostic bundle, not built under the vcc2026 preset (cache_strict is off)"),
    ({"profile": "full"}, "profile 'full'"),
    ({"anchor_digest": KeyError}, "lacks ['anchor_digest']"),
    ({"manifest_version": 2}, "manifest_version 2"),
])
def test_refuses_a_bundle_not_built_under_the_rule(tmp_path, changes, words):
    bundle = _edited_bundle(tmp_path, **changes)
    with pytest.raises(TranspertInputError, match="--real-bundle") as err:
        evaluate_vcc2026(os.path.join(FIX, "mixed_pred.h5ad"), os.path.join(FIX, "real.h5ad"),
                         pert_col=COL, real_bundle=bundle)
    assert words in str(err.value)


def test_refuses_a_directory_without_manifest(tmp_path):
    path = tmp_path / "anchor_only"
    shutil.copytree(os.path.join(EXP, "anchor"), path)
    with pytest.raises(TranspertInputError, match="no manifest.json"):
        evaluate_vcc2026(os.path.join(FIX, "mixed_pred.h5ad"), os.path.join(FIX, "real.h5ad"),
                         pert_col=COL, real_bundle=str(path))


def test_streamed_hash_equals_in_memory_with_unsorted_rows(tmp_path, monkeypatch):
    """Chunks of a few entries, rows stored with unsorted gene indices and an explicit zero:
    the streamed hash equals a hand-made SHA-256 of the row-sorted CSR arrays (cell-eval2's
    canonical form: data, indices as int64, indptr as int64)."""
    import hashlib

    rng = np.random.default_rng(3)
    dense = rng.poisson(0.7, size=(23, 17)).astype(np.float32)
    dense[[0, 5, 6, 22]] = 0  # empty rows, the first and the last among them
    m = sp.csr_matrix(dense)
    m.data[0] = 0.0  # an explicit zero is hashed as stored
    order = [np.arange(m.indptr[i], m.indptr[i + 1])[::-1] for i in range(m.shape[0])]
    perm = np.concatenate(order)
    unsorted = sp.csr_matrix((m.data[perm], m.indices[perm], m.indptr), shape=m.shape)
    assert not unsorted.has_sorted_indices
    obs = pd.DataFrame({COL: ["a"] * 11 + ["non-targeting"] * 12},
                       index=[f"c{i}" for i in range(23)])
    adata = ad.AnnData(unsorted, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(17)]))
    path = str(tmp_path / "u.h5ad")
    adata.write_h5ad(path)
    h = hashlib.sha256()
    h.update(m.data.tobytes())
    h.update(m.indices.astype(np.int64).tobytes())
    h.update(m.indptr.astype(np.int64).tobytes())
    expected = h.hexdigest()
    monkeypatch.setattr(_fingerprint, "CHUNK_ENTRIES", 5)
    assert _fingerprint._hash_file_matrix(path) == expected
    sorted_path = str(tmp_path / "s.h5ad")  # rows already sorted: the one-read path
    ad.AnnData(m, obs=obs, var=adata.var).write_h5ad(sorted_path)
    assert _fingerprint._hash_file_matrix(sorted_path) == expected
    dense_path = str(tmp_path / "d.h5ad")
    ad.AnnData(dense, obs=obs, var=adata.var).write_h5ad(dense_path)
    assert _fingerprint._hash_file_matrix(dense_path) == hashlib.sha256(dense.tobytes()).hexdigest()
