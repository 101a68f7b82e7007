"""The streamed engine's first pass on a file of unknown scale: pseudo-bulk and scale check in one read.

A file's scale used to be found by a scan of every stored value before the engine's two passes
(three reads of the file; ~15% of ``transpert summarize`` at VCC size). float32 values are
log1p when every value lies in [0, LOG1P_MAX), some have a fractional part and the rows agree
(:func:`transpert.data.normalize.scale_from_summary`); the pseudo-bulk kernel that also checks
values (:func:`transpert.kernels.pseudobulk_checked_csr`) tells that from the same read that
accumulates the sums. When the verdict is not "log1p" (counts: their library sizes need the
scan anyway; an invalid value: the scan's error message) nothing is kept and the caller takes
the usual road; a counts file is recognised at its first chunk holding values, so it pays for
one chunk only. Scale: stored values in; log1p-scale accumulators out.
"""

from __future__ import annotations

import numpy as np

from transpert._parallel import numba_threads
from transpert._progress import Progress


def pseudobulk_checked_stream(cells, groups, chunk_rows: int, n_threads: int, de: bool,
                              show_progress=None):
    """Pass A over ``cells`` (a :class:`transpert.data.CellSource` of float32 values whose scale
    is not declared) as if log1p, checking the values on the way. Returns the accumulators and
    records the verdict on ``cells`` (:meth:`CellSource.set_checked_scale`) when the values are
    log1p; returns None (accumulators dropped) otherwise."""
    from transpert.data import _row_scale
    from transpert.data.schema import FRACTION_EPS, LOG1P_MAX
    from transpert.kernels import plan_row_parts, pseudobulk_checked_csr
    from transpert.summarize._accumulators import Accumulators, canonical_csr, raise_bad_indices, scale32

    if np.dtype(cells.dtype) != np.float32:
        return None
    acc = Accumulators.new(groups, cells.n_vars, False, pdex_means=de)
    scale32 = scale32(groups)
    n_frac = 0
    seen_values = False
    evidence = _row_scale.empty_evidence()
    canonical = True
    eps, upper = np.float32(FRACTION_EPS), np.float32(LOG1P_MAX)
    with Progress(cells.n_obs, "pseudo-bulk", unit="cells", show=show_progress) as bar, \
            numba_threads(n_threads) as n_parts:
        for start, stop, block in cells.iter_chunks(chunk_rows, show_progress=False):
            C = canonical_csr(block)
            canonical = canonical and C is block
            codes = groups.codes[start:stop]
            _, part_ptr, part_rows = plan_row_parts(codes, C.indptr, len(groups.labels), n_parts)
            n_out, frac, _unsorted, n_bad = pseudobulk_checked_csr(
                C.data, C.indices, C.indptr, codes, part_ptr, part_rows, np.flatnonzero(codes < 0),
                acc.sums, acc.nonzero, scale32, acc.sums32_arg, eps, upper)
            raise_bad_indices(n_bad, C.shape[1])
            if n_out:
                return None  # out of range: the scan decides (counts, or its error)
            n_frac += frac
            if C.nnz and not seen_values:
                seen_values = True
                if not frac:
                    return None  # integers: most likely counts, which need the scan's library sizes
            evidence = _row_scale.merge_evidence(evidence, _row_scale.row_evidence(C, start))
            bar.update(stop - start)
    if not n_frac:
        return None
    _row_scale.check_rows_agree(evidence, str(cells.path) if cells.path is not None else cells.name)
    cells.set_checked_scale("log1p")
    acc.info.update(passes=1, chunk_rows=chunk_rows, scale_check="in the pseudo-bulk pass",
                    canonical_chunks=canonical)
    return acc
