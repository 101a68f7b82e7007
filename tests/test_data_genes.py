"""Gene harmonisation: Ensembl IDs first, symbols otherwise, deterministic duplicates, report."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from transpert.data import harmonize_genes, read_cells


def var(symbols, ids=None):
    frame = pd.DataFrame(index=pd.Index(symbols, dtype=object))
    if ids is not None:
        frame["gene_id"] = ids
    return frame


def test_match_by_id_renames_and_drops():
    ref = var(["TWNK", "ACTB", "GAPDH", "ONLY_REF"], ["ENSG1", "ENSG2", "ENSG3", "ENSG4"])
    # old symbol C10orf2 for ENSG1; versioned IDs; a same-symbol gene with another ID is not a match
    other = var(["GAPDH", "C10orf2", "ACTB", "ONLY_REF", "NEW"],
                ["ENSG3.7", "ENSG1.2", "ENSG2", "ENSG99", "ENSG5"])
    h = harmonize_genes({"ref": ref, "other": other})
    assert list(h.genes) == ["TWNK", "ACTB", "GAPDH"]  # reference order
    assert list(h.positions("other")) == [1, 2, 0]
    assert list(h.mapping["other"]["source_symbol"]) == ["C10orf2", "ACTB", "GAPDH"]
    assert list(h.mapping["other"]["matched_by"]) == ["id", "id", "id"]
    r = h.report.loc["other"]
    assert (r.n_genes, r.matched_by_id, r.matched_by_symbol, r.renamed, r.duplicates_dropped, r.dropped, r.n_common) \
        == (5, 3, 0, 1, 0, 2, 3)
    assert h.report.loc["ref", "dropped"] == 1


def test_symbol_fallback_and_duplicates_deterministic():
    ref = var(["A", "B", "C", "D"], ["E1", "E2", "E3", "E4"])
    no_ids = var(["D", "B", "B", "A", "Z"])  # no Ensembl IDs: symbols; the second B is dropped
    h = harmonize_genes({"ref": ref, "x": no_ids})
    assert list(h.genes) == ["A", "B", "D"]
    assert list(h.positions("x")) == [3, 1, 0]
    assert list(h.mapping["x"]["matched_by"]) == ["symbol"] * 3
    assert list(h.mapping["x"]["gene_id"]) == ["E1", "E2", "E4"]  # filled from the reference
    assert h.report.loc["x", "duplicates_dropped"] == 1
    # same answer whatever the dict order of the other datasets
    h2 = harmonize_genes({"x": no_ids, "ref": ref}, reference="ref")
    assert list(h2.genes) == list(h.genes) and list(h2.positions("x")) == list(h.positions("x"))


def test_three_datasets_and_apply():
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(10)]
    a = ad.AnnData(X=rng.poisson(2, (5, 10)).astype(np.float32), var=var(genes, [f"E{i}" for i in range(10)]))
    b_order = rng.permutation(10)[:8]
    b = ad.AnnData(X=a.X[:, b_order], var=var([genes[i] for i in b_order], [f"E{i}" for i in b_order]))
    c = ad.AnnData(X=a.X[:, :9], var=var(genes[:9]))
    h = harmonize_genes({"a": a, "b": b, "c": c})
    expected = [g for g in genes[:9] if genes.index(g) in set(b_order)]
    assert list(h.genes) == expected
    for name, adata in (("a", a), ("b", b), ("c", c)):
        out = h.apply(name, adata)
        assert list(out.var_names) == expected
        np.testing.assert_array_equal(out.X, a[:, expected].X)  # same columns of the same cells


def test_real_files_have_partial_overlap(test_data_dir):
    datlinger = read_cells("datlinger_jurkat_stimulated")
    papalexi = read_cells("papalexi_thp1")
    h = harmonize_genes({"datlinger": datlinger, "papalexi": papalexi})
    # brute force: symbols in both files (neither has Ensembl IDs)
    shared = [g for g in datlinger.var_names if g in set(papalexi.var_names)]
    assert list(h.genes) == shared
    assert h.report.loc["papalexi", "dropped"] == 299 - len(shared)
    with pytest.raises(Exception, match="reference 'nope'"):
        harmonize_genes({"a": datlinger}, reference="nope")
