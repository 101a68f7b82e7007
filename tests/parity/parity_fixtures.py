"""Deterministic fixtures for the parity tests: small real/predicted pairs regenerated from a seed.

Each fixture is a (real, pred) pair of AnnData objects (CSR float32, ``target_gene`` labels,
``non-targeting`` controls), tens of perturbations x hundreds of genes, with the awkward cases the
reference scorers must agree on:

- perturbation ``P00`` has no effect at all (no real DE gene is expected);
- ``P01``'s predicted cells are all identical (constant predicted cells);
- ``P02`` and ``P03`` get identical predictions (PDS ties);
- genes ``G2``..``G7`` are zero in every control cell and expressed in some perturbations, so
  their fold changes tie (clipped at 20, or infinite) right at the top-k cut;
- ``NOT_A_GENE`` targets a gene absent from the genes;
- ``shallow`` fixtures have very few counts per cell (heavy zero ties in the Wilcoxon ranks).

Scales: ``counts`` fixtures hold raw integer counts; ``log1p`` fixtures hold natural log1p of
median-library-size normalised counts (what the scorers expect of a log1p file).
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

CONTROL = "non-targeting"

# name -> (seed, scale, depth, n_perts, n_genes, cells, control cells)
FIXTURES = {
    "counts": (101, "counts", 1.0, 20, 200, 24, 80),
    "log1p": (102, "log1p", 1.0, 20, 200, 24, 80),
    "shallow": (103, "counts", 0.08, 16, 150, 20, 60),
}


def make_fixture(name: str):
    """(real, pred, train) AnnData of the named fixture (see the module docstring)."""
    seed, scale, depth, n_perts, n_genes, cells, ctrl_cells = FIXTURES[name]
    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(n_genes)]
    perts = [f"P{i:02d}" for i in range(n_perts - 1)] + ["NOT_A_GENE"]
    base = (rng.gamma(1.5, 2.0, size=n_genes) + 0.1) * depth
    silent_in_control = np.arange(2, 8)  # zero in every control cell: tied fold changes
    effects = {}
    for p in perts:
        hit = rng.random(n_genes) < 0.25
        effects[p] = np.exp(rng.normal(0.0, 0.9, n_genes) * hit)
    effects["P00"] = np.ones(n_genes)

    def draw(mean, n):
        return rng.poisson(mean, size=(n, n_genes)).astype(np.float32)

    def build(kind: str, n_cells: int):
        ctrl = draw(base, ctrl_cells)
        ctrl[:, silent_in_control] = 0
        blocks, labels = [ctrl], [CONTROL] * ctrl_cells
        shared = None
        for i, p in enumerate(perts):
            e = effects[p]
            if kind == "pred":
                e = e * np.exp(rng.normal(0.0, 0.35, n_genes))
            mean = base * e
            block = draw(mean, n_cells)
            if i % 3:  # the control-silent genes switched on in two of every three perturbations
                block[:, silent_in_control] = rng.poisson(1.5 * max(depth, 0.5),
                                                          size=(n_cells, silent_in_control.size))
            else:
                block[:, silent_in_control] = 0
            if kind == "pred" and p == "P01":
                block[:] = np.round(mean)
            if kind == "pred" and p == "P02":
                shared = block
            if kind == "pred" and p == "P03":
                block = shared.copy()
            blocks.append(block)
            labels += [p] * n_cells
        X = np.vstack(blocks)
        if scale == "log1p":
            lib = X.sum(axis=1, keepdims=True)
            X = np.log1p(X / np.maximum(lib, 1) * np.median(lib)).astype(np.float32)
        order = rng.permutation(X.shape[0])  # cells need not be grouped
        obs = pd.DataFrame({"target_gene": pd.Categorical(np.array(labels)[order])},
                           index=[f"{kind}{i}" for i in range(X.shape[0])])
        return ad.AnnData(X=sp.csr_matrix(X[order]), obs=obs, var=pd.DataFrame(index=genes))

    real = build("real", cells)
    pred = build("pred", cells)
    train = build("real", cells // 2)
    return real, pred, train


def counts_table(real) -> pd.DataFrame:
    """The cells-per-perturbation table ``cell-eval baseline`` reads (control included)."""
    counts = real.obs["target_gene"].astype(str).value_counts().sort_index()
    return pd.DataFrame({"target_gene": counts.index, "n_cells": counts.to_numpy()})
