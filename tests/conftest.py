"""Fixtures for the CAP core tests: everything is read from tests/data (see tests/data/README.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hub.store.db import AsyncStore, Store
from tests.kits import paths
from tests.kits.postgres import Cluster

DATA = paths.DATA


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The test data folder: cap/, cap_legacy/, cap_invalid/, cap_derived/, feeds/invalid/."""
    return DATA


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """The session's private PostgreSQL cluster (tests/kits/postgres.py), started by the first test that needs it."""
    cluster = Cluster()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a store test keeps its store, once for each backend: a new SQLite file, or a new PostgreSQL database
    in the session's cluster (dropped after the test)."""
    if request.param == "sqlite":
        yield str(tmp_path / "store" / "warnhub.db")
        return
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    url = cluster.database()
    yield url
    cluster.drop(url)


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """A new PostgreSQL database for a test about PostgreSQL alone (dropped after it)."""
    url = pg_cluster.database()
    yield url
    pg_cluster.drop(url)


@pytest.fixture
async def two_nodes(pg_url: str) -> AsyncIterator[tuple[AsyncStore, AsyncStore]]:
    """Two nodes' stores (each its own writer thread and connections) on one new PostgreSQL database."""
    a, b = AsyncStore(Store(pg_url)), AsyncStore(Store(pg_url))
    yield a, b
    b.close()
    a.close()


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
