"""Many nodes (hub.cluster): roles are refused on SQLite, events cross nodes through LISTEN/NOTIFY, and a lock's
work runs on one node at a time and moves to another when its holder's connection closes. Real PostgreSQL (the
session's private cluster, tests/kits/postgres.py); each "node" is its own bus and connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub import app, cluster
from hub.config import load as config_mod
from hub.errors import ConfigError
from hub.events import AlertStored, Bus, Queued
from hub.store.db import AsyncStore, Store
from tests.kits import hubproc


def test_roles_default_to_all_and_need_postgresql_otherwise() -> None:
    assert cluster.roles_of(None, store_url=None) == cluster.ALL
    assert cluster.roles_of(["all"], store_url=None) == cluster.ALL
    assert cluster.roles_of(["deliver", "web"], store_url="postgresql://x/y") == {"deliver", "web"}
    with pytest.raises(ConfigError, match="one SQLite file is one node"):
        cluster.roles_of(["deliver"], store_url=None)
    with pytest.raises(ConfigError, match="unknown role"):
        cluster.roles_of(["poll"], store_url="postgresql://x/y")


def test_run_with_a_role_on_sqlite_refuses_to_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loaded = config_mod.load(hubproc.write_config(tmp_path, port=hubproc.free_port()))
    assert app.main(loaded, ["ingest", "decide"]) == 2
    err = capsys.readouterr().err
    assert "eine SQLite-Datei ist ein Knoten" in err and "one SQLite file is one node" in err
    assert not (tmp_path / "hub.db").exists()  # refused before anything opened


@pytest.fixture
async def astore(pg_url: str) -> AsyncIterator[AsyncStore]:
    a = AsyncStore(Store(pg_url))
    yield a
    a.close()


async def _until(check: object, what: str, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_events_cross_nodes_once_and_never_echo(pg_url: str, astore: AsyncStore) -> None:
    buses = {"a": Bus(), "b": Bus()}
    heard: dict[str, list[object]] = {"a": [], "b": []}
    bridges = {n: cluster.Bridge(pg_url, bus, astore, node=n) for n, bus in buses.items()}
    for n, bus in buses.items():
        bridges[n].attach()
        bus.subscribe(Queued, heard[n].append)
        bus.subscribe(AlertStored, heard[n].append)
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(b.run()) for b in bridges.values()]
        await asyncio.wait_for(asyncio.gather(*(b.listening.wait() for b in bridges.values())), 10)
        buses["a"].publish(Queued(frozenset({"push"})))
        await _until(lambda: len(heard["b"]) == 1, "b hears a's Queued")
        buses["b"].publish(AlertStored(7, 3, "cap-inbox"))
        await _until(lambda: len(heard["a"]) == 2, "a hears b's AlertStored")
        for task in tasks:
            task.cancel()
    # each node heard its own event once (locally) and the other's once (relayed, not sent back again)
    assert heard["a"] == [Queued(frozenset({"push"})), AlertStored(7, 3, "cap-inbox")]
    assert heard["b"] == [Queued(frozenset({"push"})), AlertStored(7, 3, "cap-inbox")]


async def test_a_lock_is_held_by_one_node_and_taken_over_when_it_dies(pg_url: str) -> None:
    runs: list[str] = []

    def work(node: str) -> object:
        async def body() -> None:
            runs.append(node)
            await asyncio.Event().wait()
        return body

    first, second = (cluster.Holder(pg_url, "source.test", interval_s=0.2) for _ in range(2))
    one = asyncio.create_task(first.run(work("first")))  # type: ignore[arg-type]
    await _until(lambda: first.holding, "the first node holds the lock")
    two = asyncio.create_task(second.run(work("second")))  # type: ignore[arg-type]
    await _until(lambda: second.tries >= 3, "the second node tried a few times")
    assert runs == ["first"] and not second.holding
    one.cancel()  # the holder dies: its connection closes, the server releases the lock
    await _until(lambda: second.holding and runs == ["first", "second"], "the second node takes over")
    two.cancel()
    await asyncio.gather(one, two, return_exceptions=True)
