"""Small seeded synthetic real/predicted pairs with the edge cases cell-eval must agree on."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

CONTROL = "non-targeting"


def make_pair(seed: int = 0, n_perts: int = 8, n_genes: int = 60, cells: int = 30,
              ctrl_cells: int = 60, log1p: bool = False):
    """(real, pred) AnnData, raw counts (or log1p when ``log1p``), CSR float32.

    Real: perturbation 0 has no effect (no real DE genes), perturbation 1 changes exactly one
    gene strongly (one real DE gene), gene 2 is zero in every real cell but perturbation 2's (+inf log2FC there),
    gene 3 is zero in every real cell of perturbation 2 (-inf). Pred: perturbation 3's cells are
    all identical (constant cells), perturbations 4 and 5 get identical predictions (PDS ties),
    counts give heavy ties in the Wilcoxon ranks.
    """
    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(n_genes)]
    perts = [f"G{i}" for i in range(n_perts - 1)] + ["NOT_A_GENE"]
    base = rng.gamma(2.0, 2.0, size=n_genes) + 0.2
    effects = {p: np.exp(rng.normal(0, 0.7, n_genes) * (rng.random(n_genes) < 0.3)) for p in perts}
    effects[perts[0]] = np.ones(n_genes)
    effects[perts[1]] = np.ones(n_genes)
    base[10] = 0.2  # a low gene, so its change barely moves the library size of the cell
    effects[perts[1]][10] = 15.0

    def draw(effect, n):
        return rng.poisson(base * effect, size=(n, n_genes)).astype(np.float32)

    def build(kind):
        prev_e = None  # perturbation 5 of the prediction repeats perturbation 4's effects
        blocks, labels = [draw(np.ones(n_genes), ctrl_cells)], [CONTROL] * ctrl_cells
        if kind == "real":
            blocks[0][:, 2] = 0
        for i, p in enumerate(perts):
            e = effects[p] if kind == "real" else effects[p] * np.exp(rng.normal(0, 0.3, n_genes))
            if kind == "pred" and p == perts[5]:
                e = prev_e
            block = draw(e, cells)
            if kind == "real" and i != 2:
                block[:, 2] = 0  # gene 2: expressed only in perturbation 2's cells
            if kind == "real" and i == 2:
                block[:, 3] = 0
            if kind == "pred" and i == 3:
                block[:] = np.round(base * e)
            if kind == "pred" and i == 4:
                prev_e = e
            blocks.append(block)
            labels += [p] * cells
        X = np.vstack(blocks)
        if log1p:
            lib = X.sum(axis=1, keepdims=True)
            X = np.log1p(X / np.maximum(lib, 1) * np.median(lib)).astype(np.float32)
        order = rng.permutation(X.shape[0])  # cells need not be grouped
        obs = pd.DataFrame({"target_gene": np.array(labels)[order]},
                           index=[f"{kind}{i}" for i in range(X.shape[0])])
        return ad.AnnData(X=sp.csr_matrix(X[order]), obs=obs, var=pd.DataFrame(index=genes))

    real = build("real")
    pred = build("pred")
    return real, pred


def unpack_vcc(path, where):
    """The AnnData inside a ``.vcc`` submission (a tar of ``pred.h5ad.zst`` + ``watermark.txt``),
    checking the tar's layout and watermark on the way; needs the zstd command."""
    import subprocess
    import tarfile

    where.mkdir()
    with tarfile.open(path) as tar:
        assert sorted(tar.getnames()) == ["pred.h5ad.zst", "watermark.txt"]
        tar.extractall(where)
    assert (where / "watermark.txt").read_text() == "vcc-prep"
    subprocess.run(["zstd", "-q", "-d", str(where / "pred.h5ad.zst")], check=True)
    return ad.read_h5ad(where / "pred.h5ad")
