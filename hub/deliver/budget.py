"""A push budget per person (issue 17 §1): within a window (``[push] budget_window_min``) a subscription gets at
most ``budget_pushes`` warning pushes; what would exceed it is coalesced into one summary push ("3 neue Warnungen
für Ihre Orte", opening the start page), sent when the window allows another push.

The rules (applied before: an Update they find insignificant queues no push) and threading (copies of one incident
from several sources are one thread, one row per person) have already kept the noise out; the budget is the last
brake, applied by the push channel at delivery time (:class:`BudgetedChannel` wraps it), so that the outbox's
priority order decides which warnings a person gets first when many are queued at once.

- One slot of the budget is kept for an Extreme: until one came in the window, warnings below Extreme get
  ``budget_pushes - 1`` pushes (at least one); an Extreme (by the publication's severity; an Immediate Severe
  warning is not one) always gets through and counts. So in a storm a person gets at most ``budget_pushes``
  pushes per window unless several Extremes arrive.
- A row over the budget ends ``coalesced`` with its summary row's key as its reason; the summary row (thread and
  key ``summary:<subscription>/<due ms>``) is queued, due when the oldest push counted leaves the window. Rows
  coalesced until it is sent join it; its payload counts them. The summary counts as a push of its window.
- Test pushes (:mod:`hub.publish.testpush`) and the control room's canaries (:mod:`hub.publish.canary`) pass and
  never count.
- A row counted once (by its key) is not counted again when it is retried or sent again after a restart.

The count is the store's (table ``push_budget``: one row per person pushed in the window or with a summary pending),
so N delivery nodes together never give a person more than ``budget_pushes`` per window: each batch is judged in one
transaction that takes the budget's lock (on PostgreSQL a transaction-level advisory lock, ``warnhub.push.budget``;
on SQLite the store's one writer), reads the batch's people, judges them in memory (:class:`PushBudget`, set-based:
one read and one write per batch, never a query per row) and writes them back with the new summary rows; after the
push service answered, a second such transaction moves the counted pushes to their answer time, sets the summaries'
due times and coalesces the queue of the people over the budget. A node that dies between the two leaves its pushes
counted at their judging time and its summaries due a window after it.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Self

from hub.deliver.outbox import stamp_ms
from hub.i18n.languages import SOURCE
from hub.ports import Channel, Delivery, Outcome, PushTarget
from hub.publish import canary, notify, testpush
from hub.store import dialect
from hub.store.db import AsyncStore, Store

log = logging.getLogger("warnhub.budget")

SUMMARY = "summary:"
SUMMARY_PRIORITY = 2
"""After Extreme warnings, with Immediate Severe ones (hub.publish.pipeline.priority)."""
SUMMARY_TTL_MS = 3_600_000
"""A summary the push service could not take within an hour after it was due is of no use any more."""


def is_summary(thread: str) -> bool:
    return thread.startswith(SUMMARY)


@dataclass(slots=True)
class _Person:
    sent: list[tuple[int, str, bool]] = field(default_factory=list)
    """(when, key, an Extreme) of the pushes counted in the window, oldest first."""
    summary: str | None = None
    """The key of the queued summary rows over the budget join."""
    held: int = 0
    """Rows coalesced into that summary."""


@dataclass(frozen=True, slots=True)
class Summary:
    key: str
    recipient: str
    host: str
    due_ms: int


@dataclass(frozen=True, slots=True)
class Judged:
    send: list[Delivery]
    coalesced: dict[int, str]
    """Row id -> the summary's key."""
    summaries: list[Summary]
    """New summary rows to queue (before the coalesced rows are recorded)."""


class PushBudget:
    def __init__(self, window_ms: int, pushes: int) -> None:
        self.window_ms = window_ms
        self.pushes = pushes
        self._people: dict[str, _Person] = {}
        self._sending: dict[str, int] = {}
        """Summary key -> rows it stands for, from its judging until the push service answered (its payload)."""
        self._swept_ms = 0
        self.forgotten_ms = 0
        """When this node last deleted the store's people with nothing left in the window."""

    def hold(self, counts: dict[str, int]) -> None:
        """More rows (per recipient) joined their summaries in bulk (:func:`coalesce_queued`)."""
        for recipient, n in counts.items():
            person = self._people.get(recipient)
            if person is not None and person.summary is not None:
                person.held += n

    def over(self, recipients: Collection[str]) -> dict[str, str]:
        """Of these people, those over the budget, with their summary's key."""
        return {r: p.summary for r in recipients if (p := self._people.get(r)) is not None and p.summary is not None}

    def held(self, summary_key: str, recipient: str) -> int:
        """Rows coalesced into a summary (for its payload)."""
        if summary_key in self._sending:
            return self._sending[summary_key]
        person = self._people.get(recipient)
        return person.held if person is not None and person.summary == summary_key else 0

    def judge(self, batch: Sequence[Delivery], now_ms: int, extreme: Collection[int] = ()) -> Judged:
        """Which rows of a push batch to send, which to coalesce (rows in order; the outbox claimed them by
        priority); ``extreme``: the publications among them whose severity is Extreme."""
        self._sweep(now_ms)
        send: list[Delivery] = []
        coalesced: dict[int, str] = {}
        summaries: list[Summary] = []
        for d in batch:
            if testpush.is_test(d.thread) or canary.is_canary(d.thread):  # neither is a warning to a person
                send.append(d)
                continue
            person = self._people.setdefault(d.recipient, _Person())
            person.sent = [s for s in person.sent if s[0] > now_ms - self.window_ms]
            if any(s[1] == d.key for s in person.sent):
                send.append(d)  # counted already: a retry, or sent again after a restart
            elif is_summary(d.thread):
                person.sent.append((now_ms, d.key, False))
                if person.summary == d.key:
                    self._sending[d.key] = person.held
                    person.summary, person.held = None, 0
                send.append(d)
            elif d.publication_id in extreme or (person.summary is None
                                                 and len(person.sent) < (limit := self._limit(person))):
                person.sent.append((now_ms, d.key, d.publication_id in extreme))
                send.append(d)
            else:
                if person.summary is None:  # a pending summary takes the next free slot: rows join it meanwhile
                    due = person.sent[len(person.sent) - limit][0] + self.window_ms
                    person.summary = f"{SUMMARY}{d.recipient}/{due}"
                    summaries.append(Summary(person.summary, d.recipient, d.host, due))
                person.held += 1
                coalesced[d.id] = person.summary
        return Judged(send, coalesced, summaries)

    def completed(self, rows: Sequence[Delivery], at_ms: int) -> None:
        """The push service has answered for these rows: their pushes count from now (the receiver has them
        by now; a summary due a window later can never land within one window of them)."""
        for d in rows:
            self._sending.pop(d.key, None)
            person = self._people.get(d.recipient)
            if person is not None:
                person.sent = sorted((at_ms if k == d.key else t, k, x) for t, k, x in person.sent)

    def due(self, recipient: str, now_ms: int) -> int:
        """When the window allows the next push below Extreme (a summary) for this person."""
        person = self._people.get(recipient)
        if person is None:
            return now_ms
        limit = self._limit(person)
        return now_ms if len(person.sent) < limit else person.sent[len(person.sent) - limit][0] + self.window_ms

    def _limit(self, person: _Person) -> int:
        """Pushes below Extreme allowed now: one slot is kept for an Extreme until one has come in the window."""
        return self.pushes if any(s[2] for s in person.sent) else max(1, self.pushes - 1)

    def _sweep(self, now_ms: int) -> None:
        """Forget people with nothing counted in the window and no summary (at most once per window)."""
        if now_ms - self._swept_ms < self.window_ms:
            return
        self._swept_ms = now_ms
        since = now_ms - self.window_ms
        for rid in [r for r, p in self._people.items() if p.summary is None and all(s[0] <= since for s in p.sent)]:
            del self._people[rid]

    def load(self, found: dict[str, _Person], recipients: Collection[str]) -> None:
        """These people as the store has them now (another node may have pushed to them since)."""
        for r in recipients:
            self._people[r] = found.get(r) or _Person()

    def rows(self, recipients: Collection[str], now_ms: int) -> list[list[object]]:
        """These people for the store: [recipient, sent (JSON), summary, held, until when they matter]."""
        out: list[list[object]] = []
        for r in sorted(recipients):
            p = self._people.get(r)
            if p is not None:
                until = max((s[0] for s in p.sent), default=now_ms - self.window_ms) + self.window_ms
                out.append([r, json.dumps(p.sent, separators=(",", ":")), p.summary, p.held, until])
        return out


def counts(d: Delivery) -> bool:
    """Whether a row is a push to a person the budget counts (test pushes and canaries are not)."""
    return not (testpush.is_test(d.thread) or canary.is_canary(d.thread))


BUDGET_LOCK = "SELECT pg_advisory_xact_lock(hashtext('warnhub.push.budget'))"
"""PostgreSQL: the budget's lock; every delivery node judges and settles its batches under it, one at a time."""
_LOAD = "SELECT recipient, sent, summary, held FROM push_budget WHERE recipient IN (SELECT value FROM json_each(?))"
_SAVE = ("INSERT INTO push_budget (recipient, sent, summary, held, until_ms) SELECT json_extract(value, '$[0]'),"
         " json_extract(value, '$[1]'), json_extract(value, '$[2]'), CAST(json_extract(value, '$[3]') AS BIGINT),"
         " CAST(json_extract(value, '$[4]') AS BIGINT) FROM json_each(?) WHERE true ON CONFLICT (recipient) DO UPDATE"
         " SET sent=excluded.sent, summary=excluded.summary, held=excluded.held, until_ms=excluded.until_ms")
_DUE = ("UPDATE outbox SET next_at_ms=r.due, not_after_ms=r.due + ?2 FROM (SELECT json_extract(value, '$[0]') AS k,"
        " CAST(json_extract(value, '$[1]') AS BIGINT) AS due FROM json_each(?1)) AS r"
        " WHERE outbox.key=r.k AND outbox.state='queued'")
_FORGET = "DELETE FROM push_budget WHERE summary IS NULL AND until_ms<=?"


@contextmanager
def _locked(store: Store) -> Iterator[sqlite3.Connection]:
    """A transaction under the budget's lock: beside the outbox claims of other nodes, after their judging."""
    with store.transaction(parallel=True) as conn:
        if dialect.of(conn) == dialect.POSTGRESQL:
            conn.execute(BUDGET_LOCK)
        yield conn


def _load(conn: sqlite3.Connection, budget: PushBudget, recipients: Collection[str]) -> None:
    found = {r: _Person([(int(t), str(k), bool(x)) for t, k, x in json.loads(sent)], summary, int(held))
             for r, sent, summary, held in conn.execute(_LOAD, (json.dumps(sorted(recipients)),))}
    budget.load(found, recipients)


def judge_shared(store: Store, budget: PushBudget, batch: Sequence[Delivery], now_ms: int,
                 extreme: Collection[int] = ()) -> Judged:
    """:meth:`PushBudget.judge` on the store's count (see the module's docstring): the people of the batch read,
    judged, written back with the new summary rows (due when the window allows), in one transaction."""
    recipients = {d.recipient for d in batch if counts(d)}
    with _locked(store) as conn:
        if now_ms - budget.forgotten_ms >= budget.window_ms:  # people with nothing in the window: once a window
            budget.forgotten_ms = now_ms
            conn.execute(_FORGET, (now_ms,))
        _load(conn, budget, recipients)
        judged = budget.judge(batch, now_ms, extreme)
        if judged.summaries:
            queue_summaries_in(conn, judged.summaries, now_ms)
        if recipients:
            conn.execute(_SAVE, (json.dumps(budget.rows(recipients, now_ms)),))
    return judged


def settle_shared(store: Store, budget: PushBudget, batch: Sequence[Delivery], judged: Judged, done_ms: int) -> None:
    """After the push service answered: the pushes count from now, the new summaries are due a window after them,
    and the queued warnings of the people over the budget join their summaries (:func:`coalesce_queued`)."""
    over_of = {d.recipient for d in batch if d.id in judged.coalesced}
    recipients = {d.recipient for d in judged.send if counts(d)} | over_of
    if not recipients:
        return
    with _locked(store) as conn:
        _load(conn, budget, recipients)
        budget.completed(judged.send, done_ms)
        if judged.summaries:
            due = [[s.key, max(s.due_ms, budget.due(s.recipient, done_ms))] for s in judged.summaries]
            conn.execute(_DUE, (json.dumps(due), SUMMARY_TTL_MS))
        over = budget.over(over_of)
        if over:
            budget.hold(_coalesce_in(conn, over, done_ms))
        conn.execute(_SAVE, (json.dumps(budget.rows(recipients, done_ms)),))


def summary_payload(key: str, n: int, languages: Sequence[str], base_url: str = "") -> bytes:
    """The summary push's JSON (marked ``summary``): how many warnings it stands for, in the subscription's
    language, opening the start page (the list of warnings in force)."""
    lang = notify.reader_language(languages)
    title = notify.texts(lang).gettext(notify.SUMMARY) % {"n": n}
    doc = {"key": key, "summary": True, "thread": key, "version": 0, "status": "Actual", "count": n, "lang": lang,
           "title": title, "url": f"{base_url}/" + (f"?lang={lang}" if lang != SOURCE.code else "")}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def summary_target(d: Delivery, n: int, endpoint: str, p256dh: str, auth: str, languages: Sequence[str],
                   base_url: str = "") -> PushTarget:
    """The push of a summary row (for the push channel's resolver, :mod:`hub.deliver.setup`)."""
    return PushTarget(endpoint, p256dh, auth, summary_payload(d.key, n, languages, base_url), SUMMARY_TTL_MS // 1000,
                      "normal", None)


def extremes(store: Store, publication_ids: Sequence[int]) -> set[int]:
    """Which of these publications are Extreme (the budget never holds them back)."""
    return {r[0] for r in store.conn.execute(
        "SELECT id FROM publications WHERE severity='Extreme'"
        " AND id IN (SELECT CAST(value AS BIGINT) FROM json_each(?))",
        (json.dumps(list(publication_ids)),))}


_QUEUED_OF = (
    # driven from the people (x the day's publications' threads) through outbox_version: never a scan of the queue
    "WITH m AS MATERIALIZED (SELECT json_extract(value, '$[0]') AS rcpt, json_extract(value, '$[1]') AS skey,"
    " t.thread AS th FROM json_each(?1),"
    " (SELECT DISTINCT thread FROM publications WHERE created_ms > ?2) t)"
    " SELECT o.id, m.skey, o.recipient FROM m CROSS JOIN outbox o INDEXED BY outbox_version"
    " WHERE o.thread=m.th AND o.channel='push' AND o.recipient=m.rcpt AND o.state='queued'"
    " AND NOT EXISTS (SELECT 1 FROM publications p WHERE p.id=o.publication_id AND p.severity='Extreme')")
_COALESCE = ("UPDATE outbox SET state='coalesced', finished_ms=?2, last_error=r.skey, lease_until_ms=NULL FROM"
             " (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS skey FROM json_each(?1)) r"
             " WHERE outbox.id=CAST(r.id AS BIGINT) AND outbox.state='queued'")
LOOKBACK_MS = 86_400_000
"""Queued rows of publications of the last day join a summary at once; older ones when they are claimed."""


def coalesce_queued(store: Store, summaries: dict[str, str], now_ms: int) -> dict[str, int]:
    """The queued warning pushes (below Extreme) of people over the budget join their summaries at once, rather
    than one claim and one answer each: in a storm most of the queue is theirs. Returns rows per recipient."""
    with store.transaction() as conn:
        return _coalesce_in(conn, summaries, now_ms)


def _coalesce_in(conn: sqlite3.Connection, summaries: dict[str, str], now_ms: int) -> dict[str, int]:
    per: dict[str, int] = {}
    found = conn.execute(_QUEUED_OF, (json.dumps(list(summaries.items())), now_ms - LOOKBACK_MS)).fetchall()
    if found:
        conn.execute(_COALESCE, (json.dumps([[i, k] for i, k, _ in found]), now_ms))
    for _, _, recipient in found:
        per[recipient] = per.get(recipient, 0) + 1
    return per


def queue_summaries(store: Store, rows: Sequence[Summary], now_ms: int) -> None:
    """Queue summary rows, each due at its time (publication 0: no publication has it)."""
    with store.transaction() as conn:
        queue_summaries_in(conn, rows, now_ms)


def queue_summaries_in(conn: sqlite3.Connection, rows: Sequence[Summary], now_ms: int) -> None:
    """:func:`queue_summaries` inside the caller's transaction."""
    conn.executemany(
        "INSERT OR IGNORE INTO outbox (key, publication_id, thread, channel, recipient, host, priority,"
        " not_after_ms, next_at_ms, created_ms) VALUES (?, 0, ?, 'push', ?, ?, ?, ?, ?, ?)",
        [(s.key, s.key, s.recipient, s.host, SUMMARY_PRIORITY, s.due_ms + SUMMARY_TTL_MS,
          s.due_ms, now_ms) for s in rows])


class BudgetedChannel:
    """The push channel behind the budget: rows within it are sent by ``inner``, the others answered
    ``coalesced`` after their summary is queued."""

    def __init__(self, inner: Channel, astore: AsyncStore, budget: PushBudget, *,
                 clock: Callable[[], int] | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.astore = astore
        self.budget = budget
        self.clock = clock or (lambda: stamp_ms(None))

    async def __aenter__(self) -> Self:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.inner.__aexit__(*exc)

    async def deliver(self, batch: Sequence[Delivery]) -> Sequence[Outcome]:
        now = self.clock()
        pubs = sorted({d.publication_id for d in batch if d.publication_id})
        extreme = await self.astore.run_bulk(extremes, self.astore.store, pubs) if pubs else set()
        judged = await self.astore.run_bulk(judge_shared, self.astore.store, self.budget, batch, now, extreme)
        sent: Awaitable[Sequence[Outcome]] | None = self.inner.deliver(judged.send) if judged.send else None
        outcomes = dict(zip((d.id for d in judged.send), await sent if sent is not None else [], strict=True))
        # counted from their answer time: a summary due a window later never lands within one window of them
        await self.astore.run_bulk(settle_shared, self.astore.store, self.budget, batch, judged, self.clock())
        return [outcomes[d.id] if d.id in outcomes else Outcome.coalesced(judged.coalesced[d.id]) for d in batch]
