"""A simulated multi-cell-line Perturb-seq atlas (for the demo, the tests and the benchmarks).

:func:`simulate_atlas` makes several reference cell lines and one target line, all perturbed
with one panel of CRISPRi knockdowns, as raw UMI counts in the canonical schema, together with
the ground truth (the true per-line effects). :func:`write_large_dataset` writes one
challenge-sized h5ad chunk by chunk without holding it in memory.

The generative model (details in the modules of :mod:`transpert.data.simulate`):

* genes: log-normal levels shared across lines plus line noise, a few line-specific genes, 10%
  silent per line; gene-wise negative-binomial dispersion around 0.3;
* cells: library depth log-normal (median 10k UMI per cell over the whole transcriptome by
  default; the target at the H1 depth of 50k with ``target_depth="h1"``); NB counts; zeros
  measured at 1,500 genes: 96% at 2k, 89% at 10k, 77% at 50k UMI per cell;
* perturbations: knockdown of the target gene (efficiency ~Beta(8, 2) per guide, jittered per
  line and per cell; 5% of cells escape); downstream effects from gene programs shared across
  lines and private to each line, mixed to give each reference a set similarity to the target;
  some perturbations have no downstream effect.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError
from transpert.data.simulate import _model as sa
from transpert.data.simulate import _genes as gn
from transpert.data.schema import PERT_COL

__all__ = ["SimulatedAtlas", "SimulatedTruth", "simulate_atlas", "load_atlas", "read_truth", "CONTROL"]

CONTROL = sa.CONTROL
TRUTH_FILE = "truth.h5ad"
LINES_FILE = "lines.csv"
PERTURBATIONS_FILE = "truth_perturbations.csv"


@dataclass
class SimulatedTruth:
    """The true effects of a simulated atlas.

    ``log_effects[line]``: DataFrame perturbations x genes of natural-log fold changes of the
    expected UMI count in a responding cell vs a control cell (the target gene's entry is the
    knockdown, ``log(1 - efficiency)``; 0 = the gene does not change).
    ``perturbations``: one row per (line, perturbation): ``line``, ``target_gene``,
    ``knockdown_efficiency``, ``has_effect`` (any downstream effect), ``module`` (perturbations
    of one module act on the same programs; -1 = none), ``n_changed`` (genes with a non-zero
    effect, the target included), ``n_cells``.
    ``lines``: per line ``role``, ``similarity_to_target`` (expected correlation of its effects
    with the target's), ``shared_weight``, ``effect_amplitude``, ``depth_median``.
    ``baseline``: genes x lines, expected fraction of a control cell's whole-transcriptome UMIs.
    """

    log_effects: dict[str, pd.DataFrame]
    perturbations: pd.DataFrame
    lines: pd.DataFrame
    baseline: pd.DataFrame

    def changed(self, line: str) -> pd.DataFrame:
        """Boolean perturbations x genes: which genes truly change in ``line``."""
        return self.log_effects[line] != 0

    def to_anndata(self):
        """One AnnData: obs = (line, perturbation) rows, var = genes, X = log effects (float32).
        Lines and baseline go to ``uns`` / ``varm``."""
        import anndata as ad

        lines = list(self.lines.index)
        X = np.concatenate([self.log_effects[ln].to_numpy(np.float32) for ln in lines])
        obs = self.perturbations.copy()
        obs.index = [f"{r.line}|{r.target_gene}" for r in obs.itertuples()]
        for col in ("line", PERT_COL):
            obs[col] = pd.Categorical(obs[col])
        genes = self.log_effects[lines[0]].columns
        adata = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(genes, dtype=str)))
        adata.varm["baseline"] = self.baseline.loc[genes, lines].to_numpy()
        adata.uns["lines"] = {c: self.lines[c].tolist() for c in self.lines.columns}
        adata.uns["line_names"] = lines
        adata.uns["line_columns"] = list(self.lines.columns)  # h5ad sorts dict keys
        adata.uns["scale"] = "natural-log fold change of expected counts"
        return adata

    @classmethod
    def from_anndata(cls, adata) -> "SimulatedTruth":
        lines = [str(x) for x in adata.uns["line_names"]]
        columns = [str(c) for c in adata.uns["line_columns"]]
        line_df = pd.DataFrame({k: list(adata.uns["lines"][k]) for k in columns},
                               index=pd.Index(lines, name="line"))
        obs = adata.obs.copy()
        obs.index = pd.RangeIndex(len(obs))
        obs["line"] = obs["line"].astype(str)
        obs[PERT_COL] = obs[PERT_COL].astype(str)
        X = np.asarray(adata.X)
        genes = pd.Index(adata.var_names.astype(str), name="gene")
        log_effects = {}
        for ln in lines:
            rows = np.flatnonzero(obs["line"].to_numpy() == ln)
            log_effects[ln] = pd.DataFrame(X[rows], index=pd.Index(obs[PERT_COL].to_numpy()[rows],
                                                                    name=PERT_COL), columns=genes)
        baseline = pd.DataFrame(np.asarray(adata.varm["baseline"]), index=genes, columns=lines)
        return cls(log_effects=log_effects, perturbations=obs, lines=line_df, baseline=baseline)


@dataclass
class SimulatedAtlas:
    """A simulated atlas: ``lines`` maps each line name to its AnnData of raw counts (canonical
    schema: obs ``target_gene`` / ``guide_id`` / ``batch``, control ``non-targeting``, var names
    symbols, var ``gene_id``); ``reference_lines``, ``target_line``, ``perturbations`` (the
    panel, gene symbols), ``truth`` and, when written, ``paths`` (line -> h5ad) and
    ``truth_path``."""

    lines: dict
    reference_lines: list[str]
    target_line: str
    perturbations: list[str]
    truth: SimulatedTruth
    paths: dict[str, Path] | None = None
    truth_path: Path | None = None
    params: dict = field(default_factory=dict)


def simulate_atlas(out_dir: str | os.PathLike | None = None, *, seed: int = 0,
                   n_reference_lines: int = 3,
                   similarity: float | Sequence[float] = (0.8, 0.6, 0.4),
                   n_genes: int = 1500, n_perturbations: int = 60,
                   cells_per_perturbation: int = 80, n_control_cells: int = 400,
                   reference_depth: float = 10_000, target_depth: float | str | None = None,
                   frac_no_effect: float = 0.15, n_programs: int = 20, effect_scale: float = 1.0,
                   line_names: Sequence[str] | None = None,
                   show_progress: bool | None = False) -> SimulatedAtlas:
    """Simulate reference lines and a target line perturbed with one panel of knockdowns.

    Returns raw UMI counts (integer-valued float32 CSR) per line and the ground truth on the
    natural-log fold-change scale. With ``out_dir``, also writes ``<line>.h5ad`` per line,
    ``truth.h5ad`` (see :meth:`SimulatedTruth.to_anndata`), ``truth_perturbations.csv`` and
    ``lines.csv``, each atomically; reload with :func:`load_atlas`.

    ``similarity``: expected correlation between each reference line's true effects and the
    target's (one value for all, or one per reference). ``reference_depth``: median UMI per cell
    over the whole transcriptome (a file of fewer genes is a sample of an 18,000-gene
    transcriptome, so its cells hold proportionally fewer UMIs). ``target_depth``: same for the
    target line; ``None`` = as the references, ``"h1"`` = 50,000 (the challenge's H1 cells).
    ``frac_no_effect``: share of the panel without downstream effect (their target is still
    knocked down). ``effect_scale`` multiplies every downstream effect.
    Same ``seed`` and parameters -> identical output, whatever the thread count.

    Examples
    --------
    >>> from transpert.data import simulate_atlas
    >>> atlas = simulate_atlas(seed=0, n_genes=500, n_perturbations=20)  # doctest: +SKIP
    >>> atlas.reference_lines, atlas.target_line  # doctest: +SKIP
    (['ref1', 'ref2', 'ref3'], 'target')
    >>> atlas.truth.lines["similarity_to_target"]  # doctest: +SKIP
    """
    if isinstance(target_depth, str):
        if target_depth.lower() != "h1":
            raise TranspertInputError(f"simulate: parameter target_depth={target_depth!r}: "
                                      "give a number of UMI per cell, None or 'h1'")
        target_depth = sa.H1_DEPTH
    similarity_arr, names = sa.check_params(
        seed=seed, n_reference_lines=n_reference_lines, similarity=similarity, n_genes=n_genes,
        n_perturbations=n_perturbations, cells_per_perturbation=cells_per_perturbation,
        n_control_cells=n_control_cells, reference_depth=reference_depth,
        target_depth=target_depth, frac_no_effect=frac_no_effect, n_programs=n_programs,
        effect_scale=effect_scale, line_names=line_names)
    depths = [float(reference_depth)] * n_reference_lines + [
        float(reference_depth if target_depth is None else target_depth)]
    n_lines = n_reference_lines + 1
    model = sa.build_model(seed=seed, similarity=similarity_arr, n_lines=n_lines, n_genes=n_genes,
                           n_perturbations=n_perturbations, reference_depth=float(reference_depth),
                           frac_no_effect=frac_no_effect, n_programs=n_programs,
                           effect_scale=effect_scale)
    symbols = gn.gene_symbols(n_genes)
    ids = gn.gene_ids(n_genes)
    panel = model["panel"]
    perts = [str(s) for s in symbols[panel]]
    params = dict(seed=int(seed), n_reference_lines=n_reference_lines,
                  similarity=[float(x) for x in similarity_arr], n_genes=n_genes,
                  n_perturbations=n_perturbations, cells_per_perturbation=cells_per_perturbation,
                  n_control_cells=n_control_cells, reference_depth=float(reference_depth),
                  target_depth=depths[-1], frac_no_effect=float(frac_no_effect),
                  n_programs=n_programs, effect_scale=float(effect_scale))

    from transpert._progress import track

    lines: dict = {}
    rows = []
    gene_index = pd.Index(symbols.astype(str), name="gene")
    for i in track(range(n_lines), total=n_lines, desc="simulating lines", unit="line",
                   show=show_progress):
        rng = sa._rng(seed, sa._K_LINES + i)
        n_cells = sa.cells_per_perturbation_counts(rng, n_perturbations, cells_per_perturbation)
        X, group, guide, batch = sa.simulate_line_counts(
            rng, abundance=model["abundance"][i], phi=model["phi"], effects=model["effects"][i],
            panel=panel, efficiency=model["efficiency"][i], n_cells_per_pert=n_cells,
            n_control_cells=n_control_cells, depth_median=depths[i])
        lines[names[i]] = _line_anndata(names[i], X, group, guide, batch, symbols, ids, perts,
                                        params, role="target" if i == n_lines - 1 else "reference")
        eff = model["effects"][i]
        rows.append(pd.DataFrame({
            "line": names[i], PERT_COL: perts,
            "knockdown_efficiency": model["efficiency"][i],
            "has_effect": model["has_effect"], "module": model["module"],
            "n_changed": (eff != 0).sum(axis=1), "n_cells": n_cells}))

    truth = SimulatedTruth(
        log_effects={names[i]: pd.DataFrame(model["effects"][i].astype(np.float32),
                                            index=pd.Index(perts, name=PERT_COL),
                                            columns=gene_index) for i in range(n_lines)},
        perturbations=pd.concat(rows, ignore_index=True),
        lines=sa.line_frame(names, similarity_arr, depths, model),
        baseline=pd.DataFrame(model["abundance"].T, index=gene_index, columns=names))
    atlas = SimulatedAtlas(lines=lines, reference_lines=names[:-1], target_line=names[-1],
                           perturbations=perts, truth=truth, params=params)
    if out_dir is not None:
        _write_atlas(atlas, Path(out_dir))
    return atlas


def _line_anndata(name, X, group, guide, batch, symbols, ids, perts, params, role):
    import anndata as ad

    perts_arr = np.array(perts, dtype=object)
    is_ctrl = group < 0
    target = np.where(is_ctrl, CONTROL, perts_arr[np.maximum(group, 0)])
    guide_id = np.where(is_ctrl,
                        np.char.add(f"{CONTROL}_", np.char.zfill(guide.astype(str), 2)).astype(object),
                        np.char.add(np.char.add(target.astype(str), "_g"), (guide + 1).astype(str)).astype(object))
    categories = [CONTROL] + sorted(perts)
    obs = pd.DataFrame({
        PERT_COL: pd.Categorical(target, categories=categories),
        "guide_id": pd.Categorical(guide_id),
        "batch": pd.Categorical(np.char.add(f"{name}_b", (batch + 1).astype(str))),
        "cell_line": pd.Categorical([name] * X.shape[0]),
    }, index=pd.Index([f"{name}-{i:06d}" for i in range(X.shape[0])], name="cell"))
    var = pd.DataFrame({"gene_id": ids.astype(str)}, index=pd.Index(symbols.astype(str), name="gene"))
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.uns["simulation"] = {"line": name, "role": role, "scale": "counts",
                               "params": json.dumps(params)}
    return adata


def _write_atlas(atlas: SimulatedAtlas, out_dir: Path) -> None:
    from transpert._io import write_csv_atomic, write_h5ad_atomic

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, adata in atlas.lines.items():
        paths[name] = write_h5ad_atomic(adata, out_dir / f"{name}.h5ad")
    atlas.truth_path = write_h5ad_atomic(atlas.truth.to_anndata(), out_dir / TRUTH_FILE)
    write_csv_atomic(atlas.truth.perturbations, out_dir / PERTURBATIONS_FILE, index=False)
    write_csv_atomic(atlas.truth.lines, out_dir / LINES_FILE)
    atlas.paths = paths


def read_truth(path: str | os.PathLike) -> SimulatedTruth:
    """Read ``truth.h5ad`` (or the directory holding it) written by :func:`simulate_atlas`."""
    import anndata as ad

    path = Path(path)
    if path.is_dir():
        path = path / TRUTH_FILE
    if not path.exists():
        raise TranspertInputError(f"{path}: no simulated ground truth here (expected {TRUTH_FILE})")
    return SimulatedTruth.from_anndata(ad.read_h5ad(path))


def load_atlas(out_dir: str | os.PathLike, *, backed: bool = False) -> SimulatedAtlas:
    """Reload an atlas written by :func:`simulate_atlas` (lines in memory, or backed)."""
    import anndata as ad

    out_dir = Path(out_dir)
    lines_csv = out_dir / LINES_FILE
    if not lines_csv.exists():
        raise TranspertInputError(f"{out_dir}: not a simulated atlas (no {LINES_FILE})")
    line_df = pd.read_csv(lines_csv, index_col="line")
    truth = read_truth(out_dir / TRUTH_FILE)
    names = [str(x) for x in line_df.index]
    paths = {n: out_dir / f"{n}.h5ad" for n in names}
    lines = {n: ad.read_h5ad(p, backed="r" if backed else None) for n, p in paths.items()}
    roles = line_df["role"].astype(str)
    target = [n for n in names if roles[n] == "target"]
    first = lines[names[0]]
    params = json.loads(first.uns["simulation"]["params"]) if "simulation" in first.uns else {}
    return SimulatedAtlas(lines=lines, reference_lines=[n for n in names if roles[n] == "reference"],
                          target_line=target[0],
                          perturbations=list(truth.log_effects[target[0]].index),
                          truth=truth, paths=paths, truth_path=out_dir / TRUTH_FILE, params=params)
