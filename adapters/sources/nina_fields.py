"""NINA's fields: small readers (times, enums, languages, HTML text) and geometry, for :mod:`nina_convert`.

The choices they make (Europe/Berlin for times without offset, ``lon,lat`` swapped to CAP's ``lat,lon``, rings only
in Germany) are described in :mod:`adapters.sources.nina_convert`; every repair is noted.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone
from typing import Any, TypeVar

from hub.cap.model import (
    Category,
    Certainty,
    Circle,
    LatLon,
    MsgType,
    Polygon,
    ResponseType,
    Scope,
    Severity,
    Status,
    Urgency,
    Value,
)
from hub.cap.parse import is_language_tag

STRIPPED_PREFIXES = ("mow.", "dwd.", "dwdmap.", "biw.")
GERMANY_BBOX = (47.2, 55.1, 5.8, 15.1)
"""(lat_min, lat_max, lon_min, lon_max), roughly Germany."""
_TAG = re.compile(r"<!--.*?-->|</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>", re.S)
_BREAK = re.compile(r"<br\s*/?>|</(?:p|div|li|h[1-6]|tr)\s*>", re.I)
_ITEM = re.compile(r"<li(?:\s[^<>]*)?>", re.I)


class _Notes:
    """Ordered, de-duplicated notes (the same repair in nine language infos is one note)."""

    def __init__(self) -> None:
        self._items: dict[str, None] = {}

    def add(self, text: str) -> None:
        self._items.setdefault("NINA: " + text, None)

    def extend(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.add(text)

    def tuple(self) -> tuple[str, ...]:
        return tuple(self._items)


# -- small readers ------------------------------------------------------------------------------------------------

def strip_prefix(identifier: str) -> str:
    """The identifier as its issuer writes it: NINA's ``mow.``/``dwd.``/``dwdmap.``/``biw.`` prefix removed."""
    for prefix in STRIPPED_PREFIXES:
        if identifier.startswith(prefix) and len(identifier) > len(prefix):
            return identifier[len(prefix):]
    return identifier


def _str(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    return None


def _berlin_offset(day: date) -> timezone:
    """UTC offset of Europe/Berlin at 00:00 of ``day`` (EU rule: summer time from the last Sunday of March to the
    last Sunday of October; at midnight on both change days the old offset still holds)."""
    def last_sunday(month: int) -> date:
        d = date(day.year, month, 31)
        return d - timedelta(days=(d.weekday() + 1) % 7)

    summer = last_sunday(3) < day <= last_sunday(10)
    return timezone(timedelta(hours=2 if summer else 1))


def _time(value: Any, what: str, notes: _Notes) -> datetime | None:
    text = _str(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        notes.add(f"{what} {text!r} is not a date-time: dropped")
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_berlin_offset(parsed.date()))
        notes.add(f"{what} {text!r} has no UTC offset: read as Europe/Berlin")
    return parsed.replace(microsecond=0)


E = TypeVar("E", Status, MsgType, Scope, Category, ResponseType, Urgency, Severity, Certainty)


def _enum(cls: type[E], value: Any, default: E | None, what: str, notes: _Notes) -> E | None:
    text = _str(value)
    if text is None:
        if default is not None:
            notes.add(f"{what} missing: set to {default.value}")
        return default
    for member in cls:
        if member.value.lower() == text.lower().replace(" ", ""):
            return member
    if default is None:
        notes.add(f"{what} {text!r} unknown: dropped")
    else:
        notes.add(f"{what} {text!r} unknown: read as {default.value}")
    return default


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def normalise_language(code: Any) -> str | None:
    """NINA's language codes as RFC 3066 tags: ``DE`` -> ``de-DE``, ``DE-LS`` -> ``de-DE-x-ls``, ``EN`` -> ``en``.
    None when the code is unusable."""
    text = _str(code)
    if text is None:
        return None
    parts = [p for p in re.split(r"[-_]", text) if p]
    if not parts:
        return None
    primary = parts[0].lower()
    rest = parts[1:]
    if primary == "de" and [p.lower() for p in rest] in ([], ["de"]):
        tag = "de-DE"
    elif primary == "de" and [p.lower() for p in rest] in (["ls"], ["de", "ls"]):
        tag = "de-DE-x-ls"
    else:
        tag = "-".join([primary] + [p.upper() if len(p) == 2 and p.isalpha() else p.lower() for p in rest])
    return tag if is_language_tag(tag) else None


def html_to_text(value: Any) -> str | None:
    """NINA's HTML fragments as plain text: ``<br/>`` and block ends become newlines, list items dashes, other
    tags go, entities are decoded (``&nbsp;`` as a space). A literal ``<`` not starting a tag stays."""
    text = _str(value)
    if text is None:
        return None
    for _ in range(2):  # twice: a fragment escaped twice shows its tags only after the first decoding
        text = _BREAK.sub("\n", text)
        text = _ITEM.sub("- ", text)
        text = _TAG.sub("", text)
        text = html.unescape(text).replace("\xa0", " ")
        if not _TAG.search(text):
            break
    lines = [" ".join(line.split()) for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    out = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return out or None


def _line(value: Any) -> str | None:
    text = html_to_text(value)
    return " ".join(text.split()) if text else None


def _pairs(value: Any, what: str, notes: _Notes) -> list[Value]:
    out: list[Value] = []
    for item in _list(value):
        if isinstance(item, dict):
            name, val = _str(item.get("valueName")), item.get("value")
            text = val if isinstance(val, str) else _str(val)
            if name is not None and text is not None:
                out.append(Value(value_name=name, value=text))
                continue
        notes.add(f"{what} {str(item)[:60]!r} is not a valueName/value pair: dropped")
    return out


# -- geometry -----------------------------------------------------------------------------------------------------

def _in_germany(ring: Iterable[LatLon]) -> bool:
    lat0, lat1, lon0, lon1 = GERMANY_BBOX
    return all(lat0 <= lat <= lat1 and lon0 <= lon <= lon1 for lat, lon in ring)


def _ring(points_lonlat: list[tuple[float, float]], what: str, notes: _Notes) -> Polygon | None:
    """A CAP ring from ``(lon, lat)`` points: bogus pairs dropped, order checked against Germany, closed."""
    kept = [(lon, lat) for lon, lat in points_lonlat if not (lon == -1.0 and lat == -1.0)]
    if len(kept) != len(points_lonlat):
        notes.add(f"{what}: {len(points_lonlat) - len(kept)} bogus '-1.0,-1.0' point(s) dropped")
    ring: list[LatLon] = [(lat, lon) for lon, lat in kept]
    if any(not (-90 <= lat <= 90 and -180 <= lon <= 180) for lat, lon in ring):
        notes.add(f"{what}: coordinates out of range: ring dropped")
        return None
    if ring and not _in_germany(ring):
        swapped = [(lon, lat) for lat, lon in ring]
        if _in_germany(swapped):
            ring = swapped
            notes.add(f"{what}: points were lat,lon, not NINA's lon,lat: read that way")
        else:
            notes.add(f"{what}: ring lies (partly) outside Germany")
    if ring and ring[0] != ring[-1]:
        ring.append(ring[0])
    if len(ring) < 4:
        notes.add(f"{what}: ring of {len(ring)} point(s) (a closed polygon needs 4): dropped")
        return None
    return tuple(ring)


def polygon_from_nina(text: str, notes: _Notes | None = None) -> Polygon | None:
    """One NINA polygon string (``lon,lat lon,lat ...``) as a closed CAP ring of ``(lat, lon)``; None if unusable."""
    notes = notes if notes is not None else _Notes()
    points: list[tuple[float, float]] = []
    try:
        for pair in text.split():
            lon_text, lat_text = pair.split(",")
            points.append((float(lon_text), float(lat_text)))
    except ValueError:
        notes.add("polygon: not a list of 'lon,lat' points: dropped")
        return None
    return _ring(points, "polygon", notes)


def _circle(text: str, notes: _Notes) -> Circle | None:
    try:
        centre, radius = text.split()
        a_text, b_text = centre.split(",")
        a, b, r = float(a_text), float(b_text), float(radius)
    except ValueError:
        notes.add(f"circle {text[:60]!r} is not 'lat,lon radius': dropped")
        return None
    point = (a, b)
    if not _in_germany([point]) and _in_germany([(b, a)]):
        point = (b, a)
        notes.add("circle centre was lon,lat: read that way")
    return Circle(center=point, radius_km=r)


def parse_geojson(obj: Any, notes: _Notes | None = None, *, warn_id: str | None = None) -> dict[str, list[Polygon]]:
    """Outer rings per ``areaId`` from a NINA ``.geojson`` (RFC 7946, ``[lon, lat]``; Polygon and MultiPolygon)."""
    notes = notes if notes is not None else _Notes()
    if isinstance(obj, dict) and obj.get("type") == "Feature":
        obj = {"type": "FeatureCollection", "features": [obj]}
    if not isinstance(obj, dict) or not isinstance(obj.get("features"), list):
        notes.add("GeoJSON is not a FeatureCollection: ignored")
        return {}
    out: dict[str, list[Polygon]] = {}
    holes = 0
    for feature in obj["features"]:
        if not isinstance(feature, dict):
            continue
        props = feature.get("properties") if isinstance(feature.get("properties"), dict) else {}
        assert isinstance(props, dict)
        if warn_id and _str(props.get("warnId")) not in (None, warn_id):
            notes.add(f"GeoJSON feature of another warning ({props.get('warnId')!r}): ignored")
            continue
        area_id = _str(props.get("areaId"))
        geom = feature.get("geometry") if isinstance(feature.get("geometry"), dict) else {}
        assert isinstance(geom, dict)
        kind, coords = geom.get("type"), geom.get("coordinates")
        if area_id is None:
            notes.add("GeoJSON feature without areaId: dropped")
            continue
        if kind == "Polygon" and isinstance(coords, list):
            polygons = [coords]
        elif kind == "MultiPolygon" and isinstance(coords, list):
            polygons = coords
        else:
            notes.add(f"GeoJSON geometry {kind!r} is not a (Multi)Polygon: dropped")
            continue
        for rings in polygons:
            if not isinstance(rings, list) or not rings:
                continue
            holes += len(rings) - 1
            try:
                points = [(float(p[0]), float(p[1])) for p in rings[0]]
            except (TypeError, ValueError, IndexError):
                notes.add("GeoJSON ring is not a list of [lon, lat] positions: dropped")
                continue
            ring = _ring(points, "GeoJSON", notes)
            if ring is not None:
                out.setdefault(area_id, []).append(ring)
    if holes:
        notes.add(f"GeoJSON: {holes} hole(s) dropped (CAP polygons have no holes)")
    return out
