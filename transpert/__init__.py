"""transpert: predict a cell line's response to genetic perturbations from other cell lines.

The package follows the data flow, one layer per folder:

- :mod:`transpert.data`: reading cells (raw counts or log1p) in row chunks, the manifest and
  downloads, the counts table and gene list, the simulators;
- :mod:`transpert.summarize`: cells -> summary profiles (pseudo-bulk and Wilcoxon DE against the
  controls), out of core;
- :mod:`transpert.metrics`: the metric arithmetic the model and the evaluation share;
- :mod:`transpert.transfer` (TransPert) and :mod:`transpert.baselines`, by name in
  :mod:`transpert.methods`: summaries -> predicted pseudo-bulk;
- :mod:`transpert.predict`: predicted pseudo-bulk -> challenge-format cells;
- :mod:`transpert.evaluate`: the challenge's metrics, score, intervals and leaderboards;
- :mod:`transpert.run`: a whole run from a config; :mod:`transpert.cli`: the command line.

The names below are the ones the README shows; each is loaded on first use, so ``import
transpert`` stays light (no numba, anndata or scanpy until a function needs them). The two
stage functions named like their subpackages are reached through them:
``transpert.summarize.summarize`` and ``transpert.evaluate.evaluate``.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> the module that defines it
_API = {
    "open_cells": "transpert.data",
    "read_cells": "transpert.data",
    "simulate_atlas": "transpert.data",
    "read_counts": "transpert.data",
    "read_gene_list": "transpert.data",
    "read_summary": "transpert.summarize",
    "write_summary": "transpert.summarize",
    "de_table": "transpert.summarize",
    "discrimination_scores": "transpert.metrics",
    "TransPert": "transpert.transfer",
    "ZeroShotTransPert": "transpert.transfer",
    "METHODS": "transpert.methods",
    "make_predictor": "transpert.methods",
    "fit_predict": "transpert.methods",
    "write_prediction": "transpert.predict",
    "build_baseline": "transpert.evaluate",
    "bootstrap_ci": "transpert.evaluate",
    "paired_comparison": "transpert.evaluate",
    "generalist_ranking": "transpert.evaluate",
    "prep": "transpert.evaluate",
    "evaluate_vcc2026": "transpert.evaluate.vcc2026",
    "run_config": "transpert.run",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    # PEP 562: the public API is imported on first access, not with the package
    try:
        module = _API[name]
    except KeyError:
        raise AttributeError(f"module 'transpert' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
