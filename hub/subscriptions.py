"""Citizen subscriptions without accounts (table ``subscriptions``), and the index that finds whom a warning reaches.

What the hub stores per subscription, and nothing else: no name, e-mail address, IP address, user agent, device
data or access log.

- ``id``: a random identifier (16 random bytes, URL-safe base64); it names the subscription in the API.
- ``token_hash``: SHA-256 of the access token (32 random bytes). The token is shown once, when the subscription is
  created, and is not stored; whoever holds it may read, change or delete the subscription.
- ``endpoint``, ``p256dh``, ``auth``: the browser's Web Push subscription: the push service's address for this
  browser and the keys that encrypt messages to it. Subscribing the same endpoint again replaces the subscription
  (same id, new token).
- ``places``: JSON list of 1 to 20 places: ``{"lat", "lon", "radius_m"}`` with the coordinates rounded to 0.001°
  (about 100 m) and the radius in whole metres, or ``{"ars"}``, the 12-digit Amtlicher Regionalschlüssel of a region.
- ``topics``: JSON list of topic slugs (:data:`TOPICS`, and ``event:<slug>`` for an event); empty: every topic.
- ``min_severity``: the least severity to be warned of (``Minor``, ``Moderate``, ``Severe``, ``Extreme``).
- ``languages``: JSON list of preferred languages, best first (``de``, ``en``, ``de-x-ls`` for Leichte Sprache ...).
- ``exercise``: 1 for staff test devices, which receive only exercises; else 0.
- ``created_ms``, ``updated_ms``: the day of creation and of the last change (epoch milliseconds of 00:00 UTC).

A deleted subscription is deleted, not marked; so is one whose push service answers that the endpoint is gone.

:class:`SubscriptionIndex` answers "who is to receive this warning" from memory: point places in numpy arrays
(projected metres, sorted by radius class and 5 km grid cell), region places by the ARS hierarchy and by known
boundaries. Store functions take the :class:`~hub.store.Store` and run on its writer thread (``AsyncStore.run``).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import threading
import time
import weakref
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import msgspec
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from hub.errors import HubError
from hub.geo import GERMANY, TOUCH_M2, TOUCH_SHARE, Geography, Registry, geography
from hub.store import Store

COLUMNS = ("id", "token_hash", "endpoint", "p256dh", "auth", "places", "topics", "min_severity", "languages",
           "exercise", "created_ms", "updated_ms")
"""Every column of ``subscriptions``; the module docstring says what each holds."""

_SCHEMA = """CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    endpoint TEXT NOT NULL UNIQUE,
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL,
    places TEXT NOT NULL,
    topics TEXT NOT NULL,
    min_severity TEXT NOT NULL,
    languages TEXT NOT NULL,
    exercise INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL)"""

MAX_PLACES = 20
RADIUS_M = (100, 50_000)
DEFAULT_RADIUS_M = 1_000
GERMANY_BBOX = (5.8, 47.2, 15.1, 55.1)
"""Germany's bounding box (lon min, lat min, lon max, lat max) with a little margin: points must lie inside."""
SEVERITIES = ("Minor", "Moderate", "Severe", "Extreme")
CATEGORIES = ("Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra", "CBRNE",
              "Other")


@dataclass(frozen=True, slots=True)
class Topic:
    de: str
    en: str
    categories: frozenset[str]
    """The CAP categories a warning must have (one of them) to fall under the topic."""


def _topic(de: str, en: str, *categories: str) -> Topic:
    return Topic(de, en, frozenset(categories))


TOPICS: dict[str, Topic] = {
    "geo": _topic("Geophysikalisch (Erdbeben, Erdrutsch)", "Geophysical (earthquake, landslide)", "Geo"),
    "met": _topic("Wetter und Hochwasser", "Weather and flood", "Met"),
    "safety": _topic("Öffentliche Sicherheit", "Public safety", "Safety"),
    "security": _topic("Polizei und Sicherheit", "Law enforcement and security", "Security"),
    "rescue": _topic("Rettung und Bergung", "Rescue and recovery", "Rescue"),
    "fire": _topic("Brand", "Fire", "Fire"),
    "health": _topic("Gesundheit", "Health", "Health"),
    "env": _topic("Umwelt", "Environment", "Env"),
    "transport": _topic("Verkehr", "Transport", "Transport"),
    "infra": _topic("Versorgung und Infrastruktur", "Utilities and infrastructure", "Infra"),
    "cbrne": _topic("Chemisch, biologisch, radiologisch, nuklear, Sprengstoff", "CBRNE", "CBRNE"),
    "other": _topic("Sonstiges", "Other", "Other"),
    # BIWAPP-style topics; warnings carry only CAP categories, so each means the categories it maps onto.
    "bombenfund": _topic("Bombenfund", "Unexploded ordnance", "Safety"),
    "chemieunfall": _topic("Chemieunfall", "Chemical accident", "CBRNE"),
    "feuer": _topic("Feuer", "Fire", "Fire"),
    "hochwasser": _topic("Hochwasser", "Flood", "Met"),
    "erdrutsch-lawine": _topic("Erdrutsch/Lawine", "Landslide/avalanche", "Geo"),
    "grossschadenslage": _topic("Großschadenslage", "Major incident", "Rescue", "Safety"),
    "unwetter": _topic("Unwetter", "Severe weather", "Met"),
    "verkehrsunfall": _topic("Verkehrsunfall", "Traffic accident", "Transport"),
    "unterrichtsausfall": _topic("Unterrichtsausfall", "School closure", "Other"),
    "seuchenfall": _topic("Seuchenfall", "Epidemic", "Health"),
}
_EVENT = re.compile(r"event:([a-z0-9-]{1,40})")
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*")
_FIELDS = frozenset({"subscription", "places", "topics", "min_severity", "languages", "exercise"})


class SubscriptionError(HubError):
    """A subscription request that cannot be accepted; the message is for the citizen (German, then English)."""


class EndpointTaken(SubscriptionError):
    """The push endpoint belongs to another subscription."""


@dataclass(frozen=True, slots=True)
class PointPlace:
    lat: float
    lon: float
    radius_m: int

    def as_dict(self) -> dict[str, Any]:
        return {"lat": self.lat, "lon": self.lon, "radius_m": self.radius_m}


@dataclass(frozen=True, slots=True)
class RegionPlace:
    ars: str

    def as_dict(self) -> dict[str, Any]:
        return {"ars": self.ars}


Place = PointPlace | RegionPlace


@dataclass(frozen=True, slots=True)
class Subscription:
    endpoint: str
    p256dh: str
    auth: str
    places: tuple[Place, ...]
    topics: tuple[str, ...] = ()
    min_severity: str = "Minor"
    languages: tuple[str, ...] = ("de",)
    exercise: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The subscription in the shape of the API's request body."""
        return {"subscription": {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}},
                "places": [p.as_dict() for p in self.places], "topics": list(self.topics),
                "min_severity": self.min_severity, "languages": list(self.languages), "exercise": self.exercise}


CheckEndpoint = Callable[..., str | None]
"""``check_endpoint(url, *, allow_http) -> reason | None`` (adapters.channels.webpush)."""
CheckKeys = Callable[[str, str], str | None]
"""``check_keys(p256dh, auth) -> reason | None`` (adapters.channels.webpush)."""


# -- validation -------------------------------------------------------------------------------------------------------


def parse_subscription(data: Any, *, registry: Registry, check_endpoint: CheckEndpoint, check_keys: CheckKeys,
                       allow_http: bool = False) -> Subscription:
    """A :class:`Subscription` from the API's JSON body; raises :class:`SubscriptionError` naming the field."""
    if not isinstance(data, dict):
        raise SubscriptionError("Ungültige Anfrage / invalid request: JSON-Objekt erwartet / JSON object expected")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise SubscriptionError(f"Unbekanntes Feld / unknown field: {', '.join(map(str, unknown))}")
    endpoint, p256dh, auth = _push(data.get("subscription"), check_endpoint, check_keys, allow_http)
    severity = data.get("min_severity", "Minor")
    if severity not in SEVERITIES:
        raise SubscriptionError(f"Ungültige Mindest-Schwere / invalid min_severity: {severity!r} "
                                f"({', '.join(SEVERITIES)})")
    exercise = data.get("exercise", False)
    if not isinstance(exercise, bool):
        raise SubscriptionError("Ungültiger Wert / invalid value: exercise: true oder false / true or false")
    return Subscription(endpoint, p256dh, auth, _places(data.get("places"), registry), _topics(data.get("topics", [])),
                        severity, _languages(data.get("languages", ["de"])), exercise)


def _push(value: Any, check_endpoint: CheckEndpoint, check_keys: CheckKeys, allow_http: bool) -> tuple[str, str, str]:
    bad = "Ungültiges Push-Abo / invalid push subscription"
    keys = value.get("keys") if isinstance(value, dict) else None
    if not isinstance(keys, dict):
        raise SubscriptionError(f"{bad}: subscription.endpoint und .keys fehlen / "
                                "subscription.endpoint and .keys missing")
    endpoint, p256dh, auth = value.get("endpoint"), keys.get("p256dh"), keys.get("auth")
    if not (isinstance(endpoint, str) and isinstance(p256dh, str) and isinstance(auth, str)
            and endpoint and p256dh and auth):
        raise SubscriptionError(f"{bad}: endpoint, keys.p256dh und keys.auth müssen Text sein / must be strings")
    reason = check_endpoint(endpoint, allow_http=allow_http)
    if reason:
        raise SubscriptionError(f"{bad}: subscription.endpoint: {reason}")
    reason = check_keys(p256dh, auth)
    if reason:
        raise SubscriptionError(f"{bad}: subscription.keys: {reason}")
    return endpoint, p256dh, auth


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _places(value: Any, registry: Registry) -> tuple[Place, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_PLACES:
        raise SubscriptionError(f"Ungültige Orte / invalid places: 1 bis {MAX_PLACES} Orte angeben / "
                                f"give 1 to {MAX_PLACES} places")
    out: list[Place] = []
    for i, item in enumerate(value):
        place = _place(i, item, registry)
        if place not in out:
            out.append(place)
    return tuple(out)


def _place(i: int, item: Any, registry: Registry) -> Place:
    bad = f"Ungültiger Ort / invalid place: places[{i}]"
    if isinstance(item, dict) and set(item) == {"ars"}:
        ars = registry.from_ars(item["ars"]) if isinstance(item["ars"], str) else None
        if ars is None:
            raise SubscriptionError(f"{bad}.ars: {item['ars']!r} ist kein bekannter Regionalschlüssel / "
                                    "is not a known ARS")
        return RegionPlace(ars)
    if not isinstance(item, dict) or not {"lat", "lon"} <= set(item) <= {"lat", "lon", "radius_m"}:
        raise SubscriptionError(f"{bad}: {{lat, lon, radius_m}} oder {{ars}} erwartet / "
                                "expected {lat, lon, radius_m} or {ars}")
    lat, lon = _number(item["lat"]), _number(item["lon"])
    if lat is None or lon is None:
        raise SubscriptionError(f"{bad}: lat und lon müssen Zahlen sein / lat and lon must be numbers")
    lon_min, lat_min, lon_max, lat_max = GERMANY_BBOX
    if not (lat_min <= lat <= lat_max and lon_min <= lon <= lon_max):
        swapped = lat_min <= lon <= lat_max and lon_min <= lat <= lon_max
        hint = " (lat und lon vertauscht? / lat and lon swapped?)" if swapped else ""
        raise SubscriptionError(f"{bad}: {lat}, {lon} liegt nicht in Deutschland / lies outside Germany{hint}")
    radius = _number(item.get("radius_m", DEFAULT_RADIUS_M))
    if radius is None or not RADIUS_M[0] <= radius <= RADIUS_M[1]:
        low, high = RADIUS_M
        raise SubscriptionError(f"{bad}.radius_m: {item.get('radius_m')!r} liegt nicht zwischen {low} und {high} m / "
                                f"is not between {low} and {high} m")
    return PointPlace(round(lat, 3), round(lon, 3), round(radius))


def _topics(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > 50:
        raise SubscriptionError("Ungültige Themen / invalid topics: Liste mit bis zu 50 Themen / "
                                "a list of up to 50 topics")
    out: list[str] = []
    for item in value:
        topic = item.strip().lower() if isinstance(item, str) else None
        if topic is None or (topic not in TOPICS and not _EVENT.fullmatch(topic)):
            raise SubscriptionError(f"Unbekanntes Thema / unknown topic: {item!r}")
        if topic not in out:
            out.append(topic)
    return tuple(out)


def _languages(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= 5:
        raise SubscriptionError("Ungültige Sprachen / invalid languages: 1 bis 5 Sprachen angeben / "
                                "give 1 to 5 languages")
    out: list[str] = []
    for item in value:
        lang = item.strip().lower() if isinstance(item, str) else None
        if lang is None or not _LANGUAGE.fullmatch(lang):
            raise SubscriptionError(f"Ungültige Sprache / invalid language: {item!r}")
        if lang not in out:
            out.append(lang)
    return tuple(out)


def best_language(sub_langs: Sequence[str], warning_langs: Sequence[str]) -> str:
    """The warning language to send: an exact match in the subscriber's order, then one of the same primary subtag
    (the plainest first: ``de-DE`` before ``de-x-ls``), then German, then the warning's first language."""
    if not warning_langs:
        return sub_langs[0] if sub_langs else "de"
    low = [w.lower() for w in warning_langs]
    for want in sub_langs:
        if want.lower() in low:
            return warning_langs[low.index(want.lower())]
    by_length = sorted(range(len(low)), key=lambda i: low[i].count("-"))
    for primary in [s.lower().split("-")[0] for s in sub_langs] + ["de"]:
        for i in by_length:
            if low[i].split("-")[0] == primary:
                return warning_langs[i]
    return warning_langs[0]


# -- store ------------------------------------------------------------------------------------------------------------

_READY: weakref.WeakSet[Store] = weakref.WeakSet()
_DAY_MS = 86_400_000
_NO_HASH = hashlib.sha256(b"no such subscription").hexdigest()


def ensure_schema(store: Store) -> None:
    """Create the table if it is missing (cheap after the first call per store)."""
    if store in _READY:
        return
    store.conn.execute(_SCHEMA)
    _READY.add(store)


def _today_ms() -> int:
    now = time.time_ns() // 1_000_000
    return now - now % _DAY_MS


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


_json = msgspec.json.encode


def _values(sub: Subscription) -> tuple[Any, ...]:
    return (sub.endpoint, sub.p256dh, sub.auth, _json([p.as_dict() for p in sub.places]).decode(),
            _json(sub.topics).decode(), sub.min_severity, _json(sub.languages).decode(), int(sub.exercise))


def create(store: Store, sub: Subscription) -> tuple[str, str]:
    """Store a subscription; returns ``(id, token)``. An endpoint already subscribed keeps its id, gets a new token
    (the old one stops working) and the new settings."""
    ensure_schema(store)
    sub_id, token, day = secrets.token_urlsafe(16), secrets.token_urlsafe(32), _today_ms()
    rows = store.conn.execute(
        f"INSERT INTO subscriptions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        " ON CONFLICT(endpoint) DO UPDATE SET token_hash=excluded.token_hash, p256dh=excluded.p256dh,"
        " auth=excluded.auth, places=excluded.places, topics=excluded.topics, min_severity=excluded.min_severity,"
        " languages=excluded.languages, exercise=excluded.exercise, updated_ms=excluded.updated_ms RETURNING id",
        (sub_id, _token_hash(token), *_values(sub), day, day)).fetchall()  # all: RETURNING commits when done
    return str(rows[0][0]), token


def _authorised(store: Store, sub_id: str, token: str) -> tuple[Any, ...] | None:
    """The row if the token opens it; an unknown id costs the same comparison as a wrong token."""
    row = store.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM subscriptions WHERE id=?", (sub_id,)).fetchone()
    ok = hmac.compare_digest(_token_hash(token), row[1] if row else _NO_HASH)
    return row if row is not None and ok else None


def _from_row(row: Sequence[Any]) -> Subscription:
    d = dict(zip(COLUMNS, row, strict=True))
    places = tuple(RegionPlace(p["ars"]) if "ars" in p else PointPlace(p["lat"], p["lon"], p["radius_m"])
                   for p in msgspec.json.decode(d["places"]))
    return Subscription(d["endpoint"], d["p256dh"], d["auth"], places, tuple(msgspec.json.decode(d["topics"])),
                        d["min_severity"], tuple(msgspec.json.decode(d["languages"])), bool(d["exercise"]))


def get(store: Store, sub_id: str, token: str) -> Subscription | None:
    """The subscription, or None for an unknown id or a wrong token (alike)."""
    ensure_schema(store)
    row = _authorised(store, sub_id, token)
    return _from_row(row) if row is not None else None


def update(store: Store, sub_id: str, token: str, sub: Subscription) -> bool:
    """Replace a subscription's settings; False for an unknown id or a wrong token. Raises :class:`EndpointTaken`
    if another subscription has the new endpoint (subscribing it again replaces that one)."""
    ensure_schema(store)
    with store.transaction() as conn:
        if _authorised(store, sub_id, token) is None:
            return False
        if conn.execute("SELECT 1 FROM subscriptions WHERE endpoint=? AND id<>?", (sub.endpoint, sub_id)).fetchone():
            raise EndpointTaken("Push-Endpunkt gehört zu einem anderen Abo / push endpoint belongs to another "
                                "subscription (neu abonnieren ersetzt es / subscribing again replaces it)")
        conn.execute("UPDATE subscriptions SET endpoint=?, p256dh=?, auth=?, places=?, topics=?, min_severity=?,"
                     " languages=?, exercise=?, updated_ms=? WHERE id=?", (*_values(sub), _today_ms(), sub_id))
    return True


def delete(store: Store, sub_id: str, token: str) -> bool:
    """Delete a subscription; False for an unknown id or a wrong token."""
    ensure_schema(store)
    with store.transaction() as conn:
        if _authorised(store, sub_id, token) is None:
            return False
        conn.execute("DELETE FROM subscriptions WHERE id=?", (sub_id,))
    return True


def delete_ids(store: Store, ids: Iterable[str]) -> int:
    """Delete subscriptions by id (their push endpoint is gone: 404/410); returns how many were deleted."""
    ensure_schema(store)
    with store.transaction() as conn:
        return conn.executemany("DELETE FROM subscriptions WHERE id=?", [(i,) for i in ids]).rowcount


def load_all(store: Store) -> list[tuple[str, Subscription]]:
    """Every subscription with its id."""
    ensure_schema(store)
    rows = store.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM subscriptions ORDER BY id").fetchall()
    return [(row[0], _from_row(row)) for row in rows]


def load_index(store: Store, index: SubscriptionIndex) -> int:
    """Fill ``index`` with every subscription (streamed: no list of all of them); returns how many."""
    ensure_schema(store)
    rows = store.conn.execute("SELECT id, places, topics, min_severity, exercise FROM subscriptions")
    count = 0

    def items() -> Iterator[tuple[str, Subscription]]:
        nonlocal count
        for sub_id, places, topics, severity, exercise in rows:
            count += 1
            yield sub_id, _from_row((sub_id, "", "", "", "", places, topics, severity, "[]", exercise, 0, 0))

    index.reset(items())
    return count


# -- targeting index --------------------------------------------------------------------------------------------------

_RANK = {s: n for n, s in enumerate(SEVERITIES, 1)}
_CAT_BIT = {c: 1 << n for n, c in enumerate(CATEGORIES)}
_ALL_TOPICS = 1 << 15
"""Topic bit of subscriptions without topics (every warning has it)."""
_RADIUS_CLASSES = (1_000, 5_000, 20_000, 50_000)
"""Point places are queried per class, each with its own largest radius: one 50 km subscriber does not widen the
search for all the 1 km ones."""
_CELL_M = 5_000.0
_DELTA_MAX = 2_048


@lru_cache(maxsize=4096)
def _topic_mask(topics: tuple[str, ...]) -> tuple[int, tuple[str, ...]]:
    """(category bitmask, event slugs) of a subscription's topics."""
    if not topics:
        return _ALL_TOPICS, ()
    mask = 0
    for t in topics:
        for cat in TOPICS[t].categories if t in TOPICS else ():
            mask |= _CAT_BIT[cat]
    return mask, tuple(t.removeprefix("event:") for t in topics if t.startswith("event:"))


def _grid() -> tuple[float, float, int, int]:
    """Origin, columns and rows of the 5 km grid over Germany's bounding box (projected)."""
    lon_min, lat_min, lon_max, lat_max = GERMANY_BBOX
    mesh = np.meshgrid(np.linspace(lon_min, lon_max, 60), np.linspace(lat_min, lat_max, 60))
    xy = GERMANY.forward(np.column_stack([m.ravel() for m in mesh]))
    x0, y0 = xy.min(axis=0) - _CELL_M
    x1, y1 = xy.max(axis=0) + _CELL_M
    return float(x0), float(y0), int((x1 - x0) // _CELL_M) + 1, int((y1 - y0) // _CELL_M) + 1


_X0, _Y0, _COLS, _ROWS = _grid()
_CELLS = _COLS * _ROWS


@dataclass(slots=True)
class _Raw:
    """Column arrays: one row per subscription (``ids`` ...) and one per place (``p*`` points, ``r*`` regions)."""

    ids: np.ndarray
    min_sev: np.ndarray
    topics: np.ndarray
    exercise: np.ndarray
    events: list[tuple[int, str]]
    px: np.ndarray
    py: np.ndarray
    pr: np.ndarray
    psub: np.ndarray
    rars: np.ndarray
    rsub: np.ndarray

    @classmethod
    def of(cls, items: Iterable[tuple[str, Subscription]]) -> _Raw:
        ids: list[bytes] = []
        sev, topics, exercise = array("b"), array("H"), array("b")
        lon, lat, radius, psub, rsub = array("d"), array("d"), array("f"), array("i"), array("i")
        rars: list[str] = []
        events: list[tuple[int, str]] = []
        for n, (sub_id, sub) in enumerate(items):
            ids.append(sub_id.encode())
            sev.append(_RANK.get(sub.min_severity, 1))
            mask, slugs = _topic_mask(sub.topics)
            topics.append(mask)
            events.extend((n, slug) for slug in slugs)
            exercise.append(sub.exercise)
            for p in sub.places:
                if isinstance(p, PointPlace):
                    lon.append(p.lon)
                    lat.append(p.lat)
                    radius.append(p.radius_m)
                    psub.append(n)
                else:
                    rars.append(p.ars)
                    rsub.append(n)
        xy = GERMANY.forward(np.column_stack((np.array(lon), np.array(lat)))) if lon else np.zeros((0, 2))
        return cls(np.array(ids, dtype="S"), np.array(sev, np.int8), np.array(topics, np.uint16),
                   np.array(exercise, bool), events, xy[:, 0].copy(), xy[:, 1].copy(), np.array(radius, np.float32),
                   np.array(psub, np.int32), np.array(rars, dtype="S12"), np.array(rsub, np.int32))

    @staticmethod
    def concat(parts: Sequence[_Raw]) -> _Raw:
        offsets = np.cumsum([0] + [len(p.ids) for p in parts])
        cat = np.concatenate
        return _Raw(cat([p.ids for p in parts]), cat([p.min_sev for p in parts]), cat([p.topics for p in parts]),
                    cat([p.exercise for p in parts]), [(n + o, s) for p, o in zip(parts, offsets, strict=False)
                                                       for n, s in p.events],
                    cat([p.px for p in parts]), cat([p.py for p in parts]), cat([p.pr for p in parts]),
                    cat([(p.psub + o).astype(np.int32) for p, o in zip(parts, offsets, strict=False)]),
                    cat([p.rars for p in parts]),
                    cat([(p.rsub + o).astype(np.int32) for p, o in zip(parts, offsets, strict=False)]))

    def select(self, keep: np.ndarray) -> _Raw:
        """The rows of the subscriptions where ``keep`` is True, renumbered."""
        new = np.cumsum(keep, dtype=np.int64) - 1
        pk, rk = keep[self.psub], keep[self.rsub]
        return _Raw(self.ids[keep], self.min_sev[keep], self.topics[keep], self.exercise[keep],
                    [(int(new[n]), s) for n, s in self.events if keep[n]], self.px[pk], self.py[pk], self.pr[pk],
                    new[self.psub[pk]].astype(np.int32), self.rars[rk], new[self.rsub[rk]].astype(np.int32))


@dataclass(slots=True)
class _Query:
    geom: BaseGeometry | None
    """Projected area of the warning (None: only region keys)."""
    point_geom: BaseGeometry | None
    """What point places are tested against: ``geom``, else the known boundaries of the region keys."""
    keys: set[str]
    rank: int
    """Severity rank of the warning; 0 (Unknown) passes every filter."""
    topic_bits: int
    events: set[str]
    exercise: bool


@dataclass(slots=True)
class _Part:
    """An immutable set of subscriptions, sorted by id, with only ``alive`` changing (removals)."""

    raw: _Raw
    reg: Registry
    geo: Geography
    alive: np.ndarray = field(init=False)
    events: dict[str, np.ndarray] = field(init=False)
    offsets: np.ndarray = field(init=False)
    class_max: list[float] = field(init=False)
    region_subs: dict[str, np.ndarray] = field(init=False)
    below: dict[str, list[str]] = field(init=False)
    region_tree: shapely.STRtree | None = field(init=False)
    region_geoms: list[tuple[str, BaseGeometry]] = field(init=False)

    def __post_init__(self) -> None:
        raw = self.raw
        order = np.argsort(raw.ids, kind="stable")
        rank = np.empty(len(order), np.int32)
        rank[order] = np.arange(len(order), dtype=np.int32)
        cls = np.searchsorted(np.array(_RADIUS_CLASSES, np.float32), raw.pr).clip(0, len(_RADIUS_CLASSES) - 1)
        col = ((raw.px - _X0) // _CELL_M).clip(0, _COLS - 1).astype(np.int64)
        row = ((raw.py - _Y0) // _CELL_M).clip(0, _ROWS - 1).astype(np.int64)
        key = cls * _CELLS + row * _COLS + col
        porder = np.argsort(key, kind="stable")
        raw = self.raw = _Raw(raw.ids[order], raw.min_sev[order], raw.topics[order], raw.exercise[order],
                              [(int(rank[n]), s) for n, s in raw.events], raw.px[porder], raw.py[porder],
                              raw.pr[porder], rank[raw.psub[porder]], raw.rars, rank[raw.rsub])
        self.offsets = np.searchsorted(key[porder], np.arange(len(_RADIUS_CLASSES) * _CELLS + 1))
        self.class_max = [float(raw.pr[self.offsets[c * _CELLS]:self.offsets[(c + 1) * _CELLS]].max(initial=0.0))
                          for c in range(len(_RADIUS_CLASSES))]
        self.alive = np.ones(len(raw.ids), bool)
        events: dict[str, list[int]] = defaultdict(list)
        for n, slug in raw.events:
            events[slug].append(n)
        self.events = {slug: np.array(subs, np.int32) for slug, subs in events.items()}
        self._regions()

    def _regions(self) -> None:
        raw = self.raw
        keys, inverse = np.unique(raw.rars, return_inverse=True)
        groups = np.split(raw.rsub[np.argsort(inverse, kind="stable")], np.cumsum(np.bincount(inverse))[:-1])
        self.region_subs = {k.decode(): g for k, g in zip(keys, groups, strict=True)} if len(keys) else {}
        self.below = defaultdict(list)
        self.region_geoms = []
        for ars in self.region_subs:
            for anc in self.reg.ancestors(ars):
                self.below[anc.ars].append(ars)
            geom = self.geo.geometry(ars)
            if geom is not None and not geom.is_empty:
                self.region_geoms.append((ars, geom))
        self.region_tree = shapely.STRtree([g for _, g in self.region_geoms]) if self.region_geoms else None

    def kill(self, sub_id: str) -> bool:
        key = sub_id.encode()
        ids = self.raw.ids
        if not len(ids) or len(key) > ids.dtype.itemsize:
            return False
        i = int(np.searchsorted(ids, key))
        if i < len(ids) and ids[i] == key and self.alive[i]:
            self.alive[i] = False
            return True
        return False

    def eligible(self, subs: np.ndarray, q: _Query) -> np.ndarray:
        """Severity, topic, exercise and liveness filter for subscription rows."""
        raw = self.raw
        ok = self.alive[subs] & (raw.exercise[subs] == q.exercise)
        if q.rank:
            ok &= raw.min_sev[subs] <= q.rank
        topical = (raw.topics[subs] & q.topic_bits) != 0
        for slug in q.events & self.events.keys():
            topical |= np.isin(subs, self.events[slug])
        return ok & topical

    def match(self, q: _Query) -> np.ndarray:
        found = [self._points(q), self._regions_hit(q)]
        subs = np.unique(np.concatenate(found))
        return self.raw.ids[subs[self.eligible(subs, q)]]

    def _points(self, q: _Query) -> np.ndarray:
        g = q.point_geom
        if g is None or g.is_empty or not len(self.raw.px):
            return np.zeros(0, np.int32)
        minx, miny, maxx, maxy = g.bounds
        cand = []
        for c, reach in enumerate(self.class_max):
            c0, c1 = (int(np.clip((v - _X0) // _CELL_M, 0, _COLS - 1)) for v in (minx - reach, maxx + reach))
            r0, r1 = (int(np.clip((v - _Y0) // _CELL_M, 0, _ROWS - 1)) for v in (miny - reach, maxy + reach))
            base = c * _CELLS + np.arange(r0, r1 + 1) * _COLS
            cand.append(_ranges(self.offsets[base + c0], self.offsets[base + c1 + 1]))
        idx = np.concatenate(cand)
        raw = self.raw
        x, y, r = raw.px[idx], raw.py[idx], raw.pr[idx].astype(np.float64)
        dx = np.maximum(np.maximum(minx - x, x - maxx), 0.0)
        dy = np.maximum(np.maximum(miny - y, y - maxy), 0.0)
        near = dx * dx + dy * dy <= r * r
        near[near] = self.eligible(raw.psub[idx[near]], q)
        idx, x, y, r = idx[near], x[near], y[near], r[near]
        hit = shapely.contains_xy(g, x, y)
        rest = np.flatnonzero(~hit)
        if len(rest):
            hit[rest] = shapely.dwithin(g, shapely.points(x[rest], y[rest]), r[rest])
        return raw.psub[idx[hit]]

    def _regions_hit(self, q: _Query) -> np.ndarray:
        related: set[str] = set()
        for key in q.keys:
            related.update(self.below.get(key, ()))
            related.update(a for a in (key, *(r.ars for r in self.reg.ancestors(key))) if a in self.region_subs)
        g = q.geom
        if g is not None and not g.is_empty and self.region_tree is not None:
            for i in self.region_tree.query(g, predicate="intersects"):
                ars, boundary = self.region_geoms[i]
                if ars not in related and _touches(g, boundary):
                    related.add(ars)
        if not related:
            return np.zeros(0, np.int32)
        return np.concatenate([self.region_subs[a] for a in related])


def _touches(g: BaseGeometry, boundary: BaseGeometry) -> bool:
    """An areal warning touches a region where the overlap is more than generalised borders produce (hub.geo)."""
    if g.area == 0:
        return True
    inter = float(g.intersection(boundary).area)
    return inter >= TOUCH_M2 and inter >= TOUCH_SHARE * min(float(g.area), float(boundary.area))


def _ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(lo[i], hi[i])``."""
    lens = hi - lo
    total = int(lens.sum())
    if not total:
        return np.zeros(0, np.int64)
    starts = np.repeat(lo - np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
    return starts + np.arange(total)


class SubscriptionIndex:
    """Finds the subscriptions a warning reaches. One object is shared by the web API (which tells it of every
    change) and the delivery pipeline (which asks it); thread-safe.

    Changes go to a small unindexed delta (removals mark the base); the next :meth:`match` after the delta has
    grown past a few thousand subscriptions rebuilds the base from its arrays (0.25-0.5 s per million places).
    """

    def __init__(self, items: Iterable[tuple[str, Subscription]] = (), *, geo: Geography | None = None) -> None:
        self._geo = geo
        self._lock = threading.RLock()
        self._delta: dict[str, Subscription] = {}
        self._delta_part: _Part | None = None
        self._dead = 0
        self._base = self._part(_Raw.of(items)) if items else None

    @property
    def geo(self) -> Geography:
        if self._geo is None:
            self._geo = geography()
        return self._geo

    def _part(self, raw: _Raw) -> _Part:
        return _Part(raw, self.geo.registry, self.geo)

    def reset(self, items: Iterable[tuple[str, Subscription]]) -> None:
        """Replace the whole content (streamed: ``items`` may be a generator)."""
        base = self._part(_Raw.of(items))
        with self._lock:
            self._base, self._delta, self._delta_part, self._dead = base, {}, None, 0

    def put(self, sub_id: str, sub: Subscription) -> None:
        """Add a subscription or replace the one with this id."""
        with self._lock:
            self._kill(sub_id)
            self._delta[sub_id] = sub
            self._delta_part = None

    def remove(self, sub_id: str) -> None:
        self.remove_many((sub_id,))

    def remove_many(self, ids: Iterable[str]) -> None:
        with self._lock:
            for sub_id in ids:
                self._kill(sub_id)
                if self._delta.pop(sub_id, None) is not None:
                    self._delta_part = None

    def _kill(self, sub_id: str) -> None:
        if self._base is not None and self._base.kill(sub_id):
            self._dead += 1

    def __len__(self) -> int:
        with self._lock:
            base = len(self._base.raw.ids) - self._dead if self._base is not None else 0
            return base + len(self._delta)

    def _compact(self) -> None:
        base = self._base
        n = len(base.raw.ids) if base is not None else 0
        if len(self._delta) <= _DELTA_MAX and self._dead <= max(_DELTA_MAX, n // 4):
            return
        parts = [base.raw.select(base.alive)] if base is not None else []
        self._base = self._part(_Raw.concat([*parts, _Raw.of(self._delta.items())]))
        self._delta, self._delta_part, self._dead = {}, None, 0

    def match(self, area_geom_lonlat: BaseGeometry | None, region_keys: Iterable[str], *, severity: str,
              categories: Iterable[str], event_topics: Iterable[str], exercise: bool,
              topic_only: bool = False) -> list[str]:
        """Ids of the subscriptions a warning reaches.

        ``area_geom_lonlat``: the warning's area (lon/lat shapely geometry; for an alert with shapes and code-only
        areas, their union), or None. ``region_keys``: ARS of the regions it covers (12 digits or prefixes).
        A point place matches where its circle (radius in metres on the ground) reaches the area, or, without an
        area, the known boundaries of the region keys (Kreise and above; Gemeinden only with extra boundaries). A
        region place matches a key above, equal to or below it, or an area overlapping its known boundary.
        Then: severity at least ``min_severity`` (``Unknown`` passes), a topic matching ``categories`` (CAP) or
        ``event_topics`` (slugs, ``event:`` optional) unless the subscription has none, and exercises only to
        exercise subscriptions and they only exercises. ``topic_only``: a message for the subscribers of
        ``event_topics`` alone (a school closure, a festival): subscriptions without one of those topics, including
        those without topics that take every public warning, are not matched."""
        reg = self.geo.registry
        keys = {a for k in region_keys if (a := reg.from_ars(str(k))) is not None}
        geom = _projected(area_geom_lonlat)
        point_geom = geom
        if point_geom is None:
            bounds = [b for k in sorted(keys) if (b := self.geo.geometry(k)) is not None]
            point_geom = shapely.union_all(bounds) if bounds else None
            if point_geom is not None:
                shapely.prepare(point_geom)
        bits = 0 if topic_only else _ALL_TOPICS
        for cat in () if topic_only else categories:
            bits |= _CAT_BIT.get(cat, 0)
        q = _Query(geom, point_geom, keys, _RANK.get(severity, 0), bits,
                   {e.removeprefix("event:") for e in event_topics}, exercise)
        with self._lock:
            self._compact()
            if self._delta and self._delta_part is None:
                self._delta_part = self._part(_Raw.of(self._delta.items()))
            parts = [p for p in (self._base, self._delta_part if self._delta else None) if p is not None]
            return [i.decode() for p in parts for i in p.match(q)]


    def warm(self) -> None:
        """Run one match of a small area, so the first real warning does not pay for lazy imports and caches."""
        self.match(shapely.box(10.0, 51.0, 10.001, 51.001), (), severity="Extreme", categories=(), event_topics=(),
                   exercise=False)


def _projected(geom_lonlat: BaseGeometry | None) -> BaseGeometry | None:
    if geom_lonlat is None:
        return None
    geom = GERMANY.project(geom_lonlat)
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    shapely.prepare(geom)
    return geom
