"""The store on a real SQLite file: idempotent intake, threads through references, expiry, the audit chain."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from hub.cap.validate import Validator
from hub.intake.documents import Intake
from hub.store.chain import _audit_hash
from hub.store.db import Store
from tests.kits import paths
from tests.kits.hubproc import DWD_CHAIN, DWD_CURRENT, XXE, cap_xml, ref
from tests.kits.storekit import other

SENT = "2030-01-01T10:00:00+01:00"
T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)  # == SENT
BEFORE_EXPIRY = T0 + timedelta(hours=1)
AFTER_EXPIRY = T0 + timedelta(hours=12)  # cap_xml's default expires is 17:00 UTC


@pytest.fixture
def db_path(store_url: str) -> str:
    """The store's file or PostgreSQL database: every test here runs on both backends."""
    return store_url


@pytest.fixture
def store(db_path: str) -> Iterator[Store]:
    with Store(db_path) as s:
        yield s


@pytest.fixture
def intake(store: Store) -> Intake:
    return Intake(Validator(), store)


def state_of(store: Store, thread_id: int | None) -> str:
    assert thread_id is not None
    thread = store.thread(thread_id)
    assert thread is not None
    return thread.state


def thread_rows(store: Store) -> list[tuple[int, str, int]]:
    return [(t.id, t.state, t.versions) for t in store.threads(include_ended=True)]


def test_same_document_twice_is_stored_once(intake: Intake, store: Store, db_path: str) -> None:
    """Invariant: intake is idempotent on (sender, identifier, sent) - a re-delivered alert is one row, 'duplicate'."""
    raw = DWD_CHAIN[0].read_bytes()
    first = intake.ingest(raw, origin="test")
    second = intake.ingest(raw, origin="test")
    assert first.outcome == "new"
    assert second.outcome == "duplicate"
    assert second.alert_id == first.alert_id
    assert second.thread_id == first.thread_id
    with other(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM threads").fetchone()[0] == 1


def test_same_sent_instant_in_another_offset_is_a_duplicate(intake: Intake, store: Store) -> None:
    """Invariant: identity compares ``sent`` as an instant, so a relay that rewrites the offset adds no version."""
    first = intake.ingest(cap_xml("same-instant", sent="2030-01-01T10:00:00+01:00"), origin="a", now=BEFORE_EXPIRY)
    again = intake.ingest(cap_xml("same-instant", sent="2030-01-01T09:00:00+00:00"), origin="b", now=BEFORE_EXPIRY)
    assert (first.outcome, again.outcome) == ("new", "duplicate")
    assert store.counts()["alerts"] == 1


@pytest.mark.parametrize("order", ["forward", "reverse", "scrambled"])
def test_dwd_update_chain_is_one_thread(intake: Intake, store: Store, order: str) -> None:
    """Invariant: Alert -> Update -> Update -> Update is ONE incident whose current version is the latest by sent,
    whatever order the versions arrive in (out-of-order arrival is normal for polled feeds)."""
    files = {"forward": DWD_CHAIN, "reverse": DWD_CHAIN[::-1],
             "scrambled": [DWD_CHAIN[1], DWD_CHAIN[3], DWD_CHAIN[0], DWD_CHAIN[2]]}[order]
    results = [intake.ingest(f.read_bytes(), origin="test") for f in files]
    assert [r.outcome for r in results] == ["new"] * 4
    threads = store.threads(include_ended=True)
    assert len(threads) == 1, thread_rows(store)
    t = threads[0]
    assert results[-1].thread_id == t.id
    assert t.current_identifier == DWD_CURRENT
    assert t.current_msg_type == "Update"
    assert t.versions == 4
    assert t.state == "expired"  # expired 2019-01-23T12:00+01:00
    assert [v["msg_type"] for v in store.versions(t.id)] == ["Alert", "Update", "Update", "Update"]
    assert store.versions(t.id)[-1]["identifier"] == DWD_CURRENT
    assert store.current_alert(t.id).identifier == DWD_CURRENT  # type: ignore[union-attr]


def test_dwd_chain_current_before_expiry_is_updated(intake: Intake, store: Store) -> None:
    """Invariant: before its expires, an incident whose current version is an Update shows state 'updated'."""
    during = datetime(2019, 1, 23, 8, 0, tzinfo=UTC)  # 09:00+01:00, before 12:00+01:00
    for f in DWD_CHAIN:
        result = intake.ingest(f.read_bytes(), origin="test", now=during)
    assert result.state == "updated"
    assert store.threads() and store.threads()[0].current_identifier == DWD_CURRENT


def test_cancel_before_its_alert_ends_as_one_cancelled_thread(intake: Intake, store: Store) -> None:
    """Invariant: a Cancel that arrives before the Alert it cancels still cancels it - one thread, 'cancelled'."""
    cancel = cap_xml("inc-1-cancel", msg_type="Cancel", sent="2030-01-01T11:00:00+01:00",
                     references=ref("inc-1", SENT))
    alert = cap_xml("inc-1", sent=SENT)
    r1 = intake.ingest(cancel, origin="test", now=BEFORE_EXPIRY)
    r2 = intake.ingest(alert, origin="test", now=BEFORE_EXPIRY)
    assert (r1.outcome, r2.outcome) == ("new", "new")
    assert r1.thread_id == r2.thread_id
    assert r2.state == "cancelled"
    threads = store.threads(include_ended=True)
    assert len(threads) == 1
    assert threads[0].state == "cancelled"
    assert threads[0].current_identifier == "inc-1-cancel"
    assert threads[0].versions == 2
    assert store.threads() == []  # ended incidents are not current


def test_cancel_whose_alert_never_arrives_is_a_cancelled_thread(intake: Intake, store: Store) -> None:
    """Invariant: a Cancel for an alert the hub never saw is stored (not dropped) and shows as cancelled."""
    raw = (paths.DATA / "cap" / "us_ipaws_oasiscap_alertsense-cancel.xml").read_bytes()
    result = intake.ingest(raw, origin="test")
    assert result.outcome == "new"
    assert result.state == "cancelled"
    assert thread_rows(store) == [(result.thread_id, "cancelled", 1)]


def test_update_linking_two_threads_merges_them(intake: Intake, store: Store, db_path: str) -> None:
    """Invariant: two incidents that a later Update names together become one thread (no orphan thread remains)."""
    a = intake.ingest(cap_xml("part-a", sent=SENT), origin="test", now=BEFORE_EXPIRY)
    b = intake.ingest(cap_xml("part-b", sent="2030-01-01T10:05:00+01:00"), origin="test", now=BEFORE_EXPIRY)
    assert a.thread_id != b.thread_id
    assert len(store.threads()) == 2
    both = ref("part-a", SENT) + " " + ref("part-b", "2030-01-01T10:05:00+01:00")
    u = intake.ingest(cap_xml("part-ab", msg_type="Update", sent="2030-01-01T10:30:00+01:00", references=both),
                      origin="test", now=BEFORE_EXPIRY)
    threads = store.threads(include_ended=True)
    assert len(threads) == 1, thread_rows(store)
    assert a.thread_id is not None and b.thread_id is not None
    assert threads[0].id == u.thread_id == min(a.thread_id, b.thread_id)
    assert threads[0].current_identifier == "part-ab"
    assert threads[0].versions == 3
    assert threads[0].state == "updated"
    with other(db_path) as conn:
        assert {r[0] for r in conn.execute("SELECT thread_id FROM alerts")} == {u.thread_id}
        assert {r[0] for r in conn.execute("SELECT thread_id FROM thread_keys")} == {u.thread_id}
    # a later Cancel of either part ends the merged incident
    c = intake.ingest(cap_xml("part-b-cancel", msg_type="Cancel", sent="2030-01-01T11:00:00+01:00",
                              references=ref("part-b", "2030-01-01T10:05:00+01:00")), origin="test",
                      now=BEFORE_EXPIRY)
    assert c.thread_id == u.thread_id
    assert c.state == "cancelled"


def test_alert_past_its_expires_is_expired(intake: Intake, store: Store) -> None:
    """Invariant: a warning received after its expires is never shown as current."""
    result = intake.ingest(cap_xml("late"), origin="test", now=AFTER_EXPIRY)
    assert result.state == "expired"
    assert store.threads() == []
    assert thread_rows(store) == [(result.thread_id, "expired", 1)]


def test_sweep_ends_active_thread_once_expires_passes(intake: Intake, store: Store) -> None:
    """Invariant: the expiry sweep ends an active warning once its expires passes, and not before."""
    result = intake.ingest(cap_xml("timed"), origin="test", now=BEFORE_EXPIRY)
    assert result.state == "active"
    assert store.sweep_expired(BEFORE_EXPIRY) == []
    assert store.sweep_expired(datetime(2030, 1, 1, 16, 59, tzinfo=UTC)) == []
    assert store.threads()[0].state == "active"
    assert store.sweep_expired(datetime(2030, 1, 1, 17, 0, 1, tzinfo=UTC)) == [result.thread_id]
    assert store.threads() == []
    assert state_of(store, result.thread_id) == "expired"
    assert store.sweep_expired(AFTER_EXPIRY) == []  # an ended thread is not ended twice


def test_thread_without_expires_ends_after_max_age(db_path: str) -> None:
    """Invariant: a warning that states no end is ended after max_age_without_expires - a stale warning misleads."""
    with Store(db_path, max_age_without_expires=timedelta(hours=48)) as store:
        intake = Intake(Validator(), store)
        result = intake.ingest(cap_xml("open-ended", expires=None), origin="test", now=BEFORE_EXPIRY)
        assert result.state == "active"
        assert result.thread_id is not None
        assert store.thread(result.thread_id).expires is None  # type: ignore[union-attr]
        assert store.sweep_expired(T0 + timedelta(hours=47)) == []
        assert store.sweep_expired(T0 + timedelta(hours=48, seconds=1)) == [result.thread_id]
        assert state_of(store, result.thread_id) == "expired"
        # received only after that age, it is ended at once
        late = intake.ingest(cap_xml("open-ended-late", expires=None), origin="test", now=T0 + timedelta(days=3))
        assert late.state == "expired"


def test_thread_without_expires_never_ends_when_max_age_is_off(db_path: str) -> None:
    """Invariant: with max_age_without_expires=None (config 0) an open-ended warning stays until cancelled."""
    with Store(db_path, max_age_without_expires=None) as store:
        result = Intake(Validator(), store).ingest(cap_xml("forever", expires=None), origin="test", now=T0)
        assert store.sweep_expired(T0 + timedelta(days=365)) == []
        assert state_of(store, result.thread_id) == "active"


def test_ack_never_becomes_the_current_version(intake: Intake, store: Store) -> None:
    """Invariant: an Ack (or Error) joins the thread but never replaces the warning citizens see."""
    alert = intake.ingest(cap_xml("acked", sent=SENT), origin="test", now=BEFORE_EXPIRY)
    ack = intake.ingest(cap_xml("acked-ack", msg_type="Ack", sent="2030-01-01T10:10:00+01:00",
                                references=ref("acked", SENT)), origin="test", now=BEFORE_EXPIRY)
    assert ack.thread_id == alert.thread_id is not None
    t = store.thread(alert.thread_id)
    assert t is not None
    assert t.versions == 2
    assert t.current_identifier == "acked"
    assert t.current_msg_type == "Alert"
    assert t.state == "active"


def test_audit_chain_verifies(store: Store) -> None:
    """Invariant: an untouched audit log verifies, and each entry carries the hash of the one before."""
    assert store.verify_audit().ok and store.verify_audit().entries == 0
    for i in range(1, 5):
        assert store.audit("tester", "test.step", f"s{i}", {"i": i, "text": "Glätte"}) == i
    check = store.verify_audit()
    assert check.ok, check
    assert check.entries == 4
    entries = store.audit_entries()
    assert [e["prev_hash"] for e in entries[1:]] == [e["hash"] for e in entries[:-1]]


def _audit_store(db_path: str, n: int = 4) -> None:
    with Store(db_path) as store:
        for i in range(1, n + 1):
            store.audit("tester", "test.step", f"s{i}", {"i": i})


def test_audit_tampered_entry_is_found(db_path: str) -> None:
    """Invariant: changing any audit entry behind the hub's back is detected, and the first bad entry is named."""
    _audit_store(db_path)
    with other(db_path) as conn:
        conn.execute("""UPDATE audit SET detail='{"i":99}' WHERE seq=2""")
    with Store(db_path) as store:
        check = store.verify_audit()
    assert not check.ok
    assert check.first_bad == 2
    assert check.entries == 1
    assert "altered" in check.reason


def test_audit_rehashed_entry_is_found_by_the_next(db_path: str) -> None:
    """Invariant: a forger who alters an entry and recomputes its hash is still caught - the next entry no longer
    chains to it."""
    _audit_store(db_path)
    with other(db_path) as conn:
        seq, ts, actor, action, subject, prev = conn.execute(
            "SELECT seq, ts, actor, action, subject, prev_hash FROM audit WHERE seq=2").fetchone()
        forged = '{"i":99}'
        digest = _audit_hash(prev, seq, ts, actor, action, subject, forged)
        conn.execute("UPDATE audit SET detail=?, hash=? WHERE seq=2", (forged, digest))
    with Store(db_path) as store:
        check = store.verify_audit()
    assert not check.ok
    assert check.first_bad == 3
    assert check.entries == 2


def test_audit_deleted_middle_entry_is_found(db_path: str) -> None:
    """Invariant: deleting an entry from the middle of the audit log is detected."""
    _audit_store(db_path)
    with other(db_path) as conn:
        conn.execute("DELETE FROM audit WHERE seq=2")
    with Store(db_path) as store:
        check = store.verify_audit()
    assert not check.ok
    assert check.entries == 1
    assert "entry 2" in check.reason


def test_rejected_document_is_recorded(intake: Intake, store: Store, db_path: str) -> None:
    """Invariant: a refused document is never silently dropped - it is recorded with reason, hash and size."""
    raw = XXE.read_bytes()
    result = intake.ingest(raw, origin="test-origin")
    assert result.outcome == "rejected"
    assert result.alert_id is None
    assert "DOCTYPE" in result.reason
    with other(db_path) as conn:
        rows = conn.execute("SELECT origin, reason, sha256, size FROM rejections").fetchall()
        assert conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 0
    assert rows == [("test-origin", result.reason, hashlib.sha256(raw).hexdigest(), len(raw))]
    not_xml = intake.ingest(b"this is not XML at all", origin="test-origin")
    assert not_xml.outcome == "rejected"
    assert store.counts()["rejections"] == 2


def test_reopened_store_keeps_everything(db_path: str) -> None:
    """Invariant: the store is the source of truth - everything survives closing and reopening the file."""
    with Store(db_path) as store:
        intake = Intake(Validator(), store)
        for f in DWD_CHAIN:
            intake.ingest(f.read_bytes(), origin="test")
        intake.ingest(cap_xml("kept", sent=SENT), origin="test", now=BEFORE_EXPIRY)
        intake.ingest(XXE.read_bytes(), origin="test")
        store.audit("tester", "test.persist", "x", {"n": 1})
        before_threads = thread_rows(store)
        before_counts = store.counts()
        before_audit = store.audit_entries()
    with Store(db_path) as store:
        assert thread_rows(store) == before_threads
        assert store.counts() == before_counts
        assert store.counts()["alerts"] == 5 and store.counts()["rejections"] == 1
        assert store.audit_entries() == before_audit
        assert store.verify_audit().ok
        dwd = next(t for t in store.threads(include_ended=True) if t.versions == 4)
        assert dwd.current_identifier == DWD_CURRENT
        # the reopened store still knows what it has seen
        again = Intake(Validator(), store).ingest(DWD_CHAIN[2].read_bytes(), origin="test")
        assert again.outcome == "duplicate"
        assert again.thread_id == dwd.id


def test_nested_transactions_are_savepoints(store_url: str) -> None:
    """An inner transaction joins the outer one: its error undoes only its own writes, and nothing is committed
    before the outer one ends (another connection sees nothing meanwhile)."""
    store = Store(store_url)
    store.conn.execute("CREATE TABLE t (v INTEGER)")
    with other(store_url) as second:
        _savepoints(store, second)
    store.close()


def _savepoints(store: Store, other: sqlite3.Connection) -> None:
    with store.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(ValueError), store.transaction() as inner:
            inner.execute("INSERT INTO t VALUES (2)")
            raise ValueError("inner fails")
        with store.transaction() as inner:
            inner.execute("INSERT INTO t VALUES (3)")
        assert other.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    assert [v for (v,) in other.execute("SELECT v FROM t ORDER BY v")] == [1, 3]
    with pytest.raises(RuntimeError), store.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (4)")
        with store.transaction() as inner:
            inner.execute("INSERT INTO t VALUES (5)")
        raise RuntimeError("outer fails")
    assert [v for (v,) in other.execute("SELECT v FROM t ORDER BY v")] == [1, 3]


async def test_reads_do_not_wait_for_the_writer_thread(store_url: str) -> None:
    """Web reads use read connections of their own: a writer busy with a long transaction never delays them,
    and a read connection refuses to write."""
    import asyncio
    import threading

    from hub.store.db import AsyncStore

    astore = AsyncStore(Store(store_url))
    release = threading.Event()
    entered = threading.Event()

    def busy(store: Store) -> None:
        with store.transaction() as conn:
            conn.execute("INSERT INTO rejections (received_at, origin, reason, sha256, size) "
                         "VALUES ('x', 'o', 'r', 's', 1)")
            entered.set()
            release.wait(30)

    writer = asyncio.ensure_future(astore.run(busy, astore.store))
    await asyncio.to_thread(entered.wait, 30)
    counts = await astore.read(astore.store.counts)  # answered while the writer thread is still held
    assert counts["rejections"] == 0 and not writer.done()  # the uncommitted row is not visible yet
    reader = Store.reader(store_url)
    with pytest.raises(sqlite3.OperationalError, match="readonly|read-only"):
        reader.conn.execute("DELETE FROM rejections")
    reader.close()
    release.set()
    await writer
    assert (await astore.read(Store.counts, astore.store))["rejections"] == 1
    astore.close()


def test_same_identity_with_the_same_content_in_other_bytes_is_a_plain_duplicate(intake: Intake,
                                                                                   store: Store) -> None:
    """Invariant: a copy that only differs in layout (whitespace, the offset of its times) is a duplicate, no
    identity conflict."""
    first = intake.ingest(cap_xml("layout"), origin="a", now=BEFORE_EXPIRY)
    relaid = cap_xml("layout", sent="2030-01-01T09:00:00+00:00", expires="2030-01-01T17:00:00+00:00")
    again = intake.ingest(relaid.replace(b"\n  ", b"\n      "), origin="b", now=BEFORE_EXPIRY)
    assert (first.outcome, again.outcome) == ("new", "duplicate")
    assert store.conn.execute("SELECT count(*) FROM conflicts").fetchone() == (0,)


def test_same_identity_with_other_content_is_a_conflict_and_both_copies_are_kept(intake: Intake,
                                                                                  store: Store) -> None:
    """Invariant: the same (sender, identifier, sent) with another headline is never dropped silently: the version
    is flagged and the other copy is kept with its bytes, origin and signature status."""
    first = intake.ingest(cap_xml("other", headline="Hochwasser"), origin="a", now=BEFORE_EXPIRY)
    forged = cap_xml("other", headline="Entwarnung")
    again = intake.ingest(forged, origin="b", now=BEFORE_EXPIRY)
    assert (again.outcome, again.alert_id, again.thread_id) == ("conflict", first.alert_id, first.thread_id)
    assert store.counts()["alerts"] == 1
    row = store.conn.execute("SELECT origin, signature, raw, replaced FROM conflicts").fetchone()
    assert (row[0], row[1], bytes(row[2]), row[3]) == ("b", "absent", forged, 0)
    flags = store.conn.execute("SELECT flags FROM alerts WHERE id=?", (first.alert_id,)).fetchone()[0]
    assert "identity conflict" in flags
