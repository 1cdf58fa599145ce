"""Migration 6: what many nodes share (issue 16): the push budget per subscription (``push_budget``, counted by
every delivery node in the store instead of each in its memory), the router's claims on the versions it is
deciding (``decide_claims``) and the ingest nodes standing by for a source (``source_standby``), all new and created
from :mod:`hub.store.schema` after this step; ``source_health`` gains ``node`` at its end (the node that polls the
source; empty on rows of earlier versions).
"""

from __future__ import annotations

import sqlite3

from hub.store.migrations.tools import columns


def up(conn: sqlite3.Connection) -> None:
    have = columns(conn, "source_health")
    if have and "node" not in have:
        conn.execute("ALTER TABLE source_health ADD COLUMN node TEXT")
