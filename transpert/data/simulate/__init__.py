"""transpert.data.simulate: simulated Perturb-seq data with a known answer (raw UMI counts).

- :func:`simulate_atlas` (:mod:`.atlas`): several reference lines and a target line sharing one
  panel of knockdowns, in the canonical schema, with the true per-line effects
  (:class:`SimulatedTruth`); :func:`load_atlas` and :func:`read_truth` read one back.
- :func:`simulate_lowrank` (:mod:`.lowrank`): a second, independently written atlas generator
  (shared low-rank programme, line-specific gene loadings, heavy tails, uneven depth and
  coverage, optional pure-noise lines), same output format.
- :func:`write_large_dataset` (:mod:`.large`): one challenge-sized h5ad written chunk by chunk,
  never whole in memory (for the speed benchmarks).

The generative pieces live in ``_model`` (cells and panels), ``_genes`` (gene levels and
dispersions) and ``_effects`` (knockdown and programme effects); the compiled samplers in
:mod:`transpert.kernels._simulate`.
"""

from transpert.data.simulate.atlas import (
    SimulatedAtlas,
    SimulatedTruth,
    load_atlas,
    read_truth,
    simulate_atlas,
)
from transpert.data.simulate.large import write_large_dataset
from transpert.data.simulate.lowrank import simulate_lowrank

__all__ = [
    "SimulatedAtlas",
    "SimulatedTruth",
    "load_atlas",
    "read_truth",
    "simulate_atlas",
    "simulate_lowrank",
    "write_large_dataset",
]
