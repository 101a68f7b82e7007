"""Zero-shot TransPert's leave-one-line-out over the reference lines (log1p scale throughout).

Each reference line in turn plays the target: only its control profile is visible, it is
predicted from the other lines by :func:`transpert.transfer.zero_shot_model.components`, and
the prediction is scored against the line's own summary by the criterion (default
:func:`transpert.transfer.zero_shot_criterion.profile_criterion`). Exact copies of the held-out
line (:func:`transpert.transfer.zero_shot_weights.copy_groups`) are held out with it.

:func:`search` chooses, in this order, on the mean criterion over held-out lines:

1. the softmax temperature of the line weights and the scales ``a`` (generic response) and ``b``
   (specific effects): for each temperature a coordinate search (``b`` at ``a = 1``, then
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
        if not others:
            continue
        genes = pd.Index(summary.var_names.astype(str))
        lines = [ReferenceLine.from_summary(n, summaries[n], genes, fdr_threshold) for n in others]
        lines = [line for line in lines if len(line.gene_positions)]
        if not lines:
            continue
        sig = np.nan_to_num(dense_layer(summary, "fdr"), nan=1.0) < fdr_threshold
        k_de = int(np.median([np.median(line.sig.sum(axis=1)) for line in lines]))
        frac, _ = control_frac_expressing(summary)
        ratios = [kd_ratios[n] for n in others if np.isfinite(kd_ratios[n])]
        out.append(HeldOut(name=name, genes=genes,
                           control_mean=np.asarray(summary.var["control_mean"], dtype=np.float64),
                           control_frac=np.nan_to_num(frac), perturbations=list(summary.obs_names.astype(str)),
                           delta=np.nan_to_num(dense_layer(summary, "delta")), sig=sig, others=lines,
                           kd_ratio=float(np.median(ratios)) if ratios else np.nan, k_de=k_de))
    return out


@dataclass
class SearchResult:
    temperature: float
    common_scale: float
    specific_scale: float
    deg_threshold: float
    curve: pd.DataFrame           # criterion per (temperature, a, b)
    threshold_curve: pd.DataFrame  # criterion per DEG threshold
    per_line: pd.DataFrame        # chosen configuration, criterion per held-out line
    weight_check: pd.DataFrame    # zero-shot line score vs measured effect agreement
    classifier_rows: tuple        # (X, y) of every held-out line, to fit the final classifier


def _comps(model, h: HeldOut, temperature: float) -> Components:
    return components(h.others, h.control_mean, h.genes, h.perturbations, temperature=temperature,
                      structure_weight=model.structure_weight, shrinkage=model.shrinkage,
                      kd_ratio=h.kd_ratio if model.knockdown else np.nan)


def search(model, held: list[HeldOut], criterion: Callable) -> SearchResult:
    """Choose temperature, scales and DEG threshold by the mean criterion over ``held``."""
    rows, cache = [], {}

    def score(t, comps, a, b):
        key = (t, a, b)
        if key not in cache:
            values = []
            for h, c in zip(held, comps):
                d = c.delta(a, b)
                values.append(criterion(d, top_k_calls(d, h.k_de), h.delta, h.sig, h.control_mean,
                                        h.perturbations, h.genes)["score"])
            cache[key] = float(np.nanmean(values))
            rows.append({"temperature": t, "common_scale": a, "specific_scale": b, "score": cache[key]})
        return cache[key]

    best = (-np.inf, None)
    for t in model.temperatures:
        comps = [_comps(model, h, t) for h in held]
        a0 = 1.0 if 1.0 in model.common_scales else model.common_scales[0]
        b = max(model.specific_scales, key=lambda s: score(t, comps, a0, s))
        a = max(model.common_scales, key=lambda s: score(t, comps, s, b))
        b = max(model.specific_scales, key=lambda s: score(t, comps, a, s))
        if score(t, comps, a, b) > best[0]:
            best = (score(t, comps, a, b), (t, a, b))
    t, a, b = best[1]
    curve = pd.DataFrame(rows)
    curve["chosen"] = (curve["temperature"] == t) & (curve["common_scale"] == a) & (curve["specific_scale"] == b)
    comps = [_comps(model, h, t) for h in held]
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
        res = [criterion(c.delta(a, b), p >= thr, h.delta, h.sig, h.control_mean, h.perturbations, h.genes)
               for h, c, p in zip(held, comps, probs)]
        per_line_at[thr] = res
        th_rows.append({"threshold": thr, "score": float(np.nanmean([r["score"] for r in res])),
                        "mean_called": float(np.mean([(p >= thr).sum(axis=1).mean() for p in probs]))})
    threshold_curve = pd.DataFrame(th_rows)
    chosen = int(np.argmax(threshold_curve["score"].to_numpy()))
    threshold_curve["chosen"] = np.arange(len(threshold_curve)) == chosen
    thr = float(threshold_curve["threshold"].iloc[chosen])
    per_line = pd.DataFrame(per_line_at[thr], index=pd.Index([h.name for h in held], name="held_out"))
    return SearchResult(temperature=t, common_scale=a, specific_scale=b, deg_threshold=thr, curve=curve,
                        threshold_curve=threshold_curve, per_line=per_line,
                        weight_check=_weight_check(held, comps),
                        classifier_rows=(np.concatenate(Xs), np.concatenate(ys)))


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
