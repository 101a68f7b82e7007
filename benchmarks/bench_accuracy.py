"""Accuracy benchmark (issue 5): TransPert against every baseline, cross-validated over the target's
perturbations, on the simulator and on real Datlinger et al. 2021 Jurkat data.

For every task, repeat and fold: the target's perturbations are split into training and held-out,
the target's control cells into two halves (one for training, one as the held-out "real"
controls); reference lines and the target's training cells are summarised; every method is fitted
on the summaries, predicts the held-out perturbations, and its prediction is written as
challenge-format cells (transpert.predict.write_prediction) and evaluated against the held-out
real cells with cell-eval 0.8.2's metrics (transpert.evaluate), next to cell-eval's cell-mean
baseline built from the fold's training cells.

Protocols (``--protocol``):

- ``folds`` (default, challenge-faithful): each fold is its own test set and is evaluated on its
  own, as the challenge evaluated its test set: PDS ranks a held-out perturbation's prediction
  among the real profiles of that fold's held-out perturbations only (none of which was training
  data), DES / MAE / the four generalist metrics per perturbation as in ``transpert.evaluate``,
  the score against the cell-mean baseline built from that fold's training cells. Folds: 3 of 20
  perturbations on the simulator, 2 of 10 on Datlinger's 20 targets, each over 5 seeded random
  splits (repeat r uses seed + r). A method's score and mean rank are the means over the fold
  evaluations (15 on the simulator, 10 per Datlinger task) of the per-evaluation score and
  per-evaluation mean rank (rank of each method on each of the seven metrics' means in that
  evaluation, 1 = best, ties averaged, an undefined mean ranked last).
- ``pooled`` (the earlier protocol, kept for comparison): one split (3 folds on the simulator, 4 on
  Datlinger), the out-of-fold predictions of all folds pooled into one file per method and
  evaluated once, so PDS ranks a held-out perturbation among ALL the task's perturbations,
  including the ones that were training data when its prediction was made. A method that uses the
  target's mean training effect is then systematically closer to those than to the new one, which
  pushes its PDS below chance; the challenge has no such penalty.

Intervals (both protocols, the same code: pooled is one evaluation holding every perturbation):
95% percentile bootstrap that resamples the task's *perturbations* with replacement; a
perturbation drawn w times gets weight w in every fold evaluation that holds it (in every
repeat), and each evaluation's metric means, score and ranks are recomputed with those weights.
Why perturbations, not folds: the perturbations are the unit the result should generalise over
(new targets); the repeats re-use the same perturbations, so resampling each fold's perturbations
independently would count each one R times as if independent (intervals ~sqrt(R) too narrow), and
resampling the 10-15 fold evaluations ignores that they share perturbations and gives coarse
percentiles. Per-perturbation values are held fixed (as in transpert.evaluate.bootstrap_ci: a
PDS value keeps the rank it had among its fold's perturbations); ``de_spearman_sig`` (one value
per evaluation) is recomputed from the weighted numbers of DE genes. The same resamples serve
every method, so ``P(TransPert better)`` - the fraction of resamples in which TransPert's score is
higher / mean rank lower - is a paired comparison. A resample that draws none of a fold's
perturbations leaves that fold out of that resample's average.

Tasks:
- ``simulator``: transpert.data.simulate.simulate_atlas (3 references, similarity 0.8/0.6/0.4).
- ``datlinger_unstim_to_stim`` / ``datlinger_stim_to_unstim``: one context as the reference line,
  the other as the target; 20 targets, guides pooled per target (``obs.target``), control
  ``control``.

Run:  python benchmarks/bench_accuracy.py [--protocol folds|pooled] [--quick] [--tasks ...]
Prints one JSON line (every task) on stdout and a leaderboard per task on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit  # noqa: E402

from transpert.evaluate.leaderboard import GENERALIST_METRICS, VCC_METRICS  # noqa: E402
from transpert.methods import METHODS, fit_predict  # noqa: E402
from transpert.summarize import summarize  # noqa: E402

CONTROL = "non-targeting"
DATLINGER = ["tests/data/datlinger2021_jurkat_stim_unstim_subset.h5ad",
             "/work/shared/data/real/datlinger2021_jurkat_stim_unstim_subset.h5ad"]
BEST = {"mae": 0.0}  # every other metric used here: higher is better
METRICS = list(GENERALIST_METRICS)
VCC = [METRICS.index(c) for c in VCC_METRICS]
SIG = METRICS.index("de_spearman_sig")
PB_COLS = ["pb_mae", "pb_pearson_delta", "pb_pds"]
#: protocol -> task -> (folds, repeats); decided from fold sizes (PDS needs ~10+ perturbations
#: per evaluation to be more than coarse), before any result was looked at
DEFAULT_FOLDS = {"folds": {"simulator": (3, 5), "datlinger": (2, 5)},
                 "pooled": {"simulator": (3, 1), "datlinger": (4, 1)}}


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


@dataclass
class Evaluation:
    """One evaluation (a fold, or the pooled file): per-perturbation values of every method.

    ``vals``: (K + 1, n, 7) the seven generalist metrics per perturbation, methods in order then
    the cell-mean baseline last, NaN where cell-eval has a null; ``real_nsig`` (n,) and
    ``pred_nsig`` (K + 1, n): numbers of significant genes (for ``de_spearman_sig``); ``pb``:
    (K, n, 3) the pseudo-bulk metrics; ``repeat``: which seeded split it came from."""

    perts: np.ndarray
    vals: np.ndarray
    real_nsig: np.ndarray
    pred_nsig: np.ndarray
    pb: np.ndarray
    repeat: int


def split_folds(perts, n_folds: int, rng) -> list[np.ndarray]:
    """A seeded partition of ``perts`` into ``n_folds`` folds of (nearly) equal size."""
    return np.array_split(rng.permutation(np.asarray(perts)), n_folds)


def evaluate_fold(real, written: dict, predictions: dict, perts, methods, repeat: int) -> Evaluation:
    """Evaluate every written prediction (and ``written["baseline"]``) against ``real`` cells
    holding exactly ``perts`` (+ controls), with transpert.evaluate (cell-eval 0.8.2 metrics)."""
    from transpert import evaluate as ev

    kw = dict(pert_col="target_gene", control=CONTROL, threads=None)
    real_p = ev.prepare(real, "real", **kw)
    perts = np.array(sorted(map(str, perts)))
    vals, nsig = [], []
    real_nsig = None
    for name in [*methods, "baseline"]:
        res = ev.evaluate_prepared(real_p, ev.prepare(written[name], name, **kw), metrics=GENERALIST_METRICS, **kw)
        order = pd.Index(res.results["perturbation"].astype(str)).get_indexer(perts)
        if (order < 0).any():
            raise RuntimeError(f"{name}: evaluation lacks perturbations {list(perts[order < 0])}")
        vals.append(_values(res)[METRICS].to_numpy(dtype=np.float64)[order])
        nsig.append(res.de.pred_sig.sum(axis=1)[order])
        real_nsig = res.de.real_sig.sum(axis=1)[order]
    pb = np.stack([_pseudobulk_metrics(predictions[m], real_p, perts)[PB_COLS].to_numpy(dtype=np.float64) for m in methods])
    return Evaluation(perts=perts, vals=np.stack(vals), real_nsig=real_nsig, pred_nsig=np.stack(nsig), pb=pb,
                      repeat=repeat)


def run_task(refs, target, *, protocol: str, n_folds: int, n_repeats: int, seed: int, methods, workdir: Path,
             log, move: str = "pseudobulk", params: dict | None = None) -> tuple[list[Evaluation], np.ndarray]:
    """Cross-validation over the target's perturbations; returns the evaluations and the task's
    perturbations.

    Per repeat r (``rng = default_rng(seed + r)``): the perturbations are split into ``n_folds``
    folds and the target's control cells into two halves, the "real" controls (evaluation) and
    the training controls (every fold's training data, and the controls of every written
    prediction). In fold k the other folds' perturbations and the training controls are the
    training data; every method predicts fold k's perturbations and its prediction is written as
    cells; the cell-mean baseline is built from fold k's training cells.

    ``protocol="folds"``: fold k is evaluated on its own against a real file holding fold k's
    perturbations and the real controls (PDS among fold k's perturbations).
    ``protocol="pooled"``: the perturbation cells of all folds are pooled into one prediction file
    per method (plus the training controls) and evaluated once against one real file holding
    every perturbation (PDS among all of them, training perturbations of the other folds included).
    """
    import anndata as ad
    import scipy.sparse as sp

    from transpert.evaluate import build_baseline
    from transpert.predict import write_prediction

    if protocol not in ("folds", "pooled"):
        raise SystemExit(f"unknown protocol {protocol!r}")
    labels = target.obs["target_gene"].astype(str).to_numpy()
    perts = np.array(sorted(set(labels) - {CONTROL}))
    ref_summaries = {name: summarize(cells, show_progress=False) for name, cells in refs.items()}
    ctrl = np.flatnonzero(labels == CONTROL)
    evaluations = []
    for r in range(n_repeats):
        rng = np.random.default_rng(seed + r)
        folds = split_folds(perts, n_folds, rng)
        real_ctrl = np.zeros(len(labels), bool)
        real_ctrl[rng.choice(ctrl, len(ctrl) // 2, replace=False)] = True
        blocks: dict = {m: [] for m in ["baseline", *methods]}
        pooled_preds: dict = {m: [] for m in methods}
        controls = {}
        for k, held in enumerate(folds):
            t0 = time.perf_counter()
            is_held = np.isin(labels, held)
            train = _subset(target, (~is_held & (labels != CONTROL)) | ((labels == CONTROL) & ~real_ctrl))
            counts = (pd.Series(labels[is_held]).value_counts().rename_axis("target_gene")
                      .rename("n_cells").reset_index().sort_values("target_gene"))
            train_summary = summarize(train, show_progress=False)
            written = {"baseline": build_baseline(train, counts)}
            preds = {}
            for method in methods:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    _, preds[method] = fit_predict(method, ref_summaries, train_summary, list(held),
                                                      params=(params or {}).get(method))
                path = workdir / f"r{r}_fold{k}_{method}.h5ad"
                backed = write_prediction(preds[method], train, counts, list(target.var_names), path,
                                          seed=seed + k + 1000 * r, max_cells=None, move=move)
                written[method] = backed.to_memory()  # small folds: evaluated from memory
                backed.file.close()
                path.unlink()
            if protocol == "folds":
                evaluations.append(evaluate_fold(_subset(target, is_held | real_ctrl), written, preds, held,
                                                 methods, r))
            else:
                for name, cells in written.items():
                    is_ctrl = (cells.obs["target_gene"].astype(str) == CONTROL).to_numpy()
                    x = sp.csr_matrix(cells.X, dtype=np.float32)
                    blocks[name].append((x[~is_ctrl], cells.obs["target_gene"].astype(str).to_numpy()[~is_ctrl]))
                    controls.setdefault(name, x[is_ctrl])  # the training controls (fold 0's normalisation)
                for m in methods:
                    pooled_preds[m].append(preds[m])
            log(f"  repeat {r + 1}/{n_repeats} fold {k + 1}/{n_folds}: {len(held)} held out, "
                f"{time.perf_counter() - t0:.1f} s")
        if protocol == "pooled":
            def pooled_cells(name):
                x = sp.vstack([b[0] for b in blocks[name]] + [controls[name]], format="csr")
                lab = np.concatenate([b[1] for b in blocks[name]] + [np.full(controls[name].shape[0], CONTROL)])
                return ad.AnnData(X=x, obs=pd.DataFrame({"target_gene": pd.Categorical(lab)},
                                                        index=[f"c{i}" for i in range(len(lab))]),
                                  var=pd.DataFrame(index=target.var_names.copy()))

            written = {name: pooled_cells(name) for name in blocks}
            preds = {m: ad.concat(pooled_preds[m], merge="first") for m in methods}
            evaluations.append(evaluate_fold(_subset(target, (labels != CONTROL) | real_ctrl), written, preds, perts,
                                             methods, r))
    return evaluations, perts


def _pseudobulk_metrics(pred, real_p, held) -> pd.DataFrame:
    """The prediction's own pseudo-bulk (before cells are written) against the real held-out
    pseudo-bulk: MAE of means, Pearson of deltas, L1 PDS (transpert.evaluate.discrimination_scores,
    ranked among ``held``). Shows what the statistics predict, independently of how cells are written."""
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
    for m in GENERALIST_METRICS:
        v = result.results[m].to_numpy(dtype=np.float64)
        out[m] = np.where(result.defined[m].to_numpy(), v, np.nan)
    return out


# ------------------------------------------------------------------------------ aggregation
def _score(user: np.ndarray, base: np.ndarray) -> np.ndarray:
    """cell-eval's score_agg_metrics on (..., 3) means of (mae, pds, des): avg of clipped scores."""
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.stack([1 - user[..., 0] / base[..., 0],
                      (user[..., 1] - base[..., 1]) / (1 - base[..., 1]),
                      (user[..., 2] - base[..., 2]) / (1 - base[..., 2])], axis=-1)
    s = np.clip(np.nan_to_num(s, nan=0.0), 0, None)
    return s.mean(axis=-1)


def weighted_means(vals: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(K, n, J) values and (B, n) integer weights -> (B, K, J) weighted means skipping NaN
    (= the NaN-skipping mean over the perturbations repeated w times); NaN where no weight."""
    ok = ~np.isnan(vals)
    sums = np.einsum("bn,knj->bkj", w, np.where(ok, vals, 0.0))
    counts = np.einsum("bn,knj->bkj", w, ok.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def _weighted_midranks(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x (K, n), w (B, n) -> (B, K, n): each value's average rank (1-based) in the sample holding
    value i w_i times (ranks are those of scipy.stats.rankdata on the repeated sample)."""
    less = (x[:, None, :] < x[:, :, None]).astype(np.float64)  # [k, i, j] = x_j < x_i
    equal = (x[:, None, :] == x[:, :, None]).astype(np.float64)
    return np.einsum("bj,kij->bki", w, less) + (np.einsum("bj,kij->bki", w, equal) + 1) / 2


def weighted_spearman_sig(real_n: np.ndarray, pred_n: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``de_spearman_sig`` (transpert.evaluate) of a sample holding perturbation i w_i times:
    Spearman of (real, predicted) numbers of DE genes over the perturbations with a real DE gene,
    1.0 when none has one, NaN when fewer than 2 values or a side is constant. real_n (n,),
    pred_n (K, n), w (B, n) -> (B, K)."""
    w = np.asarray(w, np.float64) * (real_n > 0)[None, :]
    total = w.sum(axis=1)  # (B,)
    x = np.asarray(real_n, np.float64)[None, :]
    y = np.asarray(pred_n, np.float64)
    rx = _weighted_midranks(x, w)[:, 0, :]  # (B, n)
    ry = _weighted_midranks(y, w)  # (B, K, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = (w * rx).sum(axis=1) / total
        my = np.einsum("bn,bkn->bk", w, ry) / total[:, None]
        dx = rx - mx[:, None]
        dy = ry - my[:, :, None]
        cov = np.einsum("bn,bn,bkn->bk", w, dx, dy)
        vx = (w * dx * dx).sum(axis=1)
        vy = np.einsum("bn,bkn->bk", w, dy * dy)
        r = np.clip(cov / np.sqrt(vx[:, None] * vy), -1.0, 1.0)
    used = w > 0
    # constant sides exactly (not through a rounded variance)
    big, small = np.inf, -np.inf
    x_const = (np.where(used, x, big).min(axis=1) == np.where(used, x, small).max(axis=1))  # (B,)
    y_const = (np.where(used[:, None, :], y[None], big).min(axis=2)
               == np.where(used[:, None, :], y[None], small).max(axis=2))  # (B, K)
    r = np.where(x_const[:, None] | y_const | (total[:, None] < 2), np.nan, r)
    return np.where(total[:, None] == 0, 1.0, r)


def _ranks(means: np.ndarray) -> np.ndarray:
    """(..., K, 7) metric means -> (..., K) mean rank over the metrics, 1 = best, ties averaged,
    an undefined (NaN) mean ranked last."""
    r = []
    for j, m in enumerate(METRICS):
        key = means[..., j] if BEST.get(m) == 0.0 else -means[..., j]
        r.append(rankdata(np.where(np.isnan(key), np.inf, key), method="average", axis=-1))
    return np.mean(r, axis=0)


def evaluation_stats(ev: Evaluation, w: np.ndarray) -> dict:
    """Per-evaluation statistics under perturbation weights w (B, n): metric means (B, K, 7),
    score x100 (B, K), mean rank (B, K), pseudo-bulk means (B, K, 3), valid (B,)."""
    means = weighted_means(ev.vals, w)
    means[..., SIG] = weighted_spearman_sig(ev.real_nsig, ev.pred_nsig, w)
    k = ev.vals.shape[0] - 1
    user, base = means[:, :k], means[:, k]
    return {"means": user, "score": 100 * _score(user[..., VCC], base[:, None, VCC]), "rank": _ranks(user),
            "pb": weighted_means(ev.pb, w), "valid": w.sum(axis=1) > 0}


def _fold_average(stats: list[dict], key: str) -> np.ndarray:
    """Mean over the evaluations valid in each resample (and, per entry, not NaN)."""
    total = count = 0
    for s in stats:
        v = s[key]
        ok = ~np.isnan(v) & s["valid"].reshape((-1,) + (1,) * (v.ndim - 1))
        total = total + np.where(ok, v, 0.0)
        count = count + ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def bootstrap_weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) multiplicities of the n perturbations in n_boot resamples with replacement."""
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    w = np.zeros((n_boot, n))
    np.add.at(w, (np.repeat(np.arange(n_boot), n), idx.ravel()), 1.0)
    return w


def leaderboard(evaluations: list[Evaluation], methods, perts, *, n_boot: int, seed: int):
    """The leaderboard (one row per method) and the pseudo-bulk table, with paired bootstrap
    intervals over the task's perturbations (see the module docstring)."""
    perts = np.asarray(perts)
    pos = pd.Index(perts)
    w_all = np.vstack([np.ones((1, len(perts))), bootstrap_weights(len(perts), n_boot, seed)])
    stats = []
    for ev in evaluations:
        cols = pos.get_indexer(ev.perts)
        stats.append(evaluation_stats(ev, w_all[:, cols]))
    score, rank = _fold_average(stats, "score"), _fold_average(stats, "rank")
    means, pb = _fold_average(stats, "means"), _fold_average(stats, "pb")
    repeats = sorted({ev.repeat for ev in evaluations})
    by_repeat = np.array([_fold_average([s for s, ev in zip(stats, evaluations) if ev.repeat == r], "score")[0]
                          for r in repeats])  # (R, K) point scores per split
    per_eval = np.array([s["score"][0] for s in stats])  # (E, K)
    tp = list(methods).index("transpert") if "transpert" in methods else None

    def q(a):  # 95% percentile interval of the defined resamples
        a = a[~np.isnan(a)]
        return np.quantile(a, [0.025, 0.975]) if a.size else (np.nan, np.nan)

    rows, pb_rows = [], []
    for k, m in enumerate(methods):
        s_lo, s_hi = q(score[1:, k])
        r_lo, r_hi = q(rank[1:, k])
        row = {"method": m, "score": score[0, k], "score_ci_low": s_lo, "score_ci_high": s_hi,
               "score_split_min": by_repeat[:, k].min(), "score_split_max": by_repeat[:, k].max(),
               **{c: means[0, k, j] for j, c in enumerate(METRICS)},
               "mean_rank": rank[0, k], "mean_rank_ci_low": r_lo, "mean_rank_ci_high": r_hi,
               "top_score_evaluations": int(sum(e[k] > np.delete(e, k).max() for e in per_eval))}
        if tp is not None and k != tp:
            row["p_transpert_beats_score"] = float(np.mean(score[1:, tp] > score[1:, k]))
            row["p_transpert_beats_rank"] = float(np.mean(rank[1:, tp] < rank[1:, k]))
        rows.append(row)
        pb_row = {"method": m}
        for j, c in enumerate(PB_COLS):
            pb_row[c] = pb[0, k, j]
            pb_row[c + "_ci_low"], pb_row[c + "_ci_high"] = q(pb[1:, k, j])
        pb_rows.append(pb_row)
    table = pd.DataFrame(rows).sort_values(["score", "mean_rank"], ascending=[False, True]).reset_index(drop=True)
    pb_table = pd.DataFrame(pb_rows).sort_values("pb_pds", ascending=False).reset_index(drop=True)
    return table, pb_table


def pb_markdown(pb: pd.DataFrame) -> str:
    out = ["| method | MAE [95% CI] | Pearson delta [95% CI] | PDS (L1) [95% CI] |", "|---|---|---|---|"]
    for _, r in pb.iterrows():
        out.append(f"| `{r['method']}` | " + " | ".join(
            f"{r[c]:.4f} [{r[c + '_ci_low']:.4f}, {r[c + '_ci_high']:.4f}]" for c in PB_COLS) + " |")
    return "\n".join(out)


def markdown(table: pd.DataFrame, n_evaluations: int) -> str:
    head = ["method", "score x100 [95% CI]", "split min-max", "MAE", "PDS", "DES", "pearson_delta", "sp_lfc_sig",
            "pr_auc", "sp_nsig", "mean rank [95% CI]", f"top score (of {n_evaluations})",
            "P(TransPert better): score / rank"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    f = lambda v: "nan" if pd.isna(v) else f"{v:.3f}"  # noqa: E731
    for _, r in table.iterrows():
        p = "" if pd.isna(r.get("p_transpert_beats_score", np.nan)) else \
            f"{r['p_transpert_beats_score']:.2f} / {r['p_transpert_beats_rank']:.2f}"
        out.append("| " + " | ".join([
            f"`{r['method']}`", f"{r['score']:.2f} [{r['score_ci_low']:.2f}, {r['score_ci_high']:.2f}]",
            f"{r['score_split_min']:.2f}-{r['score_split_max']:.2f}",
            *(f(r[m]) for m in METRICS),
            f"{r['mean_rank']:.2f} [{r['mean_rank_ci_low']:.1f}, {r['mean_rank_ci_high']:.1f}]",
            str(int(r["top_score_evaluations"])), p]) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["simulator", "datlinger_unstim_to_stim", "datlinger_stim_to_unstim"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--protocol", choices=("folds", "pooled"), default="folds",
                        help="folds: each fold evaluated on its own, repeated over seeded splits (default); "
                             "pooled: one split, out-of-fold predictions pooled and evaluated once")
    parser.add_argument("--n-folds", type=int, default=None, help="folds per split (default: per protocol and task)")
    parser.add_argument("--repeats", type=int, default=None, help="seeded splits (default: 5 for folds, 1 for pooled)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--quick", action="store_true",
                        help="a smaller simulator, 2 splits and 200 bootstrap resamples")
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
    if "transpert" not in args.methods:
        raise SystemExit("--methods must include transpert (the leaderboard compares against it)")
    n_boot = 200 if args.quick else args.n_boot
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    load_start = [round(v, 2) for v in os.getloadavg()]
    records = []
    for task in args.tasks:
        t0 = time.perf_counter()
        if task == "simulator":
            refs, target = task_simulator(args.seed, args.quick)
        elif task == "datlinger_unstim_to_stim":
            refs, target = task_datlinger("unstimulated", "stimulated")
        elif task == "datlinger_stim_to_unstim":
            refs, target = task_datlinger("stimulated", "unstimulated")
        else:
            raise SystemExit(f"unknown task {task!r}")
        n_folds, n_repeats = DEFAULT_FOLDS[args.protocol]["simulator" if task == "simulator" else "datlinger"]
        n_folds = args.n_folds or n_folds
        n_repeats = args.repeats or (min(n_repeats, 2) if args.quick else n_repeats)
        log(f"{task}: {len(refs)} reference line(s), target {target.n_obs} cells, protocol {args.protocol}, "
            f"{n_folds} folds x {n_repeats} split(s)")
        with tempfile.TemporaryDirectory() as tmp:
            evaluations, perts = run_task(refs, target, protocol=args.protocol, n_folds=n_folds, n_repeats=n_repeats,
                                          seed=args.seed, methods=args.methods, workdir=Path(tmp), log=log,
                                          move=args.move, params={"transpert": tp_params})
        table, pb = leaderboard(evaluations, args.methods, perts, n_boot=n_boot, seed=args.seed)
        tag = f"{task}_{args.protocol}"
        if args.move != "pseudobulk":
            tag += f"_move-{args.move}"
        if tp_params:
            tag += "_params-" + "-".join(f"{k}={v}" for k, v in sorted(tp_params.items()))
        pb.to_csv(out / f"accuracy_{tag}_pseudobulk.csv", index=False)
        table.to_csv(out / f"accuracy_{tag}.csv", index=False)
        md = (f"{markdown(table, len(evaluations))}\n\nPseudo-bulk predictions (before writing cells) vs the real "
              f"held-out pseudo-bulk:\n\n{pb_markdown(pb)}\n")
        (out / f"accuracy_{tag}.md").write_text(md)
        print(f"\n## {task} ({args.protocol})\n\n{md}", file=sys.stderr, flush=True)
        tp = table.set_index("method")
        others = tp.drop("transpert")
        r3 = lambda v: round(float(v), 3)  # noqa: E731
        records.append({
            "task": task, "n_folds": n_folds, "n_repeats": n_repeats, "n_evaluations": len(evaluations),
            "n_perturbations": len(perts), "wall_s": round(time.perf_counter() - t0, 1),
            "score": {m: r3(tp.loc[m, "score"]) for m in tp.index},
            "score_ci": {m: [r3(tp.loc[m, "score_ci_low"]), r3(tp.loc[m, "score_ci_high"])] for m in tp.index},
            "mean_rank": {m: r3(tp.loc[m, "mean_rank"]) for m in tp.index},
            "mean_rank_ci": {m: [r3(tp.loc[m, "mean_rank_ci_low"]), r3(tp.loc[m, "mean_rank_ci_high"])]
                             for m in tp.index},
            "p_transpert_beats": {m: [r3(others.loc[m, "p_transpert_beats_score"]),
                                      r3(others.loc[m, "p_transpert_beats_rank"])] for m in others.index},
            "pseudobulk": {r["method"]: {k: round(float(r[k]), 4) for k in PB_COLS} for _, r in pb.iterrows()},
            # strictly better than every other method (a tie is not a win)
            "transpert_best_score": bool(tp.loc["transpert", "score"] > others["score"].max()),
            "transpert_best_rank": bool(tp.loc["transpert", "mean_rank"] < others["mean_rank"].min())})
    emit({"benchmark": "accuracy", "protocol": args.protocol, "move": args.move, "seed": args.seed,
          "n_boot": n_boot, "quick": args.quick, "transpert_params": tp_params, "loadavg_start": load_start,
          "loadavg_end": [round(v, 2) for v in os.getloadavg()], "tasks": records})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
