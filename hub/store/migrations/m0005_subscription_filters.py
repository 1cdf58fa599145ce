"""Migration 5: subscription filters and test pushes (issue 18).

``subscriptions`` gains ``sources`` (JSON list, ``[]``: every source) and ``quiet_hours`` (JSON or NULL) at its end,
keeping every row (an existing subscription keeps receiving what it received). The table ``push_tests`` (test
notifications a subscriber sent themselves) is new and created from :mod:`hub.store.schema` after this step.
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
