"""Validation of a dataset before any work starts, with errors that say what to fix.

:func:`validate_cells` checks the file's structure (perturbation column, control cells, labels
with no cells, gene names, the expected gene set) from obs and var alone, then its values in one
streaming pass over the matrix (NaN, infinite, negative, non-integer where counts are expected,
mixed scales). Every problem names the file, the column or gene, and the offending value; all
problems found are reported together in one :class:`ValidationError`.

The streaming pass also computes the library sizes, which it leaves in the
:class:`~transpert.data.CellSource`'s cache, so normalising afterwards costs no extra pass.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError
from transpert.data import normalize as _norm
from transpert.data.labels import label_counts, label_overview
from transpert.data.read import CellSource, ScanStats, _cells_from_parts, _open_parts
from transpert.data.schema import CONTROL_LABEL, FRACTION_EPS, LOG1P_MAX, PERT_COL, Schema

logger = logging.getLogger(__name__)


class ValidationError(TranspertInputError):
    """One or more problems in a dataset; ``problems`` lists them (each a full sentence)."""

    def __init__(self, file: str, problems: list[str]):
        self.file = file
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{file}: {len(self.problems)} problem(s):\n{lines}")


@dataclasses.dataclass
class ValidationReport:
    """What a successful validation found."""

    file: str
    n_obs: int
    n_vars: int
    n_perturbations: int
    n_control_cells: int
    scale: str | None
    notes: list[str] = dataclasses.field(default_factory=list)


def _label_problems(obs: pd.DataFrame, schema: Schema, mask, file: str) -> tuple[list[str], list[str]]:
    """Problems with the perturbation column; returns (problems, notes)."""
    col = schema.pert_col
    if col not in obs.columns:
        return [f"perturbation column {col!r} is not in obs (columns: {list(obs.columns)})"], []
    problems, notes = [], []
    labels = obs[col]
    missing = labels.isna().to_numpy()
    if missing.any():
        first = obs.index[np.flatnonzero(missing)[0]]
        problems.append(f"column {col!r}: {int(missing.sum())} cell(s) have no label, first {first!r}")
    # A label that names no cell (an unused category) would become an empty group downstream.
    if isinstance(labels.dtype, pd.CategoricalDtype):
        counts = labels.value_counts(sort=False)
        empty = [str(c) for c, n in counts.items() if n == 0]
        if empty:
            problems.append(f"column {col!r}: perturbation label(s) with zero cells: "
                            f"{empty[:10]}{' ...' if len(empty) > 10 else ''} (unused categories)")
    kept = labels if mask is None else labels[mask]
    kept_str = kept[~kept.isna()].astype(str)
    if not (kept_str == schema.control_label).any():
        where = "" if mask is None else f" among the cells kept by the filter {schema.cell_filter!r}"
        problems.append(f"column {col!r}: no control cells labelled {schema.control_label!r}{where} "
                        f"(labels: {label_overview(label_counts(kept_str))})")
    if schema.control_label != CONTROL_LABEL and (kept_str == CONTROL_LABEL).any():
        problems.append(f"column {col!r}: {int((kept_str == CONTROL_LABEL).sum())} cell(s) labelled "
                        f"{CONTROL_LABEL!r} besides the control label {schema.control_label!r}")
    if col != PERT_COL and PERT_COL in obs.columns:
        problems.append(f"obs has both {col!r} (the schema's perturbation column) and {PERT_COL!r}")
    return problems, notes


def _gene_problems(var: pd.DataFrame, schema: Schema, genes, file: str) -> tuple[list[str], list[str]]:
    problems, notes = [], []
    try:
        canonical = schema.canonical_var(var, file)
    except TranspertInputError as err:
        # canonical_var's messages start with the file name; keep only the sentence
        return [str(err).removeprefix(f"{file}: ")], notes
    if schema.effective_duplicate_genes == "make_unique":
        n = int((canonical.index != Schema._var_field(var, schema.gene_symbols, "gene_symbols", file)
                 .astype(str).to_numpy()).sum())
        if n:
            notes.append(f"{n} duplicated gene symbol(s) renamed to be unique")
    if genes is not None:
        expected = pd.Index(genes).astype(str)
        have = canonical.index
        missing = expected.difference(have, sort=False)
        extra = have.difference(expected, sort=False)
        if len(missing) or len(extra):
            problems.append(
                f"gene set differs from the expected one: {len(missing)} expected gene(s) missing "
                f"(e.g. {list(missing[:5])}), {len(extra)} unexpected gene(s) (e.g. {list(extra[:5])})"
            )
        elif not have.equals(expected):
            notes.append("same genes as expected but in a different order")
    return problems, notes


def _locate(block, index: int, start: int, cells: CellSource) -> str:
    """'cell X, gene Y' for the ``index``-th stored value of a CSR chunk."""
    row = int(np.searchsorted(block.indptr, index, side="right") - 1)
    col = int(block.indices[index])
    return f"cell {cells.obs.index[start + row]!r}, gene {cells.var_names[col]!r}"


def _value_pass(cells: CellSource, expect_scale: str | None, chunk_rows: int | None) -> tuple[list[str], str | None]:
    """One streaming pass: value problems with their first location; fills the scan cache."""
    from transpert.data import _row_scale

    summary = _norm.value_summary(np.empty(0, dtype=cells.dtype))
    rows = _row_scale.empty_evidence()
    sizes = np.empty(cells.n_obs, dtype=np.float64)
    first: dict[str, str] = {}
    nnz = 0
    for start, stop, block in cells.iter_chunks(chunk_rows):
        data = block.data
        part = _norm.value_summary(data)
        summary = _norm.merge_summaries(summary, part)
        rows = _row_scale.merge_evidence(rows, _row_scale.row_evidence(block, start))
        sizes[start:stop] = np.asarray(block.sum(axis=1, dtype=np.float64)).ravel()
        nnz += block.nnz
        if data.dtype.kind == "f" and (part["n_nan"] or part["n_inf"] or part["n_negative"] or part["n_fractional"]):
            tests = {
                "nan": np.isnan, "inf": np.isinf,
                "negative": lambda d: d < 0,
                "fractional": lambda d: np.isfinite(d) & (np.modf(np.where(np.isfinite(d), d, 0))[0] > FRACTION_EPS),
            }
            for key, test in tests.items():
                if key not in first:
                    hit = np.flatnonzero(test(data))
                    if hit.size:
                        first[key] = f"{data[hit[0]].item()!r} at {_locate(block, int(hit[0]), start, cells)}"
        elif part["n_negative"] and "negative" not in first:
            hit = int(np.flatnonzero(data < 0)[0])
            first["negative"] = f"{data[hit].item()!r} at {_locate(block, hit, start, cells)}"
    problems = []
    if summary["n_nan"]:
        problems.append(f"X has {summary['n_nan']} NaN value(s), first {first['nan']}")
    if summary["n_inf"]:
        problems.append(f"X has {summary['n_inf']} infinite value(s), first {first['inf']}")
    if summary["n_negative"]:
        problems.append(f"X has {summary['n_negative']} negative value(s), first {first['negative']}")
    summary["rows"] = rows
    scale = None
    if not problems:
        if expect_scale == "counts" and summary["n_fractional"]:
            problems.append(f"X should hold raw counts but has {summary['n_fractional']} non-integer "
                            f"value(s), first {first['fractional']}")
        elif summary["n_fractional"] and summary["max"] >= LOG1P_MAX:
            problems.append(f"X has non-integer values (first {first['fractional']}) and a maximum of "
                            f"{summary['max']!r} >= {LOG1P_MAX}: mixed scales")
        elif expect_scale == "log1p" and not summary["n_fractional"]:
            problems.append("X should be log1p-normalised but holds only integers (raw counts?)")
        else:
            try:  # the rows must agree on the scale too (transpert.data._row_scale)
                _row_scale.check_rows_agree(rows, "X")
                scale = "log1p" if summary["n_fractional"] else "counts"
            except TranspertInputError as err:
                problems.append(str(err).removeprefix("X: "))
    if not problems and cells._stats is None:
        cells._stats = ScanStats(values=summary, library_sizes=sizes, nnz=nnz)
    return problems, scale


def validate_cells(source, *, schema: Schema | dict | None = None, manifest=None,
                   expect_scale: str | None = None, genes=None, check_values: bool = True,
                   chunk_rows: int | None = None) -> ValidationReport:
    """Check a dataset before use; raise :class:`ValidationError` listing every problem found.

    ``source``/``schema``/``manifest`` as :func:`~transpert.data.open_cells` (a CellSource is
    checked as opened). ``expect_scale``: ``"counts"`` or ``"log1p"`` to require one (default:
    the schema's ``counts`` if set, else either). ``genes``: the gene symbols the dataset must have
    (e.g. another dataset's ``var_names``). ``check_values=False`` skips the streaming pass over X.
    Takes data on any scale; returns a :class:`ValidationReport`.
    """
    if expect_scale not in (None, "counts", "log1p"):
        raise TranspertInputError(f"expect_scale must be 'counts', 'log1p' or None, got {expect_scale!r}")
    own = not isinstance(source, CellSource)
    if own:
        parts = _open_parts(source, schema, manifest)
        obs, var, sch = parts.obs, parts.var, parts.schema
        file = str(parts.path) if parts.path is not None else parts.name
    else:
        obs, var, sch = source.raw_obs, source.raw_var, source.schema
        file = str(source.path) if source.path is not None else source.name
    if expect_scale is None and sch.counts is not None:
        expect_scale = "counts" if sch.counts else "log1p"
    problems: list[str] = []
    notes: list[str] = []
    mask = None
    try:
        mask = sch.cell_mask(obs, file)
    except TranspertInputError as err:
        problems.append(str(err).removeprefix(f"{file}: "))
    p, n = _label_problems(obs, sch, mask, file)
    problems += p
    notes += n
    p, n = _gene_problems(var, sch, genes, file)
    problems += p
    notes += n
    if problems:
        if own:
            parts.matrix.close()
        raise ValidationError(file, problems)
    cells = _cells_from_parts(parts) if own else source
    try:
        scale = None
        if check_values:
            p, scale = _value_pass(cells, expect_scale, chunk_rows)
            if p:
                raise ValidationError(file, p)
        labels = cells.obs[PERT_COL]
        report = ValidationReport(
            file=file, n_obs=cells.n_obs, n_vars=cells.n_vars,
            n_perturbations=int(labels[labels != CONTROL_LABEL].nunique()),
            n_control_cells=int((labels == CONTROL_LABEL).sum()), scale=scale, notes=notes)
    finally:
        if own:
            cells.close()
    for note in notes:
        logger.info("%s: %s", file, note)
    return report


def validate_same_genes(sources: dict, **open_kwargs) -> pd.Index:
    """Check that several datasets have the same gene symbols; returns them (first's order).

    ``sources``: name -> path / manifest name / AnnData / CellSource. Raises
    :class:`TranspertInputError` naming the datasets and example genes that differ.
    """
    from transpert.data.read import open_cells

    names = {}
    for label, src in sources.items():
        if isinstance(src, CellSource):
            names[label] = src.var_names
        else:
            with open_cells(src, **open_kwargs) as cells:
                names[label] = cells.var_names
    items = list(names.items())
    first_label, first = items[0]
    problems = []
    for label, other in items[1:]:
        missing = first.difference(other, sort=False)
        extra = other.difference(first, sort=False)
        if len(missing) or len(extra):
            problems.append(f"{label!r} vs {first_label!r}: {len(missing)} gene(s) only in {first_label!r} "
                            f"(e.g. {list(missing[:5])}), {len(extra)} only in {label!r} (e.g. {list(extra[:5])})")
    if problems:
        raise TranspertInputError("gene sets differ (use harmonize_genes): " + "; ".join(problems))
    return first
