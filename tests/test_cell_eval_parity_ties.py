"""Genes tied in |log2FC| (many +-inf fold changes): cell-eval's own ranking and overlap.

cell-eval 0.8.2 orders significant genes with polars' ordinal rank, which breaks ties with a
parallel unstable sort for groups of more than a handful of genes. ``ties="polars"`` must give
exactly cell-eval's order and overlap (same process, same polars threads); ``ties="gene"`` the
documented deterministic order (tied genes in file order).
"""

from __future__ import annotations

import numpy as np
import pytest

cell_eval = pytest.importorskip("cell_eval")
pl = pytest.importorskip("polars")

from cell_eval._types import DESortBy, initialize_de_comparison  # noqa: E402

from transpert.evaluate._metrics import overlap, ranked_significant  # noqa: E402
from transpert.evaluate._registry import DEPair  # noqa: E402


def _tables(seed: int, n_perts: int = 4, n_genes: int = 600):
    rng = np.random.default_rng(seed)
    choices = np.array([np.inf, -np.inf, 3.0, -3.0, 1.5, 0.25], dtype=np.float32)
    arrays = {}
    for which in ("real", "pred"):
        lfc = rng.choice(choices, size=(n_perts, n_genes)).astype(np.float32)
        lfc[:, ::7] = rng.normal(0, 2, size=lfc[:, ::7].shape)  # some untied values
        fdr = np.where(rng.random((n_perts, n_genes)) < 0.6, 0.001, 0.5).astype(np.float32)
        fdr[0, :] = np.where(np.arange(n_genes) < 12, 0.001, 0.5)  # a small group too
        arrays[which] = (lfc, fdr)
    labels = np.array([f"P{i}" for i in range(n_perts)])
    genes = np.array([f"g{j:04d}" for j in range(n_genes)])
    return labels, genes, arrays


def _frame(labels, genes, lfc, fdr):
    n_perts, n_genes = lfc.shape
    return pl.DataFrame({
        "target": np.repeat(labels, n_genes),
        "feature": np.tile(genes, n_perts),
        "log2_fold_change": lfc.astype(np.float64).ravel(),
        "p_value": fdr.astype(np.float64).ravel(),
        "fdr": fdr.astype(np.float64).ravel(),
    })


@pytest.mark.parametrize("seed", [0, 1])
def test_polars_ties_equal_cell_eval(seed):
    labels, genes, arrays = _tables(seed)
    cmp = initialize_de_comparison(_frame(labels, genes, *arrays["real"]),
                                   _frame(labels, genes, *arrays["pred"]))
    for which, results in (("real", cmp.real), ("pred", cmp.pred)):
        lfc, fdr = arrays[which]
        top = results.get_top_genes(sort_by=DESortBy.ABS_LOG2_FOLD_CHANGE)
        mine = ranked_significant(fdr < np.float32(0.05), lfc, "polars", labels)
        gene_order = ranked_significant(fdr < np.float32(0.05), lfc, "gene", labels)
        for i, p in enumerate(labels):
            expected = top[p].drop_nulls().to_numpy().astype(str)
            assert list(genes[mine[i]]) == list(expected), (which, p)
            # "gene": |lfc| descending, ties by gene position (a lexsort, independently)
            sig = np.flatnonzero(fdr[i] < 0.05)
            ref = sig[np.lexsort((sig, -np.abs(lfc[i, sig])))]
            np.testing.assert_array_equal(gene_order[i], ref)
        # the data really has ties at the top of big groups
        assert any(np.isinf(lfc[i, mine[i][:2]]).all() for i in range(1, len(labels)))
    pair = DEPair(labels, genes, *arrays["real"], *arrays["pred"], ties="polars")
    expected = cmp.compute_overlap(k=None, metric="overlap")
    np.testing.assert_array_equal(overlap(pair).values, [expected[p] for p in labels])
    for k in (5, 50):
        expected = cmp.compute_overlap(k=k, metric="precision")
        np.testing.assert_array_equal(overlap(pair, k, "precision").values, [expected[p] for p in labels])
