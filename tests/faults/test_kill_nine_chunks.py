"""kill -9 of the hub while a fan-out's chunks are still being written (hub/deliver/fanout.py), restart; the
invariant checker over the run (I1-I4), and every subscriber got the warning exactly once.

The invariant checker holds the hub to the rows it committed; chunks not yet written are not rows yet, so this test
also counts what the receiver got against the subscriptions: a chunk lost at the kill would show as missing keys.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.kits.fanoutkit import HISTORY, rig, rx_get, storm
from tests.kits.hubproc import drop
from tests.kits.invariants import check, receipts_of

N = 20_000


def counts(home: Path) -> tuple[int, int]:
    """(chunks not yet written, outbox rows queued or in flight); (0, 0) before the hub made its tables."""
    try:
        with sqlite3.connect(f"{(home / 'hub.db').as_uri()}?mode=ro", uri=True, timeout=10) as db:
            chunks = int(db.execute("SELECT count(*) FROM fanout").fetchone()[0])
            rows = int(db.execute("SELECT count(*) FROM outbox WHERE state IN ('queued', 'inflight')").fetchone()[0])
            return chunks, rows
    except sqlite3.OperationalError:
        return 0, 0


def test_kill_nine_between_chunks_every_subscriber_gets_it_once() -> None:
    with rig(N, 0, "warnhub-fault-chunks-", history=True) as r:
        home = r.config.parent
        r.hub.start()
        drop(home / "inbox", "storm.xml", storm("faults-chunks"), settled=True)
        deadline = time.monotonic() + 300
        while counts(home)[0] == 0:  # the publication is committed with chunks left: kill now
            assert time.monotonic() < deadline, "the publication never left chunks to write"
            r.hub.assert_alive()
            time.sleep(0.002)
        r.hub.kill()
        with sqlite3.connect(home / "hub.db") as db:
            inflight = {k for (k,) in db.execute("SELECT key FROM outbox WHERE state='inflight'")}
            rows_at_kill = int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
        chunks_at_kill = counts(home)[0]
        r.hub.start()
        while any(counts(home)) and time.monotonic() < deadline:  # the checker says what is left at the deadline
            time.sleep(0.1)
        r.hub.stop()
        receipts = receipts_of(rx_get(r.rx_port, "/receipts")["receipts"])
        verdict = check(home / HISTORY, home / "hub.db", receipts, allowed=inflight, p99_limit_s=None)
    assert chunks_at_kill > 0 and rows_at_kill < N, (chunks_at_kill, rows_at_kill)  # the kill came between chunks
    verdict.assert_holds()
    assert len({x.key for x in receipts}) == N and verdict.figures["row_states"] == {"done": N}
    assert verdict.figures["duplicates"] <= len(inflight), (verdict.figures, len(inflight))
