"""Genes of a simulated atlas: names, fake Ensembl IDs, baseline abundances, dispersions.

Scale: abundances are *fractions of a cell's whole-transcriptome UMI count* (a cell with
library depth ``d`` expects ``d * abundance`` UMIs of the gene before any perturbation).
"""

from __future__ import annotations

import numpy as np

# A human cell expresses ~18,000 protein-coding genes (the challenge files have 18,080). A
# simulation with fewer genes stands for a random sample of such a transcriptome: the library
# depth counts UMIs over the whole transcriptome, so a 1,500-gene file holds ~1/12 of them and
# keeps the per-gene sparsity of real data instead of piling every UMI onto few genes.
TRANSCRIPTOME_GENES = 18_000

# log-abundance spread (natural log). 2.6 puts ~88% zeros at 10k UMI per cell and ~75% at the
# H1 depth of 50k, and the 10 most abundant of 18k genes take ~20% of the UMIs (MALAT1 and the
# mitochondrial genes do about that in 10x data). Measured by tests/test_simulate.py.
DEFAULT_SPREAD = 2.6
SILENT_FRACTION = 0.10  # genes (almost) not expressed in a line
SILENT_SHIFT = -8.0  # log-abundance drop of a silent gene (e^-8 ~ 3e-4 of its level)

# Real gene-family prefixes, so that symbols look like symbols; numbers make them unique.
# Symbols are built from a fixed generator (not the simulation seed), so atlases with different
# seeds share one gene universe.
_PREFIXES = (
    "ABCA ACTR ADAM AKAP ANKRD ARHGAP ATP BTBD CCDC CDK CHD CLEC COL CSNK DDX DHX DNAJ DUSP "
    "EIF ELOVL FAM FBXO GPR HNRNP IFT KIF KLHL LRRC MAPK MED MRPL MRPS NDUF NUP PCDH PHF POLR "
    "PPP PRPF PSM RAB RBM RNF RPL RPS SEC SLC SMARC SNRP SPATA SRSF TMEM TRIM TTC UBE USP "
    "VPS WDR ZBTB ZC3H ZNF"
).split()


def gene_symbols(n_genes: int) -> np.ndarray:
    """``n_genes`` unique, realistic-looking (fake) gene symbols such as ``KIF17`` or ``ZNF412``."""
    rng = np.random.default_rng(0x5EED_6E4E)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n_genes:
        prefix = _PREFIXES[rng.integers(len(_PREFIXES))]
        number = int(rng.integers(1, 1000 if len(out) > 20_000 else 400))
        symbol = f"{prefix}{number}"
        if symbol not in seen:
            seen.add(symbol)
            out.append(symbol)
    return np.array(out, dtype=object)


def gene_ids(n_genes: int) -> np.ndarray:
    """Fake but well-formed Ensembl gene IDs. Real human IDs are below ENSG00000300000, so the
    ``ENSG9...`` range can never be mistaken for a real gene."""
    return np.array([f"ENSG9{i:010d}" for i in range(n_genes)], dtype=object)


def shared_log_abundance(rng: np.random.Generator, n_genes: int, spread: float) -> np.ndarray:
    """Log-normal gene levels common to all lines (natural log, arbitrary origin)."""
    return rng.normal(0.0, spread, n_genes)


def line_log_abundance(rng: np.random.Generator, shared: np.ndarray, *, line_sd: float = 0.35,
                       specific_fraction: float = 0.05, specific_sd: float = 2.0,
                       silent_fraction: float = SILENT_FRACTION) -> np.ndarray:
    """One line's log levels: the shared levels plus small line noise, a few strongly
    line-specific genes, and a fraction of genes silent in this line."""
    n = shared.size
    log_ab = shared + rng.normal(0.0, line_sd, n)
    specific = rng.random(n) < specific_fraction
    log_ab[specific] += rng.normal(0.0, specific_sd, int(specific.sum()))
    silent = rng.random(n) < silent_fraction
    log_ab[silent] += SILENT_SHIFT
    return log_ab


def abundance_from_log(log_ab: np.ndarray, spread: float) -> np.ndarray:
    """Fractions of the whole-transcriptome depth per gene.

    With at least :data:`TRANSCRIPTOME_GENES` genes the file *is* the transcriptome and the
    fractions sum to 1. With fewer, the genes are a sample of it: divide by the expected total
    of a full transcriptome (``E[exp(N(0, s^2))] = exp(s^2 / 2)`` per gene, silent genes aside),
    so that each gene keeps the level it would have in a full-size file.
    """
    levels = np.exp(log_ab)
    if log_ab.size >= TRANSCRIPTOME_GENES:
        return levels / levels.sum()
    per_gene = (1 - SILENT_FRACTION) * np.exp(spread**2 / 2) + SILENT_FRACTION * np.exp(
        SILENT_SHIFT + spread**2 / 2)
    return levels / (per_gene * TRANSCRIPTOME_GENES)


def dispersions(rng: np.random.Generator, n_genes: int) -> np.ndarray:
    """Gene-wise negative-binomial dispersion ``phi`` (variance = mu + phi * mu^2).

    Log-normal around 0.3, the range that scRNA-seq UMI data fit (e.g. sctransform's theta of
    ~1-10 for expressed genes)."""
    return np.exp(rng.normal(np.log(0.3), 0.5, n_genes))


def expected_density(abundance: np.ndarray, phi: np.ndarray, depths: np.ndarray) -> float:
    """Expected fraction of non-zero entries for cells of the given depths (no perturbation).

    P(NB count = 0) = (1 + phi * mu) ** (-1 / phi).
    """
    lam = depths[:, None] * abundance[None, :]
    p0 = np.exp(-np.log1p(phi[None, :] * lam) / phi[None, :])
    return float(1.0 - p0.mean())


def calibrate_spread(z: np.ndarray, silent: np.ndarray, phi: np.ndarray, depths: np.ndarray,
                     density: float) -> float:
    """The log-abundance spread ``s`` for which genes with levels ``exp(z * s)`` (silent ones
    shifted down) give the expected non-zero ``density`` at cells of ``depths``.

    Density falls monotonically as the spread grows (UMIs concentrate on fewer genes), so a
    bisection with the genes held fixed finds it.
    """
    if not 0.0 < density < 1.0:
        raise ValueError(f"density must be in (0, 1), got {density!r}")
    shift = np.where(silent, SILENT_SHIFT, 0.0)

    def density_at(spread: float) -> float:
        return expected_density(abundance_from_log(z * spread + shift, spread), phi, depths)

    lo, hi = 0.2, 8.0
    if density_at(lo) < density:
        return lo
    if density_at(hi) > density:
        return hi
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if density_at(mid) > density:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
