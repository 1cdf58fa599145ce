"""A database's schema as SQLite keeps it, normalised so that two databases made by different routes compare equal
exactly when they have the same tables, columns, constraints, indexes and triggers."""

from __future__ import annotations

import re
import sqlite3

_QUOTES = re.compile(r'["`\[\]]')
_SPACE = re.compile(r"\s+")
_AROUND = re.compile(r"\s*([(),])\s*")


def normalise(sql: str | None) -> str | None:
    """One statement without quoting, ``IF NOT EXISTS`` and layout: ``CREATE TABLE "t" (\\n  "a" TEXT)`` and
    ``CREATE TABLE IF NOT EXISTS t (a TEXT)`` both read ``CREATE TABLE t(a TEXT)``."""
    if sql is None:
        return None  # an index SQLite made for a PRIMARY KEY or UNIQUE constraint
    sql = _QUOTES.sub("", sql)
    sql = _SPACE.sub(" ", sql).strip()
    sql = sql.replace(" IF NOT EXISTS ", " ")
    return _AROUND.sub(r"\1", sql)


def schema_of(conn: sqlite3.Connection) -> dict[str, tuple[str, str, str | None]]:
    """Every table, index and trigger: name -> (type, table, normalised SQL)."""
    return {name: (kind, table, normalise(sql)) for kind, name, table, sql in conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_stat%'"
        " AND name != 'sqlite_sequence'")}
