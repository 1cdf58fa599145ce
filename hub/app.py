"""The composition root: builds the hub's services in one place and runs them (GUIDE.md section 6).

:func:`compose` builds every service once, typed and frozen (:class:`~hub.services.Services`), and wires who hears
which event (:mod:`hub.events`): intake -> ``AlertStored`` -> router -> ``Decided`` -> pipeline -> ``Queued`` ->
outbox workers, ``Published`` -> the live web stream. :func:`run` owns their lifetime with an ``AsyncExitStack``
(the store closes last) and an ``asyncio.TaskGroup``: the router, the pipeline and every source run under the
:class:`~hub.supervise.Supervisor`, which restarts a task that dies, with backoff, and shows it in /healthz.

SIGTERM/SIGINT stop it gracefully (sources stop taking new documents, what is in hand finishes, the store closes
last). SIGHUP re-reads the config: if it is valid, what can change while running (trust store, limits, log level)
takes effect at once; what cannot (sources, web, store) is logged as needing a restart; an invalid file is refused
and the running config stays in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import getpass
import logging
import signal
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from hub import cluster, registry, retention
from hub import log as log_mod
from hub.access import auth
from hub.cap.sign import TrustStore
from hub.cap.validate import Validator
from hub.cluster import Bridge, Holder, IndexFollower
from hub.config import load as config_mod
from hub.config.load import LoadedConfig
from hub.config.sections import MqttSourceConfig
from hub.decide.router import DistrictRules, Router, open_districts, sensor_districts
from hub.deliver.setup import open_outbox, push_public_key
from hub.errors import ConfigError, StoreFull
from hub.events import AlertStored, Bus, Decided, Queued
from hub.geo.geography import Geography
from hub.health import Health, Recorder
from hub.history import History
from hub.intake.sensors import SensorIntake
from hub.intake.service import IntakeService
from hub.metrics import Metrics
from hub.ports import Source, SourceContext
from hub.publish.canary_watch import CanaryWatch, listen
from hub.publish.index import SubscriptionIndex, load_index
from hub.publish.pipeline import Pipeline
from hub.publish.publications import Published
from hub.services import ConfigRef, Services
from hub.store.connection import store_full, write_failure
from hub.store.db import AsyncStore, Store
from hub.supervise import Supervisor
from hub.web import fdlimit
from hub.web.app import WebServer
from hub.web.live import Broadcaster, event_of

log = logging.getLogger("warnhub.daemon")

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
INDEX_RELOAD_S = 30.0
"""Many nodes: how often a decide node reads the push subscriptions into its targeting index again: the safety net
behind the changes every node hears at once (hub.cluster.IndexFollower)."""
JOBS_LOCK_S = 5.0
"""Many nodes: how often a node without the shared jobs' lock tries to take it (a dead holder's successor starts
them within this)."""


def open_store(loaded: LoadedConfig, *, read_only: bool = False) -> Store:
    """The store for writing (its schema brought up to date), or ``read_only`` for the commands that only look:
    those work on a full disk and never create or change the file."""
    s = loaded.cfg.store
    age = timedelta(hours=s.max_age_without_expires_h) if s.max_age_without_expires_h > 0 else None
    target = loaded.store_target  # the SQLite file, or [store] url
    if read_only:
        return Store.reader(target, max_age_without_expires=age, on_full_disk=True)
    try:
        return Store(target, synchronous=s.synchronous, max_age_without_expires=age)
    except (sqlite3.OperationalError, OSError) as err:
        if write_failure(err):
            raise store_full(err, loaded.db_path) from err
        raise


def make_validator(loaded: LoadedConfig) -> Validator:
    v = loaded.cfg.validation
    trust = TrustStore.from_dir(loaded.path(v.trust_store) if v.trust_store else None)
    return Validator(trust=trust, max_bytes=v.max_bytes, allow_sha1=v.allow_sha1)


def build_sources(loaded: LoadedConfig) -> list[Source]:
    factories = registry.sources()
    return [factories[source_type(s)](s, loaded, max_bytes=loaded.cfg.validation.max_bytes) for s in loaded.cfg.sources]


def source_type(settings: object) -> str:
    """The config ``type`` tag of a source's settings struct."""
    return str(type(settings).__struct_config__.tag)  # type: ignore[attr-defined]


def basic_services(loaded: LoadedConfig, store: AsyncStore, *, metrics: Metrics | None = None,
                   validator: Validator | None = None) -> Services:
    """The services every part needs: events, metrics, health (persisted to the store), intake, the supervisor.
    The daemon adds the rest in :func:`compose`; a test kit or a tool adds what it uses with
    ``dataclasses.replace``."""
    events, metrics = Bus(), metrics or Metrics()
    recorder = Recorder(store, metrics)
    if store.store.url is not None:
        recorder.node = cluster.node_name()
    intake = IntakeService(store, validator or make_validator(loaded), metrics=metrics, events=events,
                           workers=loaded.cfg.validation.workers)
    return Services(config=ConfigRef(loaded), store=store, events=events, metrics=metrics,
                    health=Health(on_change=recorder), recorder=recorder, tasks=Supervisor(), intake=intake)


async def compose(stack: contextlib.AsyncExitStack, loaded: LoadedConfig, store: AsyncStore, *, geo: Geography,
                  rules: list[DistrictRules], http: aiohttp.ClientSession) -> Services:
    """Every service of the daemon, built and wired once; the outbox's channels are entered on ``stack``. ``rules``:
    each district's (the first first): the router decides every alert with each, the pipeline publishes each
    district's decisions in its name."""
    base = basic_services(loaded, store)
    stack.callback(base.intake.close)
    stack.push_async_callback(base.recorder.drain)
    events, metrics = base.events, base.metrics
    history = History(loaded.path(loaded.cfg.debug.history)) if loaded.cfg.debug.history else None
    if history is not None:  # first on the bus: an event is in the log before anything it causes
        stack.callback(history.close)
        history.attach(events)
    index = SubscriptionIndex(geo=geo)
    vapid_public_key = push_public_key(loaded)  # before the web server: browsers ask for the key at once
    box = await open_outbox(stack, astore=store, loaded=loaded, http=http, index=index, metrics=metrics,
                            events=events)
    if history is not None:
        box.observers.append(history.sent)
    router = Router(store, rules[0].live, district=rules[0].ars, metrics=metrics, events=events,
                    node=cluster.node_name(), districts=rules,
                    sensor_districts=sensor_districts(loaded.districts, loaded.sensors))
    pipeline = Pipeline(store, loaded, rules[0].live, index=index, events=events, metrics=metrics)
    broadcaster = Broadcaster(reg=geo.registry)
    events.subscribe(AlertStored, router.on_stored)
    events.subscribe(Decided, pipeline.on_decided)
    events.subscribe(Queued, box.on_queued)

    def stream(event: Published) -> None:
        broadcaster.publish(event_of(event.publication))

    events.subscribe(Published, stream)
    watch = CanaryWatch(store, loaded.cfg.canary, tuple(loaded.cfg.webhooks), histogram=metrics.canary_seconds,
                        events=events, intake=base.intake, sender=loaded.districts.first.sender,
                        sse=broadcaster.publish, boards=tuple(loaded.cfg.boards)) \
        if loaded.cfg.canary.enabled else None
    return dataclasses.replace(base, router=router, index=index, geo=geo, broadcaster=broadcaster,
                               pipeline=pipeline, outbox=box, vapid_public_key=vapid_public_key, canary=watch)


def start_canaries(group: asyncio.TaskGroup, services: Services) -> None:
    """The canary rounds and the live stream's internal canary subscriber (``[canary] enabled``)."""
    watch, broadcaster = services.canary, services.broadcaster
    if watch is None:
        return
    if broadcaster is not None and watch.sse is not None:
        async def stream() -> None:  # a new subscriber after each crash: the last one may have been dropped
            sub = broadcaster.subscribe(None, channels=("canary",), statuses=("Test",))
            try:
                await listen(sub, watch)
            finally:
                sub.close()

        services.tasks.start(group, "canary:stream", stream)
    rounds: Callable[[], Awaitable[None]] = watch.run
    url = services.store.store.url
    if url is not None:  # many nodes: one sends each round, the holder of the canary lock (hub.cluster)
        rounds = functools.partial(Holder(url, "canary", interval_s=min(watch.cfg.interval_s, JOBS_LOCK_S)).run,
                                   watch.run)
    services.tasks.start(group, "canary", rounds)


async def retain(services: Services) -> dict[str, int]:
    """One retention run (``[retention]`` as currently loaded; see hub.retention)."""
    loaded = services.loaded
    cfg = loaded.cfg
    plan = retention.Plan(cfg.retention, frozenset(s.name for s in cfg.sources),
                          frozenset(s.name for s in cfg.sources if isinstance(s, MqttSourceConfig)),
                          loaded.path(cfg.retention.audit_dir))
    return await retention.run(services.store, plan, actor=getpass.getuser())


async def sweep(services: Services) -> None:
    store = services.store
    ended = await store.run_bulk(store.store.sweep_expired)
    if ended:
        services.metrics.expired.inc(len(ended))
        log.info("expired %d thread(s): %s", len(ended), ended[:20])


def reload(services: Services, file: Path) -> None:
    """SIGHUP, on the store's writer thread: validation and log level at once, the rest after a restart."""
    try:
        new = config_mod.load(file)
        validator = make_validator(new)
    except ConfigError as err:
        log.error("reload refused, running config stays in force: %s", err)
        return
    current = services.loaded
    old = current.cfg
    fixed = [name for name in ("store", "web", "sources", "canary", "districts")
             if getattr(old, name) != getattr(new.cfg, name)]
    if (old.hub.db, old.hub.district_ars) != (new.cfg.hub.db, new.cfg.hub.district_ars):
        fixed.insert(0, "hub")
    services.intake.reconfigure(validator, new.cfg.validation.workers)
    logging.getLogger().setLevel(new.cfg.hub.log_level)
    services.config.current = LoadedConfig(old, current.file) if fixed else new
    if fixed:
        log.warning("reloaded validation and log level; changes to [%s] take effect after a restart",
                    ", ".join(fixed))
    else:
        log.info("config reloaded")
    services.store.store.audit(getpass.getuser(), "config.reload", str(file), {"needs_restart": fixed})


def schedule(services: Services, router: Router, pipeline: Pipeline, *, node: bool = True,
             shared: bool = True) -> AsyncIOScheduler:
    """The wall-clock jobs (started by the caller): ``node``, those of this node's rules router (the rules files,
    the sensor tick); ``shared``, those over the store that one node at a time runs (the expiry sweep, boards'
    expiry, session purge, retention; :mod:`hub.cluster`)."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    every = {"max_instances": 1, "coalesce": True}
    if node:
        scheduler.add_job(router.poll_files, "interval", seconds=RULES_POLL_S, id="rules-files", **every)
        scheduler.add_job(router.tick, "interval", seconds=SENSOR_TICK_S, id="sensor-tick", **every)
    if shared:
        _shared_jobs(scheduler, services, pipeline, every)
    return scheduler


def _shared_jobs(scheduler: AsyncIOScheduler, services: Services, pipeline: Pipeline, every: dict[str, Any]) -> None:
    loaded, store = services.loaded, services.store
    scheduler.add_job(sweep, "interval", args=(services,), seconds=loaded.cfg.store.sweep_interval_s,
                      id="expiry-sweep", **every)
    scheduler.add_job(pipeline.expire_boards, "interval", seconds=BOARD_EXPIRY_S, id="board-expiry", **every)
    console_cfg = loaded.cfg.console
    scheduler.add_job(retention.purge_sessions, "interval", args=(store,), kwargs={
        "idle": timedelta(minutes=console_cfg.idle_timeout_min),
        "max_age": timedelta(hours=console_cfg.max_session_h), "throttle": auth.throttle_of(console_cfg)},
        seconds=SESSION_PURGE_S, id="session-purge", **every)
    first = datetime.now(UTC) + timedelta(seconds=min(RETENTION_FIRST_S, loaded.cfg.retention.interval_h * 3600))
    scheduler.add_job(retain, "interval", args=(services,), hours=loaded.cfg.retention.interval_h, id="retention",
                      next_run_time=first, **every)


def start_sources(group: asyncio.TaskGroup, services: Services, http: aiohttp.ClientSession,
                  router: Router) -> int:
    """Every configured source as a supervised task (a crash marks it down and restarts it)."""
    loaded, health, intake = services.loaded, services.health, services.intake
    sources = build_sources(loaded)
    for source, settings in zip(sources, loaded.cfg.sources, strict=True):
        ctx = SourceContext(ingest=intake.ingest, health=health,
                            log=logging.getLogger(f"warnhub.source.{source.name}"),
                            ingest_alert=intake.ingest_alert, snapshot=intake.snapshot, known=intake.known,
                            http=http, readings=SensorIntake(services.store), metrics=services.metrics,
                            on_readings=router.feed)

        def crashed(err: BaseException, delay: float, name: str = source.name) -> None:
            health.down(name, f"crashed: {err!r}")
            log.warning("source crashed; restarting in %ss", delay, extra={"source": name})

        poll: Callable[[], Awaitable[None]] = functools.partial(source.run, ctx)
        url = services.store.store.url
        if url is not None:  # many nodes: the one holding the source's lock polls it and records its health
            standby = functools.partial(services.store.run, services.store.store.stand_by, source.name,
                                        services.recorder.node)
            holder = Holder(url, f"source.{source.name}", interval_s=float(getattr(settings, "interval_s", 5.0)),
                            on_standby=standby)
            poll = functools.partial(holder.run, functools.partial(_held, health, source.name,
                                                                   source_type(settings), poll))
        else:
            health.register(source.name, source_type(settings))
        services.tasks.start(group, f"source:{source.name}", poll, on_crash=crashed)
    return len(sources)


async def _held(health: Health, name: str, kind: str, poll: Callable[[], Awaitable[None]]) -> None:
    """A source this node polls now (it holds the source's lock): from now its health is this node's record."""
    health.register(name, kind)
    await poll()


async def _serve(stack: contextlib.AsyncExitStack, loaded: LoadedConfig, store: AsyncStore, geo: Geography,
                 rules: list[DistrictRules], stop: asyncio.Event, ready: asyncio.Event | None,
                 roles: frozenset[str]) -> None:
    actor = getpass.getuser()
    await store.run(store.store.audit, actor, "hub.start", str(loaded.file),
                    {"db": str(store.store.path), "roles": sorted(roles)})
    adopted = await store.run(store.store.adopt_district, loaded.districts.first.ars)
    if adopted:
        log.info("store: %d row(s) of a single-district hub given to the first district %s (%s)", adopted,
                 loaded.districts.first.slug, loaded.districts.first.ars)
        await store.run(store.store.audit, actor, "store.adopt", loaded.districts.first.ars, {"rows": adopted})
    http = await stack.enter_async_context(aiohttp.ClientSession())
    services = await compose(stack, loaded, store, geo=geo, rules=rules, http=http)
    router, pipeline = services.router, services.pipeline
    assert router is not None and pipeline is not None
    loop = asyncio.get_running_loop()

    def sighup() -> None:
        loop.create_task(store.run(reload, services, loaded.file))
        loop.create_task(router.reload())

    loop.add_signal_handler(signal.SIGHUP, sighup)
    await stack.enter_async_context(WebServer(services, loaded.cfg.web.host, loaded.cfg.web.port,
                                              health_only="web" not in roles))
    many = store.store.url is not None  # PostgreSQL: other nodes may share the store (hub.cluster)
    scheduler = schedule(services, router, pipeline, node="decide" in roles, shared=not many)
    scheduler.start()
    stack.callback(scheduler.shutdown, wait=False)
    await sweep(services)
    await _warm(services, router, geo, roles)
    async with asyncio.TaskGroup() as group:
        _start_roles(group, services, http, roles)
        log.info("warnhub running: %s (%s), roles %s", loaded.cfg.hub.name, loaded.cfg.hub.district_ars,
                 ",".join(sorted(roles)))
        services.tasks.started = True
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("stopping")
        assert services.outbox is not None
        await services.outbox.stop()  # batches in hand finish (up to 10 s) before the tasks are cancelled
        services.tasks.cancel()
    await store.run(store.store.audit, actor, "hub.stop", str(loaded.file))


async def _warm(services: Services, router: Router, geo: Geography, roles: frozenset[str]) -> None:
    """What the first warning after start must not wait for: the sensor rules primed, intake's workers, the
    subscription index, the district's and its neighbours' Gemeinde boundaries."""
    if "decide" in roles:
        primed = await router.prime()
        if primed:
            log.info("sensor rules primed with %d recent reading(s)", primed)
    await services.intake.warm()
    assert services.index is not None
    if "web" not in roles:  # the web's subscription API fills the index on its node; here the store does
        count = await services.store.read(load_index, services.store.store, services.index)
        log.info("subscriptions loaded into the targeting index: %d", count)
    await asyncio.to_thread(services.index.warm)
    for district in services.loaded.districts:
        await asyncio.to_thread(geo.local_units, district.ars)


def _start_roles(group: asyncio.TaskGroup, services: Services, http: aiohttp.ClientSession,
                 roles: frozenset[str]) -> None:
    """The supervised tasks of this node's roles; on PostgreSQL also the wake-ups across nodes and the shared
    jobs, which the node holding their lock runs (hub.cluster)."""
    tasks, router, pipeline, box = services.tasks, services.router, services.pipeline, services.outbox
    assert router is not None and pipeline is not None and box is not None
    url = services.store.store.url
    if url is not None:
        bridge = Bridge(url, services.events, services.store)
        bridge.attach()
        tasks.start(group, "cluster:bridge", bridge.run)
        assert services.index is not None  # subscriptions changed on another node: targeted here at once
        follower = IndexFollower(services.store, services.index, services.events)
        follower.attach()
        tasks.start(group, "cluster:subscriptions", follower.run)
        tasks.start(group, "cluster:jobs", functools.partial(Holder(url, "jobs", interval_s=JOBS_LOCK_S).run,
                                                              functools.partial(_shared, services, pipeline)))
    if url is not None and "decide" in roles:
        tasks.start(group, "cluster:index", functools.partial(_reload_index, services))
    if "decide" in roles:
        tasks.start(group, "router", router.run)
        tasks.start(group, "pipeline", pipeline.run)
        start_canaries(group, services)
    if "deliver" in roles:
        for name, worker in box.workers.items():
            tasks.start(group, f"outbox:{name}", worker.run)
    if "ingest" in roles:
        start_sources(group, services, http, router)


async def _reload_index(services: Services) -> None:
    """Many nodes: subscriptions are made and ended through the web nodes' API, so a decide node reads its
    targeting index from the store again every :data:`INDEX_RELOAD_S`."""
    assert services.index is not None
    while True:
        await asyncio.sleep(INDEX_RELOAD_S)
        await services.store.read(load_index, services.store.store, services.index)


async def _shared(services: Services, pipeline: Pipeline) -> None:
    """The shared jobs while this node holds their lock: a scheduler of them, shut down when the lock is lost."""
    assert services.router is not None
    scheduler = schedule(services, services.router, pipeline, node=False, shared=True)
    scheduler.start()
    try:
        await asyncio.Event().wait()
    finally:
        scheduler.shutdown(wait=False)


async def run(loaded: LoadedConfig, *, ready: asyncio.Event | None = None,
              roles: frozenset[str] = cluster.ALL) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    fdlimit.setup(loaded.cfg.web.fd_reserve)  # raise the open-file limit, keep descriptors for intake and the store
    # Refuse to start on unusable boundaries or rules (ConfigError with file, line and field), before anything opens.
    geo = await asyncio.to_thread(loaded.geography)
    rules = await asyncio.to_thread(open_districts, loaded.districts, sensors=[s.id for s in loaded.sensors], geo=geo,
                                    units={s.id: s.unit for s in loaded.sensors})
    store = AsyncStore(open_store(loaded))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(store.close)
            await _serve(stack, loaded, store, geo, rules, stop, ready, roles)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    log.info("stopped")


def main(loaded: LoadedConfig, roles: Sequence[str] | None = None) -> int:
    try:
        chosen = cluster.roles_of(roles, store_url=loaded.cfg.store.url or None)
    except ConfigError as err:
        print(f"warnhub: {err}", file=sys.stderr)
        return 2
    log_mod.setup(loaded.cfg.hub.log_level)
    full: list[BaseException] = []
    try:
        asyncio.run(run(loaded, roles=chosen))
    except* StoreFull as group:  # one line, not a traceback: the operator has to free space, nothing else is wrong
        full += group.exceptions
    if full:
        print(f"warnhub: nicht gestartet / not started: {full[0]} - Platz schaffen und neu starten / "
              "free space and start again", file=sys.stderr)
        return 1
    return 0
