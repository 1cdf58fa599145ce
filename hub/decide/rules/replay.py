"""``warnhub rules replay``: what the rules would do with saved inputs, one JSON object per decision.

Inputs: CAP files, saved source payloads (DWD zip, NINA JSON, CAP Atom/RSS feed) and JSON-lines files of sensor
readings (``{"sensor": "pegel-hitzacker", "ts": "2025-01-08T06:00:00+01:00", "value": 612}``; ``ts`` may also be
epoch milliseconds). Alerts are evaluated in the order given; an Update's previous version is the last replayed
alert it references (so a DWD chain given in order shows which updates push and which stay silent).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from hub import registry
from hub.cap import parse as cap_parse
from hub.cap.model import Alert
from hub.decide.rules.engine import RuleSet
from hub.decide.rules.matching import provider
from hub.decide.rules.sensors import SensorWatch
from hub.errors import HubError, ParseError

MAX_BYTES = 64 * 1024 * 1024


def _kind(path: Path, head: bytes) -> str:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"PK"):
        return "dwd-zip"
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return "readings"
    if text.startswith(b"<"):
        return "xml"
    if text.startswith((b"{", b"[")):
        if text.startswith(b"{") and b'"sensor"' in text.split(b"\n", 1)[0]:
            return "readings"
        return "nina"
    return "unknown"


def alerts_of(path: Path, data: bytes) -> list[tuple[Alert, tuple[str, ...]]]:
    """The alerts a saved input holds, with adapter notes."""
    kind = _kind(path, data[:4096])
    if kind == "dwd-zip":
        return [(c.alert, c.notes) for c in registry.converters()["dwd-zip"](data)]
    if kind == "xml":

        try:
            return [(cap_parse.parse(data, max_bytes=MAX_BYTES).alert, ())]
        except ParseError as cap_err:
            try:
                return [(c.alert, c.notes) for c in registry.converters()["atom"](data)]
            except ParseError:
                raise cap_err from None
    if kind == "nina":
        geojson = path.with_suffix(".geojson")
        extra = geojson.read_bytes() if path.suffix == ".json" and geojson.is_file() else None
        return [(c.alert, c.notes) for c in registry.converters()["nina"](data, geojson=extra)]
    raise ParseError("neither CAP, a DWD zip, NINA JSON, a feed nor JSON-lines sensor readings")


def _time(value: Any) -> datetime | int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if ts.tzinfo is None:
            raise ValueError(f"time without timezone: {value!r}")
        return ts
    raise ValueError(f"ts must be an ISO 8601 time or epoch milliseconds, got {value!r}")


def replay(ruleset: RuleSet, paths: list[Path], *, district: str | None = None, origin: str | None = None,
           units: Mapping[str, str] | None = None, sensor_ars: Mapping[str, str] | None = None,
           ) -> Iterator[dict[str, Any]]:
    """One dict per decision: ``{"input", "alert", "rules", "decision", "channels", "push", "regions", "why", ...}``.

    ``origin``: the source name to evaluate with (default: the alert's provider, e.g. ``dwd`` or ``mowas``).
    Unreadable inputs yield ``{"input", "error"}``."""

    seen: dict[tuple[str, str], Alert] = {}
    watch = SensorWatch(ruleset, units=units)
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as err:
            yield {"input": str(path), "error": f"cannot read: {err.strerror}"}
            continue
        if _kind(path, data[:4096]) == "readings":
            yield from _readings(ruleset, watch, path, data, sensor_ars or {})
            continue
        try:
            alerts = alerts_of(path, data)
        except (HubError, ValueError) as err:
            yield {"input": str(path), "error": str(err)}
            continue
        for n, (alert, notes) in enumerate(alerts):
            previous = None
            for ref in reversed(alert.references):
                previous = seen.get(ref.key())
                if previous is not None:
                    break
            if previous is None and alert.msg_type.value != "Alert":
                earlier = seen.get((alert.sender, alert.identifier))
                previous = earlier if earlier is not None and earlier.sent < alert.sent else None
            decision = ruleset.evaluate(alert, origin=origin or provider(alert), previous=previous,
                                        district=district)
            seen[(alert.sender, alert.identifier)] = alert
            out: dict[str, Any] = {"input": str(path) + (f"#{n + 1}" if len(alerts) > 1 else ""),
                                   "alert": f"{alert.sender}/{alert.identifier}"}
            out.update(decision.as_dict())
            out["msg_type"] = alert.msg_type.value
            out["sent"] = alert.sent.isoformat()
            out["previous"] = f"{previous.sender}/{previous.identifier}" if previous is not None else None
            out["headline"] = alert.headline()
            if notes:
                out["notes"] = list(notes)
            yield out


def _readings(ruleset: RuleSet, watch: SensorWatch, path: Path, data: bytes,
              sensor_ars: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    count = 0
    sensors: set[str] = set()
    fired = False
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
            sensor = obj["sensor"]
            ts = _time(obj["ts"])
            value = obj["value"]
            if not isinstance(sensor, str) or isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError("sensor must be a string and value a number")
        except (ValueError, KeyError, TypeError) as err:
            yield {"input": where, "error": f"not a reading {{sensor, ts, value}}: {err}"}
            continue
        count += 1
        sensors.add(sensor)
        for event in watch.feed(sensor, ts, value):
            fired = True
            all_clear = event.kind == "cleared"
            yield {"input": where, "alert": None, "sensor": event.sensor, "ts": event.at.isoformat(),
                   "value": event.value, "rules": [event.rule], "decision": "draft",
                   "channels": list(event.channels), "push": False,
                   "regions": [sensor_ars[event.sensor]] if event.sensor in sensor_ars else [],
                   "why": event.why + (" -> all-clear draft" if all_clear else " -> draft") + " (needs approval)",
                   "event": event.kind, "draft": event.template, "all_clear": all_clear,
                   "audiences": list(event.audiences), "headline": event.draft.headline()}
    if not fired:
        watched = sorted({r.sensor.sensor for r in ruleset.sensor_rules if r.sensor} & sensors)
        yield {"input": str(path), "alert": None, "rules": [], "decision": "unrouted", "channels": [], "push": False,
               "regions": [], "why": f"{count} reading(s) of {', '.join(sorted(sensors)) or 'no sensor'}: no "
                                     f"condition fired" + ("" if watched else " (no rule watches these sensors)")}
