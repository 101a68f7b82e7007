"""Benchmark: ``cell-eval run --profile vcc`` (0.8.2) vs ``transpert evaluate`` on a VCC-shaped pair.

Writes a seeded real/predicted pair of raw-count CSR h5ad files (18,080 genes by default), then
runs both tools side by side, each in its own subprocess with 2 threads, and prints one JSON
line: wall time and peak RSS of each, the speed-up and the memory ratio, and the largest
per-perturbation difference between their results (a parity check on the big data).

    python benchmarks/bench_evaluate.py                 # 100 perturbations, 18,080 genes
    python benchmarks/bench_evaluate.py --small         # quick check while developing
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit, run_child  # noqa: E402

THREAD_ENV = {"NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2",
              "MKL_NUM_THREADS": "2", "POLARS_MAX_THREADS": "2"}


def write_pair(directory: Path, n_perts: int, n_genes: int, cells: int, ctrl_cells: int, seed: int):
    """Raw-count real and predicted files, written block by block (never one dense matrix)."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    base = rng.gamma(0.3, 1.5, size=n_genes)  # ~ sparse single-cell profile, mean ~0.45 UMI/gene
    perts = [f"PERT{i:03d}" for i in range(n_perts)]
    effects = np.exp(rng.normal(0, 0.5, (n_perts, n_genes)) * (rng.random((n_perts, n_genes)) < 0.05))
    for kind, noise in (("real", 0.0), ("pred", 0.3)):
        blocks, labels = [], []
        for i in range(-1, n_perts):
            n = ctrl_cells if i < 0 else cells
            lam = base if i < 0 else base * effects[i] * np.exp(rng.normal(0, noise, n_genes))
            for s in range(0, n, 500):
                m = min(500, n - s)
                blocks.append(sp.csr_matrix(rng.poisson(lam, size=(m, n_genes)).astype(np.float32)))
            labels += ["non-targeting" if i < 0 else perts[i]] * n
        X = sp.vstack(blocks, format="csr")
        obs = pd.DataFrame({"target_gene": pd.Categorical(labels)},
                           index=[f"{kind}{i}" for i in range(len(labels))])
        var = pd.DataFrame(index=[f"GENE{j:05d}" for j in range(n_genes)])
        ad.AnnData(X=X, obs=obs, var=var).write_h5ad(directory / f"{kind}.h5ad")
        del X, blocks
    return directory / "real.h5ad", directory / "pred.h5ad"


CELL_EVAL = """
import json, sys, time
from cell_eval.__main__ import main
sys.argv = ["cell-eval", "run", "-ar", sys.argv[1], "-ap", sys.argv[2], "--profile", "vcc",
            "--num-threads", "2", "-o", sys.argv[3], "--pert-col", "target_gene"]
t = time.perf_counter()
main()
print(json.dumps({"inner_s": time.perf_counter() - t}))
"""

TRANSPERT = """
import json, sys, time
from transpert.cli import main
t = time.perf_counter()
rc = main(["evaluate", "--real", sys.argv[1], "--pred", sys.argv[2], "--profile", "vcc",
           "--threads", "2", "-o", sys.argv[3], "--n-boot", "0", "--no-report"])
assert rc == 0
print(json.dumps({"inner_s": time.perf_counter() - t}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--perts", type=int, default=100)
    parser.add_argument("--genes", type=int, default=18080)
    parser.add_argument("--cells", type=int, default=100, help="cells per perturbation")
    parser.add_argument("--ctrl-cells", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", action="store_true", help="20 perturbations x 2,000 genes")
    parser.add_argument("--transpert-only", action="store_true",
                        help="time transpert alone (same seeded data; no comparison)")
    parser.add_argument("--workdir", default=None, help="keep the files here (default: temp dir)")
    args = parser.parse_args()
    if args.small:
        args.perts, args.genes, args.cells, args.ctrl_cells = 20, 2000, 50, 300
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        real, pred = write_pair(tmp, args.perts, args.genes, args.cells, args.ctrl_cells, args.seed)
        tp = run_child(TRANSPERT, [str(real), str(pred), str(tmp / "tp")], env=THREAD_ENV)
        if args.transpert_only:
            emit({"benchmark": "evaluate_vcc_transpert_only", "perturbations": args.perts,
                  "genes": args.genes, "cells": args.perts * args.cells + args.ctrl_cells,
                  "threads": 2, "transpert_wall_s": round(tp["wall_s"], 2),
                  "transpert_peak_mb": round(tp["peak_rss_mb"])})
            return
        ce = run_child(CELL_EVAL, [str(real), str(pred), str(tmp / "ce")], env=THREAD_ENV)
        import pandas as pd

        a = pd.read_csv(tmp / "ce" / "results.csv").set_index("perturbation")
        b = pd.read_csv(tmp / "tp" / "results.csv").set_index("perturbation").loc[a.index, a.columns]
        max_diff = float(np.nanmax(np.abs(a.to_numpy(float) - b.to_numpy(float))))
        emit({
            "benchmark": "evaluate_vcc",
            "perturbations": args.perts, "genes": args.genes,
            "cells": args.perts * args.cells + args.ctrl_cells, "threads": 2,
            "cell_eval_wall_s": round(ce["wall_s"], 2), "cell_eval_peak_mb": round(ce["peak_rss_mb"]),
            "transpert_wall_s": round(tp["wall_s"], 2), "transpert_peak_mb": round(tp["peak_rss_mb"]),
            "speedup": round(ce["wall_s"] / tp["wall_s"], 1),
            "memory_ratio": round(tp["peak_rss_mb"] / ce["peak_rss_mb"], 3),
            "max_abs_metric_diff": max_diff,
            "file_mb": round(os.path.getsize(real) / 2**20),
        })


if __name__ == "__main__":
    main()
