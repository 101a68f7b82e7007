"""Zero-shot benchmark: leave-one-line-out, each held-out line known by its control cells only.

Tasks (every line of each in turn is the target, the others are the references):

* ``simulator``: ``transpert simulate``'s atlas (3 reference lines + 1 target = 4 lines);
* ``lowrank``: the second generator, ``simulate_lowrank`` (3 programme lines + 1 target);
* ``datlinger``: real Datlinger 2021 Jurkat, stimulated <-> unstimulated as two lines;
* ``papalexi``: real Papalexi 2021 THP-1, its three biological replicates as lines.

For each target: half of its control cells (seeded) are the visible controls, the other half go
with all its perturbed cells into the held-out "real" file. Every zero-shot method is fitted on
the reference summaries and the visible controls, predicts every perturbation of the target and
is written as cells (:func:`transpert.predict.write_prediction`). Scored two ways:

1. transpert's evaluation suite (cell-eval 0.8.2's metrics, :func:`evaluate_methods`): the
   challenge score against the ``zero-shot-mean-response`` prediction as baseline (the reference
   lines' mean response: the zero-shot counterpart of the cell-mean baseline), 95% bootstrap
   intervals over perturbations, and the raw metrics;
2. the 2026 challenge's way: each prediction also written as raw counts
   (``write_prediction(..., format="counts")`` from the visible controls) and scored with
   transpert's vcc2026 suite against the held-out raw cells, anchored on the mean-response
   baseline and the replicate anchor built from them (:func:`vcc2026_scores`), per member and
   the score, 95% bootstrap interval over perturbations;
3. the profile-level criterion
   (:func:`transpert.transfer.zero_shot_criterion.profile_criterion`, NOT the vcc2026 scorer):
   the predicted pseudo-bulk against the target's full summary, 95% bootstrap interval over
   perturbations (per-perturbation PDS computed once, the rest on each resample).

And ``replogle``: the cross-line DEG classifier at signature level, zero-shot: RPE1's
``up_top`` lists predicted from K562's lists by a classifier trained on the *other* direction
(K562's lists from RPE1's) on a disjoint half of the targets, so no RPE1 label is ever a
training label; against copying K562's list. AUPRC per target, 95% bootstrap intervals.

    nice python benchmarks/bench_zero_shot.py [--tasks simulator lowrank datlinger papalexi replogle]
        [--n-boot 1000] [--out DIR] [--from-records DIR/zero_shot_records.json]
        [--variant 'NAME={"criterion": "profile"}' ...]   # also zero-shot TransPert with these parameters

Prints one JSON line per (task, target, method) and markdown tables.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from transpert.data.schema import CONTROL_LABEL, PERT_COL

ROOT = Path(__file__).resolve().parent.parent / "tests" / "data"
METHODS = ("transpert-zero-shot", "zero-shot-reference-mean", "zero-shot-linear",
           "zero-shot-mean-response", "zero-shot-control")
BASELINE = "zero-shot-mean-response"
VCC26_MEMBERS = ("pds_cosine", "expr_mse_unbiased_capped_norm", "de_wilcoxon_direction_fidelity_yield_raw",
                 "de_wilcoxon_direction_reach_raw", "de_wilcoxon_sig_jaccard", "de_wilcoxon_lfc_nmae")


def _canonical(adata, pert_col: str, is_control):
    import anndata as ad

    labels = np.where(is_control, CONTROL_LABEL, adata.obs[pert_col].astype(str).to_numpy())
    return ad.AnnData(X=adata.X.copy(), obs=pd.DataFrame({PERT_COL: labels}, index=adata.obs_names.copy()),
                      var=pd.DataFrame(index=adata.var_names.copy()))


def lines_simulator(seed: int) -> dict:
    from transpert.data.simulate import simulate_atlas

    atlas = simulate_atlas(seed=seed, n_genes=1000, n_perturbations=40, cells_per_perturbation=50,
                           n_control_cells=400)
    return {name: atlas.lines[name] for name in [*atlas.reference_lines, atlas.target_line]}


def lines_lowrank(seed: int) -> dict:
    from transpert.data.simulate import simulate_lowrank

    atlas = simulate_lowrank(seed=seed, n_genes=1000, n_perturbations=40, cells_per_perturbation=50,
                             n_control_cells=400)
    return {name: atlas.lines[name] for name in [*atlas.reference_lines, atlas.target_line]}


def lines_datlinger() -> dict:
    import anndata as ad

    cells = ad.read_h5ad(ROOT / "datlinger2021_jurkat_stim_unstim_subset.h5ad")
    cond = cells.obs["condition"].astype(str).to_numpy()
    ctrl = cells.obs["is_control"].to_numpy().astype(bool)
    return {c: _canonical(cells[cond == c], "target", ctrl[cond == c]) for c in ("stimulated", "unstimulated")}


def lines_papalexi() -> dict:
    import anndata as ad

    cells = ad.read_h5ad(ROOT / "papalexi2021_thp1_lowmoi_subset.h5ad")
    rep = cells.obs["bio_rep"].astype(str).to_numpy()
    ctrl = cells.obs["is_control"].to_numpy().astype(bool)
    return {r: _canonical(cells[rep == r], "target", ctrl[rep == r]) for r in sorted(set(rep))}


def _called(pred) -> np.ndarray:
    """The genes a prediction calls DE: its ``n_de_genes`` first by deg_probability (else |delta|)."""
    score = pred.layers["deg_probability"] if "deg_probability" in pred.layers else np.abs(pred.layers["delta"])
    score = np.asarray(score, dtype=np.float64)
    k = pred.obs["n_de_genes"].to_numpy().astype(int) if "n_de_genes" in pred.obs else np.zeros(pred.n_obs, int)
    called = np.zeros(score.shape, dtype=bool)
    order = np.argsort(-score, axis=1, kind="stable")
    for i in range(len(k)):
        called[i, order[i, :k[i]]] = True
    return called


def criterion_with_interval(pred, real_summary, n_boot: int, seed: int) -> dict:
    """The summary-level criterion of a prediction and a bootstrap interval over perturbations."""
    from transpert.metrics import discrimination_scores
    from transpert.transfer.zero_shot_criterion import profile_criterion

    perts = list(real_summary.obs_names)
    genes = list(real_summary.var_names)
    ctrl = np.asarray(real_summary.var["control_mean"], dtype=np.float64)
    pred = pred[perts, genes]
    pred_delta = np.asarray(pred.layers["mean"], dtype=np.float64) - ctrl[None, :]
    real_delta = np.nan_to_num(np.asarray(real_summary.layers["delta"], dtype=np.float64))
    real_sig = np.nan_to_num(np.asarray(real_summary.layers["fdr"], dtype=np.float64), nan=1.0) < 0.05
    called = _called(pred)
    full = profile_criterion(pred_delta, called, real_delta, real_sig, ctrl, perts, genes)
    pds = discrimination_scores(np.clip(ctrl + pred_delta, 0, None) - ctrl, real_delta, perts, genes,
                                metric="cosine")
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(perts), len(perts))
        boots.append(profile_criterion(pred_delta[idx], called[idx], real_delta[idx], real_sig[idx], ctrl,
                                       [perts[i] for i in idx], genes, pds_values=pds[idx])["score"])
    full["score_ci"] = [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))]
    return full


def _anchored(user: dict, base: dict, rep: dict) -> dict:
    """Each scored member on the vcc2026 scale (NaN where the replicate anchor leaves no headroom
    over the baseline: cell-eval2 refuses the score there) and the mean over the defined ones."""
    from transpert._errors import TranspertInputError
    from transpert.evaluate.vcc2026._score import ORDER, score_member

    out = {}
    for m in ORDER:
        try:
            out[m] = score_member(m, user.get(m), float(base[m]), float(rep[m]))
        except TranspertInputError:
            out[m] = np.nan
    vals = [v for v in out.values() if np.isfinite(v)]
    out["score"] = float(np.mean(vals)) if vals else np.nan
    return out


def vcc2026_scores(real_path, predictions: dict, n_boot: int, seed: int) -> dict:
    """Each prediction (raw counts) scored by transpert's vcc2026 suite against the real cells
    (raw counts), anchored as ``evaluate_vcc2026(..., anchor=True)`` anchors: the mean-response
    baseline and the replicate anchor built from the real cells (once, shared by the methods).
    Returns per method: the six scored members' means, their scaled values, the score (mean of
    the scaled members; a member whose anchor has no headroom over the baseline is left out and
    counted in ``vcc26_undefined``: cell-eval2 refuses the whole score then) and a 95% bootstrap
    interval of the score over perturbations (baseline and anchor held fixed; the same resamples
    for every method)."""
    from transpert._errors import TranspertInputError
    from transpert.evaluate.vcc2026._anchor import replicate_anchor
    from transpert.evaluate.vcc2026._baseline import baseline_side
    from transpert.evaluate.vcc2026._config import DERIVED, SCORED
    from transpert.evaluate.vcc2026._run import (agg_table, metrics_from_sides, results_table,
                                                  run_metrics, summarize_real)

    real = summarize_real(real_path)
    base_agg = agg_table(results_table(metrics_from_sides(real, baseline_side(real, 0))))
    base = base_agg.set_index("statistic").loc["mean"].astype(float).to_dict()
    try:
        _, anchor = replicate_anchor(real, 0, 5)
        rep = dict(zip(anchor.metric, anchor.replicate.astype(float)))
    except TranspertInputError as err:  # e.g. no perturbation with >= 10 significant genes
        print(f"vcc2026 replicate anchor undefined on {real_path}: {err}", flush=True)
        rep = {m: np.nan for m in SCORED}
    out = {}
    for method, path in predictions.items():
        # the same resamples of perturbations for every method: intervals independent of the
        # methods' order, and comparable between methods
        rng = np.random.default_rng(seed)
        results = run_metrics(real, path)
        wide = results.pivot(index="perturbation", columns="metric", values="value").reindex(
            columns=sorted(set(SCORED) - set(DERIVED) | {c for pair in DERIVED.values() for c in pair}))

        def user(rows):
            w = wide.iloc[rows]
            u = {m: float(np.nanmean(w[m])) if np.isfinite(w[m]).any() else np.nan
                 for m in SCORED if m not in DERIVED}
            for m, (num, den) in DERIVED.items():
                ok = np.isfinite(w[num]) & np.isfinite(w[den])
                u[m] = float(w[num][ok].sum() / w[den][ok].sum()) if ok.any() else np.nan
            return u

        n = len(wide)
        u = user(np.arange(n))
        full = _anchored(u, base, rep)
        boots = [_anchored(user(rng.integers(0, n, n)), base, rep)["score"] for _ in range(n_boot)]
        out[method] = {"vcc26_score": full["score"],
                       "vcc26_score_ci": ([float(np.nanquantile(boots, .025)), float(np.nanquantile(boots, .975))]
                                          if np.isfinite(boots).any() else [np.nan, np.nan]),
                       "vcc26_undefined": [m for m in SCORED if not np.isfinite(full[m])],
                       **{f"vcc26_{m}": u[m] for m in SCORED},
                       **{f"vcc26_s_{m}": full[m] for m in SCORED},
                       "vcc26_baseline": {m: base[m] for m in SCORED},
                       "vcc26_anchor": {m: rep[m] for m in SCORED}}
    return out


def run_target(task: str, lines: dict, summaries: dict, target: str, workdir: Path, *, n_boot: int,
               seed: int, variants: dict | None = None) -> list[dict]:
    from transpert._io import write_h5ad_atomic
    from transpert.evaluate.leaderboard import evaluate_methods
    from transpert.methods import fit_predict
    from transpert.predict import write_prediction

    cells = lines[target]
    labels = cells.obs[PERT_COL].astype(str).to_numpy()
    ctrl_rows = np.flatnonzero(labels == CONTROL_LABEL)
    rng = np.random.default_rng(seed)
    visible = np.zeros(len(labels), dtype=bool)
    visible[rng.choice(ctrl_rows, len(ctrl_rows) // 2, replace=False)] = True
    controls = cells[visible].copy()
    real = cells[~visible].copy()
    real.obs_names_make_unique()
    d = workdir / task / target
    d.mkdir(parents=True, exist_ok=True)
    real_path = write_h5ad_atomic(real, d / "real.h5ad")
    perts = sorted(set(labels) - {CONTROL_LABEL})
    counts = (pd.Series(labels[labels != CONTROL_LABEL]).value_counts().rename_axis(PERT_COL)
              .rename("n_cells").reset_index().sort_values(PERT_COL, kind="stable"))
    refs = {k: v for k, v in summaries.items() if k != target}
    genes = list(cells.var_names)
    predictions, preds, raw, info = {}, {}, {}, {}
    variants = variants or {}
    methods = [*METHODS, *variants]
    for method in methods:
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if method in variants:  # zero-shot TransPert with other parameters
                model, pred = fit_predict("transpert-zero-shot", refs, controls, perts, params=variants[method])
            else:
                model, pred = fit_predict(method, refs, controls, perts)
        info[method] = {"fit_predict_s": round(time.perf_counter() - t, 2)}
        if method == "transpert-zero-shot" or method in variants:
            info[method].update(temperature=model.temperature_, shrinkage=model.shrinkage_,
                                common_scale=model.common_scale_,
                                specific_scale=model.specific_scale_, deg_threshold=model.deg_threshold_,
                                deg_source=model.deg_source_,
                                weights=model.weights_["weight"].round(3).to_dict())
        path = d / f"{method}.h5ad"
        write_prediction(pred, controls, counts, genes, path, seed=seed, max_cells=None)
        raw_path = d / f"{method}.counts.h5ad"
        write_prediction(pred, controls, counts, genes, raw_path, seed=seed, format="counts")
        predictions[method], preds[method], raw[method] = str(path), pred, str(raw_path)
    board = evaluate_methods(str(real_path), predictions, predictions[BASELINE], n_boot=n_boot, seed=seed)
    vcc26 = vcc2026_scores(str(real_path), raw, n_boot, seed)
    table = board.table.set_index("method")
    records = []
    for method in methods:
        crit = criterion_with_interval(preds[method], summaries[target], n_boot, seed)
        row = table.loc[method]
        records.append({"task": task, "target": target, "method": method,
                        "score": float(row["score"]), "score_ci": [float(row["score_ci_low"]), float(row["score_ci_high"])],
                        **{k: (float(row[k]) if isinstance(row[k], (int, float, np.number)) else row[k])
                           for k in table.columns if k not in ("score", "score_ci_low", "score_ci_high")},
                        "criterion": crit["score"], "criterion_ci": crit["score_ci"],
                        **{f"crit_{k}": crit[k] for k in ("pds_cosine", "mse", "de_direction", "de_jaccard", "lfc_nmae")},
                        **vcc26[method], **info[method]})
        print(json.dumps(records[-1], default=str), flush=True)
    return records


def run_task(task: str, lines: dict, workdir: Path, *, n_boot: int, seed: int,
             variants: dict | None = None) -> list[dict]:
    from transpert.summarize import summarize

    summaries = {name: summarize(cells) for name, cells in lines.items()}
    records = []
    for target in lines:
        records += run_target(task, lines, summaries, target, workdir, n_boot=n_boot, seed=seed,
                              variants=variants)
    return records


def replogle_zero_shot(seed: int, n_boot: int) -> dict:
    """Zero-shot cross-line DEG classifier at signature level (see the module docstring)."""
    from transpert.transfer.deg_classifier import DEGClassifier, average_precision, de_logit

    table = pd.read_csv(ROOT / "replogle2022_k562_rpe1_up_signatures.csv.gz")
    targets = sorted(set(table.loc[table.cell_line == "K562", "target"]) & set(table.loc[table.cell_line == "RPE1", "target"]))
    genes = pd.Index(sorted(set(table["gene"])))

    def ranks(line, lst):
        sub = table[(table.cell_line == line) & (table["list"] == lst)]
        m = np.zeros((len(targets), len(genes)))
        ti = pd.Index(targets).get_indexer(sub["target"])
        gi = genes.get_indexer(sub["gene"])
        n = sub.groupby("target")["rank"].transform("max").to_numpy()
        ok = ti >= 0
        m[ti[ok], gi[ok]] = np.log((n[ok] + 1) / sub["rank"].to_numpy()[ok])
        return m

    mats = {line: (ranks(line, "up_top"), ranks(line, "up_full_top1000")) for line in ("K562", "RPE1")}
    own = genes.get_indexer(targets)
    candidate = np.ones((len(targets), len(genes)), dtype=bool)
    candidate[np.flatnonzero(own >= 0), own[own >= 0]] = False

    def features(src, rows):
        top, full = mats[src]
        freq = de_logit((top > 0).sum(axis=0), len(targets))
        shape = (len(rows), len(genes))
        cols = [top[rows], full[rows], (top[rows] > 0).astype(float), np.broadcast_to(freq, shape)]
        return np.stack([np.asarray(c, dtype=np.float64).ravel() for c in cols], axis=1)

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(targets))
    half_a, half_b = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2:])
    # train: K562 labels from RPE1 features on half A; apply: RPE1 labels from K562 features on half B
    keep = candidate[half_a].ravel()
    clf = DEGClassifier(alpha=1e-4, max_rows=200_000, random_state=seed).fit(
        features("RPE1", half_a)[keep], (mats["K562"][0][half_a] > 0).ravel()[keep])
    prob = clf.predict_proba(features("K562", half_b)).reshape(len(half_b), -1)
    label = mats["RPE1"][0][half_b] > 0
    cand = candidate[half_b]
    k562_freq = np.broadcast_to((mats["K562"][0] > 0).mean(axis=0), prob.shape)
    scores = {"zero_shot_classifier": prob, "copy_k562_top": mats["K562"][0][half_b],
              "copy_k562_full": mats["K562"][1][half_b], "k562_gene_frequency": k562_freq}
    per = {k: np.array([average_precision(label[i][cand[i]], v[i][cand[i]]) for i in range(len(half_b))])
           for k, v in scores.items()}
    ok = np.isfinite(per["zero_shot_classifier"])
    boot = rng.integers(0, ok.sum(), size=(n_boot, ok.sum()))
    out = {"task": "replogle", "n_targets_scored": int(ok.sum()), "n_genes": len(genes)}
    for k, v in per.items():
        v = v[ok]
        means = v[boot].mean(axis=1)
        out[k] = {"mean_auprc": float(v.mean()), "ci95": [float(np.quantile(means, .025)), float(np.quantile(means, .975))]}
    diff = (per["zero_shot_classifier"] - per["copy_k562_top"])[ok]
    means = diff[boot].mean(axis=1)
    out["classifier_minus_copy_top"] = {"mean": float(diff.mean()),
                                        "ci95": [float(np.quantile(means, .025)), float(np.quantile(means, .975))]}
    return out


def markdown(records: list[dict]) -> str:
    df = pd.DataFrame(records)
    lines = []
    for task, sub in df.groupby("task", sort=False):
        lines += [f"### {task}", "",
                  "| target | method | score [95% CI] | PDS (L1) | MAE | DES | criterion [95% CI] | cos PDS | DE dir | Jaccard | lfc nMAE |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for _, r in sub.iterrows():
            lines.append(f"| {r.target} | {r.method} | {r.score:.2f} [{r.score_ci[0]:.2f}, {r.score_ci[1]:.2f}] | "
                         f"{r.PDS if 'PDS' in r else r.get('discrimination_score_l1', np.nan):.3f} | "
                         f"{r.get('MAE', r.get('mae', np.nan)):.4f} | {r.get('DES', r.get('overlap_at_N', np.nan)):.3f} | "
                         f"{r.criterion:.3f} [{r.criterion_ci[0]:.3f}, {r.criterion_ci[1]:.3f}] | "
                         f"{r.crit_pds_cosine:.3f} | {r.crit_de_direction:.3f} | {r.crit_de_jaccard:.3f} | {r.crit_lfc_nmae:.3f} |")
        lines += ["", "vcc2026 suite (raw counts, anchored: baseline = mean response of the real cells, "
                  "anchor = replicate split; score = mean of the six scaled members):", "",
                  "| target | method | vcc2026 score [95% CI] | pds_cosine | mse_capped_norm | "
                  "fidelity_yield | reach | sig_jaccard | lfc_nmae |", "|---|---|---|---|---|---|---|---|---|"]
        for _, r in sub.iterrows():
            lines.append(f"| {r.target} | {r.method} | {r.vcc26_score:.3f} [{r.vcc26_score_ci[0]:.3f}, "
                         f"{r.vcc26_score_ci[1]:.3f}] | " + " | ".join(
                             f"{r[f'vcc26_{m}']:.3f} ({r[f'vcc26_s_{m}']:+.2f})" for m in VCC26_MEMBERS) + " |")
        mean = sub.groupby("method", sort=False)[["score", "criterion", "vcc26_score"]].mean()
        lines += ["", "Mean over held-out lines:", "", "| method | 2025 score | criterion | vcc2026 score |",
                  "|---|---|---|---|"]
        lines += [f"| {m} | {v.score:.2f} | {v.criterion:.3f} | {v.vcc26_score:.3f} |" for m, v in mean.iterrows()]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["simulator", "lowrank", "datlinger", "papalexi", "replogle"])
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--from-records", default=None,
                        help="re-print the tables of a zero_shot_records.json instead of running")
    parser.add_argument("--out", default=None, help="folder for the records and tables (default: none)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=JSON",
                        help="also run zero-shot TransPert with these parameters under NAME, e.g. "
                             "'transpert-zero-shot-profile={\"criterion\": \"profile\"}' (repeatable)")
    args = parser.parse_args(argv)
    if args.from_records:
        print(markdown(json.loads(Path(args.from_records).read_text())["records"]))
        return 0
    variants = {}
    for v in args.variant:
        name, _, params = v.partition("=")
        variants[name] = json.loads(params)
    t0 = time.perf_counter()
    records, extra = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            if task == "replogle":
                extra.append(replogle_zero_shot(args.seed, args.n_boot))
                print(json.dumps(extra[-1]), flush=True)
                continue
            lines = {"simulator": lambda: lines_simulator(args.seed),
                     "lowrank": lambda: lines_lowrank(args.seed), "datlinger": lines_datlinger,
                     "papalexi": lines_papalexi}[task]()
            records += run_task(task, lines, Path(tmp), n_boot=args.n_boot, seed=args.seed,
                                variants=variants)
    text = markdown(records) if records else ""
    print(text)
    print(f"total {time.perf_counter() - t0:.0f} s")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "zero_shot_records.json").write_text(json.dumps({"records": records, "replogle": extra},
                                                                default=str, indent=1))
        (out / "zero_shot_tables.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
