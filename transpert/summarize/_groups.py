"""Group codes: which perturbation (or the control) each cell belongs to."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError
from transpert.data.labels import control_not_found


@dataclass
class Groups:
    """Cells' group codes and the groups' labels.

    ``labels[c]`` is group c's label (sorted, as ``pd.Categorical`` orders them); ``codes[i]`` is
    cell i's group, -1 for cells without a label (NaN or empty string: left out everywhere).
    ``control`` is the control group's code; ``ref`` the reference group's code for the rank-sum
    test, -1 for one-vs-rest.
    """

    labels: np.ndarray
    codes: np.ndarray
    n_cells: np.ndarray
    control: int
    ref: int

    @property
    def tested(self) -> np.ndarray:
        """Codes of the groups reported in a summary: every group but the control and reference."""
        keep = [c for c in range(len(self.labels)) if c != self.control and c != self.ref]
        return np.asarray(keep, dtype=np.int64)


def make_groups(obs: pd.DataFrame, pert_col: str, control: str, reference: str | None,
                where: str = "<memory>", shown: tuple[str, str] | None = None) -> Groups:
    """Group codes from ``obs[pert_col]``; validates the column, the control and the reference.

    ``reference``: None (the control), ``"rest"`` (one-vs-rest) or another group's label.
    ``shown``: the (column, control label) the user gave, named in messages when ``obs`` was
    mapped onto the canonical names (default: ``pert_col``, ``control``).
    """
    shown_col, shown_control = shown or (pert_col, control)
    if pert_col not in obs.columns:
        raise TranspertInputError(
            f"{where}: obs has no column {pert_col!r} (columns: {', '.join(map(str, obs.columns))})"
        )
    labels, codes = _codes_of(obs[pert_col])
    if not np.any(labels == control):
        n_cells = np.bincount(codes[codes >= 0], minlength=len(labels))
        raise TranspertInputError(control_not_found(where, shown_col, shown_control,
                                                    pd.Series(n_cells, index=labels)))
    control_code = int(np.flatnonzero(labels == control)[0])
    if reference is None:
        ref = control_code
    elif reference == "rest":
        ref = -1
    else:
        hits = np.flatnonzero(labels == reference)
        if hits.size == 0:
            raise TranspertInputError(
                f"{where}: reference group {reference!r} not found in obs[{shown_col!r}]"
            )
        ref = int(hits[0])
    n_cells = np.bincount(codes[codes >= 0], minlength=len(labels)).astype(np.int64)
    if len(labels) < 2:
        raise TranspertInputError(f"{where}: obs[{shown_col!r}] has no perturbation besides "
                                  f"{shown_control!r}")
    return Groups(labels=labels, codes=codes, n_cells=n_cells, control=control_code, ref=ref)


def _codes_of(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(sorted labels present, int64 code per cell; -1 for NaN or an empty label).

    A categorical column (how anndata stores obs strings) is mapped through its categories, a
    few hundred strings, instead of converting every cell's label (~30 ms at VCC size); the
    result is the one :func:`_codes_of_values` gives (tested), unused categories dropped.
    """
    if isinstance(column.dtype, pd.CategoricalDtype):
        cats = np.asarray([str(c) for c in column.cat.categories], dtype=object)
        cell_cat = np.asarray(column.cat.codes, dtype=np.int64)  # -1: NaN
        used = np.bincount(cell_cat[cell_cat >= 0], minlength=len(cats)) > 0
        keep = np.flatnonzero(used & (cats != ""))
        labels = cats[keep]
        if len(set(labels)) == len(labels):  # else two categories print alike: go cell by cell
            order = np.argsort(labels.astype(str), kind="stable")
            remap = np.full(len(cats) + 1, -1, dtype=np.int64)  # remap[-1]: NaN stays -1
            remap[keep[order]] = np.arange(len(keep))
            return labels[order], remap[cell_cat]
    return _codes_of_values(column)


def _codes_of_values(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    values = column.astype("object")
    values = values.where(values.notna() & (values.astype(str) != ""), None)
    cat = pd.Categorical(values.astype("string").astype(object))
    return np.asarray(cat.categories.astype(str)), np.asarray(cat.codes, dtype=np.int64)
