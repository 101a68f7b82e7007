"""Regenerate the stored reference outputs of the parity tests with the pinned scorers.

Usage (from the repository root)::

    python tests/parity/regenerate.py --ce066 /path/to/venv-ce066 --ce082 /path/to/venv-ce082

Each ``--ceXXX`` is a virtual environment holding exactly one pinned scorer:

- ``ce066``: ``cell-eval==0.6.6`` and ``pdex==0.1.27`` (the 2025 leaderboard's scorer, suite
  ``vcc2025``);
- ``ce082``: ``cell-eval==0.8.2`` (suite ``cell-eval-0.8.2``).

For every fixture of ``tests/parity/parity_fixtures.py`` the script writes the real, predicted and
training files to a temporary directory and runs, in each environment, whole processes of the
scorer's own command line:

- ``cell-eval run --profile full`` (every metric but pearson_edistance and
  clustering_agreement): ``results.csv``, ``agg_results.csv`` and the two DE tables;
- ``cell-eval baseline`` on the training file, ``cell-eval run --profile vcc`` for the
  prediction and for the baseline, ``cell-eval score``: ``score.csv``.

polars runs with one thread (``POLARS_MAX_THREADS=1``) so that its ordering of tied fold changes
is deterministic. Outputs go to ``tests/parity/<suite>/<fixture>/`` (DE tables gzipped).
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from parity_fixtures import FIXTURES, counts_table, make_fixture  # noqa: E402

SUITES = {"ce066": "vcc2025", "ce082": "cell-eval-0.8.2"}
SKIP = "pearson_edistance,clustering_agreement"


def _run(venv: Path, args: list[str], cwd: Path) -> None:
    env = dict(os.environ, POLARS_MAX_THREADS="1", NUMBA_NUM_THREADS="1")
    cmd = [str(venv / "bin" / "cell-eval"), *args]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"failed: {' '.join(cmd)}")


def _versions(venv: Path) -> str:
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze"],
                         capture_output=True, text=True, check=True).stdout
    keep = ("cell-eval", "pdex", "polars", "numpy", "scipy", "scanpy", "anndata")
    return "".join(line + "\n" for line in out.splitlines() if line.split("==")[0] in keep)


def regenerate(venvs: dict[str, Path], fixtures: list[str]) -> None:
    for key, venv in venvs.items():
        suite_dir = HERE / SUITES[key]
        suite_dir.mkdir(exist_ok=True)
        (suite_dir / "VERSIONS.txt").write_text(_versions(venv))
        for name in fixtures:
            with tempfile.TemporaryDirectory() as tmp:
                tmp = Path(tmp)
                real, pred, train = make_fixture(name)
                real.write_h5ad(tmp / "real.h5ad")
                pred.write_h5ad(tmp / "pred.h5ad")
                train.write_h5ad(tmp / "train.h5ad")
                counts_table(real).to_csv(tmp / "counts.csv", index=False)
                _run(venv, ["run", "-ap", "pred.h5ad", "-ar", "real.h5ad", "-o", "full",
                            "--profile", "full", "--skip-metrics", SKIP, "--num-threads", "1"], tmp)
                _run(venv, ["baseline", "-a", "train.h5ad", "-c", "counts.csv", "-o", "base.h5ad",
                            "--skip-de"], tmp)
                for which, src in (("user", "pred.h5ad"), ("base", "base.h5ad")):
                    _run(venv, ["run", "-ap", src, "-ar", "real.h5ad", "-o", which,
                                "--profile", "vcc", "--num-threads", "1",
                                "-dr", "full/real_de.csv"], tmp)
                _run(venv, ["score", "-i", "user/agg_results.csv", "-I", "base/agg_results.csv",
                            "-o", "score.csv"], tmp)
                out = suite_dir / name
                out.mkdir(exist_ok=True)
                shutil.copy(tmp / "full" / "results.csv", out / "results.csv")
                shutil.copy(tmp / "full" / "agg_results.csv", out / "agg_results.csv")
                shutil.copy(tmp / "score.csv", out / "score.csv")
                for de in ("real_de.csv", "pred_de.csv"):
                    with open(tmp / "full" / de, "rb") as src, \
                            gzip.GzipFile(out / (de + ".gz"), "wb", mtime=0) as dst:
                        shutil.copyfileobj(src, dst)
                print(f"{SUITES[key]}/{name}: done")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ce066", type=Path, help="venv with cell-eval 0.6.6 + pdex 0.1.27")
    parser.add_argument("--ce082", type=Path, help="venv with cell-eval 0.8.2")
    parser.add_argument("--fixtures", nargs="*", default=list(FIXTURES))
    args = parser.parse_args()
    venvs = {k: v for k, v in (("ce066", args.ce066), ("ce082", args.ce082)) if v is not None}
    if not venvs:
        parser.error("give at least one of --ce066, --ce082")
    regenerate(venvs, args.fixtures)


if __name__ == "__main__":
    main()
