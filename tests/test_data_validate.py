"""Validation: one test per error, each checking the message names file, column/gene and value."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from helpers_data import counts_matrix
from transpert.data import ValidationError, open_cells, validate_cells, validate_same_genes

N_OBS, N_VARS = 40, 6


def make(tmp_path, *, X=None, labels=None, obs_extra=None, var_names=None, categorical=False,
         name="cells.h5ad"):
    X = counts_matrix(21, n_obs=N_OBS, n_vars=N_VARS, explicit_zeros=False) if X is None else X
    if labels is None:
        labels = np.array(["NT", "KO1", "KO2", "KO3"])[np.arange(N_OBS) % 4]
    obs = pd.DataFrame({"guide_target": labels}, index=[f"cell{i}" for i in range(N_OBS)])
    if categorical:
        obs["guide_target"] = pd.Categorical(labels, categories=sorted(set(labels)) + ["UNUSED"])
    for key, values in (obs_extra or {}).items():
        obs[key] = values
    var = pd.DataFrame(index=var_names or [f"G{j}" for j in range(N_VARS)])
    path = tmp_path / name
    ad.AnnData(X=X, obs=obs, var=var).write_h5ad(path)
    return path


SCHEMA = {"pert_col": "guide_target", "control_label": "NT"}


def problems_of(path, **kwargs) -> list[str]:
    with pytest.raises(ValidationError) as info:
        validate_cells(path, **kwargs)
    message = str(info.value)
    assert str(path) in message  # every error names the file
    return info.value.problems


def test_valid_file_reports_and_caches_library_sizes(tmp_path):
    path = make(tmp_path)
    with open_cells(path, schema=SCHEMA) as cells:
        report = validate_cells(cells, chunk_rows=7)
        assert (report.n_obs, report.n_vars, report.n_perturbations, report.n_control_cells) == (40, 6, 3, 10)
        assert report.scale == "counts"
        assert cells._stats is not None  # the later normalisation reuses this pass
        X = ad.read_h5ad(path).X
        np.testing.assert_array_equal(cells._stats.library_sizes, np.asarray(X.sum(axis=1)).ravel())


def test_missing_perturbation_column(tmp_path):
    [msg] = problems_of(make(tmp_path), schema={"pert_col": "target"}, check_values=False)
    assert "perturbation column 'target' is not in obs" in msg and "guide_target" in msg


def test_no_control_cells(tmp_path):
    [msg] = problems_of(make(tmp_path), schema=dict(SCHEMA, control_label="non-targeting"))
    assert "column 'guide_target': no control cells labelled 'non-targeting'" in msg and "'NT'" in msg


def test_no_control_cells_in_filtered_context(tmp_path):
    ctx = np.where(np.arange(N_OBS) % 4 == 0, "a", "b")  # every control is in context a
    path = make(tmp_path, obs_extra={"ctx": ctx})
    [msg] = problems_of(path, schema=dict(SCHEMA, cell_filter='ctx == "b"'))
    assert "no control cells labelled 'NT' among the cells kept by the filter" in msg


def test_label_with_zero_cells(tmp_path):
    [msg] = problems_of(make(tmp_path, categorical=True), schema=SCHEMA)
    assert "column 'guide_target': perturbation label(s) with zero cells: ['UNUSED']" in msg


def test_missing_labels(tmp_path):
    labels = np.array(["NT", "KO1", "KO2", "KO3"], dtype=object)[np.arange(N_OBS) % 4]
    labels[5] = None
    [msg] = problems_of(make(tmp_path, labels=labels), schema=SCHEMA)
    assert "1 cell(s) have no label, first 'cell5'" in msg


@pytest.mark.parametrize("value, expected", [
    (-2.0, "1 negative value(s), first -2.0 at cell 'cell7', gene 'G3'"),
    (np.nan, "1 NaN value(s), first nan at cell 'cell7', gene 'G3'"),
    (np.inf, "1 infinite value(s), first inf at cell 'cell7', gene 'G3'"),
])
def test_bad_values_name_cell_and_gene(tmp_path, value, expected):
    X = counts_matrix(22, n_obs=N_OBS, n_vars=N_VARS, explicit_zeros=False).toarray()
    X[7, 3] = value
    [msg] = problems_of(make(tmp_path, X=sp.csr_matrix(X)), schema=SCHEMA, chunk_rows=5)
    assert expected in msg


def test_negative_integer_counts(tmp_path):
    X = counts_matrix(22, n_obs=N_OBS, n_vars=N_VARS, explicit_zeros=False).toarray().astype(np.int32)
    X[12, 0] = -1
    [msg] = problems_of(make(tmp_path, X=X), schema=SCHEMA)
    assert "negative value(s), first -1 at cell 'cell12', gene 'G0'" in msg


def test_non_integer_where_counts_expected(tmp_path):
    X = counts_matrix(23, n_obs=N_OBS, n_vars=N_VARS, explicit_zeros=False).toarray()
    X[30, 5] = 2.5
    path = make(tmp_path, X=sp.csr_matrix(X))
    [msg] = problems_of(path, schema=dict(SCHEMA, counts=True))
    assert "should hold raw counts but has 1 non-integer value(s), first 2.5 at cell 'cell30', gene 'G5'" in msg
    # without a declared scale the same file is "log1p", but out of range -> mixed scales
    X[0, 0] = 40.0
    path = make(tmp_path, X=sp.csr_matrix(X), name="mixed.h5ad")
    [msg] = problems_of(path, schema=SCHEMA)
    assert "mixed scales" in msg and "2.5" in msg


def test_duplicate_gene_names(tmp_path):
    path = make(tmp_path, var_names=["G0", "G1", "G2", "G1", "G4", "G0"])
    [msg] = problems_of(path, schema=SCHEMA, check_values=False)
    assert "duplicate gene name(s)" in msg and "'G1'" in msg and "'G0'" in msg
    report = validate_cells(path, schema=dict(SCHEMA, duplicate_genes="make_unique"))
    assert report.notes and "renamed" in report.notes[0]


def test_mismatched_gene_set(tmp_path):
    path = make(tmp_path)
    [msg] = problems_of(path, schema=SCHEMA, genes=["G0", "G1", "G2", "G3", "G4", "OTHER"])
    assert "1 expected gene(s) missing (e.g. ['OTHER']), 1 unexpected gene(s) (e.g. ['G5'])" in msg
    other = make(tmp_path, var_names=[f"G{j}" for j in range(N_VARS - 1)] + ["X9"], name="other.h5ad")
    with pytest.raises(Exception, match=r"'b' vs 'a': 1 gene\(s\) only in 'a' \(e.g. \['G5'\]\), 1 only in 'b' \(e.g. \['X9'\]\)"):
        validate_same_genes({"a": path, "b": other}, schema=SCHEMA)
    assert list(validate_same_genes({"a": path, "b": path}, schema=SCHEMA)) == [f"G{j}" for j in range(N_VARS)]


def test_all_problems_reported_together(tmp_path):
    path = make(tmp_path, categorical=True, var_names=["A", "A", "B", "C", "D", "E"])
    problems = problems_of(path, schema=dict(SCHEMA, control_label="ctrl"))
    assert len(problems) == 3  # unused category, no controls, duplicate genes


def test_real_files_validate(test_data_dir):
    for name, n_controls in (("datlinger_jurkat_stimulated", 140), ("papalexi_thp1", 2386)):
        report = validate_cells(name)
        assert report.scale == "counts" and report.n_control_cells == n_controls
