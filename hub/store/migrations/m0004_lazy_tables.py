"""Migration 4: from the first release (``user_version`` 1 to 3) to one schema.

The first release versioned only the store's own tables; every other table was created by its module on first use
(``ensure_schema``), so a database of that release has any of them or none. The missing ones are created from
:mod:`hub.store.schema` after this step (see the package docstring); here the tables that exist are brought up to
date, keeping every row:

- ``decisions`` gains the columns of a failed evaluation (``failed_stage``, ``failure``, ``attempts``,
  ``retry_at``) where it was made before failures were recorded (the module added them on the fly);
- ``login_throttle``, the hard locks of earlier versions (holding addresses with no retention), is dropped.
"""

from __future__ import annotations

import sqlite3

from hub.store.migrations.tools import columns

_DECISION_FAULTS = (("failed_stage", "TEXT"), ("failure", "TEXT NOT NULL DEFAULT ''"),
                    ("attempts", "INTEGER NOT NULL DEFAULT 0"), ("retry_at", "TEXT"))


def up(conn: sqlite3.Connection) -> None:
    have = columns(conn, "decisions")
    if have:
        for name, decl in _DECISION_FAULTS:
            if name not in have:
                conn.execute(f"ALTER TABLE decisions ADD COLUMN {name} {decl}")
    conn.execute("DROP TABLE IF EXISTS login_throttle")
