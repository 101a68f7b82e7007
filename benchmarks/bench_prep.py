"""Benchmark: ``cell-eval prep`` (0.8.2) vs ``transpert prep`` on VCC-shaped predictions.

Two inputs from ``bench_evaluate.py``'s cached pair (70,000 cells x 18,080 genes, ~11%
non-zero, float32 CSR; generated once into ``benchmarks/_data/``):

- ``log1p``: the log1p prediction, as model outputs are (checked, passed through);
- ``counts``: the raw-count file, as a count-scale prediction would be (normalised to the
  median library size and log1p'd).

The gene list is the file's genes in reverse order, so both tools also reorder every column
(what ``cell-eval prep`` does when a prediction's genes are in another order). Each tool runs in
its own subprocess (``_common.run_child``: wall time of the whole process, imports included,
and its peak RSS); zstd runs with ``-T0`` in both. Both ``.vcc`` files are then unpacked and
compared entry for entry (CSR indptr, indices, data; obs; genes). One JSON line.

    python benchmarks/bench_prep.py            # full size (~3 min)
    python benchmarks/bench_prep.py --quick    # 8,000 cells x 2,000 genes
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit, run_child  # noqa: E402
from bench_evaluate import THREAD_ENV, cached_pair, load_average  # noqa: E402

CELL_EVAL = """
import json, sys, time
from cell_eval.__main__ import main
sys.argv = ["cell-eval", "prep", "-i", sys.argv[1], "-g", sys.argv[2], "-o", sys.argv[3],
            "-e", "32", "--pert-col", "target_gene"]
t = time.perf_counter()
main()
print(json.dumps({"inner_s": time.perf_counter() - t}))
"""

TRANSPERT = """
import json, sys, time
from transpert.cli import main
t = time.perf_counter()
assert main(["prep", sys.argv[1], "--genes", sys.argv[2], "-o", sys.argv[3]]) == 0
print(json.dumps({"inner_s": time.perf_counter() - t}))
"""


def unpack(vcc: Path, where: Path):
    import anndata as ad

    where.mkdir(parents=True)
    with tarfile.open(vcc) as tar:
        tar.extractall(where)
    subprocess.run(["zstd", "-q", "-d", "--rm", str(where / "pred.h5ad.zst")], check=True)
    return ad.read_h5ad(where / "pred.h5ad")


def identical(a, b) -> bool:
    """The two prepared files hold the same matrix entries, obs and genes."""
    same = list(a.var_names) == list(b.var_names) and list(a.obs_names) == list(b.obs_names)
    same &= bool((a.obs.astype(str).to_numpy() == b.obs.astype(str).to_numpy()).all())
    same &= a.X.format == b.X.format and a.X.dtype == b.X.dtype
    for part in ("indptr", "indices", "data"):
        same &= bool(np.array_equal(getattr(a.X, part), getattr(b.X, part)))
    return bool(same)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8,000 cells x 2,000 genes")
    parser.add_argument("--outdir", default=str(Path(__file__).parent / "_results" / "prep"))
    args = parser.parse_args()
    if shutil.which("zstd") is None:
        raise SystemExit("bench_prep needs the zstd command (cell-eval prep calls it)")
    n_cells, n_genes, n_perts = (8000, 2000, 20) if args.quick else (70_000, 18_080, 100)
    real, pred = cached_pair(n_cells, n_genes, n_perts, 0)
    out = Path(args.outdir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    record = {"benchmark": "prep", "cells": n_cells, "genes": n_genes, "load_before": load_average()}
    import h5py
    from anndata.io import read_elem

    for kind, path in (("log1p", pred), ("counts", real)):
        genes = out / f"genes_{kind}.csv"
        with h5py.File(path, "r") as f:
            var = read_elem(f["var"])
        np.savetxt(genes, np.asarray(var.index.astype(str))[::-1], fmt="%s")
        tp = run_child(TRANSPERT, [str(path), str(genes), str(out / f"tp_{kind}.vcc")], env=THREAD_ENV)
        ce = run_child(CELL_EVAL, [str(path), str(genes), str(out / f"ce_{kind}.vcc")], env=THREAD_ENV)
        same = identical(unpack(out / f"tp_{kind}.vcc", out / f"tp_{kind}"),
                         unpack(out / f"ce_{kind}.vcc", out / f"ce_{kind}"))
        record.update({f"{kind}_transpert_wall_s": round(tp["wall_s"], 2),
                       f"{kind}_transpert_peak_mb": round(tp["peak_rss_mb"]),
                       f"{kind}_cell_eval_wall_s": round(ce["wall_s"], 2),
                       f"{kind}_cell_eval_peak_mb": round(ce["peak_rss_mb"]),
                       f"{kind}_speedup": round(ce["wall_s"] / tp["wall_s"], 2),
                       f"{kind}_memory_ratio": round(tp["peak_rss_mb"] / ce["peak_rss_mb"], 3),
                       f"{kind}_identical": same})
    record["load_after"] = load_average()
    emit(record)


if __name__ == "__main__":
    main()
