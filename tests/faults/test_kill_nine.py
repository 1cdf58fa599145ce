"""Fault 1: kill -9 during a fan-out of 20,000 pushes, restart; the invariant checker over the run (I1-I5).

Nothing is lost (every row ends done and was received); nothing arrives twice except rows that were in flight at
the kill (the receiver sees their idempotency key twice); versions in order; the first push within a second.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.kits.fanoutkit import HISTORY, rig, rx_get, storm
from tests.kits.hubproc import drop
from tests.kits.invariants import check, receipts_of

N = 20_000


def open_rows(home: Path) -> int:
    with sqlite3.connect(f"{(home / 'hub.db').as_uri()}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM outbox WHERE state IN ('queued', 'inflight')").fetchone()[0])


def test_kill_nine_during_fanout_loses_nothing() -> None:
    with rig(N, 0, "warnhub-fault-kill-", history=True) as r:
        home = r.config.parent
        r.hub.start()
        drop(home / "inbox", "storm.xml", storm("faults-storm"), settled=True)
        deadline = time.monotonic() + 300
        while (arrived := rx_get(r.rx_port, "/count")["arrived"]) < N * 0.3:
            assert time.monotonic() < deadline, f"only {arrived} of {N} arrived before the kill point"
            time.sleep(0.01)
        r.hub.kill()
        with sqlite3.connect(home / "hub.db") as db:
            inflight = {k for (k,) in db.execute("SELECT key FROM outbox WHERE state='inflight'")}
        r.hub.start()
        while open_rows(home) and time.monotonic() < deadline:  # the checker says what is left at the deadline
            time.sleep(0.1)
        r.hub.stop()
        receipts = receipts_of(rx_get(r.rx_port, "/receipts")["receipts"])
        verdict = check(home / HISTORY, home / "hub.db", receipts, allowed=inflight, p99_limit_s=None)
    assert arrived < N  # the kill really came in the middle
    verdict.assert_holds()
    assert len({x.key for x in receipts}) == N and verdict.figures["row_states"] == {"done": N}
    assert verdict.figures["duplicates"] <= len(inflight), (verdict.figures, len(inflight))
