"""``transpert summarize`` as a user runs it, on one machine and on a local Dask cluster, vs illico.

On the challenge-sized file of ``bench_de.py`` (300k cells x 18,080 genes, 300 perturbations,
log1p float32 CSR, ~4.7 GB; written once into ``benchmarks/_data/``), each run is its own
process, timed whole (imports, reading, scale check, checksum, writing the output included):

- ``cli``: ``python -m transpert summarize FILE -o OUT.h5ad`` (the single-machine engine);
- ``local1``, ``local2``: the same with ``--scheduler local:1`` / ``local:2``, the machine's
  threads shared out (1 worker x 2 threads, 2 workers x 1 thread; the API call the option makes, so the driver can also report every worker's peak memory and the cluster's
  task stream before the cluster closes; the summary is written with ``out=``, as the CLI's
  ``-o`` does, and only its uns is read back for the engine's facts);
- ``phases``: one worker thread's costs, phase by phase: the reference task and one shard of a
  4-shard plan (read, then the whole task), for the per-entry rates of the paper model;
- ``illico``: illico 0.6.0 as a whole process (``read_h5ad``, ``asymptotic_wilcoxon`` against
  the control, its table pickled), with ``--illico-python`` (a virtualenv holding illico).

Reported per run: ``wall_s``, ``cpu_s`` (user + system of the process and its children),
``peak_rss_mb`` (largest process: for the cluster runs ``driver_peak_mb`` and
``worker_peak_mb`` apart), and for the cluster runs each task kind's count, total and largest
seconds and the stored entries of the shards (the paper model in README.md uses them).

    flock /tmp/transpert-bench.lock python benchmarks/bench_distributed.py --threads 2 \\
        --illico-python .venv-illico/bin/python [--tools cli illico local1 local2]
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, run_child  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, os, resource, sys, time
t0 = time.perf_counter()
path, tool, threads, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
budget = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] else None
res = {"tool": tool}

def cpu_all():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

if tool == "cli":
    from transpert.cli import main
    code = main([ "summarize", path, "-o", out, "--threads", str(threads), "--no-progress"])
    assert code == 0
elif tool.startswith("local"):
    n = int(tool[5:])
    import distributed
    from transpert.summarize import connect_scheduler, summarize
    per_worker = max(1, threads // n)  # the machine's cores shared out, never oversubscribed
    res["threads_per_worker"] = per_worker
    with connect_scheduler(f"local:{n}", per_worker) as client:
        with distributed.get_task_stream(client) as ts:
            # written to the file as the shards' results arrive, as `transpert summarize -o`
            summarize(path, scheduler=client, threads=per_worker, show_progress=False,
                      memory_budget=budget, out=out)
        def peak():
            import resource
            r = resource.getrusage(resource.RUSAGE_SELF)
            return {"peak_mb": r.ru_maxrss / 1024, "cpu_s": r.ru_utime + r.ru_stime}
        workers = client.run(peak)
        kinds = {}
        for t in ts.data:
            kind = t["key"].split("-")[0] if isinstance(t["key"], str) else str(t["key"][0]).split("-")[0]
            span = max(x["stop"] for x in t["startstops"] if x["action"] == "compute") - \
                min(x["start"] for x in t["startstops"] if x["action"] == "compute")
            k = kinds.setdefault(kind, {"n": 0, "total_s": 0.0, "max_s": 0.0})
            k["n"] += 1; k["total_s"] += span; k["max_s"] = max(k["max_s"], span)
    res["driver_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import h5py
    with h5py.File(out, "r") as f:  # uns only: the summary's layers are not read back
        res["engine"] = json.loads(f["uns/transpert"][()])["engine"]
    res["memory_budget"] = budget
    res["planned_worker_mb"] = res["engine"].get("planned_worker_bytes", 0) / 2**20
    res["tasks"] = kinds
    res["worker_peak_mb"] = [w["peak_mb"] for w in workers.values()]
    res["worker_cpu_s"] = [w["cpu_s"] for w in workers.values()]
elif tool == "phases":
    # one worker's costs, phase by phase, on one thread: the reference task and one shard of
    # a 4-shard plan (the paper model's per-entry rates)
    import numpy as np
    from transpert.data import open_cells
    from transpert.data._rows import open_matrix, read_file_rows
    from transpert.summarize._groups import make_groups
    from transpert.summarize import _distributed as D, _shards as S
    from transpert.kernels import reference_table
    cells = open_cells(path)
    groups = make_groups(cells.obs, "target_gene", "non-targeting", None)
    per_row = np.diff(cells._matrix.indptr)
    weights = np.bincount(groups.codes, weights=per_row + 1, minlength=len(groups.labels))
    others = [c for c in range(len(groups.labels)) if c != groups.ref]
    shards = D.plan_shards(weights, others, 1.0, 4)
    spec = S.FileSpec(path=path, key="X", n_vars=cells.n_vars, scale="log1p")
    def rows_of(codes):
        return np.flatnonzero(np.isin(groups.codes, codes))
    def clock():
        return time.perf_counter(), time.process_time()
    out = {}
    for name, codes in (("reference", [groups.ref]), ("shard", shards[0])):
        rows = rows_of(codes)
        w0, c0 = clock()
        m = open_matrix(path, "X"); X = read_file_rows(m, rows); m.close()
        w1, c1 = clock()
        lo, hi = int(cells._matrix.indptr[rows[0]]), int(cells._matrix.indptr[rows[-1] + 1])
        out[name] = {"cells": len(rows), "entries": int(X.nnz), "file_entries_spanned": hi - lo,
                     "read_wall_s": w1 - w0, "read_cpu_s": c1 - c0}
        if name == "reference":
            w0, c0 = clock(); r = S.reference_task(spec, rows, True, 1); w1, c1 = clock()
        else:
            local = np.full(len(groups.labels), -1); local[codes] = np.arange(len(codes))
            w0, c0 = clock()
            r = S.shard_task(spec, rows, local[groups.codes[rows]], len(codes), ref, de=True,
                             continuity=True, memory_budget=2 * 2**30, threads=1)
            w1, c1 = clock()
        out[name].update(task_wall_s=w1 - w0, task_cpu_s=c1 - c0)
        if name == "reference":
            ref = r
            out[name]["table_values"] = int(r["table"][0].size)
    res.update(out)
elif tool == "illico":
    import anndata as ad
    import numpy as np
    from illico import asymptotic_wilcoxon
    a = ad.read_h5ad(path)
    X = a.X
    if X.indptr.dtype != X.indices.dtype and X.nnz < 2**31:  # its Rust kernels need one type
        X.indptr = X.indptr.astype(X.indices.dtype)
    df = asymptotic_wilcoxon(a, is_log1p=True, group_keys="target_gene", reference="non-targeting",
                             n_threads=threads)
    df.to_pickle(out)
res["inner_wall_s"] = time.perf_counter() - t0
res["cpu_s"] = cpu_all()
print(json.dumps(res))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scale", type=float, default=1.0, help="file size relative to the challenge's")
    ap.add_argument("--tools", nargs="+", default=["cli", "illico", "local1", "local2"])
    ap.add_argument("--illico-python", default=None, help="interpreter of a virtualenv with illico 0.6.0")
    ap.add_argument("--file", type=Path, default=None,
                    help="an existing h5ad instead of the challenge-sized simulated file")
    ap.add_argument("--memory-budget", default="",
                    help="the cluster runs' memory_budget (e.g. 2GB; default: summarize's)")
    args = ap.parse_args(argv)
    from bench_de import dataset

    n_cells = max(2000, int(300_000 * args.scale))
    n_genes = max(200, int(18_080 * args.scale))
    n_perts = max(5, int(300 * args.scale))
    path = args.file or dataset(n_cells, n_genes, n_perts)
    emit({"bench": "distributed", "file": path.name, "size_gb": round(path.stat().st_size / 1e9, 2),
          "threads": args.threads, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
          "load_avg": os.getloadavg()})
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory(prefix="transpert-bench-") as tmp:
        for tool in args.tools:
            out = str(Path(tmp) / f"{tool}.out")
            python = args.illico_python if tool == "illico" else None
            if tool == "illico" and python is None:
                emit({"tool": tool, "skipped": "no --illico-python"})
                continue
            load = os.getloadavg()[0]
            res = run_child(CHILD, [str(path), tool, str(args.threads), out, args.memory_budget], env=env,
                            python=python)
            res["load_avg_before"] = load
            res["load_avg_after"] = os.getloadavg()[0]
            emit(res)
            if os.path.exists(out):
                os.remove(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
