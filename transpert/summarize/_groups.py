"""Group codes: which perturbation (or the control) each cell belongs to."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError


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
                where: str = "<memory>") -> Groups:
    """Group codes from ``obs[pert_col]``; validates the column, the control and the reference.

    ``reference``: None (the control), ``"rest"`` (one-vs-rest) or another group's label.
    """
    if pert_col not in obs.columns:
        raise TranspertInputError(
            f"{where}: obs has no column {pert_col!r} (columns: {', '.join(map(str, obs.columns))})"
        )
    values = obs[pert_col].astype("object")
    values = values.where(values.notna() & (values.astype(str) != ""), None)
    cat = pd.Categorical(values.astype("string").astype(object))
    labels = np.asarray(cat.categories.astype(str))
    codes = np.asarray(cat.codes, dtype=np.int64)
    if not np.any(labels == control):
        raise TranspertInputError(
            f"{where}: control label {control!r} not found in obs[{pert_col!r}] "
            f"(labels: {', '.join(labels[:10])}{' ...' if len(labels) > 10 else ''})"
        )
    control_code = int(np.flatnonzero(labels == control)[0])
    if reference is None:
        ref = control_code
    elif reference == "rest":
        ref = -1
    else:
        hits = np.flatnonzero(labels == reference)
        if hits.size == 0:
            raise TranspertInputError(
                f"{where}: reference group {reference!r} not found in obs[{pert_col!r}]"
            )
        ref = int(hits[0])
    n_cells = np.bincount(codes[codes >= 0], minlength=len(labels)).astype(np.int64)
    if len(labels) < 2:
        raise TranspertInputError(f"{where}: obs[{pert_col!r}] has no perturbation besides {control!r}")
    return Groups(labels=labels, codes=codes, n_cells=n_cells, control=control_code, ref=ref)
