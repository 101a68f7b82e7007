"""Shared pytest configuration: every test writes under tmp_path and seeds its randomness."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

TEST_DATA = Path(__file__).parent / "data"


@pytest.fixture
def test_data_dir() -> Path:
    """Small real Perturb-seq fixtures shipped with the tests (see tests/data/PROVENANCE.md)."""
    return TEST_DATA
