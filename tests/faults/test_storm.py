"""Fault 6 without the broker (issue 17 §1): a small Warntag replay through the real daemon to the local push
receiver — DWD and MoWaS warnings over overlapping areas, KATWARN and BIWAPP (web only), a copy of a DWD warning
through a second source, a significant Update, a Cancel, and an Extreme last.

Each person gets at most three pushes in the budget's window (two warnings and the Extreme; the rest coalesced into
one summary push at the window's end), the copy costs no second push, everyone in the Extreme's area has it, and
the invariant checker holds (I1 counts a coalesced row as reached once its summary was received).
"""

from __future__ import annotations

import collections
import sqlite3
import time
from pathlib import Path

from tests.kits.fanoutkit import HISTORY, rig, rx_get
from tests.kits.hubproc import drop
from tests.kits.invariants import check, read_history, receipts_of
from tests.kits.stormkit import NINA_SOURCE, Trigger, replay

N = 1500
WINDOW_MIN = 1.0
"""Long enough that every warning of the replay is judged within one window (they arrive within seconds), short
enough that the summaries go out in the test (they are due a window after each person's first push)."""


def open_rows(home: Path) -> int:
    with sqlite3.connect(f"{(home / 'hub.db').as_uri()}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM outbox WHERE state IN ('queued', 'inflight')").fetchone()[0])


def wait_ingested(home: Path, n: int, deadline: float) -> None:
    while sum(1 for e in read_history(home / HISTORY) if e["ev"] == "ingest") < n:
        assert time.monotonic() < deadline, "the triggers were not all ingested"
        time.sleep(0.1)


def send(home: Path, triggers: list[Trigger]) -> None:
    for t in triggers:
        drop(home / ("inbox" if t.source == "inbox" else "nina-inbox"), t.name, t.data, settled=True)


def test_storm_gives_each_person_at_most_three_pushes_and_loses_nothing() -> None:
    triggers = replay(dwd=4, mowas=4, katwarn=1, biwapp=1, updates=1, cancels=1, copies=1, tag="fault6")
    first = [t for t in triggers if t.kind in ("dwd", "mowas", "katwarn", "biwapp")]
    then = [t for t in triggers if t.kind in ("copy", "update", "cancel")]
    extreme = [t for t in triggers if t.kind == "extreme"]
    with rig(N, 1, "warnhub-fault-storm-", history=True, extra=NINA_SOURCE,
             push=f"budget_window_min = {WINDOW_MIN}\nbudget_pushes = 3") as r:
        home = r.config.parent
        (home / "nina-inbox").mkdir()
        r.hub.start()
        deadline = time.monotonic() + 300
        send(home, first)
        wait_ingested(home, len(first), deadline)
        send(home, then)  # the copy is the same alert version: nothing new is stored for it
        wait_ingested(home, len(first) + len(then) - 1, deadline)
        send(home, extreme)
        wait_ingested(home, len(triggers) - 1, deadline)
        while (time.monotonic() < deadline and
               (open_rows(home) or not any(e["ev"] == "publish" and e["severity"] == "Extreme"
                                           for e in read_history(home / HISTORY)))):
            time.sleep(0.2)  # the summaries are due a window after the storm's first pushes
        r.hub.stop()
        receipts = receipts_of(rx_get(r.rx_port, "/receipts")["receipts"])
        ingested = sum(1 for e in read_history(home / HISTORY) if e["ev"] == "ingest")
        verdict = check(home / HISTORY, home / "hub.db", receipts, p99_limit_s=None)
        with sqlite3.connect(home / "hub.db") as db:
            extreme_thread = db.execute("SELECT thread FROM publications WHERE severity='Extreme'").fetchone()[0]
    verdict.assert_holds()
    warnings = collections.Counter(x.recipient for x in receipts if not x.thread.startswith("summary:"))
    summaries = collections.Counter(x.recipient for x in receipts if x.thread.startswith("summary:"))
    states = verdict.figures["row_states"]
    assert states.get("coalesced", 0) > 0, states  # the storm really went over the budget
    assert max(warnings.values()) <= 3, warnings.most_common(3)
    assert max(summaries.values()) == 1, summaries.most_common(3)  # one summary per person and window
    assert sum(1 for x in receipts if x.thread == extreme_thread) == N  # the Extreme reached everyone in its area
    assert ingested == len(triggers) - 1  # the copy through the second source was no new version: no second push
