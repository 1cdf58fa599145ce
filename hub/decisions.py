"""What the rules decided, and the drafts waiting for a person (tables ``decisions`` and ``drafts``).

Every stored alert version gets one row in ``decisions``: publish, suppress, draft or **unrouted** (matched no
rule: stored and shown, never sent anywhere), with the rules, channels, push flag, regions and the explanation
that ``warnhub rules replay`` would print. An alert is stored first and decided after (store before acting): the
router finds versions without a decision with :func:`undecided`, so a crash between the two only delays the
decision until the next start.

``drafts`` holds what the rules prepared for approval: a template rendered for an incoming alert
(``then.draft``), or for a sensor condition that fired or cleared. Each draft has a key (alert and template, or
rule, kind and time of the sensor event) so deciding twice, or replaying readings after a restart, never drafts
the same thing twice. Approving and sending drafts is the control room's work; here they only wait.

Functions take the :class:`~hub.store.Store` and run on its writer thread (``AsyncStore.run``). The tables are
created on first use; the store's ``user_version`` belongs to hub/store.py.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hub.cap.model import Alert, from_json
from hub.rules import Decision, Draft
from hub.store import Store, now_utc, utc_iso

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS decisions (
        alert_id INTEGER PRIMARY KEY REFERENCES alerts(id),
        thread_id INTEGER NOT NULL,
        decision TEXT NOT NULL,
        rules TEXT NOT NULL,
        channels TEXT NOT NULL,
        audiences TEXT NOT NULL,
        push INTEGER NOT NULL,
        drafts TEXT NOT NULL,
        severity TEXT NOT NULL,
        regions TEXT NOT NULL,
        inside_district INTEGER,
        outside_share REAL,
        changes TEXT NOT NULL,
        why TEXT NOT NULL,
        rules_loaded_at TEXT,
        decided_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS decisions_thread ON decisions(thread_id)",
    "CREATE INDEX IF NOT EXISTS decisions_decision ON decisions(decision)",
    """CREATE TABLE IF NOT EXISTS drafts (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        origin TEXT NOT NULL,
        alert_id INTEGER,
        rule TEXT NOT NULL,
        sensor TEXT,
        kind TEXT NOT NULL,
        template TEXT NOT NULL,
        at TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        channels TEXT NOT NULL,
        audiences TEXT NOT NULL,
        why TEXT NOT NULL,
        draft TEXT NOT NULL,
        created_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS drafts_state ON drafts(state, id)",
)

_READY: weakref.WeakSet[Store] = weakref.WeakSet()

BACKLOG_STATES = ("active", "updated", "cancelled")
"""Threads whose undecided versions are decided whenever they were received."""
RECENT = timedelta(days=1)


def ensure_schema(store: Store) -> None:
    if store in _READY:
        return
    for statement in _SCHEMA:
        store.conn.execute(statement)
    _READY.add(store)


@dataclass(frozen=True, slots=True)
class Pending:
    """An alert version waiting for its decision, with what the rules need to decide it."""

    alert_id: int
    thread_id: int
    origin: str
    alert: Alert
    previous: Alert | None
    """The version this one updates (the latest earlier version of the thread it references, else the latest
    earlier one); None for the first version."""


def undecided(store: Store, *, limit: int = 50, after: int = 0, now: datetime | None = None) -> list[Pending]:
    """Stored versions without a decision, oldest first (ids above ``after``): those of live threads, and any
    received in the last :data:`RECENT` (an alert that arrives already expired is decided too, for the record;
    years of history in a store that predates the rules are not)."""
    ensure_schema(store)
    marks = ",".join("?" * len(BACKLOG_STATES))
    recent = utc_iso((now or now_utc()) - RECENT)
    rows = store.conn.execute(
        "SELECT a.id, a.thread_id, a.origin, a.json, a.sent_utc FROM alerts a JOIN threads t ON t.id = a.thread_id"
        f" WHERE a.id > ? AND (t.state IN ({marks}) OR a.received_at >= ?)"
        " AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.alert_id = a.id) ORDER BY a.id LIMIT ?",
        (after, *BACKLOG_STATES, recent, limit)).fetchall()
    out = []
    for alert_id, thread_id, origin, doc, sent_utc in rows:
        alert = from_json(doc)
        out.append(Pending(alert_id, thread_id, origin, alert, _previous(store, alert_id, thread_id, sent_utc, alert)))
    return out


def _previous(store: Store, alert_id: int, thread_id: int, sent_utc: str, alert: Alert) -> Alert | None:
    rows = store.conn.execute(
        "SELECT sender, identifier, json FROM alerts WHERE thread_id=? AND id != ? AND sent_utc <= ?"
        " ORDER BY sent_utc DESC, id DESC LIMIT 50", (thread_id, alert_id, sent_utc)).fetchall()
    if not rows:
        return None
    referenced = {(r.sender, r.identifier) for r in alert.references}
    chosen = next((r for r in rows if (r[0], r[1]) in referenced), rows[0])
    return from_json(chosen[2])


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def record(store: Store, pending: Pending, decision: Decision, *, rules_loaded_at: datetime | None,
           drafts: Iterable[tuple[str, Draft]] = (), now: datetime | None = None) -> bool:
    """Store a decision (and the drafts it asks for) in one transaction; False if the version was decided
    already (two deciders raced: the first one stands)."""
    ensure_schema(store)
    now = now or now_utc()
    d = decision.as_dict()
    with store.transaction() as conn:
        cur = conn.execute(
            "INSERT OR IGNORE INTO decisions (alert_id, thread_id, decision, rules, channels, audiences, push,"
            " drafts, severity, regions, inside_district, outside_share, changes, why, rules_loaded_at, decided_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (pending.alert_id, pending.thread_id, decision.decision, _dumps(d["rules"]), _dumps(d["channels"]),
             _dumps(d["audiences"]), int(decision.push), _dumps(d["drafts"]), d["severity"], _dumps(d["regions"]),
             None if decision.inside_district is None else int(decision.inside_district), d["outside_share"],
             _dumps(d["changes"]), decision.why, utc_iso(rules_loaded_at) if rules_loaded_at else None,
             utc_iso(now)))
        if cur.rowcount == 0:
            return False
        for rule, draft in drafts:
            _insert_draft(conn, key=f"alert:{pending.alert_id}:{draft.template}", origin="alert",
                          alert_id=pending.alert_id, rule=rule, sensor=None, kind="alert", at=now,
                          channels=decision.channels, audiences=decision.audiences, why=decision.why, draft=draft,
                          now=now)
    return True


@dataclass(frozen=True, slots=True)
class SensorDraft:
    """A sensor event as the store keeps it (see :class:`hub.rules.SensorEvent`)."""

    rule: str
    sensor: str
    kind: str
    at: datetime
    channels: tuple[str, ...]
    audiences: tuple[str, ...]
    why: str
    draft: Draft


def sensor_key(rule: str, kind: str, at: datetime) -> str:
    """The draft key of a sensor event: the same event replayed after a restart has the same key."""
    return f"sensor:{rule}:{kind}:{utc_iso(at)}"


def add_sensor_drafts(store: Store, events: Sequence[SensorDraft], *, now: datetime | None = None) -> list[str]:
    """Store the drafts of sensor events; returns the keys that were new (an event seen before is ignored)."""
    ensure_schema(store)
    now = now or now_utc()
    new = []
    with store.transaction() as conn:
        for e in events:
            key = sensor_key(e.rule, e.kind, e.at)
            if _insert_draft(conn, key=key, origin="sensor", alert_id=None, rule=e.rule, sensor=e.sensor,
                             kind=e.kind, at=e.at, channels=e.channels, audiences=e.audiences, why=e.why,
                             draft=e.draft, now=now):
                new.append(key)
    return new


def _insert_draft(conn: Any, *, key: str, origin: str, alert_id: int | None, rule: str, sensor: str | None,
                  kind: str, at: datetime, channels: Sequence[str], audiences: Sequence[str], why: str, draft: Draft,
                  now: datetime) -> bool:
    cur = conn.execute(
        "INSERT OR IGNORE INTO drafts (key, origin, alert_id, rule, sensor, kind, template, at, channels, audiences,"
        " why, draft, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (key, origin, alert_id, rule, sensor, kind, draft.template, utc_iso(at), _dumps(list(channels)),
         _dumps(list(audiences)), why, _dumps(draft_dict(draft)), utc_iso(now)))
    return cur.rowcount > 0


def draft_dict(draft: Draft) -> dict[str, Any]:
    """A draft as JSON: what the console shows and turns into a warning on approval."""
    return {"template": draft.template, "kind": draft.kind, "rule": draft.rule, "event": draft.event,
            "categories": [c.value for c in draft.categories], "severity": draft.severity.value,
            "urgency": draft.urgency.value, "certainty": draft.certainty.value,
            "response_types": [r.value for r in draft.response_types], "event_code": draft.event_code,
            "instruction_codes": list(draft.instruction_codes),
            "texts": {lang: {"headline": t.headline, "description": t.description, "instruction": t.instruction}
                      for lang, t in draft.texts.items()},
            "web": draft.web, "contact": draft.contact,
            "values": {k: (v if isinstance(v, (int, float, str)) or v is None else str(v))
                       for k, v in draft.values.items()}}


_DECISION_COLS = ("alert_id", "thread_id", "decision", "rules", "channels", "audiences", "push", "drafts",
                  "severity", "regions", "inside_district", "outside_share", "changes", "why", "rules_loaded_at",
                  "decided_at")
_JSON_COLS = {"rules", "channels", "audiences", "drafts", "regions", "changes"}


def _decision_row(row: Sequence[Any]) -> dict[str, Any]:
    d = dict(zip(_DECISION_COLS, row, strict=True))
    for col in _JSON_COLS:
        d[col] = json.loads(d[col])
    d["push"] = bool(d["push"])
    if d["inside_district"] is not None:
        d["inside_district"] = bool(d["inside_district"])
    return d


def decision_of(store: Store, alert_id: int) -> dict[str, Any] | None:
    ensure_schema(store)
    row = store.conn.execute(f"SELECT {', '.join(_DECISION_COLS)} FROM decisions WHERE alert_id=?",
                             (alert_id,)).fetchone()
    return _decision_row(row) if row else None


def current_decisions(store: Store, thread_ids: Iterable[int]) -> dict[int, dict[str, Any] | None]:
    """The decision on each thread's current version (None while it is not decided yet)."""
    ensure_schema(store)
    ids = list(thread_ids)
    out: dict[int, dict[str, Any] | None] = dict.fromkeys(ids)
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        rows = store.conn.execute(
            f"SELECT t.id, {', '.join('d.' + c for c in _DECISION_COLS)} FROM threads t"
            " JOIN decisions d ON d.alert_id = t.current_alert_id"
            f" WHERE t.id IN ({','.join('?' * len(part))})", part).fetchall()
        for row in rows:
            out[row[0]] = _decision_row(row[1:])
    return out


def decisions(store: Store, *, decision: str | None = None, live_only: bool = True,
              limit: int = 200) -> list[dict[str, Any]]:
    """Decisions on current versions of threads (newest first), e.g. ``decision="unrouted"`` for the inbox."""
    ensure_schema(store)
    where, args = ["d.alert_id = t.current_alert_id"], []
    if decision is not None:
        where.append("d.decision = ?")
        args.append(decision)
    if live_only:
        where.append("t.state IN ('active', 'updated')")
    rows = store.conn.execute(
        f"SELECT {', '.join('d.' + c for c in _DECISION_COLS)}, a.headline, a.sender, a.identifier, t.state"
        " FROM decisions d JOIN threads t ON t.id = d.thread_id JOIN alerts a ON a.id = d.alert_id"
        f" WHERE {' AND '.join(where)} ORDER BY d.alert_id DESC LIMIT ?", (*args, limit)).fetchall()
    out = []
    for row in rows:
        d = _decision_row(row[:len(_DECISION_COLS)])
        d.update(zip(("headline", "sender", "identifier", "state"), row[len(_DECISION_COLS):], strict=True))
        out.append(d)
    return out


def decision_counts(store: Store) -> dict[str, int]:
    """Current versions of live threads per decision (for /metrics and the console)."""
    ensure_schema(store)
    rows = store.conn.execute(
        "SELECT d.decision, count(*) FROM decisions d JOIN threads t ON t.current_alert_id = d.alert_id"
        " WHERE t.state IN ('active', 'updated') GROUP BY d.decision").fetchall()
    return {k: v for k, v in rows}


_DRAFT_COLS = ("id", "key", "origin", "alert_id", "rule", "sensor", "kind", "template", "at", "state", "channels",
               "audiences", "why", "draft", "created_at")


def drafts(store: Store, *, state: str | None = "pending", limit: int = 200) -> list[dict[str, Any]]:
    ensure_schema(store)
    where, args = ("WHERE state = ?", (state,)) if state else ("", ())
    rows = store.conn.execute(f"SELECT {', '.join(_DRAFT_COLS)} FROM drafts {where} ORDER BY id DESC LIMIT ?",
                              (*args, limit)).fetchall()
    out = []
    for row in rows:
        d = dict(zip(_DRAFT_COLS, row, strict=True))
        for col in ("channels", "audiences", "draft"):
            d[col] = json.loads(d[col])
        out.append(d)
    return out


def draft(store: Store, key: str) -> dict[str, Any] | None:
    """One draft by its key (any state)."""
    ensure_schema(store)
    row = store.conn.execute(f"SELECT {', '.join(_DRAFT_COLS)} FROM drafts WHERE key = ?", (key,)).fetchone()
    if row is None:
        return None
    d = dict(zip(_DRAFT_COLS, row, strict=True))
    for col in ("channels", "audiences", "draft"):
        d[col] = json.loads(d[col])
    return d


def take_draft(store: Store, key: str) -> bool:
    """Mark a pending draft as taken over by an operator (it leaves the inbox); False if it was not pending."""
    ensure_schema(store)
    with store.transaction() as conn:
        return conn.execute("UPDATE drafts SET state = 'taken' WHERE key = ? AND state = 'pending'",
                            (key,)).rowcount == 1

