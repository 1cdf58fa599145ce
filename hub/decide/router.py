"""The rules stage of the daemon: decide every stored alert, watch sensor readings, keep the rules current.

Flow (GUIDE.md section 1): intake stores an alert and publishes :class:`~hub.events.AlertStored`, which wakes the
:class:`Router` (:meth:`Router.on_stored`); the router claims every version that has no decision yet (so a crash
between storing and deciding only delays the decision; on many nodes each version is evaluated by the one node that
claimed it), evaluates it with the rules in force (off the event loop: an alert with 800 DWD areas takes
milliseconds of geometry), and stores the decision with any drafts in one transaction, then publishes
:class:`~hub.events.Decided` (the delivery pipeline listens).

Sensor readings arrive from the MQTT source after they are stored; the :class:`~hub.decide.rules.SensorWatch` turns
them into fired/cleared events whose drafts are stored for approval (keyed, so a replay after a restart drafts
nothing twice). At start the watch is primed with the recent readings of the sensors the rules name.

The rules folder is reloaded on SIGHUP and when a file in it changes (checked every ``poll_s``). A reload takes
effect only if every file is valid; otherwise the running rules stay, the refusal is logged, and /healthz says so.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub.decide import canary, decisions
from hub.decide.rules.engine import Decision, LiveRules, RuleSet
from hub.decide.rules.sensors import SensorEvent, SensorWatch
from hub.events import AlertStored, Bus, Decided, Wakeup, keep_up
from hub.intake import readings
from hub.store.clock import now_utc
from hub.store.db import AsyncStore, Store

log = logging.getLogger("warnhub.rules")

PRIME_HOURS = 48
"""Readings replayed into the sensor watch at start: long enough to know a condition that is in force."""


def empty_rules(folder: Path, geo: Any = None) -> LiveRules:
    """Rules in force when the folder does not exist: none (every alert is unrouted), reloadable once it does."""
    live = LiveRules(folder, geo=geo)
    live.current = RuleSet([], {}, folder=folder, geo=geo)
    return live


class Router:
    def __init__(self, store: AsyncStore, live: LiveRules, *, district: str, units: dict[str, str] | None = None,
                 metrics: Any = None, batch: int = 50, clock: Callable[[], datetime] = now_utc,
                 events: Bus | None = None, node: str | None = None) -> None:
        self.store = store
        self.node = node or f"{socket.gethostname()}:{os.getpid()}"
        """This node in its claims on the versions it decides (:data:`hub.decide.decisions.CLAIM_MS`)."""
        self.clock = clock
        self.live = live
        self.district = district
        self.metrics = metrics
        self.batch = batch
        self.watch = SensorWatch(live.current, units=units)
        self.events = events or Bus()
        """Where :class:`~hub.events.Decided` is published."""
        self._wakeup = Wakeup()
        self._reload_lock = asyncio.Lock()
        self._watch_lock = asyncio.Lock()
        self.decided = 0
        self.failed = 0

    # -- alerts ------------------------------------------------------------------------------------------------

    def on_stored(self, event: AlertStored) -> None:
        """Handler of :class:`~hub.events.AlertStored`: decide it now rather than on the next idle check."""
        self._wakeup.set()

    async def run(self, *, idle_s: float = 30.0) -> None:
        """Decide what is pending (all of it: versions stored meanwhile wake it again), then wait for
        :meth:`on_stored` (or ``idle_s``, as a safety net)."""
        await keep_up(self.decide_pending, self._wakeup, idle_s=idle_s, what="deciding alerts", logger=log)

    async def decide_pending(self) -> int:
        """Decide the undecided versions, and those whose evaluation failed and is due again, each on its own:
        one that raises never stops the versions behind it. Returns how many were taken up."""
        done, after = 0, 0
        while True:
            pending = await self.store.run(decisions.undecided, self.store.store, limit=self.batch, after=after,
                                           now=self.clock(), node=self.node)
            if not pending:
                break
            for item in pending:
                await self._decide_isolated(item)
            done += len(pending)
            after = pending[-1].alert_id
        retries = await self.store.run(decisions.rules_retry_due, self.store.store, now=self.clock(),
                                       limit=self.batch, node=self.node)
        for item in retries:
            await self._decide_isolated(item)
        return done + len(retries)

    async def _decide_isolated(self, item: decisions.Pending) -> None:
        try:
            await self._decide(item)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - recorded as failed, retried with backoff; the others go on
            log.exception("deciding alert %s failed; the others go on", item.alert_id)
            reason = f"deciding failed: {type(err).__name__}: {err}"
            try:
                await self.store.run(decisions.record_unroutable, self.store.store, item.alert_id, item.thread_id,
                                     reason, self.clock())
            except Exception:  # noqa: BLE001 - then it stays undecided and is taken up on the next wake
                log.exception("could not record the failure of alert %s", item.alert_id)

    async def _evaluate(self, ruleset: RuleSet, item: decisions.Pending) -> tuple[Decision, str | None]:
        """The rules' decision, or (unrouted, the reason) when evaluating raises: a rule bug must not lose the
        alert nor stop the others; it is stored as failed and evaluated again with backoff. The hub's own canary
        never reaches the rules: its decision is built in (:mod:`hub.decide.canary`)."""
        if canary.is_canary(item.origin):
            return canary.decision(item.alert), None
        try:
            return await asyncio.to_thread(ruleset.evaluate, item.alert, origin=item.origin,
                                           previous=item.previous, district=self.district), None
        except Exception as err:  # noqa: BLE001 - see above
            reason = f"rule evaluation failed: {type(err).__name__}: {err}"
            log.exception("rules failed on alert %s; stored as unrouted and failed, retried later", item.alert_id)
            return Decision("unrouted", (), why=f"{reason} / Regelauswertung fehlgeschlagen",
                            severity=item.alert.severity), reason

    async def _decide(self, item: decisions.Pending) -> None:
        ruleset = self.live.current
        assert ruleset is not None
        decision, failure = await self._evaluate(ruleset, item)
        drafts = []
        for template in decision.drafts:
            rule = next((r.name for r in ruleset.rules if r.name in decision.rules and r.then.draft == template), "")
            try:
                drafts.append((rule, ruleset.draft_for_alert(item.alert, template, rule=rule)))
            except Exception:  # noqa: BLE001 - the decision stands; the draft is missing and logged
                log.exception("template %s failed for alert %s", template, item.alert_id)
        stored = await self.store.run(decisions.record, self.store.store, item, decision,
                                      rules_loaded_at=ruleset.loaded_at, drafts=drafts, now=self.clock(),
                                      failure=failure)
        if not stored:
            return
        if failure is not None:
            self.failed += 1
            if self.metrics is not None:
                self.metrics.failures.labels("rules").inc()
        self.decided += 1
        if self.metrics is not None:
            self.metrics.decisions.labels(decision.decision).inc()
        level = logging.WARNING if decision.decision == "unrouted" and item.alert.status.value == "Actual" \
            else logging.INFO
        log.log(level, "alert %s (%s/%s): %s — %s", item.alert_id, item.alert.sender, item.alert.identifier,
                decision.decision, decision.why, extra={"source": item.origin})
        self.events.publish(Decided(item.alert_id, item.thread_id, decision.decision))

    # -- sensors -----------------------------------------------------------------------------------------------

    async def prime(self, now_ms: int | None = None) -> int:
        """Replay the recent readings of every sensor the rules name (drafts already stored are not repeated)."""
        sensors = sorted({r.sensor.sensor for r in self.watch.ruleset.sensor_rules if r.sensor})
        if not sensors:
            return 0
        since = (now_ms or readings.now_ms()) - PRIME_HOURS * 3600 * 1000
        rows = await self.store.run(_recent, self.store.store, sensors, since)
        await self.feed(rows, quiet=True)
        return len(rows)

    async def feed(self, rows: Sequence[tuple[str, int, float]], *, quiet: bool = False) -> list[SensorEvent]:
        """Readings ``(sensor, ts_ms, value)`` that were just stored."""
        async with self._watch_lock:
            events: list[SensorEvent] = []
            for sensor, ts, value in sorted(rows, key=lambda r: r[1]):
                events.extend(self.watch.feed(sensor, ts, value))
            await self._events(events, quiet=quiet)
        return events

    async def tick(self, now: datetime | None = None) -> list[SensorEvent]:
        """Notice silent sensors (staleness rules)."""
        async with self._watch_lock:
            events = self.watch.tick(now or datetime.now(UTC))
            await self._events(events)
        return events

    async def _events(self, events: list[SensorEvent], *, quiet: bool = False) -> None:
        if not events:
            return
        rows = [decisions.SensorDraft(e.rule, e.sensor, e.kind, e.at, e.channels, e.audiences, e.why, e.draft)
                for e in events]
        new = set(await self.store.run(decisions.add_sensor_drafts, self.store.store, rows))
        for e in events:
            key = decisions.sensor_key(e.rule, e.kind, e.at)
            if self.metrics is not None and key in new:
                self.metrics.sensor_events.labels(e.kind).inc()
            if key in new or not quiet:
                log.warning("sensor rule %r %s: %s; draft %r (%s) waits for approval", e.rule, e.kind, e.why,
                            e.template, e.draft.headline())

    # -- rules -------------------------------------------------------------------------------------------------

    async def reload(self, *, only_if_changed: bool = False) -> bool | None:
        """Load the rules folder again (in a thread); True: new rules in force; False: refused, the old ones stay;
        None: nothing changed (``only_if_changed``)."""
        async with self._reload_lock:
            if not self.live.folder.is_dir() and not (self.live.current and self.live.current.rules):
                return None  # no rules folder at start and still none: nothing to load, nothing refused
            if only_if_changed and not await asyncio.to_thread(self.live.changed):
                return None
            ok = await asyncio.to_thread(self.live.reload)
            if self.metrics is not None:
                self.metrics.rules_refused.set(0 if ok else 1)
            if ok:
                async with self._watch_lock:
                    self.watch.swap(self.live.current)
                await self.store.run(self.store.store.audit, "warnhub", "rules.reload", str(self.live.folder),
                                     {"rules": len(self.live.current.rules) if self.live.current else 0})
            else:
                refused = self.live.refused
                await self.store.run(self.store.store.audit, "warnhub", "rules.refused", str(self.live.folder),
                                     refused.as_dict() if refused else {})
            return ok

    async def poll_files(self) -> None:
        await self.reload(only_if_changed=True)

    def health(self) -> dict[str, Any]:
        h = self.live.health()
        h["status"] = "refused" if h["refused"] else "ok"
        h["decided"] = self.decided
        h["sensor_conditions"] = self.watch.active()
        return h


def _recent(store: Store, sensors: Sequence[str], since_ms: int) -> list[tuple[str, int, float]]:
    marks = ",".join("?" * len(sensors))
    return [(s, ts, v) for s, ts, v in store.conn.execute(
        f"SELECT sensor_id, ts, value FROM readings WHERE sensor_id IN ({marks}) AND ts >= ? ORDER BY ts",
        (*sensors, since_ms))]


def open_rules(folder: Path, *, sensors: Sequence[str], geo: Any = None) -> LiveRules:
    """The rules for the daemon: refuses to start on an invalid folder (RulesError, a ConfigError, with file, line
    and field); a missing folder means no rules, said loudly."""
    if not folder.is_dir():
        log.warning("rules folder %s does not exist: no rules, every alert is unrouted (nothing is sent)", folder)
        return empty_rules(folder, geo)
    return LiveRules.open(folder, sensors=sensors, geo=geo)

