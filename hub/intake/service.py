"""The running hub's way in: validate a document (in the validation pool), store it on the writer thread, and
publish :class:`~hub.events.AlertStored` once it is committed, so the router decides it at once.

Sources reach it through their :class:`~hub.ports.SourceContext` (``ingest``, ``ingest_alert``,
``snapshot``, ``known``). SIGHUP swaps the validator (trust store, limits) with :meth:`IntakeService.reconfigure`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence

from hub.cap.model import Alert
from hub.cap.serialize import to_xml
from hub.cap.sign import SignaturePolicy
from hub.cap.validate import Validator
from hub.events import AlertStored, Bus
from hub.intake.documents import Intake, IntakeResult, check_document
from hub.intake.pool import ValidationPool, default_workers
from hub.metrics import Metrics
from hub.store.db import AsyncStore

log = logging.getLogger("warnhub.intake")


def make_pool(validator: Validator, workers: int) -> ValidationPool | None:
    """Validation worker processes (``workers`` 0: as many as :func:`default_workers`); None for one worker."""
    workers = workers or default_workers()
    return ValidationPool(validator, workers) if workers > 1 else None


class IntakeService:
    def __init__(self, store: AsyncStore, validator: Validator, *, metrics: Metrics, events: Bus,
                 workers: int = 1) -> None:
        self.store = store
        self.intake = Intake(validator, store.store)
        self.pool = make_pool(validator, workers)
        self.metrics = metrics
        self.events = events

    @property
    def validator(self) -> Validator:
        """The validator in force (XSD loaded once; the console validates its own warnings with it)."""
        return self.intake.validator

    def reconfigure(self, validator: Validator, workers: int) -> None:
        """A reloaded config: documents in hand finish with the old validator, new ones use the new one."""
        self.intake.validator = validator
        old_pool, self.pool = self.pool, make_pool(validator, workers)
        if old_pool is not None:
            old_pool.executor.shutdown(wait=False)

    async def warm(self) -> None:
        """Start the worker processes now: the first warning after start must not wait for them."""
        if self.pool is not None:
            await self.pool.warm()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()

    async def ingest(self, raw: bytes, *, origin: str, policy: SignaturePolicy,
                     path: str | None = None, notes: tuple[str, ...] = (), durable: bool = False,
                     relay: bool = False) -> IntakeResult:
        """Validate and store one document on the writer thread; returns once it is committed (``durable``: and
        on disk, for a source that tells its sender afterwards, see ``Store.transaction``)."""
        started = time.perf_counter()
        if self.pool is not None:
            report, rec = await self.pool.check(raw, policy, path, notes)
        else:
            report, rec = await self.store.run(check_document, self.intake.validator, raw, policy, path, notes)
        result = await self.store.run(self.intake.record, report, rec, raw, origin=origin, durable=durable,
                                      relay=relay)
        self.metrics.ingest_seconds.observe(time.perf_counter() - started)
        self.metrics.documents.labels(origin, result.outcome).inc()
        if result.outcome == "conflict":
            self.metrics.identity_conflicts.labels(origin, "replaced" if result.replaced else "kept").inc()
        if (result.outcome == "new" or result.replaced) and result.alert_id is not None \
                and result.thread_id is not None:
            self.events.publish(AlertStored(result.alert_id, result.thread_id, origin))
        return result

    async def ingest_alert(self, alert: Alert, *, origin: str, notes: Sequence[str] = (),
                           path: str | None = None) -> IntakeResult:
        """Store an alert an adapter made from another format (NINA JSON): written as CAP 1.2 and validated like
        any document, so the store holds CAP and the adapter's flags (``notes``) stay with the version."""
        raw = await asyncio.to_thread(to_xml, alert)  # a merged DWD alert has ~800 areas: not on the event loop
        return await self.ingest(raw, origin=origin, policy=SignaturePolicy.IGNORE, path=path, notes=tuple(notes),
                                 relay=True)

    async def snapshot(self, origin: str, listed: Iterable[tuple[str, str]], *, misses_to_end: int) -> list[int]:
        """A source's complete list of what it still publishes: threads missing ``misses_to_end`` times end."""
        ended = await self.store.run(self.store.store.snapshot, origin, list(listed), misses_to_end=misses_to_end)
        if ended:
            log.info("%d thread(s) ended: no longer listed by %s in %d complete fetches: %s", len(ended), origin,
                     misses_to_end, ended[:20], extra={"source": origin})
        return ended

    async def known(self, sender: str, identifier: str) -> bool:
        return await self.store.run(self.store.store.known, sender, identifier)
