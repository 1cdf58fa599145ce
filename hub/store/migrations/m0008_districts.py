"""Migration 8: many districts in one hub (issue 19). The rows of each district's authority carry its Kreis key.

- ``district`` (the Kreis's 12-digit ARS) at the end of ``audit`` and ``audit_anchors`` (each district's audit is a
  chain of its own; ``''``: the hub's own entries), ``drafts``, ``publications``, ``console_warnings`` and
  ``decisions``;
- ``decisions`` is keyed by (alert, district): every district's rules decide an external alert for it;
- ``publications`` is unique by (source alert, district) instead of by source alert: each district publishes its
  own warning of one external alert.

Existing rows get ``''``: the hub, when it starts, gives them to its first district (:func:`adopt`), so a
single-district database becomes the first district of a multi-district one with nothing lost. SQLite cannot change
a table's key in place: ``decisions`` and ``publications`` are rebuilt (created anew, copied, swapped), every row kept.
"""

from __future__ import annotations

import sqlite3

from hub.store import dialect
from hub.store.migrations.tools import columns

ADDED = ("audit", "audit_anchors", "drafts", "console_warnings")
DISTRICT = "district TEXT NOT NULL DEFAULT ''"

_DECISIONS = """CREATE TABLE decisions_new (
        alert_id INTEGER NOT NULL REFERENCES alerts(id),
        thread_id INTEGER NOT NULL,
        decision TEXT NOT NULL,
        rules TEXT NOT NULL,
        channels TEXT NOT NULL,
        audiences TEXT NOT NULL,
        push INTEGER NOT NULL,
        drafts TEXT NOT NULL,
        severity TEXT NOT NULL,
        regions TEXT NOT NULL,
        inside_district INTEGER,
        outside_share REAL,
        changes TEXT NOT NULL,
        why TEXT NOT NULL,
        rules_loaded_at TEXT,
        decided_at TEXT NOT NULL,
        failed_stage TEXT,
        failure TEXT NOT NULL DEFAULT '',
        attempts INTEGER NOT NULL DEFAULT 0,
        retry_at TEXT,
        district TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (alert_id, district))"""

_PUBLICATIONS = """CREATE TABLE publications_new (
        id INTEGER PRIMARY KEY,
        thread TEXT NOT NULL,
        version INTEGER NOT NULL,
        source_thread INTEGER,
        source_alert INTEGER,
        identifier TEXT NOT NULL UNIQUE,
        sender TEXT NOT NULL,
        sent TEXT NOT NULL,
        msg_type TEXT NOT NULL,
        status TEXT NOT NULL,
        severity TEXT NOT NULL,
        urgency TEXT NOT NULL,
        expires_ms INTEGER,
        push INTEGER NOT NULL,
        channels TEXT NOT NULL,
        regions TEXT NOT NULL,
        area_wkb BLOB,
        notices TEXT NOT NULL,
        alert_json TEXT NOT NULL,
        cap_xml BLOB NOT NULL,
        created_ms INTEGER NOT NULL,
        district TEXT NOT NULL DEFAULT '',
        UNIQUE (thread, version),
        UNIQUE (source_alert, district))"""

DISTRICT_TABLES = ("decisions", "drafts", "publications", "console_warnings", "audit", "audit_anchors")
"""The tables whose rows belong to one district (``''``: not yet given to one, see :func:`adopt`)."""


def up(conn: sqlite3.Connection) -> None:
    pg = dialect.of(conn) == dialect.POSTGRESQL
    for table in ADDED:
        have = columns(conn, table)
        if have and "district" not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {DISTRICT}")
    for table, create in (("decisions", _DECISIONS), ("publications", _PUBLICATIONS)):
        have = columns(conn, table)
        if not have or "district" in have:
            continue
        if pg:
            _rekey_pg(conn, table)
            continue
        conn.execute(create)
        cols = ", ".join(have)
        conn.execute(f"INSERT INTO {table}_new ({cols}) SELECT {cols} FROM {table}")
        conn.execute(f"DROP TABLE {table}")
        conn.execute(f"ALTER TABLE {table}_new RENAME TO {table}")


def _rekey_pg(conn: sqlite3.Connection, table: str) -> None:
    conn.execute(f"ALTER TABLE {table} ADD COLUMN {DISTRICT}")
    if table == "decisions":
        conn.execute("ALTER TABLE decisions DROP CONSTRAINT IF EXISTS decisions_pkey")
        conn.execute("ALTER TABLE decisions ALTER COLUMN alert_id DROP IDENTITY IF EXISTS")
        conn.execute("ALTER TABLE decisions ADD PRIMARY KEY (alert_id, district)")
    else:
        conn.execute("ALTER TABLE publications DROP CONSTRAINT IF EXISTS publications_source_alert_key")
        conn.execute("ALTER TABLE publications ADD UNIQUE (source_alert, district)")


def adopt(conn: sqlite3.Connection, district: str) -> int:
    """Give every row no district owns yet to ``district`` (the first one configured); returns how many rows. The
    audit entries stay the hub's (``''``): their hashes were computed without a district."""
    n = 0
    for table in DISTRICT_TABLES:
        if table.startswith("audit"):
            continue
        n += conn.execute(f"UPDATE {table} SET district=? WHERE district=''", (district,)).rowcount
    return n
