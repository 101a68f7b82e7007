"""A seeded split of perturbation labels into training and held-out (the demo, the benchmarks)."""

from __future__ import annotations

import numpy as np

from transpert._errors import TranspertInputError


def split_perturbations(perturbations, n_heldout: int | float, seed: int = 0) -> tuple[list[str], list[str]]:
    """Seeded split into (training, held-out); ``n_heldout`` a count or a fraction."""
    perts = sorted(map(str, perturbations))
    n = int(round(n_heldout * len(perts))) if isinstance(n_heldout, float) else int(n_heldout)
    if not 1 <= n < len(perts) - 1:
        raise TranspertInputError(f"cannot hold out {n_heldout!r} of {len(perts)} perturbations "
                                  "(need at least one held out and two for training)")
    rng = np.random.default_rng(seed)
    held = set(rng.choice(perts, n, replace=False))
    return [p for p in perts if p not in held], [p for p in perts if p in held]
