"""A second, independently written atlas generator: effects from a shared low-rank programme.

:func:`simulate_lowrank` writes the same output as :func:`transpert.data.simulate.simulate_atlas`
(per-line h5ad of raw UMI counts in the canonical schema, ``truth.h5ad``, ``lines.csv``,
``truth_perturbations.csv``; :func:`~transpert.data.simulate.load_atlas` reads it back) from a
different generative model, so that no accuracy figure rests only on the simulator the model was
developed on:

* **effects**: every perturbation drives a few of ``n_programmes`` latent programmes
  (activities shared by all lines, Student-t strengths); each line turns programmes into genes
  through its *own* gene loadings, ``U_line = r * U_shared + sqrt(1 - r^2) * U_private`` (sparse,
  Student-t entries with ``tail_df`` degrees of freedom: heavy tails), times a line amplitude.
  The target's loadings are ``U_shared``, so ``r`` is the line's relevance to the target (its
  expected effect correlation; ``lines.csv`` gives the realised one). The perturbed gene is
  knocked down by a per-line efficiency; each perturbation has two guides, the second 60% as
  strong;
* **noise lines** (``n_noise_lines``): reference lines whose effects are pure noise, sparse
  heavy-tailed log fold changes of the same size drawn independently of any programme
  (relevance 0);
* **depth**: every line its own median UMI per cell (``depths``; by default the references
  spread geometrically over 4x around ``reference_depth``);
* **coverage**: each reference line measures a random subset of the perturbations
  (``frac_perturbations``) and of the genes (``frac_genes``); the target measures all;
* **cells**: ``depth`` counts UMI over an 18,000-gene transcriptome (a panel of fewer genes
  holds its share); Poisson counts of ``library * baseline fraction * exp(effect + cell noise)``, the
  cell noise log-normal with a line-specific sd (0.2-0.5), libraries log-normal (sd 0.35);
  baselines: a shared log-gamma gene level plus a line deviation (sd 0.3).

Scale: counts are integer-valued float32 CSR; the truth is natural-log fold changes of the
expected count (0 = no change) for every gene, measured or not. Same ``seed`` and parameters ->
the same bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from transpert._errors import TranspertInputError
from transpert.data.schema import CONTROL_LABEL, PERT_COL
from transpert.data.simulate.atlas import SimulatedAtlas, SimulatedTruth, _write_atlas

__all__ = ["simulate_lowrank"]

_STREAM = 2026  # first key of every random stream of this generator (never reuse elsewhere)
_LOADING_DENSITY = 0.12  # share of genes a programme touches
_SECOND_GUIDE = 0.6
TRANSCRIPTOME_GENES = 18_000  # genes of a whole transcriptome (``depth`` is UMI over all of them)  # strength of the second guide relative to the first


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([_STREAM, int(seed), *key])


def _sparse_t(rng, shape, density, df, scale) -> np.ndarray:
    """Sparse matrix (dense array) with Student-t entries on a random ``density`` of positions."""
    return (rng.random(shape) < density) * rng.standard_t(df, shape) * scale


def _check(seed, relevance, n_genes, n_perturbations, n_programmes, cells_per_perturbation,
           n_control_cells, frac_perturbations, frac_genes, tail_df, n_noise_lines, depths, n_lines):
    def bad(name, value, why):
        raise TranspertInputError(f"simulate lowrank: parameter {name}={value!r}: {why}")

    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        bad("seed", seed, "must be a non-negative integer")
    if relevance.size < 1 and n_noise_lines < 1:
        bad("relevance", list(relevance), "need at least one reference line")
    if np.any(~np.isfinite(relevance)) or np.any(relevance < 0) or np.any(relevance > 1):
        bad("relevance", list(relevance), "values must lie in [0, 1]")
    if n_genes < 20:
        bad("n_genes", n_genes, "need at least 20 genes")
    if not 2 <= n_perturbations <= n_genes // 2:
        bad("n_perturbations", n_perturbations, f"must be between 2 and n_genes/2 = {n_genes // 2}")
    if n_programmes < 1:
        bad("n_programmes", n_programmes, "need at least one programme")
    if cells_per_perturbation < 4:
        bad("cells_per_perturbation", cells_per_perturbation, "need at least 4 cells (two guides)")
    if n_control_cells < 2:
        bad("n_control_cells", n_control_cells, "need at least 2 control cells")
    for name, v in (("frac_perturbations", frac_perturbations), ("frac_genes", frac_genes)):
        if not 0 < v <= 1:
            bad(name, v, "must lie in (0, 1]")
    if not tail_df > 2:
        bad("tail_df", tail_df, "must exceed 2 (finite variance)")
    if n_noise_lines < 0:
        bad("n_noise_lines", n_noise_lines, "must be >= 0")
    if depths is not None and (len(depths) != n_lines or any(not (np.isfinite(d) and d > 0) for d in depths)):
        bad("depths", depths, f"give {n_lines} positive numbers (references, noise lines, target)")


def simulate_lowrank(out_dir: str | os.PathLike | None = None, *, seed: int = 0,
                     relevance: Sequence[float] = (0.9, 0.6, 0.3), n_noise_lines: int = 0,
                     n_genes: int = 1000, n_perturbations: int = 60, n_programmes: int = 8,
                     cells_per_perturbation: int = 60, n_control_cells: int = 300,
                     reference_depth: float = 10_000, target_depth: float = 20_000,
                     depths: Sequence[float] | None = None, frac_perturbations: float = 0.8,
                     frac_genes: float = 0.9, tail_df: float = 3.0, effect_scale: float = 1.0,
                     line_names: Sequence[str] | None = None) -> SimulatedAtlas:
    """Simulate reference lines (one per ``relevance`` value, then ``n_noise_lines`` noise lines)
    and a target line (module docstring). Returns a :class:`SimulatedAtlas` of raw counts with
    the truth; with ``out_dir`` also writes it in the atlas layout.

    ``relevance``: each programme line's loading correlation with the target (1 = the target's
    loadings). ``depths``: median UMI per cell of every line (references, noise lines, target);
    default: references spread over 4x around ``reference_depth``, noise lines at it, the target at
    ``target_depth``. ``frac_perturbations`` / ``frac_genes``: share of the panel / of the genes
    each reference line measures. ``tail_df``: degrees of freedom of the loadings' and the noise
    effects' Student-t (smaller = heavier tails). ``effect_scale`` multiplies every effect but
    the knockdown.
    """
    relevance = np.atleast_1d(np.asarray(relevance, dtype=float))
    n_refs = relevance.size + int(n_noise_lines)
    n_lines = n_refs + 1
    _check(seed, relevance, n_genes, n_perturbations, n_programmes, cells_per_perturbation,
           n_control_cells, frac_perturbations, frac_genes, tail_df, int(n_noise_lines), depths, n_lines)
    names = ([f"lr{i + 1}" for i in range(relevance.size)] + [f"noise{i + 1}" for i in range(n_noise_lines)]
             + ["target"]) if line_names is None else [str(x) for x in line_names]
    if len(names) != n_lines or len(set(names)) != n_lines:
        raise TranspertInputError(f"simulate lowrank: parameter line_names={line_names!r}: need "
                                  f"{n_lines} distinct names (references, noise lines, target)")
    if depths is None:
        spread = 2.0 ** np.linspace(-1, 1, relevance.size) if relevance.size > 1 else np.ones(1)
        depths = list(reference_depth * spread) + [reference_depth] * n_noise_lines + [target_depth]
    depths = [float(d) for d in depths]

    genes = np.array([f"LRG{i:05d}" for i in range(n_genes)])
    r = _rng(seed, 1)
    level = np.log(r.gamma(0.35, 1.0, n_genes) + 1e-4)
    panel = np.sort(r.choice(n_genes, n_perturbations, replace=False))
    perts = genes[panel]
    # perturbation -> programme activities (shared biology); 15% without downstream effect
    r = _rng(seed, 2)
    activity = np.zeros((n_perturbations, n_programmes))
    for p in range(n_perturbations):
        k = r.choice(n_programmes, size=min(n_programmes, 1 + r.poisson(0.7)), replace=False)
        activity[p, k] = r.standard_t(tail_df, k.size) * 0.8
    has_effect = r.random(n_perturbations) >= 0.15
    activity[~has_effect] = 0.0
    shared_loadings = _sparse_t(_rng(seed, 3), (n_programmes, n_genes), _LOADING_DENSITY, tail_df, 0.5)

    effects, baselines, lines_rows, pert_rows, line_data = [], [], [], [], {}
    for i, name in enumerate(names):
        rl = _rng(seed, 100 + i)
        is_target, is_noise = i == n_lines - 1, relevance.size <= i < n_refs
        rel = 1.0 if is_target else (0.0 if is_noise else float(relevance[i]))
        amplitude = 1.0 if is_target else float(np.exp(rl.normal(0.0, 0.25)))
        if is_noise:
            eff = _sparse_t(rl, (n_perturbations, n_genes), 0.05, tail_df, 0.5)
        else:
            private = _sparse_t(rl, (n_programmes, n_genes), _LOADING_DENSITY, tail_df, 0.5)
            loadings = rel * shared_loadings + np.sqrt(max(0.0, 1 - rel ** 2)) * private
            eff = activity @ loadings
        eff = np.clip(effect_scale * amplitude * eff, -4.0, 4.0)
        eff[np.abs(eff) < 0.02] = 0.0  # tiny loadings products: no change
        efficiency = np.clip(rl.beta(6.0, 2.0, n_perturbations), 0.05, 0.97)
        eff[np.arange(n_perturbations), panel] = np.log1p(-efficiency)
        base = level + rl.normal(0.0, 0.3, n_genes)
        frac = np.exp(base - base.max())
        frac /= frac.sum()
        measured_p = np.ones(n_perturbations, bool) if is_target else rl.random(n_perturbations) < frac_perturbations
        measured_g = np.ones(n_genes, bool) if is_target else rl.random(n_genes) < frac_genes
        measured_p[rl.integers(n_perturbations)] = True  # at least one perturbation
        cell_sd = float(rl.uniform(0.2, 0.5))
        X, labels, guides = _cells(rl, frac, eff, np.flatnonzero(measured_p), cells_per_perturbation,
                                   n_control_cells, depths[i], cell_sd)
        line_data[name] = _line_anndata(name, X[:, measured_g], labels, guides, genes[measured_g], perts,
                                        role="target" if is_target else "reference",
                                        params=dict(seed=int(seed), generator="lowrank", line=i))
        effects.append((eff, measured_p))
        baselines.append(frac)
        lines_rows.append(dict(line=name, role="target" if is_target else "reference",
                               kind="target" if is_target else ("noise" if is_noise else "programme"),
                               shared_weight=rel, effect_amplitude=amplitude, depth_median=depths[i],
                               cell_noise_sd=cell_sd, n_perturbations_measured=int(measured_p.sum()),
                               n_genes_measured=int(measured_g.sum())))
        for p in np.flatnonzero(measured_p):
            pert_rows.append({"line": name, PERT_COL: perts[p], "knockdown_efficiency": efficiency[p],
                              "has_effect": bool(is_noise or has_effect[p]),
                              "module": int(np.argmax(np.abs(activity[p]))) if has_effect[p] else -1,
                              "n_changed": int((eff[p] != 0).sum()),
                              "n_cells": int((labels == p).sum())})

    lines = pd.DataFrame(lines_rows).set_index("line")
    target_eff = effects[-1][0]
    off_target = np.ones_like(target_eff, dtype=bool)
    off_target[np.arange(n_perturbations), panel] = False  # the knockdown would make lines alike
    lines["similarity_to_target"] = [float(np.corrcoef(e[m][off_target[m]], target_eff[m][off_target[m]])[0, 1])
                                     for e, m in effects]
    gene_index = pd.Index(genes.astype(str), name="gene")
    truth = SimulatedTruth(
        log_effects={n: pd.DataFrame(e[m].astype(np.float32), index=pd.Index(perts[m], name=PERT_COL),
                                     columns=gene_index) for n, (e, m) in zip(names, effects)},
        perturbations=pd.DataFrame(pert_rows),
        lines=lines[["role", "similarity_to_target", "shared_weight", "effect_amplitude", "depth_median",
                     "kind", "cell_noise_sd", "n_perturbations_measured", "n_genes_measured"]],
        baseline=pd.DataFrame(np.array(baselines).T, index=gene_index, columns=names))
    params = dict(generator="lowrank", seed=int(seed), relevance=[float(x) for x in relevance],
                  n_noise_lines=int(n_noise_lines), n_genes=n_genes, n_perturbations=n_perturbations,
                  n_programmes=n_programmes, cells_per_perturbation=cells_per_perturbation,
                  n_control_cells=n_control_cells, depths=depths, frac_perturbations=frac_perturbations,
                  frac_genes=frac_genes, tail_df=tail_df, effect_scale=effect_scale)
    atlas = SimulatedAtlas(lines=line_data, reference_lines=names[:-1], target_line=names[-1],
                           perturbations=[str(p) for p in perts], truth=truth, params=params)
    if out_dir is not None:
        _write_atlas(atlas, Path(out_dir))
    return atlas


def _cells(rng, frac, eff, measured, n_per, n_ctrl, depth, cell_sd):
    """Raw counts (CSR float32) of the control cells then each measured perturbation's cells,
    their group (-1 = control) and guide."""
    blocks, labels, guides = [], [], []
    groups = [(-1, n_ctrl)] + [(int(p), int(max(4, rng.poisson(n_per)))) for p in measured]
    for p, n in groups:
        # depth is over the whole transcriptome; a panel of fewer genes holds its share of it
        lib = depth * min(1.0, frac.size / TRANSCRIPTOME_GENES) * np.exp(rng.normal(0.0, 0.35, n))
        guide = np.arange(n) % 2 if p >= 0 else np.arange(n) % 4
        log_rate = np.zeros((n, frac.size)) if p < 0 else \
            np.where(guide[:, None] == 0, 1.0, _SECOND_GUIDE) * eff[p][None, :]
        rate = lib[:, None] * frac[None, :] * np.exp(log_rate + rng.normal(0.0, cell_sd, (n, frac.size))
                                                     - cell_sd ** 2 / 2)
        blocks.append(sp.csr_matrix(rng.poisson(rate).astype(np.float32)))
        labels.append(np.full(n, p))
        guides.append(guide)
    return sp.vstack(blocks, format="csr"), np.concatenate(labels), np.concatenate(guides)


def _line_anndata(name, X, labels, guides, genes, perts, role, params):
    import anndata as ad

    is_ctrl = labels < 0
    target = np.where(is_ctrl, CONTROL_LABEL, perts[np.maximum(labels, 0)].astype(object))
    guide_id = [f"{CONTROL_LABEL}_{g:02d}" if c else f"{t}_g{g + 1}" for t, g, c in zip(target, guides, is_ctrl)]
    obs = pd.DataFrame({
        PERT_COL: pd.Categorical(target, categories=[CONTROL_LABEL] + sorted(map(str, perts))),
        "guide_id": pd.Categorical(guide_id),
        "batch": pd.Categorical([f"{name}_b1"] * X.shape[0]),
        "cell_line": pd.Categorical([name] * X.shape[0]),
    }, index=pd.Index([f"{name}-{i:06d}" for i in range(X.shape[0])], name="cell"))
    var = pd.DataFrame({"gene_id": [f"ENSLR{g[3:]}" for g in genes]}, index=pd.Index(genes.astype(str), name="gene"))
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.uns["simulation"] = {"line": name, "role": role, "scale": "counts", "params": json.dumps(params)}
    return adata
