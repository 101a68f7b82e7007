"""A summary's layers, row by row: each perturbation's row depends only on its own results and
the control group's, so a summary can be built whole or written block of rows by block.

Results in (per group, per gene): ``sums`` / ``sums32`` of log1p values (float64 / float32),
``nonzero`` counts, ``raw_sums`` of raw counts, rank-sum ``u`` / ``p`` against the reference
(what :class:`transpert.summarize._accumulators.Accumulators` holds and a distributed shard
returns). Layers out: log1p-scale ``mean`` / ``delta``, ``log2fc``, ``frac_expressing``,
``statistic``, ``pvalue``, ``fdr``, counts-scale ``counts_sum`` / ``counts_mean``, ``mean_f32``.

The one exception is ``fdr="table"`` (Benjamini-Hochberg over every perturbation's p-values at
once): :func:`table_fdr_lookup` computes it from all p-values once they are known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: results of a group, as the accumulators and the distributed tasks name them
RESULT_NAMES = ("sums", "nonzero", "sums32", "raw_sums", "u", "p")
#: sorted p-values turned into q-values at once (a transient of 16 bytes each)
Q_STEP = 1 << 22


@dataclass(frozen=True)
class ProfileLayout:
    """Which layers and var columns a summary has: ``de`` (rank-sum test), ``raw`` (raw counts
    input: counts layers), ``f32`` (float32 sums: ``mean_f32``)."""

    de: bool
    raw: bool
    f32: bool

    @property
    def layers(self) -> list[tuple[str, np.dtype]]:
        """(layer name, dtype) in the order the in-memory summary holds them."""
        out = [("mean", np.float64), ("delta", np.float64), ("log2fc", np.float64),
               ("frac_expressing", np.float64)]
        if self.de:
            out += [("statistic", np.float64), ("pvalue", np.float64), ("fdr", np.float64)]
        if self.raw:
            out += [("counts_sum", np.float64), ("counts_mean", np.float64)]
        if self.f32:
            out.append(("mean_f32", np.float32))
        return [(name, np.dtype(dt)) for name, dt in out]

    def row_bytes(self, n_genes: int) -> int:
        """Bytes one perturbation's layer rows and their transients take (a block's sizing)."""
        return 2 * n_genes * sum(dt.itemsize for _, dt in self.layers) + 8 * n_genes * len(RESULT_NAMES)


@dataclass(frozen=True)
class ControlStats:
    """The control group's pseudo-bulk per gene (var columns of the summary)."""

    mean: np.ndarray  # log1p scale, float64
    frac: np.ndarray
    mean_f32: np.ndarray | None  # scipy's float32 mean (pdex's)
    counts_mean: np.ndarray | None  # raw counts scale

    @classmethod
    def of(cls, sums, nonzero, sums32, raw_sums, n_cells: int) -> "ControlStats":
        """From the control group's results (rows of shape (genes,) or (1, genes))."""
        n = np.asarray([float(n_cells)])
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.asarray(sums, dtype=np.float64).reshape(-1) / n
            frac = np.asarray(nonzero).reshape(-1) / n
            counts = None if raw_sums is None else np.asarray(raw_sums).reshape(-1) / n
        f32 = None if sums32 is None else np.asarray(sums32).reshape(-1)
        return cls(mean, frac, f32, counts)

    def var(self, var_names) -> pd.DataFrame:
        """The summary's var: ``control_mean``, ``control_frac_expressing`` (and
        ``control_mean_f32``, ``control_counts_mean`` when known), indexed by the genes."""
        var = pd.DataFrame({"control_mean": self.mean, "control_frac_expressing": self.frac},
                           index=pd.Index(var_names, dtype=str))
        if self.mean_f32 is not None:
            var["control_mean_f32"] = self.mean_f32
        if self.counts_mean is not None:
            var["control_counts_mean"] = self.counts_mean
        var.index.name = None
        return var


def layer_rows(results: dict, n_cells: np.ndarray, control: ControlStats, layout: ProfileLayout, *,
               log2fc_method: str, fdr_method: str, threads: int = 1) -> dict[str, np.ndarray]:
    """The summary layers' rows of some perturbations from their results (``results[name]``:
    rows x genes, names as :data:`RESULT_NAMES`; ``n_cells``: their cell counts). With
    ``fdr_method="table"`` the ``fdr`` rows are left out (they need every p-value)."""
    from transpert.summarize._effects import bh_fdr, log2fc

    n = np.asarray(n_cells).astype(np.float64)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = results["sums"] / n
        frac = results["nonzero"] / n
    layers = {
        "mean": mean,
        "delta": mean - control.mean[None, :],
        "log2fc": rows_in_threads(lambda m: log2fc(m, control.mean, log2fc_method), mean, threads),
        "frac_expressing": frac,
    }
    if layout.de:
        layers["statistic"] = results["u"]
        layers["pvalue"] = results["p"]
        if fdr_method == "per_perturbation":  # rows are corrected independently
            layers["fdr"] = rows_in_threads(lambda p: bh_fdr(p, fdr_method), results["p"], threads)
    if layout.raw:
        layers["counts_sum"] = results["raw_sums"]
        with np.errstate(invalid="ignore", divide="ignore"):
            layers["counts_mean"] = results["raw_sums"] / n
    if layout.f32:
        layers["mean_f32"] = results["sums32"]
    return layers


def rows_in_threads(func, matrix: np.ndarray, n_threads: int) -> np.ndarray:
    """``func(matrix)`` computed on row ranges in ``n_threads`` threads (numpy's ufuncs and sorts
    release the GIL); the same numbers, since ``func`` treats every row on its own."""
    if n_threads < 2 or matrix.shape[0] < 2 * n_threads:
        return func(matrix)
    from concurrent.futures import ThreadPoolExecutor

    cuts = np.linspace(0, matrix.shape[0], n_threads + 1).astype(int)
    with ThreadPoolExecutor(n_threads) as pool:
        parts = list(pool.map(func, [matrix[a:b] for a, b in zip(cuts[:-1], cuts[1:])]))
    return np.vstack(parts)


class TableFDR:
    """``bh_fdr(P, "table")`` of a p-value matrix ``P`` given block of rows by block of rows,
    bit for bit, holding 16 bytes per non-NaN p-value (their sorted values and q-values)
    instead of the whole matrix's sort, order and copies.

    Every entry's q-value depends only on its value: with the sorted p-values s_1 <= ... <= s_m,
    ``bh_fdr`` gives position i the running minimum from the top of s_j * (m / j), and equal
    values share the q-value of the last of them (the products over a run of ties decrease), so
    a value's q-value is found at its last position in the sorted values.
    """

    def __init__(self, sorted_p: np.ndarray):
        """``sorted_p``: every non-NaN p-value, sorted ascending (it is kept, not copied)."""
        self.sorted = sorted_p
        m = sorted_p.size
        q = np.empty(m)
        running = np.inf
        for hi in range(m, 0, -Q_STEP):  # from the top, as np.minimum.accumulate of the reversal
            lo = max(0, hi - Q_STEP)
            block = sorted_p[lo:hi] * (m / np.arange(lo + 1, hi + 1))
            block = np.minimum.accumulate(block[::-1])[::-1]
            np.minimum(block, running, out=block)
            running = block[0]
            q[lo:hi] = block
        np.clip(q, 0.0, 1.0, out=q)
        self.q = q

    @classmethod
    def from_blocks(cls, blocks) -> "TableFDR":
        """From an iterable of p-value row blocks (the whole matrix, in any order)."""
        parts = [b[~np.isnan(b)] for b in (np.asarray(x, dtype=np.float64).ravel() for x in blocks)]
        values = np.concatenate(parts) if parts else np.empty(0)
        del parts
        values.sort()
        return cls(values)

    def __call__(self, p: np.ndarray) -> np.ndarray:
        """q-values of some of the p-values (NaN stays NaN)."""
        p = np.asarray(p, dtype=np.float64)
        out = np.full(p.shape, np.nan)
        ok = ~np.isnan(p)
        if self.sorted.size:
            pos = np.searchsorted(self.sorted, p[ok], side="right") - 1
            out[ok] = self.q[pos]
        return out
