"""Fault 6 (issue 17 §1 and §3): a small Warntag replay through the real daemon to the local push receiver — DWD
and MoWaS warnings over overlapping areas, KATWARN and BIWAPP (web only), a copy of a DWD warning through a second
source, a significant Update, a Cancel, and an Extreme last — without and with the MQTT broker of the boards killed
(-9) in the middle.

Each person gets at most three pushes in the budget's window (two warnings and the Extreme; the rest coalesced into
one summary push at the window's end), the copy costs no second push, everyone in the Extreme's area has it, and
the invariant checker holds (I1 counts a coalesced row as reached once its summary was received). With the broker
killed, the boards show the final state (the Extreme) once it is back.
"""

from __future__ import annotations

import collections
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_boards import read_retained
from tests.kits.fanoutkit import HISTORY, rig, rx_get
from tests.kits.hubproc import HubProcess, drop
from tests.kits.invariants import Receipt, Verdict, check, read_history, receipts_of
from tests.kits.mosquitto import Mosquitto, MosquittoMissing
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


@dataclass
class Run:
    receipts: list[Receipt]
    verdict: Verdict
    ingested: int
    extreme_thread: str
    history: list[dict[str, Any]]


def storm(home: Path, rx_port: int, hub: HubProcess, triggers: list[Trigger],
          outage: Callable[[str], None] = lambda phase: None) -> Run:
    """Drop the replay in three waves (the originals; copy, Update and Cancel; the Extreme), each once the wave
    before is stored; ``outage`` is told ``"storm"`` after the first wave and ``"extreme"`` after the last; then wait
    until no row is open (the summaries go out a window after the first pushes) and check the run."""
    first = [t for t in triggers if t.kind in ("dwd", "mowas", "katwarn", "biwapp")]
    then = [t for t in triggers if t.kind in ("copy", "update", "cancel")]
    deadline = time.monotonic() + 300
    send(home, first)
    wait_ingested(home, len(first), deadline)
    outage("storm")
    send(home, then)  # the copy is the same alert version: nothing new is stored for it
    wait_ingested(home, len(first) + len(then) - 1, deadline)
    send(home, [t for t in triggers if t.kind == "extreme"])
    wait_ingested(home, len(triggers) - 1, deadline)
    outage("extreme")
    while (time.monotonic() < deadline and
           (open_rows(home) or not any(e["ev"] == "publish" and e["severity"] == "Extreme"
                                       for e in read_history(home / HISTORY)))):
        time.sleep(0.2)
    hub.stop()
    receipts = receipts_of(rx_get(rx_port, "/receipts")["receipts"])
    history = read_history(home / HISTORY)
    verdict = check(home / HISTORY, home / "hub.db", receipts, p99_limit_s=None)
    with sqlite3.connect(home / "hub.db") as db:
        extreme_thread = db.execute("SELECT thread FROM publications WHERE severity='Extreme'").fetchone()[0]
    return Run(receipts, verdict, sum(1 for e in history if e["ev"] == "ingest"), extreme_thread, history)


def assert_budget_held(run: Run, triggers: list[Trigger]) -> None:
    run.verdict.assert_holds()
    warnings = collections.Counter(x.recipient for x in run.receipts if not x.thread.startswith("summary:"))
    summaries = collections.Counter(x.recipient for x in run.receipts if x.thread.startswith("summary:"))
    states = run.verdict.figures["row_states"]
    assert states.get("coalesced", 0) > 0, states  # the storm really went over the budget
    assert max(warnings.values()) <= 3, warnings.most_common(3)
    assert max(summaries.values()) == 1, summaries.most_common(3)  # one summary per person and window
    assert sum(1 for x in run.receipts if x.thread == run.extreme_thread) == N  # everyone in its area has it
    assert run.ingested == len(triggers) - 1  # the copy through the second source: no new version, no push


def test_storm_gives_each_person_at_most_three_pushes_and_loses_nothing() -> None:
    triggers = replay(dwd=4, mowas=4, katwarn=1, biwapp=1, updates=1, cancels=1, copies=1, tag="fault6")
    with rig(N, 1, "warnhub-fault-storm-", history=True, extra=NINA_SOURCE,
             push=f"budget_window_min = {WINDOW_MIN}\nbudget_pushes = 3") as r:
        home = r.config.parent
        (home / "nina-inbox").mkdir()
        r.hub.start()
        run = storm(home, r.rx_port, r.hub, triggers)
    assert_budget_held(run, triggers)


BOARDS = """
[[boards]]
id = "tafel-{n}"
name = "Tafel {n}"
ars = "033545406004"
kind = "mqtt"
port = {port}
topic = "boards/tafel-{n}"
"""


def test_storm_with_the_broker_killed_boards_get_the_final_state(tmp_path: Path) -> None:
    """Fault 6: the MQTT broker the boards use is killed (-9) once the storm has reached the boards, and comes back
    after the Extreme was stored: the boards show the Extreme (the most urgent warning in force) once it is back,
    and the pushes and the invariants are as without the fault."""
    triggers = replay(dwd=4, mowas=4, katwarn=1, biwapp=1, updates=1, cancels=1, copies=1, tag="fault6b")
    try:
        broker = Mosquitto(tmp_path / "broker")
    except MosquittoMissing as err:
        pytest.fail(str(err))
    broker.start()
    try:
        with rig(N, 1, "warnhub-fault-storm-broker-", history=True,
                 extra=NINA_SOURCE + "".join(BOARDS.format(n=i, port=broker.port) for i in range(2)),
                 push=f"budget_window_min = {WINDOW_MIN}\nbudget_pushes = 3") as r:
            home = r.config.parent
            (home / "nina-inbox").mkdir()
            r.hub.start()

            def outage(phase: str) -> None:
                if phase == "storm":  # the boards have shown the storm: then the broker dies
                    wait_for(home, lambda e: e["channel"] == "boards-mqtt" and e["outcome"] == "done")
                    broker.stop(kill=True)
                else:  # the boards could not get the newest states: the broker comes back
                    wait_for(home, lambda e: e["channel"] == "boards-mqtt" and e["outcome"] == "retry")
                    broker.start()

            run = storm(home, r.rx_port, r.hub, triggers, outage)
        shown = [read_retained(broker.port, f"boards/tafel-{i}") for i in range(2)]
    finally:
        broker.stop()
    assert_budget_held(run, triggers)
    for got in shown:
        assert got is not None, "a board has no state after the broker came back"
        state = json.loads(got[0])
        assert (state["thread"], state["severity"]) == (run.extreme_thread, "Extreme"), state
    retried = [e for e in run.history if e["ev"] == "send" and e["channel"] == "boards-mqtt"
               and e["outcome"] == "retry"]
    assert retried  # the boards really felt the outage


def wait_for(home: Path, match: Callable[[dict[str, Any]], bool]) -> None:
    """Until a ``send`` line of the history matches."""
    deadline = time.monotonic() + 120
    while not any(e["ev"] == "send" and match(e) for e in read_history(home / HISTORY)):
        assert time.monotonic() < deadline, "the awaited delivery outcome never came"
        time.sleep(0.1)
