"""Small synthetic summary profiles with a known structure, for tests and examples.

Not a simulator of cells (that is :mod:`transpert.data.simulate`): this builds summary profiles
directly (log1p scale), so the transfer model can be tested where the right answer is known.
Every line's deltas are ``scale_l * (shared effect + sqrt(1 - shared_l^2)-weighted private
effect) + generic response + noise``; p-values come from a z-test of the delta against the noise
sd, FDR is Benjamini-Hochberg within each perturbation (as pdex).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values along the last axis."""
    n = p.shape[-1]
    order = np.argsort(p, axis=-1)
    ranked = np.take_along_axis(p, order, -1) * n / np.arange(1, n + 1)
    ranked = np.minimum.accumulate(ranked[..., ::-1], axis=-1)[..., ::-1]
    out = np.empty_like(p)
    np.put_along_axis(out, order, np.minimum(ranked, 1.0), -1)
    return out


def make_summary(delta: np.ndarray, control_mean: np.ndarray, perturbations, genes, *,
                 noise_sd: float, n_cells: int = 100, frac_k: float = 1.5):
    """A summary AnnData (transpert.summarize layout) from log1p deltas and control means."""
    import anndata as ad
    from scipy import stats

    mean = np.clip(control_mean[None, :] + delta, 0.0, None)
    delta = mean - control_mean[None, :]
    z = delta / noise_sd
    pvalue = 2 * stats.norm.sf(np.abs(z))
    num, den = np.expm1(mean), np.expm1(control_mean)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        log2fc = np.log2(num / den)
    log2fc[(num == 0) & (den == 0)] = 0.0
    frac = 1.0 - np.exp(-frac_k * np.expm1(mean))
    obs = pd.DataFrame({"n_cells": np.full(len(perturbations), n_cells)},
                       index=pd.Index(list(perturbations)))
    var = pd.DataFrame({"control_mean": control_mean,
                        "control_frac_expressing": 1.0 - np.exp(-frac_k * np.expm1(control_mean))},
                       index=pd.Index(list(genes)))
    out = ad.AnnData(X=mean.astype(np.float32), obs=obs, var=var)
    out.layers["mean"] = mean
    out.layers["delta"] = delta
    out.layers["log2fc"] = log2fc
    out.layers["statistic"] = z
    out.layers["pvalue"] = pvalue
    out.layers["fdr"] = _bh(pvalue)
    out.layers["frac_expressing"] = frac
    return out


def synthetic_lines(n_perturbations: int = 60, n_genes: int = 300, *,
                    lines: dict[str, dict] | None = None, target_scale: float = 1.0,
                    noise_sd: float = 0.05, effect_density: float = 0.08, seed: int = 0):
    """Reference summaries and a full target summary sharing one set of true effects.

    ``lines``: per reference line ``{"shared": correlation with the target's effects in [0, 1],
    "scale": effect multiplier}``. Returns ``(references, target, truth)`` where ``target``
    covers every perturbation (split it into train/test yourself) and ``truth`` is the target's
    noiseless delta (DataFrame). Perturbation labels ``P0..``; the first half are also gene
    names, so the knockdown of the perturbed gene is part of the data.
    """
    rng = np.random.default_rng(seed)
    if lines is None:
        lines = {"A": {"shared": 0.9, "scale": 1.0}, "B": {"shared": 0.5, "scale": 1.0}}
    genes = [f"P{i}" for i in range(n_perturbations // 2)] + \
        [f"G{i}" for i in range(n_genes - n_perturbations // 2)]
    perts = [f"P{i}" for i in range(n_perturbations)]

    def effects():
        mask = rng.random((n_perturbations, n_genes)) < effect_density
        return mask * rng.normal(0, 0.6, (n_perturbations, n_genes))

    shared = effects()
    base_ctrl = rng.gamma(1.5, 0.8, n_genes)
    generic = rng.normal(0, 0.03, n_genes)

    def line_delta(rho: float, scale: float, ctrl: np.ndarray) -> np.ndarray:
        d = scale * (rho * shared + np.sqrt(max(0.0, 1 - rho ** 2)) * effects()) + generic
        for i, p in enumerate(perts):  # CRISPRi knockdown of the perturbed gene (to ~30%)
            if p in genes:
                j = genes.index(p)
                d[i, j] = np.log1p(0.3 * np.expm1(ctrl[j])) - ctrl[j]
        return d

    truth = line_delta(1.0, target_scale, base_ctrl)
    target = make_summary(truth + rng.normal(0, noise_sd, truth.shape), base_ctrl, perts, genes,
                          noise_sd=noise_sd)
    refs = {}
    for name, spec in lines.items():
        ctrl = np.abs(base_ctrl + rng.normal(0, 0.3 * (1 - spec["shared"]) + 0.02, n_genes))
        d = line_delta(spec["shared"], spec.get("scale", 1.0), ctrl)
        refs[name] = make_summary(d + rng.normal(0, noise_sd, d.shape), ctrl, perts, genes,
                                  noise_sd=noise_sd)
    return refs, target, pd.DataFrame(truth, index=perts, columns=genes)


def write_zero_shot_case(tmp_path, n_cells: int, control_rows=slice(None)):
    """A small zero-shot case on disk for CLI tests: three simulated reference lines
    (``<name>.h5ad``, raw counts), the target's control cells ``controls.h5ad`` (its
    ``control_rows`` of the controls) and ``counts.csv`` asking ``n_cells`` cells for four of its
    perturbations. Returns ``(atlas, refs, target, labels, perts)`` with ``refs`` the
    ``name=path`` arguments of ``--reference``."""
    from transpert.data.simulate import simulate_atlas

    atlas = simulate_atlas(seed=4, n_reference_lines=3, similarity=(0.9, 0.5, 0.2), n_genes=120,
                           n_perturbations=10, cells_per_perturbation=20, n_control_cells=80)
    refs = []
    for name in atlas.reference_lines:
        atlas.lines[name].write_h5ad(tmp_path / f"{name}.h5ad")
        refs.append(f"{name}={tmp_path / f'{name}.h5ad'}")
    target = atlas.lines[atlas.target_line]
    labels = target.obs["target_gene"].astype(str).to_numpy()
    ctrl_rows = np.flatnonzero(labels == "non-targeting")
    target[ctrl_rows[control_rows]].copy().write_h5ad(tmp_path / "controls.h5ad")
    perts = sorted(set(labels) - {"non-targeting"})[:4]
    pd.DataFrame({"target_gene": perts, "n_cells": n_cells}).to_csv(tmp_path / "counts.csv",
                                                                    index=False)
    return atlas, refs, target, labels, perts
