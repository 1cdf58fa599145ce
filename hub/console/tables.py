"""The console's tables ``console_warnings`` and ``console_events``: schema, rows (JSON columns decoded), reads,
the event log and one transaction around store functions that open their own."""

from __future__ import annotations

import json
import sqlite3
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from hub.console.model import ConsoleError, _msg
from hub.decide import decisions
from hub.deliver import outbox
from hub.intake import readings
from hub.publish import publications, subscriptions
from hub.store.clock import utc_iso
from hub.store.db import Store

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS console_warnings (
        id INTEGER PRIMARY KEY,
        thread TEXT NOT NULL,
        version INTEGER NOT NULL,
        parent_id INTEGER REFERENCES console_warnings(id),
        state TEXT NOT NULL,
        status TEXT NOT NULL,
        msg_type TEXT NOT NULL,
        kind TEXT NOT NULL,
        template TEXT,
        content TEXT NOT NULL,
        area TEXT NOT NULL,
        channels TEXT NOT NULL,
        audience TEXT NOT NULL,
        topic TEXT,
        author TEXT NOT NULL,
        author_id INTEGER NOT NULL,
        editors TEXT NOT NULL,
        approver TEXT,
        approver_id INTEGER,
        single_person_reason TEXT,
        reject_reason TEXT,
        revision INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        submitted_at TEXT,
        approved_at TEXT,
        sent_at TEXT,
        cap_identifier TEXT UNIQUE,
        cap_sent TEXT,
        alert_id INTEGER REFERENCES alerts(id),
        store_thread INTEGER,
        UNIQUE (thread, version))""",
    "CREATE INDEX IF NOT EXISTS console_warnings_state ON console_warnings(state, id)",
    """CREATE TABLE IF NOT EXISTS console_events (
        id INTEGER PRIMARY KEY,
        warning_id INTEGER NOT NULL REFERENCES console_warnings(id),
        thread TEXT NOT NULL,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS console_events_thread ON console_events(thread, id)",
)
_READY: weakref.WeakSet[Store] = weakref.WeakSet()


def ensure_schema(store: Store) -> None:
    """Create the console's tables and those it writes through (outside any transaction: a rolled-back CREATE
    would leave the modules believing their tables exist)."""
    if store in _READY:
        return
    for statement in _SCHEMA:
        store.conn.execute(statement)
    for module in (decisions, publications, outbox, subscriptions, readings):
        module.ensure_schema(store)
    _READY.add(store)


# -- rows -------------------------------------------------------------------------------------------------------------

_COLS = ("id", "thread", "version", "parent_id", "state", "status", "msg_type", "kind", "template", "content", "area",
         "channels", "audience", "topic", "author", "author_id", "editors", "approver", "approver_id",
         "single_person_reason", "reject_reason", "revision", "created_at", "updated_at", "submitted_at",
         "approved_at", "sent_at", "cap_identifier", "cap_sent", "alert_id", "store_thread")
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
    ensure_schema(store)
    row = store.conn.execute(f"SELECT {', '.join(_COLS)} FROM console_warnings WHERE id=?", (warning_id,)).fetchone()
    return _row(row) if row else None


def versions(store: Store, thread: str) -> list[dict[str, Any]]:
    ensure_schema(store)
    return [_row(r) for r in store.conn.execute(
        f"SELECT {', '.join(_COLS)} FROM console_warnings WHERE thread=? ORDER BY version", (thread,))]


def warnings(store: Store, *, states: Sequence[str] | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Versions, newest first (optionally only in ``states``)."""
    ensure_schema(store)
    where, args = ("WHERE state IN (SELECT value FROM json_each(?))", (json.dumps(list(states)),)) if states \
        else ("", ())
    return [_row(r) for r in store.conn.execute(
        f"SELECT {', '.join(_COLS)} FROM console_warnings {where} ORDER BY id DESC LIMIT ?", (*args, limit))]


def history(store: Store, thread: str) -> list[dict[str, Any]]:
    """What happened to every version of a thread, oldest first."""
    ensure_schema(store)
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
