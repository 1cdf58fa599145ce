"""The console's tables ``console_warnings`` and ``console_events`` (in hub/store/schema.py): rows (JSON columns
decoded), reads, the event log and one transaction around store functions that open their own.

``console_warnings`` holds one row per version of an operator warning (``thread`` names the incident across
versions), ``console_events`` what happened to each version, by whom. A version goes draft -> submitted ->
approved -> sent, or ends rejected or withdrawn.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from hub.console.model import ConsoleError, _msg
from hub.store.clock import utc_iso
from hub.store.db import Store

# -- rows -------------------------------------------------------------------------------------------------------------

_COLS = ("id", "thread", "version", "parent_id", "state", "status", "msg_type", "kind", "template", "content", "area",
         "channels", "audience", "topic", "author", "author_id", "editors", "approver", "approver_id",
         "single_person_reason", "reject_reason", "revision", "created_at", "updated_at", "submitted_at",
         "approved_at", "sent_at", "cap_identifier", "cap_sent", "alert_id", "store_thread", "district")
_JSON = ("content", "area", "channels", "editors")
OPEN_STATES = ("draft", "submitted", "approved")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _row(values: Sequence[Any]) -> dict[str, Any]:
    d = dict(zip(_COLS, values, strict=True))
    for col in _JSON:
        d[col] = json.loads(d[col])
    return d


def get(store: Store, warning_id: int) -> dict[str, Any] | None:
    """One version (JSON columns decoded)."""
    row = store.conn.execute(f"SELECT {', '.join(_COLS)} FROM console_warnings WHERE id=?", (warning_id,)).fetchone()
    return _row(row) if row else None


def versions(store: Store, thread: str) -> list[dict[str, Any]]:
    return [_row(r) for r in store.conn.execute(
        f"SELECT {', '.join(_COLS)} FROM console_warnings WHERE thread=? ORDER BY version", (thread,))]


def warnings(store: Store, *, states: Sequence[str] | None = None, limit: int = 200,
             district: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Versions, newest first (optionally only in ``states``, only of the districts ``district`` names: the Kreis
    keys a console user's district owns, :func:`hub.web.console.owners`)."""
    where, args = [], []
    if states:
        where.append("state IN (SELECT value FROM json_each(?))")
        args.append(json.dumps(list(states)))
    if district is not None:
        where.append("district IN (SELECT value FROM json_each(?))")
        args.append(json.dumps(list(district)))
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return [_row(r) for r in store.conn.execute(
        f"SELECT {', '.join(_COLS)} FROM console_warnings {clause} ORDER BY id DESC LIMIT ?", (*args, limit))]


def history(store: Store, thread: str) -> list[dict[str, Any]]:
    """What happened to every version of a thread, oldest first."""
    rows = store.conn.execute("SELECT id, warning_id, at, actor, action, detail FROM console_events WHERE thread=?"
                              " ORDER BY id", (thread,)).fetchall()
    return [{"id": i, "warning_id": w, "at": at, "actor": actor, "action": action, "detail": json.loads(detail)}
            for i, w, at, actor, action, detail in rows]


def _require(store: Store, warning_id: int) -> dict[str, Any]:
    row = get(store, warning_id)
    if row is None:
        raise ConsoleError(_msg(f"Meldung {warning_id} gibt es nicht", f"no warning {warning_id}"))
    return row


def _event(conn: sqlite3.Connection, row: Mapping[str, Any], actor: str, action: str, detail: Mapping[str, Any],
           now: datetime) -> None:
    conn.execute("INSERT INTO console_events (warning_id, thread, at, actor, action, detail) VALUES (?,?,?,?,?,?)",
                 (row["id"], row["thread"], utc_iso(now), actor, action, _dumps(dict(detail))))
