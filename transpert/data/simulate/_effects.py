"""Perturbation effects of a simulated atlas: gene programs, perturbation modules, line mixing.

Scale: every effect here is a natural-log fold change of a gene's expected UMI count in a
responding cell versus a control cell of the same line and depth (0 = no change).

The structure (why the transfer task is neither trivial nor hopeless):

* ``n_programs`` gene programs, each a set of genes with signed loadings (mostly one sign, as
  co-regulated genes move together). Every line has the *shared* programs ``W`` and its own
  *private* programs ``W_l`` (the same biology wired to other genes).
* Perturbations belong to modules (complexes, pathways): a module acts on one to three programs
  and its members act on them with similar weights, so similar perturbations have similar effects.
  A fraction of perturbations has no downstream effect at all.
* Line ``l``'s effect of perturbation ``p`` is ``a_l * z_p W + b_l * z_p W_l`` with
  ``a_l^2 + b_l^2 = 1``: the shared part transfers, the private part does not. The target mixes
  with ``a_T = sqrt(h)``, a reference with ``a_l = s_l / sqrt(h)``, where ``s_l`` is the requested
  similarity to the target and ``h = max(s)``; so the expected correlation between a reference's
  and the target's effects is ``a_l * a_T = s_l``.
* Small effects are soft-thresholded to exactly zero, so "which genes truly change" is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SOFT_THRESHOLD = 0.05  # |log fold change| below this is no change (5%)


@dataclass
class EffectModel:
    """Latent structure of the effects (natural-log scale); see the module docstring."""

    shared_programs: np.ndarray  # (n_programs, n_genes)
    latent: np.ndarray  # (n_perturbations, n_programs)
    module: np.ndarray  # (n_perturbations,) module index, -1 for no-effect perturbations
    has_effect: np.ndarray  # (n_perturbations,) bool


def draw_programs(rng: np.random.Generator, n_programs: int, n_genes: int,
                  gene_weight: np.ndarray, size_range: tuple[float, float] = (0.02, 0.06)) -> np.ndarray:
    """Signed program loadings ``(n_programs, n_genes)``.

    A program holds 2-6% of the genes, drawn with probability ``gene_weight`` (expressed genes are
    likelier members: a response is seen in genes a cell expresses). Loadings are log-normal
    around 0.5 with the program's sign, and a fifth of the members go the other way.
    """
    W = np.zeros((n_programs, n_genes))
    prob = gene_weight / gene_weight.sum()
    for k in range(n_programs):
        size = max(3, int(round(rng.uniform(*size_range) * n_genes)))
        size = min(size, n_genes)
        members = rng.choice(n_genes, size=size, replace=False, p=prob)
        sign = rng.choice((-1.0, 1.0))
        flip = np.where(rng.random(size) < 0.2, -1.0, 1.0)
        W[k, members] = sign * flip * rng.lognormal(np.log(0.5), 0.5, size)
    return W


def draw_latent(rng: np.random.Generator, n_perturbations: int, n_programs: int,
                frac_no_effect: float, perts_per_module: float = 5.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Perturbation loadings on programs ``(n_perturbations, n_programs)``, module labels and the
    has-effect mask. Members of a module share its program weights (times a log-normal gain)
    plus a little individual variation on the same programs."""
    n_no = int(round(frac_no_effect * n_perturbations))
    has_effect = np.ones(n_perturbations, dtype=bool)
    has_effect[rng.choice(n_perturbations, size=n_no, replace=False)] = False
    n_active = int(has_effect.sum())
    n_modules = max(1, int(round(n_active / perts_per_module)))
    module_z = np.zeros((n_modules, n_programs))
    for m in range(n_modules):
        k = rng.choice(n_programs, size=min(n_programs, int(rng.integers(1, 4))), replace=False)
        module_z[m, k] = rng.choice((-1.0, 1.0), size=k.size) * rng.uniform(0.6, 1.4, k.size)
    module = np.full(n_perturbations, -1)
    active = np.flatnonzero(has_effect)
    # every module gets at least one member, the rest at random
    labels = np.concatenate([np.arange(min(n_modules, n_active)),
                             rng.integers(0, n_modules, max(0, n_active - n_modules))])
    module[active] = rng.permutation(labels)
    latent = np.zeros((n_perturbations, n_programs))
    for p in active:
        base = module_z[module[p]]
        on = base != 0
        latent[p] = base * rng.lognormal(0.0, 0.3)
        latent[p, on] += rng.normal(0.0, 0.25, int(on.sum()))
    return latent, module, has_effect


def mixing_weights(similarity: np.ndarray) -> tuple[np.ndarray, float]:
    """Shared-component weights ``a_l`` of the references and ``a_T`` of the target such that
    ``a_l * a_T = similarity_l`` (see the module docstring)."""
    h = float(np.max(similarity)) if similarity.size else 1.0
    h = max(h, 1e-6)
    return similarity / np.sqrt(h), float(np.sqrt(h))


def soft_threshold(x: np.ndarray, t: float = SOFT_THRESHOLD) -> np.ndarray:
    return np.sign(x) * np.maximum(np.abs(x) - t, 0.0)


def line_effects(latent: np.ndarray, shared: np.ndarray, private: np.ndarray, a: float,
                 amplitude: float) -> np.ndarray:
    """Downstream log-effects of one line ``(n_perturbations, n_genes)`` (target gene excluded:
    the knockdown is set separately)."""
    b = np.sqrt(max(0.0, 1.0 - a * a))
    raw = latent @ (a * shared + b * private)
    return soft_threshold(amplitude * raw)
