"""The vcc2026 profile's metrics from two sides' summaries (:mod:`._stats`).

Scales: profiles are log1p(TS * P / S) (TS = 5e4); DE tables carry log2 fold changes of CPM
means and BH-adjusted Wilcoxon p-values. Each function returns ``{label: value}`` over the
non-control labels (sorted), NaN where cell-eval2 reports NaN; ``de_wilcoxon_lfc_nmae`` leaves
out the perturbations its real-side gate omits. Every metric drops the perturbation's own
target gene (a label equal to a gene name): the DE metrics from their tables, the expression
errors from their sums, and ``pds_cosine`` drops every panel target's gene from the space.
"""

from __future__ import annotations

import numpy as np

from transpert.evaluate.vcc2026._config import (
    LFC_NMAE_MIN_GATE,
    P_ADJ_THRESHOLD,
    PRED_TRACE_CAP_K,
    REACH_PURITY_FLOOR,
)


def _defined(x):
    return ~np.isnan(x) & (x != 0)


def full_table(de, G):
    """A DE table spread over all G genes: NaN where the gene was not tested."""
    lfc = np.full(G, np.nan)
    p = np.full(G, np.nan)
    p_adj = np.full(G, np.nan)
    lfc[de.kept], p[de.kept] = de.lfc, de.p
    p_adj[de.kept] = np.where(np.isnan(de.lfc), 1.0, de.p_adj)  # NaN log2FC: p_adj 1
    present = np.zeros(G, dtype=bool)
    present[de.kept] = True
    return lfc, p, p_adj, present


def de_metrics(real, pred, genes: np.ndarray, labels, pos: dict | None = None) -> dict:
    """The four DE members per perturbation: fidelity yield (raw), reach (raw), Jaccard of the
    significant sets, normalised MAE of log2FC over the real-significant gate. Each side's table
    holds the genes its own control kept (the same genes when both use the real control); a
    target is excluded when its label is a gene of the real table. ``pos``: {gene: column}
    when the caller already has it."""
    G = genes.size
    if pos is None:
        pos = {g: i for i, g in enumerate(genes)}
    out = {k: {} for k in ("de_wilcoxon_direction_fidelity_yield_raw",
                           "de_wilcoxon_direction_reach_raw", "de_wilcoxon_lfc_nmae",
                           "de_wilcoxon_sig_jaccard")}
    alpha = P_ADJ_THRESHOLD
    for p in labels:
        lfc_r, _, padj_r, in_r = full_table(real.de[p], G)
        lfc_p, p_p, padj_p, in_p = full_table(pred.de[p], G)
        if p in pos and in_r[pos[p]]:
            in_r[pos[p]] = in_p[pos[p]] = False
        sig_r = in_r & (padj_r < alpha)
        sig_p = in_p & (padj_p < alpha)
        a, b = int(sig_r.sum()), int(sig_p.sum())
        tp = int((sig_r & sig_p).sum())
        union = a + b - tp
        out["de_wilcoxon_sig_jaccard"][p] = 1.0 if union == 0 else tp / union
        both = in_r & in_p
        in_denom = both & _defined(lfc_r)
        match = in_denom & _defined(lfc_p) & (np.sign(lfc_p) == np.sign(lfc_r))
        n_conf = a
        n_pred = int((sig_p & in_denom).sum())
        k = int((sig_p & match).sum())
        den = max(n_pred, n_conf)
        out["de_wilcoxon_direction_fidelity_yield_raw"][p] = np.nan if den == 0 else k / den
        # reach: the real-significant genes in the prediction's own order of confidence
        if n_conf == 0:
            out["de_wilcoxon_direction_reach_raw"][p] = np.nan
        else:
            s = np.flatnonzero(sig_r & in_p)
            rank_padj = np.where(np.isnan(padj_p[s]), np.inf, padj_p[s])
            rank_p = np.where(np.isnan(p_p[s]), np.inf, p_p[s])
            abs_lfc = np.where(np.isnan(lfc_p[s]), -np.inf, np.abs(lfc_p[s]))
            order = s[np.lexsort((genes[s], -abs_lfc, rank_p, rank_padj, ~sig_p[s]))]
            n_denom = np.cumsum(in_denom[order])
            n_match = np.cumsum(match[order])
            with np.errstate(invalid="ignore", divide="ignore"):
                purity = n_match / n_denom
            ok = (n_denom > 0) & (purity >= REACH_PURITY_FLOOR)
            k_star = int(n_denom[ok].max()) if ok.any() else 0
            out["de_wilcoxon_direction_reach_raw"][p] = k_star / n_conf
        gate = sig_r & np.isfinite(lfc_r)
        value = nmae(lfc_r[gate], np.where(in_p, lfc_p, np.nan)[gate])
        if value is not None:
            out["de_wilcoxon_lfc_nmae"][p] = value
    return out


def nmae(lfc_ref: np.ndarray, lfc_other: np.ndarray):
    """mean|other - ref| / mean|ref| over a gate (other's missing or non-finite values read as
    0); None when the gate holds fewer than 10 genes or the denominator is 0 or not finite."""
    n_gate = lfc_ref.size
    if n_gate < LFC_NMAE_MIN_GATE:
        return None
    lp = np.where(np.isfinite(lfc_other), lfc_other, 0.0)
    num = np.abs(lp - lfc_ref).sum() / n_gate
    den = np.abs(lfc_ref).sum() / n_gate
    if not np.isfinite(den) or den == 0.0:
        return None
    return float(num) / float(den)


def target_columns(labels, genes: np.ndarray) -> dict:
    """{row index: gene column} for every label that names a gene."""
    pos = {g: i for i, g in enumerate(genes)}
    return {i: pos[p] for i, p in enumerate(labels) if p in pos}


def pds_cosine(real_means, pred_means, ctrl: np.ndarray, genes, labels, pred_ctrl=None) -> dict:
    """Cosine-distance discrimination of the predicted effects (against the real control, or
    ``pred_ctrl``) among the real effects, panel targets' genes removed, midrank ties, rank
    over n - 1."""
    cols = np.unique(np.fromiter(target_columns(labels, genes).values(), dtype=np.intp))
    keep = np.ones(genes.size, dtype=bool)
    keep[cols] = False
    real_eff = (real_means - ctrl)[:, keep]
    pred_eff = (pred_means - (ctrl if pred_ctrl is None else pred_ctrl))[:, keep]
    sim = pred_eff @ real_eff.T
    pn = np.einsum("ig,ig->i", pred_eff, pred_eff)
    rn = np.einsum("jg,jg->j", real_eff, real_eff)
    denom = np.sqrt(pn)[:, None] * np.sqrt(rn)[None, :]
    cos = np.zeros_like(sim)
    nz = denom != 0
    cos[nz] = sim[nz] / denom[nz]
    dist = np.clip(1.0 - cos, 0.0, 2.0)
    n = len(labels)
    out = {}
    for i, p in enumerate(labels):
        row = dist[i]
        match = row[i]
        if np.isnan(match):
            n_less = int(np.count_nonzero(~np.isnan(row)))
            n_equal = row.size - n_less
        else:
            n_less = int(np.count_nonzero(row < match))
            n_equal = int(np.count_nonzero(row == match))
        rank = n_less + (n_equal - 1) / 2.0
        out[p] = 1.0 if n - 1 <= 0 else 1.0 - rank / (n - 1)
    return out


def _row_weights(n, n_genes, cols):
    n_row = np.full(n, float(n_genes))
    for k in cols:
        n_row[k] = n_genes - 1
    return np.divide(1.0, n_row, out=np.zeros_like(n_row), where=n_row > 0)


def _across_pert_budget(pred_sel, cols, w):
    n_rows, n_genes = pred_sel.shape
    dev = pred_sel - pred_sel.mean(axis=0)
    s1 = np.einsum("ij,i->j", dev, w)
    s2 = np.einsum("ij,ij,i->j", dev, dev, w)
    wsum = np.full(n_genes, float(w.sum()))
    cnt = np.full(n_genes, float(n_rows))
    for k, col in cols.items():
        v = dev[k, col]
        s1[col] -= w[k] * v
        s2[col] -= w[k] * v * v
        wsum[col] -= w[k]
        cnt[col] -= 1.0
    ok = (cnt >= 2.0) & (wsum > 0.0)
    if not ok.any():
        return 0.0
    return float(np.maximum(s2[ok] - s1[ok] ** 2 / wsum[ok], 0.0).sum())


def _sq_dist_minus_target(a, b, term_a, term_b, cols):
    d = a - b
    summed = np.einsum("ij,ij->i", d, d) - term_a - term_b
    n_row = np.full(a.shape[0], float(a.shape[1]))
    for k, col in cols.items():
        summed[k] -= (a[k, col] - b[k, col]) ** 2
        n_row[k] = a.shape[1] - 1
    return np.divide(summed, n_row, out=np.full(summed.shape, np.nan), where=n_row > 0)


def expr_metrics(real_means, real_jk, pred_means, pred_jk, ctrl, ctrl_jk, genes, labels,
                 mass_target: float) -> dict:
    """expr_mse_unbiased, expr_mse_unbiased_capped (prediction's correction capped at the
    real one's, then scaled to the across-perturbation budget when it claims more),
    expr_distance_unbiased (real vs real control), expr_real_mass_ratio."""
    G = genes.size
    cols = target_columns(labels, genes)
    mse = _sq_dist_minus_target(pred_means, real_means, pred_jk, real_jk, cols)
    capped = np.minimum(pred_jk, PRED_TRACE_CAP_K * real_jk)
    w = _row_weights(len(labels), G, cols)
    claim = float((capped * w).sum())
    if claim > 0.0:
        ratio = _across_pert_budget(pred_means, cols, w) / claim
        if ratio < 1.0:
            capped = capped * ratio
    mse_c = _sq_dist_minus_target(pred_means, real_means, capped, real_jk, cols)
    ctrl_b = np.broadcast_to(ctrl, real_means.shape)
    dist = _sq_dist_minus_target(real_means, ctrl_b, real_jk, np.full(len(labels), ctrl_jk), cols)
    mass = np.expm1(real_means).sum(axis=1) / float(mass_target)
    as_dict = lambda v: {p: float(x) for p, x in zip(labels, v)}  # noqa: E731
    return {"expr_mse_unbiased": as_dict(mse), "expr_mse_unbiased_capped": as_dict(mse_c),
            "expr_distance_unbiased": as_dict(dist), "expr_real_mass_ratio": as_dict(mass)}
