"""Accuracy benchmark (issue 5): TransPert against every baseline, cross-validated over the target's
perturbations, on the simulator and on real Datlinger et al. 2021 Jurkat data.

For every task and fold: the target's perturbations are split into training and held-out, the
target's control cells into two halves (one for training, one as the held-out "real" controls);
reference lines and the target's training cells are summarised; every method is fitted on the
summaries, predicts the held-out perturbations, and its prediction is written as challenge-format
cells (transpert.predict.write_prediction) and evaluated against the held-out real cells with
cell-eval 0.8.2's metrics (transpert.evaluate), next to cell-eval's cell-mean baseline built from
the fold's training cells.

Per task, the out-of-fold predictions of all folds are pooled into one prediction file per method
and evaluated once (PDS ranks among all the task's perturbations); the challenge score (x100) and the
generalist mean rank are computed on the pooled perturbations, with 95% percentile bootstrap
intervals from resampling perturbations (the same resamples for every method, so ``p_beats``
- the fraction of resamples in which TransPert scores higher than a method - is a paired
comparison).

Tasks:
- ``simulator``: transpert.data.simulate.simulate_atlas (3 references, similarity 0.8/0.6/0.4).
- ``datlinger_unstim_to_stim`` / ``datlinger_stim_to_unstim``: one context as the reference line,
  the other as the target; 20 targets, guides pooled per target (``obs.target``), control
  ``control``.

Run:  python benchmarks/bench_accuracy.py [--quick] [--tasks ...] [--out benchmarks/_results]
Prints one JSON line (every task) on stdout and a leaderboard per task on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit  # noqa: E402

from transpert import pipeline as pl  # noqa: E402

CONTROL = "non-targeting"
DATLINGER = ["tests/data/datlinger2021_jurkat_stim_unstim_subset.h5ad",
             "/work/shared/data/real/datlinger2021_jurkat_stim_unstim_subset.h5ad"]
BEST = {"mae": 0.0}  # every other metric used here: higher is better


def _canonical(adata, pert_col: str, control: str):
    import anndata as ad

    labels = adata.obs[pert_col].astype(str).to_numpy()
    labels = np.where(labels == control, CONTROL, labels)
    out = ad.AnnData(X=adata.X.copy(), obs=pd.DataFrame({"target_gene": labels}, index=adata.obs_names.copy()),
                     var=pd.DataFrame(index=adata.var_names.copy()))
    return out


def task_simulator(seed: int, quick: bool):
    from transpert.data.simulate import simulate_atlas

    atlas = simulate_atlas(seed=seed, n_genes=800 if quick else 1500, n_perturbations=30 if quick else 60,
                           cells_per_perturbation=50 if quick else 80, n_control_cells=400 if quick else 600)
    refs = {name: atlas.lines[name] for name in atlas.reference_lines}
    return refs, atlas.lines[atlas.target_line]


def task_datlinger(reference: str, target: str):
    import anndata as ad

    path = next((p for p in DATLINGER if Path(p).exists()), None)
    if path is None:
        raise SystemExit(f"Datlinger subset not found in {DATLINGER}")
    cells = ad.read_h5ad(path)
    cond = cells.obs["condition"].astype(str).to_numpy()
    ref = _canonical(cells[cond == reference], "target", "control")
    tgt = _canonical(cells[cond == target], "target", "control")
    return {reference: ref}, tgt


def _subset(adata, mask):
    out = adata[mask].copy()
    out.obs_names_make_unique()
    return out


def run_folds(refs, target, *, n_folds: int, seed: int, methods, workdir: Path, log, move: str = "pseudobulk",
              params: dict | None = None):
    """Cross-validation over the target's perturbations, evaluated once on the pooled out-of-fold
    predictions; per-method per-perturbation metrics.

    The target's control cells are split once into two halves: the "real" controls (evaluation)
    and the training controls (every fold's training data, and the controls of every written
    prediction). In fold k the other folds' perturbations and the training controls are the
    training data; every method predicts fold k's perturbations and its prediction is written as
    cells. The perturbation cells of all folds are then pooled into ONE prediction file per method
    (plus the training controls) and evaluated once against ONE real file holding every held-out
    perturbation, so PDS ranks each perturbation among all of them, as the challenge ranks among
    all test perturbations. The cell-mean baseline is pooled the same way (each fold's rows from
    that fold's training file).
    """
    import anndata as ad
    import scipy.sparse as sp

    from transpert import evaluate as ev
    from transpert.evaluate import build_baseline
    from transpert.predict import write_prediction

    labels = target.obs["target_gene"].astype(str).to_numpy()
    perts = np.array(sorted(set(labels) - {CONTROL}))
    rng = np.random.default_rng(seed)
    folds = np.array_split(rng.permutation(perts), n_folds)
    ref_summaries = {name: pl.summarize_cells(cells, show_progress=False) for name, cells in refs.items()}
    ctrl = np.flatnonzero(labels == CONTROL)
    real_ctrl = np.zeros(len(labels), bool)
    real_ctrl[rng.choice(ctrl, len(ctrl) // 2, replace=False)] = True
    real = _subset(target, (labels != CONTROL) | real_ctrl)
    blocks: dict = {m: [] for m in ["baseline", *methods]}
    predictions: dict = {m: [] for m in methods}
    controls = {}
    for k, held in enumerate(folds):
        t0 = time.perf_counter()
        train = _subset(target, (~np.isin(labels, held) & (labels != CONTROL)) | ((labels == CONTROL) & ~real_ctrl))
        counts = (pd.Series(labels[np.isin(labels, held)]).value_counts().rename_axis("target_gene")
                  .rename("n_cells").reset_index().sort_values("target_gene"))
        train_summary = pl.summarize_cells(train, show_progress=False)
        written = {"baseline": build_baseline(train, counts)}
        for method in methods:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _, pred = pl.fit_predict(method, ref_summaries, train_summary, list(held),
                                         params=(params or {}).get(method))
            predictions[method].append(pred)
            path = workdir / f"fold{k}_{method}.h5ad"
            written[method] = write_prediction(pred, train, counts, list(target.var_names), path, seed=seed + k,
                                               max_cells=None, move=move)
            path.unlink()
        for name, cells in written.items():
            is_ctrl = (cells.obs["target_gene"].astype(str) == CONTROL).to_numpy()
            x = sp.csr_matrix(cells.X, dtype=np.float32)
            blocks[name].append((x[~is_ctrl], cells.obs["target_gene"].astype(str).to_numpy()[~is_ctrl]))
            controls.setdefault(name, x[is_ctrl])  # the training controls (fold 0's normalisation)
        log(f"  fold {k + 1}/{n_folds}: {len(held)} held out, {time.perf_counter() - t0:.1f} s")
    kw = dict(pert_col="target_gene", control=CONTROL, threads=None)
    real_p = ev.prepare(real, "real", **kw)

    def pooled_cells(name):
        x = sp.vstack([b[0] for b in blocks[name]] + [controls[name]], format="csr")
        lab = np.concatenate([b[1] for b in blocks[name]] + [np.full(controls[name].shape[0], CONTROL)])
        return ad.AnnData(X=x, obs=pd.DataFrame({"target_gene": pd.Categorical(lab)},
                                                index=[f"c{i}" for i in range(len(lab))]),
                          var=pd.DataFrame(index=target.var_names.copy()))

    base = _values(ev.evaluate_prepared(real_p, ev.prepare(pooled_cells("baseline"), "baseline", **kw),
                                        metrics=pl.GENERALIST_METRICS, **kw))
    pooled, pooled_pb = {}, {}
    for method in methods:
        res = ev.evaluate_prepared(real_p, ev.prepare(pooled_cells(method), method, **kw),
                                   metrics=pl.GENERALIST_METRICS, **kw)
        pooled[method] = _values(res)
        pooled_pb[method] = _pseudobulk_metrics(ad.concat(predictions[method], merge="first"), real_p, perts)
    return pooled, base, pooled_pb


def _pseudobulk_metrics(pred, real_p, held) -> pd.DataFrame:
    """The prediction's own pseudo-bulk (before cells are written) against the real held-out
    pseudo-bulk: MAE of means, Pearson of deltas, L1 PDS (transpert.evaluate.discrimination_scores).
    Shows what the statistics predict, independently of how cells are written."""
    from transpert.evaluate import discrimination_scores

    labels = sorted(map(str, held))
    groups = pd.Index(real_p.groups)
    real_mean = real_p.means[groups.get_indexer(labels)].astype(np.float64)
    real_ctrl = real_p.means[groups.get_loc(CONTROL)].astype(np.float64)
    genes = list(real_p.cells.var_names) if real_p.cells is not None else list(pred.var_names)
    cols = pred.var_names.get_indexer(genes)
    rows = pred.obs_names.get_indexer(labels)
    pm = np.asarray(pred.layers["mean"], dtype=np.float64)[np.ix_(rows, cols)]
    pdelta = np.asarray(pred.layers["delta"], dtype=np.float64)[np.ix_(rows, cols)]
    rdelta = real_mean - real_ctrl[None, :]
    pear = [np.corrcoef(a, b)[0, 1] if a.std() > 0 and b.std() > 0 else np.nan for a, b in zip(pdelta, rdelta)]
    return pd.DataFrame({"perturbation": labels, "pb_mae": np.abs(pm - real_mean).mean(axis=1),
                         "pb_pearson_delta": pear,
                         "pb_pds": discrimination_scores(pdelta, rdelta, labels, genes)})


def _values(result) -> pd.DataFrame:
    """Per-perturbation metric values, NaN where cell-eval has a null."""
    out = pd.DataFrame({"perturbation": result.results["perturbation"].to_numpy()})
    for m in pl.GENERALIST_METRICS:
        v = result.results[m].to_numpy(dtype=np.float64)
        out[m] = np.where(result.defined[m].to_numpy(), v, np.nan)
    return out


def _nanmean(x, axis=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def _score(user: np.ndarray, base: np.ndarray) -> np.ndarray:
    """cell-eval's score_agg_metrics on (..., 3) means of (mae, pds, des): avg of clipped scores."""
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.stack([1 - user[..., 0] / base[..., 0],
                      (user[..., 1] - base[..., 1]) / (1 - base[..., 1]),
                      (user[..., 2] - base[..., 2]) / (1 - base[..., 2])], axis=-1)
    s = np.clip(np.nan_to_num(s, nan=0.0), 0, None)
    return s.mean(axis=-1)


def leaderboard(pooled: dict, base: pd.DataFrame, *, n_boot: int, seed: int) -> pd.DataFrame:
    methods = list(pooled)
    metrics = list(pl.GENERALIST_METRICS)
    vals = np.stack([pooled[m][metrics].to_numpy() for m in methods])  # (M, N, 7)
    bvals = base[metrics].to_numpy()
    n = vals.shape[1]
    vcc = [metrics.index(c) for c in pl.VCC_METRICS]
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    point_means = _nanmean(vals, axis=1)  # (M, 7)
    point_score = 100 * _score(point_means[:, vcc], _nanmean(bvals, axis=0)[vcc])

    def ranks(means):  # (M, 7) -> (M,) mean rank, 1 = best, NaN aggregate ranks last
        r = []
        for j, m in enumerate(metrics):
            key = means[:, j] if BEST.get(m) == 0.0 else -means[:, j]
            r.append(rankdata(np.where(np.isnan(key), np.inf, key), method="average"))
        return np.mean(r, axis=0)

    boot_scores = np.empty((n_boot, len(methods)))
    boot_ranks = np.empty((n_boot, len(methods)))
    for b, i in enumerate(idx):
        means = _nanmean(vals[:, i, :], axis=1)
        boot_scores[b] = 100 * _score(means[:, vcc], _nanmean(bvals[i], axis=0)[vcc])
        boot_ranks[b] = ranks(means)
    point_rank = ranks(point_means)
    tp = methods.index("transpert") if "transpert" in methods else None
    rows = []
    for k, m in enumerate(methods):
        row = {"method": m, "score": point_score[k],
               "score_ci_low": np.quantile(boot_scores[:, k], 0.025), "score_ci_high": np.quantile(boot_scores[:, k], 0.975),
               **{c: point_means[k, j] for j, c in enumerate(metrics)},
               "mean_rank": point_rank[k], "mean_rank_ci_low": np.quantile(boot_ranks[:, k], 0.025),
               "mean_rank_ci_high": np.quantile(boot_ranks[:, k], 0.975)}
        if tp is not None and k != tp:
            row["p_transpert_beats_score"] = float(np.mean(boot_scores[:, tp] > boot_scores[:, k]))
            row["p_transpert_beats_rank"] = float(np.mean(boot_ranks[:, tp] < boot_ranks[:, k]))
        rows.append(row)
    table = pd.DataFrame(rows).sort_values(["score", "mean_rank"], ascending=[False, True]).reset_index(drop=True)
    return table


def pseudobulk_table(pooled_pb: dict, *, n_boot: int, seed: int) -> pd.DataFrame:
    """Mean of each pseudo-bulk metric with a 95% bootstrap interval over perturbations."""
    cols = ["pb_mae", "pb_pearson_delta", "pb_pds"]
    rows = []
    n = len(next(iter(pooled_pb.values())))
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    for m, frame in pooled_pb.items():
        v = frame[cols].to_numpy()
        boot = np.stack([_nanmean(v[i], axis=0) for i in idx])
        row = {"method": m}
        for j, c in enumerate(cols):
            row[c] = float(_nanmean(v[:, j]))
            row[c + "_ci_low"], row[c + "_ci_high"] = np.quantile(boot[:, j], [0.025, 0.975])
        rows.append(row)
    return pd.DataFrame(rows).sort_values("pb_pds", ascending=False).reset_index(drop=True)


def pb_markdown(pb: pd.DataFrame) -> str:
    out = ["| method | MAE [95% CI] | Pearson delta [95% CI] | PDS (L1) [95% CI] |", "|---|---|---|---|"]
    for _, r in pb.iterrows():
        out.append(f"| `{r['method']}` | " + " | ".join(
            f"{r[c]:.4f} [{r[c + '_ci_low']:.4f}, {r[c + '_ci_high']:.4f}]"
            for c in ("pb_mae", "pb_pearson_delta", "pb_pds")) + " |")
    return "\n".join(out)


def markdown(table: pd.DataFrame) -> str:
    head = ["method", "score x100 [95% CI]", "MAE", "PDS", "DES", "pearson_delta", "sp_lfc_sig", "pr_auc",
            "sp_nsig", "mean rank [95% CI]", "P(TransPert better): score / rank"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    f = lambda v: "nan" if pd.isna(v) else f"{v:.3f}"  # noqa: E731
    for _, r in table.iterrows():
        p = "" if pd.isna(r.get("p_transpert_beats_score", np.nan)) else \
            f"{r['p_transpert_beats_score']:.2f} / {r['p_transpert_beats_rank']:.2f}"
        out.append("| " + " | ".join([
            f"`{r['method']}`", f"{r['score']:.2f} [{r['score_ci_low']:.2f}, {r['score_ci_high']:.2f}]",
            *(f(r[m]) for m in pl.GENERALIST_METRICS),
            f"{r['mean_rank']:.2f} [{r['mean_rank_ci_low']:.1f}, {r['mean_rank_ci_high']:.1f}]", p]) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["simulator", "datlinger_unstim_to_stim", "datlinger_stim_to_unstim"])
    parser.add_argument("--methods", nargs="+", default=list(pl.METHODS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="a smaller simulator and fewer bootstrap resamples")
    parser.add_argument("--out", default="benchmarks/_results", help="where tables are written")
    parser.add_argument("--move", choices=("pseudobulk", "de", "all"), default="pseudobulk",
                        help="write_prediction's move (default: %(default)s)")
    parser.add_argument("--transpert-params", default=None,
                        help="JSON object of TransPert parameters (default: its defaults), e.g. "
                             "'{\"scale_metric\": \"proxy\"}'; recorded in the JSON line")
    args = parser.parse_args(argv)
    tp_params = json.loads(args.transpert_params) if args.transpert_params else {}
    if not isinstance(tp_params, dict):
        raise SystemExit(f"--transpert-params must be a JSON object, got {args.transpert_params!r}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    records = []
    for task in args.tasks:
        t0 = time.perf_counter()
        if task == "simulator":
            refs, target = task_simulator(args.seed, args.quick)
            n_folds = 3
        elif task == "datlinger_unstim_to_stim":
            refs, target = task_datlinger("unstimulated", "stimulated")
            n_folds = 4
        elif task == "datlinger_stim_to_unstim":
            refs, target = task_datlinger("stimulated", "unstimulated")
            n_folds = 4
        else:
            raise SystemExit(f"unknown task {task!r}")
        log(f"{task}: {len(refs)} reference line(s), target {target.n_obs} cells, {n_folds}-fold CV")
        with tempfile.TemporaryDirectory() as tmp:
            pooled, base, pooled_pb = run_folds(refs, target, n_folds=n_folds, seed=args.seed, methods=args.methods,
                                     workdir=Path(tmp), log=log, move=args.move,
                                     params={"transpert": tp_params})
        table = leaderboard(pooled, base, n_boot=200 if args.quick else args.n_boot, seed=args.seed)
        pb = pseudobulk_table(pooled_pb, n_boot=200 if args.quick else args.n_boot, seed=args.seed)
        tag = task if args.move == "pseudobulk" else f"{task}_move-{args.move}"
        if tp_params:
            tag += "_params-" + "-".join(f"{k}={v}" for k, v in sorted(tp_params.items()))
        pb.to_csv(out / f"accuracy_{tag}_pseudobulk.csv", index=False)
        table.to_csv(out / f"accuracy_{tag}.csv", index=False)
        md = (f"{markdown(table)}\n\nPseudo-bulk predictions (before writing cells) vs the real held-out "
              f"pseudo-bulk:\n\n{pb_markdown(pb)}\n")
        (out / f"accuracy_{tag}.md").write_text(md)
        print(f"\n## {task}\n\n{md}", file=sys.stderr, flush=True)
        tp = table.set_index("method")
        records.append({"task": task, "n_folds": n_folds,
              "n_perturbations": int(len(next(iter(pooled.values())))), "wall_s": round(time.perf_counter() - t0, 1),
              "score": {m: round(float(tp.loc[m, "score"]), 3) for m in tp.index},
              "score_ci": {m: [round(float(tp.loc[m, "score_ci_low"]), 3), round(float(tp.loc[m, "score_ci_high"]), 3)]
                           for m in tp.index},
              "mean_rank": {m: round(float(tp.loc[m, "mean_rank"]), 3) for m in tp.index},
              "pseudobulk": {r["method"]: {k: round(float(r[k]), 4) for k in ("pb_mae", "pb_pearson_delta", "pb_pds")}
                             for _, r in pb.iterrows()},
              # strictly better than every other method (a tie is not a win)
              "transpert_best_score": bool(tp.loc["transpert", "score"] > tp["score"].drop("transpert").max())
              if "transpert" in tp.index else None,
              "transpert_best_rank": bool(tp.loc["transpert", "mean_rank"] < tp["mean_rank"].drop("transpert").min())
              if "transpert" in tp.index else None})
    emit({"benchmark": "accuracy", "move": args.move, "seed": args.seed, "transpert_params": tp_params,
          "tasks": records})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
