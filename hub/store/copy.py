"""``warnhub store copy``: an existing SQLite hub's store into an empty PostgreSQL database, every table and row
with its ids, the identity sequences then set past the highest id (new rows continue the numbering)."""

from __future__ import annotations

from collections.abc import Callable

from hub.errors import StoreError
from hub.store import dialect, schema
from hub.store.db import Store
from hub.store.migrations.tools import columns

BATCH = 5000


def tables() -> list[str]:
    """The schema's tables, each after those it references; readings before sensors, so the trigger that copies a
    sensor's newest reading finds no sensor yet and the sensor's own row (copied after) is what stays."""
    names = schema.tables()
    names.remove("readings")
    names.insert(names.index("sensors"), "readings")
    return names


def copy(source: Store, target_url: str, *, progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Copy ``source`` (SQLite, at the newest schema) into the empty PostgreSQL database at ``target_url`` in one
    transaction; returns rows per table. A target that holds any row is refused (nothing is merged)."""
    if not dialect.is_url(target_url):
        raise StoreError(f"{target_url}: not a postgresql:// URL")
    counts: dict[str, int] = {}
    with Store(target_url) as target:
        full = [t for t in tables() if target.conn.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()]
        if full:
            raise StoreError(f"{target.path}: not empty ({', '.join(full)}): copy only into a new database")
        with target.transaction(durable=True) as conn:
            for table in tables():
                cols = columns(source.conn, table)
                if cols != columns(conn, table):
                    raise StoreError(f"{table}: columns differ between the two stores")
                insert = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
                cur = source.conn.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY 1")
                counts[table] = 0
                while rows := cur.fetchmany(BATCH):
                    conn.executemany(insert, rows)
                    counts[table] += len(rows)
                if progress is not None:
                    progress(table, counts[table])
            for table, column in dialect.identities().items():
                conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                             f" coalesce(max({column}), 0) + 1, false) FROM {table}")
    return counts
