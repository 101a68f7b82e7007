"""The perturbation column of a counts table (``target_gene,n_cells``), one rule for every reader.

The challenge ships its table as ``target_gene,n_cells`` whatever the cells' obs column is
called, so a table is read by ``--pert-col`` when it has that column and by ``target_gene``
otherwise (``predict --counts``, ``baseline --counts``, ``run``'s ``counts``).
"""

from __future__ import annotations

import pandas as pd

from transpert._errors import TranspertInputError

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
