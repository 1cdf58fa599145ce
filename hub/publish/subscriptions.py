"""Citizen subscriptions without accounts: the table ``subscriptions``, the parsing of a request, and the store
functions.

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
- ``sources``: JSON list of source kinds (:data:`hub.publish.sources.SOURCES`: ``amtlich``, ``wetter``, ``pegel``);
  empty: every source.
- ``quiet_hours``: JSON ``{"from": "HH:MM", "to": "HH:MM"}`` (Europe/Berlin local time; ``to`` may be the next day)
  or NULL. In those hours a warning below Severe is not pushed to the subscription (suppressed, not kept for later:
  a Minor or Moderate warning that mattered in the morning is on the page, and one still in force is sent again only
  if it is updated); Severe and Extreme always come through.
- ``exercise``: 1 for staff test devices, which receive only exercises; else 0. Set only with a token from the
  console or the CLI (:mod:`hub.access.exercise_tokens`).
- ``created_ms``, ``updated_ms``: the day of creation and of the last change (epoch milliseconds of 00:00 UTC).

A deleted subscription is deleted, not marked; so is one whose push service answers that the endpoint is gone.

Store functions take the :class:`~hub.store.db.Store` and run on its writer thread (``AsyncStore.run``). Who is to
receive a warning is answered from memory by :class:`hub.publish.index.SubscriptionIndex`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from hub.access import exercise_tokens
from hub.errors import HubError
from hub.geo.registry import Registry
from hub.i18n.catalogs import N_
from hub.ports import CheckEndpoint, CheckKeys
from hub.publish.sources import SOURCES
from hub.store.db import Store

COLUMNS = ("id", "token_hash", "endpoint", "p256dh", "auth", "places", "topics", "min_severity", "languages",
           "exercise", "created_ms", "updated_ms", "sources", "quiet_hours")
"""Every column of ``subscriptions``; the module docstring says what each holds."""

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
    """The German label, a message id of the ``subscribe`` catalogues (translated where shown)."""
    en: str
    categories: frozenset[str]
    """The CAP categories a warning must have (one of them) to fall under the topic."""


def _topic(de: str, en: str, *categories: str) -> Topic:
    return Topic(de, en, frozenset(categories))


TOPICS: dict[str, Topic] = {
    "geo": _topic(N_("Geophysikalisch (Erdbeben, Erdrutsch)"), "Geophysical (earthquake, landslide)", "Geo"),
    "met": _topic(N_("Wetter und Hochwasser"), "Weather and flood", "Met"),
    "safety": _topic(N_("Öffentliche Sicherheit"), "Public safety", "Safety"),
    "security": _topic(N_("Polizei und Sicherheit"), "Law enforcement and security", "Security"),
    "rescue": _topic(N_("Rettung und Bergung"), "Rescue and recovery", "Rescue"),
    "fire": _topic(N_("Brand"), "Fire", "Fire"),
    "health": _topic(N_("Gesundheit"), "Health", "Health"),
    "env": _topic(N_("Umwelt"), "Environment", "Env"),
    "transport": _topic(N_("Verkehr"), "Transport", "Transport"),
    "infra": _topic(N_("Versorgung und Infrastruktur"), "Utilities and infrastructure", "Infra"),
    "cbrne": _topic(N_("Chemisch, biologisch, radiologisch, nuklear, Sprengstoff"), "CBRNE", "CBRNE"),
    "other": _topic(N_("Sonstiges"), "Other", "Other"),
    # BIWAPP-style topics; warnings carry only CAP categories, so each means the categories it maps onto.
    "bombenfund": _topic(N_("Bombenfund"), "Unexploded ordnance", "Safety"),
    "chemieunfall": _topic(N_("Chemieunfall"), "Chemical accident", "CBRNE"),
    "feuer": _topic(N_("Feuer"), "Fire", "Fire"),
    "hochwasser": _topic(N_("Hochwasser"), "Flood", "Met"),
    "erdrutsch-lawine": _topic(N_("Erdrutsch/Lawine"), "Landslide/avalanche", "Geo"),
    "grossschadenslage": _topic(N_("Großschadenslage"), "Major incident", "Rescue", "Safety"),
    "unwetter": _topic(N_("Unwetter"), "Severe weather", "Met"),
    "verkehrsunfall": _topic(N_("Verkehrsunfall"), "Traffic accident", "Transport"),
    "unterrichtsausfall": _topic(N_("Unterrichtsausfall"), "School closure", "Other"),
    "seuchenfall": _topic(N_("Seuchenfall"), "Epidemic", "Health"),
}
_EVENT = re.compile(r"event:([a-z0-9-]{1,40})")
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*")
_FIELDS = frozenset({"subscription", "places", "topics", "min_severity", "languages", "exercise", "sources",
                     "quiet_hours"})
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


class SubscriptionError(HubError):
    """A subscription request that cannot be accepted; the message is for the citizen (German, then English)."""


class EndpointTaken(SubscriptionError):
    """The push endpoint belongs to another subscription."""


class ExerciseRefused(SubscriptionError):
    """``exercise: true`` without a valid exercise token (see :mod:`hub.access.exercise_tokens`)."""


class SubscriptionsFull(SubscriptionError):
    """The hub holds ``[push] max_subscriptions`` already."""


FULL = ("Derzeit keine neuen Abos möglich, bitte später erneut versuchen / no new subscriptions at the moment, "
        "please try again later")


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
    sources: tuple[str, ...] = ()
    quiet_hours: tuple[int, int] | None = None
    """(from, to) in minutes after local midnight (Europe/Berlin); None: no quiet hours."""

    def as_dict(self) -> dict[str, Any]:
        """The subscription in the shape of the API's request body."""
        return {"subscription": {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}},
                "places": [p.as_dict() for p in self.places], "topics": list(self.topics),
                "min_severity": self.min_severity, "languages": list(self.languages), "exercise": self.exercise,
                "sources": list(self.sources), "quiet_hours": quiet_dict(self.quiet_hours)}


def quiet_dict(quiet: tuple[int, int] | None) -> dict[str, str] | None:
    """Quiet hours as the API writes them: ``{"from": "22:00", "to": "07:00"}``."""
    if quiet is None:
        return None
    return {"from": f"{quiet[0] // 60:02d}:{quiet[0] % 60:02d}", "to": f"{quiet[1] // 60:02d}:{quiet[1] % 60:02d}"}



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
                        severity, _languages(data.get("languages", ["de"])), exercise,
                        _sources(data.get("sources", [])), _quiet(data.get("quiet_hours")))


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
    for i, item in enumerate(value):
        topic = item.strip().lower() if isinstance(item, str) else None
        if topic is None or (topic not in TOPICS and not _EVENT.fullmatch(topic)):
            raise SubscriptionError(f"Unbekanntes Thema / unknown topic: topics[{i}]: {item!r}")
        if topic not in out:
            out.append(topic)
    return tuple(out)


def _sources(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise SubscriptionError(f"Ungültige Quellen / invalid sources: Liste aus {', '.join(SOURCES)} / "
                                f"a list of {', '.join(SOURCES)}")
    out: list[str] = []
    for i, item in enumerate(value):
        if item not in SOURCES:
            raise SubscriptionError(f"Unbekannte Quelle / unknown source: sources[{i}]: {item!r} "
                                    f"({', '.join(SOURCES)})")
        if item not in out:
            out.append(item)
    return tuple(out)


def _quiet(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"from", "to"}:
        raise SubscriptionError('Ungültige Ruhezeit / invalid quiet_hours: {"from": "22:00", "to": "07:00"} oder / '
                                "or null erwartet / expected")
    minutes = []
    for key in ("from", "to"):
        found = _CLOCK.fullmatch(value[key]) if isinstance(value[key], str) else None
        if found is None:
            raise SubscriptionError(f"Ungültige Uhrzeit / invalid time: quiet_hours.{key}: {value[key]!r} "
                                    "(HH:MM, 00:00-23:59)")
        minutes.append(int(found[1]) * 60 + int(found[2]))
    if minutes[0] == minutes[1]:
        raise SubscriptionError("Ungültige Ruhezeit / invalid quiet_hours: from und to gleich / from equals to")
    return minutes[0], minutes[1]


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

_DAY_MS = 86_400_000
_NO_HASH = hashlib.sha256(b"no such subscription").hexdigest()


def _today_ms() -> int:
    now = time.time_ns() // 1_000_000
    return now - now % _DAY_MS


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


_json = msgspec.json.encode


def _values(sub: Subscription) -> tuple[Any, ...]:
    """The stored columns of a subscription, in the order of :data:`_SETTINGS`."""
    quiet = quiet_dict(sub.quiet_hours)
    return (sub.endpoint, sub.p256dh, sub.auth, _json([p.as_dict() for p in sub.places]).decode(),
            _json(sub.topics).decode(), sub.min_severity, _json(sub.languages).decode(), int(sub.exercise),
            _json(sub.sources).decode(), _json(quiet).decode() if quiet else None)


_SETTINGS = ("endpoint", "p256dh", "auth", "places", "topics", "min_severity", "languages", "exercise", "sources",
             "quiet_hours")


def create(store: Store, sub: Subscription, *, exercise_token: str | None = None,
           at_capacity: bool = False) -> tuple[str, str]:
    """Store a subscription; returns ``(id, token)``. An endpoint already subscribed keeps its id, gets a new token
    (the old one stops working) and the new settings.

    ``exercise: true`` needs ``exercise_token`` (:func:`hub.access.exercise_tokens.redeem`, used up here) unless the
    endpoint is already an exercise subscription; else :class:`ExerciseRefused`. ``at_capacity``: the hub holds as
    many subscriptions as it may, so only an endpoint already subscribed is accepted (else :class:`SubscriptionsFull`).
    """
    sub_id, token, day = secrets.token_urlsafe(16), secrets.token_urlsafe(32), _today_ms()
    with store.transaction() as conn:
        existing = conn.execute("SELECT id, exercise FROM subscriptions WHERE endpoint=?", (sub.endpoint,)).fetchone()
        if at_capacity and existing is None:
            raise SubscriptionsFull(FULL)
        if sub.exercise and not (existing and existing[1]):
            _redeem(store, exercise_token, existing[0] if existing else sub_id)
        updates = ", ".join(f"{c}=excluded.{c}" for c in ("token_hash", *_SETTINGS[1:], "updated_ms"))
        rows = conn.execute(
            f"INSERT INTO subscriptions (id, token_hash, {', '.join(_SETTINGS)}, created_ms, updated_ms)"
            f" VALUES ({', '.join('?' * (len(_SETTINGS) + 4))})"
            f" ON CONFLICT(endpoint) DO UPDATE SET {updates} RETURNING id",
            (sub_id, _token_hash(token), *_values(sub), day, day)).fetchall()  # all: RETURNING commits when done
    return str(rows[0][0]), token


def _redeem(store: Store, token: str | None, sub_id: str) -> None:
    try:
        exercise_tokens.redeem(store, token, sub_id)
    except exercise_tokens.ExerciseRefused as err:
        raise ExerciseRefused(str(err)) from None


def _authorised(store: Store, sub_id: str, token: str) -> tuple[Any, ...] | None:
    """The row if the token opens it; an unknown id costs the same comparison as a wrong token."""
    row = store.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM subscriptions WHERE id=?", (sub_id,)).fetchone()
    ok = hmac.compare_digest(_token_hash(token), row[1] if row else _NO_HASH)
    return row if row is not None and ok else None


def _from_row(row: Sequence[Any]) -> Subscription:
    d = dict(zip(COLUMNS, row, strict=True))
    places = tuple(RegionPlace(p["ars"]) if "ars" in p else PointPlace(p["lat"], p["lon"], p["radius_m"])
                   for p in msgspec.json.decode(d["places"]))
    quiet = msgspec.json.decode(d["quiet_hours"]) if d["quiet_hours"] else None
    return Subscription(d["endpoint"], d["p256dh"], d["auth"], places, tuple(msgspec.json.decode(d["topics"])),
                        d["min_severity"], tuple(msgspec.json.decode(d["languages"])), bool(d["exercise"]),
                        tuple(msgspec.json.decode(d["sources"] or "[]")), _quiet(quiet))


def get(store: Store, sub_id: str, token: str) -> Subscription | None:
    """The subscription, or None for an unknown id or a wrong token (alike)."""
    row = _authorised(store, sub_id, token)
    return _from_row(row) if row is not None else None


def update(store: Store, sub_id: str, token: str, sub: Subscription, *, exercise_token: str | None = None) -> bool:
    """Replace a subscription's settings; False for an unknown id or a wrong token. Raises :class:`EndpointTaken`
    if another subscription has the new endpoint (subscribing it again replaces that one), and
    :class:`ExerciseRefused` when a citizen subscription asks for exercises without a valid ``exercise_token``."""
    with store.transaction() as conn:
        row = _authorised(store, sub_id, token)
        if row is None:
            return False
        if sub.exercise and not row[COLUMNS.index("exercise")]:
            _redeem(store, exercise_token, sub_id)
        if conn.execute("SELECT 1 FROM subscriptions WHERE endpoint=? AND id<>?", (sub.endpoint, sub_id)).fetchone():
            raise EndpointTaken("Push-Endpunkt gehört zu einem anderen Abo / push endpoint belongs to another "
                                "subscription (neu abonnieren ersetzt es / subscribing again replaces it)")
        conn.execute(f"UPDATE subscriptions SET {', '.join(f'{c}=?' for c in _SETTINGS)}, updated_ms=? WHERE id=?",
                     (*_values(sub), _today_ms(), sub_id))
    return True


def delete(store: Store, sub_id: str, token: str) -> bool:
    """Delete a subscription; False for an unknown id or a wrong token."""
    with store.transaction() as conn:
        if _authorised(store, sub_id, token) is None:
            return False
        conn.execute("DELETE FROM subscriptions WHERE id=?", (sub_id,))
        conn.execute("DELETE FROM push_tests WHERE subscription_id=?", (sub_id,))
    return True


def delete_ids(store: Store, ids: Iterable[str]) -> int:
    """Delete subscriptions by id (their push endpoint is gone: 404/410); returns how many were deleted."""
    gone = [(i,) for i in ids]
    with store.transaction() as conn:
        conn.executemany("DELETE FROM push_tests WHERE subscription_id=?", gone)
        return conn.executemany("DELETE FROM subscriptions WHERE id=?", gone).rowcount


def load_all(store: Store) -> list[tuple[str, Subscription]]:
    """Every subscription with its id."""
    rows = store.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM subscriptions ORDER BY id").fetchall()
    return [(row[0], _from_row(row)) for row in rows]


def stream_for_targeting(store: Store, ids: Sequence[str] | None = None) -> Iterator[tuple[str, Subscription]]:
    """Every subscription (or those of ``ids`` still stored) with its id, streamed (no list of all of them), holding
    only what targeting reads: places, topics, min_severity, exercise, sources and quiet hours (no push keys, no
    languages). For :func:`hub.publish.index.load_index` and the index of a node told of changes (hub.cluster)."""
    only = "" if ids is None else " WHERE id IN (SELECT value FROM json_each(?))"
    rows = store.conn.execute(
        f"SELECT id, places, topics, min_severity, exercise, sources, quiet_hours FROM subscriptions{only}",
        () if ids is None else (_json(list(ids)).decode(),))
    return ((sub_id, _from_row((sub_id, "", "", "", "", places, topics, severity, "[]", exercise, 0, 0, sources,
                                quiet)))
            for sub_id, places, topics, severity, exercise, sources, quiet in rows)
