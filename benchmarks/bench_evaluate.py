"""Benchmark: ``cell-eval run --profile vcc`` vs ``transpert evaluate --suite`` on a VCC-shaped pair.

Two references, one per suite: ``--suite cell-eval-0.8.2`` (default) times cell-eval 0.8.2 from
this environment; ``--suite vcc2025 --cell-eval-python VENV/bin/python`` times cell-eval 0.6.6
+ pdex 0.1.27 (the 2025 leaderboard's scorer) from its own virtual environment.

The pair is shaped like the Virtual Cell Challenge's files: 18,080 genes, 100 perturbations x
~610 cells + ~8,900 controls (12.7%, the H1 share) = 70,000 cells per file, ~11% non-zero.

- real: raw UMI counts (float32, integer-valued), as the challenge's real (H1) files are, from
  ``transpert.data.simulate.write_large_dataset`` (H1-like depth and sparsity, perturbations
  named after genes, cells shuffled);
- pred: log1p-normalised float32 values, as challenge submissions are (``cell-eval prep``
  writes the prediction's X as float32; models emit log1p expression): each real count is
  redrawn as Poisson(count x noise[perturbation, gene]) with a seeded log-normal noise, then
  normalised to the real file's median library size and log1p'd. So each tool exercises both
  input paths: per-file normalisation of counts and log1p passed through.

Both files are written once, chunk by chunk, and cached under ``benchmarks/_data/``; the
tools' outputs are kept under ``benchmarks/_results/evaluate/`` (both git-ignored). Each tool
runs in its own subprocess with 2 threads (cell-eval ``--num-threads 2``; numba/BLAS/polars
thread variables at 2), measured the same way (``_common.run_child``: wall time of the whole
process, imports and file reading included, and its peak RSS). The script also measures what
the imports alone cost (numba + anndata + scipy + pandas; transpert's evaluation imports;
cell-eval's imports) and checks that both tools' per-perturbation metrics agree, with
transpert's default tie order (genes tied in |log2FC| in file order) and, in an untimed extra
run, with cell-eval's own (``--ties polars``). One JSON line.

    python benchmarks/bench_evaluate.py                   # full size, both tools (~20 min)
    python benchmarks/bench_evaluate.py --quick           # 20 perturbations x 2,000 genes
    python benchmarks/bench_evaluate.py --transpert-only  # transpert alone on the cached pair
    python benchmarks/bench_evaluate.py --quick --suite vcc2025 \
        --cell-eval-python /path/to/venv-ce066/bin/python   # vs cell-eval 0.6.6 + pdex 0.1.27
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import shutil
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import emit, run_child  # noqa: E402

DATA = Path(__file__).parent / "_data"
THREAD_ENV = {"NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2",
              "MKL_NUM_THREADS": "2", "POLARS_MAX_THREADS": "2"}
PRED_NOISE = 0.3  # sd of the log-normal noise on the predicted counts


def write_pred(real: Path, out: Path, seed: int, target_sum: float) -> None:
    """A log1p prediction derived from the real counts, streamed chunk by chunk into ``out``."""
    import h5py
    from anndata.io import write_elem

    from transpert._io import atomic_path
    from transpert.data import open_cells

    rng = np.random.default_rng(seed + 1)
    with open_cells(real) as cells, atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        labels = cells.obs["target_gene"].astype(str).to_numpy()
        groups, codes = np.unique(labels, return_inverse=True)
        noise = np.exp(rng.normal(0.0, PRED_NOISE, (groups.size, cells.n_vars)))
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        X = f.create_group("X")
        X.attrs["encoding-type"] = "csr_matrix"
        X.attrs["encoding-version"] = "0.1.0"
        X.attrs["shape"] = np.array([cells.n_obs, cells.n_vars], dtype=np.int64)
        data = X.create_dataset("data", shape=(0,), maxshape=(None,), dtype=np.float32, chunks=(1 << 20,))
        indices = X.create_dataset("indices", shape=(0,), maxshape=(None,), dtype=np.int32, chunks=(1 << 20,))
        indptr = [np.zeros(1, dtype=np.int64)]
        for start, stop, block in cells.iter_chunks():
            block = block.tocsr()
            rows = np.repeat(codes[start:stop], np.diff(block.indptr))
            block.data = rng.poisson(block.data.astype(np.float64) * noise[rows, block.indices]).astype(np.float32)
            block.eliminate_zeros()
            lib = np.asarray(block.sum(axis=1, dtype=np.float64)).ravel()
            scale = np.repeat(target_sum / np.maximum(lib, 1.0), np.diff(block.indptr))
            values = np.log1p(block.data * scale).astype(np.float32)
            at = data.shape[0]
            data.resize((at + values.size,))
            indices.resize((at + values.size,))
            data[at:] = values
            indices[at:] = block.indices.astype(np.int32)
            indptr.append(at + block.indptr[1:].astype(np.int64))
        X.create_dataset("indptr", data=np.concatenate(indptr))
        obs = cells.obs[["target_gene"]].copy()
        obs["target_gene"] = obs["target_gene"].astype("category")
        write_elem(f, "obs", obs)
        write_elem(f, "var", cells.var[[]].copy())
        for name in ("uns", "obsm", "varm", "layers", "obsp", "varp"):
            write_elem(f, name, {})


def cached_pair(n_cells: int, n_genes: int, n_perts: int, seed: int) -> tuple[Path, Path]:
    """The real (counts) and predicted (log1p) files, generated once into ``benchmarks/_data``."""
    from transpert.data.simulate import write_large_dataset

    DATA.mkdir(parents=True, exist_ok=True)
    stem = f"evaluate_{n_cells}x{n_genes}_p{n_perts}_s{seed}"
    real, pred = DATA / f"{stem}_real_counts.h5ad", DATA / f"{stem}_pred_log1p.h5ad"
    if not real.exists():
        write_large_dataset(real, n_cells=n_cells, n_genes=n_genes, n_perturbations=n_perts,
                            scale="counts", seed=seed, threads=2)
    if not pred.exists():
        from transpert.data import open_cells

        with open_cells(real) as cells:
            target = float(np.median(cells.scan().library_sizes))
        write_pred(real, pred, seed, target)
    return real, pred


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
           "--threads", "2", "-o", sys.argv[3], "--n-boot", "0", "--no-report", *sys.argv[4:]])
assert rc == 0
print(json.dumps({"inner_s": time.perf_counter() - t}))
"""

IMPORTS = {
    # the stack every evaluation process pays before reading a byte
    "numba_anndata_scipy_pandas": "import numba, anndata, scipy.sparse, pandas, json; print(json.dumps({}))",
    "transpert_evaluate": ("import json, transpert.evaluate, transpert.summarize, transpert.kernels; "
                           "print(json.dumps({}))"),
    "cell_eval": "import json, cell_eval, pdex, polars; print(json.dumps({}))",
}


def load_average() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def compare(ce_dir: Path, tp_dir: Path) -> dict:
    """Per metric column: largest per-perturbation difference, number of perturbations that
    differ at all, and whether NaNs are in the same places."""
    import pandas as pd

    a = pd.read_csv(ce_dir / "results.csv").set_index("perturbation")
    b = pd.read_csv(tp_dir / "results.csv").set_index("perturbation")
    out = {"same_perturbations": bool(sorted(a.index) == sorted(b.index))}
    b = b.loc[a.index, a.columns]
    for c in a.columns:
        x, y = a[c].to_numpy(float), b[c].to_numpy(float)
        diff = np.abs(x - y)
        out[c] = {"max_abs_diff": float(np.nanmax(diff)) if len(x) else 0.0,
                  "n_differ": int(np.sum(diff > 0)),
                  "nan_same": bool(np.array_equal(np.isnan(x), np.isnan(y)))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--perts", type=int, default=100)
    parser.add_argument("--genes", type=int, default=18080)
    parser.add_argument("--cells", type=int, default=70_000, help="cells per file, controls included")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="20 perturbations x 2,000 genes, 8,000 cells")
    parser.add_argument("--transpert-only", action="store_true", help="time transpert alone")
    parser.add_argument("--suite", default="cell-eval-0.8.2", choices=["cell-eval-0.8.2", "vcc2025"],
                        help="transpert's suite; cell-eval of the matching version is the reference")
    parser.add_argument("--cell-eval-python", default=None,
                        help="interpreter of the environment holding the reference cell-eval "
                        "(default: this one; for vcc2025 a venv with cell-eval 0.6.6 + pdex 0.1.27)")
    parser.add_argument("--outdir", default=str(Path(__file__).parent / "_results" / "evaluate"),
                        help="the tools' output directories go here [%(default)s]")
    args = parser.parse_args()
    if args.quick:
        args.perts, args.genes, args.cells = 20, 2000, 8000
    real, pred = cached_pair(args.cells, args.genes, args.perts, args.seed)
    if args.suite == "vcc2025" and args.cell_eval_python is None and not args.transpert_only:
        parser.error("--suite vcc2025 needs --cell-eval-python (a venv with cell-eval 0.6.6 + pdex 0.1.27)")
    record = {"benchmark": "evaluate_vcc" + ("_transpert_only" if args.transpert_only else ""),
              "suite": args.suite,
              "perturbations": args.perts, "genes": args.genes, "cells_per_file": args.cells,
              "threads": 2, "real": real.name, "pred": pred.name,
              "real_mb": round(os.path.getsize(real) / 2**20), "pred_mb": round(os.path.getsize(pred) / 2**20),
              "load_before": load_average()}
    for name, code in IMPORTS.items():
        if name == "cell_eval" and args.transpert_only:
            continue
        py = args.cell_eval_python if name == "cell_eval" else None
        record[f"imports_{name}_peak_mb"] = round(run_child(code, [], env=THREAD_ENV,
                                                            python=py)["peak_rss_mb"])
    out = Path(args.outdir) / (real.stem.replace("_real_counts", "") + f"_{args.suite}")
    suite_arg = ["--suite", args.suite]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tp = run_child(TRANSPERT, [str(real), str(pred), str(out / "transpert"), *suite_arg], env=THREAD_ENV)
    record.update(transpert_wall_s=round(tp["wall_s"], 2), transpert_peak_mb=round(tp["peak_rss_mb"]))
    if not args.transpert_only:
        ce = run_child(CELL_EVAL, [str(real), str(pred), str(out / "cell_eval")], env=THREAD_ENV,
                       python=args.cell_eval_python)
        record.update(cell_eval_wall_s=round(ce["wall_s"], 2), cell_eval_peak_mb=round(ce["peak_rss_mb"]),
                      speedup=round(ce["wall_s"] / tp["wall_s"], 1),
                      memory_ratio=round(tp["peak_rss_mb"] / ce["peak_rss_mb"], 3),
                      agreement=compare(out / "cell_eval", out / "transpert"))
        # Untimed: cell-eval's own tie order for genes tied in |log2FC| (polars, same threads).
        run_child(TRANSPERT, [str(real), str(pred), str(out / "transpert_polars_ties"), *suite_arg,
                              "--ties", "polars"], env=THREAD_ENV)
        record["agreement_polars_ties"] = compare(out / "cell_eval", out / "transpert_polars_ties")
    record["load_after"] = load_average()
    emit(record)


if __name__ == "__main__":
    main()
