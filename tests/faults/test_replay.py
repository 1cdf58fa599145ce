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

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.e2e.test_routing import dwd_cap
from tests.kits.faultkit import SourceHub, feed_with
from tests.kits.hubproc import drop, until
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
