"""Reading cells: a backed h5ad (or an in-memory AnnData) in row chunks, in the canonical schema.

:class:`CellSource` never holds the whole expression matrix: it keeps obs, var and the CSR row
pointer (or CSC column pointer), and reads rows ``[start, stop)`` on demand through a storage
back-end (:mod:`transpert.data.storage`: h5ad CSR / CSC / dense, or in memory). It decides the
file's scale (raw counts or log1p) and yields chunks normalised to log1p of median-library-size
counts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from transpert._errors import TranspertInputError
from transpert._progress import Progress
from transpert.data import normalize as _norm
from transpert.data.schema import Schema
from transpert.data.storage import H5Matrix, MemoryMatrix, default_chunk_rows

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------- scan statistics
@dataclass
class ScanStats:
    """What one streaming pass over the (filtered) cells learns: values and library sizes."""

    values: dict
    library_sizes: np.ndarray  # float64 row sums of the stored values
    nnz: int
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------------- CellSource
class CellSource:
    """One dataset's cells, backed on disk (or in memory), in the canonical schema.

    Attributes: ``path`` (None for in-memory data), ``name`` (manifest name or file stem),
    ``schema``, ``entry`` (manifest entry or None), ``n_obs``, ``n_vars``, ``var_names``,
    ``var``, ``obs`` (canonical, after any cell filter), ``format`` (stored: csr/csc/dense),
    ``dtype`` (stored), ``scale``. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, matrix, obs, var, *, path: Path | None, schema: Schema, name: str,
                 entry: Any = None, show_progress: bool | None = False):
        self._matrix = matrix
        self.path = path
        self.schema = schema
        self.name = name
        self.entry = entry
        self.show_progress = show_progress
        label = str(path) if path is not None else name
        self._label = label
        if obs.shape[0] != matrix.shape[0] or var.shape[0] != matrix.shape[1]:
            raise TranspertInputError(
                f"{label}: matrix shape {matrix.shape} does not match obs ({obs.shape[0]}) x var ({var.shape[0]})"
            )
        if schema.x_format is not None and schema.x_format != matrix.format:
            logger.warning("%s: schema says X is %s but it is stored as %s", label, schema.x_format,
                           matrix.format)
        self.raw_obs = obs  # as stored, before the schema and filter (validation reads it)
        self.raw_var = var
        mask = schema.cell_mask(obs, label)
        self._rows = None if mask is None else np.flatnonzero(mask)
        kept = obs if mask is None else obs.iloc[self._rows]
        self.obs = schema.canonical_obs(kept, label)
        self.var = schema.canonical_var(var, label)
        self._stats: ScanStats | None = None
        self._checked_scale: str | None = None

    # -- shape and names
    @property
    def n_obs(self) -> int:
        return self.obs.shape[0]

    @property
    def n_vars(self) -> int:
        return self.var.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_obs, self.n_vars)

    @property
    def var_names(self):
        return self.var.index

    @property
    def format(self) -> str:
        return self._matrix.format

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._matrix.dtype)

    def __repr__(self) -> str:
        where = self.path if self.path is not None else "memory"
        return f"CellSource({self.name!r}, {self.n_obs} cells x {self.n_vars} genes, {self.format}, {where})"

    # -- chunking
    def default_chunk_rows(self) -> int:
        """Rows per chunk so that a chunk holds about ``TARGET_CHUNK_ENTRIES`` stored entries."""
        return default_chunk_rows(self._matrix)

    def iter_chunks(self, chunk_rows: int | None = None, *, show_progress: bool | None = None
                    ) -> Iterator[tuple[int, int, sp.csr_matrix]]:
        """Yield ``(start, stop, csr)``: raw stored values of cells ``[start, stop)`` of ``obs``.

        Rows are in ``obs`` order (after the cell filter); every chunk has ``chunk_rows`` rows but
        the last. Values are as stored (any scale, stored dtype, explicit zeros kept).
        """
        chunk_rows = self.default_chunk_rows() if chunk_rows is None else int(chunk_rows)
        if chunk_rows < 1:
            raise TranspertInputError(f"chunk_rows must be >= 1, got {chunk_rows}")
        show = self.show_progress if show_progress is None else show_progress
        with Progress(self.n_obs, f"reading {self.name}", unit="cells", show=show) as progress:
            for start, stop, block in self._iter_blocks(chunk_rows):
                yield start, stop, block
                progress.update(stop - start)

    def read_cells(self, start: int, stop: int) -> sp.csr_matrix:
        """Raw stored values of cells ``[start, stop)`` of ``obs`` (after the cell filter) as
        CSR, read in one piece: for a caller that knows which rows belong together (one
        perturbation's cells) and wants exactly them."""
        if not 0 <= start <= stop <= self.n_obs:
            raise TranspertInputError(f"{self._label}: rows [{start}, {stop}) are outside "
                                      f"the {self.n_obs} cells")
        if self._rows is None:
            return self._matrix.read_rows(start, stop)
        rows = self._rows[start:stop]
        if rows.size == 0:
            return sp.csr_matrix((0, self.n_vars), dtype=self.dtype)
        first = int(rows[0])
        return self._matrix.read_rows(first, int(rows[-1]) + 1)[rows - first]

    def _iter_blocks(self, chunk_rows: int) -> Iterator[tuple[int, int, sp.csr_matrix]]:
        m = self._matrix
        if self._rows is None:
            for start in range(0, m.shape[0], chunk_rows):
                stop = min(start + chunk_rows, m.shape[0])
                yield start, stop, m.read_rows(start, stop)
            return
        # Filtered: read the file in blocks of chunk_rows file rows (skipping blocks with no kept
        # cell), keep the filtered rows, and re-cut them into chunks of exactly chunk_rows rows.
        rows = self._rows
        pending: list[sp.csr_matrix] = []
        n_pending = 0
        emitted = 0
        first, last = int(rows[0]), int(rows[-1]) + 1
        for fstart in range(first, last, chunk_rows):
            fstop = min(fstart + chunk_rows, last)
            lo, hi = np.searchsorted(rows, [fstart, fstop])
            if lo == hi:
                continue
            block = m.read_rows(fstart, fstop)[rows[lo:hi] - fstart]
            pending.append(block)
            n_pending += block.shape[0]
            while n_pending >= chunk_rows:
                merged = sp.vstack(pending, format="csr") if len(pending) > 1 else pending[0]
                out, rest = merged[:chunk_rows], merged[chunk_rows:]
                yield emitted, emitted + chunk_rows, out
                emitted += chunk_rows
                pending, n_pending = ([rest], rest.shape[0]) if rest.shape[0] else ([], 0)
        if n_pending:
            merged = sp.vstack(pending, format="csr") if len(pending) > 1 else pending[0]
            yield emitted, emitted + n_pending, merged

    # -- one streaming pass: value facts and library sizes
    def scan(self, chunk_rows: int | None = None) -> ScanStats:
        """One pass over the cells: value summary (NaN, inf, negatives, fractions, range) and
        per-cell library sizes (float64 row sums). Cached."""
        if self._stats is None:
            from transpert.data import _row_scale

            summary = _norm.value_summary(np.empty(0, dtype=self.dtype))
            rows = _row_scale.empty_evidence()
            sizes = np.empty(self.n_obs, dtype=np.float64)
            nnz = 0
            show = self.show_progress
            with Progress(self.n_obs, f"scanning {self.name}", unit="cells", show=show) as progress:
                for start, stop, block in self._iter_blocks(chunk_rows or self.default_chunk_rows()):
                    summary = _norm.merge_summaries(summary, _norm.value_summary(block.data))
                    rows = _row_scale.merge_evidence(rows, _row_scale.row_evidence(block, start))
                    sizes[start:stop] = np.asarray(block.sum(axis=1, dtype=np.float64)).ravel()
                    nnz += block.nnz
                    progress.update(stop - start)
            summary["rows"] = rows  # the per-row scale evidence (transpert.data._row_scale)
            self._stats = ScanStats(values=summary, library_sizes=sizes, nnz=nnz)
        return self._stats

    @property
    def scale(self) -> str:
        """``"counts"`` or ``"log1p"``: declared by the schema, else detected in a streaming pass."""
        if self.schema.counts is not None:
            return "counts" if self.schema.counts else "log1p"
        if self._checked_scale is not None:
            return self._checked_scale
        return _norm.scale_from_summary(self.scan().values, self._label)

    def set_checked_scale(self, scale: str) -> None:
        """Record ``"log1p"`` as the scale when a caller has checked every stored value by the
        rules of :func:`transpert.data.normalize.scale_from_summary` in its own read (the
        summaries engine's first pass does), so :attr:`scale` need not scan the file again."""
        if scale != "log1p":
            raise ValueError("only a log1p verdict can be recorded (counts need the library sizes of a scan)")
        self._checked_scale = scale

    # -- normalisation
    def normalization(self) -> dict:
        """How :meth:`iter_log1p_chunks` normalises: scale, median rule and target library size."""
        scale = self.scale
        if scale == "log1p":
            return {"input_scale": "log1p", "method": "none (already log1p)"}
        wdt = _norm.working_dtype(self.dtype)
        stats = self.scan()
        # Declared counts must really be counts: the same rule as detection.
        detected = _norm.scale_from_summary(stats.values, self._label)
        if detected != "counts":
            raise TranspertInputError(
                f"{self._label}: the schema says X holds raw counts but it has non-integer values "
                f"(e.g. {stats.values['first_fractional']!r})"
            )
        include_zero = self.format != "dense"  # scanpy 1.11's rule, see normalize.py
        target = _norm.median_library_size(stats.library_sizes.astype(wdt), include_zero)
        return {"input_scale": "counts", "method": "normalize_total(target_sum=median)+log1p",
                "target_sum": float(target), "median_over": "all cells" if include_zero else "non-empty cells",
                "working_dtype": str(wdt)}

    def iter_log1p_chunks(self, chunk_rows: int | None = None, *, show_progress: bool | None = None,
                          keep_float64: bool = False) -> Iterator[tuple[int, int, sp.csr_matrix]]:
        """Yield ``(start, stop, csr float32)`` on the log1p scale (median library size, log1p).

        Counts take two streaming passes: library sizes and their median (cached after the first
        call), then each chunk normalised with them, equal to scanpy on the whole file. log1p
        data is passed through as float32. ``keep_float64``: a float64 file's values stay
        float64 (scanpy keeps them so; the reference scorers then rank float64 values).
        """
        for start, stop, log1p, _raw in self.iter_log1p_and_raw_chunks(
                chunk_rows, show_progress=show_progress, keep_float64=keep_float64):
            yield start, stop, log1p

    def iter_log1p_and_raw_chunks(self, chunk_rows: int | None = None, *,
                                  show_progress: bool | None = None, keep_float64: bool = False
                                  ) -> Iterator[tuple[int, int, sp.csr_matrix, sp.csr_matrix]]:
        """Yield ``(start, stop, log1p, raw)``: each chunk as :meth:`iter_log1p_chunks` gives it
        and as stored (:meth:`iter_chunks`), both from one read of the file (a consumer that
        needs the counts too, such as the pseudo-bulk's count sums, need not read twice)."""
        info = self.normalization()
        out = self.log1p_dtype(keep_float64)
        if info["input_scale"] == "log1p":
            for start, stop, block in self.iter_chunks(chunk_rows, show_progress=show_progress):
                # no copy when stored in the output dtype: the chunk is fresh from the file, and
                # the consumers read it only
                yield start, stop, block.astype(out, copy=False), block
            return
        wdt = _norm.working_dtype(self.dtype)
        sizes = self.scan().library_sizes.astype(wdt)
        target = wdt.type(info["target_sum"])
        for start, stop, block in self.iter_chunks(chunk_rows, show_progress=show_progress):
            # normalize_log1p copies the values, so ``block`` stays the stored counts
            yield start, stop, _norm.normalize_log1p(block, library_sizes=sizes[start:stop],
                                                     target_sum=target, check=False,
                                                     dtype=out), block

    def log1p_dtype(self, keep_float64: bool = False) -> np.dtype:
        """dtype of the log1p chunks: float32, or float64 for a float64 file with ``keep_float64``."""
        if keep_float64 and np.dtype(self.dtype) == np.float64:
            return np.dtype(np.float64)
        return np.dtype(np.float32)

    # -- lifetime
    def close(self) -> None:
        self._matrix.close()

    def __enter__(self) -> "CellSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------- entry points
def _read_frame(group):
    from anndata.io import read_elem

    return read_elem(group)


def _schema_for(schema, entry) -> Schema:
    """The user's Schema wins; a user dict is laid over the manifest entry's mapping."""
    if isinstance(schema, Schema):
        return schema
    base = dict(entry.schema) if entry is not None else {}
    if schema is not None:
        base.update(schema)
    return Schema.from_dict(base)


@dataclass
class _Parts:
    """A dataset resolved but not yet mapped: matrix backend, raw obs/var, schema, origin."""

    matrix: Any
    obs: Any
    var: Any
    path: Path | None
    schema: Schema
    name: str
    entry: Any = None


def _open_parts(source, schema, manifest) -> _Parts:
    """Resolve a path / manifest name / AnnData to its matrix backend, raw obs and var, schema."""
    entry = None
    import anndata as ad

    if isinstance(source, ad.AnnData):
        if source.isbacked:
            source = Path(source.filename)
        else:
            sch = _schema_for(schema, None)
            if sch.matrix == "X":
                X = source.X
            else:
                layer = sch.matrix.split("/", 1)[1]
                if layer not in source.layers:
                    raise TranspertInputError(f"AnnData: no layer {layer!r} (layers: {list(source.layers)})")
                X = source.layers[layer]
            return _Parts(MemoryMatrix(X), source.obs, source.var, None, sch, "AnnData")
    if not isinstance(source, (str, os.PathLike)):
        raise TranspertInputError(f"cannot read cells from a {type(source).__name__}")
    path = Path(source)
    if not path.exists() and not str(source).endswith(".h5ad"):
        from transpert.data.manifest import Manifest, load_manifest

        man = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
        entry = man.get(str(source))
        path = entry.local_file()
    if not path.exists():
        raise TranspertInputError(f"{path}: no such file")
    sch = _schema_for(schema, entry)
    from transpert._h5files import reading

    with reading(path):
        matrix = H5Matrix(path, sch.matrix)
    try:
        with reading(path):
            obs = _read_frame(matrix.file["obs"])
            var = _read_frame(matrix.file["var"])
    except Exception:
        matrix.close()
        raise
    return _Parts(matrix, obs, var, path, sch, entry.name if entry is not None else path.stem, entry)


def _cells_from_parts(parts: _Parts, show_progress: bool | None = False) -> CellSource:
    try:
        return CellSource(parts.matrix, parts.obs, parts.var, path=parts.path, schema=parts.schema,
                          name=parts.name, entry=parts.entry, show_progress=show_progress)
    except Exception:
        parts.matrix.close()
        raise


def open_cells(source, *, schema: Schema | dict | None = None, manifest=None,
               show_progress: bool | None = False) -> CellSource:
    """Open a dataset's cells without loading the matrix.

    Parameters
    ----------
    source
        An h5ad path, a manifest dataset name (local ``path`` or fetched into the cache), an
        AnnData (in memory, or backed: then its file is opened), or a :class:`CellSource`
        (returned as is).
    schema
        A :class:`Schema`, or a dict laid over the manifest's mapping; default: the manifest's
        mapping for a name, the canonical names for a path.
    manifest
        A :class:`~transpert.data.manifest.Manifest` or an extra manifest file.
    show_progress
        Show a progress bar while the file is scanned.

    Returns
    -------
    CellSource
        The cells in the canonical schema (obs ``target_gene``, control ``non-targeting``, gene
        symbols as var names), read in row chunks on demand. Scale as stored (raw counts or
        log1p); :meth:`CellSource.iter_log1p_chunks` gives log1p of median-library-size
        normalised counts. Use it as a context manager to close the file.

    Examples
    --------
    >>> from transpert.data import open_cells
    >>> with open_cells("datlinger_jurkat_stimulated") as cells:  # doctest: +SKIP
    ...     for start, stop, X in cells.iter_log1p_chunks():
    ...         ...
    """
    if isinstance(source, CellSource):
        if schema is not None:
            raise TranspertInputError("open_cells: pass a schema when opening, not with a CellSource")
        return source
    return _cells_from_parts(_open_parts(source, schema, manifest), show_progress)


def read_cells(source, *, schema: Schema | dict | None = None, manifest=None):
    """Load a (small) dataset fully into memory as canonical AnnData with CSR X (stored values).

    Parameters
    ----------
    source, schema, manifest
        As :func:`open_cells`: a path, manifest name, AnnData or CellSource, and how its fields
        map onto the canonical schema.

    Returns
    -------
    anndata.AnnData
        Cells x genes, CSR, obs ``target_gene`` and var names = gene symbols. The scale is
        unchanged (raw counts stay raw counts; log1p stays log1p); ``uns["transpert_source"]``
        records where it came from.

    Examples
    --------
    >>> from transpert.data import read_cells
    >>> cells = read_cells("papalexi_thp1")  # doctest: +SKIP
    >>> cells.shape  # doctest: +SKIP
    (20729, 299)
    """
    import anndata as ad

    with open_cells(source, schema=schema, manifest=manifest) as cells:
        blocks = [block for _, _, block in cells.iter_chunks()]
        if blocks:
            X = sp.vstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]
        else:
            X = sp.csr_matrix(cells.shape, dtype=cells.dtype)
        adata = ad.AnnData(X=X, obs=cells.obs.copy(), var=cells.var.copy())
        adata.uns["transpert_source"] = {
            "name": cells.name,
            "path": "" if cells.path is None else str(cells.path),
            "schema": {k: v for k, v in cells.schema.to_dict().items() if v is not None and not isinstance(v, dict)},
        }
        return adata
