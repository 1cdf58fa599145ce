"""Storm benchmark: a Warntag replay (issue 17 §1) through the whole hub to the local push receiver.

    python bench/storm.py --subscribers 50000 --json

52 triggers within 60 s (tests/kits/stormkit.py): DWD and MoWaS warnings over overlapping areas of the district,
KATWARN and BIWAPP (web only by the district's rules), copies of DWD warnings through a second source (the NINA
replay directory), significant Updates, Cancels, and one Extreme for the whole district that arrives last. DWD comes
as CAP files; MoWaS, KATWARN and BIWAPP as NINA JSON from a local NINA API (the hub's real NINA source polling the
district's dashboard); one MoWaS slot is the control room instead: an Extreme evacuation for the centre of the
district, written and submitted before the storm and approved (four eyes) through the hub's console API in the
middle of it — into the real daemon (``warnhub run``, SQLite store, the repository's rules, ``[debug] history``),
with N subscriptions spread over the district at the local Web Push service in its own process
(tests/kits/fanoutkit.py). The push budget is the hub's default (3 per window) with the window given
(``--window-min``, default 2 so that the run also sees the summaries go out); the run ends when no row is queued or
in flight.

Prints one JSON object: {"subscribers", "triggers", "pushes", "max_pushes_per_subscriber", "extreme_first_push_s",
"extreme_all_delivered_s", "lost", "duplicates"} and "verdict" (the invariant checker, I1-I4; I5 as a figure),
"console_send_s" (from the approver's send request to the console warning's first push accepted by the push
service), "accept_to_publish" per trigger kind ({"n", "p50_s", "max_s"}: from ``ingest`` to ``publish``; for the
console from the send request), "encrypt_only_per_s" (the baseline in the same run: bare Web Push encryption,
as bench/fanout.py), the ingest -> publish latency while idle and during the storm, the rows by state, the load
average, and more figures.

- ``pushes``: pushes received, summaries included; ``max_pushes_per_subscriber``: the most one subscriber received
  within any span of one budget window, of the replay (the Warntag's triggers with their one Extreme; the console's
  evacuation is a second Extreme, which the budget always lets through: ``max_pushes_per_subscriber_with_console``
  counts it too; ``max_warning_pushes_per_subscriber``: warnings alone, over the run);
- ``extreme_first_push_s``: from the Extreme's ``ingest`` to its first push accepted by the push service;
  ``extreme_all_delivered_s``: to the last subscriber in its area having it (receiver clock, same machine);
- ``lost``: push rows done at the hub but never received, plus rows not in a terminal state at the end;
  ``duplicates``: pushes received twice (same subscriber, thread, version).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.fanout import encrypt_only_per_s  # noqa: E402
from tests.kits.fanoutkit import HISTORY, rig, rx_get  # noqa: E402
from tests.kits.hubproc import drop  # noqa: E402
from tests.kits.invariants import Receipt, check, read_history, receipts_of  # noqa: E402
from tests.kits.stormkit import (  # noqa: E402
    NINA_SOURCE,
    ConsoleSend,
    ConsoleSender,
    NinaApi,
    Trigger,
    add_console_users,
    cap,
    console_form,
    replay,
)

CONSOLE_SLOT = "mowas-5.xml"
"""The trigger whose place in the storm the control room takes (a MoWaS warning no Cancel refers to)."""


def open_rows(home: Path) -> int:
    with sqlite3.connect(f"{(home / 'hub.db').as_uri()}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM outbox WHERE state IN ('queued', 'inflight')").fetchone()[0])


def _latencies(events: list[dict[str, Any]], alerts: set[int] | None = None) -> list[float]:
    """ingest -> publish (seconds) per published alert (of ``alerts`` when given)."""
    ingest = {e["alert"]: e["t"] for e in events if e["ev"] == "ingest"}
    return sorted(e["t"] - ingest[e["source_alert"]] for e in events if e["ev"] == "publish"
                  and e["source_alert"] in ingest and (alerts is None or e["source_alert"] in alerts))


def _quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "p50_s": None, "max_s": None}
    return {"n": len(values), "p50_s": round(values[len(values) // 2], 3), "max_s": round(values[-1], 3)}


def _max_in_window(receipts: list[Receipt], window_s: float) -> int:
    by_sub: dict[str, list[float]] = collections.defaultdict(list)
    for r in receipts:
        by_sub[r.recipient].append(r.at)
    best = 0
    for times in by_sub.values():
        times.sort()
        lo = 0
        for hi, t in enumerate(times):
            while t - times[lo] >= window_s:
                lo += 1
            best = max(best, hi - lo + 1)
    return best


def _idle_probe(home: Path) -> None:
    """A web-only warning (KATWARN) while nothing is delivered: the idle ingest -> publish latency."""
    from datetime import UTC, datetime
    drop(home / "inbox", "idle.xml", cap("katwarn.idle", "warnung@katwarn.de", datetime.now(UTC).replace(
        microsecond=0), event="Gefahreninformation", area="centre"), settled=True)
    deadline = time.monotonic() + 60
    while not any(e["ev"] == "publish" for e in read_history(home / HISTORY)) and time.monotonic() < deadline:
        time.sleep(0.05)


def _send(home: Path, triggers: list[Trigger], spread_s: float, api: NinaApi,
          console: tuple[ConsoleSender, int] | None) -> ConsoleSend | None:
    """The triggers at their times: CAP files into the folders, NINA JSON onto the NINA API, and the console's
    approval in :data:`CONSOLE_SLOT`'s place."""
    started = time.monotonic()
    sent = None
    for i, t in enumerate(triggers):
        due = started + spread_s * i / max(1, len(triggers) - 1)
        time.sleep(max(0.0, due - time.monotonic()))
        if t.name == CONSOLE_SLOT and console is not None:
            sent = console[0].approve(console[1])
        elif t.source == "nina-api":
            api.publish(t)
        else:
            drop(home / ("inbox" if t.source == "inbox" else "nina-inbox"), t.name, t.data, settled=True)
    return sent


def _kinds(home: Path, triggers: list[Trigger], events: list[dict[str, Any]],
           console: ConsoleSend | None) -> tuple[dict[str, dict[str, float | None]], int | None]:
    """accept -> publish per trigger kind, and the console warning's alert id."""
    with sqlite3.connect(f"{(home / 'hub.db').as_uri()}?mode=ro", uri=True) as db:
        ids = dict(db.execute("SELECT identifier, id FROM alerts"))
    kind_of: dict[int, str] = {}
    for t in triggers:  # a copy has its original's identifier: the original's kind
        if t.identifier in ids:
            kind_of.setdefault(ids[t.identifier], t.kind)
    by_kind: dict[str, list[float]] = collections.defaultdict(list)
    ingest = {e["alert"]: e["t"] for e in events if e["ev"] == "ingest"}
    console_alert = ids.get(console.identifier) if console is not None else None
    for e in events:
        if e["ev"] != "publish":
            continue
        alert = e["source_alert"]
        if alert == console_alert and console is not None:
            by_kind["console"].append(e["t"] - console.requested)
        elif alert in ingest and alert in kind_of:
            by_kind[kind_of[alert]].append(e["t"] - ingest[alert])
    return {k: _quantiles(sorted(v)) for k, v in sorted(by_kind.items())}, console_alert


def _extreme_times(events: list[dict[str, Any]], receipts: list[Receipt],
                   console_alert: int | None) -> tuple[float | None, float | None, str]:
    """The replay's Extreme (not the console's): accept -> first push done, and -> the last receipt."""
    pub = next((e for e in events if e["ev"] == "publish" and e["severity"] == "Extreme"
                and e["source_alert"] != console_alert), None)
    if pub is None:
        return None, None, ""
    accepted = next(e["t"] for e in events if e["ev"] == "ingest" and e["alert"] == pub["source_alert"])
    sends = [e["t"] for e in events if e["ev"] == "send" and e["pub"] == pub["pub"] and e["outcome"] == "done"]
    got = [r.at for r in receipts if r.thread == pub["thread"]]
    return (round(min(sends) - accepted, 3) if sends else None, round(max(got) - accepted, 3) if got else None,
            pub["thread"])


def _console_first_push(events: list[dict[str, Any]], console: ConsoleSend | None,
                        console_alert: int | None) -> float | None:
    pub = next((e["pub"] for e in events if e["ev"] == "publish" and e["source_alert"] == console_alert), None)
    sends = [e["t"] for e in events if e["ev"] == "send" and e["pub"] == pub and e["channel"] == "push"
             and e["outcome"] == "done"]
    return round(min(sends) - console.requested, 3) if sends and console is not None else None


def run(n: int, workers: int, window_min: float, spread_s: float, timeout: float) -> dict[str, Any]:
    triggers = replay(nina_api=True)
    api = NinaApi()
    try:
        with rig(n, workers, "warnhub-storm-", history=True, extra=NINA_SOURCE + api.source(),
                 push=f"budget_window_min = {window_min}\nbudget_pushes = 3") as r:
            home = r.config.parent
            (home / "nina-inbox").mkdir()
            add_console_users(home / "hub.db")
            r.hub.start()
            r.hub.wait_healthy(timeout=300)
            _idle_probe(home)
            idle_alerts = {e["alert"] for e in read_history(home / HISTORY) if e["ev"] == "ingest"}
            sender = ConsoleSender(r.hub.base)
            prepared = sender.prepare(console_form("Deichbruch: Evakuierung der Ortsmitte"))
            load_before = os.getloadavg()
            started = time.monotonic()
            console = _send(home, triggers, spread_s, api, (sender, prepared))
            while time.monotonic() - started < timeout and open_rows(home):
                time.sleep(0.5)
            seconds = time.monotonic() - started
            load_after = os.getloadavg()
            r.hub.stop()
            receipts = receipts_of(rx_get(r.rx_port, "/receipts")["receipts"])
            verdict = check(home / HISTORY, home / "hub.db", receipts, p99_limit_s=None)
            events = read_history(home / HISTORY)
            stats = rx_get(r.rx_port, "/stats")
            sample = rx_get(r.rx_port, "/sample")
            left = open_rows(home)
            kinds, console_alert = _kinds(home, triggers, events, console)
            first, everyone, extreme_thread = _extreme_times(events, receipts, console_alert)
            with sqlite3.connect(home / "hub.db") as db:
                in_area = int(db.execute("SELECT count(*) FROM outbox WHERE thread=? AND channel='push'",
                                         (extreme_thread,)).fetchone()[0])
    finally:
        api.close()
    payload = json.dumps(sample["payload"], ensure_ascii=False, separators=(",", ":")).encode() \
        if sample.get("payload") else b"x" * 600
    base = encrypt_only_per_s(r.subs, payload, os.cpu_count() or 1)
    console_thread = next((e["thread"] for e in events if e["ev"] == "publish" and e["source_alert"] == console_alert),
                          "")
    warnings = collections.Counter(x.recipient for x in receipts if not x.thread.startswith("summary:"))
    never = [v for v in verdict.violations["I1"] if "never received" in v]
    storm_alerts = {e["alert"] for e in events if e["ev"] == "ingest"} - idle_alerts
    # "triggers": the console's send took CONSOLE_SLOT's place, so still 52
    return {"subscribers": n, "triggers": len(triggers), "pushes": len(receipts),
            "max_pushes_per_subscriber": _max_in_window([x for x in receipts if x.thread != console_thread],
                                                        window_min * 60),
            "max_pushes_per_subscriber_with_console": _max_in_window(receipts, window_min * 60),
            "extreme_first_push_s": first, "extreme_all_delivered_s": everyone,
            "lost": len(never) + left, "duplicates": verdict.figures.get("duplicates"),
            "console_send_s": _console_first_push(events, console, console_alert), "accept_to_publish": kinds,
            "verdict": {k: v[:3] for k, v in verdict.violations.items()} | {"holds": verdict.holds("I1", "I2", "I3",
                                                                                                      "I4")},
            "max_warning_pushes_per_subscriber": max(warnings.values(), default=0),
            "summaries": sum(1 for x in receipts if x.thread.startswith("summary:")),
            "extreme_received": sum(1 for x in receipts if x.thread == extreme_thread), "extreme_in_area": in_area,
            "ingest_to_publish_idle": _quantiles(_latencies(events, idle_alerts)),
            "ingest_to_publish_storm": _quantiles(_latencies(events, storm_alerts)),
            "row_states": verdict.figures.get("row_states"), "seconds": round(seconds, 1),
            "window_min": window_min, "encrypt_only_per_s": round(base, 1), "receiver_errors": stats.get("errors"),
            "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in load_after]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=50000)
    parser.add_argument("--workers", type=int, default=0, help="the hub's encryption processes (0: one per CPU)")
    parser.add_argument("--window-min", type=float, default=2.0, help="the push budget's window")
    parser.add_argument("--spread-s", type=float, default=60.0, help="the triggers arrive within this time")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.subscribers, args.workers, args.window_min, args.spread_s, args.timeout)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:34} {v}")


if __name__ == "__main__":
    main()
