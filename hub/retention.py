"""Retention: what the store deletes on schedule (``[retention]``), so it stops growing without bound.

Each step deletes in small transactions (the one writer stays free for intake and sending between them) and
logs what it removed. Nothing still needed goes:

- **outbox** (the publications' delivery rows): finished rows of incidents that ended (their newest publication a
  Cancel, past its expiry, or, stating no end, its source incident ended) ``outbox_days`` ago. Never a queued or
  in-flight row, never a row of a current incident (a later Cancel or all-clear goes to whoever has a done row).
- **rejections**: records of refused documents older than ``rejections_days``; so are the set-aside copies of CAP
  identity conflicts (hub.store.conflicts), kept that long as evidence.
- **raw documents**: the bytes as received, of incidents ended ``raw_days`` ago. Every version stays, with its
  parsed alert, verdict and identity (so a source that lists it again finds a duplicate).
- **readings** of sensors that no configured mqtt source owns (each mqtt source prunes its own).
- **canaries**: the hub's own canary alerts (hub.publish.canary: origin ``canary``, one per round) a day after
  their round ended, with their decisions and threads; their outbox rows go when a later round is queued.
- **presence** rows of list sources that are no longer configured: they would keep their warnings current forever.
- **audit**: archived as a verified segment with an anchor (hub.store.audit), only if ``audit_days`` is set.

Sessions and login throttling rows are purged by their own job (hub.access.auth.purge) every few minutes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hub.access import auth
from hub.config.sections import RetentionSection
from hub.deliver import outbox
from hub.errors import StoreError
from hub.intake import readings
from hub.publish import canary, publications
from hub.store import audit
from hub.store.clock import now_utc, utc_iso
from hub.store.db import AsyncStore, Store

log = logging.getLogger("warnhub.retention")

BATCH = 5000
"""Rows per transaction."""


def ended_threads(store: Store, before: datetime) -> list[str]:
    """The hub's incidents (publication threads) that ended before ``before``: the newest publication is a Cancel
    (ends with its delivery window) or has expired; one stating no end counts as ended when the incident it was
    made from has ended (cancelled, expired, no longer listed) and not changed since."""
    cut_ms, cut_iso = publications.ms(before), utc_iso(before)
    return [r[0] for r in store.conn.execute(
        "SELECT p.thread FROM publications p"
        " JOIN (SELECT thread, max(version) AS v FROM publications GROUP BY thread) n"
        "   ON n.thread = p.thread AND n.v = p.version"
        " LEFT JOIN threads t ON t.id = p.source_thread"
        " WHERE ((p.msg_type = 'Cancel' AND coalesce(p.expires_ms, p.created_ms) < ?1)"
        "    OR (p.msg_type != 'Cancel' AND p.expires_ms IS NOT NULL AND p.expires_ms < ?1)"
        "    OR (p.msg_type != 'Cancel' AND p.expires_ms IS NULL AND t.state NOT IN ('active', 'updated')"
        "        AND t.updated_at < ?2))"
        " AND EXISTS (SELECT 1 FROM outbox o WHERE o.thread = p.thread)", (cut_ms, cut_iso))]


def prune_rejections(store: Store, before: datetime, limit: int = BATCH) -> int:
    with store.transaction() as conn:
        return conn.execute("DELETE FROM rejections WHERE id IN (SELECT id FROM rejections WHERE received_at < ?"
                            " LIMIT ?)", (utc_iso(before), limit)).rowcount


def prune_conflicts(store: Store, before: datetime, limit: int = BATCH) -> int:
    """Set-aside copies of identity conflicts recorded before ``before`` (hub.store.conflicts)."""
    with store.transaction() as conn:
        return conn.execute("DELETE FROM conflicts WHERE id IN (SELECT id FROM conflicts WHERE received_at < ?"
                            " LIMIT ?)", (utc_iso(before), limit)).rowcount


def drop_raw(store: Store, before: datetime, limit: int = BATCH) -> int:
    """Forget the bytes as received of versions whose incident ended before ``before``; the rest stays."""
    with store.transaction() as conn:
        return conn.execute(
            "UPDATE alerts SET raw = NULL WHERE id IN (SELECT a.id FROM alerts a JOIN threads t ON t.id = a.thread_id"
            " WHERE a.raw IS NOT NULL AND t.state NOT IN ('active', 'updated') AND t.updated_at < ? LIMIT ?)",
            (utc_iso(before), limit)).rowcount


def prune_presence(store: Store, origins: Collection[str]) -> int:
    """Delete the list-presence rows of sources no longer configured."""
    with store.transaction() as conn:
        return conn.execute("DELETE FROM presence WHERE origin NOT IN (SELECT value FROM json_each(?))",
                            (_json_list(origins),)).rowcount


def orphan_sensors(store: Store, sources: Collection[str]) -> list[str]:
    """Sensors whose source is not among the configured mqtt ``sources``."""
    return [r[0] for r in store.conn.execute(
        "SELECT id FROM sensors WHERE source NOT IN (SELECT value FROM json_each(?)) ORDER BY id",
        (_json_list(sources),))]


def _json_list(items: Collection[str]) -> str:
    return json.dumps(sorted(items))


@dataclass(frozen=True, slots=True)
class Plan:
    """What one run may delete: the settings and what the config names."""

    settings: RetentionSection
    sources: frozenset[str]
    """Names of every configured source (list presence of others goes)."""
    mqtt_sources: frozenset[str]
    audit_dir: Path


async def _batches(astore: AsyncStore, fn: Callable[..., int], *args: Any) -> int:
    """Call ``fn(store, *args)`` on the writer until a batch comes back short; the total."""
    total = 0
    while True:
        got = await astore.run_bulk(fn, astore.store, *args)
        total += got
        if got < BATCH:
            return total


async def run(astore: AsyncStore, plan: Plan, *, now: datetime | None = None, actor: str = "retention"
              ) -> dict[str, int]:
    """One retention run; returns what each step removed (and logs each step that removed something)."""
    now = now or now_utc()
    s, store = plan.settings, astore.store
    done: dict[str, int] = {}

    def report(key: str, n: int, text: str, *args: Any) -> None:
        done[key] = n
        if n:
            log.info("retention: removed %d " + text, n, *args, extra={"retention": key, "removed": n})

    if s.outbox_days > 0:
        cut = now - timedelta(days=s.outbox_days)
        ended = await astore.run_bulk(ended_threads, store, cut)
        n = await _batches(astore, _prune_outbox, publications.ms(cut), ended) if ended else 0
        report("outbox", n, "finished delivery row(s) of incidents ended more than %g days ago", s.outbox_days)
    if s.rejections_days > 0:
        n = await _batches(astore, prune_rejections, now - timedelta(days=s.rejections_days))
        report("rejections", n, "rejection record(s) older than %g days", s.rejections_days)
        n = await _batches(astore, prune_conflicts, now - timedelta(days=s.rejections_days))
        report("conflicts", n, "set-aside conflicting copy(ies) older than %g days", s.rejections_days)
    if s.raw_days > 0:
        n = await _batches(astore, drop_raw, now - timedelta(days=s.raw_days))
        report("raw", n, "raw document(s) of incidents ended more than %g days ago", s.raw_days)
    if s.readings_days > 0:
        cutoff = publications.ms(now - timedelta(days=s.readings_days))
        n = 0
        for sensor in await astore.run_bulk(orphan_sensors, store, plan.mqtt_sources):
            n += await _batches(astore, readings.delete_older, sensor, cutoff, BATCH)
        report("readings", n, "reading(s) older than %g days of sensors no configured source owns", s.readings_days)
    n = await _batches(astore, canary.prune, now - canary.KEEP_ALERTS, BATCH)
    report("canaries", n, "canary alert(s) of rounds ended more than a day ago")
    n = await astore.run_bulk(prune_presence, store, plan.sources)
    report("presence", n, "list-presence row(s) of sources no longer configured")
    if s.audit_days > 0:
        await _archive_audit(astore, plan, now - timedelta(days=s.audit_days), now, actor, done)
    return done


async def _archive_audit(astore: AsyncStore, plan: Plan, before: datetime, now: datetime, actor: str,
                         done: dict[str, int]) -> None:
    out = plan.audit_dir / f"audit-before-{before.strftime('%Y%m%dT%H%M%SZ')}.jsonl"
    try:
        result = await astore.run_bulk(audit.archive, astore.store, before, out, actor=actor, now=now)
    except StoreError as err:
        log.error("retention: audit not archived: %s", err)
        return
    done["audit"] = result.entries
    if result.entries:
        log.info("retention: archived audit entries %d-%d (older than %g days) to %s, sha256 %s", result.first_seq,
                 result.last_seq, plan.settings.audit_days, out, result.sha256)
    for g in result.chains if len(result.chains) > 1 else ():  # each chain's segment has an anchor of its own
        log.info("retention: audit chain %s: entries %d-%d (%d) anchored", g.district or "hub", g.first_seq,
                 g.last_seq, g.entries)


async def purge_sessions(astore: AsyncStore, **settings: Any) -> int:
    """Ended console sessions and stale login-throttle rows (hub.access.auth.purge, same arguments); logs what went."""
    n = await astore.run_bulk(auth.purge, astore.store, **settings)
    if n:
        log.info("retention: removed %d ended console session(s)", n, extra={"retention": "sessions", "removed": n})
    return int(n)


def _prune_outbox(store: Store, older_than_ms: int, threads: list[str]) -> int:
    return outbox.prune(store, older_than_ms, limit=BATCH, threads=threads)
