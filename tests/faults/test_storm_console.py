"""Fault 6 with the control room (issue 17 §1, "the console still sends"): a small Warntag replay through the real
daemon — DWD as CAP files, MoWaS, KATWARN and BIWAPP as NINA JSON from a local NINA API polled by the hub's real
NINA source (tests/kits/stormkit.py) — and, while the storm's pushes are being delivered, the control room sends an
evacuation warning through the hub's console API (author writes and submits, approver approves: four eyes).

The console warning is published and every subscriber in its area gets it, while the storm's own pushes are still
going out (the push service receives it before the storm's last push); the replay's Extreme reaches everyone; the
invariant checker holds (I1-I4). Positive events only: the send waits until delivery is busy (more rows open than
one warning's fan-out), and the run ends when no row is open.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.faults.test_storm import WINDOW_MIN, N, open_rows, wait_ingested
from tests.kits.fanoutkit import HISTORY, rig, rx_get
from tests.kits.hubproc import drop
from tests.kits.invariants import check, read_history, receipts_of
from tests.kits.stormkit import (
    NINA_SOURCE,
    ConsoleSender,
    NinaApi,
    Trigger,
    add_console_users,
    console_form,
    replay,
)


def send(home: Path, api: NinaApi, triggers: list[Trigger]) -> None:
    for t in triggers:
        if t.source == "nina-api":
            api.publish(t)
        else:
            drop(home / ("inbox" if t.source == "inbox" else "nina-inbox"), t.name, t.data, settled=True)


def pushes_sent(home: Path) -> int:
    return sum(1 for e in read_history(home / HISTORY) if e["ev"] == "send" and e["channel"] == "push"
               and e["outcome"] == "done")


def test_a_console_warning_is_published_and_pushed_while_the_storm_saturates_delivery() -> None:
    triggers = replay(dwd=4, mowas=4, katwarn=1, biwapp=1, updates=1, cancels=1, copies=1, tag="fault6c",
                      nina_api=True)
    assert {t.source for t in triggers} == {"inbox", "nina", "nina-api"}
    first = [t for t in triggers if t.kind in ("dwd", "mowas", "katwarn", "biwapp")]
    then = [t for t in triggers if t.kind in ("copy", "update", "cancel")]
    api = NinaApi()
    try:
        with rig(N, 1, "warnhub-fault-storm-console-", history=True, extra=NINA_SOURCE + api.source(interval_s=0.3),
                 push=f"budget_window_min = {WINDOW_MIN}\nbudget_pushes = 3") as r:
            home = r.config.parent
            (home / "nina-inbox").mkdir()
            add_console_users(home / "hub.db")
            r.hub.start()
            console = ConsoleSender(r.hub.base)
            wid = console.prepare(console_form("Deichbruch: Evakuierung der Ortsmitte"))
            deadline = time.monotonic() + 300
            send(home, api, first)
            # the storm is being delivered and more is open than one warning's whole fan-out: send now
            while not (pushes_sent(home) and open_rows(home) >= N):
                assert time.monotonic() < deadline, "the storm never saturated delivery"
                time.sleep(0.05)
            sent = console.approve(wid)
            wait_ingested(home, len(first), deadline)
            send(home, api, then)
            wait_ingested(home, len(first) + len(then) - 1, deadline)  # the copy is no new version
            send(home, api, [t for t in triggers if t.kind == "extreme"])
            wait_ingested(home, len(triggers) - 1, deadline)
            with sqlite3.connect(f"{(home / 'hub.db').as_uri()}?mode=ro", uri=True) as db:
                console_alert = db.execute("SELECT id FROM alerts WHERE identifier=?", (sent.identifier,)).fetchone()
                assert console_alert is not None, sent
            while time.monotonic() < deadline and (open_rows(home) or not any(
                    e["ev"] == "publish" and e["severity"] == "Extreme" and e["source_alert"] != console_alert[0]
                    for e in read_history(home / HISTORY))):
                time.sleep(0.2)
            r.hub.stop()
            receipts = receipts_of(rx_get(r.rx_port, "/receipts")["receipts"])
            verdict = check(home / HISTORY, home / "hub.db", receipts, p99_limit_s=None)
            history = read_history(home / HISTORY)
            with sqlite3.connect(home / "hub.db") as db:
                rows = dict(db.execute("SELECT p.source_alert, count(*) FROM outbox o JOIN publications p"
                                       " ON p.id = o.publication_id WHERE o.channel='push' GROUP BY 1"))
    finally:
        api.close()
    verdict.assert_holds()
    pubs = {e["source_alert"]: e for e in history if e["ev"] == "publish"}
    mine = pubs[console_alert[0]]  # the console's warning was published
    assert (mine["severity"], mine["status"]) == ("Extreme", "Actual")
    got = [x for x in receipts if x.thread == mine["thread"]]
    assert rows[console_alert[0]] > 0 and len(got) == rows[console_alert[0]]  # everyone in its area has it
    # ... while the storm's delivery was still busy: the push service had it before the storm's last push
    storm = [x.at for x in receipts if x.thread != mine["thread"] and not x.thread.startswith("summary:")]
    assert min(x.at for x in got) < max(storm)
    # the NINA API's warnings came in through the NINA source, and the replay's Extreme reached everyone
    ingested_from_nina = [e for e in history if e["ev"] == "ingest" and e["origin"] == "nina-api"]
    assert len(ingested_from_nina) == sum(1 for t in triggers if t.source == "nina-api")
    extreme = next(e for e in history if e["ev"] == "publish" and e["severity"] == "Extreme"
                   and e["source_alert"] != console_alert[0])
    assert sum(1 for x in receipts if x.thread == extreme["thread"]) == N
