"""Helpers for writing migrations."""

from __future__ import annotations

import sqlite3


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    """A table's columns in order; empty if the database has no such table."""
    return [str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})")]
