"""Migration 6: what many nodes share (issue 16): the push budget per subscription (``push_budget``, counted by
every delivery node in the store instead of each in its memory) and the router's claims on the versions it is
deciding (``decide_claims``). Both tables are new and created from :mod:`hub.store.schema` after this step; the
number makes an older hub refuse the database rather than run without them.
"""

from __future__ import annotations

import sqlite3


def up(conn: sqlite3.Connection) -> None:
    """Nothing to change in the existing tables."""
