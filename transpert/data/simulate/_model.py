"""The small multi-cell-line atlas: parameters -> per-line AnnData of raw counts + ground truth.

Scale: the cells are raw UMI counts (integer-valued float32 CSR); the ground truth is natural-log
fold changes of expected counts (see :mod:`transpert.data.simulate._effects`).

Randomness: every component draws from its own generator seeded by ``(seed, component)``, so
the panel, programs and each line's cells come out the same whatever else changes, and numpy's
generators are single-threaded: the same seed gives the same bytes on any machine load.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from transpert._errors import TranspertInputError
from transpert.data.simulate import _effects as fx
from transpert.data.simulate import _genes as gn
from transpert.data.schema import CONTROL_LABEL

CONTROL = CONTROL_LABEL
H1_DEPTH = 50_000  # median UMI per cell of the challenge's H1 data
N_CONTROL_GUIDES = 10
ESCAPE_FRACTION = 0.05  # cells in which the guide does nothing (no knockdown, no effect)

# sub-stream keys of the seed (never reorder: it would change every atlas)
_K_GENES, _K_PANEL, _K_PROGRAMS, _K_LATENT, _K_LINES = 1, 2, 3, 4, 100


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *key])


def check_panel(bad, n_genes, n_perturbations) -> None:
    """The gene panel checks both simulators share; ``bad(name, value, why)`` raises."""
    if n_genes < 10:
        bad("n_genes", n_genes, "need at least 10 genes")
    if not 1 <= n_perturbations <= n_genes // 2:
        bad("n_perturbations", n_perturbations, f"must be between 1 and n_genes/2 = {n_genes // 2}")


def check_params(*, seed, n_reference_lines, similarity, n_genes, n_perturbations,
                 cells_per_perturbation, n_control_cells, reference_depth, target_depth,
                 frac_no_effect, n_programs, effect_scale, line_names) -> tuple[np.ndarray, list[str]]:
    """Validate the user's parameters; return the per-reference similarities and line names."""
    def bad(name, value, why):
        raise TranspertInputError(f"simulate: parameter {name}={value!r}: {why}")

    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        bad("seed", seed, "must be a non-negative integer")
    if n_reference_lines < 1:
        bad("n_reference_lines", n_reference_lines, "need at least one reference line")
    sim = np.atleast_1d(np.asarray(similarity, dtype=float))
    if sim.size == 1:
        sim = np.repeat(sim, n_reference_lines)
    if sim.size != n_reference_lines:
        bad("similarity", similarity, f"give one value or one per reference line ({n_reference_lines})")
    if np.any(~np.isfinite(sim)) or np.any(sim < 0) or np.any(sim > 1):
        bad("similarity", similarity, "values must lie in [0, 1]")
    check_panel(bad, n_genes, n_perturbations)
    if cells_per_perturbation < 2:
        bad("cells_per_perturbation", cells_per_perturbation, "need at least 2 cells")
    if n_control_cells < 2:
        bad("n_control_cells", n_control_cells, "need at least 2 control cells")
    for name, v in (("reference_depth", reference_depth), ("target_depth", target_depth)):
        if v is not None and not (np.isfinite(v) and v > 0):
            bad(name, v, "must be a positive number of UMI per cell")
    if not 0 <= frac_no_effect <= 1:
        bad("frac_no_effect", frac_no_effect, "must lie in [0, 1]")
    if n_programs < 1:
        bad("n_programs", n_programs, "need at least one program")
    if not (np.isfinite(effect_scale) and effect_scale >= 0):
        bad("effect_scale", effect_scale, "must be a non-negative number")
    if line_names is None:
        names = [f"ref{i + 1}" for i in range(n_reference_lines)] + ["target"]
    else:
        names = [str(x) for x in line_names]
        if len(names) != n_reference_lines + 1:
            bad("line_names", line_names, f"need {n_reference_lines + 1} names (references, then target)")
        if len(set(names)) != len(names):
            bad("line_names", line_names, "names must be unique")
    return sim, names


def _choose_panel(rng: np.random.Generator, line_abundance: np.ndarray, depth: float,
                  n_perturbations: int) -> np.ndarray:
    """Perturbed genes: expressed in every line (>= 0.5 UMI per cell expected at ``depth``) so a
    knockdown is visible, as in screens of expressed/essential genes. If too few qualify, the
    most expressed genes (by their lowest level over lines) fill the panel."""
    floor = line_abundance.min(axis=0) * depth
    order = np.argsort(-floor, kind="stable")
    n_ok = int((floor >= 0.5).sum())
    pool = order[: max(n_ok, min(order.size, 2 * n_perturbations))]
    if pool.size < n_perturbations:
        pool = order[:n_perturbations]
    return np.sort(rng.choice(pool, size=n_perturbations, replace=False))


def build_model(*, seed, similarity, n_lines, n_genes, n_perturbations, reference_depth,
                frac_no_effect, n_programs, effect_scale, spread=gn.DEFAULT_SPREAD):
    """Everything but the cells: genes, per-line levels, panel, programs and per-line effects."""
    rg = _rng(seed, _K_GENES)
    shared_log = gn.shared_log_abundance(rg, n_genes, spread)
    phi = gn.dispersions(rg, n_genes)
    line_log = np.stack([gn.line_log_abundance(_rng(seed, _K_GENES, 1 + i), shared_log)
                         for i in range(n_lines)])
    abundance = np.stack([gn.abundance_from_log(x, spread) for x in line_log])
    panel = _choose_panel(_rng(seed, _K_PANEL), abundance, reference_depth, n_perturbations)

    rp = _rng(seed, _K_PROGRAMS)
    # program members: genes expressed at >= 0.1 UMI per cell are 4x likelier members
    expressed = (abundance.mean(axis=0) * reference_depth) >= 0.1
    weight = np.where(expressed, 4.0, 1.0)
    shared = fx.draw_programs(rp, n_programs, n_genes, weight)
    private = [fx.draw_programs(_rng(seed, _K_PROGRAMS, 1 + i), n_programs, n_genes, weight)
               for i in range(n_lines)]
    latent, module, has_effect = fx.draw_latent(_rng(seed, _K_LATENT), n_perturbations, n_programs,
                                                frac_no_effect)
    a_ref, a_target = fx.mixing_weights(similarity)
    a = np.concatenate([a_ref, [a_target]])
    amp_rng = _rng(seed, _K_LATENT, 1)
    # lines differ a little in how strongly they respond (references only; the target is the unit)
    amplitude = np.concatenate([amp_rng.lognormal(0.0, 0.15, n_lines - 1), [1.0]]) * effect_scale
    effects = np.stack([fx.line_effects(latent, shared, private[i], float(a[i]), float(amplitude[i]))
                        for i in range(n_lines)])
    # CRISPRi knockdown efficiency: per perturbation (guide quality), jittered per line
    eff_rng = _rng(seed, _K_LATENT, 2)
    eff_pert = eff_rng.beta(8.0, 2.0, n_perturbations)
    efficiency = np.clip(eff_pert[None, :] + eff_rng.normal(0.0, 0.07, (n_lines, n_perturbations)),
                         0.3, 0.97)
    for i in range(n_lines):
        effects[i, np.arange(n_perturbations), panel] = np.log1p(-efficiency[i])
    return dict(shared_log=shared_log, phi=phi, abundance=abundance, panel=panel, latent=latent,
                module=module, has_effect=has_effect, mixing=a, amplitude=amplitude,
                effects=effects, efficiency=efficiency)


def simulate_line_counts(rng: np.random.Generator, *, abundance: np.ndarray, phi: np.ndarray,
                         effects: np.ndarray, panel: np.ndarray, efficiency: np.ndarray,
                         n_cells_per_pert: np.ndarray, n_control_cells: int,
                         depth_median: float) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, np.ndarray]:
    """Negative-binomial counts of one line, cells in random order.

    Returns ``(X, group, guide, batch)``: X raw counts (float32 CSR, cells x genes), ``group`` the
    perturbation index of each cell (-1 = control), guide number, batch number.
    Each cell: depth log-normal around ``depth_median`` (sd 0.45 in log, times a +-10% batch
    factor); 5% of perturbed cells escape (no knockdown, no effect); the others get their own
    knockdown efficiency around the line's and downstream effects scaled in proportion.
    """
    group = np.concatenate([np.full(n_control_cells, -1),
                            np.repeat(np.arange(n_cells_per_pert.size), n_cells_per_pert)])
    group = rng.permutation(group)
    n = group.size
    batch = rng.integers(0, 2, n)
    batch_factor = np.exp(rng.normal(0.0, 0.1, 2))
    depth = depth_median * rng.lognormal(0.0, 0.45, n) * batch_factor[batch]
    pert = group >= 0
    eff_line = np.where(pert, efficiency[np.maximum(group, 0)], 0.0)
    eff_cell = np.clip(eff_line + rng.normal(0.0, 0.08, n), 0.02, 0.995)
    escaped = rng.random(n) < ESCAPE_FRACTION
    eff_cell = np.where(pert & ~escaped, eff_cell, 0.0)
    response = np.where(pert, eff_cell / np.where(pert, eff_line, 1.0), 0.0)

    log_mu = np.log(depth)[:, None] + np.log(abundance)[None, :]
    log_mu[pert] += response[pert, None] * effects[group[pert]]
    rows = np.flatnonzero(pert)
    # the target gene follows the cell's own knockdown, not the scaled line average
    log_mu[rows, panel[group[rows]]] = (np.log(depth[rows]) + np.log(abundance[panel[group[rows]]])
                                        + np.log1p(-eff_cell[rows]))
    mu = np.exp(log_mu)
    shape = 1.0 / phi
    # NB(mean mu, dispersion phi) as a gamma-Poisson mixture
    counts = rng.poisson(rng.gamma(np.broadcast_to(shape, mu.shape), mu * phi[None, :]))
    X = sp.csr_matrix(counts.astype(np.float32))
    X.sort_indices()
    guide = np.where(pert, rng.integers(0, 2, n), rng.integers(0, N_CONTROL_GUIDES, n))
    return X, group, guide, batch


def cells_per_perturbation_counts(rng: np.random.Generator, n_perturbations: int, mean: int) -> np.ndarray:
    """Cells per perturbation vary (guide representation, fitness): +-40% around ``mean``."""
    return np.maximum(2, np.round(mean * rng.uniform(0.6, 1.4, n_perturbations))).astype(int)


def line_frame(names: Sequence[str], similarity: np.ndarray, depths: Sequence[float],
               model: dict) -> pd.DataFrame:
    n_ref = len(names) - 1
    return pd.DataFrame({
        "role": ["reference"] * n_ref + ["target"],
        "similarity_to_target": np.concatenate([similarity, [1.0]]),
        "shared_weight": model["mixing"],
        "effect_amplitude": model["amplitude"],
        "depth_median": np.asarray(depths, dtype=float),
    }, index=pd.Index(list(names), name="line"))
