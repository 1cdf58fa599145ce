"""Applies the migrations (see the package docstring): the list, the newest version, the runner."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hub.errors import StoreError
from hub.store import dialect, schema
from hub.store.migrations import (
    m0004_lazy_tables,
    m0005_subscription_filters,
    m0006_shared_node_state,
    m0007_fanout_uncompressed,
    m0008_districts,
)

log = logging.getLogger("warnhub.store")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    """The ``user_version`` a database has after it."""
    description: str
    up: Callable[[sqlite3.Connection], None]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(4, "one schema: the tables the first release created on first use, and their late columns",
              m0004_lazy_tables.up),
    Migration(5, "subscription filters (sources, quiet hours); the tables of test pushes and the store's probe",
              m0005_subscription_filters.up),
    Migration(6, "what many nodes share: the push budget per subscription, the router's claims, who polls a source",
              m0006_shared_node_state.up),
    Migration(7, "PostgreSQL: the fan-out's chunks stored uncompressed (their compression held up the first push)",
              m0007_fanout_uncompressed.up),
    Migration(8, "many districts: each district's rows carry its Kreis key; decisions and publications per district",
              m0008_districts.up),
)
LATEST = MIGRATIONS[-1].version
"""The newest schema version: the ``user_version`` of every database this hub has opened for writing."""


def version_of(conn: sqlite3.Connection, path: Path | str) -> int:
    """The database's schema version; a :class:`StoreError` if it is newer than this hub."""
    if dialect.of(conn) == dialect.POSTGRESQL:  # PostgreSQL has no user_version: one row of a table of its own
        row = conn.execute("SELECT to_regclass('store_version') IS NOT NULL").fetchone()
        version = int(conn.execute("SELECT version FROM store_version").fetchone()[0]) if row[0] else 0
    else:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > LATEST:
        raise StoreError(f"{path}: store schema {version} is newer than this hub ({LATEST}); "
                         "run the release that wrote it, or a newer one")
    return version


def apply(conn: sqlite3.Connection, path: Path | str) -> int:
    """Bring the database to :data:`LATEST` inside the caller's (durable) transaction; returns the version it had."""
    pg = dialect.of(conn) == dialect.POSTGRESQL
    if pg:  # the write lock SQLite's BEGIN IMMEDIATE takes: nodes opening one database at once migrate one by one
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('warnhub.store.migrate'))")
    version = version_of(conn, path)  # read again under the write lock: another process may have migrated it
    for migration in MIGRATIONS:
        if migration.version > version:
            log.info("store %s: migration %d: %s", path, migration.version, migration.description)
            migration.up(conn)
    schema.create(conn)
    if pg:
        conn.execute("CREATE TABLE IF NOT EXISTS store_version (id INTEGER PRIMARY KEY CHECK (id = 1),"
                     " version INTEGER)")
        conn.execute("INSERT INTO store_version (id, version) VALUES (1, ?)"
                     " ON CONFLICT (id) DO UPDATE SET version = excluded.version", (LATEST,))
    else:
        conn.execute(f"PRAGMA user_version={LATEST}")
    return version

