"""The outbox: every delivery is a row in the store's SQLite (table ``outbox``) before any channel sends it.

A row is one publication version, for one recipient, over one channel, under an idempotency key (enqueued twice,
stored once). Its life: ``queued`` -> ``inflight`` (claimed by a channel worker, under a lease) -> ``done`` |
``gone`` (the endpoint is dead) | ``failed`` | ``expired`` (never deliver a warning past its expiry), or back to
``queued`` (retry with backoff, a lost lease, a restart), or ``coalesced`` (a push over the person's budget,
counted in the summary push its ``last_error`` names: :mod:`hub.deliver.budget`). A queued row ends as
``superseded`` when a newer version for the same thread, channel and recipient arrives, or ``withdrawn`` when a
Cancel withdraws it. A row requeued from flight is superseded at that moment if a newer version exists, so v1
never lands after v2 was queued.

Delivery is at least once: a row in flight at a crash is sent again after :func:`recover`, with the same key, so the
receiver can tell. Each channel has its own worker (:mod:`hub.deliver.workers`; a dead channel delays no other)
and, per destination host, a circuit breaker (:mod:`hub.deliver.breaker`; a dead host delays no other host of its
channel). One bad row delays no other row of its batch: a batch whose ``deliver`` raises is halved until that row
is alone, and a row whose content cannot be made (``breaker.row_failed``) is retried alone while the rest are sent;
it ends ``failed`` with the reason.

The sync functions take the :class:`~hub.store.db.Store` and run on its one writer thread (``AsyncStore.run``). Times
are epoch milliseconds. The table is in hub/store/schema.py.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from hub.ports import Delivery, Outcome
from hub.store import dialect
from hub.store.db import Store

log = logging.getLogger("warnhub.outbox")

def stamp_ms(now_ms: int | None) -> int:
    return time.time_ns() // 1_000_000 if now_ms is None else now_ms


_NUMBERS = frozenset(("id", "publication_id", "_publication", "priority", "not_after_ms", "next_at"))


def _cols(*names: str) -> str:
    """Columns from a JSON array per row; numbers cast (PostgreSQL reads JSON as text, see hub.store.dialect)."""
    return ", ".join(f"CAST(json_extract(value, '$[{i}]') AS BIGINT) AS {name}" if name in _NUMBERS
                     else f"json_extract(value, '$[{i}]') AS {name}" for i, name in enumerate(names))


_json = msgspec.json.encode
OUTCOME_KINDS = frozenset(("done", "retry", "gone", "failed", "coalesced"))
_IDS = "(SELECT CAST(value AS BIGINT) FROM json_each(?1))"
_DELIVERY_COLS = "id, key, publication_id, thread, channel, recipient, priority, attempts, not_after_ms, host"
# Is there a newer version for the same thread, channel and recipient (in any state)?
_NEWER = ("EXISTS (SELECT 1 FROM outbox n WHERE n.thread=outbox.thread AND n.channel=outbox.channel"
          " AND n.recipient=outbox.recipient AND n.publication_id>outbox.publication_id)")
# Back from flight to the queue, unless a newer version has arrived meanwhile (?1 is now).
_REQUEUE = (f"state=CASE WHEN {_NEWER} THEN 'superseded' ELSE 'queued' END,"
            f" finished_ms=CASE WHEN {_NEWER} THEN ?1 END, lease_until_ms=NULL, next_at_ms=?1")


@dataclass(frozen=True, slots=True)
class NewDelivery:
    key: str
    """Idempotency key (publication version, channel, recipient)."""
    publication_id: int
    thread: str
    channel: str
    recipient: str
    host: str
    priority: int
    """0 first (Extreme/Immediate) ... 9 last."""
    not_after_ms: int | None


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    inserted: int
    duplicates: int
    """Rows whose key was already held (or repeated in the batch): not stored again."""
    superseded: int
    """Queued rows replaced by a newer version (including new rows older than one already held)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_s: float = 2.0
    """Backoff ceiling of the first retry; it doubles per attempt up to ``max_s`` (full jitter below it)."""
    max_s: float = 300.0
    max_attempts: int = 12
    """Attempts in all; a retry outcome of the last one fails the row."""


@dataclass(frozen=True, slots=True)
class CompleteResult:
    counts: dict[str, int]
    """Rows by what became of them: done, retry (queued again), gone, failed, expired."""
    gave_up: int
    """Of ``failed``: retries that reached ``max_attempts``."""
    gone: dict[str, list[str]]
    """Channel -> recipients whose endpoint is gone (delete those subscriptions)."""
    stale: int
    """Results for rows no longer in flight or queued (settled elsewhere, e.g. after a lost lease): ignored."""


_INSERT = ("INSERT OR IGNORE INTO outbox (key, publication_id, thread, channel, recipient, host, priority,"
           " not_after_ms, next_at_ms, created_ms) SELECT *, ?2, ?2 FROM (SELECT "
           + _cols("key", "publication_id", "thread", "channel", "recipient", "host", "priority", "not_after_ms")
           + " FROM json_each(?1)) AS r")
_SUPERSEDE = (
    "UPDATE outbox SET state='superseded', finished_ms=?2, last_error='superseded by publication ' || v.newest"
    " FROM (SELECT g.thread, g.channel, g.recipient, (SELECT max(o.publication_id) FROM outbox o WHERE"
    " o.thread=g.thread AND o.channel=g.channel AND o.recipient=g.recipient) AS newest FROM (SELECT DISTINCT "
    + _cols("_key", "_publication", "thread", "channel", "recipient") + " FROM json_each(?1)) AS g) AS v"
    " WHERE outbox.state='queued' AND outbox.thread=v.thread AND outbox.channel=v.channel"
    " AND outbox.recipient=v.recipient AND outbox.publication_id<v.newest")


def enqueue(store: Store, rows: Iterable[NewDelivery], *, now_ms: int | None = None) -> EnqueueResult:
    """Store deliveries, due at once, in one transaction; supersede queued older versions of the same
    (thread, channel, recipient). Rows already in flight stay: they may land, and the receiver then gets v2 too."""
    now = stamp_ms(now_ms)
    batch = [(r.key, r.publication_id, r.thread, r.channel, r.recipient, r.host, r.priority, r.not_after_ms)
             for r in rows]
    if not batch:
        return EnqueueResult(0, 0, 0)
    with store.transaction() as conn:
        return _enqueue(conn, batch, now)


def enqueue_in(conn: sqlite3.Connection, rows: Iterable[NewDelivery], *, now_ms: int | None = None) -> EnqueueResult:
    """:func:`enqueue` inside the caller's transaction (a publication and its rows are written together)."""
    batch = [(r.key, r.publication_id, r.thread, r.channel, r.recipient, r.host, r.priority, r.not_after_ms)
             for r in rows]
    return _enqueue(conn, batch, stamp_ms(now_ms)) if batch else EnqueueResult(0, 0, 0)


_OTHER_VERSIONS = "SELECT 1 FROM outbox WHERE thread=? AND publication_id<>? LIMIT 1"


def _enqueue(conn: sqlite3.Connection, batch: list[tuple[Any, ...]], now: int) -> EnqueueResult:
    payload = _json(batch)
    inserted = conn.execute(_INSERT, (payload, now)).rowcount
    versions = {(r[2], r[1]) for r in batch}
    if len(versions) == 1 and conn.execute(_OTHER_VERSIONS, next(iter(versions))).fetchone() is None:
        superseded = 0  # the thread's first version (the usual fan-out): nothing older to look for
    else:
        superseded = conn.execute(_SUPERSEDE, (payload, now)).rowcount
    return EnqueueResult(inserted, len(batch) - inserted, superseded)


def enqueue_select_in(conn: sqlite3.Connection, select: str, params: Sequence[Any], *, key_prefix: str,
                      publication_id: int, thread: str, channel: str, priority: int, not_after_ms: int | None,
                      now_ms: int | None = None) -> EnqueueResult:
    """Enqueue one publication version on one channel for the rows an SQL ``select`` with ``params`` yields (columns
    named ``recipient`` and ``host``), inside the caller's transaction: the rows never pass through Python, which
    matters for a fan-out to tens of thousands. Keys are ``key_prefix + recipient``; queued rows of older versions
    of the thread for those recipients are superseded, as by :func:`enqueue`. ``duplicates`` is not counted (0)."""
    now = stamp_ms(now_ms)
    inserted = conn.execute(
        "INSERT OR IGNORE INTO outbox (key, publication_id, thread, channel, recipient, host, priority, not_after_ms,"
        f" next_at_ms, created_ms) SELECT ? || r.recipient, ?, ?, ?, r.recipient, r.host, ?, ?, ?, ? FROM ({select}) r",
        (key_prefix, publication_id, thread, channel, priority, not_after_ms, now, now, *params)).rowcount
    superseded = 0
    if conn.execute(_OTHER_VERSIONS, (thread, publication_id)).fetchone() is not None:
        superseded = conn.execute(
            "UPDATE outbox SET state='superseded', finished_ms=?1, last_error='superseded by publication ' || ?2"
            " WHERE state='queued' AND thread=?3 AND channel=?4 AND publication_id<?2 AND recipient IN"
            " (SELECT recipient FROM outbox WHERE publication_id=?2 AND channel=?4)",
            (now, publication_id, thread, channel)).rowcount
    return EnqueueResult(inserted, 0, superseded)


def withdraw(store: Store, thread: str, *, channels: Collection[str] | None = None,
             below_publication: int | None = None, now_ms: int | None = None) -> int:
    """Withdraw the queued rows of a thread (of these channels, of publications below this one); returns how many.
    Rows in flight are not recalled (a Cancel published as a newer version supersedes them if they come back)."""
    with store.transaction() as conn:
        return withdraw_in(conn, thread, channels=channels, below_publication=below_publication, now_ms=now_ms)


def withdraw_in(conn: sqlite3.Connection, thread: str, *, channels: Collection[str] | None = None,
                below_publication: int | None = None, now_ms: int | None = None) -> int:
    """:func:`withdraw` inside the caller's transaction."""
    sql = "UPDATE outbox SET state='withdrawn', finished_ms=?, last_error='withdrawn' WHERE thread=? AND state='queued'"
    args: list[Any] = [stamp_ms(now_ms), thread]
    if channels is not None:
        sql += " AND channel IN (SELECT value FROM json_each(?))"
        args.append(_json(sorted(channels)))
    if below_publication is not None:
        sql += " AND publication_id<?"
        args.append(below_publication)
    return conn.execute(sql, args).rowcount


def _ready_sql(hosts: int, kind: str) -> str:
    """Due rows of a channel and priority; on PostgreSQL locked for this claim, passing over rows another node's
    claim holds (``SKIP LOCKED``): delivery nodes claim side by side, never the same row."""
    skip = f" AND host NOT IN ({','.join('?' * hosts)})" if hosts else ""
    lock = " FOR UPDATE SKIP LOCKED" if kind == dialect.POSTGRESQL else ""
    return (f"SELECT {_DELIVERY_COLS} FROM outbox WHERE channel=? AND state='queued' AND priority=?"
            f" AND next_at_ms<=?{skip} ORDER BY next_at_ms, id LIMIT ?{lock}")


_NEXT_PRIORITY = ("SELECT priority FROM outbox WHERE channel=? AND state='queued' AND priority>?"
                  " ORDER BY priority LIMIT 1")
_RECLAIM = f"UPDATE outbox SET {_REQUEUE} WHERE state='inflight' AND channel=?2 AND lease_until_ms<=?1"
_LAPSED = "SELECT 1 FROM outbox WHERE state='inflight' AND channel=?2 AND lease_until_ms<=?1 LIMIT 1"
_TAKE = f"UPDATE outbox SET state='inflight', attempts=attempts+1, lease_until_ms=?2 WHERE id IN {_IDS}"
_EXPIRE = f"UPDATE outbox SET state='expired', finished_ms=?2, last_error='expired before delivery' WHERE id IN {_IDS}"


def claim(store: Store, channel: str, limit: int, *, lease_s: float, now_ms: int | None = None,
          skip_hosts: Collection[str] = (), max_priority: int | None = None) -> list[Delivery]:
    """Take up to ``limit`` due rows of a channel, by priority, then due time, then id (insertion order), passing
    over ``skip_hosts``; they are in flight until ``now + lease_s``. Rows past their ``not_after_ms`` are marked
    expired instead. Rows whose lease ran out (a worker that died) are queued again first. ``max_priority``: only
    rows of this priority or a more urgent one (the worker's express loop, see :class:`hub.deliver.workers.
    ChannelWorker`).

    On PostgreSQL the claim runs beside other nodes' writes (``parallel``, rows locked ``FOR UPDATE SKIP LOCKED``);
    queueing lapsed leases again reads other rows (a newer version?) and takes the store writer's lock."""
    now = stamp_ms(now_ms)
    hosts = sorted(set(skip_hosts))
    select = _ready_sql(len(hosts), dialect.of(store.conn))
    out: list[Delivery] = []
    expired = lost = 0
    if store.conn.execute(_LAPSED, (now, channel)).fetchone() is not None:
        with store.transaction() as conn:  # the writer's lock: a newer version being queued meanwhile is seen
            lost = conn.execute(_RECLAIM, (now, channel)).rowcount
    with store.transaction(parallel=True) as conn:
        priority = -(2**62)
        while len(out) < limit:
            row = conn.execute(_NEXT_PRIORITY, (channel, priority)).fetchone()
            if row is None or (max_priority is not None and row[0] > max_priority):
                break
            priority = row[0]
            while len(out) < limit:
                want = limit - len(out)
                rows = conn.execute(select, (channel, priority, now, *hosts, want)).fetchall()
                live = [Delivery(*r) for r in rows if r[8] is None or r[8] > now]
                dead = [r[0] for r in rows if r[8] is not None and r[8] <= now]
                if dead:
                    conn.execute(_EXPIRE, (_json(dead), now))
                    expired += len(dead)
                if live:
                    conn.execute(_TAKE, (_json([d.id for d in live]), now + int(lease_s * 1000)))
                    out += live
                if len(rows) < want:
                    break
    if lost:
        log.warning("outbox %s: %d leases ran out (a worker died or stalled); queued again", channel, lost)
    if expired:
        log.info("outbox %s: %d deliveries expired before they could be sent", channel, expired)
    return out


def renew(store: Store, ids: Collection[int], *, lease_s: float, now_ms: int | None = None) -> int:
    """The rows still in flight among ``ids`` (this node's, being sent) are held for another ``lease_s`` from now:
    the heartbeat of a worker whose delivery takes longer than part of its lease. Returns the rows renewed (a row
    settled or taken back meanwhile is not). Touches only these rows: beside other nodes' writes."""
    if not ids:
        return 0
    until = stamp_ms(now_ms) + int(lease_s * 1000)
    with store.transaction(parallel=True) as conn:
        return conn.execute("UPDATE outbox SET lease_until_ms=?2 WHERE id IN"
                            f" {_IDS} AND state='inflight'", (_json(sorted(ids)), until)).rowcount


def next_due(store: Store, channel: str, *, skip_hosts: Collection[str] = ()) -> int | None:
    """When the next queued row of a channel (not of ``skip_hosts``) is due, in ms; None when none is queued."""
    hosts = sorted(set(skip_hosts))
    skip = f" AND host NOT IN ({','.join('?' * len(hosts))})" if hosts else ""
    select = (f"SELECT next_at_ms FROM outbox WHERE channel=? AND state='queued' AND priority=?{skip}"
              " ORDER BY next_at_ms LIMIT 1")
    due: int | None = None
    priority = -(2**62)
    while (row := store.conn.execute(_NEXT_PRIORITY, (channel, priority)).fetchone()) is not None:
        priority = row[0]
        found = store.conn.execute(select, (channel, priority, *hosts)).fetchone()
        if found is not None and (due is None or found[0] < due):
            due = found[0]
    return due


def backoff_ms(policy: RetryPolicy, attempt: int, retry_after_s: float | None = None,
               rng: random.Random | None = None) -> int:
    """Wait before retry number ``attempt`` (1 = the first retry): full jitter below min(max_s, base_s * 2^(n-1)),
    and never less than the receiver's Retry-After."""
    ceiling = min(policy.max_s, policy.base_s * 2.0 ** min(attempt - 1, 60))
    delay = (rng or random).uniform(0.0, ceiling)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return int(delay * 1000)


_COMPLETE = (
    f"UPDATE outbox SET state=CASE WHEN r.state='queued' AND {_NEWER} THEN 'superseded' ELSE r.state END,"
    " next_at_ms=coalesce(r.next_at, outbox.next_at_ms), last_error=r.err, lease_until_ms=NULL,"
    f" finished_ms=CASE WHEN r.state='queued' AND NOT {_NEWER} THEN NULL ELSE ?2 END"
    f" FROM (SELECT {_cols('id', 'state', 'next_at', 'err')} FROM json_each(?1)) AS r"
    " WHERE outbox.id=r.id AND outbox.state IN ('inflight', 'queued')")


def _settle(d: Delivery, o: Outcome, now: int, policy: RetryPolicy) -> tuple[str, int | None, str, bool]:
    """(new state, next_at_ms, last_error, gave up) for one outcome."""
    if o.kind != "retry":
        return o.kind, None, o.reason, False
    tried = d.attempts + 1
    if tried >= policy.max_attempts:
        return "failed", None, f"gave up after {tried} attempts: {o.reason}", True
    at = now + backoff_ms(policy, tried, o.retry_after_s)
    if d.not_after_ms is not None and at >= d.not_after_ms:
        return "expired", None, f"expired while waiting to retry: {o.reason}", False
    return "queued", at, o.reason, False


def complete(store: Store, results: Sequence[tuple[Delivery, Outcome]], *, now_ms: int | None = None,
             policy: RetryPolicy) -> CompleteResult:
    """Record the outcomes of claimed rows in one transaction (see :class:`CompleteResult`)."""
    now = stamp_ms(now_ms)
    counts = {"done": 0, "retry": 0, "gone": 0, "failed": 0, "expired": 0, "coalesced": 0}
    gone: dict[str, list[str]] = {}
    rows = []
    gave_up = 0
    for delivery, outcome in results:
        state, at, err, quit_ = _settle(delivery, outcome, now, policy)
        rows.append((delivery.id, state, at, err))
        counts["retry" if state == "queued" else state] += 1
        gave_up += quit_
        if state == "gone":
            gone.setdefault(delivery.channel, []).append(delivery.recipient)
    if not rows:
        return CompleteResult(counts, 0, {}, 0)
    # Final outcomes touch only these rows (held by this node): beside other writers. A retry goes back to the
    # queue unless a newer version arrived, which must not be being queued at this moment: the writer's lock.
    with store.transaction(parallel=counts["retry"] == 0) as conn:
        updated = conn.execute(_COMPLETE, (_json(rows), now)).rowcount
    return CompleteResult(counts, gave_up, gone, len(rows) - updated)


_DEFER = (f"UPDATE outbox SET state=CASE WHEN {_NEWER} THEN 'superseded' ELSE 'queued' END,"
          f" finished_ms=CASE WHEN {_NEWER} THEN ?2 END, attempts=attempts-1, lease_until_ms=NULL,"
          f" next_at_ms=r.next_at FROM (SELECT {_cols('id', 'next_at')} FROM json_each(?1)) AS r"
          " WHERE outbox.id=r.id AND outbox.state='inflight'")


def defer(store: Store, rows: Sequence[tuple[int, int]], *, now_ms: int | None = None) -> int:
    """Claimed rows (id, until epoch ms) back in the queue unsent, each due at its ``until``, the claim not
    counted as an attempt (or superseded if a newer version arrived meanwhile): their recipient's receiver asked
    to wait (Retry-After), which holds every row for it, not only the refused one. Returns the rows put back."""
    if not rows:
        return 0
    with store.transaction() as conn:  # the writer's lock: a newer version being queued meanwhile is seen
        return int(conn.execute(_DEFER, (_json(list(rows)), stamp_ms(now_ms))).rowcount)


def due_again(store: Store, channel: str, hosts: Collection[str], *, now_ms: int | None = None) -> int:
    """The queued rows of these hosts of a channel are due now (how many): the host answers again (its circuit
    closed), so the backoff each row piled up against it while it was down no longer applies. Rows stay in
    priority order; a Retry-After a host gave keeps being honoured by the probe that closed its circuit."""
    hosts = sorted(set(hosts))
    if not hosts:
        return 0
    now = stamp_ms(now_ms)
    with store.transaction() as conn:
        return conn.execute(
            "UPDATE outbox SET next_at_ms=?1 WHERE channel=?2 AND state='queued' AND next_at_ms>?1"
            " AND host IN (SELECT value FROM json_each(?3))", (now, channel, _json(hosts))).rowcount


def recover(store: Store, *, now_ms: int | None = None) -> int:
    """At start-up: every row in flight is queued again, due now, or superseded if a newer version arrived
    meanwhile. It may have been sent before the crash; its key tells the receiver. On SQLite the hub alone owns the
    database; on PostgreSQL other delivery nodes may hold rows in flight, so only rows whose lease ran out are taken
    back (this node's own rows from before a crash come back when their lease ends, as a dead node's do)."""
    now = stamp_ms(now_ms)
    lapsed = " AND lease_until_ms<=?1" if dialect.of(store.conn) == dialect.POSTGRESQL else ""
    with store.transaction() as conn:
        return conn.execute(f"UPDATE outbox SET {_REQUEUE} WHERE state='inflight'{lapsed}", (now,)).rowcount


def status(store: Store, publication_ids: Collection[int] | None = None) -> dict[int, dict[str, dict[str, int]]]:
    """publication -> channel -> state -> rows (requested publications without rows map to ``{}``)."""
    sql = "SELECT publication_id, channel, state, count(*) FROM outbox"
    args: tuple[Any, ...] = ()
    out: dict[int, dict[str, dict[str, int]]] = {}
    if publication_ids is not None:
        sql += " WHERE publication_id IN (SELECT CAST(value AS BIGINT) FROM json_each(?))"
        args = (_json(sorted(publication_ids)),)
        out = {p: {} for p in publication_ids}
    for pub, channel, state, n in store.conn.execute(sql + " GROUP BY 1, 2, 3", args):
        out.setdefault(pub, {}).setdefault(channel, {})[state] = n
    return out


def failed_since(store: Store, since_ms: int, *, limit: int = 100) -> list[dict[str, Any]]:
    """Deliveries that failed for good since ``since_ms``, newest first (for /healthz and the console)."""
    rows = store.conn.execute(
        "SELECT id, key, channel, recipient, attempts, last_error, finished_ms FROM outbox"
        " WHERE state='failed' AND finished_ms>=? ORDER BY finished_ms DESC LIMIT ?", (since_ms, limit)).fetchall()
    return [dict(zip(("id", "key", "channel", "recipient", "attempts", "reason", "finished_ms"), r, strict=True))
            for r in rows]


def depth(store: Store) -> dict[str, int]:
    """Queued rows per channel (due or waiting to retry)."""
    return dict(store.conn.execute("SELECT channel, count(*) FROM outbox WHERE state='queued' GROUP BY channel"))


def backlog(store: Store, now_ms: int | None = None) -> dict[str, tuple[int, int | None]]:
    """Per channel: rows queued (due or waiting to retry), and since when the longest-waiting due row has been due
    (epoch ms; None: nothing due). A read: the web's reader threads run it, never the writer."""
    now = stamp_ms(now_ms)
    rows = store.conn.execute(
        "SELECT channel, count(*), min(CASE WHEN next_at_ms <= ? THEN next_at_ms END) FROM outbox"
        " WHERE state='queued' GROUP BY channel", (now,))
    return {channel: (n, oldest) for channel, n, oldest in rows}


def prune(store: Store, older_than_ms: int, *, limit: int = 10_000, threads: Collection[str] | None = None) -> int:
    """Delete up to ``limit`` finished rows that finished before ``older_than_ms`` (of ``threads`` only, if given);
    call again while it returns ``limit``. A pruned key no longer deduplicates, and a Cancel reaches whoever has a
    done row of its thread: prune only threads that have ended (hub.retention picks them)."""
    only = "" if threads is None else " AND thread IN (SELECT value FROM json_each(?))"
    args = (older_than_ms,) + (() if threads is None else (_json(sorted(threads)).decode(),)) + (limit,)
    with store.transaction() as conn:
        return conn.execute(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE finished_ms<?"
            f" AND state NOT IN ('queued', 'inflight'){only} LIMIT ?)", args).rowcount
