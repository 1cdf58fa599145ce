"""Fault 7 (issue 17 §3): duplicated, out-of-order and replayed CAP; the NINA 2021 replay, when the app pushed 50-70
old messages again after an update.

A batch of 60 DWD-style messages reaches the hub through its drop folder: 10 current incidents, each an Alert and
an Update that arrive in reverse order (the Update first), and 40 old warnings that expired yesterday. Then single
files: an identical copy of a stored message, and a Cancel that arrives before the Alert it cancels. Then the hub is
restarted and the same 60 messages arrive again, and again through a CAP feed.

Expected: every current incident is pushed once per version it publishes, never an older version (by ``sent``) after
a newer one: an Alert arriving after its Update or Cancel is stored but never published (I4, also by the source
messages' ``sent``); the copy and the whole replay cost no push (I2: the receipts after the replay are those from
before it); nothing that had expired is pushed at all; I1-I4 hold over the run.
"""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.e2e.test_routing import dwd_cap
from tests.kits.fanoutkit import DISTRICT
from tests.kits.faultkit import SourceHub, feed_with
from tests.kits.hubproc import drop, until
from tests.kits.paths import DATA
from tests.kits.sourcekit import ReplayServer

SENDER = "opendata@dwd.de"
CURRENT = 10
OLD = 40


def batch(now: datetime) -> tuple[list[tuple[str, bytes]], list[str], list[str]]:
    """(file name, CAP) of the 60 messages in the order they arrive, the Alerts that arrive after their Update, and
    the old (expired) identifiers."""
    out: list[tuple[str, bytes]] = []
    late: list[str] = []
    for n in range(CURRENT):
        sent = now - timedelta(minutes=30)
        alert_id, update_id = f"replay-{n}-a", f"replay-{n}-u"
        alert = dwd_cap(alert_id, sent=sent, expires=sent + timedelta(hours=6))
        update = dwd_cap(update_id, sent=sent + timedelta(minutes=10), msg_type="Update",
                         references=f"{SENDER},{alert_id},{sent.isoformat()}", expires=sent + timedelta(hours=8),
                         severity="Extreme")
        out += [(f"{update_id}.xml", update), (f"{alert_id}.xml", alert)]  # the Update first
        late.append(alert_id)
    old: list[str] = []
    for n in range(OLD):
        sent = now - timedelta(days=2, minutes=n)
        old_id = f"replay-old-{n}"
        out.append((f"{old_id}.xml", dwd_cap(old_id, sent=sent, expires=now - timedelta(days=1))))
        old.append(old_id)
    return out, late, old


def versions_by_sent(home: Path) -> list[str]:
    """Publications whose source message was sent before that of an earlier publication of the same thread."""
    with sqlite3.connect(f"{(home / 'hub.db').as_uri()}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT p.thread, p.version, a.sent_utc, a.identifier FROM publications p"
                          " JOIN alerts a ON a.id = p.source_alert ORDER BY p.thread, p.version").fetchall()
    newest: dict[str, str] = {}
    wrong = []
    for thread, version, sent, identifier in rows:
        if thread in newest and sent < newest[thread]:
            wrong.append(f"{thread} v{version} from {identifier} sent {sent} after one sent {newest[thread]}")
        newest[thread] = max(newest.get(thread, ""), sent)
    return wrong


async def drop_all(hub: SourceHub, files: list[tuple[str, bytes]], prefix: str) -> None:
    for name, data in files:  # one at a time, in this order: the folder reads them as they come
        drop(hub.inbox, f"{prefix}{name}", data)
        await until(lambda n=f"{prefix}{name}": (hub.inbox / "done" / n).exists(), f"{prefix}{name} read", 30)


async def test_duplicates_out_of_order_and_a_replay_after_restart_push_nothing_twice(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    files, late, old = batch(now)
    rng = random.Random(7)
    async with ReplayServer() as srv:
        srv.set("/replay.atom", feed_with(), content_type="application/atom+xml")
        sources = f"""
[[sources]]
type = "cap-feed"
name = "feed"
url = "{srv.url('/replay.atom')}"
interval_s = 0.5
timeout_s = 5
"""
        async with SourceHub(tmp_path, sources=sources) as hub:
            await drop_all(hub, files, "")
            # an identical copy of a stored message; a Cancel before the Alert it cancels
            await drop_all(hub, [("copy.xml", files[0][1])], "")
            sent = now - timedelta(minutes=20)
            cancel_first = [("c-cancel.xml", dwd_cap("replay-c-cancel", sent=sent + timedelta(minutes=5),
                                                     msg_type="Cancel", references=f"{SENDER},replay-c,"
                                                                                   f"{sent.isoformat()}")),
                            ("c-alert.xml", dwd_cap("replay-c", sent=sent, expires=sent + timedelta(hours=6)))]
            await drop_all(hub, cancel_first, "")
            # a marker after everything: once it is pushed, everything before it was decided and published
            marker = dwd_cap("replay-marker-1", sent=now - timedelta(minutes=1))
            await drop_all(hub, [("marker-1.xml", marker)], "")
            await until(lambda: hub.pushes_of("replay-marker-1"), "the first marker pushed", 60)
            await until(lambda: hub.verdict().figures["row_states"].keys() <= {"done", "superseded"},
                        "the first run's rows finished", 60)
            before = hub.rx.receipts()

            await hub.restart()
            shuffled = files[:]
            rng.shuffle(shuffled)
            await drop_all(hub, shuffled, "again-")
            srv.set("/replay.atom", feed_with(*(data for _, data in files)), content_type="application/atom+xml")
            await until(lambda: hub.source("feed").get("state") == "up" and srv.hits["/replay.atom"] >= 3,
                        "the feed read the replay", 60)
            await drop_all(hub, [("marker-2.xml", dwd_cap("replay-marker-2", sent=now))], "")
            await until(lambda: hub.pushes_of("replay-marker-2"), "the second marker pushed", 60)
            after = hub.rx.receipts()
            marker2 = hub.pushes_of("replay-marker-2")
            verdict = hub.verdict()
            late_published = {i: hub.publications_of(i) for i in late + ["replay-c"]}
            old_published = {i: hub.publications_of(i) for i in old}
            wrong_order = versions_by_sent(hub.home)
            ingests = sum(1 for e in hub.history() if e["ev"] == "ingest")
    new_after = [r for r in after if r not in before and r not in marker2]
    print(f"\nfault 7: receipts before the replay {len(before)}, after {len(after)} (marker {len(marker2)}); stored "
          f"versions "
          f"{ingests}; figures {verdict.figures}")
    verdict.assert_holds("I1", "I2", "I3", "I4")
    assert not wrong_order, wrong_order
    assert not any(late_published.values()), late_published  # stored, never published after the newer version
    assert not any(old_published.values()), old_published  # expired before it arrived: never pushed
    assert new_after == [] and len(marker2) == len(hub.subs), (new_after, marker2)  # the replay pushed nothing
    assert ingests == len(files) + len(cancel_first) + 2  # the replay stored nothing new either


# -- the NINA replay ------------------------------------------------------------------------------------------------

NINA_SAMPLE = DATA / "nina" / "fpas_mow.DE-HE-KS-SE106-20250313-106-001.json"
NINA_SENDER = "DE-NI-DAN-SE001"


def nina_warning(wid: str, *, sent: datetime, expires: datetime) -> dict[str, Any]:
    """A MoWaS warning for Lüchow-Dannenberg in NINA's detail JSON: the real Hessen sample (tests/data/nina) with its
    German info only, another id, times and the district's ARS."""
    sample = json.loads(NINA_SAMPLE.read_text(encoding="utf-8"))
    info = sample["info"][0]
    info.update(expires=expires.isoformat(), headline=f"Gefahrendurchsage {wid}", responseType=["Shelter"])
    info["parameter"] = [{"valueName": "warnVerwaltungsbereiche", "value": DISTRICT}]
    info["area"] = [{"areaDesc": "Landkreis Lüchow-Dannenberg"}]
    sample.pop("references")
    sample.update(identifier=wid, sender=NINA_SENDER, sent=sent.isoformat(), msgType="Alert", info=[info])
    return sample


def cap_id(wid: str) -> str:
    """The CAP identifier the hub stores for a NINA id (NINA's ``mow.`` prefix is not part of it)."""
    return wid.removeprefix("mow.")


def serve_nina(srv: ReplayServer, warnings: dict[str, dict[str, Any]], version: int) -> None:
    srv.set("/api31/mowas/mapData.json", json.dumps([{"id": wid, "version": version} for wid in warnings]),
            content_type="application/json")
    for wid, warning in warnings.items():
        srv.set(f"/api31/warnings/{wid}.json", json.dumps(warning), content_type="application/json")


async def test_nina_replaying_old_and_current_messages_after_a_restart_pushes_nothing_again(tmp_path: Path) -> None:
    """NINA lists 5 current MoWaS warnings and 55 that expired yesterday; the hub restarts and NINA lists all 60
    again with new version marks (the 2021 replay): the current ones were pushed once, the old ones never, and the
    replay (every detail fetched and stored again) pushes nothing and stores nothing new."""
    now = datetime.now(UTC).replace(microsecond=0)
    current = {f"mow.DE-NI-DAN-SE001-replay-{n}": nina_warning(f"mow.DE-NI-DAN-SE001-replay-{n}",
                                                               sent=now - timedelta(minutes=10),
                                                               expires=now + timedelta(hours=6)) for n in range(5)}
    old = {f"mow.DE-NI-DAN-SE001-old-{n}": nina_warning(f"mow.DE-NI-DAN-SE001-old-{n}",
                                                        sent=now - timedelta(days=2, minutes=n),
                                                        expires=now - timedelta(days=1)) for n in range(55)}
    warnings = {**current, **old}
    async with ReplayServer() as srv:
        serve_nina(srv, {}, 1)  # the list fills once the subscriptions exist
        sources = f"""
[[sources]]
type = "nina"
name = "nina"
base_url = "{srv.url('/api31')}"
feeds = ["mowas"]
dashboard_ars = []
geojson = false
interval_s = 0.5
timeout_s = 5
"""
        async with SourceHub(tmp_path, sources=sources) as hub:
            serve_nina(srv, warnings, 1)
            n = len(hub.subs)
            for wid in map(cap_id, current):
                await until(lambda w=wid: len(hub.pushes_of(w)) == n, f"{wid} pushed", 60)
            await until(lambda: sum(e["ev"] == "decide" for e in hub.history()) == len(warnings), "all decided", 60)
            before = hub.rx.receipts()
            stored = sum(e["ev"] == "ingest" for e in hub.history())

            await hub.restart()
            details = sum(srv.hits[f"/api31/warnings/{w}.json"] for w in warnings)
            serve_nina(srv, warnings, 2)  # the replay: every warning listed again with a new version mark
            await until(lambda: sum(srv.hits[f"/api31/warnings/{w}.json"] for w in warnings) >= details + len(warnings)
                        and hub.source("nina").get("state") == "up", "every detail fetched again", 60)
            drop(hub.inbox, "marker.xml", dwd_cap("nina-replay-marker", sent=now))
            await until(lambda: len(hub.pushes_of("nina-replay-marker")) == n, "the marker pushed", 60)
            after = hub.rx.receipts()
            marker = hub.pushes_of("nina-replay-marker")
            verdict = hub.verdict()
            old_published = {w: hub.publications_of(cap_id(w)) for w in old}
            ingests = sum(e["ev"] == "ingest" for e in hub.history())
    print(f"\nfault 7 (NINA): receipts before the replay {len(before)}, after {len(after)} (marker {len(marker)}); "
          f"stored {stored}, after the replay {ingests}; figures {verdict.figures}")
    verdict.assert_holds("I1", "I2", "I3", "I4")
    assert len(before) == len(current) * n
    assert [r for r in after if r not in before and r not in marker] == []
    assert not any(old_published.values())
    assert stored == len(warnings) and ingests == stored + 1  # the replay stored nothing; the marker did
