"""In-memory references for the evaluation's streamed input handling (tests only).

Each reimplements one step of cell-eval's input handling on a whole matrix, the way the
library used to do it in memory, so the streamed code can be checked against it:
scale detection (``cell_eval.utils.guess_is_lognorm``), scanpy's ``normalize_total`` +
``log1p`` (bit for bit) and per-label float32 means of float64 sums.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from transpert.data.normalize import log1p_scale_rows
from transpert.data.schema import FRACTION_EPS
from transpert.evaluate._inputs import check_value_facts
from transpert.kernels import row_totals_into


def _values(X) -> np.ndarray:
    return X.data if sp.issparse(X) else np.asarray(X).ravel()


def detect_scale(X, name: str) -> str:
    """``"counts"`` or ``"log1p"`` by cell-eval's rule; raises on out-of-range fractional data."""
    values = _values(X)
    if not values.size:
        return "counts"
    n_nan = int(np.isnan(values).sum())
    frac = np.modf(values)[0]
    return check_value_facts(name, n_nan=n_nan, n_negative=int((values < 0).sum()),
                             vmin=float(np.nanmin(values)) if n_nan < values.size else np.nan,
                             fractional=bool((frac > FRACTION_EPS).any()),
                             vmax=float(np.nanmax(values)) if n_nan < values.size else np.nan)


def normalize_log1p(X, inplace: bool = False):
    """scanpy ``normalize_total(target_sum=None)`` then ``log1p``, bit for bit; returns a copy.

    Counts scale in, log1p scale out (float32 for integer or float32 input). CSR/CSC input
    gives CSR output (target = median of all cells' totals, as scanpy's CSR path), dense gives
    dense (median of the non-zero totals, scanpy's dense path). ``inplace`` reuses a float CSR
    matrix's data array (for matrices the caller owns: saves one copy of the data).
    """
    if sp.issparse(X):
        X = sp.csr_matrix(X)  # CSC -> CSR, as scanpy does
        data = X.data
        if np.issubdtype(data.dtype, np.integer) or data.dtype == np.bool_:
            data = data.astype(np.float32)
        elif not inplace:
            data = data.copy()
        counts = np.zeros(X.shape[0], dtype=data.dtype)
        row_totals_into(X.indptr, data, counts)
        log1p_scale_rows(data, X.indptr, counts, np.median(counts))
        if inplace:
            X.data = data
            return X
        return sp.csr_matrix((data, X.indices.copy(), X.indptr.copy()), shape=X.shape)
    X = np.asarray(X)
    if np.issubdtype(X.dtype, np.integer) or X.dtype == np.bool_:
        X = X.astype(np.float32)
    counts = X.sum(axis=1)
    target = np.median(counts[counts > 0])
    factor = counts / target
    factor = factor + (factor == 0)
    out = np.true_divide(X, factor[:, None])
    np.log1p(out, out=out)
    return out


def group_means(X, labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(len(groups), n_genes) float32 means of X's rows per label (float64 accumulation, row by
    row in file order, as polars' group_by().mean() over the densified float32 matrix returns).

    Scale in = scale out (log1p here). Explicitly stored zeros are harmless.
    """
    codes = pd.Index(groups).get_indexer(labels).astype(np.int64)
    n = np.bincount(codes, minlength=len(groups)).astype(np.float64)
    sums = np.zeros((len(groups), X.shape[1]), dtype=np.float64)
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        rows = np.repeat(codes, np.diff(X.indptr))
        np.add.at(sums, (rows, X.indices), X.data.astype(np.float64))
    else:
        np.add.at(sums, codes, np.asarray(X, dtype=np.float64))
    return (sums / n[:, None]).astype(np.float32)
