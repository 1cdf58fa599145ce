"""Fixtures for the CAP core tests: everything is read from tests/data (see tests/data/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The test data folder: cap/, cap_legacy/, cap_invalid/, cap_derived/, feeds/invalid/."""
    return DATA
