"""Real-data check of the DEG classifier: K562 -> RPE1 up-regulated signatures (Replogle 2022).

For the 585 CRISPRi targets perturbed in both K562 and RPE1, rank RPE1's up-regulated genes
(`up_top`) for held-out targets (5-fold over targets) with the statsmodels ridge-logistic DEG
classifier (features: K562 rank scores and membership, the gene's frequency among RPE1's
training signatures and among K562's signatures), and compare with copying K562's lists.
Prints one JSON line: mean per-target AUPRC of each ranking with 95% bootstrap intervals over
held-out targets, and of the difference classifier - copy-K562.

    /work/venv/bin/python benchmarks/bench_replogle_deg.py [--max-targets N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from transpert.transfer.signatures import read_signatures, signature_transfer_experiment

DEFAULT = Path(__file__).resolve().parent.parent / "tests" / "data" / \
    "replogle2022_k562_rpe1_up_signatures.csv.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signatures", default=str(DEFAULT))
    parser.add_argument("--source", default="K562")
    parser.add_argument("--target", default="RPE1")
    parser.add_argument("--max-targets", type=int, default=None)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--boot", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    result = signature_transfer_experiment(
        read_signatures(args.signatures), source=args.source, target=args.target,
        n_folds=args.folds, n_boot=args.boot, max_targets=args.max_targets, seed=args.seed)
    result["benchmark"] = "replogle_deg_transfer"
    result["seconds"] = round(time.perf_counter() - start, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
