"""The schema mapping: how one file's columns map onto transpert's canonical cells.

Canonical cells have ``obs["target_gene"]`` (str labels, control ``"non-targeting"``), gene
symbols as ``var_names`` and Ensembl IDs in ``var["gene_id"]`` where known. A :class:`Schema`
says where those live in a given file (which obs column holds the target, which label marks
controls, where symbols and IDs are), and optionally keeps only the cells of one context
(``cell_filter: condition == "stimulated"``). Schemas come from the manifest or from the user;
nothing file-specific is hard-coded here beyond the canonical defaults.
"""

from __future__ import annotations

import ast
import contextlib
import contextvars
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError

logger = logging.getLogger(__name__)

PERT_COL = "target_gene"
CONTROL_LABEL = "non-targeting"

#: log1p-normalised values must lie in [0, LOG1P_MAX) (cell-eval's range check)
LOG1P_MAX = 15.0
#: the largest float32 below LOG1P_MAX: where predicted log1p values are clipped
LOG1P_CLIP = float(np.nextafter(np.float32(LOG1P_MAX), np.float32(0.0)))
#: a stored value whose fractional part exceeds this is not a count (cell-eval's threshold)
FRACTION_EPS = 1e-3
GENE_ID_COL = "gene_id"
#: a perturbation with fewer cells is flagged in its summary (obs["few_cells"]) and named in a
#: warning: a rank-sum call from one or two cells is not evidence
MIN_CELLS = 3

# ``gene_symbols`` / ``gene_ids`` value meaning "the var index itself".
INDEX = "index"

DUPLICATE_GENE_RULES = ("error", "make_unique")
#: what a schema without its own ``duplicate_genes`` does with two genes of one name: one rule
#: for every command, set by the command line's ``--duplicate-genes`` (:func:`duplicate_genes`)
_DUPLICATE_GENES = contextvars.ContextVar("transpert_duplicate_genes", default="error")


@contextlib.contextmanager
def duplicate_genes(rule: str):
    """Within the block, schemas that do not set ``duplicate_genes`` follow ``rule``
    (``"error"`` or ``"make_unique"``): how ``--duplicate-genes`` reaches every reader."""
    if rule not in DUPLICATE_GENE_RULES:
        raise TranspertInputError(f"duplicate genes: expected one of {DUPLICATE_GENE_RULES}, got {rule!r}")
    token = _DUPLICATE_GENES.set(rule)
    try:
        yield
    finally:
        _DUPLICATE_GENES.reset(token)


@dataclasses.dataclass(frozen=True)
class Schema:
    """Where the canonical fields live in one file.

    Attributes
    ----------
    pert_col
        obs column with the perturbation target (renamed to ``target_gene``).
    control_label
        label of control cells in ``pert_col`` (relabelled ``non-targeting``).
    guide_col, batch_col, context_col
        optional obs columns kept as they are (recorded for later stages).
    gene_symbols
        ``"index"`` (var index holds symbols) or the var column with symbols.
    gene_ids
        ``"index"``, a var column with Ensembl IDs, ``None`` when the file has none, or
        ``"auto"`` (default): the var column ``gene_id`` if there is one.
    matrix
        ``"X"`` or ``"layers/<name>"``: where the expression matrix is stored.
    counts
        ``True`` if X holds raw counts, ``False`` if log1p, ``None`` to detect.
    x_format
        ``"csr"``, ``"csc"`` or ``"dense"`` as the provider stores X (documentation; a file
        stored otherwise is read anyway, with a warning).
    cell_filter
        optional filter on obs keeping one context, e.g. ``'condition == "stimulated"'``
        (``==``, ``!=``, ``in``, ``not in`` against literals, joined by ``and``), or a mapping
        ``{column: value}`` / ``{column: [values]}``.
    duplicate_genes
        ``"error"`` or ``"make_unique"``: what to do when two genes share a symbol.
        ``make_unique`` keeps the first and appends ``-1``, ``-2`` ... to later ones, as anndata.
        ``None`` (default): the current rule (:func:`duplicate_genes`; ``"error"`` unless the
        command line's ``--duplicate-genes`` says otherwise).
    """

    pert_col: str = PERT_COL
    control_label: str = CONTROL_LABEL
    guide_col: str | None = None
    batch_col: str | None = None
    context_col: str | None = None
    gene_symbols: str = INDEX
    gene_ids: str | None = "auto"
    matrix: str = "X"
    counts: bool | None = None
    x_format: str | None = None
    cell_filter: str | Mapping[str, Any] | None = None
    duplicate_genes: str | None = None

    def __post_init__(self):
        if self.duplicate_genes not in (None, *DUPLICATE_GENE_RULES):
            raise TranspertInputError(
                f"schema duplicate_genes must be 'error' or 'make_unique', got {self.duplicate_genes!r}"
            )
        if not (self.matrix == "X" or self.matrix.startswith("layers/")):
            raise TranspertInputError(f"schema matrix must be 'X' or 'layers/<name>', got {self.matrix!r}")
        if self.x_format not in (None, "csr", "csc", "dense"):
            raise TranspertInputError(f"schema x_format must be csr, csc or dense, got {self.x_format!r}")
        if self.cell_filter is not None:
            _parse_filter(self.cell_filter)  # fail early on a bad expression

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any] | None) -> "Schema":
        """Build from a manifest ``schema:`` mapping; unknown keys are an error (typos)."""
        if mapping is None:
            return cls()
        if isinstance(mapping, Schema):
            return mapping
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(mapping) - fields)
        if unknown:
            raise TranspertInputError(
                f"unknown schema field(s) {unknown}; allowed: {sorted(fields)}"
            )
        return cls(**dict(mapping))

    @property
    def effective_duplicate_genes(self) -> str:
        """``duplicate_genes``, or the current rule when the schema leaves it unset."""
        return self.duplicate_genes if self.duplicate_genes is not None else _DUPLICATE_GENES.get()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # ------------------------------------------------------------------ obs
    def cell_mask(self, obs: pd.DataFrame, file: str = "<memory>") -> np.ndarray | None:
        """Boolean mask of the cells the filter keeps, or ``None`` when there is no filter."""
        if self.cell_filter is None:
            return None
        mask = np.ones(len(obs), dtype=bool)
        for column, op, values in _parse_filter(self.cell_filter):
            if column not in obs.columns:
                raise TranspertInputError(
                    f"{file}: cell filter column {column!r} not in obs (columns: {list(obs.columns)})"
                )
            hit = obs[column].astype(object).isin(values).to_numpy()
            mask &= hit if op == "in" else ~hit
        if not mask.any():
            raise TranspertInputError(f"{file}: cell filter {self.cell_filter!r} keeps no cells")
        return mask

    def canonical_obs(self, obs: pd.DataFrame, file: str = "<memory>") -> pd.DataFrame:
        """obs with ``target_gene`` (str, control relabelled ``non-targeting``); other columns kept.

        The perturbation column is renamed; labels become plain strings (no unused categories).
        """
        if self.pert_col not in obs.columns:
            raise TranspertInputError(
                f"{file}: perturbation column {self.pert_col!r} not in obs "
                f"(columns: {list(map(str, obs.columns))}); pass the right column name (--pert-col)"
            )
        labels = obs[self.pert_col]
        missing = labels.isna().to_numpy()
        if missing.any():
            cell = obs.index[np.flatnonzero(missing)[0]]
            raise TranspertInputError(
                f"{file}: column {self.pert_col!r} has {int(missing.sum())} missing label(s), "
                f"first at cell {cell!r}"
            )
        labels = labels.astype(str).to_numpy(dtype=object)
        if self.control_label != CONTROL_LABEL:
            clash = labels == CONTROL_LABEL
            if clash.any():
                from transpert.data.labels import control_not_found, label_counts

                given = int(np.sum(labels == self.control_label))
                if not given:  # the controls are most likely the 'non-targeting' cells
                    raise TranspertInputError(control_not_found(
                        file, self.pert_col, self.control_label, label_counts(labels)))
                raise TranspertInputError(
                    f"{file}: column {self.pert_col!r} has {given} cells labelled "
                    f"{self.control_label!r} (the control label given) and {int(clash.sum())} "
                    f"labelled {CONTROL_LABEL!r}; which are the controls is ambiguous: relabel "
                    f"or drop one of the two groups"
                )
            labels = np.where(labels == self.control_label, CONTROL_LABEL, labels).astype(object)
        out = obs.drop(columns=[self.pert_col]) if self.pert_col != PERT_COL else obs.copy()
        if self.pert_col != PERT_COL and PERT_COL in out.columns:
            raise TranspertInputError(
                f"{file}: obs has both {self.pert_col!r} (the schema's perturbation column) and "
                f"{PERT_COL!r}; drop one or point the schema at {PERT_COL!r}"
            )
        out[PERT_COL] = pd.Series(labels, index=obs.index, dtype=object)
        return out

    # ------------------------------------------------------------------ var
    def canonical_var(self, var: pd.DataFrame, file: str = "<memory>") -> pd.DataFrame:
        """var indexed by unique gene symbols, with ``gene_id`` (Ensembl) where the file has IDs.

        A missing symbol falls back to the gene's ID. Duplicated symbols follow
        ``duplicate_genes``.
        """
        symbols = self._var_field(var, self.gene_symbols, "gene_symbols", file)
        gene_ids = self.gene_ids
        if gene_ids == "auto":
            gene_ids = GENE_ID_COL if GENE_ID_COL in var.columns else None
        ids = None if gene_ids is None else self._var_field(var, gene_ids, "gene_ids", file)
        symbols = symbols.astype(object)
        empty = pd.isna(symbols) | (symbols.astype(str).str.strip() == "")
        if empty.any():
            if ids is None:
                first = int(np.flatnonzero(empty.to_numpy())[0])
                raise TranspertInputError(
                    f"{file}: {int(empty.sum())} gene(s) have no symbol in {self.gene_symbols!r} "
                    f"(first at var position {first}) and the schema has no gene_ids to fall back on"
                )
            symbols = symbols.where(~empty, ids)
            logger.info("%s: %d genes without a symbol named by their ID", file, int(empty.sum()))
        symbols = pd.Index(symbols.astype(str).to_numpy(), dtype=object)
        if symbols.has_duplicates:
            dups = symbols[symbols.duplicated()].unique()
            if self.effective_duplicate_genes == "error":
                where = "var names" if self.gene_symbols == INDEX else f"var column {self.gene_symbols!r}"
                raise TranspertInputError(
                    f"{file}: duplicate gene name(s) in the {where}: "
                    f"{list(dups[:10])}{' ...' if len(dups) > 10 else ''} ({len(dups)} in all); "
                    "pass --duplicate-genes make_unique to rename later ones -1, -2 ... (in Python: "
                    "schema duplicate_genes='make_unique'), or fix the file"
                )
            symbols = _make_unique(symbols)
            logger.warning("%s: %d duplicated gene symbols made unique (-1, -2 ...)", file, len(dups))
        out = var.copy()
        out.index = symbols
        out.index.name = None
        if ids is not None:
            out[GENE_ID_COL] = ids.astype(str).to_numpy()
        return out

    @staticmethod
    def _var_field(var: pd.DataFrame, where: str, what: str, file: str) -> pd.Series:
        if where == INDEX:
            return pd.Series(var.index.to_numpy(), index=var.index)
        if where not in var.columns:
            raise TranspertInputError(
                f"{file}: schema {what} column {where!r} not in var (columns: {list(var.columns)})"
            )
        return var[where]


def apply_duplicate_rule(names, file: str, where: str = "var names") -> pd.Index:
    """Gene ``names`` after the current duplicate-genes rule (:func:`duplicate_genes`): as they
    are when unique, renamed ``-1``, ``-2`` ... under ``make_unique``, else an error naming them."""
    names = pd.Index(np.asarray(names).astype(str), dtype=object)
    if not names.has_duplicates:
        return names
    dups = names[names.duplicated()].unique()
    if _DUPLICATE_GENES.get() == "error":
        raise TranspertInputError(
            f"{file}: duplicate gene name(s) in the {where}: {list(dups[:10])}"
            f"{' ...' if len(dups) > 10 else ''} ({len(dups)} in all); pass --duplicate-genes "
            "make_unique to rename later ones -1, -2 ..., or fix the file")
    logger.warning("%s: %d duplicated gene names made unique (-1, -2 ...)", file, len(dups))
    return _make_unique(names)


def _make_unique(names: pd.Index) -> pd.Index:
    """anndata's convention: the first keeps its name, later ones get ``-1``, ``-2`` ..."""
    seen: dict[str, int] = {}
    taken = set(names)
    out = []
    for name in names:
        if name not in seen:
            seen[name] = 0
            out.append(name)
            continue
        k = seen[name]
        while True:
            k += 1
            candidate = f"{name}-{k}"
            if candidate not in taken:
                break
        seen[name] = k
        taken.add(candidate)
        out.append(candidate)
    return pd.Index(out, dtype=object)


# ---------------------------------------------------------------------- cell filter
_OPS = {ast.Eq: "in", ast.NotEq: "not in", ast.In: "in", ast.NotIn: "not in"}


def _parse_filter(spec: str | Mapping[str, Any]) -> list[tuple[str, str, list]]:
    """Parse a cell filter into ``[(column, "in" | "not in", values)]`` clauses (all must hold).

    Strings are parsed with :mod:`ast` (never evaluated): only comparisons of a column name
    with literals, joined by ``and``.
    """
    if isinstance(spec, Mapping):
        return [(str(c), "in", list(v) if isinstance(v, (list, tuple, set)) else [v]) for c, v in spec.items()]
    if not isinstance(spec, str):
        raise TranspertInputError(f"cell filter must be a string or a mapping, got {spec!r}")
    try:
        tree = ast.parse(spec, mode="eval").body
    except SyntaxError as err:
        raise TranspertInputError(f"cell filter {spec!r} is not a valid expression: {err.msg}") from None
    nodes = tree.values if isinstance(tree, ast.BoolOp) and isinstance(tree.op, ast.And) else [tree]
    clauses = []
    for node in nodes:
        if not (isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _OPS):
            raise TranspertInputError(
                f"cell filter {spec!r}: each clause must be `column == value`, `!=`, `in [..]` or "
                "`not in [..]`, joined by `and`"
            )
        left = node.left
        if isinstance(left, ast.Name):
            column = left.id
        elif isinstance(left, ast.Constant) and isinstance(left.value, str):
            column = left.value
        else:
            raise TranspertInputError(f"cell filter {spec!r}: left side must be an obs column name")
        try:
            value = ast.literal_eval(node.comparators[0])
        except ValueError:
            raise TranspertInputError(f"cell filter {spec!r}: right side must be a literal") from None
        op = _OPS[type(node.ops[0])]
        if isinstance(node.ops[0], (ast.In, ast.NotIn)):
            if not isinstance(value, (list, tuple, set)):
                raise TranspertInputError(f"cell filter {spec!r}: `in` needs a list of values")
            values = list(value)
        else:
            values = [value]
        clauses.append((column, op, values))
    return clauses
