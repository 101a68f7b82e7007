"""The linear baseline of Ahlmann-Eltze, Huber & Anders (2025, Nature Methods), "Deep-learning-based
gene perturbation effect prediction does not yet outperform simple linear baselines".

Model (log1p scale, deltas vs the target's controls): with ``Y`` the genes x training
perturbations matrix of training deltas and ``b`` its row means,

    Y - b 1ᵀ  ≈  G W Pᵀ

``G`` (genes x K) is the gene embedding: the first K principal components of the training data
(``U_K S_K`` of the SVD of ``Y - b 1ᵀ``). ``P`` (perturbations x K) is the perturbation embedding:

* ``embedding="gene"`` (the paper's single-dataset model): the perturbation of gene g is embedded
  as g's own row of ``G``, so only perturbations named after a measured gene can be placed;
* ``embedding="reference"`` (the paper's cross-dataset transfer variant): the first K principal
  components of the reference lines' deltas (perturbations x genes, mean over lines), so any
  perturbation some reference line measured can be placed.

``W`` is the ridge solution with penalty ``ridge`` on both sides (their ``solve_y_axb``):
``W = (GᵀG + λI)⁻¹ Gᵀ (Y - b1ᵀ) P (PᵀP + λI)⁻¹``, and a prediction is ``G W p + b``. A perturbation
without an embedding gets ``b`` (the mean training effect); ``obs["source"]`` says which.
"""

from __future__ import annotations

import numpy as np

from transpert._errors import TranspertInputError

from ._base import Predictor, dense_layer, logger, nanmean_lines, reference_delta_stack


def pca_scores(matrix: np.ndarray, n_components: int, center: bool = True) -> np.ndarray:
    """Row scores ``U_K S_K`` of ``matrix`` (column-centred first when ``center``): its first K
    principal components."""
    centred = matrix - matrix.mean(axis=0, keepdims=True) if center else matrix
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    k = min(n_components, len(s))
    return u[:, :k] * s[:k]


def ridge_bilinear(y: np.ndarray, a: np.ndarray, b: np.ndarray, ridge: float) -> np.ndarray:
    """``W`` minimising ``||Y - A W Bᵀ||² `` with ridge ``λ`` on both sides, in closed form:
    ``(AᵀA + λI)⁻¹ Aᵀ Y B (BᵀB + λI)⁻¹`` (Ahlmann-Eltze et al.'s ``solve_y_axb``)."""
    left = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ y)
    right = np.linalg.solve(b.T @ b + ridge * np.eye(b.shape[1]), (left @ b).T).T
    return right


class LinearBaseline(Predictor):
    """Ahlmann-Eltze et al. (2025) linear model ``Y ≈ G W Pᵀ + b`` (see the module docstring).

    Parameters
    ----------
    n_components : K, the embedding dimension (their default 10; capped by the data's rank).
    ridge : ridge penalty λ on both sides (their default 0.1).
    embedding : ``"gene"`` (single-dataset model) or ``"reference"`` (cross-dataset transfer).
    """

    name = "linear"

    def __init__(self, n_components: int = 10, ridge: float = 0.1, embedding: str = "gene"):
        self.n_components = n_components
        self.ridge = ridge
        self.embedding = embedding

    @property
    def needs_references(self):  # the transfer variant embeds perturbations from the references
        return self.embedding == "reference"

    def _fit(self, references, target_train):
        if self.embedding not in ("gene", "reference"):
            raise TranspertInputError(f"linear: embedding must be 'gene' or 'reference', got {self.embedding!r}")
        if not (isinstance(self.n_components, int) and self.n_components >= 1):
            raise TranspertInputError(f"linear: n_components must be a positive integer, got {self.n_components!r}")
        if not self.ridge >= 0:
            raise TranspertInputError(f"linear: ridge must be >= 0, got {self.ridge!r}")
        y = dense_layer(target_train, "delta").T  # genes x perturbations
        self.center_ = y.mean(axis=1)
        yc = y - self.center_[:, None]
        # Y - b1ᵀ is already centred per gene over perturbations: its SVD is the PCA of the genes
        self.gene_embedding_ = pca_scores(yc, self.n_components, center=False)  # genes x K
        if self.embedding == "reference":
            perts = sorted(set().union(*(map(str, r.obs_names) for r in references.values())))
            ref = nanmean_lines(reference_delta_stack(references, self.genes_, perts))
            ref = np.nan_to_num(ref, nan=0.0)  # a gene a line did not measure contributes no effect
            self.embedded_perturbations_ = perts
            self.perturbation_embedding_ = pca_scores(ref, self.n_components)
        train_emb, ok = self._embed(self.train_perturbations_)
        if ok.sum() == 0:
            raise TranspertInputError(
                f"linear ({self.embedding} embedding): none of the {len(ok)} training perturbations can be "
                + ("placed: none is a measured gene name" if self.embedding == "gene"
                   else "placed: none is in a reference line"))
        if (~ok).any():
            logger.info("linear: %d training perturbations without an embedding are left out of the fit", int((~ok).sum()))
        self.coef_ = ridge_bilinear(yc[:, ok], self.gene_embedding_, train_emb[ok], self.ridge)

    def _embed(self, perturbations):
        """Embedding rows for ``perturbations`` (zeros where none) and a mask of those that have one."""
        if self.embedding == "gene":
            idx = self.genes_.get_indexer(perturbations)
            table = self.gene_embedding_
        else:
            import pandas as pd

            idx = pd.Index(self.embedded_perturbations_).get_indexer(perturbations)
            table = self.perturbation_embedding_
        ok = idx >= 0
        emb = np.zeros((len(perturbations), table.shape[1]))
        emb[ok] = table[idx[ok]]
        return emb, ok

    def _predict(self, perturbations):
        emb, ok = self._embed(perturbations)
        delta = (self.gene_embedding_ @ self.coef_ @ emb.T).T + self.center_[None, :]
        if (~ok).any():
            logger.warning("linear: %d of %d perturbations have no %s embedding; they get the mean training effect",
                           int((~ok).sum()), len(perturbations), self.embedding)
        return delta, {"source": np.where(ok, f"linear:{self.embedding}", "fallback:train-mean")}


class LinearTransferBaseline(LinearBaseline):
    """The cross-dataset variant of :class:`LinearBaseline` (perturbation embedding from references)."""

    name = "linear-transfer"

    def __init__(self, n_components: int = 10, ridge: float = 0.1):
        super().__init__(n_components=n_components, ridge=ridge, embedding="reference")
