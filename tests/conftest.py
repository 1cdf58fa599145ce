"""Fixtures for the CAP core tests: everything is read from tests/data (see tests/data/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kits import paths

DATA = paths.DATA


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The test data folder: cap/, cap_legacy/, cap_invalid/, cap_derived/, feeds/invalid/."""
    return DATA


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests under tests/e2e/ start the daemon, a browser or a broker: marked ``e2e`` (``-m "not e2e"`` skips
    them and runs the unit tests alone). Tests under tests/faults/ (the fault suite, each fault with the invariant
    checker) are marked ``faults`` and ``e2e``: they start the daemon too."""
    here = Path(__file__).resolve().parent
    for item in items:
        parents = Path(str(item.path)).parents
        if here / "e2e" in parents or here / "faults" in parents:
            item.add_marker(pytest.mark.e2e)
        if here / "faults" in parents:
            item.add_marker(pytest.mark.faults)
