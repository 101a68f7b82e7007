"""Benchmark: writing a challenge-sized prediction (``transpert.predict.write_prediction``).

The target's control cells are those of the evaluation benchmark's cached real file (raw
counts, 18,080 genes, ~8,900 control cells, H1-like depth; ``bench_evaluate.cached_pair``). The
pseudo-bulk prediction: 100 perturbations, each gene's control mean moved by a seeded
log-normal factor (sd 0.1), 50 genes per perturbation called DE and moved by a factor of 2 or
1/2. The counts table asks for ``--cells`` cells in total (controls included), spread evenly;
``move="pseudobulk"``, ``cells="quantile"`` (the defaults). The write runs in its own subprocess
(``_common.run_child``: whole-process wall time and peak RSS). One JSON line.

    python benchmarks/bench_writer.py                  # 100,000 cells (the challenge's cap)
    python benchmarks/bench_writer.py --cells 200000

The child runs as ``python -c``, so it imports the ``transpert`` of the current directory first:
to measure another commit, run the script from that commit's checkout.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit, run_child  # noqa: E402
from bench_evaluate import THREAD_ENV, cached_pair, load_average  # noqa: E402

WRITE = """
import json, sys, time
import numpy as np, pandas as pd
from transpert.data.controls import control_cells, file_median_library_size
from transpert.baselines import make_prediction
from transpert.predict import write_prediction

real, out, n_total = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = time.perf_counter()
controls = control_cells(real, what="target controls", pert_col="target_gene", control="non-targeting")
target_sum = file_median_library_size(real, what="target controls")
genes = list(controls.var_names)
rng = np.random.default_rng(0)
from transpert.data import normalize_log1p
ctrl = normalize_log1p(controls.X, target_sum=target_sum)
control_mean = np.asarray(ctrl.mean(axis=0)).ravel()
perts = [f"P{i}" for i in range(100)]
factor = np.exp(rng.normal(0.0, 0.1, (len(perts), len(genes))))
prob = np.zeros((len(perts), len(genes)))
for i in range(len(perts)):
    de = rng.choice(len(genes), 50, replace=False)
    factor[i, de] = rng.choice([0.5, 2.0], 50)
    prob[i, de] = 1.0
mean = np.log1p(np.expm1(control_mean)[None, :] * factor)
pred = make_prediction(perts, pd.Index(genes), control_mean, mean - control_mean[None, :],
                       method="bench", deg_probability=prob)
n_ctrl = controls.n_obs
per = max(1, (n_total - n_ctrl) // len(perts))
counts = pd.DataFrame({"target_gene": perts, "n_cells": [per] * len(perts)})
setup = time.perf_counter() - t
t = time.perf_counter()
write_prediction(pred, controls, counts, genes, out, max_cells=None, target_sum=target_sum)
write_s = time.perf_counter() - t
import h5py
with h5py.File(out, "r") as f:
    shape, nnz = [int(v) for v in f["X"].attrs["shape"]], int(f["X"]["indptr"][-1])
print(json.dumps({"setup_s": setup, "write_s": write_s, "n_obs": shape[0], "n_vars": shape[1], "nnz": nnz}))
"""


def timed_write(record: dict, code: str, argv: list[str], out: str) -> None:
    """Run a writer ``code`` in its own process (wall time, peak RSS) and emit ``record`` with the
    timings, the written file's size and the load average before and after."""
    record["load_before"] = load_average()
    r = run_child(code, argv, env=THREAD_ENV)
    record.update({k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()})
    record["file_mb"] = round(os.path.getsize(out) / 2**20)
    record["load_after"] = load_average()
    emit(record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--out", default=str(Path(__file__).parent / "_results" / "writer" / "pred.h5ad"))
    args = parser.parse_args()
    real, _ = cached_pair(70_000, 18_080, 100, 0)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    timed_write({"benchmark": "writer", "cells_requested": args.cells}, WRITE,
                [str(real), args.out, str(args.cells)], args.out)


if __name__ == "__main__":
    main()
