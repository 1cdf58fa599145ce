"""Push fan-out in priority chunks: the first push leaves before the last outbox row is written.

Writing one outbox row per recipient before the first is sent made the first push of a warning to 1,000,000
subscriptions leave 8.5 s after it was accepted. Now the publication's transaction writes the rows of the first
``FIRST_CHUNK`` recipients and, for the rest, durable **chunks** (table ``fanout``: publication, channel, sequence
number, the recipients' ids as one JSON array each, plus what their rows need). It commits; the workers send at once
while :func:`step` writes the remaining chunks, one transaction per chunk, the chunk deleted in the same transaction
as its rows are inserted: the table is the cursor. A crash between chunks resumes at the next chunk after restart;
a crash inside one rolls it back whole; keys are idempotent (``INSERT OR IGNORE``), so a chunk written twice (two
nodes, on PostgreSQL) stores each row once.

Order: chunks are written by priority (Extreme/Immediate first), then newest publication first, so a big Minor
fan-out never holds up a later Extreme one; the workers claim rows by priority anyway. Versions: a chunk's rows
supersede queued rows of older versions of the thread for the same recipients (as :func:`hub.deliver.outbox.
enqueue_select_in` does), and are stored superseded themselves when a newer version already has a row for that
recipient (an Update that overtook a fan-out still being written). A Cancel drops the older versions' chunks not yet
written (:func:`drop_in`): whoever was never queued the warning hears no all-clear for it. A chunk past its warning's
expiry is dropped unwritten.

Why chunks and not per-(publication, shard) work items with rows only for failures: the outbox row is what the
claim, the lease, retries, per-host circuit breakers, supersede, withdrawal, the invariants checker and the
console's status all work on; chunks keep every one of them as it is and only move *when* rows are written (about
40 ms per 5,000 rows on this machine, far ahead of sending). docs/deploy.md gives what the rows cost at 10 M.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hub.store import dialect
from hub.store.db import Store

log = logging.getLogger("warnhub.fanout")

FIRST_CHUNK = 2_000
"""Recipients whose rows the publication's own transaction writes (they are sent while the rest is written)."""
CHUNK = 2_000
"""Recipients per later chunk (one transaction each). Small enough that a warning published meanwhile waits for
at most about one chunk's transaction (tens of milliseconds; 5,000 made an Extreme wait 0.2 s in the storm)."""
CHANNEL = "push"

# The push recipients of a chunk with the host of their endpoint (checked when it was stored:
# ``scheme://host[:port]/...``); a subscription deleted meanwhile yields no row.
_RECIPIENTS = (
    "SELECT id AS recipient, lower(CASE WHEN instr(rest, '/') > 0 THEN substr(rest, 1, instr(rest, '/') - 1)"
    " ELSE rest END) AS host FROM (SELECT s.id, substr(s.endpoint, instr(s.endpoint, '://') + 3) AS rest"
    " FROM json_each(?) j JOIN subscriptions s ON s.id = j.value) AS e")
_INSERT = (
    "INSERT OR IGNORE INTO outbox (key, publication_id, thread, channel, recipient, host, priority, not_after_ms,"
    f" next_at_ms, created_ms) SELECT ? || r.recipient, ?, ?, '{CHANNEL}', r.recipient, r.host, ?, ?, ?, ?"
    f" FROM ({_RECIPIENTS}) r")
_IDS = "(SELECT value FROM json_each(?4))"
_OLDER = (f"UPDATE outbox SET state='superseded', finished_ms=?1, last_error='superseded by publication ' || ?2"
          f" WHERE state='queued' AND thread=?3 AND channel='push' AND publication_id<?2 AND recipient IN {_IDS}")
_NEWER = ("UPDATE outbox SET state='superseded', finished_ms=?1, last_error='superseded by a newer publication'"
          " WHERE id IN (SELECT o.id FROM json_each(?4) AS j CROSS JOIN outbox AS o WHERE o.thread=?3"
          " AND o.channel='push' AND o.recipient=j.value AND o.publication_id=?2 AND o.state='queued' AND EXISTS"
          " (SELECT 1 FROM outbox n WHERE n.thread=o.thread AND n.channel=o.channel AND n.recipient=o.recipient"
          " AND n.publication_id>o.publication_id))")
_NEXT = ("SELECT publication_id, channel, seq, thread, priority, not_after_ms, key_prefix, recipients FROM fanout"
         " ORDER BY priority, publication_id DESC, seq LIMIT 1")


@dataclass(frozen=True, slots=True)
class Job:
    """One publication version's push fan-out (what each of its rows holds besides the recipient)."""

    publication_id: int
    thread: str
    key_prefix: str
    priority: int
    not_after_ms: int | None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A fan-out's recipients made ready off the writer thread (:func:`prepare`): the writer only inserts them."""

    first: list[str]
    """The ids whose rows the publication's own transaction writes."""
    chunks: list[str]
    """The rest, as JSON arrays of ``CHUNK`` ids each."""
    total: int


def prepare(ids: Sequence[str], *, first: int = FIRST_CHUNK, chunk: int = CHUNK) -> Prepared:
    """Split the recipients for :func:`start_in`. A :class:`hub.publish.matched.Matched` (the index's answer) is
    turned into JSON without a Python string per id: at a million recipients that is most of the first second."""
    json_chunks = getattr(ids, "json_chunks", None)
    rest = ids[first:]
    if json_chunks is not None:
        chunks: list[str] = rest.json_chunks(chunk)  # type: ignore[attr-defined]
    else:
        chunks = [json.dumps(list(rest[i:i + chunk])) for i in range(0, len(rest), chunk)]
    return Prepared(list(ids[:first]), chunks, len(ids))


@dataclass(frozen=True, slots=True)
class Step:
    channel: str
    inserted: int
    """Rows stored by this chunk (0: all were there, or the chunk had expired)."""
    priority: int = 0
    """The chunk's (the most urgent left: chunks are written most urgent first)."""


def _stamp(now_ms: int | None) -> int:
    return time.time_ns() // 1_000_000 if now_ms is None else now_ms


def _write(conn: Any, job: Job, ids: Sequence[str], now: int) -> int:
    """Rows of ``job`` for these recipients, with supersede both ways (see the module docstring)."""
    payload = json.dumps(list(ids))
    inserted: int = conn.execute(_INSERT, (job.key_prefix, job.publication_id, job.thread, job.priority,
                                           job.not_after_ms, now, now, payload)).rowcount
    # one index look-up per recipient each (outbox_version): no scan of the thread's rows, which would make a
    # fan-out quadratic in its chunks
    args = (now, job.publication_id, job.thread, payload)
    conn.execute(_OLDER, args)
    conn.execute(_NEWER, args)
    return inserted


def start_in(conn: Any, job: Job, recipients: Sequence[str] | Prepared, *, now_ms: int | None = None,
             first: int = FIRST_CHUNK, chunk: int = CHUNK) -> tuple[int, int]:
    """Inside the publication's transaction: the rows of the first ``first`` recipients, and the rest as chunks of
    ``chunk`` for :func:`step` (``recipients`` already :func:`prepare`-d, or ids to split here). Returns (rows
    inserted now, recipients left to chunks)."""
    now = _stamp(now_ms)
    ready = recipients if isinstance(recipients, Prepared) else prepare(recipients, first=first, chunk=chunk)
    inserted = _write(conn, job, ready.first, now) if ready.first else 0
    if ready.chunks:
        conn.executemany(
            "INSERT INTO fanout (publication_id, channel, seq, thread, priority, not_after_ms, key_prefix,"
            " recipients, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(job.publication_id, CHANNEL, seq, job.thread, job.priority, job.not_after_ms, job.key_prefix, ids, now)
             for seq, ids in enumerate(ready.chunks)])
    return inserted, ready.total - len(ready.first)


def step(store: Store, *, now_ms: int | None = None) -> Step | None:
    """Write the most urgent chunk in one transaction (its rows in, the chunk out); None when none is left."""
    now = _stamp(now_ms)
    with store.transaction() as conn:
        lock = " FOR UPDATE SKIP LOCKED" if dialect.of(conn) == dialect.POSTGRESQL else ""
        row = conn.execute(_NEXT + lock).fetchone()
        if row is None:
            return None
        pub, channel, seq, thread, prio, not_after, prefix, recipients = row
        inserted = 0
        if not_after is None or not_after > now:
            inserted = _write(conn, Job(pub, thread, prefix, prio, not_after), json.loads(recipients), now)
        conn.execute("DELETE FROM fanout WHERE publication_id=? AND channel=? AND seq=?", (pub, channel, seq))
    return Step(channel, inserted, prio)


def drop_in(conn: Any, thread: str, *, below_publication: int) -> int:
    """Inside a Cancel's transaction: the chunks of the thread's older versions not yet written are dropped."""
    dropped: int = conn.execute("DELETE FROM fanout WHERE thread=? AND publication_id<?",
                                (thread, below_publication)).rowcount
    if dropped:
        log.info("fan-out of %s: %d chunk(s) of older versions dropped (cancelled)", thread, dropped)
    return dropped


def pending(store: Store) -> int:
    """Chunks not yet written."""
    row = store.conn.execute("SELECT count(*) FROM fanout").fetchone()
    return int(row[0])
