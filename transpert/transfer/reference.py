"""One reference cell line's effects, aligned to the target's genes.

A :class:`ReferenceLine` keeps, for every perturbation the line measured, the statistics the
transfer model needs on the genes it shares with the target (the others are simply absent):
``delta`` (log1p scale, perturbation mean - control mean), ``log2fc`` (clipped to +-``LOG2FC_CAP``
so that 0 -> x fold changes do not poison averages), ``neglog10p`` (-log10 p, capped) and ``sig``
(fdr below the threshold). It also keeps the line's control mean (log1p) and its mean delta over
all its perturbations (the line's generic response, per gene), used to split an effect into a
common and a perturbation-specific part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


#: |log2FC| cap: pdex gives +-inf when one side is 0; a finite cap keeps weighted means finite
LOG2FC_CAP = 10.0
#: -log10 p cap (p-values underflow to 0 for strong effects)
NEGLOG10P_CAP = 50.0
#: perturbations read at a time when a reference summary is aligned (2.4 MB per 1,000 genes)
ROW_BLOCK = 256


def _dense_rows(layer, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a layer (numpy, scipy sparse or an on-disk h5py dataset) as dense
    float64, as :func:`transpert.summarize._contract.dense_layer` gives the whole layer."""
    x = layer[start:stop]
    if hasattr(x, "toarray"):
        x = x.toarray()
    return np.asarray(x, dtype=np.float64)


@dataclass
class ReferenceLine:
    """A reference line's effects on the genes it shares with the target.

    Arrays are ``(n_perturbations, n_shared_genes)`` float32 (``sig`` bool); ``gene_positions``
    maps each shared gene to its column among the target's genes.
    """

    name: str
    perturbations: pd.Index
    gene_positions: np.ndarray  # int64, columns in the target's gene order
    n_target_genes: int
    delta: np.ndarray
    log2fc: np.ndarray
    neglog10p: np.ndarray
    sig: np.ndarray
    control_mean: np.ndarray  # log1p, shared genes
    mean_delta: np.ndarray  # the line's mean delta over all its perturbations, shared genes
    n_genes_measured: int  # genes in the line's summary, shared with the target or not

    @classmethod
    def from_summary(cls, name: str, summary, target_genes: pd.Index,
                     fdr_threshold: float = 0.05) -> "ReferenceLine":
        """Align a reference summary profile (log1p-scale ``delta``) to ``target_genes``.

        The layers are read :data:`ROW_BLOCK` perturbations at a time (a layer kept on disk,
        :func:`transpert._h5files.layers_on_disk`, is never read whole): memory holds the
        line's float32 arrays, its float64 ``delta`` on the shared genes (for ``mean_delta``) and
        one block."""
        ref_genes = pd.Index(summary.var_names.astype(str))
        pos_in_ref = ref_genes.get_indexer(target_genes)
        shared_target = np.flatnonzero(pos_in_ref >= 0)
        cols = pos_in_ref[shared_target]
        n, k = summary.n_obs, len(cols)
        # Fortran order, as a layer's columns taken whole ([:, cols]) come: the same layout gives
        # the same sums (mean_delta and every later reduction) to the last bit
        delta64 = np.empty((n, k), order="F")
        delta, log2fc = np.empty((n, k), np.float32, order="F"), np.empty((n, k), np.float32, order="F")
        neglog10p, sig = np.empty((n, k), np.float32, order="F"), np.empty((n, k), bool, order="F")
        layers = {layer: summary.layers[layer] for layer in ("delta", "log2fc", "pvalue", "fdr")}
        for a in range(0, n, ROW_BLOCK):
            b = min(a + ROW_BLOCK, n)

            def take(layer: str) -> np.ndarray:
                return _dense_rows(layers[layer], a, b)[:, cols]

            delta64[a:b] = take("delta")
            delta[a:b] = delta64[a:b]
            log2fc[a:b] = np.clip(np.nan_to_num(take("log2fc"), nan=0.0), -LOG2FC_CAP, LOG2FC_CAP)
            with np.errstate(divide="ignore"):
                neglog10p[a:b] = np.minimum(-np.log10(np.nan_to_num(take("pvalue"), nan=1.0)), NEGLOG10P_CAP)
            sig[a:b] = np.nan_to_num(take("fdr"), nan=1.0) < fdr_threshold
        return cls(
            name=name,
            perturbations=pd.Index(summary.obs_names.astype(str)),
            gene_positions=shared_target.astype(np.int64),
            n_target_genes=len(target_genes),
            delta=delta,
            log2fc=log2fc,
            neglog10p=neglog10p,
            sig=sig,
            control_mean=np.asarray(summary.var["control_mean"], dtype=np.float64)[cols],
            mean_delta=np.nanmean(delta64, axis=0) if n else np.zeros(k),
            n_genes_measured=summary.n_vars,
        )

    def rows(self, perturbations) -> tuple[np.ndarray, np.ndarray]:
        """(positions among the requested perturbations, rows in this line) of those it measured."""
        idx = self.perturbations.get_indexer(pd.Index(perturbations))
        found = np.flatnonzero(idx >= 0)
        return found, idx[found]

    def full(self, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """Spread ``(k, n_shared_genes)`` values over all target genes, ``fill`` elsewhere."""
        out = np.full((values.shape[0], self.n_target_genes), fill, dtype=np.float64)
        out[:, self.gene_positions] = values
        return out

    # -- serialisation (plain arrays: see transpert.transfer.serialize) --
    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "perturbations": np.asarray(self.perturbations, dtype=str),
            "gene_positions": self.gene_positions,
            "delta": self.delta, "log2fc": self.log2fc, "neglog10p": self.neglog10p,
            "sig": self.sig, "control_mean": self.control_mean, "mean_delta": self.mean_delta,
            "n_target_genes": np.asarray(self.n_target_genes),
            "n_genes_measured": np.asarray(self.n_genes_measured),
        }

    @classmethod
    def from_arrays(cls, name: str, arrays) -> "ReferenceLine":
        return cls(
            name=name,
            perturbations=pd.Index(arrays["perturbations"].astype(str)),
            gene_positions=arrays["gene_positions"].astype(np.int64),
            n_target_genes=int(arrays["n_target_genes"]),
            delta=arrays["delta"], log2fc=arrays["log2fc"], neglog10p=arrays["neglog10p"],
            sig=arrays["sig"].astype(bool), control_mean=arrays["control_mean"],
            mean_delta=arrays["mean_delta"], n_genes_measured=int(arrays["n_genes_measured"]),
        )


def copy_groups(lines) -> list[int]:
    """Group id of each line; lines that are exact copies of each other share one."""
    groups: list[int] = []
    for i, line in enumerate(lines):
        gid = i
        for j in range(i):
            other = lines[j]
            if (line.perturbations.equals(other.perturbations)
                    and np.array_equal(line.gene_positions, other.gene_positions)
                    and np.array_equal(line.delta, other.delta, equal_nan=True)
                    and np.array_equal(line.control_mean, other.control_mean, equal_nan=True)):
                gid = groups[j]
                break
        groups.append(gid)
    return groups
