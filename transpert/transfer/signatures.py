"""Signature-level transfer: which genes go up in a target line, from another line's ranked lists.

Some public references give only ranked gene lists per perturbation (e.g. Replogle et al. 2022's
K562 and RPE1 up-regulated signatures: ``cell_line, target, list, rank, gene`` with lists
``up_top`` and ``up_full_top1000``). This module runs the DEG-classifier idea at that level:
for each held-out perturbation, rank the candidate genes by the probability that they are in
the target line's ``up_top`` list, and compare that ranking with simply copying the source
line's list.

Features of (perturbation p, gene g), all from data available before p is measured in the
target line:

* source line: ``log((N + 1) / rank)`` of g in p's ``up_top`` and in p's ``up_full_top1000``
  (0 when absent; N the list's length), and membership of ``up_top``;
* source line, gene level: how often g is in ``up_top`` across all the source's perturbations
  (smoothed logit);
* target line, gene level: how often g is in ``up_top`` and in ``up_full_top1000`` across the
  target's *training* perturbations (smoothed logit; leave-one-out for the training rows);
* one interaction: source rank score x target frequency logit.

The classifier is :class:`transpert.transfer.DEGClassifier` (statsmodels ridge logistic GLM),
fit by K-fold over perturbations. Metric: average precision (AUPRC) per held-out perturbation
over all candidate genes (every gene in any list of either line, the perturbed gene excluded),
then the mean over perturbations, with a percentile bootstrap over perturbations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError
from transpert.transfer.deg_classifier import DEGClassifier, average_precision, de_logit

SIGNATURE_COLUMNS = ("cell_line", "target", "list", "rank", "gene")
SIGNATURE_FEATURES = ("src_top_rank_score", "src_full_rank_score", "src_in_top",
                      "src_gene_top_logit", "tgt_gene_top_logit", "tgt_gene_full_logit",
                      "src_full_x_tgt_top")


def read_signatures(path) -> pd.DataFrame:
    """Read a ``cell_line,target,list,rank,gene`` signature table (CSV, gzip allowed)."""
    table = pd.read_csv(path)
    missing = [c for c in SIGNATURE_COLUMNS if c not in table.columns]
    if missing:
        raise TranspertInputError(f"{path}: columns {missing} are missing; found {list(table.columns)}")
    return table


def _rank_matrix(table: pd.DataFrame, line: str, lst: str, targets: pd.Index,
                 genes: pd.Index) -> np.ndarray:
    """``log((N + 1) / rank)`` of each gene in each target's list (0 when absent)."""
    sub = table[(table["cell_line"] == line) & (table["list"] == lst)]
    sub = sub[sub["target"].isin(targets)]
    out = np.zeros((len(targets), len(genes)))
    if sub.empty:
        return out
    n = sub.groupby("target")["rank"].transform("max").to_numpy(dtype=np.float64)
    r = targets.get_indexer(sub["target"])
    c = genes.get_indexer(sub["gene"])
    out[r, c] = np.log((n + 1.0) / sub["rank"].to_numpy(dtype=np.float64))
    return out


def signature_transfer_experiment(table: pd.DataFrame, *, source: str = "K562",
                                  target: str = "RPE1", label_list: str = "up_top",
                                  n_folds: int = 5, n_boot: int = 1000, alpha: float = 1e-3,
                                  max_targets: int | None = None, max_rows: int = 300_000,
                                  seed: int = 0) -> dict:
    """Cross-validated AUPRC of the classifier vs copying the source line's lists.

    Returns a dict with the mean per-perturbation AUPRC of ``classifier``, of
    ``copy_source_top`` (the source's ``up_top`` list, ranked, everything else tied last),
    of ``copy_source_full`` (its ranked top-1000 list), of the target's training frequency alone
    (``target_frequency``), and of a random ranking (``prevalence``), each with a 95% percentile
    bootstrap interval over held-out perturbations, plus the bootstrap interval of the difference
    classifier - copy_source_top, and the classifier's coefficients (refit on all perturbations).
    ``max_rows``: (perturbation, gene) rows each classifier fit uses at most (uniform subsample).
    """
    for line in (source, target):
        if line not in set(table["cell_line"]):
            raise TranspertInputError(
                f"signatures: cell_line {line!r} not found; lines are {sorted(set(table['cell_line']))}")
    both = set(table.loc[table["cell_line"] == source, "target"]) & \
        set(table.loc[table["cell_line"] == target, "target"])
    targets = pd.Index(sorted(both))
    rng = np.random.default_rng(seed)
    if max_targets is not None and len(targets) > max_targets:
        targets = pd.Index(sorted(rng.choice(targets, max_targets, replace=False)))
    if len(targets) < 2 * n_folds:
        raise TranspertInputError(
            f"signatures: {len(targets)} perturbations shared by {source} and {target}; "
            f"need at least {2 * n_folds} for {n_folds}-fold cross-validation")
    table = table[table["target"].isin(targets)]
    genes = pd.Index(sorted(set(table["gene"])))
    src_top = _rank_matrix(table, source, "up_top", targets, genes)
    src_full = _rank_matrix(table, source, "up_full_top1000", targets, genes)
    tgt_top = _rank_matrix(table, target, label_list, targets, genes) > 0
    tgt_full = _rank_matrix(table, target, "up_full_top1000", targets, genes) > 0
    # the perturbed gene itself is never listed: leave it out of the candidates
    candidate = np.ones((len(targets), len(genes)), dtype=bool)
    own = genes.get_indexer(targets)
    candidate[np.flatnonzero(own >= 0), own[own >= 0]] = False
    n_t = len(targets)
    src_gene_logit = de_logit((src_top > 0).sum(axis=0), n_t)

    def features(rows, top_count, full_count, n):
        top_logit = de_logit(top_count, n)
        full_logit = de_logit(full_count, n)
        shape = (len(rows), len(genes))
        cols = [src_top[rows], src_full[rows], (src_top[rows] > 0).astype(float),
                np.broadcast_to(src_gene_logit, shape), np.broadcast_to(top_logit, shape),
                np.broadcast_to(full_logit, shape), src_full[rows] * top_logit]
        return np.stack([np.asarray(c, dtype=np.float64).ravel() for c in cols], axis=1)

    order = rng.permutation(n_t)
    folds = [np.sort(f) for f in np.array_split(order, n_folds)]
    prob = np.zeros((n_t, len(genes)))
    for held in folds:
        fit = np.setdiff1d(np.arange(n_t), held)
        top_c, full_c = tgt_top[fit].sum(axis=0), tgt_full[fit].sum(axis=0)
        # leave-one-out frequencies for the training rows: their own label is not a feature
        X = features(fit, top_c - tgt_top[fit], full_c - tgt_full[fit], len(fit) - 1)
        keep = candidate[fit].ravel()
        clf = DEGClassifier(alpha=alpha, max_rows=max_rows, random_state=seed).fit(X[keep], tgt_top[fit].ravel()[keep])
        prob[held] = clf.predict_proba(features(held, top_c, full_c, len(fit))).reshape(len(held), -1)

    # per-perturbation AUPRC over candidate genes
    def per_target(score):
        return np.array([average_precision(tgt_top[i][candidate[i]], score[i][candidate[i]])
                         for i in range(n_t)])

    # target frequency alone, computed out of fold like the classifier
    freq = np.zeros_like(prob)
    for held in folds:
        fit = np.setdiff1d(np.arange(n_t), held)
        freq[held] = tgt_top[fit].mean(axis=0)
    # copying the source's list: its up_top genes by rank, every other gene tied below
    scores = {"classifier": per_target(prob), "copy_source_top": per_target(src_top),
              "copy_source_full": per_target(src_full), "target_frequency": per_target(freq)}
    ok = np.isfinite(scores["classifier"])  # a perturbation with an empty target list has no AUPRC
    scores = {k: v[ok] for k, v in scores.items()}
    prevalence = np.array([tgt_top[i][candidate[i]].mean() for i in range(n_t)])[ok]
    boot = rng.integers(0, ok.sum(), size=(n_boot, ok.sum()))

    def summary(v):
        means = v[boot].mean(axis=1)
        return {"mean": float(v.mean()), "ci95": [float(np.quantile(means, 0.025)),
                                                  float(np.quantile(means, 0.975))]}

    result = {k: summary(v) for k, v in scores.items()}
    result["prevalence"] = summary(prevalence)
    result["classifier_minus_copy_source_top"] = summary(scores["classifier"] - scores["copy_source_top"])
    result["classifier_minus_copy_source_full"] = summary(scores["classifier"] - scores["copy_source_full"])
    result["classifier_wins_fraction"] = float(np.mean(scores["classifier"] > scores["copy_source_top"]))
    # coefficients of a classifier fit on all perturbations (for reading, not for the metric)
    top_c, full_c = tgt_top.sum(axis=0), tgt_full.sum(axis=0)
    X = features(np.arange(n_t), top_c - tgt_top, full_c - tgt_full, n_t - 1)
    keep = candidate.ravel()
    clf = DEGClassifier(alpha=alpha, max_rows=max_rows, random_state=seed).fit(X[keep], tgt_top.ravel()[keep])
    result["coefficients"] = dict(zip(["intercept", *SIGNATURE_FEATURES], map(float, clf.coef_)))
    result.update({"source": source, "target": target, "label_list": label_list,
                   "n_perturbations": int(ok.sum()), "n_candidate_genes": len(genes),
                   "n_folds": n_folds, "n_boot": n_boot, "seed": seed})
    return result
