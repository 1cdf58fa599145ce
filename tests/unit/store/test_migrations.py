"""Numbered migrations: a database of the first release (``tests/data/db/release1.db``, see tests/data/README.md)
opens in this hub with every row intact and the schema of a new database; a database newer than the hub is refused;
a migration that fails changes nothing."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hub.errors import StoreError
from hub.store.db import Store
from hub.store.migrations import run
from hub.store.migrations.run import LATEST, Migration
from tests.kits import paths
from tests.unit.store.sqlschema import schema_of

RELEASE1 = paths.DATA / "db" / "release1.db"
RELEASE1_TABLES = ("threads", "alerts", "thread_keys", "rejections", "audit", "audit_anchors", "presence",
                   "source_health")
"""The tables the first release versioned (user_version 3); it created every other table on first use."""
KEPT = ("alerts", "threads", "thread_keys", "subscriptions", "publications", "outbox", "users", "sessions", "audit",
        "decisions", "drafts", "console_warnings", "console_events", "conflicts", "exercise_tokens",
        "login_failures", "readings", "source_health")
"""Tables whose rows the release-1 database holds: each must come through the migration unchanged."""

Rows = dict[str, list[dict[str, Any]]]


def rows_of(db: Path) -> Rows:
    """Every row of every table, read with plain sqlite3 (no hub code), as column -> value, in rowid/key order."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        out = {t: [dict(r) for r in conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2")] for t in tables}
    conn.close()
    return out


def version_of(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    conn.close()
    return version


def schema_at(db: Path) -> dict[str, tuple[str, str, str | None]]:
    with sqlite3.connect(db) as conn:
        out = schema_of(conn)
    conn.close()
    return out


@pytest.fixture
def release1(tmp_path: Path) -> Path:
    db = tmp_path / "release1" / "hub.db"
    db.parent.mkdir()
    shutil.copyfile(RELEASE1, db)
    return db


@pytest.fixture
def new_schema(tmp_path: Path) -> dict[str, tuple[str, str, str | None]]:
    """The schema of a database this hub makes new."""
    Store(tmp_path / "new" / "hub.db").close()
    return schema_at(tmp_path / "new" / "hub.db")


def test_the_fixture_is_a_first_release_database(release1: Path) -> None:
    before = rows_of(release1)
    assert version_of(release1) == 3
    assert {t: len(before[t]) for t in KEPT} == {
        "alerts": 14, "threads": 10, "thread_keys": 14, "subscriptions": 9, "publications": 12, "outbox": 18,
        "users": 4, "sessions": 29, "audit": 115, "decisions": 13, "drafts": 1, "console_warnings": 21,
        "console_events": 63, "conflicts": 1, "exercise_tokens": 1, "login_failures": 1, "readings": 25,
        "source_health": 1}


def test_a_first_release_database_migrates_with_every_row_intact(
        release1: Path, new_schema: dict[str, tuple[str, str, str | None]]) -> None:
    before = rows_of(release1)
    with Store(release1) as store:
        check = store.verify_audit()
        assert check.ok and check.entries == 115, check.reason
        store.audit("test", "after.migration", "", {})  # the chain goes on from the migrated entries
        assert store.verify_audit().ok and store.verify_audit().entries == 116
    after = rows_of(release1)
    assert version_of(release1) == LATEST
    assert schema_at(release1) == new_schema
    assert set(before) <= set(after)
    for table, old in before.items():
        new = after[table][:len(old)] if table == "audit" else after[table]
        assert len(new) == len(old), table
        assert [{c: row[c] for c in old_row} for row, old_row in zip(new, old, strict=True)] == old, table


def test_opening_a_migrated_database_again_changes_nothing(
        release1: Path, new_schema: dict[str, tuple[str, str, str | None]], monkeypatch: pytest.MonkeyPatch) -> None:
    Store(release1).close()
    migrated = rows_of(release1)

    def no_migration(*_args: object) -> int:
        raise AssertionError("a database at the newest version was migrated again")

    monkeypatch.setattr(run, "apply", no_migration)
    with Store(release1) as store:
        assert store.verify_audit().ok
    assert rows_of(release1) == migrated
    assert schema_at(release1) == new_schema and version_of(release1) == LATEST


def test_a_first_release_database_without_its_lazy_tables_gets_them(
        release1: Path, new_schema: dict[str, tuple[str, str, str | None]]) -> None:
    """The first release created most tables on first use: a district that never used the console, sensors or
    push has none of them. The migration creates them; the store's own rows stay."""
    with sqlite3.connect(release1) as conn:
        lazy = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                if r[0] not in RELEASE1_TABLES]
        for table in ("readings", "sessions", "console_events", *lazy):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.close()
    assert lazy and schema_at(release1) != new_schema
    before = rows_of(release1)
    with Store(release1) as store:
        assert store.verify_audit().ok
        assert store.conn.execute("SELECT count(*) FROM outbox").fetchone() == (0,)
    assert schema_at(release1) == new_schema and version_of(release1) == LATEST
    after = rows_of(release1)  # every row kept, with the columns it had (later migrations add columns at the end)
    assert {t: [{c: row[c] for c in was} for row, was in zip(after[t], before[t], strict=True)]
            for t in before} == before


def test_a_new_database_takes_the_same_path(tmp_path: Path, new_schema: dict[str, tuple[str, str, str | None]],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A new database is version 0: the migrations find nothing to change, schema.py creates every table."""
    ran: list[int] = []
    monkeypatch.setattr(run, "MIGRATIONS", tuple(
        Migration(m.version, m.description, lambda conn, m=m: (ran.append(m.version), m.up(conn))[1])
        for m in run.MIGRATIONS))
    Store(tmp_path / "fresh.db").close()
    assert ran == [m.version for m in run.MIGRATIONS]
    assert schema_at(tmp_path / "fresh.db") == new_schema


def test_a_database_newer_than_the_hub_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "later.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE later (x TEXT)")
        conn.execute(f"PRAGMA user_version={LATEST + 1}")
    conn.close()
    with pytest.raises(StoreError, match=rf"store schema {LATEST + 1} is newer than this hub \({LATEST}\)"):
        Store(db)
    assert version_of(db) == LATEST + 1 and set(schema_at(db)) == {"later"}  # untouched


def test_a_migration_that_fails_changes_nothing(release1: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """All migrations and the tables after them are one transaction: a failure leaves the old version, whole."""
    with sqlite3.connect(release1) as conn:
        conn.execute("DROP TABLE console_events")
    conn.close()
    before, schema_before = rows_of(release1), schema_at(release1)

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE alerts SET headline = 'half-migrated'")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(run, "MIGRATIONS", (*run.MIGRATIONS, Migration(LATEST + 1, "breaks", broken)))
    monkeypatch.setattr(run, "LATEST", LATEST + 1)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        Store(release1)
    assert version_of(release1) == 3
    assert schema_at(release1) == schema_before and "console_events" not in schema_before
    assert rows_of(release1) == before


def test_a_postgresql_database_newer_than_the_hub_is_refused(pg_url: str) -> None:
    from tests.kits.storekit import other

    with other(pg_url) as conn:
        conn.execute("CREATE TABLE store_version (id INTEGER PRIMARY KEY, version INTEGER)")
        conn.execute("INSERT INTO store_version VALUES (1, ?)", (LATEST + 1,))
    with pytest.raises(StoreError, match=rf"store schema {LATEST + 1} is newer than this hub \({LATEST}\)"):
        Store(pg_url)
    with other(pg_url) as conn:
        assert conn.execute("SELECT to_regclass('alerts')").fetchone()[0] is None  # untouched


def test_a_migration_that_fails_on_postgresql_changes_nothing(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL's DDL is transactional too: a failing migration leaves the old version, its rows and tables."""
    from tests.kits.storekit import other

    with Store(pg_url) as store:
        store.conn.execute("INSERT INTO rejections (received_at, origin, reason, sha256, size)"
                           " VALUES ('t', 'o', 'kept', 's', 1)")

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half (x TEXT)")
        conn.execute("UPDATE rejections SET reason = 'half-migrated'")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(run, "MIGRATIONS", (*run.MIGRATIONS, Migration(LATEST + 1, "breaks", broken)))
    monkeypatch.setattr(run, "LATEST", LATEST + 1)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        Store(pg_url)
    with other(pg_url) as conn:
        assert conn.execute("SELECT version FROM store_version").fetchone()[0] == LATEST
        assert conn.execute("SELECT reason FROM rejections").fetchall() == [("kept",)]
        assert conn.execute("SELECT to_regclass('half')").fetchone()[0] is None


def test_postgresql_stores_the_fan_out_chunks_uncompressed_new_or_migrated(pg_url: str) -> None:
    """Migration 7: pglz compression of the chunks (32 MB at a million recipients) was most of the publication's
    transaction, which the first push waits for; a new database and one migrated from version 6 both store them
    uncompressed (``STORAGE EXTERNAL``)."""
    from tests.kits.storekit import other

    storage = ("SELECT attstorage FROM pg_attribute WHERE attrelid = 'fanout'::regclass"
               " AND attname = 'recipients'")
    Store(pg_url).close()
    with other(pg_url) as conn:
        assert conn.execute(storage).fetchone()[0] == "e"
        conn.execute("ALTER TABLE fanout ALTER COLUMN recipients SET STORAGE EXTENDED")  # as version 6 made it
        conn.execute("UPDATE store_version SET version = 6")
    Store(pg_url).close()
    with other(pg_url) as conn:
        assert conn.execute(storage).fetchone()[0] == "e"
        assert conn.execute("SELECT version FROM store_version").fetchone()[0] == LATEST
