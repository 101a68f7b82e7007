"""One rule for a matrix's scale, decided per row from evidence, streamed in row chunks.

cell-eval's rule looks at the whole file: no value with a fractional part means raw counts,
otherwise log1p with values in [0, 15). On its own it accepts files whose rows disagree: half
the cells raw counts and half log1p passes whenever the counts stay below 15 (common in shallow
data), and counts times 0.5 are read as log1p. So every row is classified as well
(:func:`transpert.kernels.row_kinds`):

- integral: every non-zero value is an integer (a row of raw counts);
- grid: non-integer, but every value is an integer multiple of the row's smallest value, with
  at least three distinct multiples (counts times a constant; a log1p row never is, since
  log1p(k u) / log1p(u) is not an integer);
- fractional: any other non-integer row (log1p of normalised counts, or a model's output);
- empty: no non-zero value (fits every scale).

A file is refused, naming rows, when it has both integral and non-integer rows, or when more
than :data:`GRID_SHARE` of its non-integer rows are grid rows (a chance grid row in a log1p file
needs three ratios within :data:`GRID_TOL` of integers, far rarer than that). The log1p
signature of a normalised row (expm1 of the row summing to the file's target) is not required:
a log1p file restricted to a gene panel after normalising, or a model's prediction, has none.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from transpert._errors import TranspertInputError

#: a ratio to the row's smallest value within this of an integer is "on the grid"
GRID_TOL = 2e-3
#: ratios above this are not tested (float32 rounding makes their integrality meaningless)
MAX_RATIO = 1000.0
#: share of non-integer rows that may be grid rows by chance before a file is refused
GRID_SHARE = 0.01
#: rows named in messages, per kind
N_LISTED = 5

_KINDS = ("integral", "fractional", "grid")


def empty_evidence() -> dict:
    return {"n_rows": 0, **{f"n_{k}": 0 for k in _KINDS}, **{f"{k}_rows": [] for k in _KINDS}}


def row_evidence(X, start: int = 0) -> dict:
    """The row kinds of a matrix or chunk of rows (CSR, CSC or dense); ``start``: the first
    row's position in the file, so the rows named are the file's."""
    from transpert.kernels import row_kinds
    from transpert.data.schema import FRACTION_EPS
    from transpert.kernels._row_scale import ROW_FRACTIONAL, ROW_GRID, ROW_INTEGRAL

    if sp.issparse(X):
        X = X.tocsr() if X.format != "csr" else X
        indptr, data = X.indptr, X.data
    else:
        X = np.asarray(X)
        if X.ndim != 2:
            X = X.reshape(X.shape[0], -1)
        data = np.ascontiguousarray(X).ravel()
        indptr = np.arange(0, data.size + 1, max(1, X.shape[1]), dtype=np.int64)[: X.shape[0] + 1]
    n = indptr.size - 1
    out = empty_evidence()
    out["n_rows"] = int(n)
    if n == 0:
        return out
    if data.dtype.kind in "iub":  # integers: every non-empty row is a row of counts
        kinds = np.where(np.diff(indptr) > 0, ROW_INTEGRAL, 0).astype(np.int8)
    else:
        if data.dtype not in (np.float32, np.float64):
            data = data.astype(np.float64)
        kinds = np.empty(n, dtype=np.int8)
        row_kinds(indptr, data, float(FRACTION_EPS), GRID_TOL, MAX_RATIO, kinds)
    for name, code in (("integral", ROW_INTEGRAL), ("fractional", ROW_FRACTIONAL), ("grid", ROW_GRID)):
        hit = kinds == code
        out[f"n_{name}"] = int(hit.sum())
        if out[f"n_{name}"]:
            out[f"{name}_rows"] = (np.flatnonzero(hit)[:N_LISTED] + start).tolist()
    return out


def merge_evidence(a: dict, b: dict) -> dict:
    """Combine the evidence of two consecutive chunks."""
    out = {"n_rows": a["n_rows"] + b["n_rows"]}
    for k in _KINDS:
        out[f"n_{k}"] = a[f"n_{k}"] + b[f"n_{k}"]
        out[f"{k}_rows"] = (list(a[f"{k}_rows"]) + list(b[f"{k}_rows"]))[:N_LISTED]
    return out


def _rows(ev: dict, kinds: tuple[str, ...]) -> str:
    rows = sorted(r for k in kinds for r in ev[f"{k}_rows"])[:N_LISTED]
    n = sum(ev[f"n_{k}"] for k in kinds)
    return ", ".join(map(str, rows)) + (" ..." if n > len(rows) else "")


def check_rows_agree(ev: dict | None, file: str) -> None:
    """Raise :class:`TranspertInputError` when the rows' evidence disagrees (see module doc)."""
    if not ev:
        return
    n_int, n_frac, n_grid = ev["n_integral"], ev["n_fractional"], ev["n_grid"]
    if n_int and (n_frac or n_grid):
        raise TranspertInputError(
            f"{file}: the cells are on different scales: {n_int} cell(s) hold only integers (raw "
            f"counts), e.g. rows {_rows(ev, ('integral',))} (0-based), and {n_frac + n_grid} hold "
            f"non-integer values (log1p?), e.g. rows {_rows(ev, ('fractional', 'grid'))}; every "
            "cell must be on one scale: all raw counts, or all log1p-normalised")
    if n_grid and n_grid > GRID_SHARE * (n_frac + n_grid):
        raise TranspertInputError(
            f"{file}: {n_grid} of {n_frac + n_grid} cells hold integer multiples of one value "
            f"(e.g. rows {_rows(ev, ('grid',))}, 0-based): counts multiplied by a constant "
            "(e.g. counts x 0.5), not log1p; pass raw integer counts, or log1p of "
            "median-library-size normalised counts")
