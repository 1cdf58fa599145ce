"""Sensor conditions: readings in, "fired" and "cleared" events (each with its draft) out.

:class:`SensorWatch` keeps, per sensor rule, whether its condition is in force, and per sensor the recent readings
a rate needs. It knows nothing of MQTT or the store: feed it ``(sensor, time, value)`` as readings arrive
(:meth:`SensorWatch.feed`) and call :meth:`SensorWatch.tick` now and then so a silent sensor is noticed.

* ``above``/``below``: in force once the value has been past the threshold for ``for_minutes`` (counted from the
  first reading of the run); it clears at the first reading past ``clear_below``/``clear_above`` (hysteresis;
  default: the threshold itself). No readings is no all-clear: a silent gauge is not a calm river.
* ``rises_by``/``falls_by`` within ``within_minutes``: the newest value against the lowest (highest) value of the
  readings in the window; clears when the change in the window is down to ``clear_rate`` (default half the amount).
* ``stale_minutes``: fires when the sensor has sent nothing for that long; clears with the next reading.

Times are timezone-aware datetimes or integers (epoch milliseconds, as hub/intake/readings.py stores them).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hub.decide.rules.engine import _local
from hub.decide.rules.model import Rule, SensorCondition
from hub.decide.rules.templates import Draft

Time = datetime | int


class _Num(float):
    """A reading as templates show it: ``612`` not ``612.0`` unless a format is given (``{value:.1f}``)."""

    def __format__(self, spec: str) -> str:
        return format(float(self), spec or "g")

    def __str__(self) -> str:
        return format(float(self), "g")


def _seconds(ts: Time) -> float:
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            raise ValueError("reading time without timezone")
        return ts.timestamp()
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise TypeError(f"reading time must be a datetime or epoch milliseconds, not {type(ts).__name__}")
    return ts / 1000.0


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True, slots=True)
class SensorEvent:
    """A sensor condition fired (draft the warning) or cleared (draft the all-clear)."""

    rule: str
    sensor: str
    kind: str
    """``fired`` or ``cleared``."""
    at: datetime
    value: float | None
    condition: str
    template: str
    draft: Draft
    channels: tuple[str, ...] = ()
    """Where the draft goes once approved."""
    audiences: tuple[str, ...] = ()
    why: str = ""


@dataclass(slots=True)
class _State:
    active: bool = False
    run_start: float | None = None
    fired_at: float | None = None
    peak: float | None = None
    change: float | None = None


@dataclass(slots=True)
class _Sensor:
    history: collections.deque[tuple[float, float]] = field(default_factory=collections.deque)
    last: float | None = None
    last_value: float | None = None


class SensorWatch:
    """Sensor rules of a :class:`~hub.decide.rules.engine.RuleSet` against live (or replayed) readings."""

    def __init__(self, ruleset: Any, *, units: Mapping[str, str] | None = None) -> None:
        self.units = dict(units or {})
        self._sensors: dict[str, _Sensor] = {}
        self._states: dict[str, _State] = {}
        self.ruleset = ruleset
        self._index(ruleset)

    def _index(self, ruleset: Any) -> None:
        self.ruleset = ruleset
        self._rules: tuple[Rule, ...] = tuple(ruleset.sensor_rules)
        self._by_sensor: dict[str, list[Rule]] = collections.defaultdict(list)
        for rule in self._rules:
            assert rule.sensor is not None
            self._by_sensor[rule.sensor.sensor].append(rule)
            self._states.setdefault(rule.name, _State())
        self._window: dict[str, float] = {s: max((r.sensor.window_s for r in rules if r.sensor), default=0.0)
                                          for s, rules in self._by_sensor.items()}

    def swap(self, ruleset: Any) -> None:
        """Take new rules; a rule whose name and condition are unchanged keeps its state (no repeated draft)."""
        old = {r.name: r.sensor for r in self._rules}
        keep = {r.name for r in ruleset.sensor_rules if old.get(r.name) == r.sensor}
        self._states = {name: st for name, st in self._states.items() if name in keep}
        self._index(ruleset)

    def feed(self, sensor: str, ts: Time, value: float) -> list[SensorEvent]:
        """One reading. Readings older than the newest one of the sensor are ignored."""
        t = _seconds(ts)
        events = self.tick(ts, only=sensor)
        s = self._sensors.setdefault(sensor, _Sensor())
        if s.last is not None and t <= s.last:
            return events
        value = float(value)
        s.last, s.last_value = t, value
        window = self._window.get(sensor, 0.0)
        if window:
            s.history.append((t, value))
            while s.history and s.history[0][0] < t - window:
                s.history.popleft()
        for rule in self._by_sensor.get(sensor, ()):
            cond = rule.sensor
            assert cond is not None
            state = self._states[rule.name]
            if cond.kind == "stale":
                if state.active:
                    events.append(self._event(rule, state, "cleared", t, value))
                continue
            if state.active:
                state.peak = _further(cond, state.peak, value)
                if _cleared(cond, value, s.history):
                    events.append(self._event(rule, state, "cleared", t, value))
                continue
            holds, change = _holds(cond, value, s.history)
            if not holds:
                state.run_start = None
                continue
            if state.run_start is None:
                state.run_start = t
            state.change = change
            if t - state.run_start >= cond.for_s:
                state.peak = value
                events.append(self._event(rule, state, "fired", t, value))
        return events

    def tick(self, now: Time, *, only: str | None = None) -> list[SensorEvent]:
        """Notice silent sensors (``stale_minutes``) as of ``now``; the event is dated when silence reached the
        limit."""
        t = _seconds(now)
        events = []
        for rule in self._rules:
            cond = rule.sensor
            assert cond is not None
            if cond.kind != "stale" or (only is not None and cond.sensor != only):
                continue
            state = self._states[rule.name]
            s = self._sensors.get(cond.sensor)
            if state.active or s is None or s.last is None:
                continue
            due = s.last + cond.threshold * 60
            if t >= due:
                state.run_start = s.last
                events.append(self._event(rule, state, "fired", due, s.last_value))
        return events

    def replay(self, readings: Iterable[tuple[str, Time, float]]) -> list[SensorEvent]:
        """Feed a sequence of (sensor, time, value) in order; every event."""
        out: list[SensorEvent] = []
        for sensor, ts, value in readings:
            out.extend(self.feed(sensor, ts, value))
        return out

    def active(self) -> list[dict[str, Any]]:
        """The conditions in force now (for the console and /healthz)."""
        out = []
        for rule in self._rules:
            state = self._states.get(rule.name)
            if state and state.active and rule.sensor:
                out.append({"rule": rule.name, "sensor": rule.sensor.sensor, "condition": rule.sensor.describe(),
                            "since": _dt(state.fired_at).isoformat() if state.fired_at else None,
                            "peak": state.peak})
        return out

    def _event(self, rule: Rule, state: _State, kind: str, t: float, value: float | None) -> SensorEvent:
        cond = rule.sensor
        assert cond is not None
        if kind == "fired":
            state.active, state.fired_at = True, t
            template = rule.then.draft or ""
        else:
            state.active, state.run_start = False, None
            template = rule.then.all_clear or ""
        values = self._values(rule, cond, state, t, value)
        draft = self.ruleset.render(template, values, rule=rule.name)
        if kind == "fired":
            why = f"{cond.describe()}: fired at {values['time']}"
        else:
            why = f"{cond.describe()}: cleared at {values['time']} (in force since {values['since']})"
        if kind == "cleared":
            state.fired_at, state.peak, state.change = None, None, None
        return SensorEvent(rule.name, cond.sensor, kind, _dt(t), value, cond.describe(), template, draft,
                           rule.then.publish, rule.then.audiences, why)

    def _values(self, rule: Rule, cond: SensorCondition, state: _State, t: float,
                value: float | None) -> dict[str, object]:

        since = state.run_start if state.run_start is not None else state.fired_at
        return {"sensor": cond.sensor, "value": None if value is None else _Num(value),
                "unit": self.units.get(cond.sensor, ""),
                "threshold": _Num(cond.threshold), "clear": None if cond.clear is None else _Num(cond.clear),
                "since": _local(_dt(since)) if since else None,
                "minutes": _Num(cond.threshold if cond.kind == "stale" else cond.for_s / 60),
                "rate": None if state.change is None else _Num(round(state.change, 3)),
                "window": _Num(cond.window_s / 60) if cond.window_s else None,
                "peak": None if state.peak is None else _Num(state.peak),
                "time": _local(_dt(t))}


def _holds(cond: SensorCondition, value: float, history: Iterable[tuple[float, float]]) -> tuple[bool, float | None]:
    if cond.kind == "above":
        return value > cond.threshold, None
    if cond.kind == "below":
        return value < cond.threshold, None
    change = _change(cond, value, history)
    return change is not None and change >= cond.threshold, change


def _cleared(cond: SensorCondition, value: float, history: Iterable[tuple[float, float]]) -> bool:
    if cond.kind == "above":
        return value < cond.clear if cond.clear is not None else value <= cond.threshold
    if cond.kind == "below":
        return value > cond.clear if cond.clear is not None else value >= cond.threshold
    change = _change(cond, value, history)
    return change is not None and change <= (cond.clear or 0.0)


def _change(cond: SensorCondition, value: float, history: Iterable[tuple[float, float]]) -> float | None:
    """Rise (or fall) of the newest value against the lowest (highest) in the window; None with one reading."""
    values = [v for _, v in history]
    if len(values) < 2:
        return None
    return value - min(values) if cond.kind == "rise" else max(values) - value


def _further(cond: SensorCondition, peak: float | None, value: float) -> float:
    if peak is None:
        return value
    return min(peak, value) if cond.kind in ("below", "fall") else max(peak, value)


def run_condition(ruleset: Any, readings: Iterable[tuple[str, Time, float]]) -> list[tuple[str, str, datetime]]:
    """Test helper: (rule, fired|cleared, time) for a sequence of readings."""
    watch = SensorWatch(ruleset)
    return [(e.rule, e.kind, e.at) for e in watch.replay(readings)]
