"""The prediction both TransPert estimators return (few-shot and zero-shot): one layout.

A pseudo-bulk prediction on the log1p scale: obs = perturbations (``source``, ``n_reference_lines``,
``n_de_genes``), var = the target's genes (``control_mean``), ``X`` and layers ``mean`` (the
target's control mean + the predicted delta, clipped at 0), ``delta`` (after the clip), ``log2fc``
(pdex's, from the predicted and control means) and ``deg_probability``; ``uns
["transpert_prediction"]`` records the method and what it chose.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transpert.summarize import log2fc


def transfer_prediction(perturbations: list[str], genes: pd.Index, control_mean: np.ndarray,
                        delta: np.ndarray, deg_probability: np.ndarray, deg_threshold: float,
                        fallback: np.ndarray, n_reference_lines: np.ndarray, *,
                        sources: tuple[str, str], record: dict):
    """The AnnData of a TransPert prediction (log1p scale; see the module docstring).

    ``delta``: predicted change from the control mean (log1p, perturbations x genes), clipped here
    so that the mean stays >= 0. ``fallback``: perturbations no reference line measured, whose
    ``source`` is ``sources[1]`` (``sources[0]`` for the others). ``record``: the method's entry in
    ``uns["transpert_prediction"]``. Genes with ``deg_probability >= deg_threshold`` are called DE
    (``obs["n_de_genes"]``: what the writer shifts in every cell).
    """
    import anndata as ad

    mean = np.clip(control_mean[None, :] + delta, 0.0, None)
    delta = mean - control_mean[None, :]
    obs = pd.DataFrame({
        "source": pd.Categorical(np.where(fallback, sources[1], sources[0]), categories=list(sources)),
        "n_reference_lines": np.asarray(n_reference_lines).astype(np.int64),
        "n_de_genes": (deg_probability >= deg_threshold).sum(axis=1).astype(np.int64),
    }, index=pd.Index(perturbations, name="perturbation"))
    var = pd.DataFrame({"control_mean": control_mean}, index=pd.Index(genes, name="gene"))
    out = ad.AnnData(X=mean.astype(np.float32), obs=obs, var=var)
    out.layers["mean"] = mean.astype(np.float32)
    out.layers["delta"] = delta.astype(np.float32)
    out.layers["log2fc"] = log2fc(mean, control_mean).astype(np.float32)
    out.layers["deg_probability"] = deg_probability.astype(np.float32)
    out.uns["transpert_prediction"] = dict(record)
    return out
