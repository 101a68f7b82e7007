"""Benchmark: writing a raw-count prediction of the 2026 task's size
(``write_prediction(..., format="counts")``).

The target's control cells: 46 constructs x 400 = 18,400 simulated cells x 18,533 genes of raw
counts at ~20,000 UMI per cell, ``--density`` non-zero (default 0.25, about 4,600 genes detected
per cell; ``transpert simulate --large`` with one perturbation, cached). The pseudo-bulk
prediction: ``--perturbations`` (300), every gene's control mean moved by a seeded log-normal
factor (sd 0.1), 50 genes per perturbation called DE and moved by a factor 2 or 1/2. Each
perturbation gets ``--cells`` cells (400); all control cells are written too. The write runs in
its own subprocess (``_common.run_child``: whole-process wall time and peak RSS); ``write_s`` is
the ``write_prediction`` call alone, ``write_cpu_s`` its CPU time over all threads (on a shared
machine, ``write_cpu_s / 2`` bounds what two free cores would take). One JSON line per cell count: run two to see memory flat in
the number of cells.

    flock /tmp/transpert-bench.lock python benchmarks/bench_writer_counts.py              # 400 cells
    flock /tmp/transpert-bench.lock python benchmarks/bench_writer_counts.py --cells 100 400
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_writer import timed_write  # noqa: E402

N_CONTROLS, N_GENES, DEPTH = 18_400, 18_533, 20_000

WRITE = """
import json, sys, time
import numpy as np, pandas as pd, anndata as ad
from transpert.baselines import make_prediction
from transpert.data import normalize_log1p
from transpert.predict import write_prediction

controls_path, out, n_cells, n_perts = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t = time.perf_counter()
controls = ad.read_h5ad(controls_path)
controls = controls[(controls.obs["target_gene"] == "non-targeting").to_numpy()].copy()
genes = list(controls.var_names)
lib = float(np.median(np.asarray(controls.X.sum(axis=1))))
control_mean = np.asarray(normalize_log1p(controls.X, target_sum=lib).mean(axis=0)).ravel()
rng = np.random.default_rng(0)
perts = [f"P{i}" for i in range(n_perts)]
factor = np.exp(rng.normal(0.0, 0.1, (n_perts, len(genes))))
prob = np.zeros((n_perts, len(genes)))
expressed = np.flatnonzero(control_mean > 0.05)
for i in range(n_perts):
    de = rng.choice(expressed, 50, replace=False)
    factor[i, de] = rng.choice([0.5, 2.0], 50)
    prob[i, de] = 1.0
mean = np.log1p(np.expm1(control_mean)[None, :] * factor)
pred = make_prediction(perts, pd.Index(genes), control_mean, mean - control_mean[None, :],
                       method="bench", deg_probability=prob)
del factor, mean, prob
counts = pd.DataFrame({"target_gene": perts, "n_cells": [n_cells] * n_perts})
setup = time.perf_counter() - t
import resource
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
t, c = time.perf_counter(), cpu()
write_prediction(pred, controls, counts, genes, out, format="counts")
write_s, write_cpu_s = time.perf_counter() - t, cpu() - c
import h5py
with h5py.File(out, "r") as f:
    shape, nnz = [int(v) for v in f["X"].attrs["shape"]], int(f["X"]["indptr"][-1])
print(json.dumps({"setup_s": setup, "write_s": write_s, "write_cpu_s": write_cpu_s, "n_obs": shape[0], "n_vars": shape[1], "nnz": nnz}))
"""


def control_file(density: float) -> Path:
    """The cached simulated control cells (raw counts), written once."""
    from transpert.data.simulate import write_large_dataset

    path = Path(__file__).parent / "_results" / "writer_counts" / f"controls_d{density:g}.h5ad"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_large_dataset(path, n_cells=N_CONTROLS + 400, n_genes=N_GENES, n_perturbations=1,
                            n_control_cells=N_CONTROLS, scale="counts", density=density, depth=DEPTH,
                            order="grouped", seed=0)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[400], help="cells per perturbation (one run each)")
    parser.add_argument("--perturbations", type=int, default=300)
    parser.add_argument("--density", type=float, default=0.25)
    parser.add_argument("--out", default=str(Path(__file__).parent / "_results" / "writer_counts" / "pred.h5ad"))
    args = parser.parse_args()
    controls = control_file(args.density)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for n in args.cells:
        timed_write({"benchmark": "writer_counts", "cells_per_perturbation": n,
                     "perturbations": args.perturbations, "density": args.density},
                    WRITE, [str(controls), args.out, str(n), str(args.perturbations)], args.out)


if __name__ == "__main__":
    main()
