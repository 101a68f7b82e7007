"""Zero-shot TransPert's leave-one-line-out over the reference lines (log1p scale throughout).

Each reference line in turn plays the target: only its control profile is visible, it is
predicted from the other lines by :func:`transpert.transfer.zero_shot_model.components`, and
the prediction is scored against the line's own summary by the criterion (default
:func:`transpert.transfer.zero_shot_noise.noise_criterion`, given the line's noise model). Exact copies of the held-out
line (:func:`transpert.transfer.zero_shot_weights.copy_groups`) are held out with it.

:func:`search` chooses, in this order, on the mean criterion over held-out lines:

Held-out lines count in the mean criterion by how much they resemble the target (their weight for
the target at the few-shot default temperature 0.05): a line unlike the target (a noisy line,
another cell type) says little about how the target should be predicted.

1. (one-standard-error rule, ``one_se_rule=True``: among the configurations whose mean
   criterion is within one paired standard error of the best, the one closest to the unweighted
   reference mean: with a handful of lines the leave-one-line-out is noisy, and each held-out
   line is predicted from one line fewer than the target, so it favours shrunken effects more
   than the target needs; measured on the simulator, where the plain best config lost to the
   unweighted mean on the held-out targets) the softmax temperature of the line weights, the shrinkage of the lines' specific effects
   and the scales ``a`` (generic response) and ``b`` (specific effects): for each temperature
   and shrinkage a coordinate search (``b`` at ``a = 1``, then
   ``a``, then ``b``), DE calls meanwhile the ``k`` largest |delta| per perturbation with ``k``
   the other lines' median number of significant genes per perturbation;
2. the DEG classifier across lines: for each held-out line, a classifier fit on the other
   held-out lines' rows (features from their own leave-one-line-out aggregates, labels their
   significant genes) gives its out-of-line probabilities; the threshold of the DE call is the
   one of the grid with the best criterion on those.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from transpert.summarize._contract import control_frac_expressing, dense_layer
from transpert.transfer.deg_classifier import DEGClassifier
from transpert.transfer.reference import ReferenceLine
from transpert.transfer.similarity import line_weights
from transpert.transfer.zero_shot_model import Components, components, top_k_calls
from transpert.transfer.zero_shot_noise import NoiseModel


@dataclass
class HeldOut:
    """A reference line playing the target: its controls, its real answer, the other lines."""

    name: str
    genes: pd.Index
    control_mean: np.ndarray
    control_frac: np.ndarray
    perturbations: list
    delta: np.ndarray
    sig: np.ndarray
    others: list
    kd_ratio: float
    k_de: int
    noise: object = None  # its NoiseModel (:mod:`.zero_shot_noise`), for criteria that need it


def held_out_lines(summaries: Mapping, groups: Mapping[str, int], kd_ratios: Mapping[str, float],
                   fdr_threshold: float) -> list[HeldOut]:
    """One :class:`HeldOut` per group of exact copies that has another group to learn from."""
    out, seen = [], set()
    for name, summary in summaries.items():
        gid = groups[name]
        if gid in seen:
            continue
        seen.add(gid)
        others = [n for n in summaries if groups[n] != gid]
        distinct = list({groups[n]: n for n in reversed(others)}.values())  # one per group
        if not others:
            continue
        genes = pd.Index(summary.var_names.astype(str))
        lines = [ReferenceLine.from_summary(n, summaries[n], genes, fdr_threshold) for n in others]
        lines = [line for line in lines if len(line.gene_positions)]
        if not lines:
            continue
        sig = np.nan_to_num(dense_layer(summary, "fdr"), nan=1.0) < fdr_threshold
        k_de = int(np.median([np.median(line.sig.sum(axis=1)) for line in lines if line.name in distinct]))
        frac, _ = control_frac_expressing(summary)
        ratios = [kd_ratios[n] for n in distinct if np.isfinite(kd_ratios[n])]
        out.append(HeldOut(name=name, genes=genes,
                           control_mean=np.asarray(summary.var["control_mean"], dtype=np.float64),
                           control_frac=np.nan_to_num(frac), perturbations=list(summary.obs_names.astype(str)),
                           delta=np.nan_to_num(dense_layer(summary, "delta")), sig=sig, others=lines,
                           kd_ratio=float(np.median(ratios)) if ratios else np.nan, k_de=k_de,
                           noise=NoiseModel.from_anndata(summary, fdr_threshold)))
    return out


@dataclass
class SearchResult:
    temperature: float
    shrinkage: str
    common_scale: float
    specific_scale: float
    deg_threshold: float
    curve: pd.DataFrame           # criterion per (temperature, a, b)
    threshold_curve: pd.DataFrame  # criterion per DEG threshold
    per_line: pd.DataFrame        # chosen configuration, criterion per held-out line
    weight_check: pd.DataFrame    # zero-shot line score vs measured effect agreement
    classifier_rows: tuple        # (X, y) of every held-out line, to fit the final classifier


def _comps(model, h: HeldOut, temperature: float, shrinkage: str) -> Components:
    return components(h.others, h.control_mean, h.genes, h.perturbations, temperature=temperature,
                      structure_weight=model.structure_weight, shrinkage=shrinkage,
                      kd_ratio=h.kd_ratio if model.knockdown else np.nan)


def search(model, held: list[HeldOut], criterion: Callable, relevance: np.ndarray | None = None) -> SearchResult:
    """Choose temperature, scales and DEG threshold by the mean criterion over ``held``, weighted
    by ``relevance`` (one non-negative number per held-out line: how much it resembles the target;
    None: equal)."""
    rows, cache = [], {}
    needs_noise = getattr(criterion, "needs_noise", False)  # the held-out line's noise model goes with it
    base_criterion = criterion

    def criterion(*args, h):
        return base_criterion(*args, **({"noise": h.noise} if needs_noise else {}))

    rel = np.ones(len(held)) if relevance is None else np.asarray(relevance, dtype=np.float64)
    rel = rel / rel.sum()

    def wmean(values):
        ok = np.isfinite(values)
        return float((rel[ok] * values[ok]).sum() / rel[ok].sum()) if ok.any() else np.nan

    def score(t, comps, a, b):
        key = (t, shrink, a, b)
        if key not in cache:
            values = []
            for h, c in zip(held, comps):
                d = c.delta(a, b)
                values.append(criterion(d, top_k_calls(d, h.k_de), h.delta, h.sig, h.control_mean,
                                        h.perturbations, h.genes, h=h)["score"])
            cache[key] = np.asarray(values, dtype=np.float64)
            rows.append({"temperature": t, "shrinkage": shrink, "common_scale": a, "specific_scale": b,
                         "score": wmean(cache[key])})
        return wmean(cache[key])

    for t, shrink in [(t, s) for s in model.shrinkages for t in model.temperatures]:
        comps = [_comps(model, h, t, shrink) for h in held]
        a0 = 1.0 if 1.0 in model.common_scales else model.common_scales[0]
        b = max(model.specific_scales, key=lambda s: score(t, comps, a0, s))
        a = max(model.common_scales, key=lambda s: score(t, comps, s, b))
        b = max(model.specific_scales, key=lambda s: score(t, comps, a, s))
        if model.one_se_rule:  # the simplest member of the family is always a candidate
            score(t, comps, 1.0, 1.0)
    t, shrink, a, b = _choose(cache, rel, one_se=model.one_se_rule)
    curve = pd.DataFrame(rows)
    curve["chosen"] = ((curve["temperature"] == t) & (curve["shrinkage"] == shrink)
                       & (curve["common_scale"] == a) & (curve["specific_scale"] == b))
    comps = [_comps(model, h, t, shrink) for h in held]
    # the DEG classifier across lines: out-of-line probabilities for each held-out line
    Xs = [c.features(h.control_mean, h.control_frac) for h, c in zip(held, comps)]
    ys = [h.sig.ravel().astype(np.float64) for h in held]
    probs = []
    for i, h in enumerate(held):
        rest = [j for j in range(len(held)) if j != i]
        clf = DEGClassifier(model.deg_alpha, model.deg_max_rows, model.random_state).fit(
            np.concatenate([Xs[j] for j in rest]), np.concatenate([ys[j] for j in rest]))
        probs.append(clf.predict_proba(Xs[i]).reshape(h.sig.shape))
    th_rows, per_line_at = [], {}
    for thr in model.deg_thresholds:
        res = [criterion(c.delta(a, b), p >= thr, h.delta, h.sig, h.control_mean, h.perturbations, h.genes, h=h)
               for h, c, p in zip(held, comps, probs)]
        per_line_at[thr] = res
        th_rows.append({"threshold": thr, "score": wmean(np.array([r["score"] for r in res])),
                        "mean_called": float(np.mean([(p >= thr).sum(axis=1).mean() for p in probs]))})
    threshold_curve = pd.DataFrame(th_rows)
    chosen = int(np.argmax(threshold_curve["score"].to_numpy()))
    threshold_curve["chosen"] = np.arange(len(threshold_curve)) == chosen
    thr = float(threshold_curve["threshold"].iloc[chosen])
    per_line = pd.DataFrame(per_line_at[thr], index=pd.Index([h.name for h in held], name="held_out"))
    return SearchResult(temperature=t, shrinkage=shrink, common_scale=a, specific_scale=b, deg_threshold=thr, curve=curve,
                        threshold_curve=threshold_curve, per_line=per_line,
                        weight_check=_weight_check(held, comps),
                        classifier_rows=(np.concatenate(Xs), np.concatenate(ys)))


def _simplicity(key) -> float:
    """How far a (temperature, shrinkage, a, b) is from the unweighted reference mean
    (equal weights, no shrinkage, a = b = 1)."""
    t, shrink, a, b = key
    return abs(a - 1.0) + abs(b - 1.0) + 0.5 * float(np.isfinite(t)) + 0.5 * float(shrink != "none")


def _choose(cache: dict, rel: np.ndarray, *, one_se: bool):
    """The configuration with the best weighted mean criterion; with ``one_se``, the simplest one
    (closest to the unweighted reference mean) whose mean is within one standard error of the
    best's, the weighted standard error of the per-line differences to the best (paired over
    held-out lines)."""
    def wmean(v):
        ok = np.isfinite(v)
        return float((rel[ok] * v[ok]).sum() / rel[ok].sum()) if ok.any() else -np.inf

    means = {k: wmean(v) for k, v in cache.items()}
    best = max(means, key=means.get)
    if not one_se:
        return best
    ok = []
    for key, values in cache.items():
        diff = values - cache[best]
        m = np.isfinite(diff)
        w = rel[m] / rel[m].sum() if m.any() else rel[m]
        n = int(m.sum())
        se = float(np.sqrt((w ** 2 * (diff[m] - (w * diff[m]).sum()) ** 2).sum() * n / (n - 1))) if n > 1 else 0.0
        if means[key] >= means[best] - se:
            ok.append(key)
    return min(ok, key=lambda k: (_simplicity(k), -means[k]))


def _weight_check(held: list[HeldOut], comps: list[Components]) -> pd.DataFrame:
    """Per held-out line and other line: the zero-shot score and the effect agreement that was
    actually measured (Pearson correlation of deltas, :func:`line_weights`'s ``delta_corr``)."""
    rows = []
    for h, c in zip(held, comps):
        measured = line_weights(h.others, h.delta, pd.Index(h.perturbations), h.genes, h.control_mean,
                                min_shared=2)
        for line in h.others:
            rows.append({"held_out": h.name, "line": line.name, "score": float(c.weights.loc[line.name, "score"]),
                         "weight": float(c.weights.loc[line.name, "weight"]),
                         "effect_corr": float(measured.loc[line.name, "delta_corr"])})
    return pd.DataFrame(rows)
