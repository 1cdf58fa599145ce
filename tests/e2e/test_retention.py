"""Retention on a real SQLite file: the store stops growing, and nothing still needed is deleted.

Every time comes from one injected clock (``T0``, a fixed day in 2030, plus offsets): no wall-clock assumption.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub import retention
from hub.cap.validate import Validator
from hub.config.sections import RetentionSection
from hub.deliver import outbox
from hub.deliver.outbox import NewDelivery, RetryPolicy
from hub.intake import readings
from hub.intake.documents import Intake
from hub.ports import Outcome
from hub.publish import publications
from hub.store.db import AsyncStore, Store
from tests.kits.hubproc import cap_xml

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
"""Before every warning below is sent: deliveries happen here."""
ENDED = datetime(2030, 1, 1, 17, 0, tzinfo=UTC)
"""When the short warnings expire (18:00 +01:00)."""
DAY = timedelta(days=1)


def ms(value: datetime) -> int:
    return publications.ms(value)


def plan(tmp_path: Path, **settings: float) -> retention.Plan:
    return retention.Plan(RetentionSection(**settings), frozenset({"feed", "pegel"}), frozenset({"pegel"}),
                          tmp_path / "audit")


class World:
    """A store holding four of the hub's incidents, each with done, failed and queued delivery rows."""

    def __init__(self, path: Path) -> None:
        self.store = Store(path)
        self.intake = Intake(Validator(), self.store)
        self.astore = AsyncStore(self.store)

    def incident(self, name: str, *, expires: str | None, cancel: bool = False) -> tuple[str, int]:
        """Store a source alert (sent 2030-01-01 10:00 +01:00), publish it (and its Cancel) as thread ``w<name>``,
        and deliver to three recipients at T0: one done, one failed, one left queued."""
        got = self.intake.ingest(cap_xml(name, expires=expires), origin="feed", now=T0)
        assert got.outcome == "new" and got.thread_id is not None
        alert = self.store.alert(got.alert_id or 0)
        assert alert is not None
        thread = f"w{name}"
        with self.store.transaction() as conn:
            pub = publications.insert(conn, alert, thread=thread, version=1, source_thread=got.thread_id,
                                      source_alert=got.alert_id, push=False, channels=("webhooks",), regions=(),
                                      area=None, now_ms=ms(T0))
        channel = f"hook-{name}"  # a channel each, so the claim takes this incident's rows
        outbox.enqueue(self.store, [NewDelivery(f"{pub.identifier}/hook/{r}", pub.id, thread, channel, r, "",
                                                5, pub.expires_ms) for r in ("a", "b", "c")], now_ms=ms(T0))
        claimed = {d.recipient: d for d in outbox.claim(self.store, channel, 2, lease_s=60, now_ms=ms(T0))}
        outbox.complete(self.store, [(claimed["a"], Outcome.done()), (claimed["b"], Outcome.failed("400"))],
                        now_ms=ms(T0), policy=RetryPolicy())
        if cancel:
            cancel_xml = cap_xml(f"{name}-cancel", msg_type="Cancel", sent="2030-01-01T11:00:00+01:00",
                                 references=f"test@warnhub.example,{name},2030-01-01T10:00:00+01:00", expires=None)
            c = self.intake.ingest(cancel_xml, origin="feed", now=T0)
            calert = self.store.alert(c.alert_id or 0)
            assert calert is not None
            with self.store.transaction() as conn:
                publications.insert(conn, calert, thread=thread, version=2, source_thread=got.thread_id,
                                    source_alert=c.alert_id, push=False, channels=("webhooks",), regions=(),
                                    area=None, now_ms=ms(T0))
        return thread, got.thread_id

    def rows(self, thread: str) -> dict[str, str]:
        return dict(self.store.conn.execute("SELECT recipient, state FROM outbox WHERE thread=?", (thread,)))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path / "hub.db")
    yield w
    w.astore.close()


async def test_outbox_rows_go_30_days_after_their_incident_ended_never_while_it_is_current(
        world: World, tmp_path: Path) -> None:
    short, _ = world.incident("short", expires="2030-01-01T18:00:00+01:00")
    cancelled, _ = world.incident("cancelled", expires="2030-03-01T18:00:00+01:00", cancel=True)
    current, _ = world.incident("current", expires="2031-01-01T18:00:00+01:00")  # a warning valid for a year
    listed, listed_thread = world.incident("listed", expires=None)  # states no end: current while listed
    world.store.snapshot("feed", [("test@warnhub.example", "listed")], misses_to_end=3, now=T0)
    world.store.sweep_expired(ENDED)
    astore = world.astore
    kept = await retention.run(astore, plan(tmp_path), now=ENDED + 29 * DAY)
    assert kept["outbox"] == 0
    assert world.rows(short) == {"a": "done", "b": "failed", "c": "queued"}

    removed = await retention.run(astore, plan(tmp_path), now=ENDED + 31 * DAY)
    assert world.rows(short) == {"c": "queued"}  # a queued row is never pruned (its worker expires it)
    # the Cancel's own delivery window is 24 h from its sent: ended long before, so its rows went too
    assert world.rows(cancelled) == {"c": "queued"}
    assert world.rows(current) == {"a": "done", "b": "failed", "c": "queued"}  # still current: all kept
    assert world.rows(listed) == {"a": "done", "b": "failed", "c": "queued"}  # listed: current
    assert removed["outbox"] == 4

    # the list source stops listing it: it ends; 30 days later its rows go
    for n in range(3):
        world.store.snapshot("feed", [], misses_to_end=3, now=ENDED + (32 + n) * DAY)
    assert world.store.thread(listed_thread).state == "ended"  # type: ignore[union-attr]
    await retention.run(astore, plan(tmp_path), now=ENDED + 60 * DAY)
    assert world.rows(listed) == {"a": "done", "b": "failed", "c": "queued"}
    await retention.run(astore, plan(tmp_path), now=ENDED + 66 * DAY)
    assert world.rows(listed) == {"c": "queued"}


async def test_raw_documents_of_ended_incidents_go_every_version_stays(world: World, tmp_path: Path) -> None:
    world.incident("short", expires="2030-01-01T18:00:00+01:00")
    world.incident("current", expires="2031-01-01T18:00:00+01:00")
    world.store.sweep_expired(ENDED)
    astore = world.astore
    assert (await retention.run(astore, plan(tmp_path), now=ENDED + 89 * DAY))["raw"] == 0
    assert (await retention.run(astore, plan(tmp_path), now=ENDED + 91 * DAY))["raw"] == 1
    rows = dict(world.store.conn.execute("SELECT identifier, raw IS NULL FROM alerts"))
    assert rows == {"short": 1, "current": 0}
    assert world.store.counts()["alerts"] == 2
    # the version's identity stays: the same document again is a duplicate, not a new incident
    assert world.intake.ingest(cap_xml("short"), origin="feed", now=ENDED + 92 * DAY).outcome == "duplicate"


async def test_rejections_presence_and_orphan_readings(world: World, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    store = world.store
    store.add_rejection(b"old", origin="feed", reason="x", now=T0)
    store.add_rejection(b"new", origin="feed", reason="x", now=T0 + 80 * DAY)
    store.snapshot("feed", [("s", "kept")], misses_to_end=3, now=T0)
    store.snapshot("removed-source", [("s", "gone")], misses_to_end=3, now=T0)
    sensors = [readings.SensorRow(i, "water_level", "cm", 52.9, 11.1, None, f"t/{i}", 900) for i in ("p1", "o1")]
    readings.register(store, "pegel", sensors[:1], now=ms(T0))
    readings.register(store, "old-mqtt", sensors[1:], now=ms(T0))
    readings.add_batch(store, [(i, ms(T0 + d * DAY), 1.0, "cm", ms(T0)) for i in ("p1", "o1") for d in (0, 80)])
    astore = world.astore
    caplog.set_level(logging.INFO, logger="warnhub.retention")
    done = await retention.run(astore, plan(tmp_path), now=T0 + 91 * DAY)
    assert done["rejections"] == 1 and store.counts()["rejections"] == 1
    assert done["presence"] == 1 and store.presence("removed-source") == {} and store.presence("feed") == {"s/kept": 0}
    # the configured mqtt source prunes its own sensor (by its retention_days); the orphan's old reading goes here
    assert done["readings"] == 1 and readings.count(store, "o1") == 1 and readings.count(store, "p1") == 2
    logged = [r.getMessage() for r in caplog.records]
    assert "retention: removed 1 rejection record(s) older than 90 days" in logged
    assert any("reading(s) older than 30 days of sensors no configured source owns" in m for m in logged)


async def test_zero_days_keeps_forever_and_audit_archiving_is_off_by_default(world: World, tmp_path: Path) -> None:
    store = world.store
    store.add_rejection(b"old", origin="feed", reason="x", now=T0)
    for i in range(3):
        store.audit("tester", "step", now=T0 + i * DAY)
    astore = world.astore
    done = await retention.run(astore, plan(tmp_path, rejections_days=0), now=T0 + 1000 * DAY)
    assert "rejections" not in done and "audit" not in done and store.counts()["rejections"] == 1
    done = await retention.run(astore, plan(tmp_path, audit_days=365), now=T0 + 1000 * DAY)
    assert done["audit"] == 3
    files = list((tmp_path / "audit").iterdir())
    assert len(files) == 1 and store.verify_audit().ok and store.verify_audit().anchor == 3
    from hub.store.audit import verify_archive

    assert verify_archive(store, files[0]).ok


def test_the_daemon_runs_retention_on_schedule_and_logs_what_it_removed(tmp_path: Path) -> None:
    from tests.kits.hubproc import HubProcess, free_port, wait_for, write_config

    port = free_port()
    config = write_config(tmp_path, port=port, extra="\n[retention]\ninterval_h = 0.0005\n")  # every 1.8 s
    with Store(tmp_path / "hub.db") as store:
        now = datetime.now(UTC)
        store.add_rejection(b"old", origin="cap-inbox", reason="x", now=now - 200 * DAY)
        store.add_rejection(b"recent", origin="cap-inbox", reason="x", now=now - DAY)
        store.snapshot("removed-feed", [("s", "i")], misses_to_end=3, now=now)
    proc = HubProcess(config, port, tmp_path / "warnhub.log")
    try:
        proc.start()
        wait_for(lambda: "retention: removed 1 list-presence row(s) of sources no longer configured" in proc.log(),
                 timeout=30, what="the retention job's log line")
        assert "retention: removed 1 rejection record(s) older than 90 days" in proc.log()
    finally:
        proc.close()
    with Store(tmp_path / "hub.db") as store:
        assert store.counts()["rejections"] == 1 and store.presence("removed-feed") == {}


async def test_session_purge_logs_what_it_removed(world: World, caplog: pytest.LogCaptureFixture) -> None:
    from hub.access import auth
    from hub.geo.geography import geography

    store = world.store
    user = auth.add_user(store, "anna", ["author"], ["033540000000"], "ein langes Passwort", actor="test",
                         registry=geography().registry, now=T0)
    auth.start_session(store, user, "127.0.0.1", now=T0)
    auth.start_session(store, user, "127.0.0.1", now=T0 + 2 * DAY)
    caplog.set_level(logging.INFO, logger="warnhub.retention")
    removed = await retention.purge_sessions(world.astore, idle=timedelta(minutes=30), max_age=timedelta(hours=12),
                                             now=T0 + 2 * DAY)
    assert removed == 1 and store.conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 1
    assert "retention: removed 1 ended console session(s)" in [r.getMessage() for r in caplog.records]


async def test_set_aside_conflicting_copies_go_with_the_rejections(world: World, tmp_path: Path) -> None:
    """The copies hub.conflicts set aside (a second content under one CAP identity) are evidence for as long as
    rejection records are kept, then deleted."""
    from hub.store.clock import utc_iso

    store = world.store
    with store.transaction() as conn:
        for i, at in enumerate((T0, T0 + 80 * DAY)):
            conn.execute("INSERT INTO conflicts (alert_id, sender, identifier, sent, received_at, origin, signature,"
                         " verdict, sha256, raw, json, replaced, published, kept_origin, kept_signature)"
                         " VALUES (1, 's', ?, 'x', ?, 'feed', 'absent', 'valid', '', x'00', '{}', 0, 0, 'feed',"
                         " 'absent')",
                         (f"id-{i}", utc_iso(at)))
    done = await retention.run(world.astore, plan(tmp_path), now=T0 + 91 * DAY)
    assert done["conflicts"] == 1
    assert [r[0] for r in store.conn.execute("SELECT identifier FROM conflicts")] == ["id-1"]
