"""Shared benchmark helpers: run one measured step in a fresh subprocess, print JSON lines.

A child script prints one JSON object as its last stdout line; :func:`run_child` adds the wall
time of the whole subprocess and the child's peak resident memory (``ru_maxrss`` of the
children, read after it exits), so every tool is measured the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def run_child(code: str, args: list[str], env: dict | None = None, timeout: float | None = None,
              python: str | None = None) -> dict:
    """Run ``python -c code *args`` in a new process; return its JSON result plus
    ``wall_s`` (whole process) and ``peak_rss_mb`` (that child's own peak RSS).

    ``python``: the interpreter of the measured child (default: this one), e.g. another
    virtualenv's for a tool that needs other package versions."""
    full_env = dict(os.environ, **(env or {}))
    # each child is measured in a fresh grandchild so ru_maxrss(RUSAGE_CHILDREN) is its own
    wrapper = (
        "import json, resource, subprocess, sys\n"
        "p = subprocess.run([sys.argv[1], '-c', sys.argv[2], *sys.argv[3:]], capture_output=True, text=True)\n"
        "sys.stderr.write(p.stderr[-4000:])\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(p.stdout.strip().splitlines()[-1] if p.returncode == 0 and p.stdout.strip() else 'null')\n"
        "print(json.dumps({'peak_rss_mb': peak, 'returncode': p.returncode}))\n"
    )
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", wrapper, python or sys.executable, code, *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout)
    wall = time.perf_counter() - t0
    lines = proc.stdout.strip().splitlines()
    if len(lines) < 2:
        raise RuntimeError(f"benchmark child failed:\n{proc.stderr[-4000:]}")
    result = json.loads(lines[-2]) or {}
    meta = json.loads(lines[-1])
    if meta["returncode"] != 0:
        raise RuntimeError(f"benchmark child exited with {meta['returncode']}:\n{proc.stderr[-4000:]}")
    result.update(wall_s=wall, peak_rss_mb=meta["peak_rss_mb"])
    return result


def emit(record: dict) -> None:
    """Print one JSON line (the benchmark's machine-readable result)."""
    print(json.dumps(record, sort_keys=True), flush=True)
