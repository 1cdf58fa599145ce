"""A second connection to a test's store, behind the hub's back, on either backend: the SQLite file (``sqlite3``)
or the PostgreSQL database (the store's own wrapper, so the SQL is the same); autocommit, closed at the end."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hub.store import dialect


@contextmanager
def other(target: str | Path) -> Iterator[sqlite3.Connection]:
    """Another connection to the store at ``target`` (a path or a ``postgresql://`` URL); every statement commits."""
    if dialect.is_url(target):
        from hub.store.pg import PgConn
        pg = PgConn(str(target))
        try:
            yield pg  # type: ignore[misc]  # sqlite3's surface, see hub.store.pg
        finally:
            pg.close()
        return
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()
