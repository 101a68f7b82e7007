"""Store what cell-eval2 0.20.0 does when a submission's real data is not the real bundle's.

    /path/to/venv-with-cell-eval2-0.20.0/bin/python regenerate_mismatch.py [CELL_EVAL2_BIN]

Run by regenerate.sh after the bundle is written. For each case of
``make_fixtures.MISMATCH_CASES`` it writes the pair (``make_fixtures.mismatch_pair``), runs
``cell-eval2 run --preset vcc2026`` on it and ``cell-eval2 score --real-bundle expected/bundle``
on the run's aggregate, and keeps in ``expected/mismatch/<case>.json``: the run's exit code, the
real side's ``source_fingerprint`` from its run_meta.json, the score's exit code, whether it
refused and the refusal's last line (or the avg_score it wrote).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_fixtures import COL, CONTROL, MISMATCH_CASES, mismatch_pair  # noqa: E402


def main(ce2: str) -> None:
    out = os.path.join(HERE, "expected", "mismatch")
    os.makedirs(out, exist_ok=True)
    bundle = os.path.join(HERE, "expected", "bundle")
    with tempfile.TemporaryDirectory() as work:
        for case in MISMATCH_CASES:
            real, pred = mismatch_pair(case, os.path.join(HERE, "fixtures"), work)
            run_dir = os.path.join(work, f"run_{case}")
            run = subprocess.run([ce2, "run", "-ap", pred, "-ar", real, "-o", run_dir,
                                  "--preset", "vcc2026", "--pert-col", COL, "--control", CONTROL],
                                 capture_output=True, text=True)
            record = {"case": case, "run_rc": run.returncode}
            if run.returncode == 0:
                with open(os.path.join(run_dir, "run_meta.json")) as fh:
                    meta = json.load(fh)
                record["source_fingerprint"] = meta["source_fingerprint"]
                score_csv = os.path.join(work, f"score_{case}.csv")
                score = subprocess.run([ce2, "score", "--user-agg",
                                        os.path.join(run_dir, "agg_results.csv"),
                                        "--real-bundle", bundle, "-o", score_csv],
                                       capture_output=True, text=True)
                record["score_rc"] = score.returncode
                record["refused"] = score.returncode != 0
                if score.returncode != 0:
                    record["message"] = score.stderr.strip().splitlines()[-1]
                else:
                    table = pd.read_csv(score_csv).set_index("metric")
                    record["avg_score"] = float(table.loc["avg_score", "from_replicate"])
            else:
                record["message"] = run.stderr.strip().splitlines()[-1]
            with open(os.path.join(out, f"{case}.json"), "w") as fh:
                json.dump(record, fh, indent=1)
            print(case, record.get("refused"), record.get("message", record.get("avg_score")))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "cell-eval2")
