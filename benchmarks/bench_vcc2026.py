"""vcc2026 suite vs ``cell-eval2 run --preset vcc2026`` (0.20.0) on CPU: whole processes, same
threads, a VCC-2026-shaped raw-count pair (18,533 genes, 400 cells per perturbation, 60 control
cells per perturbation, median depth ~20k UMI).

    flock /tmp/transpert-bench.lock python benchmarks/bench_vcc2026.py --perts 20 50 \
        --threads 2 [--ce2-score] [--workdir /tmp/bench_vcc2026]

For each scale it writes the pair once (cached in --workdir), then times, each as its own
process under /usr/bin/time (wall time, peak RSS):
- transpert run:    transpert evaluate --suite vcc2026 --real R --pred P
- transpert score:  the same with --anchor (baseline + 5-split replicate anchor + run + score)
- cell-eval2 run:   cell-eval2 run --preset vcc2026 -ar R -ap P
- cell-eval2 score (--ce2-score): cell-eval2 baseline --save-pred, prep-real-bundle (baseline
  run + anchor), run, score --real-bundle; wall times summed, peak = the largest.
It prints one JSON line per measurement and a table; both tools' avg_score are compared when
both complete scores ran.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CE2 = os.environ.get("CE2", "/work/venvs/ce2")
N_GENES = 18_533
CELLS_PER_PERT = 400
CONTROLS_PER_PERT = 60
COL = "target_gene"


def make_pair(n_perts: int, workdir: str) -> tuple[str, str]:
    """Write real.h5ad and pred.h5ad (raw counts, CSR float32) for ``n_perts`` perturbations."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    real_p = os.path.join(workdir, f"real_{n_perts}.h5ad")
    pred_p = os.path.join(workdir, f"pred_{n_perts}.h5ad")
    if os.path.exists(real_p) and os.path.exists(pred_p):
        return real_p, pred_p
    rng = np.random.default_rng(n_perts)
    genes = [f"G{i:05d}" for i in range(N_GENES)]
    base = rng.gamma(0.25, 1.0, size=N_GENES)
    base /= base.sum()
    perts = ["non-targeting"] + genes[:n_perts]
    effects = {p: np.exp(rng.normal(0, 0.4, N_GENES) * (rng.random(N_GENES) < 0.05))
               for p in perts[1:]}
    for i, p in enumerate(perts[1:]):
        effects[p][i] *= 0.1  # the knock-down

    def cells(mu, n):
        lib = np.exp(rng.normal(np.log(20_000), 0.4, n))
        blocks = []
        for s in range(0, n, 500):
            m = lib[s:s + 500, None] * mu[None, :]
            blocks.append(sp.csr_matrix(rng.poisson(m).astype(np.float32)))
        return sp.vstack(blocks, "csr")

    for path, shrink in ((real_p, 1.0), (pred_p, 0.7)):
        X, labels = [], []
        for p in perts:
            n = CONTROLS_PER_PERT * n_perts if p == "non-targeting" else CELLS_PER_PERT
            mu = base if p == "non-targeting" else base * effects[p] ** shrink
            X.append(cells(mu / mu.sum(), n))
            labels += [p] * n
        obs = pd.DataFrame({COL: pd.Categorical(labels)},
                           index=[f"c{i}" for i in range(len(labels))])
        ad.AnnData(sp.vstack(X, "csr"), obs=obs, var=pd.DataFrame(index=genes)).write_h5ad(path)
    return real_p, pred_p


def timed(cmd: list[str], env: dict) -> dict:
    """Run ``cmd`` under /usr/bin/time -v; wall seconds and peak RSS (MB)."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed:\n{proc.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return {"wall_s": round(wall, 1), "peak_mb": round(rss / 1024)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--perts", type=int, nargs="+", default=[20, 50])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", default="/tmp/bench_vcc2026")
    ap.add_argument("--ce2-score", action="store_true", help="also time cell-eval2's complete "
                    "score (baseline + prep-real-bundle + run + score; slow)")
    ap.add_argument("--skip-ce2", action="store_true", help="transpert only")
    args = ap.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    t = str(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t, MKL_NUM_THREADS=t,
               NUMBA_NUM_THREADS=t, POLARS_MAX_THREADS=t, PYTHONPATH=ROOT)
    ce2 = [os.path.join(CE2, "bin", "cell-eval2")]
    preset = ["--preset", "vcc2026", "--pert-col", COL, "--control", "non-targeting"]
    # warm numba's on-disk cache once (compilation is not what is measured)
    fix = os.path.join(ROOT, "tests", "parity_vcc2026", "fixtures")
    subprocess.run([sys.executable, "-m", "transpert", "evaluate", "--suite", "vcc2026", "--real",
                    os.path.join(fix, "real.h5ad"), "--pred", os.path.join(fix, "mixed_pred.h5ad"),
                    "--anchor", "-o", os.path.join(args.workdir, "warm"), "--overwrite"],
                   env=env, check=True, capture_output=True)
    rows = []
    for n in args.perts:
        real, pred = make_pair(n, args.workdir)
        out = os.path.join(args.workdir, f"out_{n}")
        tp = [sys.executable, "-m", "transpert", "evaluate", "--suite", "vcc2026", "--real", real,
              "--pred", pred, "--threads", t, "--overwrite", "--pert-col", COL,
              "--n-boot", "0", "--no-report"]  # cell-eval2 computes neither intervals nor a report
        rec = {"perts": n, "cells": n * CELLS_PER_PERT * (1 + CONTROLS_PER_PERT / CELLS_PER_PERT)}
        rec["transpert_run"] = timed(tp + ["-o", out + "_tp_run"], env)
        rec["transpert_score"] = timed(tp + ["-o", out + "_tp_score", "--anchor"], env)
        if not args.skip_ce2:
            rec["ce2_run"] = timed(ce2 + ["run", "-ar", real, "-ap", pred, "-o", out + "_ce2_run"]
                                   + preset, env)
        if args.ce2_score:
            base = os.path.join(args.workdir, f"baseline_{n}.h5ad")
            steps = [
                ce2 + ["baseline", "-ar", real, "-o", out + "_ce2_base", "--save-pred", base] + preset,
                ce2 + ["prep-real-bundle", "--real", real, "--baseline", base, "-o",
                       out + "_ce2_bundle", "--force"] + preset,
                ce2 + ["score", "--user-agg", os.path.join(out + "_ce2_run", "agg_results.csv"),
                       "--real-bundle", out + "_ce2_bundle", "-o", out + "_ce2_score.csv"],
            ]
            parts = [timed(s, env) for s in steps]
            parts.append(rec["ce2_run"])
            rec["ce2_score"] = {"wall_s": round(sum(p["wall_s"] for p in parts), 1),
                                "peak_mb": max(p["peak_mb"] for p in parts)}
            ours = _avg(os.path.join(out + "_tp_score", "score.csv"), "from_replicate")
            theirs = _avg(out + "_ce2_score.csv", "from_replicate")
            rec["avg_score"] = {"transpert": ours, "cell-eval2": theirs}
        print(json.dumps(rec), flush=True)
        rows.append(rec)
    _table(rows)
    return 0


def _avg(path: str, column: str) -> float:
    import pandas as pd
    frame = pd.read_csv(path)
    return float(frame.loc[frame["metric"] == "avg_score", column].iloc[0])


def _table(rows) -> None:
    print("\n| perts | cells | what | transpert s / MB | cell-eval2 s / MB | speed-up | memory |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        for what, ours, theirs in (("run", "transpert_run", "ce2_run"),
                                   ("complete score", "transpert_score", "ce2_score")):
            a, b = r[ours], r.get(theirs)
            if b is None:
                print(f"| {r['perts']} | {r['cells']:.0f} | {what} | {a['wall_s']} / {a['peak_mb']} "
                      "| - | - | - |")
                continue
            print(f"| {r['perts']} | {r['cells']:.0f} | {what} | {a['wall_s']} / {a['peak_mb']} | "
                  f"{b['wall_s']} / {b['peak_mb']} | {b['wall_s'] / a['wall_s']:.1f}x | "
                  f"{a['peak_mb'] / b['peak_mb']:.2f} |")


if __name__ == "__main__":
    raise SystemExit(main())
