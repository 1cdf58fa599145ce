"""What the rules decided, and the drafts waiting for a person (tables ``decisions`` and ``drafts``).

Every stored alert version gets one row in ``decisions`` per district that decides it (issue 19: every district's
rules decide each external alert for its own area; a console warning only its own district): publish, suppress,
draft or **unrouted** (matched no rule: stored and shown, never sent), with the rules, channels, push flag, regions
and the explanation ``warnhub rules replay`` would print. An alert is stored first and decided after: the router
finds versions lacking a district's decision with :func:`undecided`, so a crash between the two only delays it. A
version whose rules evaluation or publication raised is marked failed on its row (stage, reason, attempts, next
try: :func:`record_failure`, backoff :func:`retry_delay`); the others go on, and it is tried again while its warning
is valid (:func:`rules_retry_due`, :func:`failures` for the console and /healthz).

``drafts`` holds what the rules prepared for approval (a template rendered for an alert, or for a sensor condition
that fired or cleared), keyed so deciding twice or replaying readings never drafts the same thing twice. Functions
take the :class:`~hub.store.db.Store` and run on its writer thread (``AsyncStore.run``); tables: hub/store/schema.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hub.cap.model import Alert, Severity, from_json
from hub.decide.canary import ORIGIN as CANARY_ORIGIN
from hub.decide.drafting import SensorDraft as SensorDraft  # re-exported: callers name them decisions.*
from hub.decide.drafting import add_sensor_drafts as add_sensor_drafts
from hub.decide.drafting import draft_dict as draft_dict
from hub.decide.drafting import insert_draft
from hub.decide.drafting import sensor_key as sensor_key
from hub.decide.rules.engine import Decision
from hub.decide.rules.templates import Draft
from hub.store.clock import now_utc, utc_iso
from hub.store.db import Store

log = logging.getLogger("warnhub.rules")

BACKLOG_STATES = ("active", "updated", "cancelled")
"""Threads whose undecided versions are decided whenever they were received."""
RECENT = timedelta(days=1)
CLAIM_MS = 60_000
"""How long a node's claim on the versions it is deciding holds (``decide_claims``): many nodes decide each version
once; a node that dies while deciding leaves its versions to the others after this."""
_NOT_CLAIMED = (" AND NOT EXISTS (SELECT 1 FROM decide_claims c WHERE c.alert_id = a.id AND c.until_ms > ?"
                " AND c.node <> ?)")
_CLAIM = ("INSERT INTO decide_claims (alert_id, node, until_ms) SELECT CAST(value AS BIGINT), ?, ? FROM json_each(?)"
          " WHERE true ON CONFLICT (alert_id) DO UPDATE SET node=excluded.node, until_ms=excluded.until_ms")


def _claim(conn: Any, ids: Sequence[int], node: str, now: datetime) -> None:
    """Claim versions for this node (inside the caller's transaction, which holds the store writer's lock and has
    passed over versions another node's live claim holds, so every claim here is this node's to take)."""
    if ids:
        conn.execute(_CLAIM, (node, _ms(now) + CLAIM_MS, json.dumps(list(ids))))
        # a claim whose decision lost a race (stored by another node first) is not deleted with it: gone after a day
        conn.execute("DELETE FROM decide_claims WHERE until_ms<?", (_ms(now - RECENT),))


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


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
    districts: tuple[str, ...] = ("",)
    """The districts (Kreis keys) whose decision on it is missing: each decides it with its own rules."""


def _missing(districts: Sequence[str]) -> tuple[str, list[str]]:
    """SQL: the version ``a`` lacks the decision of a district that decides it (every district an external alert,
    the first district the hub's canary, none a console warning: the console records its own district's), one
    look-up of the decisions' key (alert, district) each; and its parameters."""
    lacks = "NOT EXISTS (SELECT 1 FROM decisions d WHERE d.alert_id = a.id AND d.district = ?)"
    first, others = districts[0], districts[1:]
    rest = " OR ".join([lacks] * len(others))
    sql = (f"a.origin <> 'console' AND ({lacks}"
           + (f" OR (a.origin <> '{CANARY_ORIGIN}' AND ({rest}))" if others else "") + ")")
    return sql, [first, *others]


def _lacking(store: Store, alert_id: int, origin: str, districts: Sequence[str]) -> tuple[str, ...]:
    """The districts of ``districts`` that still have to decide the version (see :func:`_missing`)."""
    deciders = districts[:1] if origin == CANARY_ORIGIN else districts
    have = {r[0] for r in store.conn.execute("SELECT district FROM decisions WHERE alert_id=?", (alert_id,))}
    return tuple(d for d in deciders if d not in have)


def undecided(store: Store, *, limit: int = 50, after: int = 0, now: datetime | None = None,
              node: str = "", districts: Sequence[str] = ("",)) -> list[Pending]:
    """Stored versions lacking the decision of one of ``districts`` (Kreis keys, the first first; see
    :func:`_missing`), oldest first (ids above ``after``): those of live threads, and any received in the last
    :data:`RECENT` (an alert that arrives already expired is decided too, for the record; years of history in a
    store that predates the rules are not). A district added later, or a crash between two districts' decisions,
    leaves a version undecided for the missing ones only. They are claimed for ``node`` (this node): on many nodes
    each version is evaluated by the one that claimed it, the others pass over it while the claim holds."""
    marks = ",".join("?" * len(BACKLOG_STATES))
    now = now or now_utc()
    recent = utc_iso(now - RECENT)
    missing, missing_args = _missing(districts)
    out: list[Pending] = []
    while not out:  # a batch of unreadable versions only (now recorded): read on, so none holds up the others
        with store.transaction() as conn:
            rows = conn.execute(
                "SELECT a.id, a.thread_id, a.origin, a.json, a.sent_utc FROM alerts a JOIN threads t"
                f" ON t.id = a.thread_id WHERE a.id > ? AND (t.state IN ({marks}) OR a.received_at >= ?)"
                f" AND {missing}" + _NOT_CLAIMED + " ORDER BY a.id LIMIT ?",
                (after, *BACKLOG_STATES, recent, *missing_args, _ms(now), node, limit)).fetchall()
            _claim(conn, [r[0] for r in rows], node, now)
        if not rows:
            break
        for alert_id, thread_id, origin, doc, sent_utc in rows:
            lacking = _lacking(store, alert_id, origin, districts)
            try:
                alert = from_json(doc)
                previous = _previous(store, alert_id, thread_id, sent_utc, alert)
            except Exception as err:  # noqa: BLE001 - one unreadable version must not stop deciding the others
                log.exception("alert %s: stored version cannot be read for the rules; stored as unrouted", alert_id)
                record_unroutable(store, alert_id, thread_id,
                                  f"cannot read the stored alert: {type(err).__name__}: {err}", now,
                                  districts=lacking)
                continue
            out.append(Pending(alert_id, thread_id, origin, alert, previous, lacking))
    return out


def record_unroutable(store: Store, alert_id: int, thread_id: int, reason: str, now: datetime, *,
                      districts: Sequence[str] = ("",)) -> None:
    """Record a version the rules cannot be asked about (or whose decision cannot be stored) as unrouted and failed
    for each of ``districts``: shown, and retried with backoff (after an upgrade or a fix it is decided)."""
    pending = Pending(alert_id, thread_id, "", None, None)  # type: ignore[arg-type] # record reads the ids only
    for district in districts:
        record(store, pending, Decision("unrouted", (), why=f"{reason} / Meldung nicht lesbar"), rules_loaded_at=None,
               now=now, failure=reason, district=district)


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
           drafts: Iterable[tuple[str, Draft]] = (), now: datetime | None = None, failure: str | None = None,
           district: str = "", keyed: bool = False, release: bool = True) -> bool:
    """Store the decision of ``district`` (its Kreis key) on a version, and the drafts it asks for, in one
    transaction; False if that district decided the version already (two deciders raced: the first one stands).
    ``failure``: the rules raised on this version (the decision is then ``unrouted``); it is marked failed with the
    reason and tried again after :func:`retry_delay`. A version whose earlier evaluation failed is decided anew (its
    row replaced). ``keyed``: the hub has several districts, so the drafts' keys name the district (each district
    drafts from one alert with its own templates). ``release``: the deciding node's claim on the version ends (False
    while other districts are still to decide it)."""
    now = now or now_utc()
    d = decision.as_dict()
    values = (decision.decision, _dumps(d["rules"]), _dumps(d["channels"]), _dumps(d["audiences"]),
              int(decision.push), _dumps(d["drafts"]), d["severity"], _dumps(d["regions"]),
              None if decision.inside_district is None else int(decision.inside_district), d["outside_share"],
              _dumps(d["changes"]), decision.why, utc_iso(rules_loaded_at) if rules_loaded_at else None, utc_iso(now))
    with store.transaction() as conn:
        prior = conn.execute("SELECT attempts FROM decisions WHERE alert_id=? AND district=? AND failed_stage='rules'",
                             (pending.alert_id, district)).fetchone()
        if prior is None:
            cur = conn.execute(
                "INSERT OR IGNORE INTO decisions (alert_id, thread_id, decision, rules, channels, audiences, push,"
                " drafts, severity, regions, inside_district, outside_share, changes, why, rules_loaded_at,"
                " decided_at, district) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (pending.alert_id, pending.thread_id, *values, district))
            if cur.rowcount == 0:
                return False
        else:
            conn.execute(f"UPDATE decisions SET {', '.join(c + '=?' for c in _DECISION_COLS[2:16])}"
                         " WHERE alert_id=? AND district=?", (*values, pending.alert_id, district))
        if failure is not None:
            _fail_in(conn, pending.alert_id, "rules", failure, now, district=district)
        elif prior is not None:
            clear_failure_in(conn, pending.alert_id, district=district)
        if release:
            conn.execute("DELETE FROM decide_claims WHERE alert_id=?", (pending.alert_id,))
        for rule, draft in drafts:
            key = f"alert:{pending.alert_id}:{district}:{draft.template}" if keyed else \
                f"alert:{pending.alert_id}:{draft.template}"
            insert_draft(conn, key=key, origin="alert", alert_id=pending.alert_id, rule=rule, sensor=None,
                          kind="alert", at=now, channels=decision.channels, audiences=decision.audiences,
                          why=decision.why, draft=draft, now=now, district=district)
    return True


# -- failures: recorded on the decision, retried with backoff ------------------------------------------------------

RETRY_BASE = timedelta(seconds=30)
RETRY_MAX = timedelta(hours=1)
LIVE = ("(a.expires > :now OR (a.expires IS NULL AND EXISTS (SELECT 1 FROM threads t WHERE t.id = a.thread_id"
        " AND t.state IN ('active', 'updated', 'cancelled'))))")
"""SQL: the alert ``a`` has not expired at ``:now`` (one without an end: while its thread is in force)."""


def still_due(store: Store) -> str:
    """SQL: the version ``a`` still matters at ``:now`` (``:now_ms``) for the decision ``d``: it has not expired
    (:data:`LIVE`), or it is a Cancel of a thread with a publication of ``d``'s district in force (the hub withdraws
    its own warning whatever the Cancel's own expiry says)."""
    return (f"({LIVE} OR (a.msg_type = 'Cancel' AND EXISTS (SELECT 1 FROM publications q"
            " WHERE q.source_thread = a.thread_id AND q.district = d.district"
            " AND (q.expires_ms IS NULL OR q.expires_ms > :now_ms))))")


def due_params(now: datetime) -> dict[str, Any]:
    """The parameters :func:`still_due` names."""
    return {"now": utc_iso(now), "now_ms": int(now.timestamp() * 1000)}


def retry_delay(attempts: int) -> timedelta:
    """Wait after the ``attempts``-th failure: 30 s, doubling each time, at most an hour."""
    return min(RETRY_MAX, RETRY_BASE * 2 ** min(max(attempts, 1) - 1, 20))


def _fail_in(conn: Any, alert_id: int, stage: str, reason: str, now: datetime, *,
             district: str | None = None) -> tuple[int, datetime]:
    """Mark the decision of ``district`` on the version failed (None: every district's)."""
    which, args = ("alert_id=?", (alert_id,)) if district is None else ("alert_id=? AND district=?",
                                                                         (alert_id, district))
    row = conn.execute(f"SELECT max(attempts) FROM decisions WHERE {which}", args).fetchone()
    attempts = (row[0] if row and row[0] is not None else 0) + 1
    retry_at = now + retry_delay(attempts)
    conn.execute(f"UPDATE decisions SET failed_stage=?, failure=?, attempts=?, retry_at=? WHERE {which}",
                 (stage, reason[:1000], attempts, utc_iso(retry_at), *args))
    return attempts, retry_at


def record_failure(store: Store, alert_id: int, stage: str, reason: str, *, now: datetime | None = None,
                   district: str | None = None) -> tuple[int, datetime]:
    """Mark the decision of ``district`` (None: of every district) on a version failed at ``stage`` (``publish``)
    with the reason; returns (attempts so far, when it is tried again)."""
    with store.transaction() as conn:
        return _fail_in(conn, alert_id, stage, reason, now or now_utc(), district=district)


def clear_failure_in(conn: Any, alert_id: int, *, district: str | None = None) -> None:
    """The version went through after all for ``district`` (None: every district; inside the caller's
    transaction); its attempts stay for the record."""
    which, args = ("", ()) if district is None else (" AND district=?", (district,))
    conn.execute("UPDATE decisions SET failed_stage=NULL, failure='', retry_at=NULL WHERE alert_id=?"
                 f" AND failed_stage IS NOT NULL{which}", (alert_id, *args))


def rules_retry_due(store: Store, *, now: datetime | None = None, limit: int = 50, node: str = "") -> list[Pending]:
    """Versions whose rules evaluation failed for a district, due for another try and not expired, oldest first
    (one :class:`Pending` per version, naming those districts); claimed for ``node`` as :func:`undecided` claims."""
    at = now or now_utc()
    with store.transaction() as conn:
        rows = conn.execute(
            "SELECT a.id, a.thread_id, a.origin, a.json, a.sent_utc, d.district FROM decisions d"
            f" JOIN alerts a ON a.id = d.alert_id WHERE d.failed_stage = 'rules' AND d.retry_at <= :now AND {LIVE}"
            " AND NOT EXISTS (SELECT 1 FROM decide_claims c WHERE c.alert_id = a.id AND c.until_ms > :now_ms"
            " AND c.node <> :node) ORDER BY a.id, d.district LIMIT :limit",
            {"now": utc_iso(at), "now_ms": _ms(at), "node": node, "limit": limit}).fetchall()
        _claim(conn, list(dict.fromkeys(r[0] for r in rows)), node, at)
    due: dict[int, tuple[Any, ...]] = {}
    lacking: dict[int, list[str]] = {}
    for row in rows:
        due.setdefault(row[0], row[:5])
        lacking.setdefault(row[0], []).append(row[5])
    out = []
    for alert_id, thread_id, origin, doc, sent in due.values():
        try:
            alert = from_json(doc)
            out.append(Pending(alert_id, thread_id, origin, alert, _previous(store, alert_id, thread_id, sent, alert),
                               tuple(lacking[alert_id])))
        except Exception as err:  # noqa: BLE001 - still unreadable: the next try is later, the others go on
            with store.transaction() as conn:
                _fail_in(conn, alert_id, "rules", f"cannot read the stored alert: {type(err).__name__}: {err}",
                         now or now_utc())
    return out


def failures(store: Store, *, now: datetime | None = None, limit: int = 50) -> list[ListedDecision]:
    """Versions failed at a stage and still to be done (not expired, not published since, not passed by a newer
    published version), newest first: the console inbox and /healthz show them."""
    rows = store.conn.execute(
        f"SELECT {', '.join('d.' + c for c in _DECISION_COLS)}, {_LISTED}"
        " FROM decisions d JOIN alerts a ON a.id = d.alert_id JOIN threads t ON t.id = d.thread_id"
        f" WHERE d.failed_stage IS NOT NULL AND {still_due(store)} AND {_not_passed(store)}"
        " ORDER BY d.alert_id DESC LIMIT :limit", {**due_params(now or now_utc()), "limit": limit}).fetchall()
    return [_listed(row) for row in rows]


def failure_counts(store: Store, *, now: datetime | None = None,
                   district: Sequence[str] | None = None) -> dict[str, int]:
    """Failed versions still to be done per stage (``rules``, ``publish``), as :func:`failures` counts them;
    ``district``: only those districts' decisions (a district's console inbox)."""
    own = "" if district is None else " AND d.district IN (SELECT value FROM json_each(:districts))"
    rows = store.conn.execute(
        "SELECT d.failed_stage, count(*) FROM decisions d JOIN alerts a ON a.id = d.alert_id"
        f" WHERE d.failed_stage IS NOT NULL AND {still_due(store)} AND {_not_passed(store)}{own} GROUP BY 1",
        {**due_params(now or now_utc()), "districts": json.dumps(list(district or ()))}).fetchall()
    return {stage: n for stage, n in rows}


def _not_passed(store: Store) -> str:
    """SQL: the decision ``d`` is not published, nor passed by a newer version of its thread that was published
    (by its district)."""
    return ("NOT EXISTS (SELECT 1 FROM publications p WHERE p.source_thread = d.thread_id"
            " AND p.district = d.district AND p.source_alert >= d.alert_id)")


_DECISION_COLS = ("alert_id", "thread_id", "decision", "rules", "channels", "audiences", "push", "drafts",
                  "severity", "regions", "inside_district", "outside_share", "changes", "why", "rules_loaded_at",
                  "decided_at", "failed_stage", "failure", "attempts", "retry_at", "district")


@dataclass(frozen=True, slots=True)
class StoredDecision:
    """One row of ``decisions`` as it is read back: the :class:`~hub.decide.rules.engine.Decision` that was
    recorded, with its ids, times and failure state. :meth:`as_dict` is its JSON form (CLI, console inbox)."""

    alert_id: int
    thread_id: int
    decision: str
    """``publish``, ``suppress``, ``draft`` or ``unrouted``."""
    rules: tuple[str, ...]
    channels: tuple[str, ...]
    audiences: tuple[str, ...]
    push: bool
    drafts: tuple[str, ...]
    severity: Severity
    regions: tuple[str, ...]
    inside_district: bool | None
    outside_share: float | None
    changes: tuple[str, ...]
    why: str
    rules_loaded_at: str | None
    decided_at: str
    failed_stage: str | None
    """``rules`` or ``publish`` while the version is failed there (retried with backoff), else None."""
    failure: str
    attempts: int
    retry_at: str | None
    district: str = ""
    """The Kreis key of the district whose rules (or console) made the decision."""

    @property
    def failed(self) -> bool:
        return self.failed_stage is not None

    @classmethod
    def of_row(cls, row: Sequence[Any]) -> StoredDecision:
        """From the columns :data:`_DECISION_COLS` in their order."""
        (alert_id, thread_id, decision, rules, channels, audiences, push, drafts, severity, regions, inside,
         outside_share, changes, why, rules_loaded_at, decided_at, failed_stage, failure, attempts, retry_at,
         district) = row
        return cls(alert_id, thread_id, decision, _strs(rules), _strs(channels), _strs(audiences), bool(push),
                   _strs(drafts), Severity(severity), _strs(regions), None if inside is None else bool(inside),
                   outside_share, _strs(changes), why, rules_loaded_at, decided_at, failed_stage, failure, attempts,
                   retry_at, district)

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON (lists for the JSON columns, ``failed`` last), as ``warnhub alerts --json`` prints it."""
        return {"alert_id": self.alert_id, "thread_id": self.thread_id, "decision": self.decision,
                "rules": list(self.rules), "channels": list(self.channels), "audiences": list(self.audiences),
                "push": self.push, "drafts": list(self.drafts), "severity": self.severity.value,
                "regions": list(self.regions), "inside_district": self.inside_district,
                "outside_share": self.outside_share, "changes": list(self.changes), "why": self.why,
                "rules_loaded_at": self.rules_loaded_at, "decided_at": self.decided_at,
                "failed_stage": self.failed_stage, "failure": self.failure, "attempts": self.attempts,
                "retry_at": self.retry_at, "district": self.district, "failed": self.failed}


@dataclass(frozen=True, slots=True)
class ListedDecision:
    """A decision with what the inbox and /healthz show beside it: the alert's headline, sender and identifier and
    its thread's state."""

    decision: StoredDecision
    headline: str
    sender: str
    identifier: str
    state: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.decision.as_dict(), "headline": self.headline, "sender": self.sender,
                "identifier": self.identifier, "state": self.state}


def _strs(doc: str) -> tuple[str, ...]:
    return tuple(str(v) for v in json.loads(doc))


_LISTED = "a.headline, a.sender, a.identifier, t.state"


def _listed(row: Sequence[Any]) -> ListedDecision:
    n = len(_DECISION_COLS)
    return ListedDecision(StoredDecision.of_row(row[:n]), *row[n:])


def decision_of(store: Store, alert_id: int, district: str | None = None) -> StoredDecision | None:
    """The decision of ``district`` (its Kreis key) on a version; None: the lowest district's that has one."""
    which, args = ("", ()) if district is None else (" AND district=?", (district,))
    row = store.conn.execute(f"SELECT {', '.join(_DECISION_COLS)} FROM decisions WHERE alert_id=?{which}"
                             " ORDER BY district LIMIT 1", (alert_id, *args)).fetchone()
    return StoredDecision.of_row(row) if row else None


def current_decisions(store: Store, thread_ids: Iterable[int],
                      districts: Sequence[str] = ()) -> dict[int, dict[str, StoredDecision]]:
    """The decisions on each thread's current version by district (in the order of ``districts``, then by key)."""
    ids, rank = list(thread_ids), {d: i for i, d in enumerate(districts)}
    out: dict[int, dict[str, StoredDecision]] = {i: {} for i in ids}
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        rows = store.conn.execute(
            f"SELECT t.id, {', '.join('d.' + c for c in _DECISION_COLS)} FROM threads t"
            " JOIN decisions d ON d.alert_id = t.current_alert_id"
            f" WHERE t.id IN ({','.join('?' * len(part))})", part).fetchall()
        for row in sorted(rows, key=lambda r: (rank.get(r[-1], len(rank)), r[-1])):
            found = StoredDecision.of_row(row[1:])
            out[row[0]][found.district] = found
    return out


def _in_district(col: str, district: str | Sequence[str]) -> tuple[str, str]:
    """A filter on a ``district`` column (SQL, parameter): one Kreis key, or any of several."""
    keys = [district] if isinstance(district, str) else list(district)
    return f"{col} IN (SELECT value FROM json_each(?))", json.dumps(keys)


def decisions(store: Store, *, decision: str | None = None, live_only: bool = True, limit: int = 200,
              district: str | Sequence[str] | None = None) -> list[ListedDecision]:
    """Decisions on current versions of threads (newest first), e.g. ``decision="unrouted"`` for the inbox;
    ``district``: only that district's (or those districts')."""
    given = [("d.decision = ?", decision)] if decision is not None else []
    given += [_in_district("d.district", district)] if district is not None else []
    where = ["d.alert_id = t.current_alert_id", *(sql for sql, _ in given)]
    args = [value for _, value in given]
    if live_only:
        where.append("t.state IN ('active', 'updated')")
    rows = store.conn.execute(
        f"SELECT {', '.join('d.' + c for c in _DECISION_COLS)}, {_LISTED}"
        " FROM decisions d JOIN threads t ON t.id = d.thread_id JOIN alerts a ON a.id = d.alert_id"
        f" WHERE {' AND '.join(where)} ORDER BY d.alert_id DESC LIMIT ?", (*args, limit)).fetchall()
    return [_listed(row) for row in rows]


def decision_counts(store: Store) -> dict[str, int]:
    """Current versions of live threads per decision (for /metrics and the console)."""
    rows = store.conn.execute(
        "SELECT d.decision, count(*) FROM decisions d JOIN threads t ON t.current_alert_id = d.alert_id"
        " WHERE t.state IN ('active', 'updated') GROUP BY d.decision").fetchall()
    return {k: v for k, v in rows}


_DRAFT_COLS = ("id", "key", "origin", "alert_id", "rule", "sensor", "kind", "template", "at", "state", "channels",
               "audiences", "why", "draft", "created_at", "district")


def _draft_of(row: Sequence[Any]) -> dict[str, Any]:
    d = dict(zip(_DRAFT_COLS, row, strict=True))
    return {**d, **{col: json.loads(d[col]) for col in ("channels", "audiences", "draft")}}


def drafts(store: Store, *, state: str | None = "pending", limit: int = 200,
           district: str | Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Rules' and sensors' drafts, newest first (``district``: only that district's, or those districts')."""
    given = [("state = ?", state)] if state else []
    given += [_in_district("district", district)] if district is not None else []
    clause = f"WHERE {' AND '.join(sql for sql, _ in given)}" if given else ""
    return [_draft_of(row) for row in store.conn.execute(f"SELECT {', '.join(_DRAFT_COLS)} FROM drafts {clause}"
                                                         " ORDER BY id DESC LIMIT ?", (*(v for _, v in given), limit))]


def draft(store: Store, key: str) -> dict[str, Any] | None:
    """One draft by its key (any state)."""
    row = store.conn.execute(f"SELECT {', '.join(_DRAFT_COLS)} FROM drafts WHERE key = ?", (key,)).fetchone()
    return None if row is None else _draft_of(row)


def take_draft(store: Store, key: str) -> bool:
    """Mark a pending draft as taken over by an operator (it leaves the inbox); False if it was not pending."""
    with store.transaction() as conn:
        return conn.execute("UPDATE drafts SET state = 'taken' WHERE key = ? AND state = 'pending'",
                            (key,)).rowcount == 1

