"""transpert: predict a cell line's response to genetic perturbations from other cell lines.

Public API (re-exported here as the stages land): data loading and simulation
(:mod:`transpert.data`), summary profiles (:mod:`transpert.summarize`), the TransPert estimator
and baselines (:mod:`transpert.transfer`, :mod:`transpert.baselines`), challenge-format prediction
(:mod:`transpert.predict`) and cell-eval-compatible evaluation (:mod:`transpert.evaluate`).

Importing ``transpert`` is light: subpackages load their heavy dependencies when used.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
