"""Migration 5: subscription filters and test pushes (issue 18), and the store's write probe (issue 17).

``subscriptions`` gains ``sources`` (JSON list, ``[]``: every source) and ``quiet_hours`` (JSON or NULL) at its end,
keeping every row (an existing subscription keeps receiving what it received). The table ``push_tests`` (test
notifications a subscriber sent themselves) and ``store_probe`` (the one row /healthz writes to know the store can
write) are new and created from :mod:`hub.store.schema` after this step.
"""

from __future__ import annotations

import sqlite3

from hub.store.migrations.tools import columns

_FILTERS = (("sources", "TEXT NOT NULL DEFAULT '[]'"), ("quiet_hours", "TEXT"))


def up(conn: sqlite3.Connection) -> None:
    have = columns(conn, "subscriptions")
    if have:
        for name, decl in _FILTERS:
            if name not in have:
                conn.execute(f"ALTER TABLE subscriptions ADD COLUMN {name} {decl}")
