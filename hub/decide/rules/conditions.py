"""Checking a rule's conditions: ``when``/``unless`` on alerts (:func:`alert_match`, :func:`area_match`) and
``when`` on one sensor (:func:`sensor_condition`)."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from typing import Any

from hub.cap.model import Category, Certainty, MsgType, Severity, Status, Urgency
from hub.decide.rules.model import PROVIDERS, AlertMatch, AreaMatch, SensorCondition
from hub.decide.rules.problems import Bad, Path_, RuleFile
from hub.decide.rules.values import (
    ARS_RE,
    choices,
    code_matches,
    enum_value,
    enum_values,
    globs,
    number,
    one_str,
    show,
    str_list,
)
from hub.geo.registry import registry


def alert_match(raw: Mapping[str, Any], path: Path_, file: RuleFile, *, default_status: bool = True) -> AlertMatch:
    g = file.get
    statuses = g(raw, path, "status", enum_values(Status))
    area = area_match(raw, path, file)
    return AlertMatch(
        sources=g(raw, path, "source", globs, ()),
        providers=g(raw, path, "provider", choices(PROVIDERS, "provider"), ()),
        senders=g(raw, path, "sender", globs, ()),
        statuses=frozenset(statuses) if statuses else (frozenset({Status.ACTUAL}) if default_status else None),
        msg_types=frozenset(m) if (m := g(raw, path, "msg_type", enum_values(MsgType))) else None,
        codes=frozenset(c) if (c := g(raw, path, "code", str_list)) else None,
        events=g(raw, path, "event", globs, ()),
        event_codes=g(raw, path, "event_code", code_matches, ()),
        categories=frozenset(c) if (c := g(raw, path, "category", enum_values(Category))) else None,
        min_severity=g(raw, path, "min_severity", enum_value(Severity)),
        max_severity=g(raw, path, "max_severity", enum_value(Severity)),
        min_urgency=g(raw, path, "min_urgency", enum_value(Urgency)),
        min_certainty=g(raw, path, "min_certainty", enum_value(Certainty)),
        languages=g(raw, path, "language", globs, ()),
        area=area,
        max_outside_share=g(raw, path, "max_outside_share", number(ge=0, le=1)),
    )


def area_match(raw: Mapping[str, Any], path: Path_, file: RuleFile) -> AreaMatch | None:
    if "area" not in raw:
        return None
    value, where = raw["area"], (*path, "area")
    if value == "district":
        return AreaMatch(district=True)
    if isinstance(value, str | list) and not isinstance(value, dict):
        try:
            items = str_list(value)
        except Bad as err:
            file.error(where, f'{err}; write "district", a list of ARS or {{ polygon = [[lat, lon], ...] }}')
            return None

        reg = registry()
        bad = [a for a in items if not ARS_RE.match(a) or a not in reg]
        if bad:
            file.error(where, f"{bad[0]!r} is not a known 12-digit ARS" + (' (or "district")' if len(items) == 1
                                                                             else ""))
            return None
        return AreaMatch(ars=items)
    if isinstance(value, dict):
        unknown = [k for k in value if k != "polygon"]
        if unknown:
            file.error((*where, unknown[0]), "unknown key (an area table has only polygon)")
            return None
        points = value.get("polygon")
        if not isinstance(points, list) or not _is_ring(points):
            file.error((*where, "polygon"), "expected at least 3 points [lat, lon] (numbers, CAP order)")
            return None
        ring = tuple((float(a), float(b)) for a, b in points)
        if not all(-90 <= lat <= 90 and -180 <= lon <= 180 for lat, lon in ring):
            file.error((*where, "polygon"), "latitude must lie within ±90 and longitude within ±180")
            return None
        if not all(47 <= lat <= 56 and 5 <= lon <= 16 for lat, lon in ring):
            file.error((*where, "polygon"), "points lie outside Germany: CAP order is [lat, lon]", warning=True)
        if ring[0] != ring[-1]:
            ring = (*ring, ring[0])
        return AreaMatch(polygon=ring)
    file.error(where, f'expected "district", a list of ARS or {{ polygon = [[lat, lon], ...] }}, got {show(value)}')
    return None


def _is_ring(points: list[object]) -> bool:
    """At least 3 points, each a list of two numbers (not booleans)."""
    return len(points) >= 3 and all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, int | float) and not isinstance(x, bool) for x in p)
        for p in points)


def sensor_condition(raw: Mapping[str, Any], path: Path_, file: RuleFile,
                     sensors: Collection[str] | None) -> SensorCondition:
    g = file.get
    name = g(raw, path, "sensor", one_str, "")
    if name and sensors is not None and name not in sensors:
        close = difflib.get_close_matches(name, list(sensors), n=1)
        known = ", ".join(sorted(sensors)) or "none"
        hint = f" (did you mean {close[0]}?)" if close else f" (configured: {known})"
        file.error((*path, "sensor"), f"unknown sensor {name!r}{hint}")
    num = number()
    minutes = number(gt=0, le=7 * 24 * 60)
    above, below = g(raw, path, "above", num), g(raw, path, "below", num)
    rises, falls = g(raw, path, "rises_by", number(gt=0)), g(raw, path, "falls_by", number(gt=0))
    stale = g(raw, path, "stale_minutes", minutes)
    kinds = [k for k, v in (("above", above), ("below", below), ("rises_by", rises), ("falls_by", falls),
                            ("stale_minutes", stale)) if k in raw]
    if len(kinds) != 1:
        file.error(path, "a sensor rule needs exactly one of above, below, rises_by, falls_by, stale_minutes"
                         + (f" (has {', '.join(kinds)}; write one rule for each)" if kinds else ""))
        return SensorCondition(name, "above")
    for_s = g(raw, path, "for_minutes", number(ge=0, le=7 * 24 * 60), 0.0) * 60
    clear_below, clear_above = g(raw, path, "clear_below", num), g(raw, path, "clear_above", num)
    within = g(raw, path, "within_minutes", minutes)
    clear_rate = g(raw, path, "clear_rate", number(ge=0))
    allowed = {"above": {"clear_below", "for_minutes"}, "below": {"clear_above", "for_minutes"},
               "rises_by": {"within_minutes", "clear_rate", "for_minutes"},
               "falls_by": {"within_minutes", "clear_rate", "for_minutes"}, "stale_minutes": set()}[kinds[0]]
    for key in ("clear_below", "clear_above", "for_minutes", "within_minutes", "clear_rate"):
        if key in raw and key not in allowed:
            file.error((*path, key), f"does not go with {kinds[0]}")
    if kinds[0] == "above":
        if clear_below is not None and above is not None and clear_below > above:
            file.error((*path, "clear_below"), f"must not be above the threshold {above:g} (hysteresis)")
        return SensorCondition(name, "above", above or 0.0, clear_below, for_s)
    if kinds[0] == "below":
        if clear_above is not None and below is not None and clear_above < below:
            file.error((*path, "clear_above"), f"must not be below the threshold {below:g} (hysteresis)")
        return SensorCondition(name, "below", below or 0.0, clear_above, for_s)
    if kinds[0] in ("rises_by", "falls_by"):
        amount = rises if kinds[0] == "rises_by" else falls
        if "within_minutes" not in raw:
            file.error(path, f"{kinds[0]} needs within_minutes (e.g. rises_by = 30, within_minutes = 15)")
        if clear_rate is not None and amount is not None and clear_rate > amount:
            file.error((*path, "clear_rate"), f"must not exceed {kinds[0]} ({amount:g})")
        amount = amount or 0.0
        return SensorCondition(name, "rise" if kinds[0] == "rises_by" else "fall", amount,
                               amount / 2 if clear_rate is None else clear_rate, for_s, (within or 0.0) * 60)
    return SensorCondition(name, "stale", stale or 0.0)
