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

Many districts (issue 19): each has its own rules (:class:`DistrictRules`), and the router decides every external
alert once per district, with that district's rules and for its area, one decision row per (alert, district). One
node claims a version and decides it for every district; a district whose decision is missing (a crash between two
districts, a district added later) decides it on the next pass. The hub's canary is decided for the first district
only, a console warning never here (the console records its own district's decision). A sensor belongs to the
district it lies in: that district's rules watch it. One district's rules failing, or a refused reload of its
folder, touches no other district.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub.config.districts import Districts
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


@dataclass
class DistrictRules:
    """One district's rules as the router holds them: its Kreis key, its live rules and its sensor watch."""

    ars: str
    live: LiveRules
    slug: str = ""
    units: dict[str, str] | None = None
    watch: SensorWatch = field(init=False)

    def __post_init__(self) -> None:
        self.watch = SensorWatch(self.live.current, units=self.units)


class Router:
    def __init__(self, store: AsyncStore, live: LiveRules, *, district: str, units: dict[str, str] | None = None,
                 metrics: Any = None, batch: int = 50, clock: Callable[[], datetime] = now_utc,
                 events: Bus | None = None, node: str | None = None,
                 districts: Sequence[DistrictRules] | None = None, sensor_districts: dict[str, str] | None = None
                 ) -> None:
        """``live``/``district``: the one district's rules (a single-district hub); ``districts``: every district's
        instead, the first first (then ``live`` and ``district`` are the first's). ``sensor_districts``: sensor id ->
        the Kreis key of the district it lies in (a sensor named in none belongs to the first district)."""
        self.store = store
        self.node = node or f"{socket.gethostname()}:{os.getpid()}"
        """This node in its claims on the versions it decides (:data:`hub.decide.decisions.CLAIM_MS`)."""
        self.clock = clock
        self.districts = list(districts) if districts else [DistrictRules(district, live, units=units)]
        self.keyed = len(self.districts) > 1
        """Several districts: draft keys name the district."""
        self.sensor_districts = dict(sensor_districts or {})
        self.metrics = metrics
        self.batch = batch
        self.events = events or Bus()
        """Where :class:`~hub.events.Decided` is published."""
        self._wakeup = Wakeup()
        self._reload_lock = asyncio.Lock()
        self._watch_lock = asyncio.Lock()
        self.decided = 0
        self.failed = 0
        self._for = self.districts[0]

    @property
    def live(self) -> LiveRules:
        """The first district's rules (a single-district hub's)."""
        return self.districts[0].live

    @property
    def district(self) -> str:
        return self.districts[0].ars

    @property
    def watch(self) -> SensorWatch:
        return self.districts[0].watch

    def rules_of(self, ars: str) -> DistrictRules | None:
        return next((d for d in self.districts if d.ars == ars), None)

    # -- alerts ------------------------------------------------------------------------------------------------

    def on_stored(self, event: AlertStored) -> None:
        """Handler of :class:`~hub.events.AlertStored`: decide it now rather than on the next idle check."""
        self._wakeup.set()

    async def run(self, *, idle_s: float = 30.0) -> None:
        """Decide what is pending (all of it: versions stored meanwhile wake it again), then wait for
        :meth:`on_stored` (or ``idle_s``, as a safety net)."""
        await keep_up(self.decide_pending, self._wakeup, idle_s=idle_s, what="deciding alerts", logger=log)

    async def decide_pending(self) -> int:
        """Decide the undecided versions (for each district whose decision is missing), and those whose evaluation
        failed and is due again, each on its own: one that raises never stops the versions behind it. Returns how
        many were taken up."""
        done, after = 0, 0
        keys = [d.ars for d in self.districts]
        while True:
            pending = await self.store.run(decisions.undecided, self.store.store, limit=self.batch, after=after,
                                           now=self.clock(), node=self.node, districts=keys)
            if not pending:
                break
            for item in pending:
                await self._decide_all(item)
            done += len(pending)
            after = pending[-1].alert_id
        retries = await self.store.run(decisions.rules_retry_due, self.store.store, now=self.clock(),
                                       limit=self.batch, node=self.node)
        for item in retries:
            await self._decide_all(item)
        return done + len(retries)

    async def _decide_all(self, item: decisions.Pending) -> None:
        """Each district whose decision on the version is missing decides it, each on its own."""
        for i, ars in enumerate(item.districts):
            rules = self.rules_of(ars)
            if rules is not None:  # the node's claim on the version holds until its last district has decided
                await self._decide_isolated(item, rules, last=i == len(item.districts) - 1)

    async def _decide_isolated(self, item: decisions.Pending, rules: DistrictRules, *, last: bool = True) -> None:
        try:
            await self._decide(item, rules, last=last)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - recorded as failed, retried with backoff; the others go on
            log.exception("deciding alert %s for district %s failed; the others go on", item.alert_id, rules.ars)
            reason = f"deciding failed: {type(err).__name__}: {err}"
            try:
                await self.store.run(decisions.record_unroutable, self.store.store, item.alert_id, item.thread_id,
                                     reason, self.clock(), districts=(rules.ars,))
            except Exception:  # noqa: BLE001 - then it stays undecided and is taken up on the next wake
                log.exception("could not record the failure of alert %s", item.alert_id)

    async def _evaluate(self, ruleset: RuleSet, item: decisions.Pending) -> tuple[Decision, str | None]:
        """The rules' decision, or (unrouted, the reason) when evaluating raises: a rule bug must not lose the
        alert nor stop the others; it is stored as failed and evaluated again with backoff. The hub's own canary
        never reaches the rules: its decision is built in (:mod:`hub.decide.canary`). The district it is evaluated
        for is the one :meth:`_decide` is deciding for."""
        if canary.is_canary(item.origin):
            return canary.decision(item.alert), None
        try:
            return await asyncio.to_thread(ruleset.evaluate, item.alert, origin=item.origin,
                                           previous=item.previous, district=self._for.ars), None
        except Exception as err:  # noqa: BLE001 - see above
            reason = f"rule evaluation failed: {type(err).__name__}: {err}"
            log.exception("rules failed on alert %s; stored as unrouted and failed, retried later", item.alert_id)
            return Decision("unrouted", (), why=f"{reason} / Regelauswertung fehlgeschlagen",
                            severity=item.alert.severity), reason

    async def _decide(self, item: decisions.Pending, rules: DistrictRules, *, last: bool = True) -> None:
        ruleset = rules.live.current
        assert ruleset is not None
        self._for = rules  # the district _evaluate evaluates for (one alert at a time: decide_pending awaits each)
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
                                      failure=failure, district=rules.ars, keyed=self.keyed, release=last)
        if not stored:
            return
        self._count(decision, failure)
        loud = decision.decision == "unrouted" and item.alert.status.value == "Actual" \
            and not (self.keyed and not ruleset.rules)  # a district without rules: said once, at start
        level = logging.WARNING if loud else logging.INFO
        log.log(level, "alert %s (%s/%s)%s: %s — %s", item.alert_id, item.alert.sender, item.alert.identifier,
                f" for {rules.slug or rules.ars}" if self.keyed else "", decision.decision, decision.why,
                extra={"source": item.origin})
        self.events.publish(Decided(item.alert_id, item.thread_id, decision.decision))

    def _count(self, decision: Decision, failure: str | None) -> None:
        if failure is not None:
            self.failed += 1
            if self.metrics is not None:
                self.metrics.failures.labels("rules").inc()
        self.decided += 1
        if self.metrics is not None:
            self.metrics.decisions.labels(decision.decision).inc()

    # -- sensors -----------------------------------------------------------------------------------------------

    def _owner(self, sensor: str) -> DistrictRules:
        """The district a sensor lies in (its rules watch it); the first when it lies in none of them."""
        return self.rules_of(self.sensor_districts.get(sensor, "")) or self.districts[0]

    async def prime(self, now_ms: int | None = None) -> int:
        """Replay the recent readings of every sensor the rules name (drafts already stored are not repeated)."""
        sensors = sorted({r.sensor.sensor for d in self.districts for r in d.watch.ruleset.sensor_rules if r.sensor})
        if not sensors:
            return 0
        since = (now_ms or readings.now_ms()) - PRIME_HOURS * 3600 * 1000
        rows = await self.store.run(_recent, self.store.store, sensors, since)
        await self.feed(rows, quiet=True)
        return len(rows)

    async def feed(self, rows: Sequence[tuple[str, int, float]], *, quiet: bool = False) -> list[SensorEvent]:
        """Readings ``(sensor, ts_ms, value)`` that were just stored, each watched by its district's rules."""
        async with self._watch_lock:
            events: list[SensorEvent] = []
            for sensor, ts, value in sorted(rows, key=lambda r: r[1]):
                owner = self._owner(sensor)
                found = owner.watch.feed(sensor, ts, value)
                await self._events(found, owner, quiet=quiet)
                events.extend(found)
        return events

    async def tick(self, now: datetime | None = None) -> list[SensorEvent]:
        """Notice silent sensors (staleness rules)."""
        async with self._watch_lock:
            events: list[SensorEvent] = []
            for d in self.districts:
                found = d.watch.tick(now or datetime.now(UTC))
                await self._events(found, d)
                events.extend(found)
        return events

    async def _events(self, events: list[SensorEvent], owner: DistrictRules, *, quiet: bool = False) -> None:
        if not events:
            return
        rows = [decisions.SensorDraft(e.rule, e.sensor, e.kind, e.at, e.channels, e.audiences, e.why, e.draft)
                for e in events]
        new = set(await self.store.run(decisions.add_sensor_drafts, self.store.store, rows, district=owner.ars,
                                       keyed=self.keyed))
        for e in events:
            key = decisions.sensor_key(e.rule, e.kind, e.at, owner.ars if self.keyed else "")
            if self.metrics is not None and key in new:
                self.metrics.sensor_events.labels(e.kind).inc()
            if key in new or not quiet:
                log.warning("sensor rule %r %s: %s; draft %r (%s) waits for approval", e.rule, e.kind, e.why,
                            e.template, e.draft.headline())

    # -- rules -------------------------------------------------------------------------------------------------

    async def reload(self, *, only_if_changed: bool = False) -> bool | None:
        """Load every district's rules folder again (in a thread); True: new rules in force (in a district);
        False: refused in a district, whose old rules stay (the others' reloads are not touched); None: nothing
        changed (``only_if_changed``)."""
        results = [await self._reload(d, only_if_changed=only_if_changed) for d in self.districts]
        if self.metrics is not None and any(r is not None for r in results):
            self.metrics.rules_refused.set(1 if any(d.live.refused for d in self.districts) else 0)
        if False in results:
            return False
        return True if True in results else None

    async def _reload(self, rules: DistrictRules, *, only_if_changed: bool) -> bool | None:
        live = rules.live
        async with self._reload_lock:
            if not live.folder.is_dir() and not (live.current and live.current.rules):
                return None  # no rules folder at start and still none: nothing to load, nothing refused
            if only_if_changed and not await asyncio.to_thread(live.changed):
                return None
            ok = await asyncio.to_thread(live.reload)
            audit = self.store.store.audit
            if ok:
                async with self._watch_lock:
                    rules.watch.swap(live.current)
                await self.store.run(audit, "warnhub", "rules.reload", str(live.folder),
                                     {"rules": len(live.current.rules) if live.current else 0}, district=rules.ars)
            else:
                refused = live.refused
                await self.store.run(audit, "warnhub", "rules.refused", str(live.folder),
                                     refused.as_dict() if refused else {}, district=rules.ars)
            return ok

    async def poll_files(self) -> None:
        await self.reload(only_if_changed=True)

    def health(self) -> dict[str, Any]:
        """The first district's rules (a single-district hub's, as before); with several districts also
        ``districts``: each one's by its slug (and ``status`` refused when any district's reload was refused)."""
        h = self._health(self.districts[0], decided=self.decided)
        if self.keyed:
            h["districts"] = {d.slug or d.ars: self._health(d) for d in self.districts}
            if any(d["refused"] for d in h["districts"].values()):
                h["status"] = "refused"
        return h

    @staticmethod
    def _health(rules: DistrictRules, *, decided: int | None = None) -> dict[str, Any]:
        h = rules.live.health()
        h["status"] = "refused" if h["refused"] else "ok"
        if decided is not None:
            h["decided"] = decided
        h["sensor_conditions"] = rules.watch.active()
        return h


def _recent(store: Store, sensors: Sequence[str], since_ms: int) -> list[tuple[str, int, float]]:
    marks = ",".join("?" * len(sensors))
    return [(s, ts, v) for s, ts, v in store.conn.execute(
        f"SELECT sensor_id, ts, value FROM readings WHERE sensor_id IN ({marks}) AND ts >= ? ORDER BY ts",
        (*sensors, since_ms))]


def open_rules(folder: Path, *, sensors: Sequence[str], geo: Any = None, shared_templates: Path | None = None,
               more: Sequence[Path] = ()) -> LiveRules:
    """The rules for the daemon: refuses to start on an invalid folder (RulesError, a ConfigError, with file, line
    and field); a missing folder means no rules, said loudly. ``shared_templates``: what the folder's own templates
    fall back to by name; ``more``: further folders of rule files of the same rule set."""
    if not folder.is_dir():
        log.warning("rules folder %s does not exist: no rules, every alert is unrouted (nothing is sent)", folder)
        live = empty_rules(folder, geo)
        live.shared_templates, live.more = shared_templates, tuple(more)
        return live
    return LiveRules.open(folder, sensors=sensors, geo=geo, shared_templates=shared_templates, more=tuple(more))



def open_districts(districts: Districts, *, sensors: Sequence[str], geo: Any = None,
                   units: dict[str, str] | None = None) -> list[DistrictRules]:
    """Every district's rules for the daemon, the first first (the rule files of its folders, the templates of its
    first folder falling back to the hub's shared ones; refuses to start on an invalid folder as :func:`open_rules`
    does). A district without a
    rules folder has no rules: every alert is unrouted for it, said once here."""
    out = []
    for d in districts:
        if not d.rules:
            log.warning("district %s (%s) has no rules folder: every alert is unrouted for it (nothing is sent in "
                        "its name)", d.slug, d.ars)
            live = empty_rules(Path(f"<no rules folder: {d.slug}>"), geo)
        else:
            live = open_rules(d.rules[0], sensors=sensors, geo=geo, shared_templates=d.shared_templates,
                              more=d.rules[1:])
        out.append(DistrictRules(d.ars, live, slug=d.slug, units=units))
    return out


def sensor_districts(districts: Districts, sensors: Sequence[Any]) -> dict[str, str]:
    """Sensor id -> the Kreis key of the district its ``ars`` lies in (those in none are the first district's)."""
    return {s.id: d.ars for s in sensors if s.ars and (d := districts.of_region(s.ars)) is not None}
