"""Many nodes on one PostgreSQL (issue 16 item 2): write transactions follow one another under the store writer's
advisory lock, as SQLite's ``BEGIN IMMEDIATE`` makes them, while the outbox claims of delivery nodes run beside
them and beside each other (``FOR UPDATE SKIP LOCKED``), never taking the same row. Each "node" here is its own
:class:`Store` (its own connection) on a real database of the session's private cluster."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from hub.deliver import outbox
from hub.deliver.outbox import NewDelivery
from hub.store.db import Store
from tests.kits.storekit import other

WAITING = ("SELECT count(*) FROM pg_locks WHERE locktype='advisory' AND NOT granted")


@pytest.fixture
def nodes(pg_url: str) -> Iterator[tuple[Store, Store]]:
    a, b = Store(pg_url), Store(pg_url)
    yield a, b
    b.close()
    a.close()


def _until(pg_url: str, sql: str, want: int, timeout_s: float = 10.0) -> None:
    """Until ``sql`` (one number) reads ``want`` on a third connection: the positive event a test waits for."""
    deadline = time.monotonic() + timeout_s
    with other(pg_url) as conn:
        while conn.execute(sql).fetchone()[0] != want:
            assert time.monotonic() < deadline, f"{sql} never reached {want}"
            time.sleep(0.02)


def test_two_writers_on_two_nodes_follow_one_another(nodes: tuple[Store, Store], pg_url: str) -> None:
    a, b = nodes
    order: list[str] = []

    def second() -> None:
        with b.transaction():
            order.append("b")
            b.audit("node-b", "test.write", "b")

    with a.transaction():
        a.audit("node-a", "test.write", "a")
        worker = threading.Thread(target=second)
        worker.start()
        _until(pg_url, WAITING, 1)  # b's transaction waits for the writer's lock a holds
        order.append("a")
    worker.join(20)
    assert order == ["a", "b"]
    assert [r[0] for r in a.conn.execute("SELECT actor FROM audit ORDER BY seq")][-2:] == ["node-a", "node-b"]
    assert a.verify_audit().ok


def test_claims_run_beside_a_writer_and_never_take_the_same_row(nodes: tuple[Store, Store]) -> None:
    a, b = nodes
    outbox.enqueue(a, [NewDelivery(f"1/push/s{i}", 1, "t", "push", f"s{i}", "h", 5, None) for i in range(10)])
    got: dict[str, list[str]] = {}

    def claim_b() -> None:
        got["b"] = [d.key for d in outbox.claim(b, "push", 4, lease_s=60)]

    with a.transaction() as conn:  # node a holds the writer's lock and has locked rows of its claim
        held = conn.execute("SELECT key FROM outbox ORDER BY id LIMIT 3 FOR UPDATE").fetchall()
        worker = threading.Thread(target=claim_b)
        worker.start()
        worker.join(20)  # the claim neither waits for the writer's lock nor for the rows a holds
        assert not worker.is_alive()
    assert got["b"] == [f"1/push/s{i}" for i in range(3, 7)]
    assert not {k for (k,) in held} & set(got["b"])
    rest = [d.key for d in outbox.claim(a, "push", 10, lease_s=60)]
    assert sorted(rest + got["b"]) == sorted(f"1/push/s{i}" for i in range(10))
