"""Streaming log1p normalisation of a backed h5ad vs scanpy on the whole file: time, peak memory.

Writes (once) a seeded negative-binomial CSR counts file chunk by chunk under
``benchmarks/_data/``, then runs each side in a fresh subprocess and reports wall time and peak
RSS, and the largest difference between the per-gene sums of the two normalised matrices.
Prints one JSON line.

    /work/venv/bin/python benchmarks/bench_data_stream.py [--cells 100000] [--genes 5000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent / "_data"

CHILD = r"""
import json, resource, sys, time
import numpy as np
path, mode = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
if mode == "transpert":
    from transpert.data import open_cells
    with open_cells(path) as cells:
        sums = np.zeros(cells.n_vars)
        for _, _, block in cells.iter_log1p_chunks():
            # float64 column sums without scipy temporaries (exact up to summation order)
            sums += np.bincount(block.indices, weights=block.data.astype(np.float64), minlength=cells.n_vars)
else:
    import anndata as ad, scanpy as sc
    adata = ad.read_h5ad(path)
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    X = adata.X
    sums = np.bincount(X.indices, weights=X.data.astype(np.float64), minlength=X.shape[1])
seconds = time.perf_counter() - t0
np.save(sys.argv[3], sums)
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_counts(path: Path, n_cells: int, n_genes: int, seed: int, chunk: int = 10_000) -> None:
    """A CSR counts h5ad written chunk by chunk (never the whole matrix in memory)."""
    import anndata as ad
    import h5py
    import numpy as np
    import pandas as pd
    from anndata.io import write_elem

    rng = np.random.default_rng(seed)
    mean = rng.lognormal(-1.5, 1.5, n_genes)  # per-gene mean UMI
    labels = np.where(rng.random(n_cells) < 0.1, "non-targeting",
                      np.char.add("G", rng.integers(0, 200, n_cells).astype(str)))
    tmp = path.with_suffix(".tmp.h5ad")
    with h5py.File(tmp, "w") as f:
        f.attrs["encoding-type"], f.attrs["encoding-version"] = "anndata", "0.1.0"
        write_elem(f, "obs", pd.DataFrame({"target_gene": labels}, index=[f"c{i}" for i in range(n_cells)]))
        write_elem(f, "var", pd.DataFrame(index=[f"gene{j}" for j in range(n_genes)]))
        for key in ("uns", "obsm", "varm", "layers", "obsp", "varp"):
            write_elem(f, key, {})
        g = f.create_group("X")
        g.attrs["encoding-type"], g.attrs["encoding-version"] = "csr_matrix", "0.1.0"
        g.attrs["shape"] = (n_cells, n_genes)
        data = g.create_dataset("data", (0,), maxshape=(None,), dtype=np.float32, chunks=(1 << 16,))
        indices = g.create_dataset("indices", (0,), maxshape=(None,), dtype=np.int32, chunks=(1 << 16,))
        indptr = [0]
        for start in range(0, n_cells, chunk):
            n = min(chunk, n_cells - start)
            depth = rng.lognormal(0, 0.5, (n, 1))
            block = rng.negative_binomial(2, 2 / (2 + mean * depth)).astype(np.float32)
            rows, cols = np.nonzero(block)
            lo = data.shape[0]
            data.resize((lo + rows.size,))
            indices.resize((lo + rows.size,))
            data[lo:] = block[rows, cols]
            indices[lo:] = cols
            indptr.extend((lo + np.cumsum(np.bincount(rows, minlength=n))).tolist())
        g.create_dataset("indptr", data=np.asarray(indptr, dtype=np.int64))
    ad.read_h5ad(tmp, backed="r").file.close()  # readable by anndata
    tmp.rename(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--genes", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    DATA.mkdir(exist_ok=True)
    path = DATA / f"stream_{args.cells}x{args.genes}_s{args.seed}.h5ad"
    t0 = time.perf_counter()
    if not path.exists():
        write_counts(path, args.cells, args.genes, args.seed)
    write_s = time.perf_counter() - t0
    import numpy as np

    out = {"benchmark": "data_stream_log1p", "cells": args.cells, "genes": args.genes,
           "file_mb": round(path.stat().st_size / 2**20, 1), "write_seconds": round(write_s, 1)}
    sums = {}
    for mode in ("transpert", "scanpy"):
        npy = DATA / f"sums_{mode}.npy"
        res = subprocess.run([sys.executable, "-c", CHILD, str(path), mode, str(npy)],
                             capture_output=True, text=True, check=True)
        out[mode] = json.loads(res.stdout.strip().splitlines()[-1])
        sums[mode] = np.load(npy)
    out["max_abs_diff_gene_sums"] = float(np.abs(sums["transpert"] - sums["scanpy"]).max())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
