"""Health of each source: up, degraded or down, the last error and the last good fetch.

"Source unreachable" must never look like "no warnings": a source that fails is ``down`` (and says since when
and why), one that works only in part (a feed whose index loads but some linked documents fail, a sensor gone
stale) is ``degraded``. Every change of state is logged once (not every failed poll) and, through ``on_change``,
persisted so ``warnhub sources`` can show it from another process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from hub.decide import decisions
from hub.deliver import outbox

if TYPE_CHECKING:
    from hub.metrics import Metrics
    from hub.store.db import AsyncStore, Store

log = logging.getLogger("warnhub.health")

STATES = ("starting", "up", "degraded", "down")
STATE_VALUE = {"starting": 0.5, "up": 1.0, "degraded": 0.5, "down": 0.0}
"""The ``warnhub_source_up`` gauge: 1 up, 0.5 degraded or starting, 0 down."""


@dataclass(slots=True)
class SourceHealth:
    name: str
    kind: str = ""
    state: str = "starting"
    """``starting``, ``up``, ``degraded`` or ``down``."""
    last_error: str = ""
    last_ok: datetime | None = None
    """The last fetch that worked completely (or, for MQTT, the last reading)."""
    since: datetime | None = None
    """When the current state began."""
    failures: int = 0
    """Failed polls in a row."""
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "state": self.state, "last_error": self.last_error,
                "last_ok": self.last_ok.isoformat(timespec="seconds") if self.last_ok else None,
                "since": self.since.isoformat(timespec="seconds") if self.since else None,
                "failures": self.failures, **({"detail": self.detail} if self.detail else {})}


class Health:
    def __init__(self, on_change: Callable[[SourceHealth], None] | None = None) -> None:
        self.sources: dict[str, SourceHealth] = {}
        self.on_change = on_change
        """Called with the source's health after every change of state or of last_ok (the daemon persists it)."""

    def register(self, name: str, kind: str = "") -> None:
        h = self.sources.setdefault(name, SourceHealth(name, kind, since=datetime.now(UTC)))
        h.kind = kind or h.kind
        self._changed(h)

    def _get(self, name: str) -> SourceHealth:
        return self.sources.setdefault(name, SourceHealth(name, since=datetime.now(UTC)))

    def _changed(self, h: SourceHealth) -> None:
        if self.on_change is not None:
            try:
                self.on_change(h)
            except Exception:  # noqa: BLE001 - recording health must never break a source
                log.exception("could not record health of %s", h.name)

    def up(self, name: str, *, detail: dict[str, Any] | None = None) -> None:
        """A complete, successful fetch (or a live connection delivering)."""
        h = self._get(name)
        now = datetime.now(UTC)
        if h.state != "up":
            if h.state in ("down", "degraded"):
                log.info("source recovered (was %s: %s)", h.state, h.last_error, extra={"source": name})
            h.state, h.since = "up", now
        h.last_ok, h.failures = now, 0
        if detail is not None:
            h.detail = detail
        self._changed(h)

    def degraded(self, name: str, err: object, *, detail: dict[str, Any] | None = None) -> None:
        """Works, but not completely: what was fetched is used, what failed is named."""
        h = self._get(name)
        h.last_error = _one_line(err)
        if detail is not None:
            h.detail = detail
        if h.state != "degraded":
            log.warning("source degraded: %s", h.last_error, extra={"source": name})
            h.state, h.since = "degraded", datetime.now(UTC)
        self._changed(h)

    def down(self, name: str, err: object) -> None:
        """Nothing usable came: the source is unreachable or broken. Never read as "no warnings"."""
        h = self._get(name)
        h.last_error = _one_line(err)
        h.failures += 1
        if h.state != "down":  # log the change of state, not every failure
            log.warning("source failing: %s", h.last_error, extra={"source": name})
            h.state, h.since = "down", datetime.now(UTC)
        self._changed(h)

    def state(self, name: str) -> str:
        return self.sources[name].state if name in self.sources else "unknown"

    @property
    def ok(self) -> bool:
        return all(h.state in ("up", "starting") for h in self.sources.values())

    def as_dict(self) -> dict[str, Any]:
        return {name: h.as_dict() for name, h in sorted(self.sources.items())}


class Recorder:
    """``Health.on_change`` of the daemon: keeps ``warnhub_source_up`` current and persists health for ``warnhub
    sources`` (state changes at once, the time of the last good fetch at most every 30 s)."""

    def __init__(self, store: AsyncStore, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics
        self._saved: dict[str, tuple[tuple[str, str], float]] = {}
        self._tasks: set[asyncio.Future[None]] = set()
        self._unsaved: str | None = None
        self.node = ""
        """Many nodes: this node's name, recorded as the one polling the source (``warnhub sources``)."""

    def __call__(self, h: SourceHealth) -> None:
        self.metrics.source_up.labels(h.name).set(STATE_VALUE.get(h.state, 0.0))
        if h.last_ok is not None:
            self.metrics.source_last_ok.labels(h.name).set(h.last_ok.timestamp())
        now = time.monotonic()
        mark = (h.state, h.last_error)
        last = self._saved.get(h.name)
        if last is not None and last[0] == mark and now - last[1] < 30:
            return
        self._saved[h.name] = (mark, now)
        d = h.as_dict()
        fut = self.store.run_bulk(self.store.store.record_health, h.name, h.kind, h.state, last_error=h.last_error,
                             last_ok=d["last_ok"], since=d["since"], failures=h.failures, detail=h.detail,
                             node=self.node)
        task = asyncio.ensure_future(fut)
        self._tasks.add(task)
        task.add_done_callback(self._saved_or_not)

    def _saved_or_not(self, task: asyncio.Future[None]) -> None:
        """A health record the store could not take (a full disk) is logged once per reason, not left as "Task
        exception was never retrieved"; the source's state in memory (and /healthz) is current regardless."""
        self._tasks.discard(task)
        err = None if task.cancelled() else task.exception()
        if err is not None and str(err) != self._unsaved:
            log.warning("source health not saved: %s", err)
        self._unsaved = None if err is None else str(err)

    async def drain(self) -> None:
        """Let pending health records reach the store before it closes."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


FAILED_DELIVERY_WINDOW = timedelta(hours=24)
"""A delivery that failed for good keeps /healthz ``degraded`` this long."""
FAULT_STAGES = ("rules", "publish", "delivery")


def pipeline_faults(store: Store, *, now: datetime | None = None) -> dict[str, Any]:
    """What failed in the pipeline and is not resolved (store read): per stage the count, and the newest failed
    items (each with the same keys) with their reasons. Any of them makes /healthz ``degraded``."""
    now = now or datetime.now(UTC)
    counts = dict.fromkeys(FAULT_STAGES, 0) | decisions.failure_counts(store, now=now)
    since_ms = int((now - FAILED_DELIVERY_WINDOW).timestamp() * 1000)
    failed_rows = outbox.failed_since(store, since_ms)
    counts["delivery"] = len(failed_rows)
    items = [{"stage": f.decision.failed_stage, "alert_id": f.decision.alert_id, "thread_id": f.decision.thread_id,
              "identifier": f.identifier, "channel": "", "recipient": "", "reason": f.decision.failure,
              "attempts": f.decision.attempts, "retry_at": f.decision.retry_at}
             for f in decisions.failures(store, now=now, limit=10)]
    items += [{"stage": "delivery", "alert_id": None, "thread_id": None, "identifier": row["key"],
               "channel": row["channel"], "recipient": row["recipient"], "reason": row["reason"],
               "attempts": row["attempts"], "retry_at": None} for row in failed_rows[:10]]
    return {"failed": counts, "items": items}


def _one_line(err: object) -> str:
    text = " ".join(str(err).split())
    if isinstance(err, BaseException) and not text:
        text = type(err).__name__
    return (text or "error")[:500]
