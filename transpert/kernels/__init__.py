"""Numba kernels on plain arrays (CSR/CSC parts, group codes); callers allocate the outputs.

- :func:`pseudobulk_csr`: per (group, gene) sums, non-zero counts and scipy-style float32 means.
- :func:`pseudobulk_checked_csr`: the same, plus the value and canonical-CSR checks in the same read.
- :func:`plan_row_parts`: which thread reads which rows (whole groups per thread).
- :func:`count_csr_block`, :func:`scatter_csr_block` (row chunks) and :func:`scatter_rows_block`
  (in memory, no counting pass): gather a block of genes, column-major and zero-free, as
  order-preserving keys plus group codes.
- :func:`ranksum_block`: Mann-Whitney U and asymptotic p of every group against a reference
  group (or the rest) for every gene of a block, with scipy's semantics.
- :func:`reference_table`, :func:`ranksum_vs_table`: the same tests against a reference given
  as each gene's sorted distinct values and counts (distributed summaries: no reference cells).
- :func:`mwu_pvalue`, :func:`ndtr`: scalar pieces, usable on their own.
- :func:`l1_distances`: L1 distances between the rows of two dense matrices (the PDS core).
- :func:`value_facts`: one pass over stored values for scale detection (NaN, negatives, fractions).
- :func:`row_totals_into`: each CSR row's sum (library sizes), scanpy's float64 accumulation.
- :func:`row_kinds`: each row's scale evidence (empty, integral, fractional, counts x constant).
"""

from transpert.kernels._dense import dense_to_csr_arrays
from transpert.kernels._distances import l1_distances
from transpert.kernels._gather import (
    count_csr_block,
    scatter_csr_block,
    scatter_rows_block,
    value_key,
)
from transpert.kernels._pdex import expm1_f32, log2_ratio_pdex
from transpert.kernels._pseudobulk import plan_row_parts, pseudobulk_checked_csr, pseudobulk_csr
from transpert.kernels._regroup import regroup_segments
from transpert.kernels._row_scale import row_kinds
from transpert.kernels._ranges import rows_strictly_sorted
from transpert.kernels._ranksum import ranksum_block
from transpert.kernels._reftable import ranksum_vs_table, reference_table
from transpert.kernels._stats import mwu_pvalue, ndtr
from transpert.kernels._values import row_totals_into, value_facts

__all__ = [
    "dense_to_csr_arrays",
    "row_totals_into",
    "count_csr_block",
    "expm1_f32",
    "l1_distances",
    "log2_ratio_pdex",
    "mwu_pvalue",
    "ndtr",
    "plan_row_parts",
    "pseudobulk_checked_csr",
    "pseudobulk_csr",
    "ranksum_block",
    "ranksum_vs_table",
    "reference_table",
    "regroup_segments",
    "row_kinds",
    "rows_strictly_sorted",
    "scatter_csr_block",
    "scatter_rows_block",
    "value_facts",
    "value_key",
]
