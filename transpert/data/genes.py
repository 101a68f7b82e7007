"""Gene harmonisation: one gene list shared by several datasets, and how each maps onto it.

Gene symbols change between annotation releases (``C10orf2`` -> ``TWNK``) while Ensembl IDs do
not, so two datasets are matched by Ensembl ID wherever both have one (version suffixes such as
``.12`` ignored), and by symbol otherwise. The first dataset (or ``reference``) names the genes:
a gene matched by ID under another symbol is *renamed* to the reference's symbol. When several
genes of one dataset land on the same reference gene, the first in that dataset's var order is
kept and the others dropped, so the result never depends on anything but the inputs' order.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd

from transpert._errors import TranspertInputError
from transpert.data.schema import GENE_ID_COL, _make_unique

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class GeneHarmonization:
    """The shared genes and each dataset's way onto them.

    ``genes``: the common gene symbols (reference order). ``mapping[name]``: a DataFrame indexed
    by ``genes`` with ``position`` (column of the gene in that dataset), ``source_symbol``,
    ``gene_id`` and ``matched_by`` (``"id"``, ``"symbol"``). ``report``: one row per dataset with
    ``n_genes``, ``matched_by_id``, ``matched_by_symbol``, ``renamed``, ``duplicates_dropped``,
    ``dropped`` (genes of that dataset with no partner in every other dataset) and ``n_common``;
    ``n_genes = n_common + duplicates_dropped + dropped``.
    """

    genes: pd.Index
    mapping: dict[str, pd.DataFrame]
    report: pd.DataFrame

    def positions(self, name: str) -> np.ndarray:
        """Column indices that take dataset ``name``'s matrix onto ``genes``, in order."""
        return self.mapping[name]["position"].to_numpy()

    def apply(self, name: str, adata):
        """An AnnData of dataset ``name`` restricted and renamed to the common genes (a copy)."""
        out = adata[:, self.positions(name)].copy()
        out.var_names = self.genes
        out.var[GENE_ID_COL] = self.mapping[name]["gene_id"].to_numpy()
        return out


def _strip_version(ids: pd.Series) -> pd.Series:
    return ids.astype(str).str.replace(r"\.\d+$", "", regex=True)


def _genes_of(obj, name: str) -> tuple[pd.Index, pd.Series | None]:
    """(symbols, Ensembl IDs or None) of an AnnData, CellSource, var DataFrame or list of symbols."""
    var = None
    if hasattr(obj, "var") and hasattr(obj, "var_names"):
        var = obj.var
    elif isinstance(obj, pd.DataFrame):
        var = obj
    if var is not None:
        symbols = pd.Index(var.index.astype(str))
        ids = None
        if GENE_ID_COL in var.columns:
            raw = var[GENE_ID_COL]
            ids = _strip_version(raw).where(raw.notna() & (raw.astype(str) != ""), None)
            ids.index = range(len(ids))
        return symbols, ids
    try:
        return pd.Index([str(g) for g in obj]), None
    except TypeError:
        raise TranspertInputError(f"harmonize_genes: cannot read genes of {name!r} ({type(obj).__name__})") from None


def harmonize_genes(datasets: dict, *, reference: str | None = None) -> GeneHarmonization:
    """Match genes across datasets (by Ensembl ID where both have one, else by symbol).

    ``datasets``: name -> AnnData / CellSource / var DataFrame (symbols as index, optional
    ``gene_id`` column) / list of symbols. Returns a :class:`GeneHarmonization` with the genes
    common to all, per-dataset column positions and a report (also logged). Scale-independent.
    """
    if len(datasets) < 1:
        raise TranspertInputError("harmonize_genes needs at least one dataset")
    names = list(datasets)
    reference = names[0] if reference is None else reference
    if reference not in datasets:
        raise TranspertInputError(f"harmonize_genes: reference {reference!r} is not one of {names}")
    genes = {name: _genes_of(datasets[name], name) for name in names}
    ref_symbols, ref_ids = genes[reference]
    # Reference genes keyed by symbol and by ID; a duplicated symbol/ID keeps its first gene.
    ref_by_symbol = pd.Series(np.arange(len(ref_symbols)), index=ref_symbols)
    ref_by_symbol = ref_by_symbol[~ref_by_symbol.index.duplicated(keep="first")]
    ref_by_id = None
    if ref_ids is not None:
        valid = ref_ids.notna().to_numpy()
        ref_by_id = pd.Series(np.arange(len(ref_ids))[valid], index=ref_ids[valid].to_numpy())
        ref_by_id = ref_by_id[~ref_by_id.index.duplicated(keep="first")]

    per_dataset: dict[str, pd.DataFrame] = {}
    rows = []
    for name in names:
        symbols, ids = genes[name]
        n = len(symbols)
        target = np.full(n, -1, dtype=np.int64)  # reference gene each of this dataset's genes maps to
        how = np.array([""] * n, dtype=object)
        if ref_by_id is not None and ids is not None:
            has = ids.notna().to_numpy()
            hit = pd.Series(ids.to_numpy()).map(ref_by_id).to_numpy()
            ok = has & ~pd.isna(hit)
            target[ok] = hit[ok].astype(np.int64)
            how[ok] = "id"
        rest = target < 0
        by_sym = pd.Series(symbols.to_numpy()).map(ref_by_symbol).to_numpy()
        ok = rest & ~pd.isna(by_sym)
        if ref_by_id is not None and ids is not None:
            # A symbol match between genes whose IDs both exist and differ is a different gene.
            ref_id_of = ref_ids.to_numpy()[np.where(ok, by_sym, 0).astype(np.int64)]
            conflict = ok & ids.notna().to_numpy() & pd.notna(ref_id_of) & (ids.to_numpy() != ref_id_of)
            ok &= ~conflict
        target[ok] = by_sym[ok].astype(np.int64)
        how[ok] = "symbol"
        # duplicates: keep the first gene (var order) per reference gene
        matched = np.flatnonzero(target >= 0)
        _, first_idx = np.unique(target[matched], return_index=True)
        keep = np.zeros(n, dtype=bool)
        keep[matched[first_idx]] = True
        duplicates = int(len(matched) - len(first_idx))
        frame = pd.DataFrame({
            "ref": target[keep], "position": np.flatnonzero(keep),
            "source_symbol": symbols.to_numpy()[keep],
            "gene_id": (ids.to_numpy()[keep] if ids is not None else np.full(keep.sum(), None, dtype=object)),
            "matched_by": how[keep]})
        per_dataset[name] = frame.set_index("ref")
        rows.append({"dataset": name, "n_genes": n, "matched_by_id": int((how[keep] == "id").sum()),
                     "matched_by_symbol": int((how[keep] == "symbol").sum()),
                     "renamed": int((frame["source_symbol"].to_numpy() != ref_symbols.to_numpy()[frame["ref"].to_numpy()]).sum()),
                     "duplicates_dropped": duplicates})
    common = None
    for frame in per_dataset.values():
        common = frame.index if common is None else common.intersection(frame.index)
    common = np.sort(np.asarray(common, dtype=np.int64))  # reference var order
    common_genes = pd.Index(ref_symbols.to_numpy()[common], dtype=object)
    if common_genes.has_duplicates:  # distinct IDs sharing a symbol in the reference
        common_genes = _make_unique(common_genes)
    mapping = {}
    for row, name in zip(rows, names):
        frame = per_dataset[name].loc[common]
        if ref_ids is not None:
            # the reference's ID where this dataset has none
            frame["gene_id"] = frame["gene_id"].where(frame["gene_id"].notna(), ref_ids.to_numpy()[common])
        frame.index = common_genes
        mapping[name] = frame
        row["n_common"] = len(common)
        row["dropped"] = row["n_genes"] - len(common) - row["duplicates_dropped"]
        logger.info("genes of %s: %d, matched %d by Ensembl ID and %d by symbol, %d renamed, "
                    "%d duplicates dropped, %d not shared (dropped); %d common",
                    name, row["n_genes"], row["matched_by_id"], row["matched_by_symbol"], row["renamed"],
                    row["duplicates_dropped"], row["dropped"], len(common))
    report = pd.DataFrame(rows).set_index("dataset")[
        ["n_genes", "matched_by_id", "matched_by_symbol", "renamed", "duplicates_dropped", "dropped", "n_common"]]
    return GeneHarmonization(genes=common_genes, mapping=mapping, report=report)
