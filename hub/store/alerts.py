"""Alerts and threads: every received version of every alert (idempotent on CAP's sender/identifier/sent), the
**threads** that link Alert -> Update -> Cancel through ``references``, rejected documents, the lists of sources that
name every current warning, and the sources' health.

Threads are found through keys ``sender + identifier`` (not ``sent``: MoWaS and NINA mangle the time inside
references, and some senders reuse an identifier for updates). A message joins the thread of any message it
references or that references it, even when they arrive out of order; two threads joined by a later message merge.
The current version of a thread is its latest Alert/Update/Cancel by ``sent`` (arrival order breaks ties).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hub.cap.model import Alert, MsgType, from_json, to_json
from hub.cap.validate import Report
from hub.errors import StoreError
from hub.store import conflicts
from hub.store.clock import now_utc, utc_iso
from hub.store.connection import Connection

log = logging.getLogger("warnhub.store")

_KEY_SEP = "\x1f"

ACTIVE_STATES = ("active", "updated")


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """Everything the store writes for one alert version, ready-made.

    Built from a validation :class:`Report` wherever validation ran (a worker process, in the daemon), so the
    one writer only writes; small and flat, so it crosses processes cheaply (the full model does not).
    """

    sender: str
    identifier: str
    sent: str
    sent_utc: str
    status: str
    msg_type: str
    scope: str
    severity: str
    headline: str
    expires: str | None
    cap_version: str | None
    verdict: str
    signature: str
    flags: str
    json: str
    keys: tuple[str, ...]
    """Thread keys: the message's own sender+identifier first, then those it references."""

    @classmethod
    def from_report(cls, report: Report) -> AlertRecord:
        alert = report.alert
        if alert is None:
            raise StoreError("an alert record needs a readable alert")
        expires = alert.expires
        return cls(
            sender=alert.sender, identifier=alert.identifier, sent=alert.sent.isoformat(),
            sent_utc=utc_iso(alert.sent), status=alert.status.value, msg_type=alert.msg_type.value,
            scope=alert.scope.value, severity=alert.severity.value, headline=alert.headline(),
            expires=utc_iso(expires) if expires else None, cap_version=report.cap_version,
            verdict=report.verdict.value, signature=report.signature.value,
            flags=json.dumps({"errors": report.errors, "warnings": report.warnings}, ensure_ascii=False),
            json=to_json(alert).decode(),
            keys=tuple(dict.fromkeys([_key(alert.sender, alert.identifier)]
                                     + [_key(*r.key()) for r in alert.references])),
        )


@dataclass(frozen=True, slots=True)
class AddResult:
    outcome: str
    """``new``, ``duplicate`` or ``conflict`` (same identity, other content: see hub.store.conflicts)."""
    alert_id: int
    thread_id: int
    state: str
    replaced: bool = False
    """For a conflict: the new copy replaced the stored version's content (its signature is better)."""


@dataclass(frozen=True, slots=True)
class ThreadView:
    id: int
    state: str
    headline: str
    severity: str
    sender: str
    current_identifier: str
    current_msg_type: str
    current_status: str
    first_sent: str
    last_sent: str
    expires: str | None
    versions: int
    updated_at: str

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


def _key(sender: str, identifier: str) -> str:
    return sender + _KEY_SEP + identifier


class Alerts(Connection):
    """The alert, thread, list and health methods of :class:`hub.store.db.Store`."""

    # -- alerts and threads --------------------------------------------------------------------------------

    def add_alert(self, report: Report, raw: bytes, *, origin: str, now: datetime | None = None,
                  durable: bool = False) -> AddResult:
        """Store one accepted or valid alert idempotently and thread it. Returns new or duplicate."""
        return self.add_record(AlertRecord.from_report(report), raw, origin=origin, now=now, durable=durable)

    def add_record(self, rec: AlertRecord, raw: bytes, *, origin: str, now: datetime | None = None,
                   durable: bool = False, relay: bool = False) -> AddResult:
        """Store a prepared :class:`AlertRecord` (see there) in one transaction (``durable``: see
        :meth:`transaction`; ``relay``: converted from another format, see hub.store.conflicts)."""
        received = utc_iso(now or now_utc())
        if relay:
            rec = dataclasses.replace(rec, flags=conflicts.mark_relay(rec.flags))
        with self.transaction(durable=durable) as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO alerts (sender, identifier, sent, sent_utc, status, msg_type, scope, severity,"
                " headline, expires, received_at, origin, cap_version, verdict, signature, flags, json, raw)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (rec.sender, rec.identifier, rec.sent, rec.sent_utc, rec.status, rec.msg_type, rec.scope,
                 rec.severity, rec.headline, rec.expires, received, origin, rec.cap_version, rec.verdict,
                 rec.signature, rec.flags, rec.json, raw),
            )
            if cur.rowcount == 0:
                row = conn.execute(
                    "SELECT a.id, a.thread_id, t.state, a.json, a.raw FROM alerts a JOIN threads t"
                    " ON t.id = a.thread_id WHERE sender=? AND identifier=? AND sent_utc=?",
                    (rec.sender, rec.identifier, rec.sent_utc),
                ).fetchone()
                if bytes(row[4] or b"") == raw or conflicts.same_content(row[3], rec.json) \
                        or conflicts.relayed(conn, row[0], rec.flags):
                    return AddResult("duplicate", row[0], row[1], row[2])
                return self._conflict(conn, rec, raw, origin, received, row[0], now or now_utc())
            alert_id = int(cur.lastrowid or 0)
            thread_id = self._thread_for(conn, rec.keys, alert_id)
            state = self._refresh_thread(conn, thread_id, now or now_utc())
        return AddResult("new", alert_id, thread_id, state)

    def _conflict(self, conn: sqlite3.Connection, rec: AlertRecord, raw: bytes, origin: str, received: str,
                  alert_id: int, now: datetime) -> AddResult:
        """Same identity, other content (see hub.store.conflicts): keep both copies, the better-signed one as the
        version."""
        cols = ("sender", "identifier", "sent", "origin", "signature", "verdict", "raw", "json", "flags")
        stored = dict(zip(cols, conn.execute(f"SELECT {', '.join(cols)} FROM alerts WHERE id=?",
                                             (alert_id,)).fetchone(), strict=True))
        incoming = {"sender": rec.sender, "identifier": rec.identifier, "sent": rec.sent, "origin": origin,
                    "signature": rec.signature, "verdict": rec.verdict, "raw": raw, "json": rec.json}
        replace = conflicts.better(rec.signature, stored["signature"])
        aside, kept = (stored, incoming) if replace else (incoming, stored)
        if replace:
            conn.execute(
                "UPDATE alerts SET sent=?, status=?, msg_type=?, scope=?, severity=?, headline=?, expires=?, origin=?,"
                " cap_version=?, verdict=?, signature=?, flags=?, json=?, raw=? WHERE id=?",
                (rec.sent, rec.status, rec.msg_type, rec.scope, rec.severity, rec.headline, rec.expires, origin,
                 rec.cap_version, rec.verdict, rec.signature,
                 conflicts.flag(rec.flags, conflicts.note(stored["origin"], rec.signature, replaced=True)),
                 rec.json, raw, alert_id))
        else:
            conn.execute("UPDATE alerts SET flags=? WHERE id=?", (conflicts.flag(
                stored["flags"], conflicts.note(origin, rec.signature, replaced=False)), alert_id))
        conflicts.record(conn, alert_id=alert_id, aside=aside, kept=kept, replaced=replace, received=received)
        thread_id = self._thread_for(conn, rec.keys, alert_id) if replace else \
            conn.execute("SELECT thread_id FROM alerts WHERE id=?", (alert_id,)).fetchone()[0]
        state = self._refresh_thread(conn, thread_id, now)
        log.warning("identity conflict: %s/%s sent %s arrived from %s with other content than the stored version "
                    "(signature %s vs %s): %s", rec.sender, rec.identifier, rec.sent, origin, rec.signature,
                    stored["signature"], "it replaces it" if replace else "the stored version stays")
        return AddResult("conflict", alert_id, thread_id, state, replaced=replace)

    def _thread_for(self, conn: sqlite3.Connection, keys: tuple[str, ...], alert_id: int) -> int:
        marks = ",".join("?" * len(keys))
        found = sorted({r[0] for r in conn.execute(
            f"SELECT thread_id FROM thread_keys WHERE key IN ({marks})", keys)})
        if not found:
            thread_id = int(conn.execute(
                "INSERT INTO threads (state, current_alert_id, first_sent, last_sent, updated_at)"
                " VALUES ('active', ?, '', '', '')", (alert_id,)).lastrowid or 0)
        else:
            thread_id, others = found[0], found[1:]
            for other in others:  # a message that links two threads makes them one incident
                conn.execute("UPDATE alerts SET thread_id=? WHERE thread_id=?", (thread_id, other))
                conn.execute("UPDATE thread_keys SET thread_id=? WHERE thread_id=?", (thread_id, other))
                conn.execute("DELETE FROM threads WHERE id=?", (other,))
        conn.executemany("INSERT OR IGNORE INTO thread_keys (key, thread_id) VALUES (?, ?)",
                         [(k, thread_id) for k in keys])
        conn.execute("UPDATE alerts SET thread_id=? WHERE id=?", (thread_id, alert_id))
        return thread_id

    def _refresh_thread(self, conn: sqlite3.Connection, thread_id: int, now: datetime) -> str:
        rows = conn.execute(
            "SELECT id, sent_utc, msg_type, expires FROM alerts WHERE thread_id=? ORDER BY sent_utc, id",
            (thread_id,)).fetchall()
        lifecycle = [r for r in rows if r[2] in (MsgType.ALERT.value, MsgType.UPDATE.value, MsgType.CANCEL.value)]
        current = (lifecycle or rows)[-1]
        state = _state(current[2], current[3], now)
        if state in ACTIVE_STATES and current[3] is None and self._too_old(current[1], now) \
                and not self._listed(conn, thread_id):
            state = "expired"
        conn.execute(
            "UPDATE threads SET state=?, current_alert_id=?, first_sent=?, last_sent=?, expires=?, updated_at=?"
            " WHERE id=?",
            (state, current[0], rows[0][1], rows[-1][1], current[3], utc_iso(now), thread_id))
        return state

    def _too_old(self, sent_utc: str, now: datetime) -> bool:
        """A warning that states no end is ended after a configured age: a stale warning misleads."""
        limit = self.max_age_without_expires
        return limit is not None and sent_utc <= utc_iso(now - limit)

    def sweep_expired(self, now: datetime | None = None) -> list[int]:
        """Mark active threads whose current version has expired, or that state no end and are older than
        ``max_age_without_expires``; returns their ids."""
        stamp = utc_iso(now or now_utc())
        with self.transaction() as conn:
            ids = self.expired(now)
            conn.executemany("UPDATE threads SET state='expired', updated_at=? WHERE id=?",
                             [(stamp, i) for i in ids])
        return ids

    def expired(self, now: datetime | None = None) -> list[int]:
        """The active threads :meth:`sweep_expired` would end now (a read: the read-only commands show them as
        expired without writing)."""
        ids = [r[0] for r in self.conn.execute(
            "SELECT id FROM threads WHERE state IN ('active','updated') AND expires IS NOT NULL"
            " AND expires <= ?", (utc_iso(now or now_utc()),))]
        if self.max_age_without_expires is not None:
            cutoff = utc_iso((now or now_utc()) - self.max_age_without_expires)
            ids += [r[0] for r in self.conn.execute(
                "SELECT t.id FROM threads t JOIN alerts a ON a.id = t.current_alert_id"
                " WHERE t.state IN ('active','updated') AND t.expires IS NULL AND a.sent_utc <= ?"
                " AND NOT EXISTS (SELECT 1 FROM presence p JOIN thread_keys k ON k.key = p.key"
                "                 WHERE k.thread_id = t.id AND p.misses = 0)", (cutoff,))]
        return ids

    # -- lists that name every current warning (NINA, feed indexes) --------------------------------------------

    def _listed(self, conn: sqlite3.Connection, thread_id: int) -> bool:
        """Is the thread named by the last complete fetch of some list source?"""
        return conn.execute(
            "SELECT 1 FROM presence p JOIN thread_keys k ON k.key = p.key WHERE k.thread_id=? AND p.misses=0 LIMIT 1",
            (thread_id,)).fetchone() is not None

    def known(self, sender: str, identifier: str) -> bool:
        """Does any thread hold this sender+identifier (as a version or as a reference)?"""
        return self.conn.execute("SELECT 1 FROM thread_keys WHERE key=?",
                                 (_key(sender, identifier),)).fetchone() is not None

    def snapshot(self, origin: str, listed: Iterable[tuple[str, str]], *, misses_to_end: int,
                 now: datetime | None = None) -> list[int]:
        """Record one **complete, successful** fetch of a list source that names every current warning.

        ``listed`` are the (sender, identifier) of the warnings in it. A warning the source listed before and no
        longer lists gets a miss; after ``misses_to_end`` misses in a row its thread ends (state ``ended``) if its
        current version states no ``expires`` (one that does ends by its own time, or by a Cancel). A warning
        that reappears resets its count and, if it had ended this way, is active again. Call this only after a
        fetch that worked: a failed fetch must end nothing. Returns the ids of threads ended now.
        """
        stamp = utc_iso(now or now_utc())
        keys = {_key(s, i) for s, i in listed}
        ended: list[int] = []
        with self.transaction() as conn:
            before = {r[0]: r[1] for r in conn.execute("SELECT key, misses FROM presence WHERE origin=?", (origin,))}
            conn.executemany(
                "INSERT INTO presence (origin, key, misses, last_seen) VALUES (?,?,0,?)"
                " ON CONFLICT(origin, key) DO UPDATE SET misses=0, last_seen=excluded.last_seen",
                [(origin, k, stamp) for k in keys])
            for key in keys:
                # listed (again): a thread ended by vanishing, or by the age rule, is current while it is listed
                row = conn.execute("SELECT t.id FROM thread_keys k JOIN threads t ON t.id = k.thread_id"
                                   " WHERE k.key=? AND t.state IN ('ended','expired') AND t.expires IS NULL",
                                   (key,)).fetchone()
                if row:
                    self._refresh_thread(conn, row[0], now or now_utc())
            for key, misses in before.items():
                if key in keys:
                    continue
                if misses + 1 < misses_to_end:
                    conn.execute("UPDATE presence SET misses=? WHERE origin=? AND key=?", (misses + 1, origin, key))
                    continue
                conn.execute("DELETE FROM presence WHERE origin=? AND key=?", (origin, key))
                row = conn.execute(
                    "SELECT t.id FROM thread_keys k JOIN threads t ON t.id = k.thread_id"
                    " WHERE k.key=? AND t.state IN ('active','updated') AND t.expires IS NULL", (key,)).fetchone()
                if row and not self._listed(conn, row[0]):
                    conn.execute("UPDATE threads SET state='ended', updated_at=? WHERE id=?", (stamp, row[0]))
                    ended.append(row[0])
        return ended

    def presence(self, origin: str) -> dict[str, int]:
        """``sender/identifier`` -> misses in a row, for one list source (for tests and ``warnhub sources``)."""
        return {k.replace(_KEY_SEP, "/"): m for k, m in
                self.conn.execute("SELECT key, misses FROM presence WHERE origin=? ORDER BY key", (origin,))}

    # -- source health ---------------------------------------------------------------------------------------

    def record_health(self, name: str, kind: str, state: str, *, last_error: str = "", last_ok: str | None = None,
                      since: str | None = None, failures: int = 0, detail: dict[str, Any] | None = None,
                      now: datetime | None = None, node: str = "") -> None:
        """The health of a source, as the node that polls it (``node``, many nodes) sees it."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO source_health (name, type, state, last_error, last_ok, since, failures,"
                " detail, updated_at, node) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (name) DO UPDATE SET"
                " type=excluded.type, state=excluded.state, last_error=excluded.last_error, last_ok=excluded.last_ok,"
                " since=excluded.since, failures=excluded.failures, detail=excluded.detail,"
                " updated_at=excluded.updated_at, node=excluded.node",
                (name, kind, state, last_error, last_ok, since, failures,
                 json.dumps(detail or {}, ensure_ascii=False), utc_iso(now or now_utc()), node))
            if node:  # the node polls it now: it no longer stands by
                conn.execute("DELETE FROM source_standby WHERE name=? AND node=?", (name, node))

    def stand_by(self, name: str, node: str, *, now: datetime | None = None) -> None:
        """Many nodes: ``node`` would poll source ``name`` but another node does (seen now)."""
        now = now or now_utc()
        with self.transaction() as conn:
            conn.execute("INSERT INTO source_standby (name, node, seen_at) VALUES (?,?,?) ON CONFLICT (name, node)"
                         " DO UPDATE SET seen_at=excluded.seen_at", (name, node, utc_iso(now)))
            # nodes are named by host and process: those of earlier runs go after a day
            conn.execute("DELETE FROM source_standby WHERE name=? AND seen_at<?",
                         (name, utc_iso(now - timedelta(days=1))))

    def standing_by(self, since: datetime) -> dict[str, list[str]]:
        """Source -> the nodes standing by for it, seen since ``since``."""
        out: dict[str, list[str]] = {}
        for name, node in self.conn.execute("SELECT name, node FROM source_standby WHERE seen_at >= ?"
                                            " ORDER BY name, node", (utc_iso(since),)):
            out.setdefault(name, []).append(node)
        return out

    def source_health(self) -> list[dict[str, Any]]:
        cols = ("name", "type", "state", "last_error", "last_ok", "since", "failures", "detail", "updated_at",
                "node")
        out = []
        for row in self.conn.execute("SELECT " + ",".join(cols) + " FROM source_health ORDER BY name"):
            d = dict(zip(cols, row, strict=True))
            d["detail"] = json.loads(d["detail"] or "{}")
            out.append(d)
        return out

    _THREAD_SELECT = (
        "SELECT t.id, t.state, a.headline, a.severity, a.sender, a.identifier, a.msg_type, a.status,"
        " t.first_sent, t.last_sent, t.expires, (SELECT count(*) FROM alerts v WHERE v.thread_id=t.id),"
        " t.updated_at FROM threads t JOIN alerts a ON a.id = t.current_alert_id ")

    def threads(self, *, include_ended: bool = False) -> list[ThreadView]:
        where = "" if include_ended else "WHERE t.state IN ('active','updated')"
        rows = self.conn.execute(self._THREAD_SELECT + where + " ORDER BY t.last_sent DESC, t.id DESC").fetchall()
        return [ThreadView(*r) for r in rows]

    def thread(self, thread_id: int) -> ThreadView | None:
        row = self.conn.execute(self._THREAD_SELECT + "WHERE t.id=?", (thread_id,)).fetchone()
        return ThreadView(*row) if row else None

    def incident(self, thread_id: int) -> tuple[ThreadView, list[dict[str, Any]], Alert | None] | None:
        """A thread, its versions and its current alert, read together (one trip to the writer thread)."""
        thread = self.thread(thread_id)
        if thread is None:
            return None
        return thread, self.versions(thread_id), self.current_alert(thread_id)

    def versions(self, thread_id: int) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT id, sender, identifier, sent, msg_type, status, verdict, signature, origin, received_at"
            " FROM alerts WHERE thread_id=? ORDER BY sent_utc, id", (thread_id,)).fetchall()
        cols = ("id", "sender", "identifier", "sent", "msg_type", "status", "verdict", "signature", "origin",
                "received_at")
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def alert(self, alert_id: int) -> Alert | None:
        row = self.conn.execute("SELECT json FROM alerts WHERE id=?", (alert_id,)).fetchone()
        return from_json(row[0]) if row else None

    def current_alert(self, thread_id: int) -> Alert | None:
        row = self.conn.execute("SELECT current_alert_id FROM threads WHERE id=?", (thread_id,)).fetchone()
        return self.alert(row[0]) if row else None

    def counts(self) -> dict[str, int]:
        out = {f"threads_{state}": n for state, n in self.conn.execute(
            "SELECT state, count(*) FROM threads GROUP BY state")}
        out["alerts"] = self.conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
        out["rejections"] = self.conn.execute("SELECT count(*) FROM rejections").fetchone()[0]
        return out

    # -- rejections ----------------------------------------------------------------------------------------

    def add_rejection(self, raw: bytes, *, origin: str, reason: str, now: datetime | None = None,
                      durable: bool = False) -> int:
        with self.transaction(durable=durable) as conn:
            cur = conn.execute(
                "INSERT INTO rejections (received_at, origin, reason, sha256, size) VALUES (?,?,?,?,?)",
                (utc_iso(now or now_utc()), origin, reason, hashlib.sha256(raw).hexdigest(), len(raw)))
        return int(cur.lastrowid or 0)


def _state(msg_type: str, expires: str | None, now: datetime) -> str:
    if msg_type == MsgType.CANCEL.value:
        return "cancelled"
    if expires is not None and expires <= utc_iso(now):
        return "expired"
    return "updated" if msg_type == MsgType.UPDATE.value else "active"

