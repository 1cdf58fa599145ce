"""A hub for the source faults of issue 17 (faults 4, 7, 8, 9): the real daemon with the repository's rules (without
the sensor rules), the history log on, a local push service in the test's loop (tests/kits/pushkit.py) with a few
subscriptions in Dannenberg, and whatever sources a test adds (usually pointing at a
:class:`tests.kits.sourcekit.ReplayServer`). :meth:`SourceHub.verdict` runs the invariant checker (I1-I4; I5 is a
figure, never asserted) over what the hub recorded and what the push service received.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.kits.hubproc import REPO, HubProcess, free_port, until, write_config
from tests.kits.invariants import Verdict, check, read_history, receipts_of
from tests.kits.pushkit import PushReceiver, TestSubscription

DANNENBERG = (53.0979, 11.0938)
HISTORY = "history.jsonl"


def feed_with(*alerts: bytes, title: str = "Warnungen") -> bytes:
    """An Atom feed whose entries embed the given CAP alerts (each entry's id and updated from the alert)."""
    entries = []
    for n, raw in enumerate(alerts):
        body = raw.split(b"?>", 1)[1] if raw.startswith(b"<?xml") else raw
        entries.append(f"<entry><id>urn:warnhub:test:{n}:{hash(raw) & 0xffffffff:x}</id><title>Eintrag {n}</title>"
                       f"<updated>2026-01-01T00:00:00Z</updated><content type=\"application/xml\">"
                       f"{body.decode()}</content></entry>")
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">"
            f"<id>urn:warnhub:test-feed</id><title>{title}</title><updated>2026-01-01T00:00:00Z</updated>"
            + "".join(entries) + "</feed>").encode()


class SourceHub:
    """``async with SourceHub(tmp, sources=...) as hub``: the daemon started, ``hub.subs`` subscribed in
    Dannenberg; on leaving, the daemon is stopped and the push service closed."""

    def __init__(self, tmp: Path, *, sources: str = "", subscribers: int = 3, extra: str = "") -> None:
        self.home = tmp / "hub"
        (self.home / "inbox").mkdir(parents=True)
        shutil.copytree(REPO / "rules", self.home / "rules")
        main = self.home / "rules" / "luechow-dannenberg.toml"
        text = main.read_text(encoding="utf-8")
        main.write_text(text[:text.index("# --- Eigene Sensoren")], encoding="utf-8")
        self.port = free_port()
        self.sources = sources
        self.extra = extra
        self.n = subscribers
        self.rx = PushReceiver()
        self.subs: list[TestSubscription] = []
        self.proc: HubProcess | None = None

    @property
    def inbox(self) -> Path:
        return self.home / "inbox"

    def write_config(self) -> Path:
        extra = f"""
[push]
allow_http_endpoints = true
vapid_key = "var/vapid.pem"
vapid_subject = "mailto:test@warnhub.example"
timeout_s = 5
workers = 1
budget_pushes = 100  # these faults are at the sources: the budget per person (test_storm.py) would coalesce their
                     # many warnings to one subscriber within minutes

[debug]
history = "{HISTORY}"
{self.extra}
{self.sources}"""
        return write_config(self.home, port=self.port, extra=extra)

    async def __aenter__(self) -> SourceHub:
        await self.rx.__aenter__()
        self.proc = HubProcess(self.write_config(), self.port, self.home / "hub.log")
        await asyncio.to_thread(self.proc.start)
        from tests.e2e.test_delivery_e2e import post_json

        api = f"{self.proc.base}/api/v1/subscriptions"
        for _ in range(self.n):
            sub = self.rx.subscribe()
            await asyncio.to_thread(post_json, api, {"subscription": sub.as_json(), "languages": ["de"],
                                                     "places": [{"lat": DANNENBERG[0], "lon": DANNENBERG[1]}]})
            self.subs.append(sub)
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self.proc is not None:
                await asyncio.to_thread(self.proc.close)
        finally:
            await self.rx.__aexit__(*exc)

    async def restart(self) -> None:
        """Stop the daemon (SIGTERM) and start it again on the same home (the store, the history log)."""
        assert self.proc is not None
        await asyncio.to_thread(self.proc.stop)
        await asyncio.to_thread(self.proc.start)

    def health(self) -> dict[str, Any]:
        assert self.proc is not None
        return json.loads(self.proc.get("/healthz")[1])

    def source(self, name: str) -> dict[str, Any]:
        return dict(self.health()["sources"].get(name) or {})

    async def source_state(self, name: str, state: str, timeout: float = 30) -> dict[str, Any]:
        """Wait until the source ``name`` has ``state`` in /healthz; returns its entry."""
        return dict(await until(lambda: (s := self.source(name)).get("state") == state and s,
                                f"source {name} {state}", timeout))

    def history(self) -> list[dict[str, Any]]:
        path = self.home / HISTORY
        return read_history(path) if path.exists() else []

    def pushes_of(self, identifier: str) -> list[dict[str, Any]]:
        """The push receipts (``payload`` with ``thread``, ``version``...) of the publications made from the stored
        alert(s) with this CAP identifier."""
        threads = {t for _, t, _ in self.publications_of(identifier)}
        return [r for r in self.rx.receipts() if r["payload"].get("thread") in threads]

    def publications_of(self, identifier: str) -> list[tuple[int, str, int]]:
        """(publication id, thread, version) of what the hub published from the alert(s) ``identifier``."""
        with sqlite3.connect(f"{(self.home / 'hub.db').as_uri()}?mode=ro", uri=True) as db:
            return [(int(r[0]), str(r[1]), int(r[2])) for r in db.execute(
                "SELECT p.id, p.thread, p.version FROM publications p JOIN alerts a ON a.id = p.source_alert"
                " WHERE a.identifier = ? ORDER BY p.id", (identifier,))]

    def verdict(self, allowed: Sequence[str] = ()) -> Verdict:
        return check(self.home / HISTORY, self.home / "hub.db", receipts_of(self.rx.receipts()), allowed=allowed,
                     p99_limit_s=None)

    def accept_to_first_push(self, identifier: str) -> float | None:
        """Seconds from the ``ingest`` line of the alert ``identifier`` to its publication's first push done (from
        the history log; None if it was not pushed)."""
        with sqlite3.connect(f"{(self.home / 'hub.db').as_uri()}?mode=ro", uri=True) as db:
            ids = {r[0] for r in db.execute("SELECT id FROM alerts WHERE identifier = ?", (identifier,))}
        events = self.history()
        ingest = min((e["t"] for e in events if e["ev"] == "ingest" and e["alert"] in ids), default=None)
        pubs = {e["pub"] for e in events if e["ev"] == "publish" and e.get("source_alert") in ids}
        first = min((e["t"] for e in events if e["ev"] == "send" and e["outcome"] == "done" and e["pub"] in pubs
                     and e["channel"] == "push"), default=None)
        return None if ingest is None or first is None else round(first - ingest, 3)


def iso(value: datetime) -> str:
    return value.replace(microsecond=0).isoformat()
