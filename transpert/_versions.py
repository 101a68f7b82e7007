"""The versions a result depends on, recorded next to every run's outputs."""

from __future__ import annotations

import importlib.metadata
import platform


def versions() -> dict:
    """Versions of transpert and the packages its results depend on."""
    out = {"python": platform.python_version()}
    for name in ("transpert", "numpy", "scipy", "pandas", "anndata", "numba", "statsmodels",
                 "scikit-learn", "cell-eval", "pdex"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out
