"""Push fan-out in priority chunks (hub/deliver/fanout.py), on SQLite and PostgreSQL: the publication's transaction
writes the first rows and durable chunks for the rest; each later transaction writes one chunk and removes it.
Every recipient ends with exactly one row per version, also after a kill -9 of the process writing the chunks; an
Update that overtakes a fan-out still being written supersedes it; Extreme chunks are written before Minor ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hub.deliver import fanout, outbox
from hub.publish import subscriptions
from hub.store.db import Store
from tests.kits.hubproc import REPO, subprocess_env

P256DH = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"


def subscribe(store: Store, n: int) -> list[str]:
    return [subscriptions.create(store, subscriptions.Subscription(
        endpoint=f"https://push{i % 3}.example:8443/ep/{i}", p256dh=P256DH, auth="BTBZMqHH6r4Tts7J_aSIgg",
        places=(subscriptions.PointPlace(53.0, 11.1, 1000),)))[0] for i in range(n)]


def job(pub: int, thread: str = "w1", prio: int = 5) -> fanout.Job:
    return fanout.Job(pub, thread, f"id-{pub}/push/", prio, None)


def start(store: Store, j: fanout.Job, ids: list[str], first: int, chunk: int) -> tuple[int, int]:
    with store.transaction() as conn:
        return fanout.start_in(conn, j, ids, first=first, chunk=chunk)


def rows(store: Store, pub: int) -> dict[str, tuple[str, str]]:
    """recipient -> (state, host) of a publication's push rows; asserts there is at most one per recipient."""
    found = store.conn.execute("SELECT recipient, state, host, key FROM outbox WHERE publication_id=?",
                               (pub,)).fetchall()
    assert len(found) == len({r[0] for r in found}), "a recipient has two rows of one version"
    assert all(key == f"id-{pub}/push/{rcp}" for rcp, _, _, key in found)
    return {r[0]: (r[1], r[2]) for r in found}


def drain(store: Store) -> list[int]:
    """Write every chunk left; the rows each step stored."""
    out = []
    while (done := fanout.step(store)) is not None:
        out.append(done.inserted)
    return out


def test_first_chunk_in_the_publication_then_one_chunk_per_step(store_url: str) -> None:
    store = Store(store_url)
    ids = subscribe(store, 23)
    assert start(store, job(1), ids, first=5, chunk=4) == (5, 18)
    assert set(rows(store, 1)) == set(ids[:5])  # only the first chunk is written before the commit
    assert fanout.pending(store) == 5
    assert drain(store) == [4, 4, 4, 4, 2]
    got = rows(store, 1)
    assert set(got) == set(ids) and {s for s, _ in got.values()} == {"queued"}
    assert {h for _, h in got.values()} == {"push0.example:8443", "push1.example:8443", "push2.example:8443"}
    assert fanout.pending(store) == 0 and fanout.step(store) is None
    store.close()


_CHILD = """
import sys
from hub.deliver import fanout
from hub.store.db import Store
store = Store(sys.argv[1])
print("ready", flush=True)
while fanout.step(store) is not None:
    pass
print("finished", flush=True)
"""


def test_kill9_while_chunks_are_written_resumes_and_writes_each_row_once(store_url: str, tmp_path: Path) -> None:
    """A process writing chunks is killed (SIGKILL) part way; the next one resumes at the chunks left: every
    recipient has exactly one row, none is missing."""
    store = Store(store_url)
    ids = subscribe(store, 600)
    assert start(store, job(1), ids, first=10, chunk=2) == (10, 590)
    child = subprocess.Popen([sys.executable, "-c", _CHILD, store_url], stdout=subprocess.PIPE, text=True,
                             cwd=REPO, env=subprocess_env())
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while len(rows(store, 1)) < 100:
            assert time.monotonic() < deadline and child.poll() is None, "the chunk writer did not get going"
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    left = fanout.pending(store)
    assert left > 0, "every chunk was written before the kill: the crash tested nothing"
    assert len(rows(store, 1)) == 10 + 2 * (295 - left)  # no chunk half written, none removed unwritten
    assert sum(drain(store)) == 2 * left
    assert set(rows(store, 1)) == set(ids)
    store.close()


def test_an_update_overtaking_a_fan_out_supersedes_it(store_url: str) -> None:
    """v1 goes to 20, v2 (the same thread) to the first 12 while v1's chunks are still being written: v2's chunks
    are written first, and no recipient of v2 keeps a queued v1 row; the 8 that v2 no longer reaches keep v1."""
    store = Store(store_url)
    ids = subscribe(store, 20)
    start(store, job(1), ids, first=4, chunk=4)
    assert fanout.step(store) is not None  # v1: 8 rows written, 12 recipients left in chunks
    start(store, job(2), ids[:12], first=2, chunk=5)
    order = []
    while (row := store.conn.execute("SELECT publication_id FROM fanout ORDER BY priority, publication_id DESC,"
                                     " seq LIMIT 1").fetchone()) is not None:
        order.append(row[0])
        fanout.step(store)
    assert order == [2, 2, 1, 1, 1]  # the newer version's chunks first
    v1, v2 = rows(store, 1), rows(store, 2)
    assert set(v2) == set(ids[:12]) and {s for s, _ in v2.values()} == {"queued"}
    assert set(v1) == set(ids)
    assert {r for r, (s, _) in v1.items() if s == "queued"} == set(ids[12:])
    assert {s for r, (s, _) in v1.items() if r in ids[:12]} == {"superseded"}
    store.close()


def test_a_cancel_drops_the_chunks_of_older_versions(store_url: str) -> None:
    store = Store(store_url)
    ids = subscribe(store, 10)
    start(store, job(1), ids, first=3, chunk=3)
    start(store, job(5, thread="w2"), ids, first=3, chunk=3)
    with store.transaction() as conn:
        assert fanout.drop_in(conn, "w1", below_publication=2) == 3
    drain(store)
    assert set(rows(store, 1)) == set(ids[:3]) and set(rows(store, 5)) == set(ids)  # the other thread goes on
    store.close()


def test_extreme_chunks_are_written_and_claimed_before_a_big_minor_fan_out(store_url: str) -> None:
    store = Store(store_url)
    ids = subscribe(store, 30)
    start(store, job(1, "minor", prio=9), ids, first=2, chunk=4)
    fanout.step(store)
    start(store, job(2, "extreme", prio=0), ids, first=2, chunk=4)
    steps = [fanout.step(store) for _ in range(8)]  # the Extreme's 28 recipients left, in chunks of 4, then Minor
    # the pipeline writes the Extreme's in the urgent lane, then goes back to bulk
    assert [s.priority if s is not None else None for s in steps] == [0] * 7 + [9]
    assert len(rows(store, 2)) == 30  # all the Extreme's chunks were written before the Minor's next one
    assert len(rows(store, 1)) == 10
    claimed = outbox.claim(store, "push", 32, lease_s=30)
    assert [d.publication_id for d in claimed] == [2] * 30 + [1] * 2
    assert outbox.claim(store, "push", 32, lease_s=30, max_priority=1) == []  # the express loop's claim
    store.close()
