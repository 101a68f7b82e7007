"""The whole 2025 run at real size: ``transpert run`` on simulated stand-ins of the four
references and the H1 target, timed as a whole process, peak memory stage by stage.

Stand-ins (written by ``transpert.data.simulate.write_large_dataset`` chunk by chunk, never the
whole matrix in memory), with the real files' shapes and layouts (``/work/shared/DATA.md``):

========  =========  ======  ======  ========  ======================================
file      cells      genes   targets controls  layout
========  =========  ======  ======  ========  ======================================
K562      310,385    8,563   2,057   10,691    dense float32 raw counts (Replogle)
RPE1      247,914    8,749   2,393   11,485    dense float32 raw counts (Replogle)
HepG2     145,473    9,624   2,393    6,700    dense float32 raw counts (Nadig)
Jurkat    262,956    8,882   2,393   12,100    dense float32 raw counts (Nadig)
H1 train  221,273    18,080    150   38,176    CSR float32 raw counts (challenge)
========  =========  ======  ======  ========  ======================================

The genes are positions in one catalogue: H1 has the first 18,080; every reference holds a core of
6,642 genes shared by all four (the challenge's 200 targets among them) plus its own others;
2,053 knockdowns are shared by all four references, the 200 challenge targets among them. The H1
training file perturbs 150 of the 200; the other 50 are the validation perturbations, whose
counts table (``target_gene,n_cells,median_umi_per_cell``, 60,751 cells) the run predicts. Nadig's
control counts are not given in DATA.md (the RPE1 share is used). The effects of a perturbation
are drawn independently per line: the stand-ins measure time and memory, not accuracy.

The run (``methods: [transpert]``, ``threads: 2``) goes under the machine's benchmark lock:
``flock /tmp/transpert-bench.lock python -m transpert run CONFIG``. The process tree's resident
memory (the run and any children) is sampled every 0.2 s; the run's own stage lines (``run.py``
says each stage's seconds) split the samples into stages. Prints one JSON line per stage and one
for the whole run, and a Markdown table.

    python benchmarks/bench_real_size_run.py --data /work/bigdata/realsize [--keep] [--build-only]
    python benchmarks/bench_real_size_run.py --data /tmp/smoke --scale 0.01 --no-lock  # smoke run

The stand-ins take ~38 GB of disk; they are deleted after the run unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT)]  # this tree's transpert
from _common import emit  # noqa: E402

LOCK = "/tmp/transpert-bench.lock"
N_H1_GENES = 18_080
N_CORE_GENES = 6_642
N_SHARED_KNOCKDOWNS = 2_053
N_TRAIN, N_VALIDATION = 150, 50
VALIDATION_CELLS = 60_751
# name: (cells, genes, targets, controls, median UMI per cell)
REFERENCES = {
    "K562": (310_385, 8_563, 2_057, 10_691, 11_000),
    "RPE1": (247_914, 8_749, 2_393, 11_485, 11_000),
    "HepG2": (145_473, 9_624, 2_393, 6_700, 10_000),
    "Jurkat": (262_956, 8_882, 2_393, 12_100, 10_000),
}
H1 = (221_273, N_H1_GENES, N_TRAIN, 38_176, 50_000)
REFERENCE_DENSITY = 0.3  # expressed-gene panels of the essential screens: denser than H1's 11%


def plan(seed: int = 0) -> dict:
    """Genes and targets (catalogue positions) of every file, and the validation targets."""
    rng = np.random.default_rng([seed, 2025])
    h1_genes = np.arange(N_H1_GENES)
    challenge = rng.choice(h1_genes, N_TRAIN + N_VALIDATION, replace=False)
    rest = np.setdiff1d(h1_genes, challenge)
    core = np.concatenate([challenge, rng.choice(rest, N_CORE_GENES - challenge.size, replace=False)])
    outside = np.setdiff1d(h1_genes, core)
    shared_kd = np.concatenate([challenge, rng.choice(np.setdiff1d(core, challenge),
                                                      N_SHARED_KNOCKDOWNS - challenge.size, replace=False)])
    out = {"H1": {"genes": h1_genes, "targets": np.sort(challenge[:N_TRAIN])},
           "validation": np.sort(challenge[N_TRAIN:])}
    for name, (_cells, n_genes, n_targets, _ctrl, _depth) in REFERENCES.items():
        own = rng.choice(outside, n_genes - core.size, replace=False)
        genes = np.sort(np.concatenate([core, own]))
        extra = rng.choice(np.setdiff1d(genes, shared_kd), n_targets - shared_kd.size, replace=False)
        out[name] = {"genes": genes, "targets": np.sort(np.concatenate([shared_kd, extra]))}
    return out


def build(data: Path, threads: int, scale: float = 1.0) -> dict:
    """Write the stand-ins that are absent, the validation counts table and the config."""
    from transpert.data.simulate import write_large_dataset
    from transpert.data.simulate._genes import gene_symbols

    data.mkdir(parents=True, exist_ok=True)
    p = plan()
    built = {}
    specs = {**{n: (v, "dense", REFERENCE_DENSITY) for n, v in REFERENCES.items()}, "H1": (H1, "csr", 0.11)}
    for seed, (name, ((cells, n_genes, n_targets, n_ctrl, depth), layout, density)) in enumerate(specs.items()):
        path = data / f"{name}.h5ad"
        if path.exists():
            continue
        t = time.perf_counter()
        cells, n_ctrl = int(cells * scale), max(1, int(n_ctrl * scale))
        info = write_large_dataset(path, n_cells=cells, n_genes=n_genes, n_perturbations=n_targets,
                                   n_control_cells=n_ctrl, density=density, depth=depth, layout=layout,
                                   genes=p[name]["genes"], targets=p[name]["targets"], seed=100 + seed,
                                   threads=threads, show_progress=False)
        built[name] = {"seconds": round(time.perf_counter() - t, 1), "bytes": path.stat().st_size,
                       "density": round(info.density, 4)}
        emit({"built": name, **built[name]})
    symbols = gene_symbols(N_H1_GENES)
    rng = np.random.default_rng(7)
    w = rng.uniform(0.7, 1.3, N_VALIDATION)
    n_val = int(VALIDATION_CELLS * scale)
    n_cells = np.floor(w / w.sum() * n_val).astype(int)
    n_cells[: n_val - n_cells.sum()] += 1
    import pandas as pd

    pd.DataFrame({"target_gene": symbols[p["validation"]], "n_cells": n_cells,
                  "median_umi_per_cell": np.round(rng.normal(50_000, 3_000, N_VALIDATION)).astype(int)}
                 ).to_csv(data / "pert_counts_Validation.csv", index=False)
    refs = "\n".join(f"  {n}: {n}.h5ad" for n in REFERENCES)
    (data / "config.yaml").write_text(
        f"output: run\nreferences:\n{refs}\ntarget_train: H1.h5ad\ncounts: pert_counts_Validation.csv\n"
        f"methods: [transpert]\nthreads: {threads}\nseed: 0\n")
    return built


def tree_rss(proc) -> int:
    """Resident bytes of ``proc`` and all its descendants (0 for those gone meanwhile)."""
    import psutil

    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def measured_run(data: Path, lock: bool) -> dict:
    """``transpert run`` as a whole process; per stage: seconds (the run's own) and peak tree RSS."""
    import psutil

    cmd = [sys.executable, "-m", "transpert", "run", str(data / "config.yaml"), "--overwrite"]
    if lock:
        cmd = ["flock", LOCK, *cmd]
    samples, lines = [], []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            cwd=str(ROOT), env=dict(os.environ, PYTHONPATH=str(ROOT)))
    ps = psutil.Process(proc.pid)
    started = threading.Event()

    def sample():
        while proc.poll() is None:
            try:
                samples.append((time.perf_counter(), tree_rss(ps)))
            except psutil.Error:
                break
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t_lock = None
    for line in proc.stdout:
        now = time.perf_counter()
        if t_lock is None:  # the first line comes once the lock is held and the run started
            t_lock = now
            started.set()
        lines.append((now, line.rstrip()))
        print(line.rstrip(), file=sys.stderr, flush=True)
    proc.wait()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"transpert run exited with {proc.returncode}")
    record = json.loads((data / "run" / "run.json").read_text())
    stages = record["timings"]["stages"]
    # a stage line "      NAME: S s" closes that stage; its samples are those since the previous line
    rows, prev = [], t_lock
    for t, text in lines:
        name = text.strip().rsplit(":", 1)[0]
        if name in stages:
            peak = max((r for ts, r in samples if prev <= ts <= t), default=0)
            rows.append({"stage": name, "seconds": stages[name], "peak_rss_gb": round(peak / 1e9, 2)})
            prev = t
    tail = max((r for ts, r in samples if ts >= prev), default=0)
    rows.append({"stage": "after the last stage (recording run.json)", "seconds": None,
                 "peak_rss_gb": round(tail / 1e9, 2)})
    wall = lines[-1][0] - t_lock if lines else None
    total = {"stage": "TOTAL", "run_total_s": record["timings"]["total_s"],
             "process_wall_s_after_lock": round(wall, 1) if wall else None,
             "peak_rss_gb": round(max(r for _, r in samples) / 1e9, 2) if samples else None,
             "load_before": os.getloadavg()}
    return {"stages": rows, "total": total}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("/work/bigdata/realsize"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the stand-ins after the run")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--no-lock", action="store_true")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="cells of every file times this (a quick smoke run; 1 = real size)")
    args = ap.parse_args(argv)
    build(args.data, args.threads, args.scale)
    if args.build_only:
        return 0
    result = measured_run(args.data, lock=not args.no_lock)
    for row in result["stages"]:
        emit(row)
    emit(result["total"])
    print("\n| stage | seconds | peak RSS (GB, process tree) |\n|---|---:|---:|")
    for row in result["stages"]:
        sec = "" if row["seconds"] is None else f"{row['seconds']:.1f}"
        print(f"| {row['stage']} | {sec} | {row['peak_rss_gb']:.2f} |")
    tot = result["total"]
    print(f"| **total** | {tot['run_total_s']:.1f} | {tot['peak_rss_gb']:.2f} |")
    if not args.keep:
        for f in args.data.glob("*.h5ad"):
            f.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
