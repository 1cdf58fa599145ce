"""What the rules decided, and the drafts waiting for a person (tables ``decisions`` and ``drafts``).

Every stored alert version gets one row in ``decisions``: publish, suppress, draft or **unrouted** (matched no
rule: stored and shown, never sent anywhere), with the rules, channels, push flag, regions and the explanation
that ``warnhub rules replay`` would print. An alert is stored first and decided after (store before acting): the
router finds versions without a decision with :func:`undecided`, so a crash between the two only delays the
decision until the next start. A version whose rules evaluation or publication raised is marked failed on its row
(stage, reason, attempts, next try: :func:`record_failure`, backoff :func:`retry_delay`); the others go on, and it
is tried again while its warning is valid (:func:`rules_retry_due`, :func:`failures` for the console and /healthz).

``drafts`` holds what the rules prepared for approval: a template rendered for an incoming alert
(``then.draft``), or for a sensor condition that fired or cleared. Each draft has a key (alert and template, or
rule, kind and time of the sensor event) so deciding twice, or replaying readings after a restart, never drafts
the same thing twice. Approving and sending drafts is the control room's work; here they only wait.

Functions take the :class:`~hub.store.db.Store` and run on its writer thread (``AsyncStore.run``). The tables are
in hub/store/schema.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hub.cap.model import Alert, Severity, from_json
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


def undecided(store: Store, *, limit: int = 50, after: int = 0, now: datetime | None = None,
              node: str = "") -> list[Pending]:
    """Stored versions without a decision, oldest first (ids above ``after``): those of live threads, and any
    received in the last :data:`RECENT` (an alert that arrives already expired is decided too, for the record;
    years of history in a store that predates the rules are not). They are claimed for ``node`` (this node): on
    many nodes each version is evaluated by the one that claimed it, the others pass over it while the claim holds."""
    marks = ",".join("?" * len(BACKLOG_STATES))
    now = now or now_utc()
    recent = utc_iso(now - RECENT)
    out: list[Pending] = []
    while not out:  # a batch of unreadable versions only (now recorded): read on, so none holds up the others
        with store.transaction() as conn:
            rows = conn.execute(
                "SELECT a.id, a.thread_id, a.origin, a.json, a.sent_utc FROM alerts a JOIN threads t"
                f" ON t.id = a.thread_id WHERE a.id > ? AND (t.state IN ({marks}) OR a.received_at >= ?)"
                " AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.alert_id = a.id)" + _NOT_CLAIMED
                + " ORDER BY a.id LIMIT ?", (after, *BACKLOG_STATES, recent, _ms(now), node, limit)).fetchall()
            _claim(conn, [r[0] for r in rows], node, now)
        if not rows:
            break
        for alert_id, thread_id, origin, doc, sent_utc in rows:
            try:
                alert = from_json(doc)
                previous = _previous(store, alert_id, thread_id, sent_utc, alert)
            except Exception as err:  # noqa: BLE001 - one unreadable version must not stop deciding the others
                log.exception("alert %s: stored version cannot be read for the rules; stored as unrouted", alert_id)
                record_unroutable(store, alert_id, thread_id,
                                  f"cannot read the stored alert: {type(err).__name__}: {err}", now)
                continue
            out.append(Pending(alert_id, thread_id, origin, alert, previous))
    return out


def record_unroutable(store: Store, alert_id: int, thread_id: int, reason: str, now: datetime) -> None:
    """Record a version the rules cannot be asked about (or whose decision cannot be stored) as unrouted and failed:
    shown, and retried with backoff (after an upgrade or a fix it is decided)."""
    pending = Pending(alert_id, thread_id, "", None, None)  # type: ignore[arg-type] # record reads the ids only
    record(store, pending, Decision("unrouted", (), why=f"{reason} / Meldung nicht lesbar"), rules_loaded_at=None,
           now=now, failure=reason)


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
           district: str = "") -> bool:
    """Store a decision (and the drafts it asks for) in one transaction; False if the version was decided
    already (two deciders raced: the first one stands). ``district``: the Kreis key of the district whose
    decision it is (the console's: the warning's). ``failure``: the rules raised on this version (the decision
    is then ``unrouted``); it is marked failed with the reason and tried again after :func:`retry_delay`. A version
    whose earlier evaluation failed is decided anew (its row replaced)."""
    now = now or now_utc()
    d = decision.as_dict()
    values = (decision.decision, _dumps(d["rules"]), _dumps(d["channels"]), _dumps(d["audiences"]),
              int(decision.push), _dumps(d["drafts"]), d["severity"], _dumps(d["regions"]),
              None if decision.inside_district is None else int(decision.inside_district), d["outside_share"],
              _dumps(d["changes"]), decision.why, utc_iso(rules_loaded_at) if rules_loaded_at else None, utc_iso(now))
    with store.transaction() as conn:
        prior = conn.execute("SELECT attempts FROM decisions WHERE alert_id=? AND failed_stage='rules'",
                             (pending.alert_id,)).fetchone()
        if prior is None:
            cur = conn.execute(
                "INSERT OR IGNORE INTO decisions (alert_id, thread_id, decision, rules, channels, audiences, push,"
                " drafts, severity, regions, inside_district, outside_share, changes, why, rules_loaded_at,"
                " decided_at, district) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (pending.alert_id, pending.thread_id, *values, district))
            if cur.rowcount == 0:
                return False
        else:
            conn.execute(f"UPDATE decisions SET {', '.join(c + '=?' for c in _DECISION_COLS[2:16])} WHERE alert_id=?",
                         (*values, pending.alert_id))
        if failure is not None:
            _fail_in(conn, pending.alert_id, "rules", failure, now)
        elif prior is not None:
            clear_failure_in(conn, pending.alert_id)
        conn.execute("DELETE FROM decide_claims WHERE alert_id=?", (pending.alert_id,))
        for rule, draft in drafts:
            _insert_draft(conn, key=f"alert:{pending.alert_id}:{draft.template}", origin="alert",
                          alert_id=pending.alert_id, rule=rule, sensor=None, kind="alert", at=now,
                          channels=decision.channels, audiences=decision.audiences, why=decision.why, draft=draft,
                          now=now)
    return True


# -- failures: recorded on the decision, retried with backoff ------------------------------------------------------

RETRY_BASE = timedelta(seconds=30)
RETRY_MAX = timedelta(hours=1)
LIVE = ("(a.expires > :now OR (a.expires IS NULL AND EXISTS (SELECT 1 FROM threads t WHERE t.id = a.thread_id"
        " AND t.state IN ('active', 'updated', 'cancelled'))))")
"""SQL: the alert ``a`` has not expired at ``:now`` (one without an end: while its thread is in force)."""


def still_due(store: Store) -> str:
    """SQL: the version ``a`` still matters at ``:now`` (``:now_ms``): it has not expired (:data:`LIVE`), or it is a
    Cancel of a thread with a publication in force (the hub withdraws its own warning whatever the Cancel's own
    expiry says)."""
    return (f"({LIVE} OR (a.msg_type = 'Cancel' AND EXISTS (SELECT 1 FROM publications q"
            " WHERE q.source_thread = a.thread_id AND (q.expires_ms IS NULL OR q.expires_ms > :now_ms))))")


def due_params(now: datetime) -> dict[str, Any]:
    """The parameters :func:`still_due` names."""
    return {"now": utc_iso(now), "now_ms": int(now.timestamp() * 1000)}


def retry_delay(attempts: int) -> timedelta:
    """Wait after the ``attempts``-th failure: 30 s, doubling each time, at most an hour."""
    return min(RETRY_MAX, RETRY_BASE * 2 ** min(max(attempts, 1) - 1, 20))


def _fail_in(conn: Any, alert_id: int, stage: str, reason: str, now: datetime) -> tuple[int, datetime]:
    row = conn.execute("SELECT attempts FROM decisions WHERE alert_id=?", (alert_id,)).fetchone()
    attempts = (row[0] if row else 0) + 1
    retry_at = now + retry_delay(attempts)
    conn.execute("UPDATE decisions SET failed_stage=?, failure=?, attempts=?, retry_at=? WHERE alert_id=?",
                 (stage, reason[:1000], attempts, utc_iso(retry_at), alert_id))
    return attempts, retry_at


def record_failure(store: Store, alert_id: int, stage: str, reason: str, *,
                   now: datetime | None = None) -> tuple[int, datetime]:
    """Mark a decided version failed at ``stage`` (``publish``) with the reason; returns (attempts so far, when it is
    tried again)."""
    with store.transaction() as conn:
        return _fail_in(conn, alert_id, stage, reason, now or now_utc())


def clear_failure_in(conn: Any, alert_id: int) -> None:
    """The version went through after all (inside the caller's transaction); its attempts stay for the record."""
    conn.execute("UPDATE decisions SET failed_stage=NULL, failure='', retry_at=NULL WHERE alert_id=?"
                 " AND failed_stage IS NOT NULL", (alert_id,))


def rules_retry_due(store: Store, *, now: datetime | None = None, limit: int = 50, node: str = "") -> list[Pending]:
    """Versions whose rules evaluation failed, due for another try and not expired, oldest first; claimed for
    ``node`` as :func:`undecided` claims."""
    at = now or now_utc()
    with store.transaction() as conn:
        rows = conn.execute(
            "SELECT a.id, a.thread_id, a.origin, a.json, a.sent_utc FROM decisions d JOIN alerts a ON a.id = d.alert_id"
            f" WHERE d.failed_stage = 'rules' AND d.retry_at <= :now AND {LIVE} AND NOT EXISTS (SELECT 1 FROM"
            " decide_claims c WHERE c.alert_id = a.id AND c.until_ms > :now_ms AND c.node <> :node)"
            " ORDER BY a.id LIMIT :limit",
            {"now": utc_iso(at), "now_ms": _ms(at), "node": node, "limit": limit}).fetchall()
        _claim(conn, [r[0] for r in rows], node, at)
    out = []
    for alert_id, thread_id, origin, doc, sent in rows:
        try:
            alert = from_json(doc)
            out.append(Pending(alert_id, thread_id, origin, alert, _previous(store, alert_id, thread_id, sent, alert)))
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


def failure_counts(store: Store, *, now: datetime | None = None) -> dict[str, int]:
    """Failed versions still to be done per stage (``rules``, ``publish``), as :func:`failures` counts them."""
    rows = store.conn.execute(
        "SELECT d.failed_stage, count(*) FROM decisions d JOIN alerts a ON a.id = d.alert_id"
        f" WHERE d.failed_stage IS NOT NULL AND {still_due(store)} AND {_not_passed(store)} GROUP BY 1",
        due_params(now or now_utc())).fetchall()
    return {stage: n for stage, n in rows}


def _not_passed(store: Store) -> str:
    """SQL: the decision ``d`` is not published, nor passed by a newer version of its thread that was published."""
    return ("NOT EXISTS (SELECT 1 FROM publications p WHERE p.source_thread = d.thread_id"
            " AND p.source_alert >= d.alert_id)")


@dataclass(frozen=True, slots=True)
class SensorDraft:
    """A sensor event as the store keeps it (see :class:`hub.decide.rules.SensorEvent`)."""

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


def decision_of(store: Store, alert_id: int) -> StoredDecision | None:
    row = store.conn.execute(f"SELECT {', '.join(_DECISION_COLS)} FROM decisions WHERE alert_id=?",
                             (alert_id,)).fetchone()
    return StoredDecision.of_row(row) if row else None


def current_decisions(store: Store, thread_ids: Iterable[int]) -> dict[int, StoredDecision | None]:
    """The decision on each thread's current version (None while it is not decided yet)."""
    ids = list(thread_ids)
    out: dict[int, StoredDecision | None] = dict.fromkeys(ids)
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        rows = store.conn.execute(
            f"SELECT t.id, {', '.join('d.' + c for c in _DECISION_COLS)} FROM threads t"
            " JOIN decisions d ON d.alert_id = t.current_alert_id"
            f" WHERE t.id IN ({','.join('?' * len(part))})", part).fetchall()
        for row in rows:
            out[row[0]] = StoredDecision.of_row(row[1:])
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

