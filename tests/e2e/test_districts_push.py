"""Many districts in one hub, end to end (issue 19): one daemon for Lüchow-Dannenberg and Uelzen
(tests/kits/districts.py), a real DWD CAP over both Kreise dropped into its inbox, Web Push to a local push service
that verifies VAPID and decrypts (tests/kits/pushkit.py).

Both districts' rules decide the warning (two decision rows) and each publishes it in its own name (senders
leitstelle@luechow-dannenberg.example and leitstelle@uelzen.example). It is markantes Wetter (Moderate): Uelzen's
rules push it, Lüchow-Dannenberg's put it on the web and the boards only. So a person with places in both Kreise
(Hitzacker and Suhlendorf) gets it once, a person in Uelzen once, a person in Lüchow-Dannenberg by push not at all:
proven by the later Update (raised to Severe, which both districts push), whose push is that person's first. The
Update reaches the two-district person exactly once more, though both districts push it; the Cancel once again.

The CAP is the corpus' DWD Update (tests/data/cap/de_dwd_kweathercore_update-MUL.xml, KDE/kweathercore, CC0-1.0) with
its areas replaced by the Kreis warncells of both districts and its times moved to now (see
tests/data/dwd/README.md, "Built in memory").
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.kits.districts import HITZACKER, LD, LD_SENDER, SUHLENDORF, UE, UE_SENDER, UELZEN_TOWN, write_two_districts
from tests.kits.hubproc import REPO, HubProcess, drop, free_port, until
from tests.kits.pushkit import PushReceiver

WAIT = 30
SOURCE = REPO / "tests" / "data" / "cap" / "de_dwd_kweathercore_update-MUL.xml"
PUSH = """
[push]
allow_http_endpoints = true
vapid_key = "var/vapid.pem"
vapid_subject = "mailto:test@warnhub.example"
timeout_s = 2
workers = 1
budget_pushes = 20
"""
AREAS = """    <area>
      <areaDesc>Kreis Lüchow-Dannenberg</areaDesc>
      <geocode>
        <valueName>WARNCELLID</valueName>
        <value>103354000</value>
      </geocode>
    </area>
    <area>
      <areaDesc>Kreis Uelzen</areaDesc>
      <geocode>
        <valueName>WARNCELLID</valueName>
        <value>103360000</value>
      </geocode>
    </area>
"""


def border_storm(identifier: str, sent: datetime, *, severity: str = "Moderate", msg_type: str = "Update",
                 references: str | None = None) -> bytes:
    """The corpus' DWD warning over the Kreis cells of both districts, sent at ``sent`` and valid for six hours."""
    text = SOURCE.read_text(encoding="utf-8")
    start, end = text.index("    <area>"), text.index("  </info>")
    text = text[:start] + AREAS + text[end:]
    old_id = "2.49.0.0.276.0.DWD.PVW.1661544180000.6ffa85ac-a5ed-4e69-977c-e767a423ecd6.MUL"
    text = text.replace(f"<identifier>{old_id}</identifier>", f"<identifier>{identifier}</identifier>")
    stamps = {"2022-08-26T22:03:00+02:00": sent, "2022-08-26T23:00:00+02:00": sent + timedelta(hours=6)}
    for old, new in stamps.items():
        text = text.replace(old, new.isoformat())
    text = text.replace("<severity>Moderate</severity>", f"<severity>{severity}</severity>")
    text = text.replace("<msgType>Update</msgType>", f"<msgType>{msg_type}</msgType>")
    if references is not None:
        text = re.sub(r"<references>[^<]*</references>", f"<references>{references}</references>", text)
    assert text.count("WARNCELLID") == 2 and "2022-08-26" not in text.split("<references>")[0]
    return text.encode()


def post_json(url: str, data: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(url, data=json.dumps(data).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return dict(json.loads(resp.read()))


class Db:
    """Read-only looks into the daemon's SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        try:
            return [tuple(r) for r in conn.execute(sql, args).fetchall()]
        finally:
            conn.close()

    def alert_id(self, identifier: str) -> int | None:
        found = self.rows("SELECT id FROM alerts WHERE identifier=?", identifier)
        return found[0][0] if found else None

    def decisions(self, alert_id: int) -> dict[str, tuple[Any, ...]]:
        return {r[0]: r[1:] for r in self.rows("SELECT district, decision, channels, push FROM decisions"
                                                " WHERE alert_id=?", alert_id)}

    def publications(self, alert_id: int) -> dict[str, tuple[Any, ...]]:
        return {r[0]: r[1:] for r in self.rows("SELECT district, id, sender, thread, msg_type FROM publications"
                                                " WHERE source_alert=?", alert_id)}

    def pushes_queued(self) -> int:
        queued = self.rows("SELECT count(*) FROM outbox WHERE channel='push' AND state IN ('queued', 'inflight')")
        return int(queued[0][0] + self.rows("SELECT count(*) FROM fanout")[0][0])


async def test_a_dwd_warning_over_two_districts_is_decided_by_both_and_pushed_once_per_person(tmp_path: Path) -> None:
    async with PushReceiver() as rx:
        home = tmp_path / "hub"
        home.mkdir()
        (home / "inbox").mkdir()
        port = free_port()
        proc = HubProcess(write_two_districts(home, port=port, extra=PUSH), port, home / "hub.log")
        await asyncio.to_thread(proc.start)
        try:
            await scenario(proc, home, rx)
        finally:
            await asyncio.to_thread(proc.close)


async def scenario(proc: HubProcess, home: Path, rx: PushReceiver) -> None:
    api = f"{proc.base}/api/v1/subscriptions"
    places = {"both": [{"ars": HITZACKER}, {"ars": SUHLENDORF}], "uelzen": [{"ars": UELZEN_TOWN}],
              "luechow": [{"ars": HITZACKER}]}
    subs = {name: rx.subscribe() for name in places}
    made = {}
    for name, sub in subs.items():
        made[name] = await asyncio.to_thread(post_json, api, {"subscription": sub.as_json(), "places": places[name],
                                                               "languages": ["de"]})
    sid = {name: m["id"] for name, m in made.items()}
    db = Db(home / "hub.db")
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)

    drop(home / "inbox", "border-1.xml", border_storm("border-1", sent))
    first = await until(lambda: db.alert_id("border-1"), "the warning stored")
    pubs = await until(lambda: (p := db.publications(first)) and len(p) == 2 and p, "both districts' publications")
    assert db.decisions(first) == {LD: ("publish", '["web","boards"]', 0),
                                   UE: ("publish", '["push","web","boards"]', 1)}
    assert {d: p[1] for d, p in pubs.items()} == {LD: LD_SENDER, UE: UE_SENDER}
    assert pubs[LD][2] != pubs[UE][2]  # a thread of its own each
    # Lüchow-Dannenberg's publication, committed with its deliveries in one transaction, queued no push at all
    assert db.rows("SELECT count(*) FROM outbox WHERE publication_id=? AND channel='push'", pubs[LD][0]) == [(0,)]

    got = await rx.wait_for(2, timeout=WAIT)
    assert sorted(r.sub_id for r in got) == sorted([subs["both"].id, subs["uelzen"].id])
    assert {r.body["sender"] for r in got} == {"Landkreis Uelzen"} and {r.body["severity"] for r in got} == {"Moderate"}

    # The Update raises it to Severe: both districts push it now. The Lüchow-Dannenberg person's first push is this
    # one (so none came of the Moderate), the two-district person gets it once, though both districts pushed it.
    drop(home / "inbox", "border-2.xml", border_storm("border-2", sent + timedelta(minutes=1), severity="Severe",
                                                      references=f"opendata@dwd.de,border-1,{sent.isoformat()}"))
    second = await until(lambda: db.alert_id("border-2"), "the update stored")
    await until(lambda: len(db.publications(second)) == 2, "both districts' updates")
    await rx.wait_for(5, timeout=WAIT)
    await until(lambda: db.pushes_queued() == 0, "every push row sent")
    mine = {name: [r.body for r in rx.received(subs[name].id)] for name in subs}
    assert [b["severity"] for b in mine["luechow"]] == ["Severe"], mine["luechow"]
    assert mine["luechow"][0]["sender"] == "Landkreis Lüchow-Dannenberg"
    assert [b["severity"] for b in mine["both"]] == ["Moderate", "Severe"], mine["both"]
    assert [b["severity"] for b in mine["uelzen"]] == ["Moderate", "Severe"], mine["uelzen"]
    assert len(rx.received()) == 5

    # The Cancel: who had a version hears it is over, once, from whichever district's thread they had it in.
    drop(home / "inbox", "border-3.xml", border_storm(
        "border-3", sent + timedelta(minutes=2), severity="Severe", msg_type="Cancel",
        references=f"opendata@dwd.de,border-2,{(sent + timedelta(minutes=1)).isoformat()}"))
    third = await until(lambda: db.alert_id("border-3"), "the cancel stored")
    await until(lambda: len(db.publications(third)) == 2, "both districts' cancels")
    await rx.wait_for(8, timeout=WAIT)
    await until(lambda: db.pushes_queued() == 0, "every push row sent")
    for name in subs:
        assert rx.received(subs[name].id)[-1].body["msgType"] == "Cancel", name
    assert len(rx.received()) == 8
    keys = [(r.sub_id, r.body["key"]) for r in rx.received()]
    assert len(keys) == len(set(keys)), "no push twice"
    per_sub = dict(db.rows("SELECT recipient, count(*) FROM outbox WHERE channel='push' AND state='done'"
                           " GROUP BY recipient"))
    assert per_sub == {sid["both"]: 3, sid["uelzen"]: 3, sid["luechow"]: 2}, per_sub
    assert rx.errors == [], rx.errors
