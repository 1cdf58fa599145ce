"""Migration 7: PostgreSQL stores the fan-out's chunks uncompressed (issue 16: the first push within a second).

A publication's transaction writes its recipients as JSON chunks (:mod:`hub.deliver.fanout`): 32 MB at 1,000,000
recipients. PostgreSQL compressed each chunk with pglz on the way in, 0.5 s of the 0.6 s that transaction took, and
the first push waits for its commit; uncompressed (``STORAGE EXTERNAL``) it takes 0.1 s. The chunks live for seconds
to minutes, so the space does not matter. New databases get it from :func:`hub.store.schema.create`; SQLite has
nothing to change.
"""

from __future__ import annotations

import sqlite3

from hub.store import dialect
from hub.store.migrations.tools import columns

UNCOMPRESSED = "ALTER TABLE fanout ALTER COLUMN recipients SET STORAGE EXTERNAL"


def up(conn: sqlite3.Connection) -> None:
    if dialect.of(conn) == dialect.POSTGRESQL and columns(conn, "fanout"):
        conn.execute(UNCOMPRESSED)
