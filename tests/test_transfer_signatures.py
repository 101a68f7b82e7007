"""Signature-level DEG transfer on real Replogle 2022 K562 -> RPE1 lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from transpert._errors import TranspertInputError
from transpert.transfer.signatures import read_signatures, signature_transfer_experiment


DATA = Path(__file__).parent / "data" / "replogle2022_k562_rpe1_up_signatures.csv.gz"


@pytest.fixture(scope="module")
def signatures():
    return read_signatures(DATA)


def test_classifier_beats_copying_k562_on_real_signatures(signatures):
    # 120 of the 585 targets keep the test quick; the benchmark runs all of them
    r = signature_transfer_experiment(signatures, max_targets=120, n_boot=500, max_rows=60_000,
                                      seed=1)
    assert r["n_perturbations"] == 120
    # the whole bootstrap interval of the gain is above 0
    assert r["classifier_minus_copy_source_top"]["ci95"][0] > 0
    assert r["classifier_minus_copy_source_full"]["ci95"][0] > 0
    assert r["classifier"]["mean"] > 10 * r["prevalence"]["mean"]
    # copying K562 itself is informative (well above random): the transfer premise holds
    assert r["copy_source_top"]["mean"] > 5 * r["prevalence"]["mean"]


def test_signature_experiment_on_constructed_lists():
    """Target lists = source lists exactly: copying the source is perfect, and so is the classifier."""
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(300)]
    rows = []
    for t in range(40):
        top = rng.choice(genes, 10, replace=False)
        full = list(top) + list(rng.choice([g for g in genes if g not in top], 30, replace=False))
        for line in ("S", "T"):
            rows += [(line, f"T{t}", "up_top", k + 1, g) for k, g in enumerate(top)]
            rows += [(line, f"T{t}", "up_full_top1000", k + 1, g) for k, g in enumerate(full)]
    table = pd.DataFrame(rows, columns=["cell_line", "target", "list", "rank", "gene"])
    r = signature_transfer_experiment(table, source="S", target="T", n_boot=100)
    assert r["copy_source_top"]["mean"] == pytest.approx(1.0)
    assert r["classifier"]["mean"] > 0.99
    with pytest.raises(TranspertInputError, match="cell_line 'X' not found"):
        signature_transfer_experiment(table, source="X", target="T")
