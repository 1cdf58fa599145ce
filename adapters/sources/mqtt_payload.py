"""MQTT sensor messages: which sensor a topic belongs to and what its payload says.

Each configured sensor has a topic filter (``+`` and ``#`` allowed); a message belongs to the most specific filter
that matches its topic (fewest ``#``, then fewest ``+``, then config order). A payload is JSON (the value, time and
unit at the sensor's dotted paths) or a bare number. Times may be ISO 8601 with a zone or epoch seconds or
milliseconds; without one the receive time is used. Anything unusable (not JSON or a number, no value at the path,
not a finite number, another unit than configured, a time without a zone, before 2000 or more than 5 min ahead) is
malformed: counted per sensor, logged once per sensor, never fatal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from hub.config.sections import SensorConfig
from hub.errors import ConfigError
from hub.intake import readings

MAX_PAYLOAD = 64 * 1024
FUTURE_LIMIT_MS = 5 * 60 * 1000
EARLIEST_MS = 946_684_800_000
"""2000-01-01T00:00Z: earlier times come from sensors whose clock was never set."""
_NUMERIC = re.compile(r"[+-]?[0-9]+(\.[0-9]*)?")
_decode = msgspec.json.Decoder().decode


class Malformed(ValueError):
    """A payload that cannot become a reading; the message says why."""


# -- payloads ---------------------------------------------------------------------------------------------------


def parse_payload(payload: bytes | bytearray, sensor: SensorConfig, received: int) -> tuple[int, float]:
    """``(ts_ms, value)`` of one message for ``sensor``, received at ``received`` (epoch ms); raises Malformed."""
    if len(payload) > MAX_PAYLOAD:
        raise Malformed(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    try:
        doc: Any = _decode(payload)
    except msgspec.DecodeError as err:
        doc = _bare(payload, str(err))
    if isinstance(doc, dict):
        value = _number(_at(doc, sensor.value_path, required=True))
        unit = _at(doc, sensor.unit_path)
        if unit is not None and (not isinstance(unit, str) or unit.strip() != sensor.unit):
            raise Malformed(f"unit {unit!r} is not the configured {sensor.unit!r}")
        raw_ts = _at(doc, sensor.time_path)
        ts = received if raw_ts is None else timestamp_ms(raw_ts)
    else:
        value, ts = _number(doc), received
    if ts - received > FUTURE_LIMIT_MS:
        raise Malformed(f"time {readings.iso_ms(ts)} is more than 5 min ahead of the hub's clock")
    return ts, value


def _bare(payload: bytes | bytearray, json_error: str) -> float:
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise Malformed("payload is neither JSON nor a number (not UTF-8)") from None
    try:
        return float(text)
    except ValueError:
        raise Malformed(f"payload is neither JSON nor a number ({json_error})") from None


def _at(doc: Any, path: str, *, required: bool = False) -> Any:
    """The element at a dotted path (``data.level``, ``values.0``); None if absent, unless required."""
    node = doc
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif required:
            raise Malformed(f"no value at {path!r}")
        else:
            return None
    if required and node is None:
        raise Malformed(f"value at {path!r} is null")
    return node


def _number(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise Malformed(f"value is {type(raw).__name__}, not a number")
    try:
        value = float(raw.strip()) if isinstance(raw, str) else float(raw)
    except (ValueError, OverflowError):
        raise Malformed(f"value {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise Malformed(f"value {raw!r} is not finite")
    return value


def timestamp_ms(raw: Any) -> int:
    """Epoch milliseconds from ISO 8601 with a zone, or epoch seconds or milliseconds (number or digits)."""
    if isinstance(raw, str) and _NUMERIC.fullmatch(raw.strip()):
        raw = float(raw)
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise Malformed(f"time is {type(raw).__name__}, not ISO 8601 or epoch")
    if isinstance(raw, str):
        try:
            dt = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise Malformed(f"time {raw!r} is neither ISO 8601 nor epoch") from None
        if dt.tzinfo is None:
            raise Malformed(f"time {raw!r} has no time zone")
        ms = readings.ms_of(dt)
    else:
        if not math.isfinite(raw):
            raise Malformed(f"time {raw!r} is not finite")
        ms = round(raw if abs(raw) >= 1e11 else raw * 1000)  # 1e11 s is the year 5138; 1e11 ms is 1973
    if ms < EARLIEST_MS:
        raise Malformed(f"time {raw!r} is before 2000 (sensor clock not set?)")
    return ms


# -- topics -----------------------------------------------------------------------------------------------------


def _valid_filter(topic: str) -> bool:
    levels = topic.split("/")
    return bool(topic) and "\0" not in topic and all(
        lvl in ("+", "#") or ("+" not in lvl and "#" not in lvl) for lvl in levels) and "#" not in levels[:-1]


def _matches(levels: Sequence[str], topic: Sequence[str]) -> bool:
    for i, want in enumerate(levels):
        if want == "#":
            return not (i == 0 and topic[0].startswith("$"))
        if i >= len(topic) or (want == "+" and i == 0 and topic[0].startswith("$")):
            return False
        if want != "+" and want != topic[i]:
            return False
    return len(levels) == len(topic)


class TopicMap:
    """Topic -> sensor: the most specific matching filter wins (exact before ``+`` before ``#``, then config order)."""

    def __init__(self, sensors: Sequence[SensorConfig]) -> None:
        seen: dict[str, str] = {}
        for s in sensors:
            if not _valid_filter(s.topic):
                raise ConfigError(f"sensor {s.id}: {s.topic!r} is not a valid MQTT topic filter")
            if s.topic in seen:
                raise ConfigError(f"sensors {seen[s.topic]} and {s.id} have the same topic {s.topic!r}")
            seen[s.topic] = s.id
        ranked = sorted(enumerate(sensors), key=lambda p: (p[1].topic.count("#"), p[1].topic.count("+"), p[0]))
        self._ranked = [(s.topic.split("/"), s) for _, s in ranked]
        self.filters = list(dict.fromkeys(s.topic for s in sensors))
        self._cache: dict[str, SensorConfig | None] = {}

    def resolve(self, topic: str) -> SensorConfig | None:
        try:
            return self._cache[topic]
        except KeyError:
            pass
        parts = topic.split("/")
        found = next((s for levels, s in self._ranked if _matches(levels, parts)), None)
        if len(self._cache) >= 10_000:
            self._cache.clear()
        self._cache[topic] = found
        return found
