"""The small tables a run is given besides cells: the counts table, the gene list, named sources.

One reader each, so every command applies the same rules:

- :func:`read_counts`: the challenge's ``target_gene,n_cells`` table (how many cells to write per
  perturbation). It is read by ``--pert-col`` when it has that column and by ``target_gene``
  otherwise, because the challenge ships its table as ``target_gene,n_cells`` whatever the
  cells' obs column is called. Cell counts are whole numbers >= 1 (a perturbation with no cells
  cannot be written, scored or used as a baseline group).
- :func:`read_gene_list`: the gene order (a list or the challenge's header-less
  ``gene_names.csv``).
- :func:`reference_sources`: ``[NAME=]PATH`` items naming reference lines.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError
from transpert.data.schema import PERT_COL

#: the challenge's name for the perturbation column of its counts table
TABLE_PERT_COL = "target_gene"


def with_pert_column(table: pd.DataFrame, pert_col: str, name: str) -> pd.DataFrame:
    """``table`` with its perturbation column named ``pert_col``: the column ``pert_col`` if it
    has one, else ``target_gene`` (renamed); raises naming the file and both names otherwise."""
    if pert_col in table.columns:
        return table
    if TABLE_PERT_COL in table.columns:
        return table.rename(columns={TABLE_PERT_COL: pert_col})
    want = repr(pert_col) if pert_col == TABLE_PERT_COL else f"{pert_col!r} (--pert-col) or {TABLE_PERT_COL!r}"
    raise TranspertInputError(
        f"{name}: no perturbation column {want} (columns: {', '.join(map(str, table.columns))})")


def plain(value) -> str:
    """A table cell as the user wrote it (``0``, not numpy's ``np.int64(0)``)."""
    return repr(value.item()) if hasattr(value, "item") else repr(value)


def read_counts(counts, *, pert_col: str = PERT_COL, counts_col: str = "n_cells",
                control: str | None = None, minimum: int = 1) -> pd.DataFrame:
    """The counts table (path or DataFrame) as ``pert_col, counts_col`` (str, int64), checked.

    Parameters
    ----------
    counts
        A CSV path (the challenge's ``pert_counts_*.csv``) or a DataFrame.
    pert_col, counts_col
        The perturbation column and the column of cell numbers.
    control
        When given, its row (if any) is dropped.
    minimum
        The smallest count allowed: 1 where the table says how many cells to write; 0 where a
        row may ask for none, as cell-eval's baseline accepts.

    Returns
    -------
    pandas.DataFrame
        Two columns, ``pert_col`` (str) and ``counts_col`` (int64), one row per perturbation.

    Raises
    ------
    TranspertInputError
        Naming the file, the column and the first bad value: a missing column, a count that is
        not a whole number >= ``minimum``, a perturbation listed twice.

    Examples
    --------
    >>> import pandas as pd
    >>> from transpert.data import read_counts
    >>> read_counts(pd.DataFrame({"target_gene": ["A", "B"], "n_cells": [10, 20]}))  # doctest: +SKIP
      target_gene  n_cells
    0           A       10
    1           B       20
    """
    name = str(counts) if isinstance(counts, (str, os.PathLike)) else "counts table"
    if isinstance(counts, (str, os.PathLike)):
        if not Path(counts).exists():
            raise TranspertInputError(f"{name}: no such file")
        counts = pd.read_csv(counts)
    counts = with_pert_column(pd.DataFrame(counts), pert_col, name)
    if counts_col not in counts.columns:
        raise TranspertInputError(f"{name}: no column {counts_col!r} (columns: {list(counts.columns)})")
    n = pd.to_numeric(counts[counts_col], errors="coerce")
    bad = n.isna() | (n < minimum) | (n != np.floor(n))
    if bad.any():
        row = counts.loc[bad].iloc[0]
        raise TranspertInputError(f"{name}: column {counts_col!r} must hold whole numbers >= {minimum}; "
                                  f"{plain(row[pert_col])} has {plain(row[counts_col])}")
    out = pd.DataFrame({pert_col: counts[pert_col].astype(str), counts_col: n.astype(np.int64)})
    if out[pert_col].duplicated().any():
        raise TranspertInputError(f"{name}: perturbation {out[pert_col][out[pert_col].duplicated()].iloc[0]!r} listed twice")
    if control is not None:
        out = out[out[pert_col] != control]
    return out.reset_index(drop=True)


def read_gene_list(genes) -> list[str]:
    """Gene order: a list, or a one-column CSV without header (the challenge's ``gene_names.csv``).

    Parameters
    ----------
    genes
        A sequence of gene names, or the path of a one-column CSV without header.

    Returns
    -------
    list of str
        The genes in order.

    Raises
    ------
    TranspertInputError
        When the list is empty or a gene is listed twice.

    Examples
    --------
    >>> from transpert.data import read_gene_list
    >>> read_gene_list(["STAT1", "IRF1"])
    ['STAT1', 'IRF1']
    """
    name = "gene list"
    if isinstance(genes, (str, os.PathLike)):
        name = f"{genes}: gene list"
        if not Path(genes).exists():
            raise TranspertInputError(f"{genes}: no such file (the gene list)")
        try:
            frame = pd.read_csv(genes, header=None, dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:
            frame = pd.DataFrame()
        genes = frame.iloc[:, 0].tolist() if frame.shape[0] else []
    genes = [str(g) for g in genes]
    if not genes:
        raise TranspertInputError(f"{name}: the gene list is empty")
    if len(set(genes)) != len(genes):
        dup = pd.Index(genes)[pd.Index(genes).duplicated()][0]
        raise TranspertInputError(f"{name}: {dup!r} appears twice")
    return genes


def reference_sources(items) -> dict[str, str]:
    """``[NAME=]PATH`` items (or a {name: path} mapping) -> {name: path}; names must be unique.
    Without ``NAME=``, a line is named after its file's stem."""
    if isinstance(items, dict):
        return {str(k): str(v) for k, v in items.items()}
    out: dict[str, str] = {}
    for item in items:
        item = str(item)
        name, path = item.split("=", 1) if "=" in item and not Path(item).exists() else (Path(item).stem, item)
        if name in out:
            raise TranspertInputError(f"reference line name {name!r} given twice (use NAME=PATH to name them)")
        out[name] = path
    return out
