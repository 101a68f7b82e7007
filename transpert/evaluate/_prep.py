"""Pack a prediction as a challenge submission (``.vcc``), as ``cell-eval prep`` 0.8.2 does.

``_cli/_prep.py:strip_anndata``: check the perturbation column and the control label, put the
genes in the order of ``gene_names.csv`` (reorder when only the order differs, error when the
sets differ), check the gene and cell dimensions, cast X to float32 (or float64) CSR, keep only
the perturbation (and optional cell-type) column with obs names ``0..n-1``, normalise raw counts
to log1p, write ``pred.h5ad``, compress it with zstd (``zstd -T0``, level 3) to
``pred.h5ad.zst``, and tar it with a ``watermark.txt`` containing ``vcc-prep``.

cell-eval reads the whole file into memory (a challenge-sized prediction, 200k cells x 18,080
genes, is several GB); :func:`prep` reads it in row chunks, twice, and writes the output chunk by
chunk, with the same result, bit for bit (``tests/test_evaluate_prep.py``): the same stored
entries in the same order (cell-eval's range check on log1p input sorts each row's indices, so
that case is written sorted). One deliberate difference: the output is always CSR, where
cell-eval keeps a CSC log1p input as CSC.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from transpert._errors import TranspertInputError
from transpert._io import CSRRowWriter, atomic_path, write_h5ad_metadata
from transpert._progress import Progress
from transpert.data.normalize import log1p_scale_rows, merge_summaries, value_summary
from transpert.data.storage import default_chunk_rows
from transpert.data.tables import read_gene_list
from transpert.evaluate._inputs import check_value_facts
from transpert.kernels import row_totals_into
from transpert.data.schema import CONTROL_LABEL, PERT_COL

EXPECTED_GENE_DIM = 18080
MAX_CELL_DIM = 200000
VALID_ENCODINGS = (64, 32)

logger = logging.getLogger("transpert.evaluate")


def _zstd_compressor():
    """A function compressing a file to ``<file>.zst`` and removing the original."""
    if shutil.which("zstd"):
        def run(path: Path) -> Path:
            subprocess.run(["zstd", "-q", "-T0", "-f", "--rm", str(path)], check=True)
            return Path(str(path) + ".zst")
        return run
    try:
        import zstandard
    except ImportError:
        raise TranspertInputError(
            "zstd is needed to pack a .vcc file and was not found: install the zstd command "
            "(apt-get install zstd, brew install zstd, conda install zstd) or the Python "
            "package (pip install zstandard)"
        ) from None

    def run(path: Path) -> Path:
        out = Path(str(path) + ".zst")
        with open(path, "rb") as src, open(out, "wb") as dst:
            zstandard.ZstdCompressor(level=3, threads=-1).copy_stream(src, dst)
        path.unlink()
        return out
    return run


@dataclass
class _Opened:
    """A prediction opened for row access: obs and genes in memory, the matrix read on demand."""

    name: str
    obs: pd.DataFrame
    var_names: pd.Index
    matrix: object  # transpert.data.storage.H5Matrix or MemoryMatrix


def _open(pred) -> _Opened:
    """Open an h5ad path backed (obs and var read, X not) or wrap an in-memory AnnData."""
    from transpert.data.storage import H5Matrix, MemoryMatrix

    if isinstance(pred, (str, os.PathLike)):
        from anndata.io import read_elem

        if not os.path.exists(pred):
            raise TranspertInputError(f"{pred}: no such file (the prediction)")
        from transpert._h5files import open_h5, reading

        with reading(pred), open_h5(pred) as f:
            obs, var = read_elem(f["obs"]), read_elem(f["var"])
        with reading(pred):
            matrix = H5Matrix(Path(pred), "X")
        return _Opened(str(pred), obs, pd.Index(var.index.astype(str)), matrix)
    return _Opened("prediction", pred.obs, pd.Index(pred.var_names.astype(str)), MemoryMatrix(pred.X))


def _check_layout(opened: _Opened, genes: list[str], *, pert_col, celltype_col, ntc_name,
                  max_cell_dim, expected_gene_dim) -> np.ndarray | None:
    """cell-eval prep's checks on obs and genes; returns the column order of ``genes`` in the
    file (None when it is already the file's order)."""
    from transpert.data.schema import apply_duplicate_rule

    name, obs = opened.name, opened.obs
    var_names = opened.var_names = apply_duplicate_rule(opened.var_names, name)
    if pert_col not in obs:
        raise TranspertInputError(
            f"{name}: perturbation column {pert_col!r} not in obs (columns: "
            f"{list(map(str, obs.columns))}); pass the right column name (--pert-col)")
    if celltype_col and celltype_col not in obs:
        raise TranspertInputError(f"{name}: cell-type column {celltype_col!r} not in obs")
    if ntc_name not in set(obs[pert_col].astype(str)):
        from transpert.data.labels import control_not_found, label_counts

        raise TranspertInputError(control_not_found(
            name, pert_col, ntc_name, label_counts(obs[pert_col]),
            hint="a submission must contain control cells (--control names their label)"))
    if expected_gene_dim and len(genes) != expected_gene_dim:
        # cell-eval warns and follows the gene list; so do we, where the user sees it
        logger.warning("%s: the gene list has %d genes but --expected-gene-dim is %d; following "
                       "the gene list (pass --expected-gene-dim %d, or -1, to silence this)",
                       name, len(genes), expected_gene_dim, len(genes))
        expected_gene_dim = len(genes)
    order = None
    if list(var_names) != list(genes):
        missing = set(genes) - set(var_names)
        extra = set(var_names) - set(genes)
        if missing or extra:
            raise TranspertInputError(
                f"{name}: genes differ from the gene list: missing {sorted(missing)[:10]}"
                f"{' ...' if len(missing) > 10 else ''} ({len(missing)}), extra "
                f"{sorted(extra)[:10]}{' ...' if len(extra) > 10 else ''} ({len(extra)})")
        order = var_names.get_indexer(genes)
    n_cells = opened.matrix.shape[0]
    if expected_gene_dim and len(genes) != expected_gene_dim:
        raise TranspertInputError(f"{name}: {len(genes)} genes, expected {expected_gene_dim}")
    if max_cell_dim and n_cells > max_cell_dim:
        raise TranspertInputError(
            f"{name}: {n_cells} cells exceed the maximum of {max_cell_dim} (the challenge's "
            "limit; pass max_cell_dim=None / --max-cell-dim -1 to lift it)")
    return order


def _chunks(opened: _Opened, order, dtype, chunk_rows: int, desc: str, show):
    """``(start, stop, csr)``: rows ``[start, stop)`` in the gene list's order, cast to ``dtype``
    (as cell-eval: reorder, cast, then CSR; explicit zeros kept)."""
    n = opened.matrix.shape[0]
    dense = opened.matrix.format == "dense"
    with Progress(n, desc, unit="cells", show=show) as progress:
        for start in range(0, n, chunk_rows):
            stop = min(n, start + chunk_rows)
            block = opened.matrix.read_rows(start, stop)
            if order is not None:
                block = block[:, order]
            block = sp.csr_matrix(block.astype(dtype))
            if dense:  # cell-eval: dense -> cast -> CSR, which stores the non-zeros in order
                block.eliminate_zeros()
                block.sort_indices()
            yield start, stop, block
            progress.update(stop - start)


def _scan(opened, order, dtype, chunk_rows, show):
    """Pass 1: the value facts cell-eval's scale check needs (the data layer's
    :func:`~transpert.data.normalize.value_summary`, merged over chunks) and every cell's total
    (float64 sums stored in ``dtype``, as scanpy)."""
    totals = np.zeros(opened.matrix.shape[0], dtype=dtype)
    from transpert.data import _row_scale

    facts = value_summary(np.empty(0, dtype=dtype))
    rows = _row_scale.empty_evidence()
    for start, stop, block in _chunks(opened, order, dtype, chunk_rows, f"checking {opened.name}", show):
        facts = merge_summaries(facts, value_summary(block.data))
        rows = _row_scale.merge_evidence(rows, _row_scale.row_evidence(block, start))
        row_totals_into(block.indptr, block.data, totals[start:stop])
    facts["rows"] = rows
    return facts, totals


def _write_h5ad(path: Path, opened: _Opened, order, dtype, chunk_rows, obs, genes, transform, show):
    """Pass 2: the minimal h5ad, X written as CSR chunk by chunk (``transform(start, stop,
    chunk)`` gives the CSR rows written)."""
    import h5py

    n = opened.matrix.shape[0]
    with h5py.File(path, "w") as f:
        X = CSRRowWriter(f, (n, len(genes)), dtype)
        for start, stop, block in _chunks(opened, order, dtype, chunk_rows, f"writing {opened.name}", show):
            X.append(transform(start, stop, block))
        X.finish()
        write_h5ad_metadata(f, obs, pd.DataFrame(index=np.asarray(genes)))


def prep(pred, genes, output=None, *, pert_col: str = PERT_COL,
         celltype_col: str | None = None, ntc_name: str = CONTROL_LABEL,
         output_pert_col: str = PERT_COL, output_celltype_col: str = "celltype",
         encoding: int = 32, allow_discrete: bool = False,
         max_cell_dim: int | None = MAX_CELL_DIM, expected_gene_dim: int | None = EXPECTED_GENE_DIM,
         chunk_rows: int | None = None, show_progress: bool | None = None) -> Path:
    """Write ``output`` (default ``<pred>.prep.vcc``): tar of ``pred.h5ad.zst`` + ``watermark.txt``.

    ``pred``: h5ad path or AnnData; ``genes``: gene-list CSV path or list. The result is what
    ``cell-eval prep`` 0.8.2 writes (log1p scale out; raw counts are normalised as scanpy's
    ``normalize_total`` + ``log1p``), but the matrix is never held whole: a file is read in row
    chunks of ``chunk_rows`` (default: about 8 M stored values) twice, once to check the values
    and sum every cell's counts, once to write the output chunk by chunk. Memory: obs, the gene
    list, the row pointer and one chunk.

    Parameters
    ----------
    pred
        The prediction's cells: h5ad path or AnnData (log1p, or raw counts).
    genes
        The gene list (the challenge's ``gene_names.csv``) or a list.
    output
        The ``.vcc`` file to write.
    pert_col, celltype_col, ntc_name, output_pert_col, output_celltype_col, encoding
        As ``cell-eval prep``'s options of the same names.
    allow_discrete, max_cell_dim, expected_gene_dim
        As ``cell-eval prep``'s checks of the same names.
    chunk_rows, show_progress
        Rows per chunk, and a progress bar.

    Returns
    -------
    Path
        The ``.vcc`` file written.

    Examples
    --------
    >>> from transpert.evaluate import prep
    >>> prep("prediction.h5ad", "gene_names.csv", "prediction.vcc")  # doctest: +SKIP
    """
    compress = _zstd_compressor()  # fail before reading anything if zstd is missing
    if encoding not in VALID_ENCODINGS:
        raise TranspertInputError(f"encoding must be one of {VALID_ENCODINGS}, got {encoding}")
    if output is None:
        if not isinstance(pred, (str, os.PathLike)):
            raise TranspertInputError("output path required when the prediction is an AnnData")
        output = str(pred).replace(".h5ad", ".prep.vcc")
    if chunk_rows is not None and int(chunk_rows) < 1:
        raise TranspertInputError(f"chunk_rows must be >= 1, got {chunk_rows}")
    gene_list = read_gene_list(genes) if isinstance(genes, (str, os.PathLike)) else list(genes)
    opened = _open(pred)
    try:
        order = _check_layout(opened, gene_list, pert_col=pert_col, celltype_col=celltype_col,
                              ntc_name=ntc_name, max_cell_dim=max_cell_dim,
                              expected_gene_dim=expected_gene_dim)
        dtype = np.float32 if encoding == 32 else np.float64
        rows_per_chunk = default_chunk_rows(opened.matrix) if chunk_rows is None else int(chunk_rows)
        facts, totals = _scan(opened, order, dtype, rows_per_chunk, show_progress)
        transform = _as_stored
        if not allow_discrete:  # rows on different scales are refused (transpert.data._row_scale)
            check_value_facts(opened.name, n_nan=facts["n_nan"], n_inf=facts["n_inf"],
                              n_negative=facts["n_negative"], vmin=facts["min"], fractional=False,
                              vmax=facts["max"], rows=facts["rows"])
        if facts["n_fractional"]:
            if not allow_discrete:  # cell-eval checks the log1p range of fractional data
                check_value_facts(opened.name, n_nan=facts["n_nan"], n_inf=facts["n_inf"],
                                  n_negative=facts["n_negative"], vmin=facts["min"],
                                  fractional=True, vmax=facts["max"])
                transform = _canonical
        elif not allow_discrete:  # raw counts: scanpy's normalize_total (median total) + log1p
            transform = _log1p_rows(totals, np.median(totals))
        obs = pd.DataFrame({output_pert_col: opened.obs[pert_col].to_numpy()},
                           index=np.arange(opened.matrix.shape[0]).astype(str))
        if celltype_col:
            obs[output_celltype_col] = opened.obs[celltype_col].to_numpy()
        with tempfile.TemporaryDirectory() as tmp_dir:
            tmp = Path(tmp_dir)
            _write_h5ad(tmp / "pred.h5ad", opened, order, dtype, rows_per_chunk, obs, gene_list,
                        transform, show_progress)
            zst = compress(tmp / "pred.h5ad")
            (tmp / "watermark.txt").write_text("vcc-prep")
            with atomic_path(output) as out, tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
                tar.add(zst, arcname="pred.h5ad.zst")
                tar.add(tmp / "watermark.txt", arcname="watermark.txt")
    finally:
        opened.matrix.close()
    return Path(output)


def _as_stored(start: int, stop: int, block: sp.csr_matrix) -> sp.csr_matrix:
    return block


def _canonical(start: int, stop: int, block: sp.csr_matrix) -> sp.csr_matrix:
    """Indices sorted within each row (duplicates summed): cell-eval's range check calls scipy's
    ``X.max()``, which does this to the matrix it then writes."""
    block.sum_duplicates()
    return block


def _log1p_rows(totals: np.ndarray, target):
    """Rows of counts -> scanpy's ``normalize_total(target_sum=None)`` + ``log1p`` with the
    file-wide ``totals`` and median ``target`` (the same arithmetic as ``normalize_log1p``)."""
    def transform(start: int, stop: int, block: sp.csr_matrix) -> sp.csr_matrix:
        block.data = log1p_scale_rows(block.data.copy(), block.indptr, totals[start:stop], target)
        return block
    return transform
