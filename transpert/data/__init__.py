"""transpert.data: getting cells in — manifest, download, schema mapping, reading, normalisation.

- :func:`open_cells` / :class:`CellSource`: a dataset (path, manifest name or AnnData) backed on
  disk, read in row chunks in the canonical schema (``target_gene``, control ``non-targeting``,
  gene symbols as var names); :func:`read_cells` loads a small one fully.
- :func:`detect_scale`, :func:`normalize_log1p`: the challenge's normalisation (median library
  size, natural log1p), equal to scanpy's ``normalize_total`` + ``log1p``.
- :class:`Schema`: where a file keeps the canonical fields.
- :func:`load_manifest`, :func:`fetch`, :func:`verify`: the datasets of ``data_manifest.yaml``,
  downloaded resumably into the cache and checked against their checksums.
- :func:`read_counts`, :func:`read_gene_list`, :func:`reference_sources`: the counts table, the
  gene order and named reference lines, one reader each.
- :func:`target_controls`: the target's control cells and the median library size of their file.
- :func:`validate_cells`: clear errors before any work; :func:`harmonize_genes`: one gene list
  for several datasets (Ensembl IDs first, then symbols).

- :func:`simulate_atlas`, :func:`write_large_dataset`: the simulated multi-cell-line atlas
  (:mod:`transpert.data.simulate`).
"""

from __future__ import annotations

from transpert.data.controls import control_cells, file_median_library_size, target_controls
from transpert.data.fetch import DownloadError, fetch, verify
from transpert.data.genes import GeneHarmonization, harmonize_genes
from transpert.data.manifest import DatasetEntry, Manifest, load_manifest, resolve_cache_dir
from transpert.data.normalize import (
    detect_scale,
    library_sizes_of,
    median_library_size,
    normalize_log1p,
)
from transpert.data.read import CellSource, open_cells, read_cells
from transpert.data.schema import CONTROL_LABEL, PERT_COL, Schema
from transpert.data.split import split_perturbations
from transpert.data.tables import read_counts, read_gene_list, reference_sources
from transpert.data.simulate import (
    SimulatedAtlas,
    SimulatedTruth,
    load_atlas,
    read_truth,
    simulate_atlas,
    write_large_dataset,
)
from transpert.data.validate import (
    ValidationError,
    ValidationReport,
    validate_cells,
    validate_same_genes,
)

__all__ = [
    "CONTROL_LABEL",
    "PERT_COL",
    "CellSource",
    "DatasetEntry",
    "DownloadError",
    "GeneHarmonization",
    "Manifest",
    "Schema",
    "SimulatedAtlas",
    "SimulatedTruth",
    "ValidationError",
    "ValidationReport",
    "control_cells",
    "detect_scale",
    "file_median_library_size",
    "fetch",
    "harmonize_genes",
    "library_sizes_of",
    "load_atlas",
    "load_manifest",
    "median_library_size",
    "normalize_log1p",
    "open_cells",
    "read_cells",
    "read_counts",
    "read_gene_list",
    "read_truth",
    "reference_sources",
    "resolve_cache_dir",
    "simulate_atlas",
    "split_perturbations",
    "target_controls",
    "validate_cells",
    "validate_same_genes",
    "verify",
    "write_large_dataset",
]
