"""Write the vcc2026 parity fixtures (small raw-count h5ad pairs) into ``fixtures/``.

Deterministic (numpy PCG64, fixed seeds). Run from anywhere: ``python make_fixtures.py``.
Each pair is awkward on purpose:

The three predictions share one real file (``real.h5ad``).

- ``mixed``: 12 perturbations x 300 genes, 40 cells each + 120 controls. Strong responders
  (>= 10 significant genes: the lfc_nmae gate), no-DE perturbations (drawn like the control),
  a target absent from the genes (ABSENT1), knocked-down target genes, shallow cells (totals
  down to a few counts), a duplicated cell (exact ties). The prediction is a noisy redraw.
- ``replicate``: the same design, the prediction drawn from the real model (high agreement:
  long reach prefixes, many shared calls).
- ``constant``: the prediction's cells are one identical cell per perturbation (all values
  tied within the group), one perturbation predicted as the control's rounded mean.
"""

from __future__ import annotations

import os
import sys

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

G = 300
GENES = [f"GENE{i:03d}" for i in range(G)]
STRONG = ["GENE001", "GENE002", "GENE003", "GENE004", "GENE005"]
NULL = ["GENE006", "GENE007", "GENE008"]
WEAK = ["GENE009", "GENE010", "ABSENT1"]
CONTROL = "non-targeting"
PERTS = STRONG + NULL + WEAK + ["GENE299"]
COL = "target_gene"


def _model(seed: int):
    rng = np.random.default_rng(seed)
    base = rng.gamma(0.6, 1.5, size=G)
    base[250:] *= 0.01  # rarely detected genes: below the CPM gate
    effects = {}
    for j, p in enumerate(PERTS):
        mult = np.ones(G)
        if p in STRONG or p == "GENE299":
            idx = rng.choice(np.arange(20, 250), size=25, replace=False)
            mult[idx] = np.exp(rng.normal(0, 1.2, size=25))
        elif p in WEAK:
            idx = rng.choice(np.arange(20, 250), size=6, replace=False)
            mult[idx] = np.exp(rng.normal(0, 0.5, size=6))
        if p in GENES:
            mult[GENES.index(p)] *= 0.05  # knock-down of the target gene
        effects[p] = mult
    return base, effects


def _cells(rng, mu, n, depth_shape=4.0, shallow=0):
    lib = rng.gamma(depth_shape, 1.0 / depth_shape, size=n)
    if shallow:
        lib[:shallow] = rng.uniform(0.002, 0.02, size=shallow)
    return rng.poisson(mu[None, :] * lib[:, None] * 8.0)


def _write(path, blocks):
    X = np.vstack([b for _, b in blocks]).astype(np.float32)
    labels = [lab for lab, b in blocks for _ in range(b.shape[0])]
    # every cell needs at least one count
    empty = X.sum(axis=1) == 0
    X[empty, 30] = 1
    obs = pd.DataFrame({COL: labels}, index=[f"cell{i}" for i in range(len(labels))])
    ad.AnnData(sp.csr_matrix(X), obs=obs, var=pd.DataFrame(index=GENES)).write_h5ad(path, compression="gzip")


def real_blocks(seed=1):
    base, effects = _model(0)
    rng = np.random.default_rng(seed)
    blocks = [(CONTROL, _cells(rng, base, 120, shallow=4))]
    for p in PERTS:
        X = _cells(rng, base * effects[p], 40, shallow=2 if p in NULL else 0)
        if p == "GENE004":
            X[1] = X[0]  # a duplicated cell: exact ties across all genes
        blocks.append((p, X))
    return blocks, base, effects


def main(outdir: str) -> None:
    os.makedirs(outdir, exist_ok=True)
    blocks, base, effects = real_blocks()
    _write(os.path.join(outdir, "real.h5ad"), blocks)
    rng = np.random.default_rng(2)
    # mixed: another model's effects (noisy), 30 cells per perturbation
    _, other = _model(5)
    pred = [(CONTROL, _cells(rng, base, 60))]
    for p in PERTS:
        pred.append((p, _cells(rng, base * np.sqrt(effects[p] * other[p]), 30)))
    _write(os.path.join(outdir, "mixed_pred.h5ad"), pred)
    # replicate: the real model, new draws
    pred = [(CONTROL, _cells(rng, base, 120))]
    for p in PERTS:
        pred.append((p, _cells(rng, base * effects[p], 40)))
    _write(os.path.join(outdir, "replicate_pred.h5ad"), pred)
    # constant: one identical cell per perturbation
    pred = [(CONTROL, _cells(rng, base, 20))]
    for p in PERTS:
        mu = base if p == "GENE006" else base * effects[p]
        cell = np.round(mu * 8.0)
        pred.append((p, np.repeat(cell[None, :], 25, axis=0)))
    _write(os.path.join(outdir, "constant_pred.h5ad"), pred)


#: Real files (and a prediction matching each) that are NOT the data the parity bundle was built
#: from, except ``resaved`` (the same values rewritten uncompressed: other file bytes, same data).
#: ``cell-eval2 run`` + ``score --real-bundle`` on each are stored in expected/mismatch/.
MISMATCH_CASES = ("genes", "missing", "other_cells", "float64", "resaved")


def mismatch_pair(case: str, fixdir: str, outdir: str) -> tuple[str, str]:
    """Write ``{case}_real.h5ad`` and ``{case}_pred.h5ad`` into ``outdir`` from the fixtures.

    genes: one gene renamed (GENE100 -> GENE100B) on both sides; missing: perturbation GENE010's
    cells dropped on both sides; other_cells: the real cells redrawn (seed 7; same labels, genes
    and shape); float64: the real counts stored as float64; resaved: the real file rewritten
    without compression.
    """
    os.makedirs(outdir, exist_ok=True)
    real = ad.read_h5ad(os.path.join(fixdir, "real.h5ad"))
    pred = ad.read_h5ad(os.path.join(fixdir, "mixed_pred.h5ad"))
    real_path = os.path.join(outdir, f"{case}_real.h5ad")
    pred_path = os.path.join(outdir, f"{case}_pred.h5ad")
    if case == "genes":
        names = [("GENE100B" if g == "GENE100" else g) for g in real.var_names]
        real.var_names = names
        pred.var_names = names
    elif case == "missing":
        real = real[real.obs[COL] != "GENE010"].copy()
        pred = pred[pred.obs[COL] != "GENE010"].copy()
    elif case == "other_cells":
        blocks, _, _ = real_blocks(seed=7)
        _write(real_path, blocks)
        real = None
    elif case == "float64":
        real.X = real.X.astype(np.float64)
    elif case != "resaved":
        raise ValueError(case)
    if real is not None:
        real.write_h5ad(real_path, compression=None if case == "resaved" else "gzip")
    pred.write_h5ad(pred_path, compression="gzip")
    return real_path, pred_path


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "fixtures"))
