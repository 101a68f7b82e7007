"""One challenge-sized simulated h5ad, written chunk by chunk, never holding the matrix.

Default size and shape follow the H1 training file of the Virtual Cell Challenge: 18,080 genes,
~50,000 UMI per cell, ~11% non-zero, 12.7% control cells (38,176 of 300k), the rest split over
the perturbations (~870 cells each for 300). Cells are ``shuffled`` by default (perturbations
interleaved, as in a pooled screen's file, which is ordered by cell barcode/batch rather than by
guide) or ``grouped`` (controls first, then each perturbation contiguous).

The file is written with h5py in anndata's on-disk layout (root ``encoding-type: anndata``, X a
``csr_matrix`` group of ``data``/``indices``/``indptr``, or with ``layout="dense"`` one contiguous
float32 dataset, as the Replogle and Nadig files store it; obs/var/uns... by anndata's own
``write_elem``), so ``anndata.read_h5ad(path, backed="r")`` opens it. Two passes: the first
counts non-zeros and library sizes of every row (so the datasets get their exact final size and
``log1p`` knows the median library size), the second regenerates and stores each chunk. Memory:
the per-cell vectors, the effects, and one chunk of CSR (plus its dense rows for a dense file).

Several files can share genes and perturbations (stand-ins for the references and the target of
one run): ``genes`` and ``targets`` name positions in one gene catalogue
(:func:`~transpert.data.simulate._genes.gene_symbols` / ``gene_ids`` of the largest position), so
the same position is the same symbol and Ensembl ID in every file.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError
from transpert.data.simulate import _effects as fx
from transpert.data.simulate import _genes as gn
from transpert.data.simulate._model import CONTROL, ESCAPE_FRACTION, N_CONTROL_GUIDES, check_panel
from transpert.data.schema import PERT_COL

H1_CONTROL_FRACTION = 38_176 / 300_000
_TARGET_CHUNK_NNZ = 16_000_000  # ~130 MB of data + indices per chunk


@dataclass
class LargeDataset:
    """What :func:`write_large_dataset` wrote (``seconds`` is the wall time of the writing)."""

    path: Path
    n_cells: int
    n_genes: int
    n_perturbations: int
    nnz: int
    scale: str
    order: str
    spread: float
    target_sum: float | None
    seconds: float

    @property
    def density(self) -> float:
        return self.nnz / (self.n_cells * self.n_genes)


@dataclass
class _Design:
    """Everything of the file but the matrix (small: vectors over cells and genes)."""

    symbols: np.ndarray
    ids: np.ndarray
    abundance: np.ndarray
    phi: np.ndarray
    panel: np.ndarray
    eff_indptr: np.ndarray
    eff_indices: np.ndarray
    eff_data: np.ndarray
    target_of_group: np.ndarray  # per group (perturbations, then control): target gene or -1
    groups: np.ndarray  # per cell: group index (n_perturbations = control)
    depth: np.ndarray
    response: np.ndarray
    knockdown: np.ndarray
    guide: np.ndarray
    batch: np.ndarray
    spread: float


def _check(n_cells, n_genes, n_perturbations, n_control_cells, scale, density, depth, order,
           chunk_rows, seed, layout="csr"):
    def bad(name, value, why):
        raise TranspertInputError(f"write_large_dataset: parameter {name}={value!r}: {why}")

    if scale not in ("counts", "log1p"):
        bad("scale", scale, "must be 'counts' or 'log1p'")
    if order not in ("shuffled", "grouped"):
        bad("order", order, "must be 'shuffled' or 'grouped'")
    if layout not in ("csr", "dense"):
        bad("layout", layout, "must be 'csr' or 'dense'")
    check_panel(bad, n_genes, n_perturbations)
    if n_control_cells < 1:
        bad("n_control_cells", n_control_cells, "need at least one control cell")
    if n_cells < n_control_cells + n_perturbations:
        bad("n_cells", n_cells, f"need at least one cell per perturbation plus the "
                                f"{n_control_cells} controls")
    if not 0.0 < density < 0.9:
        bad("density", density, "must lie in (0, 0.9)")
    if not (np.isfinite(depth) and depth > 0):
        bad("depth", depth, "must be a positive number of UMI per cell")
    if chunk_rows is not None and chunk_rows < 1:
        bad("chunk_rows", chunk_rows, "must be a positive number of rows")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        bad("seed", seed, "must be a non-negative integer")


def _catalogue(genes, targets, n_genes, n_perturbations):
    """(catalogue positions of the file's genes, local indices of the targets or None)."""
    def bad(name, value, why):
        raise TranspertInputError(f"write_large_dataset: parameter {name}={value!r}: {why}")

    if genes is None:
        pos = np.arange(n_genes, dtype=np.int64)
    else:
        pos = np.asarray(genes, dtype=np.int64)
        if pos.ndim != 1 or pos.size != n_genes or pos.min(initial=0) < 0 or np.unique(pos).size != pos.size:
            bad("genes", f"<{pos.size} positions>", f"must be {n_genes} distinct non-negative catalogue positions")
    if targets is None:
        return pos, None
    tpos = np.asarray(targets, dtype=np.int64)
    local = {int(g): i for i, g in enumerate(pos)}
    missing = [int(t) for t in tpos if int(t) not in local]
    if tpos.size != n_perturbations or np.unique(tpos).size != tpos.size or missing:
        bad("targets", f"<{tpos.size} positions>", f"must be {n_perturbations} distinct positions among "
                                                  f"the file's genes ({len(missing)} are not)")
    return pos, np.sort(np.array([local[int(t)] for t in tpos], dtype=np.int64))


def _design(*, seed, n_cells, n_genes, n_perturbations, n_control_cells, density, depth, order,
            n_programs=30, frac_no_effect=0.15, genes=None, targets=None) -> _Design:
    rng = np.random.default_rng([seed, 7001])
    phi = gn.dispersions(rng, n_genes)
    z = rng.normal(0.0, 1.0, n_genes)
    silent = rng.random(n_genes) < gn.SILENT_FRACTION
    calib_depths = depth * np.exp(rng.normal(0.0, 0.45, 256))
    spread = gn.calibrate_spread(z, silent, phi, calib_depths, density)
    abundance = gn.abundance_from_log(z * spread + np.where(silent, gn.SILENT_SHIFT, 0.0), spread)

    # panel: knockdown visible (>= 0.5 UMI per cell expected), as in the atlas
    expected = abundance * depth
    order_g = np.argsort(-expected, kind="stable")
    pool = order_g[: max(int((expected >= 0.5).sum()), 2 * n_perturbations)]
    panel = np.sort(rng.choice(pool, size=n_perturbations, replace=False))
    pos, given = _catalogue(genes, targets, n_genes, n_perturbations)
    if given is not None:
        panel = given

    weight = np.where(expected >= 0.1, 4.0, 1.0)
    programs = fx.draw_programs(rng, n_programs, n_genes, weight)
    latent, _module, _has = fx.draw_latent(rng, n_perturbations, n_programs, frac_no_effect)
    effects = fx.line_effects(latent, programs, np.zeros_like(programs), 1.0, 1.0)
    effects[np.arange(n_perturbations), panel] = 0.0  # the knockdown is per cell, below
    eff_indptr = np.zeros(n_perturbations + 2, dtype=np.int64)
    nz = [np.flatnonzero(row) for row in effects]
    eff_indptr[1:n_perturbations + 1] = np.cumsum([x.size for x in nz])
    eff_indptr[-1] = eff_indptr[-2]  # the control group has no effect
    eff_indices = np.concatenate(nz).astype(np.int64) if nz else np.zeros(0, np.int64)
    eff_data = np.concatenate([effects[i, x] for i, x in enumerate(nz)]).astype(np.float64)
    target_of_group = np.concatenate([panel, [-1]]).astype(np.int64)
    efficiency = np.clip(rng.beta(8.0, 2.0, n_perturbations), 0.3, 0.97)

    # cells per perturbation: +-30% around an even split, summing exactly
    n_pert_cells = n_cells - n_control_cells
    w = rng.uniform(0.7, 1.3, n_perturbations)
    counts = np.maximum(1, np.floor(w / w.sum() * n_pert_cells)).astype(np.int64)
    short = n_pert_cells - counts.sum()
    if short > 0:
        counts += np.bincount(rng.integers(0, n_perturbations, int(short)), minlength=n_perturbations)
    while counts.sum() > n_pert_cells:  # floor of >=1 can overshoot on tiny files
        counts[np.argmax(counts)] -= 1
    groups = np.concatenate([np.full(n_control_cells, n_perturbations),
                             np.repeat(np.arange(n_perturbations), counts)]).astype(np.int64)
    if order == "shuffled":
        groups = rng.permutation(groups)

    is_pert = groups < n_perturbations
    batch = rng.integers(0, 4, n_cells)
    cell_depth = depth * rng.lognormal(0.0, 0.45, n_cells) * np.exp(rng.normal(0.0, 0.1, 4))[batch]
    eff_group = np.where(is_pert, efficiency[np.minimum(groups, n_perturbations - 1)], 1.0)
    eff_cell = np.clip(eff_group + rng.normal(0.0, 0.08, n_cells), 0.02, 0.995)
    escaped = rng.random(n_cells) < ESCAPE_FRACTION
    eff_cell = np.where(is_pert & ~escaped, eff_cell, 0.0)
    response = np.where(is_pert, eff_cell / eff_group, 0.0)
    knockdown = np.log1p(-eff_cell)
    guide = np.where(is_pert, rng.integers(0, 2, n_cells), rng.integers(0, N_CONTROL_GUIDES, n_cells))
    n_catalogue = int(pos.max()) + 1
    return _Design(symbols=gn.gene_symbols(n_catalogue)[pos], ids=gn.gene_ids(n_catalogue)[pos],
                   abundance=abundance,
                   phi=phi, panel=panel, eff_indptr=eff_indptr, eff_indices=eff_indices,
                   eff_data=eff_data, target_of_group=target_of_group, groups=groups,
                   depth=cell_depth, response=response, knockdown=knockdown, guide=guide,
                   batch=batch, spread=spread)


def _obs_var(d: _Design, n_perturbations: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    perts = d.symbols[d.panel].astype(str)
    labels = np.concatenate([perts, [CONTROL]])
    is_ctrl = d.groups == n_perturbations
    target = labels[d.groups]
    guide_id = np.where(is_ctrl, np.char.add(f"{CONTROL}_", np.char.zfill(d.guide.astype(str), 2)),
                        np.char.add(np.char.add(target, "_g"), (d.guide + 1).astype(str)))
    obs = pd.DataFrame({
        PERT_COL: pd.Categorical(target, categories=[CONTROL] + sorted(perts)),
        "guide_id": pd.Categorical(guide_id),
        "batch": pd.Categorical(np.char.add("b", (d.batch + 1).astype(str))),
    }, index=pd.Index(np.char.add("cell", np.char.zfill(np.arange(d.groups.size).astype(str), 7)),
                      name="cell"))
    var = pd.DataFrame({"gene_id": d.ids.astype(str)}, index=pd.Index(d.symbols.astype(str), name="gene"))
    return obs, var


def _csr_store(f, shape, nnz, indptr, index_dtype, compression):
    """Create X as a CSR group; returns ``store(start, stop, local_indptr, indices, data)``."""
    from transpert._io import begin_csr_h5ad

    X = begin_csr_h5ad(f, shape)
    kw = {} if compression is None else {"compression": compression}
    chunks = (min(max(nnz, 1), 1 << 20),)
    data = X.create_dataset("data", shape=(nnz,), dtype=np.float32, chunks=chunks, **kw)
    indices = X.create_dataset("indices", shape=(nnz,), dtype=index_dtype, chunks=chunks, **kw)
    X.create_dataset("indptr", data=indptr)

    def store(start, stop, local_indptr, idx, values):
        lo, hi = int(indptr[start]), int(indptr[stop])
        data[lo:hi] = values
        indices[lo:hi] = idx.astype(index_dtype, copy=False)

    return store


def _dense_dataset(f, shape, compression):
    """X as one dense float32 dataset (contiguous, as anndata writes it, unless ``compression``)."""
    f.attrs["encoding-type"] = "anndata"
    f.attrs["encoding-version"] = "0.1.0"
    kw = {} if compression is None else {"compression": compression, "chunks": (min(shape[0], 256), shape[1])}
    X = f.create_dataset("X", shape=shape, dtype=np.float32, **kw)
    X.attrs["encoding-type"] = "array"
    X.attrs["encoding-version"] = "0.2.0"
    return X


def _dense_store(f, shape, nnz, indptr, index_dtype, compression):
    """Create X as a dense dataset; returns ``store(...)`` writing each chunk's rows with their zeros."""
    X = _dense_dataset(f, shape, compression)

    def store(start, stop, local_indptr, idx, values):
        rows = np.zeros((stop - start, shape[1]), dtype=np.float32)
        rows[np.repeat(np.arange(stop - start), np.diff(local_indptr)), idx] = values
        X[start:stop] = rows

    return store


def _kernel_args(d: _Design):
    return (d.groups, d.depth, d.response, d.knockdown, d.abundance, d.phi, d.eff_indptr,
            d.eff_indices, d.eff_data, d.target_of_group)


def _write_two_passes(f, d, args, seed_u, bounds, shape, scale, layout, compression, nnz_row, library,
                      show_progress):
    """Pass 1 counts each row's non-zeros and library size (the datasets' exact sizes, the median
    library size of ``log1p``), pass 2 regenerates and stores each chunk. Returns (nnz, target_sum)."""
    from transpert._progress import Progress
    from transpert.kernels import _simulate as kr

    n_cells = shape[0]
    with Progress(2 * n_cells, "simulating cells", "cells", show_progress) as bar:
        for start, stop in bounds:  # pass 1: sizes and library sizes
            lib = np.zeros(stop - start, dtype=np.int64)
            kr.count_rows(seed_u, start, stop, *args, nnz_row[start:stop], lib)
            library[start:stop] = lib
            bar.update(stop - start)
        indptr = np.zeros(n_cells + 1, dtype=np.int64)
        np.cumsum(nnz_row, out=indptr[1:])
        nnz = int(indptr[-1])
        positive = library[library > 0]
        target_sum = float(np.median(positive)) if (scale == "log1p" and positive.size) else None
        index_dtype = np.int32 if nnz < np.iinfo(np.int32).max and shape[1] < np.iinfo(np.int32).max else np.int64
        store = (_dense_store if layout == "dense" else _csr_store)(f, shape, nnz, indptr, index_dtype,
                                                                   compression)
        for start, stop in bounds:  # pass 2: regenerate and store
            lo, hi = int(indptr[start]), int(indptr[stop])
            out_idx = np.empty(hi - lo, dtype=np.int32)
            out_data = np.empty(hi - lo, dtype=np.float32)
            kr.fill_rows(seed_u, start, stop, *args, indptr[start:stop + 1], library,
                         float(target_sum or 0.0), scale == "log1p", out_idx, out_data)
            store(start, stop, indptr[start:stop + 1] - lo, out_idx, out_data)
            del out_idx, out_data
            bar.update(stop - start)
    return nnz, target_sum


def _write_annotations(f, d, n_perturbations, seed, scale, order, density, depth, target_sum):
    """obs, var, uns (the simulation's parameters) and the empty elements of an AnnData file."""
    from anndata.io import write_elem

    obs, var = _obs_var(d, n_perturbations)
    write_elem(f, "obs", obs)
    write_elem(f, "var", var)
    uns = {"simulation": {"seed": int(seed), "scale": scale, "order": order,
                          "density_target": float(density), "depth_median": float(depth),
                          "spread": float(d.spread),
                          "target_sum": float(target_sum) if target_sum else 0.0,
                          "perturbations": list(d.symbols[d.panel].astype(str))}}
    write_elem(f, "uns", uns)
    for name in ("obsm", "varm", "layers", "obsp", "varp"):
        write_elem(f, name, {})


def write_large_dataset(path: str | os.PathLike, n_cells: int = 300_000, n_genes: int = 18_080,
                        n_perturbations: int = 300, *, n_control_cells: int | None = None,
                        scale: str = "counts", density: float = 0.11, depth: float = 50_000,
                        order: str = "shuffled", chunk_rows: int | None = None, seed: int = 0,
                        threads: int | None = None, compression: str | None = None,
                        layout: str = "csr", genes=None, targets=None,
                        show_progress: bool | None = False) -> LargeDataset:
    """Write one simulated Perturb-seq h5ad of ``n_cells`` x ``n_genes`` chunk by chunk.

    ``scale="counts"``: X holds raw UMI counts (float32, integer-valued). ``scale="log1p"``: X
    holds ``log1p(count / library * median library)`` (float32), i.e. what
    ``scanpy.pp.normalize_total(target_sum=None)`` + ``log1p`` make of the counts file with the
    same seed. ``density``: expected fraction of non-zero entries (the gene-level spread is
    calibrated to reach it at ``depth`` median UMI per cell). ``n_control_cells`` defaults to the
    H1 share (12.7%). ``order``: ``"shuffled"`` (default) or ``"grouped"``. ``layout``:
    ``"csr"`` (default) or ``"dense"`` (X one contiguous ``n_cells x n_genes`` float32 dataset,
    zeros stored). ``genes``: the file's genes as ``n_genes`` positions in the simulator's gene
    catalogue (default ``0..n_genes-1``); ``targets``: catalogue positions of the
    ``n_perturbations`` perturbed genes, all among ``genes`` (default: drawn among the visibly
    expressed genes). The output does not depend on ``chunk_rows`` or ``threads``. Written
    atomically.
    """
    from transpert._io import atomic_path
    from transpert._parallel import numba_threads
    from transpert._progress import Progress
    from transpert.kernels import _simulate as kr

    if n_control_cells is None:
        n_control_cells = max(1, int(round(H1_CONTROL_FRACTION * n_cells)))
    _check(n_cells, n_genes, n_perturbations, n_control_cells, scale, density, depth, order,
           chunk_rows, seed, layout)
    t0 = time.perf_counter()
    d = _design(seed=seed, n_cells=n_cells, n_genes=n_genes, n_perturbations=n_perturbations,
                n_control_cells=n_control_cells, density=density, depth=depth, order=order,
                genes=genes, targets=targets)
    if chunk_rows is None:
        per_row = n_genes / 2 if layout == "dense" else max(1.0, density * n_genes)  # dense: 4 B vs 8 B
        chunk_rows = max(256, int(_TARGET_CHUNK_NNZ / per_row))
    chunk_rows = min(chunk_rows, n_cells)
    bounds = [(s, min(s + chunk_rows, n_cells)) for s in range(0, n_cells, chunk_rows)]
    args = _kernel_args(d)
    seed_u = np.uint64(seed)

    nnz_row = np.zeros(n_cells, dtype=np.int64)
    library = np.zeros(n_cells, dtype=np.float64)
    import h5py

    with numba_threads(threads), atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        if layout == "dense" and scale == "counts":  # one pass: no sizes needed before writing
            with Progress(n_cells, "simulating cells", "cells", show_progress) as bar:
                X = _dense_dataset(f, (n_cells, n_genes), compression)
                for start, stop in bounds:
                    rows = np.zeros((stop - start, n_genes), dtype=np.float32)
                    lib = np.zeros(stop - start, dtype=np.int64)
                    kr.fill_dense_rows(seed_u, start, stop, *args, rows, nnz_row[start:stop], lib)
                    library[start:stop] = lib
                    X[start:stop] = rows
                    del rows
                    bar.update(stop - start)
            nnz, target_sum = int(nnz_row.sum()), None
        else:
            nnz, target_sum = _write_two_passes(f, d, args, seed_u, bounds, (n_cells, n_genes), scale,
                                                layout, compression, nnz_row, library, show_progress)
        _write_annotations(f, d, n_perturbations, seed, scale, order, density, depth, target_sum)
    return LargeDataset(path=Path(path), n_cells=n_cells, n_genes=n_genes,
                        n_perturbations=n_perturbations, nnz=nnz, scale=scale, order=order,
                        spread=float(d.spread), target_sum=target_sum,
                        seconds=time.perf_counter() - t0)
