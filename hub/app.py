"""The daemon: lifecycle of store, web server, scheduler and sources (GUIDE.md section 6).

SIGTERM/SIGINT stop it gracefully (sources stop taking new documents, what is in hand finishes, the store closes
last). SIGHUP re-reads the config: if it is valid, what can change while running (trust store, limits, log level)
takes effect at once; what cannot (sources, web, store) is logged as needing a restart; an invalid file is refused
and the running config stays in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import signal
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from hub import log as log_mod
from hub import registry
from hub.access import auth
from hub.cap.model import Alert
from hub.cap.serialize import to_xml
from hub.cap.sign import SignaturePolicy, TrustStore
from hub.cap.validate import Validator
from hub.config import load as config_mod
from hub.config.load import LoadedConfig
from hub.config.sections import MqttSourceConfig
from hub.decide.router import Router, open_rules
from hub.deliver.setup import open_outbox, push_public_key
from hub.errors import ConfigError
from hub.health import STATE_VALUE, Health, SourceHealth
from hub.intake.documents import Intake, IntakeResult, check_document
from hub.intake.pool import ValidationPool, default_workers
from hub.intake.sensors import SensorIntake
from hub.metrics import Metrics
from hub.ports import Source, SourceContext
from hub.publish.index import SubscriptionIndex
from hub.publish.pipeline import Pipeline
from hub.store import retention
from hub.store.db import AsyncStore, Store
from hub.web import fdlimit
from hub.web.app import WebServer
from hub.web.live import Broadcaster

log = logging.getLogger("warnhub.daemon")

RESTART_BACKOFF_S = (1, 2, 5, 10, 30)
RULES_POLL_S = 2.0
"""How often the rules folder is checked for edits (a stat of each file)."""
SENSOR_TICK_S = 15.0
"""How often silent sensors are checked against staleness rules."""
BOARD_EXPIRY_S = 10.0
"""How often boards that show a just-expired warning are updated (clear or the next warning)."""
SESSION_PURGE_S = 300.0
"""How often ended console sessions and old login failures are deleted."""
RETENTION_FIRST_S = 60.0
"""The first retention run, this long after start (not in the way of a restart's backlog)."""


def open_store(loaded: LoadedConfig) -> Store:
    s = loaded.cfg.store
    age = timedelta(hours=s.max_age_without_expires_h) if s.max_age_without_expires_h > 0 else None
    return Store(loaded.db_path, synchronous=s.synchronous, max_age_without_expires=age)


def make_validator(loaded: LoadedConfig) -> Validator:
    v = loaded.cfg.validation
    trust = TrustStore.from_dir(loaded.path(v.trust_store) if v.trust_store else None)
    return Validator(trust=trust, max_bytes=v.max_bytes, allow_sha1=v.allow_sha1)


class Hub:
    """What the running parts share: config, store (one writer thread), intake, health, metrics."""

    def __init__(self, loaded: LoadedConfig, store: AsyncStore, validator: Validator) -> None:
        self.loaded = loaded
        self.store = store
        self.intake = Intake(validator, store.store)
        self.pool = make_pool(loaded, validator)
        self.metrics = Metrics()
        self._health_saved: dict[str, tuple[tuple[str, str], float]] = {}
        self._tasks: set[asyncio.Future[None]] = set()
        self.health = Health(on_change=self.health_changed)
        self.web_port: int | None = None
        self.started = False
        """True once every part runs (until then /healthz answers 503 ``starting``)."""
        self.router: Router | None = None
        """The rules stage (set by :func:`run`; absent in kits that test intake alone)."""
        self.index: SubscriptionIndex | None = None
        """Push subscriptions by place, shared by the subscription API and the pipeline."""
        self.broadcaster: Any = None
        """Live web stream of publications (hub.web.live.Broadcaster)."""
        self.outbox: Any = None
        self.geo: Any = None
        """The geography with the operators' boundaries."""
        self.vapid_public_key: str | None = None
        self.pipeline: Any = None
        """Publishes decisions (hub.pipeline.Pipeline); the console wakes it after sending."""

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
        if (result.outcome == "new" or result.replaced) and self.router is not None:
            self.router.wake()
        return result

    async def ingest_alert(self, alert: Alert, *, origin: str, notes: Sequence[str] = (),
                           path: str | None = None) -> IntakeResult:
        """Store an alert an adapter made from another format (NINA JSON): written as CAP 1.2 and validated like
        any document, so the store holds CAP and the adapter's flags (``notes``) stay with the version."""
        raw = await asyncio.to_thread(to_xml, alert)  # a merged DWD alert has ~800 areas: not on the event loop
        return await self.ingest(raw, origin=origin, policy=SignaturePolicy.IGNORE, path=path, notes=tuple(notes),
                                 relay=True)

    async def snapshot(self, origin: str, listed: Iterable[tuple[str, str]], *, misses_to_end: int) -> list[int]:
        ended = await self.store.run(self.store.store.snapshot, origin, list(listed), misses_to_end=misses_to_end)
        if ended:
            log.info("%d thread(s) ended: no longer listed by %s in %d complete fetches: %s", len(ended), origin,
                     misses_to_end, ended[:20], extra={"source": origin})
        return ended

    async def known(self, sender: str, identifier: str) -> bool:
        return await self.store.run(self.store.store.known, sender, identifier)

    def health_changed(self, h: SourceHealth) -> None:
        """Keep ``warnhub_source_up`` current and persist health for ``warnhub sources`` (state changes at once,
        the time of the last good fetch at most every 30 s)."""
        self.metrics.source_up.labels(h.name).set(STATE_VALUE.get(h.state, 0.0))
        if h.last_ok is not None:
            self.metrics.source_last_ok.labels(h.name).set(h.last_ok.timestamp())
        now = time.monotonic()
        mark = (h.state, h.last_error)
        last = self._health_saved.get(h.name)
        if last is not None and last[0] == mark and now - last[1] < 30:
            return
        self._health_saved[h.name] = (mark, now)
        d = h.as_dict()
        fut = self.store.run(self.store.store.record_health, h.name, h.kind, h.state, last_error=h.last_error,
                             last_ok=d["last_ok"], since=d["since"], failures=h.failures, detail=h.detail)
        task = asyncio.ensure_future(fut)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Let pending health records reach the store before it closes."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def retain(self) -> dict[str, int]:
        """One retention run (``[retention]`` as currently loaded; see hub.retention)."""
        cfg = self.loaded.cfg
        plan = retention.Plan(cfg.retention, frozenset(s.name for s in cfg.sources),
                              frozenset(s.name for s in cfg.sources if isinstance(s, MqttSourceConfig)),
                              self.loaded.path(cfg.retention.audit_dir))
        return await retention.run(self.store, plan, actor=getpass.getuser())

    async def sweep(self) -> None:
        ended = await self.store.run(self.store.store.sweep_expired)
        if ended:
            self.metrics.expired.inc(len(ended))
            log.info("expired %d thread(s): %s", len(ended), ended[:20])

    def reload(self, file: Path) -> None:
        try:
            new = config_mod.load(file)
            validator = make_validator(new)
        except ConfigError as err:
            log.error("reload refused, running config stays in force: %s", err)
            return
        old = self.loaded.cfg
        fixed = [name for name in ("hub", "store", "web", "sources")
                 if name != "hub" and getattr(old, name) != getattr(new.cfg, name)]
        if (old.hub.db, old.hub.district_ars) != (new.cfg.hub.db, new.cfg.hub.district_ars):
            fixed.insert(0, "hub")
        self.intake.validator = validator
        old_pool, self.pool = self.pool, make_pool(new, validator)
        if old_pool is not None:
            old_pool.executor.shutdown(wait=False)  # documents in hand finish; new ones go to the new pool
        logging.getLogger().setLevel(new.cfg.hub.log_level)
        self.loaded = LoadedConfig(old, self.loaded.file) if fixed else new
        if fixed:
            log.warning("reloaded validation and log level; changes to [%s] take effect after a restart",
                        ", ".join(fixed))
        else:
            log.info("config reloaded")
        self.store.store.audit(getpass.getuser(), "config.reload", str(file), {"needs_restart": fixed})


def make_pool(loaded: LoadedConfig, validator: Validator) -> ValidationPool | None:
    workers = loaded.cfg.validation.workers or default_workers()
    return ValidationPool(validator, workers) if workers > 1 else None


def build_sources(loaded: LoadedConfig) -> list[Source]:
    factories = registry.sources()
    return [factories[source_type(s)](s, loaded, max_bytes=loaded.cfg.validation.max_bytes) for s in loaded.cfg.sources]


def source_type(settings: object) -> str:
    """The config ``type`` tag of a source's settings struct."""
    return str(type(settings).__struct_config__.tag)  # type: ignore[attr-defined]


async def supervise(source: Source, ctx: SourceContext) -> None:
    """Run a source forever; a crash is logged, marks it down, and restarts it with backoff."""
    failures = 0
    while True:
        started = time.monotonic()
        try:
            await source.run(ctx)
            return
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - a broken source must never take the hub down
            if time.monotonic() - started > 60:
                failures = 0
            delay = RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S) - 1)]
            failures += 1
            ctx.health.down(source.name, f"crashed: {err!r}")
            log.exception("source crashed; restarting in %ss", delay, extra={"source": source.name})
            await asyncio.sleep(delay)


async def run(loaded: LoadedConfig, *, ready: asyncio.Event | None = None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    fdlimit.setup(loaded.cfg.web.fd_reserve)  # raise the open-file limit, keep descriptors for intake and the store
    # Refuse to start on unusable boundaries or rules (ConfigError with file, line and field), before anything opens.
    geo = await asyncio.to_thread(loaded.geography)
    live = await asyncio.to_thread(open_rules, loaded.rules_dir, sensors=[s.id for s in loaded.sensors], geo=geo)
    store = open_store(loaded)
    astore = AsyncStore(store)
    hub = Hub(loaded, astore, make_validator(loaded))
    actor = getpass.getuser()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    router = Router(astore, live, district=loaded.cfg.hub.district_ars, metrics=hub.metrics,
                    units={s.id: s.unit for s in loaded.sensors})
    hub.router = router
    hub.index = SubscriptionIndex(geo=geo)
    hub.vapid_public_key = push_public_key(loaded)  # before the web server: browsers ask for the key at once
    hub.geo = geo
    hub.broadcaster = Broadcaster(reg=geo.registry)

    def sighup() -> None:
        loop.create_task(astore.run(hub.reload, loaded.file))
        loop.create_task(router.reload())

    loop.add_signal_handler(signal.SIGHUP, sighup)
    try:
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(astore.close)
            stack.callback(lambda: hub.pool.close() if hub.pool is not None else None)
            stack.push_async_callback(hub.drain)
            await astore.run(store.audit, actor, "hub.start", str(loaded.file), {"db": str(loaded.db_path)})
            web = await stack.enter_async_context(WebServer(hub, loaded.cfg.web.host, loaded.cfg.web.port))
            hub.web_port = web.port
            scheduler = AsyncIOScheduler(timezone="UTC")
            scheduler.add_job(hub.sweep, "interval", seconds=loaded.cfg.store.sweep_interval_s, id="expiry-sweep",
                              max_instances=1, coalesce=True)
            scheduler.add_job(router.poll_files, "interval", seconds=RULES_POLL_S, id="rules-files",
                              max_instances=1, coalesce=True)
            scheduler.add_job(router.tick, "interval", seconds=SENSOR_TICK_S, id="sensor-tick", max_instances=1,
                              coalesce=True)
            scheduler.start()
            stack.callback(scheduler.shutdown, wait=False)
            await hub.sweep()
            primed = await router.prime()
            if primed:
                log.info("sensor rules primed with %d recent reading(s)", primed)
            tasks = [asyncio.create_task(router.run(), name="router")]
            http = await stack.enter_async_context(aiohttp.ClientSession())
            box = await open_outbox(stack, astore=astore, loaded=loaded, http=http, index=hub.index,
                                    metrics=hub.metrics)
            hub.outbox = box
            if hub.pool is not None:
                await hub.pool.warm()  # the first warning after start must not wait for workers to start
            await asyncio.to_thread(hub.index.warm)
            # the district's and its neighbours' Gemeinde boundaries: read now, not when the first warning arrives
            await asyncio.to_thread(geo.local_units, loaded.cfg.hub.district_ars)
            pipeline = Pipeline(astore, loaded, live, index=hub.index, outbox_=box, broadcaster=hub.broadcaster,
                                metrics=hub.metrics)
            hub.pipeline = pipeline
            router.listeners.append(pipeline.on_decision)
            tasks.append(asyncio.create_task(pipeline.run(), name="pipeline"))
            scheduler.add_job(pipeline.expire_boards, "interval", seconds=BOARD_EXPIRY_S, id="board-expiry",
                              max_instances=1, coalesce=True)
            console_cfg = loaded.cfg.console
            scheduler.add_job(retention.purge_sessions, "interval", args=(astore,), kwargs={
                "idle": timedelta(minutes=console_cfg.idle_timeout_min),
                "max_age": timedelta(hours=console_cfg.max_session_h), "throttle": auth.throttle_of(console_cfg)},
                seconds=SESSION_PURGE_S, id="session-purge", max_instances=1, coalesce=True)
            scheduler.add_job(hub.retain, "interval", hours=loaded.cfg.retention.interval_h, id="retention",
                              max_instances=1, coalesce=True,
                              next_run_time=datetime.now(UTC) + timedelta(
                                  seconds=min(RETENTION_FIRST_S, loaded.cfg.retention.interval_h * 3600)))
            sources = build_sources(loaded)
            for source, settings in zip(sources, loaded.cfg.sources, strict=True):
                hub.health.register(source.name, source_type(settings))
                ctx = SourceContext(ingest=hub.ingest, health=hub.health,
                                    log=logging.getLogger(f"warnhub.source.{source.name}"),
                                    ingest_alert=hub.ingest_alert, snapshot=hub.snapshot, known=hub.known,
                                    http=http, readings=SensorIntake(astore), metrics=hub.metrics,
                                    on_readings=router.feed)
                tasks.append(asyncio.create_task(supervise(source, ctx), name=f"source:{source.name}"))
            log.info("warnhub running: %s (%s), %d source(s)", loaded.cfg.hub.name, loaded.cfg.hub.district_ars,
                     len(sources))
            hub.started = True
            if ready is not None:
                ready.set()
            await stop.wait()
            log.info("stopping")
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await astore.run(store.audit, actor, "hub.stop", str(loaded.file))
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    log.info("stopped")


def main(loaded: LoadedConfig) -> int:
    log_mod.setup(loaded.cfg.hub.log_level)
    asyncio.run(run(loaded))
    return 0
