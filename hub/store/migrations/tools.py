"""Helpers for writing migrations."""

from __future__ import annotations

import sqlite3

from hub.store import dialect


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    """A table's columns in order; empty if the database has no such table."""
    if dialect.of(conn) == dialect.POSTGRESQL:
        return [str(row[0]) for row in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = ? ORDER BY ordinal_position", (table,))]
    return [str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})")]
