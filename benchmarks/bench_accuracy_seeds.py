"""Accuracy across split sets: ``bench_accuracy.py`` (folds protocol) once per seed, then how
often and by how much TransPert leads.

Each seed is one set of 5 seeded splits (split r of seed s uses seed s + r), so seeds 0, 100,
200, ... give disjoint split sets of the same perturbations. Per task it prints TransPert's score
and mean rank with the best other method's per seed, the mean over seeds (the mean over every
fold evaluation, since each seed has the same number), and in how many seeds TransPert was
strictly first on each. One JSON line on stdout; the per-seed leaderboards go to stderr as
``bench_accuracy.py`` prints them.

    python benchmarks/bench_accuracy_seeds.py --tasks datlinger_unstim_to_stim datlinger_stim_to_unstim
    python benchmarks/bench_accuracy_seeds.py --seeds 0 100 --tasks simulator -- --n-boot 200

Arguments after ``--`` are passed to ``bench_accuracy.py`` for every seed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit  # noqa: E402


def summarise(records: dict[int, dict]) -> dict[str, dict]:
    """``{seed: bench_accuracy JSON record}`` -> per task: per-seed TransPert and best-other
    score / mean rank, their means over seeds, and TransPert's strict wins."""
    out: dict[str, dict] = {}
    tasks = [t["task"] for t in next(iter(records.values()))["tasks"]]
    for task in tasks:
        rows = []
        for seed, record in records.items():
            t = next(x for x in record["tasks"] if x["task"] == task)
            others = [m for m in t["score"] if m != "transpert"]
            best_score = max(others, key=lambda m: t["score"][m])
            best_rank = min(others, key=lambda m: t["mean_rank"][m])
            rows.append({"seed": seed, "score": t["score"]["transpert"], "rank": t["mean_rank"]["transpert"],
                         "other_score": t["score"][best_score], "other_score_method": best_score,
                         "other_rank": t["mean_rank"][best_rank], "other_rank_method": best_rank,
                         "scores": t["score"], "ranks": t["mean_rank"]})
        methods = list(rows[0]["scores"])
        mean_score = {m: sum(r["scores"][m] for r in rows) / len(rows) for m in methods}
        mean_rank = {m: sum(r["ranks"][m] for r in rows) / len(rows) for m in methods}
        others = [m for m in methods if m != "transpert"]
        out[task] = {
            "per_seed": [{k: v for k, v in r.items() if k not in ("scores", "ranks")} for r in rows],
            "mean_score": mean_score, "mean_rank": mean_rank,
            "best_other_mean_score": max(others, key=mean_score.get),
            "best_other_mean_rank": min(others, key=mean_rank.get),
            "seeds_best_score": sum(r["score"] > r["other_score"] for r in rows),
            "seeds_best_rank": sum(r["rank"] < r["other_rank"] for r in rows),
            "n_seeds": len(rows),
        }
    return out


def markdown(summary: dict[str, dict]) -> str:
    lines = []
    for task, s in summary.items():
        lines += [f"### {task}", "", "| seed | TransPert score / mean rank | best other score | best other mean rank |",
                  "|---|---|---|---|"]
        for r in s["per_seed"]:
            lines.append(f"| {r['seed']} | {r['score']:.2f} / {r['rank']:.2f} | {r['other_score']:.2f} "
                         f"(`{r['other_score_method']}`) | {r['other_rank']:.2f} (`{r['other_rank_method']}`) |")
        ms, mr = s["mean_score"], s["mean_rank"]
        bs, br = s["best_other_mean_score"], s["best_other_mean_rank"]
        lines += [f"| mean | {ms['transpert']:.2f} / {mr['transpert']:.2f} | {ms[bs]:.2f} (`{bs}`) | "
                  f"{mr[br]:.2f} (`{br}`) |", "",
                  f"TransPert strictly first on score in {s['seeds_best_score']} of {s['n_seeds']} seeds, "
                  f"on mean rank in {s['seeds_best_rank']} of {s['n_seeds']}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 100, 200, 300, 400])
    parser.add_argument("--tasks", nargs="+", default=["datlinger_unstim_to_stim", "datlinger_stim_to_unstim"])
    args = parser.parse_args(argv)
    if "--protocol" in passthrough or "--seed" in passthrough:
        raise SystemExit("--protocol and --seed are set per run here (folds protocol, --seeds)")
    import bench_accuracy

    records = {}
    for seed in args.seeds:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            bench_accuracy.main(["--tasks", *args.tasks, "--seed", str(seed), *passthrough])
        records[seed] = json.loads(buffer.getvalue().strip().splitlines()[-1])
    summary = summarise(records)
    print("\n" + markdown(summary), file=sys.stderr, flush=True)
    emit({"benchmark": "accuracy_seeds", "seeds": args.seeds, "tasks": summary,
          "passthrough": passthrough})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
