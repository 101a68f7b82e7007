"""Scale detection and the challenge's normalisation (median library size, natural log1p).

The normalisation reproduces ``scanpy.pp.normalize_total(target_sum=None)`` followed by
``scanpy.pp.log1p`` (scanpy 1.11), which is what cell-eval applies to count data, including
scanpy's details:

- integer matrices are cast to float32 first; float64 stays float64 (we return float32 at the
  end, the only extra rounding);
- the per-cell scale factor is ``library_size / target`` in the working dtype, and values are
  divided by it (not multiplied by its inverse), then ``log1p`` in the working dtype;
- cells with zero counts are divided by 1 (they stay all-zero, no NaN);
- the default target is the median library size. scanpy computes it over *all* cells for a
  sparse matrix (CSR, and CSC which it converts to CSR) but over cells with non-zero counts for
  a dense one; :func:`median_library_size` follows the same rule through ``include_zero_cells``.
  The two agree unless the file has empty cells.

Because the same float32 operations run in the same order, a chunk normalised with the file's
library sizes and target is bit-identical to the corresponding rows of scanpy's whole-file result.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from transpert._errors import TranspertInputError
from transpert.data.schema import FRACTION_EPS, LOG1P_MAX

#: a value whose fractional part exceeds this is not a count (cell-eval's ``guess_is_lognorm``).


def _values(X) -> np.ndarray:
    """The stored values of a matrix (sparse: ``.data``; dense: all entries)."""
    if sp.issparse(X):
        return np.asarray(X.data)
    return np.asarray(X).ravel()


def working_dtype(dtype) -> np.dtype:
    """scanpy's working dtype: integers become float32; floats keep their precision (>= float32)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize >= 8:
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def value_summary(values: np.ndarray) -> dict:
    """Counts of the facts scale detection and validation need, from one array of values."""
    values = np.asarray(values)
    out = {"n": int(values.size), "n_nan": 0, "n_inf": 0, "n_negative": 0, "n_fractional": 0,
           "min": np.inf, "max": -np.inf, "first_fractional": None, "first_negative": None}
    if values.size == 0:
        return out
    if values.dtype.kind in "iub":
        out["min"] = float(values.min())
        out["max"] = float(values.max())
        out["n_negative"] = int((values < 0).sum())
        if out["n_negative"]:
            out["first_negative"] = float(values[values < 0][0])
        return out
    if values.dtype in (np.float32, np.float64):
        return _value_summary_numba(values.ravel(), out)
    nan = np.isnan(values)
    inf = np.isinf(values)
    out["n_nan"] = int(nan.sum())
    out["n_inf"] = int(inf.sum())
    finite = values[~(nan | inf)] if (out["n_nan"] or out["n_inf"]) else values
    if finite.size:
        out["min"] = float(finite.min())
        out["max"] = float(finite.max())
        neg = finite < 0
        out["n_negative"] = int(neg.sum())
        if out["n_negative"]:
            out["first_negative"] = float(finite[neg][0])
        # np.modf keeps the sign: -0.5 has fraction -0.5, which is not > eps (as cell-eval).
        frac = np.modf(finite)[0] > FRACTION_EPS
        out["n_fractional"] = int(frac.sum())
        if out["n_fractional"]:
            out["first_fractional"] = float(finite[frac][0])
    return out


def _value_summary_numba(values: np.ndarray, out: dict) -> dict:
    """:func:`value_summary` of a float32/float64 array in one parallel numba pass (no copies)."""
    from transpert.kernels import value_facts

    counts, extremes, firsts = value_facts(values, values.dtype.type(FRACTION_EPS))
    out.update(n_nan=int(counts[0]), n_inf=int(counts[1]), n_negative=int(counts[2]),
               n_fractional=int(counts[3]), min=float(extremes[0]), max=float(extremes[1]))
    if firsts[0] >= 0:
        out["first_negative"] = float(values[firsts[0]])
    if firsts[1] >= 0:
        out["first_fractional"] = float(values[firsts[1]])
    return out


def merge_summaries(a: dict, b: dict) -> dict:
    """Combine two :func:`value_summary` results (for streaming over chunks)."""
    out = {k: a[k] + b[k] for k in ("n", "n_nan", "n_inf", "n_negative", "n_fractional")}
    out["min"] = min(a["min"], b["min"])
    out["max"] = max(a["max"], b["max"])
    for k in ("first_fractional", "first_negative"):
        out[k] = a[k] if a[k] is not None else b[k]
    return out


def scale_from_summary(summary: dict, file: str = "<memory>") -> str:
    """``"counts"`` or ``"log1p"`` from a value summary (the cell-eval rule); raises when neither.

    The one wording of these errors for every command (the evaluation's checks call it too).
    ``first_negative`` / ``first_fractional`` (an example value) may be None.
    """
    if summary["n_nan"] or summary["n_inf"]:
        raise TranspertInputError(
            f"{file}: expression matrix has {summary['n_nan']} NaN and {summary['n_inf']} infinite "
            "value(s); remove or impute them"
        )
    if summary["n_negative"]:
        example = summary.get("first_negative")
        example = summary.get("min") if example is None else example
        raise TranspertInputError(
            f"{file}: expression matrix has {summary['n_negative']} negative value(s)"
            + (f", e.g. {float(example)!r}" if example is not None else "")
            + "; expected raw counts or log1p values >= 0"
        )
    from transpert.data._row_scale import check_rows_agree

    # rows disagreeing (counts beside log1p, counts x a constant) is refused whatever the range
    check_rows_agree(summary.get("rows"), file)
    if not summary["n_fractional"]:
        return "counts"
    if summary["max"] >= LOG1P_MAX:
        example = summary.get("first_fractional")
        raise TranspertInputError(
            f"{file}: expression matrix has non-integer values"
            + (f" (e.g. {float(example):.6g})" if example is not None else "")
            + f", so not raw counts, but its maximum is {float(summary['max']):.6g} >= {LOG1P_MAX:g}: "
            f"log1p-normalised values lie in [0, {LOG1P_MAX:g}); mixed scales? Pass raw integer "
            "counts or log1p of median-library-size normalised counts"
        )
    return "log1p"


def detect_scale(X, file: str = "<memory>") -> str:
    """Return ``"counts"`` (no value with a fractional part > 1e-3) or ``"log1p"``.

    Takes a matrix in any scale (dense or sparse). Raises :class:`TranspertInputError` on NaN,
    infinite or negative values, on non-integer values outside [0, 15), and on rows that
    disagree (integer rows beside non-integer ones, counts times a constant; see
    :mod:`transpert.data._row_scale`).
    """
    from transpert.data._row_scale import row_evidence

    if hasattr(X, "X") and hasattr(X, "obs"):  # an AnnData
        X = X.X
    summary = value_summary(_values(X))
    if not (summary["n_nan"] or summary["n_inf"] or summary["n_negative"]) and np.ndim(X) == 2:
        summary["rows"] = row_evidence(X)
    return scale_from_summary(summary, file)


def default_include_zero_cells(X) -> bool:
    """scanpy 1.11's median rule for this matrix: all cells if sparse, non-zero cells if dense."""
    return bool(sp.issparse(X))


def library_sizes_of(X, dtype=None) -> np.ndarray:
    """Per-cell total counts of a counts-scale matrix, in the working dtype (see module doc).

    Sums run in float64 (like scanpy's CSR kernel) and are then cast, so integer totals below
    2**24 are exact in float32.
    """
    dtype = working_dtype(X.dtype) if dtype is None else np.dtype(dtype)
    if sp.issparse(X):
        totals = np.asarray(X.sum(axis=1, dtype=np.float64)).ravel()
    else:
        totals = np.asarray(X).sum(axis=1, dtype=np.float64)
    return totals.astype(dtype, copy=False)


def median_library_size(sizes: np.ndarray, include_zero_cells: bool = True):
    """Median of per-cell library sizes, as scanpy picks ``target_sum``.

    ``include_zero_cells=True`` is scanpy's rule for sparse matrices (median over all cells);
    ``False`` its rule for dense ones (median over cells with non-zero counts). The result keeps
    the dtype of ``sizes`` (scanpy divides float32 by a float32 median).
    """
    sizes = np.asarray(sizes)
    if not include_zero_cells:
        sizes = sizes[sizes > 0]
    if sizes.size == 0:
        raise TranspertInputError("cannot normalise: every cell has zero counts")
    return sizes.dtype.type(np.median(sizes))


def log1p_scale_rows(data: np.ndarray, indptr: np.ndarray, totals: np.ndarray, target) -> np.ndarray:
    """scanpy's ``normalize_total`` + ``log1p`` on CSR rows, in place on ``data`` (counts in,
    log1p out): each row divided by ``total / target`` (1 for an empty row), then log1p.
    ``totals``: the rows' totals (:func:`transpert.kernels.row_totals_into`), ``target``: the median total of the
    whole matrix."""
    factor = totals / target
    factor = factor + (factor == 0)
    np.true_divide(data, np.repeat(factor, np.diff(indptr)), out=data)
    np.log1p(data, out=data)
    return data


def median_from_histogram(sizes: np.ndarray, counts: np.ndarray, include_zero_cells: bool = True):
    """:func:`median_library_size` from distinct library sizes and how many cells have each
    (pieces from several workers may repeat a size): the same value, without every cell's size.
    ``sizes`` are in the working dtype (the result keeps it)."""
    sizes = np.asarray(sizes)
    counts = np.asarray(counts, dtype=np.int64)
    distinct, inverse = np.unique(sizes, return_inverse=True)
    total = np.bincount(inverse.ravel(), weights=counts, minlength=len(distinct)).astype(np.int64)
    if not include_zero_cells:
        keep = distinct > 0
        distinct, total = distinct[keep], total[keep]
    n = int(total.sum())
    if n == 0:
        raise TranspertInputError("cannot normalise: every cell has zero counts")
    cum = np.cumsum(total)
    # the middle order statistics of the sorted sizes, through numpy's own median of them
    middle = [(n - 1) // 2, n // 2] if n % 2 == 0 else [n // 2]
    values = distinct[np.searchsorted(cum, np.asarray(middle) + 1)]
    return sizes.dtype.type(np.median(values.astype(sizes.dtype)))


def normalize_log1p(X, library_sizes: np.ndarray | None = None, target_sum: float | None = None,
                    *, include_zero_cells: bool | None = None, check: bool = True,
                    dtype=np.float32) -> sp.csr_matrix:
    """Normalise a counts-scale matrix (or chunk of rows) to log1p of median-library-size counts.

    Takes raw counts (CSR, CSC or dense; integer or float; explicit zeros allowed) and returns
    a float32 CSR matrix on the log1p scale, equal to scanpy ``normalize_total(target_sum=None)``
    + ``log1p`` on the same matrix. For a chunk of a larger file pass the file's
    ``library_sizes`` for these rows and its ``target_sum`` (see :class:`CellSource`).

    ``include_zero_cells`` chooses the median rule when ``target_sum`` is None (default: scanpy's
    rule for this matrix's format). ``check`` verifies the input is on the counts scale.
    ``dtype``: of the values returned (float32 by default; float64 keeps a float64 file's
    precision, as scanpy does).
    """
    if check:
        scale = detect_scale(X)
        if scale != "counts":
            raise TranspertInputError(
                "normalize_log1p takes raw counts but the matrix has non-integer values "
                "(it looks log1p-normalised already)"
            )
    wdt = working_dtype(X.dtype)
    if include_zero_cells is None:
        include_zero_cells = default_include_zero_cells(X)
    X = X.tocsr() if sp.issparse(X) else sp.csr_matrix(np.asarray(X))
    if library_sizes is None:
        sizes = library_sizes_of(X, wdt)
    else:
        sizes = np.asarray(library_sizes).astype(wdt, copy=False)
        if sizes.shape != (X.shape[0],):
            raise TranspertInputError(
                f"library_sizes has shape {sizes.shape}, expected ({X.shape[0]},) (one per row)"
            )
    if target_sum is None:
        target = median_library_size(sizes, include_zero_cells)
    else:
        target = wdt.type(target_sum)
    factor = sizes / target
    factor = factor + (factor == 0)  # scanpy: zero-count cells are divided by 1
    data = X.data.astype(wdt, copy=True)
    data /= np.repeat(factor, np.diff(X.indptr))
    np.log1p(data, out=data)
    return sp.csr_matrix((data.astype(dtype, copy=False), X.indices.copy(), X.indptr.copy()),
                         shape=X.shape)

