"""Canaries (issue 17 section 2): a channel that accepts requests but drops them is flagged by itself, and so is
every channel when the pipeline before delivery stops.

The real daemon sends its canary every 2 s to a push subscription on a "control-room device" (the local push service,
tests/kits/pushkit.py; the test plays its service worker and POSTs the receipt the payload names), to a webhook
marked ``canary`` (a signed receiver; the test plays the receiving system and POSTs its receipt), to an HTTP test
board marked ``canary`` (the test plays its controller and POSTs the receipt in the board state) and through its own
live stream. Each round is a Test alert that goes through the real intake, the router (a built-in decision) and the
publish step: the history log shows ingest, decide and the queued round before every probe's send. First every
endpoint acknowledges: /healthz and the console say ok and /metrics has a sample per channel. A real warning goes
out meanwhile; neither the citizen's subscription nor the public webhook ever gets a canary, nor does the public
board, and the API, the feed, /api31 and a citizen's live stream never show one. Then the push service, the
webhook and the board controller still answer 201/204 but nothing reaches the device, the system or the board's
display any more (no receipt): all three show as silent in /healthz and in the
console's health section, named, within an interval of the first unanswered canary, while the stream stays ok. The
invariant checker holds over the run (canaries only to canary endpoints, I3).

A second hub's router is down for its first seconds (the supervisor's test hook): its stored rounds are in no console
list nor ``warnhub alerts``, the webhook and the stream go silent, and once the router runs they recover, the
stream's time measured from the intake's acceptance.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.publish import subscriptions
from hub.store.db import Store
from tests.e2e.test_delivery_e2e import DANNENBERG
from tests.e2e.test_routing import dwd_cap
from tests.faults.test_slow_consumers import follow
from tests.kits.consolekit import Operator, add_reader
from tests.kits.fanoutkit import HISTORY
from tests.kits.hubproc import REPO, HubProcess, drop, free_port, subprocess_env, until, write_config
from tests.kits.invariants import check, receipts_of
from tests.kits.pushkit import PushReceiver, TestSubscription
from tests.kits.signedkit import SignedReceiver

INTERVAL_S = 2.0


def _health(proc: HubProcess) -> dict[str, Any]:
    return json.loads(proc.get("/healthz")[1])


def copy_rules(home: Path) -> None:
    """The repository's rules into ``home``, without the sensor rules (no sensors here)."""
    shutil.copytree(REPO / "rules", home / "rules")
    main = home / "rules" / "luechow-dannenberg.toml"
    text = main.read_text(encoding="utf-8")
    main.write_text(text[:text.index("# --- Eigene Sensoren")], encoding="utf-8")


def store_subscription(db: Path, sub: TestSubscription) -> str:
    store = Store(db)
    try:
        sid, _token = subscriptions.create(store, subscriptions.Subscription(
            endpoint=sub.endpoint, p256dh=sub.p256dh, auth=sub.auth, languages=("de",),
            places=(subscriptions.PointPlace(DANNENBERG[0], DANNENBERG[1], 1000),)))
    finally:
        store.close()
    return sid


def _home(tmp_path: Path, port: int, room: str, hook: str, public_hook: str, board: str, public_board: str) -> Path:
    home = tmp_path / "hub"
    copy_rules(home)
    return write_config(home, port=port, extra=f"""
[push]
allow_http_endpoints = true
vapid_subject = "mailto:test@warnhub.example"
timeout_s = 2

[[webhooks]]
id = "leitstelle"
url = "{hook}"
secret = "secret"
canary = true

[[webhooks]]
id = "zeitung"
url = "{public_hook}"
secret = "secret"

[[boards]]
id = "testtafel"
name = "Testtafel Leitstelle"
ars = "033540000000"
kind = "http"
url = "{board}"
secret = "secret"
canary = true

[[boards]]
id = "markt"
name = "Marktplatz Dannenberg"
ars = "033545406004"
kind = "http"
url = "{public_board}"
secret = "secret"

[canary]
enabled = true
interval_s = {INTERVAL_S}
slo_s = 1.5
push_subscriptions = ["{room}"]

[debug]
history = "{HISTORY}"
""")


class Acknowledger:
    """Plays the control-room device's service worker and the canary webhook's receiving system: POSTs the receipt
    of every canary they got, until told to drop."""

    def __init__(self, base: str, rx: PushReceiver, *receivers: SignedReceiver) -> None:
        self.base, self.rx, self.receivers = base, rx, receivers
        self.dropping = False
        self.acked: set[str] = set()

    def _post(self, url: str) -> None:
        with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10) as resp:
            assert resp.status == 204

    async def run(self) -> None:
        while True:
            if not self.dropping:
                docs = [r["payload"] for r in self.rx.receipts()] + [d for r in self.receivers for d in r.got]
                for doc in docs:  # a push or webhook says canary, a board state has status Test
                    if (doc.get("canary") is True or doc.get("status") == "Test") and doc["key"] not in self.acked:
                        self.acked.add(doc["key"])
                        url = doc["receipt"] if doc["receipt"].startswith("http") else self.base + doc["receipt"]
                        await asyncio.to_thread(self._post, url)
            await asyncio.sleep(0.05)


def _when(health: dict[str, Any], test: Any) -> dict[str, Any] | None:
    return health if test(health) else None


def _canaries_seen(health: dict[str, Any], names: list[str]) -> bool:
    got = health.get("canaries", {})
    return all(got.get(n, {}).get("received", 0) >= 1 and got[n]["state"] == "ok" for n in names)


async def test_a_channel_that_accepts_and_drops_shows_as_silent(tmp_path: Path) -> None:
    async with PushReceiver() as rx, SignedReceiver("secret") as hook, SignedReceiver("secret") as public_hook, \
            SignedReceiver("secret", "/board") as board, SignedReceiver("secret", "/board") as public_board:
        room, citizen = rx.subscribe(), rx.subscribe()
        (tmp_path / "hub").mkdir()
        room_id = store_subscription(tmp_path / "hub" / "hub.db", room)
        store_subscription(tmp_path / "hub" / "hub.db", citizen)
        add_reader(tmp_path / "hub" / "hub.db")
        port = free_port()
        config = _home(tmp_path, port, room_id, hook.url, public_hook.url, board.url, public_board.url)
        proc = HubProcess(config, port, tmp_path / "hub" / "hub.log")
        await asyncio.to_thread(proc.start)
        acks = Acknowledger(proc.base, rx, hook, board)
        acking = asyncio.create_task(acks.run())
        try:
            await _run(proc, config.parent, acks, citizen, room_id, (public_hook, public_board))
        finally:
            acking.cancel()
            await asyncio.to_thread(proc.close)


async def _run(proc: HubProcess, home: Path, acks: Acknowledger, citizen: TestSubscription, room_id: str,
               public: tuple[SignedReceiver, ...]) -> None:
    names = [f"push:{room_id}", "webhooks:leitstelle", "boards-http:testtafel", "sse"]  # the stream last
    seen: list[tuple[str, Any]] = []  # a citizen's live stream, for the whole run
    reader = asyncio.ensure_future(follow(f"{proc.base}/api/v1/stream?ars=033540000000", seen))
    try:
        await _canaries_then_drop(proc, home, acks, citizen, room_id, public, names, seen)
    finally:
        reader.cancel()
    await asyncio.to_thread(proc.stop)
    receipts = receipts_of(acks.rx.receipts())
    verdict = check(home / HISTORY, home / "hub.db", receipts, p99_limit_s=None,
                    canary={room_id, "leitstelle", "testtafel"})
    verdict.assert_holds()
    assert any(r.thread.startswith("canary:") for r in receipts) and verdict.figures["publications"] >= 1
    rounds = pipeline_of_rounds(home / HISTORY)
    assert {"push", "webhooks", "boards-http"} <= {c for r in rounds for c in r["sent"]}, rounds


def pipeline_of_rounds(history: Path) -> list[dict[str, Any]]:
    """Every canary round the publish step queued, checked against the history log: it was ingested (origin canary)
    and decided ``canary`` before, in that order, and every probe sent was sent after it; returns for each round its
    times and the channels whose probe was sent (done)."""
    events = [json.loads(line) for line in history.read_text(encoding="utf-8").splitlines()]
    ingest = {e["alert"]: e for e in events if e["ev"] == "ingest"}
    decide = {e["alert"]: e for e in events if e["ev"] == "decide"}
    out = []
    for e in (e for e in events if e["ev"] == "canary"):
        took_in, decided = ingest[e["alert"]], decide[e["alert"]]
        assert took_in["origin"] == "canary" and decided["decision"] == "canary", (took_in, decided)
        assert took_in["t"] <= decided["t"] <= e["t"], e
        threads = {p["thread"]: p["channel"] for p in e["probes"]}
        sends = [s for s in events if s["ev"] == "send" and s["thread"] in threads]
        assert all(s["t"] >= e["t"] for s in sends), e
        out.append({"ingest": took_in["t"], "decide": decided["t"], "queued": e["t"],
                    "sent": {threads[s["thread"]] for s in sends if s["outcome"] == "done"}})
    assert out, "no canary round in the history log"
    return out


async def _canaries_then_drop(proc: HubProcess, home: Path, acks: Acknowledger, citizen: TestSubscription,
                              room_id: str, public: tuple[SignedReceiver, ...], names: list[str],
                              seen: list[tuple[str, Any]]) -> None:
    ok = await until(lambda: _when(_health(proc), lambda h: _canaries_seen(h, names)), "every canary received")
    assert ok["status"] == "ok", ok
    metrics = (await asyncio.to_thread(proc.get, "/metrics"))[1].decode()
    for channel in ("push", "webhooks", "boards-http", "sse"):
        count = re.search(rf'warnhub_canary_delivery_seconds_count{{channel="{channel}"}} (\S+)', metrics)
        assert count and float(count.group(1)) >= 1, channel

    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)  # a real warning meanwhile
    drop(home / "inbox", "storm-1.xml", dwd_cap("sturm-1", sent=sent, expires=sent + timedelta(hours=6)))
    await until(lambda: any(isinstance(r.body, dict) and r.body.get("status") == "Actual"
                            for r in acks.rx.received(citizen.id)), "the real warning at the citizen", timeout=60)
    assert not [r for r in acks.rx.received(citizen.id) if r.body.get("canary")]  # never a canary to a citizen
    await until(lambda: public[1].got, "the real warning on the public board")
    assert not [d for r in public for d in r.got if d.get("canary") or d.get("status") == "Test" or "receipt" in d]
    for path in ("/api/v1/warnings", "/feeds/cap.atom", "/api31/mapData.json", "/api31/dashboard/033540000000.json"):
        status, body = await asyncio.to_thread(proc.get, path)
        assert status == 200 and b"canary:" not in body and b"Kontrollmeldung" not in body, path
    await until(lambda: [d for name, d in seen if name == "publication" and d["publication"]["status"] == "Actual"],
                "the real warning on the citizen's live stream")
    assert not [d for _name, d in seen if "canary" in json.dumps(d) or "Kontrollmeldung" in json.dumps(d)], seen

    unknown = urllib.request.Request(f"{proc.base}/api/v1/canary/{'x' * 22}/received", method="POST")
    try:
        await asyncio.to_thread(urllib.request.urlopen, unknown, timeout=10)
        raise AssertionError("a receipt of a canary the hub never sent was taken")
    except urllib.error.HTTPError as err:
        assert err.code == 404

    acks.dropping = True  # the push service and the webhook still take every request; nothing reaches the receivers
    silent = await until(lambda: _when(_health(proc), lambda h: all(
        h["canaries"][n]["state"] == "silent" for n in names[:3])), "push, webhook and board canaries silent",
        timeout=3 * INTERVAL_S + 10)
    assert silent["status"] == "degraded" and silent["canaries"]["sse"]["state"] == "ok"
    assert all("canary not received" in silent["canaries"][n]["problems"][0] for n in names[:3])
    operator = await asyncio.to_thread(lambda: Operator(proc.base).login())
    status, page = await asyncio.to_thread(operator.get, "/console/")
    for name in names[:3]:
        shown = re.search(rf'<li class="src src-down" data-canary="{re.escape(name)}" data-state="silent">.*?</li>',
                          page.decode(), re.S)
        assert status == 200 and shown and "STUMM" in shown.group(0) and "nicht angekommen" in shown.group(0), name



async def test_a_stopped_router_silences_every_canary_and_the_time_runs_from_the_intake(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rounds go through intake and decide: while the router is down (the supervisor's test hook makes its
    first three starts crash: about 8 s without decisions) the canary webhook and the live stream go silent, the
    stored rounds show in no list of the console and not in ``warnhub alerts``; once the router runs they recover,
    and the stream's probe of a round that waited for it is measured from its acceptance (seconds, not the
    milliseconds from queue to receipt)."""
    monkeypatch.setenv("WARNHUB_TEST_CRASH", "router:3")  # the child inherits it (hubproc.subprocess_env)
    async with SignedReceiver("secret") as hook, PushReceiver() as rx:
        home = tmp_path / "hub"
        copy_rules(home)
        add_reader(home / "hub.db")
        port = free_port()
        config = write_config(home, port=port, extra=f"""
[[webhooks]]
id = "leitstelle"
url = "{hook.url}"
secret = "secret"
canary = true

[canary]
enabled = true
interval_s = 3
slo_s = 1.5

[debug]
history = "{HISTORY}"
""")
        proc = HubProcess(config, port, home / "hub.log")
        await asyncio.to_thread(proc.start)
        acks = Acknowledger(proc.base, rx, hook)
        acking = asyncio.create_task(acks.run())
        try:
            await _router_down_then_up(proc, config)
        finally:
            acking.cancel()
            await asyncio.to_thread(proc.close)
    rounds = pipeline_of_rounds(home / HISTORY)
    assert rounds[0]["decide"] - rounds[0]["ingest"] > 3, rounds[0]  # the first decided round waited for the router


async def _router_down_then_up(proc: HubProcess, config: Path) -> None:
    names = ("webhooks:leitstelle", "sse")
    silent = await until(lambda: _when(_health(proc), lambda h: all(
        h.get("canaries", {}).get(n, {}).get("state") == "silent" for n in names)), "both canaries silent",
        timeout=10)
    assert silent["status"] == "degraded" and silent["tasks"]["router"]["state"] == "restarting", silent
    assert all(silent["canaries"][n]["received"] == 0 for n in names)
    stored = await asyncio.to_thread(_store_rows, proc, "SELECT t.state FROM alerts a JOIN threads t ON"
                                     " t.id = a.thread_id WHERE a.origin = 'canary'")
    assert stored and {s for (s,) in stored} == {"active"}  # stored, undecided, live threads...
    operator = await asyncio.to_thread(lambda: Operator(proc.base).login())
    listed = await asyncio.to_thread(operator.threads, all=True)  # ...shown in no list
    inbox = await asyncio.to_thread(operator.get, "/console/api/inbox")
    assert not [t for t in listed if t["sender"].startswith("canary.")]
    assert inbox[0] == 200 and b"Kontrollmeldung / Canary" not in inbox[1] and b"warnhub.canary." not in inbox[1]
    cli = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "hub.cli", "alerts", "--config",
                                                   str(config)], env=subprocess_env(), capture_output=True,
                                  text=True, timeout=120)
    assert cli.returncode == 0 and "Kontrollmeldung" not in cli.stdout, cli.stdout + cli.stderr

    ok = await until(lambda: _when(_health(proc), lambda h: _canaries_seen(h, list(names))),
                     "both canaries received once the router runs", timeout=30)
    assert ok["tasks"]["router"]["restarts"] == 3
    metrics = (await asyncio.to_thread(proc.get, "/metrics"))[1].decode()
    fast = re.search(r'warnhub_canary_delivery_seconds_bucket{channel="sse",le="2.5"} (\S+)', metrics)
    count = re.search(r'warnhub_canary_delivery_seconds_count{channel="sse"} (\S+)', metrics)
    assert fast and count and float(fast.group(1)) < float(count.group(1)), metrics  # one took > 2.5 s: waited


def _store_rows(proc: HubProcess, sql: str) -> list[tuple[Any, ...]]:
    with Store.reader(proc.config.parent / "hub.db") as store:
        return list(store.conn.execute(sql).fetchall())
