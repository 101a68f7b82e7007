"""Pack a prediction as a challenge submission (``.vcc``), as ``cell-eval prep`` 0.8.2 does.

``_cli/_prep.py:strip_anndata``: check the perturbation column and the control label, put the
genes in the order of ``gene_names.csv`` (reorder when only the order differs, error when the
sets differ), check the gene and cell dimensions, cast X to float32 (or float64) CSR, keep only
the perturbation (and optional cell-type) column with obs names ``0..n-1``, normalise raw counts
to log1p, write ``pred.h5ad``, compress it with zstd (``zstd -T0``, level 3) to
``pred.h5ad.zst``, and tar it with a ``watermark.txt`` containing ``vcc-prep``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from transpert._errors import TranspertInputError
from transpert._io import atomic_path
from transpert.evaluate._inputs import detect_scale, normalize_log1p

EXPECTED_GENE_DIM = 18080
MAX_CELL_DIM = 200000
VALID_ENCODINGS = (64, 32)


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


def read_gene_list(path) -> list[str]:
    """First column of a header-less CSV (the challenge's ``gene_names.csv``)."""
    if not os.path.exists(path):
        raise TranspertInputError(f"gene list not found: {path}")
    try:
        frame = pd.read_csv(path, header=None, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame()
    if frame.shape[0] == 0:
        raise TranspertInputError(f"{path}: the gene list is empty")
    return frame.iloc[:, 0].astype(str).tolist()


def strip_prediction(adata, genes: list[str], *, name: str = "prediction",
                     pert_col: str = "target_gene", celltype_col: str | None = None,
                     ntc_name: str = "non-targeting", output_pert_col: str = "target_gene",
                     output_celltype_col: str = "celltype", encoding: int = 32,
                     allow_discrete: bool = False, max_cell_dim: int | None = MAX_CELL_DIM,
                     expected_gene_dim: int | None = EXPECTED_GENE_DIM):
    """The minimal AnnData ``cell-eval prep`` writes (log1p scale out)."""
    import anndata as ad

    var_names = adata.var_names.astype(str)
    if pert_col not in adata.obs:
        raise TranspertInputError(
            f"{name}: perturbation column {pert_col!r} not in obs (columns: "
            f"{', '.join(map(str, adata.obs.columns))})")
    if celltype_col and celltype_col not in adata.obs:
        raise TranspertInputError(f"{name}: cell-type column {celltype_col!r} not in obs")
    if ntc_name not in set(adata.obs[pert_col].astype(str)):
        raise TranspertInputError(
            f"{name}: control label {ntc_name!r} not found in {pert_col!r}: a submission must "
            "contain control cells")
    if expected_gene_dim and len(genes) != expected_gene_dim:
        expected_gene_dim = len(genes)  # cell-eval warns and follows the gene list
    if list(var_names) != list(genes):
        missing = set(genes) - set(var_names)
        extra = set(var_names) - set(genes)
        if missing or extra:
            raise TranspertInputError(
                f"{name}: genes differ from the gene list: missing {sorted(missing)[:10]}"
                f"{' ...' if len(missing) > 10 else ''} ({len(missing)}), extra "
                f"{sorted(extra)[:10]}{' ...' if len(extra) > 10 else ''} ({len(extra)})")
        order = pd.Index(var_names).get_indexer(genes)
        X = adata.X[:, order]
    else:
        X = adata.X
    if expected_gene_dim and X.shape[1] != expected_gene_dim:
        raise TranspertInputError(
            f"{name}: {X.shape[1]} genes, expected {expected_gene_dim}")
    if max_cell_dim and X.shape[0] > max_cell_dim:
        raise TranspertInputError(
            f"{name}: {X.shape[0]} cells exceed the maximum of {max_cell_dim} (the challenge's "
            "limit; pass max_cell_dim=None / --max-cell-dim -1 to lift it)")
    if encoding not in VALID_ENCODINGS:
        raise TranspertInputError(f"encoding must be one of {VALID_ENCODINGS}, got {encoding}")
    dtype = np.float32 if encoding == 32 else np.float64
    X = sp.csr_matrix(X.astype(dtype)) if sp.issparse(X) else sp.csr_matrix(np.asarray(X, dtype=dtype))
    obs = pd.DataFrame({output_pert_col: adata.obs[pert_col].to_numpy()},
                       index=np.arange(X.shape[0]).astype(str))
    if celltype_col:
        obs[output_celltype_col] = adata.obs[celltype_col].to_numpy()
    values = X.data
    frac = np.modf(values)[0] if values.size else values
    if (frac > 1e-3).any():
        if not allow_discrete:
            detect_scale(X, name)  # raises when fractional values are outside [0, 15)
    elif not allow_discrete:
        X = normalize_log1p(X)
        if X.dtype != dtype:
            X = X.astype(dtype)
    return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=np.asarray(genes)))


def prep(pred, genes, output=None, **kwargs) -> Path:
    """Write ``output`` (default ``<pred>.prep.vcc``): tar of ``pred.h5ad.zst`` + ``watermark.txt``.

    ``pred``: h5ad path or AnnData; ``genes``: gene-list CSV path or list. Keyword arguments
    as :func:`strip_prediction`.
    """
    import anndata as ad

    compress = _zstd_compressor()  # fail before reading anything if zstd is missing
    if isinstance(pred, (str, os.PathLike)):
        if not os.path.exists(pred):
            raise TranspertInputError(f"prediction file not found: {pred}")
        name = str(pred)
        adata = ad.read_h5ad(pred)
        if output is None:
            output = str(pred).replace(".h5ad", ".prep.vcc")
    else:
        name, adata = "prediction", pred
        if output is None:
            raise TranspertInputError("output path required when the prediction is an AnnData")
    gene_list = read_gene_list(genes) if isinstance(genes, (str, os.PathLike)) else list(genes)
    minimal = strip_prediction(adata, gene_list, name=name, **kwargs)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        minimal.write_h5ad(tmp / "pred.h5ad")
        zst = compress(tmp / "pred.h5ad")
        (tmp / "watermark.txt").write_text("vcc-prep")
        with atomic_path(output) as out, tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
            tar.add(zst, arcname="pred.h5ad.zst")
            tar.add(tmp / "watermark.txt", arcname="watermark.txt")
    return Path(output)
