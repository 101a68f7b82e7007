"""Input handling for evaluation, as cell-eval 0.8.2 does it, without densifying.

Evaluation streams each file: :func:`open_input` opens it backed (obs, var and the row pointer
only; ``transpert.data.open_cells``), :func:`validate_values` checks its values in one
streaming pass (the same pass learns the scale and the library sizes the normalisation
needs), and the runner hands the open source to the summaries engine, which reads it in row
chunks within a memory budget. ``prep`` streams with the row-wise parts: ``check_value_facts``
here, the row totals (``transpert.kernels.row_totals_into``) and the normalisation of rows
(``transpert.data.normalize.log1p_scale_rows``). The in-memory references of these steps are in
the tests (``tests/helpers_evaluate.py``).

- Scale detection (``cell_eval.utils.guess_is_lognorm``): no stored value with a fractional
  part > 1e-3 means raw counts, which are normalised per file exactly as scanpy's
  ``normalize_total(target_sum=None)`` + ``log1p`` do it (float32); otherwise the values must
  lie in [0, 15).
- Pair checks (``PerturbationAnndataPair``): identical var_names in identical order, the same
  set of labels in the perturbation column, the control label present in both files.
- Pseudo-bulks: per-label means of the log1p matrix, accumulated in float64 over the stored
  values of a CSR matrix (one pass, no dense copy) and rounded to float32, which is what
  cell-eval's polars ``group_by().mean()`` over the densified float32 matrix returns.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from transpert._errors import TranspertInputError
from transpert.data.labels import control_not_found, label_counts
from transpert.data.schema import CONTROL_LABEL, PERT_COL


logger = logging.getLogger("transpert.evaluate")


@dataclass
class Cells:
    """One file's cells: labels and genes, and the log1p matrix when it is held in memory
    (CSR float32 or dense; None for a streamed file)."""

    name: str  # file name or "real"/"pred" for in-memory objects, used in messages
    X: sp.csr_matrix | np.ndarray | None  # log1p scale
    labels: np.ndarray  # str label of every cell
    var_names: pd.Index
    scale: str | None  # scale the input was in: "counts" or "log1p" (None: not yet scanned)
    column: str = PERT_COL  # the obs column the labels were read from, named in messages


@dataclass
class Opened:
    """A file opened for streaming: the backed source and what the pair checks need."""

    source: object  # transpert.data.CellSource
    cells: Cells  # X None

    def close(self) -> None:
        self.source.close()


def describe_source(source, which: str) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return f"{which} AnnData"


def _values(X) -> np.ndarray:
    return X.data if sp.issparse(X) else np.asarray(X).ravel()


def check_value_facts(name: str, *, n_nan: int, n_negative: int, vmin: float, fractional: bool,
                      vmax: float, n_inf: int = 0, rows: dict | None = None) -> str:
    """cell-eval's scale rule on facts about a file's stored values: ``"counts"`` when no value
    has a fractional part, else ``"log1p"``; raises on NaN / infinite / negative values, on
    fractional data outside [0, 15), and (given the per-row evidence ``rows``) on rows that
    disagree (:func:`transpert.data._row_scale.check_rows_agree`, the data layer's rule)."""
    from transpert.data.normalize import scale_from_summary

    return scale_from_summary({"n_nan": n_nan, "n_inf": n_inf, "n_negative": n_negative,
                               "min": vmin, "n_fractional": int(bool(fractional)), "max": vmax,
                               "rows": rows}, name)


def open_input(source, which: str, pert_col: str, control: str) -> Opened:
    """Open an h5ad path or an AnnData for streaming (``transpert.data.open_cells``): obs, var and
    the row pointer are read, the matrix is not. Labels are the strings of ``obs[pert_col]``."""
    import anndata as ad

    from transpert.data import open_cells
    from transpert.data.schema import Schema

    name = describe_source(source, which)
    if isinstance(source, (str, os.PathLike)):
        if not os.path.exists(source):
            role = "" if str(which) == str(source) else f" (the {which} file)"
            raise TranspertInputError(f"{source}: no such file{role}")
    elif not isinstance(source, ad.AnnData):
        raise TranspertInputError(
            f"{which} must be an h5ad path or an AnnData, got {type(source).__name__}"
        )
    # Labels are kept as they are (no control relabelling); var names as stored (gene IDs are
    # not needed; duplicated names follow the one rule of every command, --duplicate-genes).
    schema = Schema(pert_col=pert_col, control_label=CONTROL_LABEL, gene_ids=None)
    cs = open_cells(source, schema=schema)  # a missing column: the data layer's one sentence
    if cs.format == "csc":
        # Row chunks of a CSC file each scan the whole file (transpert.data.read).
        logger.warning("%s: X is stored as CSC; streaming it by rows re-reads the file for every "
                       "chunk. Convert it to CSR once (adata.X = adata.X.tocsr()) for speed", name)
    labels = cs.obs[PERT_COL].to_numpy(str)
    empty = labels == ""
    if empty.any():
        cs.close()
        raise TranspertInputError(
            f"{name}: {int(empty.sum())} cells have an empty label in {pert_col!r}; label or drop them"
        )
    cells = Cells(name=name, X=None, labels=labels,
                  var_names=pd.Index(np.asarray(cs.var_names).astype(str)), scale=None,
                  column=pert_col)
    return Opened(source=cs, cells=cells)


def validate_values(opened: Opened) -> str:
    """One streaming pass over the values: NaN, negatives, range; returns the scale.

    The data layer caches what the pass learns (value facts and library sizes), so the
    summaries engine neither detects the scale again nor re-reads the file for the library
    sizes when it normalises counts.
    """
    v = opened.source.scan().values
    scale = check_value_facts(opened.cells.name, n_nan=v["n_nan"], n_inf=v["n_inf"],
                              n_negative=v["n_negative"], vmin=v["min"],
                              fractional=bool(v["n_fractional"]), vmax=v["max"], rows=v.get("rows"))
    opened.cells.scale = scale
    return scale


def check_control(cells: Cells, control: str) -> None:
    if control not in set(np.unique(cells.labels).astype(str)):
        raise TranspertInputError(control_not_found(cells.name, cells.column, control,
                                                    label_counts(cells.labels)))


def check_pair(real: Cells, pred: Cells, control: str) -> np.ndarray:
    """cell-eval's pair checks with messages that say what to fix; returns the sorted labels."""
    if len(real.var_names) != len(pred.var_names):
        raise TranspertInputError(
            f"{pred.name} has {len(pred.var_names)} genes but {real.name} has "
            f"{len(real.var_names)}: the prediction must have exactly the real file's genes, in "
            "the same order"
        )
    if not np.array_equal(real.var_names.to_numpy(), pred.var_names.to_numpy()):
        differ = np.flatnonzero(real.var_names.to_numpy() != pred.var_names.to_numpy())
        i = int(differ[0])
        same_set = set(real.var_names) == set(pred.var_names)
        hint = ("same genes in a different order: reorder the prediction's var to the real "
                "file's order" if same_set else "the gene sets differ")
        raise TranspertInputError(
            f"gene names differ between {real.name} and {pred.name} at position {i} "
            f"({real.var_names[i]!r} vs {pred.var_names[i]!r}; {len(differ)} positions differ): "
            + hint
        )
    real_set = {str(x) for x in np.unique(real.labels)}
    pred_set = {str(x) for x in np.unique(pred.labels)}
    if control not in real_set:
        check_control(real, control)
    if control not in pred_set:
        raise TranspertInputError(control_not_found(
            pred.name, pred.column, control, label_counts(pred.labels),
            hint=f"the prediction must contain control cells labelled {control!r}, as the real "
            "file's (copy the real or training control cells into it)"))
    if real_set != pred_set:
        only_real = sorted(real_set - pred_set)
        only_pred = sorted(pred_set - real_set)
        raise TranspertInputError(
            f"perturbation labels differ between {real.name} and {pred.name}: "
            f"missing from the prediction: {only_real[:10]}{' ...' if len(only_real) > 10 else ''}; "
            f"not in the real file: {only_pred[:10]}{' ...' if len(only_pred) > 10 else ''}. "
            "Both files must have exactly the same set of labels"
        )
    labels = np.array(sorted(real_set))
    if labels.size < 2:
        raise TranspertInputError(f"{real.name}: no perturbation besides the control {control!r}")
    return labels
