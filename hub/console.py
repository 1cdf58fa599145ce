"""The control room's own warnings: drafts, four-eyes approval, sending, follow-ups, preview, inbox and status.

Tables ``console_warnings`` (one row per version of an operator warning; ``thread`` names the incident across
versions) and ``console_events`` (what happened to each version, by whom). No HTTP here: the web layer calls these
functions on the store's writer thread (``AsyncStore.run``).

A version goes draft -> submitted -> approved -> sent, or ends rejected or withdrawn. Sending makes a CAP 1.2 alert,
checks it like any document (XSD and semantic checks, :func:`hub.intake.check_document`), stores it through the
normal path (:meth:`~hub.store.Store.add_record`, origin ``console``) and records its ``publish`` decision
(:func:`hub.decisions.record`) in **one transaction**: the operators decided, so the rules router never decides it
(it only decides versions without a decision). The pipeline then publishes it like any publish decision; call
``Pipeline.wake()`` after :func:`approve` or :func:`send` returns.

Enforced here, whatever a form says:

* permissions (compose, approve) and scope: every area must lie inside the acting user's regions (``check_area``
  for shapes, the ARS hierarchy for selected regions);
* four eyes: a severity in ``FourEyes.required_for`` needs an approver who neither wrote nor edited the version;
  only where the admin allows it may someone with approve permission send an Extreme or Immediate warning alone,
  with a written reason (audited as ``console.single_person``);
* a thread never changes status or audience: an exercise stays an exercise (every text marked, CAP status
  Exercise); a topic message goes to the push subscribers of its topic only, never to a public channel;
* sending needs the confirmation token of a preview of exactly this content, area, audience and channels.

Every operation is one transaction with its audit entry (``console.<action>``). Refusals raise
:class:`ConsoleForbidden` (an :class:`~hub.errors.AuthError`; audited as ``console.refused``), :class:`StalePreview`
or :class:`ConsoleError`; their messages are German, then English.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import re
import sqlite3
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import shapely
from shapely.geometry import shape as geojson_shape
from shapely.geometry.base import BaseGeometry

from adapters.channels.boardtext import fit
from hub import decisions, outbox, publications, readings, subscriptions
from hub.cap.model import (
    Alert,
    Area,
    Category,
    Certainty,
    Circle,
    Info,
    MsgType,
    Reference,
    ResponseType,
    Scope,
    Severity,
    Status,
    Urgency,
    Value,
)
from hub.cap.serialize import to_xml
from hub.cap.sign import SignaturePolicy
from hub.cap.validate import Validator, Verdict
from hub.config import BoardConfig, LoadedConfig, WebhookConfig
from hub.delivery import board_notice
from hub.errors import AuthError, HubError
from hub.geo import DEFAULT_DISTRICT, GERMANY, Geography, circle_lonlat, resolve
from hub.intake import check_document
from hub.pipeline import BOARD_CHANNELS, SEVERITY_ORDER, event_topics, push_payload
from hub.publications import Notice, Publication
from hub.rules import Decision, RuleSet
from hub.rules.templates import BBK_EVENT_PROFILE, Template
from hub.store import Store, now_utc, utc_iso

ORIGIN = "console"
CHANNELS = ("push", "web", "boards", "webhook")
LANGUAGES = ("de-DE", "de-DE-x-ls", "en")
EXERCISE_PREFIX = {"de-DE": "ÜBUNG – ", "de-DE-x-ls": "ÜBUNG – ", "en": "EXERCISE – "}
SCOPE_TOLERANCE_M = 50.0
"""Drawn areas may reach this far past the user's boundary (drawing on a map is not surveying)."""
MAX_VALIDITY = timedelta(days=7)
ALL_CLEAR_VALIDITY = timedelta(hours=2)
"""How long an all-clear stays shown (boards, web) unless the operator sets another end."""
PREVIEW_HOURS = 6
"""Readings shown with a sensor draft in the inbox."""
_SLUG = re.compile(r"[a-z0-9-]{1,40}")
_EVC = re.compile(r"BBK-EVC-\d{3}")
_ISC = re.compile(r"BBK-ISC-\d{3}")
_UNFILLED = re.compile(r"\{[a-z_]+\}")
_GERMANY_LON, _GERMANY_LAT = (5.0, 16.0), (47.0, 56.0)
_TEXT_MAX = {"headline": 140, "description": 4000, "instruction": 4000}

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS console_warnings (
        id INTEGER PRIMARY KEY,
        thread TEXT NOT NULL,
        version INTEGER NOT NULL,
        parent_id INTEGER REFERENCES console_warnings(id),
        state TEXT NOT NULL,
        status TEXT NOT NULL,
        msg_type TEXT NOT NULL,
        kind TEXT NOT NULL,
        template TEXT,
        content TEXT NOT NULL,
        area TEXT NOT NULL,
        channels TEXT NOT NULL,
        audience TEXT NOT NULL,
        topic TEXT,
        author TEXT NOT NULL,
        author_id INTEGER NOT NULL,
        editors TEXT NOT NULL,
        approver TEXT,
        approver_id INTEGER,
        single_person_reason TEXT,
        reject_reason TEXT,
        revision INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        submitted_at TEXT,
        approved_at TEXT,
        sent_at TEXT,
        cap_identifier TEXT UNIQUE,
        cap_sent TEXT,
        alert_id INTEGER REFERENCES alerts(id),
        store_thread INTEGER,
        UNIQUE (thread, version))""",
    "CREATE INDEX IF NOT EXISTS console_warnings_state ON console_warnings(state, id)",
    """CREATE TABLE IF NOT EXISTS console_events (
        id INTEGER PRIMARY KEY,
        warning_id INTEGER NOT NULL REFERENCES console_warnings(id),
        thread TEXT NOT NULL,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS console_events_thread ON console_events(thread, id)",
)
_READY: weakref.WeakSet[Store] = weakref.WeakSet()


def ensure_schema(store: Store) -> None:
    """Create the console's tables and those it writes through (outside any transaction: a rolled-back CREATE
    would leave the modules believing their tables exist)."""
    if store in _READY:
        return
    for statement in _SCHEMA:
        store.conn.execute(statement)
    for module in (decisions, publications, outbox, subscriptions, readings):
        module.ensure_schema(store)
    _READY.add(store)


# -- who is asking, and what the admin allows -------------------------------------------------------------------------


class ConsoleUser(Protocol):
    """A signed-in person (hub.auth's user satisfies this): roles viewer/author/approver/admin, scopes as ARS."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def roles(self) -> frozenset[str]: ...
    @property
    def scopes(self) -> tuple[str, ...]: ...
    def can(self, permission: str) -> bool:
        """``read``, ``compose``, ``approve`` or ``admin``."""
        ...


AreaCheck = Callable[[ConsoleUser, BaseGeometry | None], str | None]
"""``check_area(user, area_projected) -> reason | None``: may this user warn this (equal-area projected) area?"""


@dataclass(frozen=True, slots=True)
class FourEyes:
    """The admin's approval policy."""

    required_for: frozenset[str] = frozenset({"Extreme", "Severe", "Moderate", "Minor"})
    """Severities that need a second person's approval."""
    single_person_extreme: bool = False
    """Allow someone with approve permission to send an Extreme or Immediate warning alone, with a reason."""
    min_reason: int = 20


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """What the console needs of the hub's config; build with :meth:`from_loaded`."""

    geo: Geography
    district: str = DEFAULT_DISTRICT
    sender: str = "warnhub@example.invalid"
    sender_name: str = ""
    base_url: str = ""
    boards: tuple[BoardConfig, ...] = ()
    webhooks: tuple[WebhookConfig, ...] = ()
    templates: Mapping[str, Template] = field(default_factory=dict)
    """Templates in force (``RuleSet.templates``); pass a fresh config after a rules reload."""
    four_eyes: FourEyes = FourEyes()
    check_area: AreaCheck | None = None
    """None: :func:`scope_check` of ``geo`` (the area lies in the union of the user's scope boundaries)."""
    validator: Validator = field(default_factory=Validator)

    @classmethod
    def from_loaded(cls, loaded: LoadedConfig, *, geo: Geography, templates: Mapping[str, Template] | None = None,
                    four_eyes: FourEyes | None = None, check_area: AreaCheck | None = None) -> ConsoleConfig:
        hub = loaded.cfg.hub
        return cls(geo=geo, district=hub.district_ars, sender=hub.sender, sender_name=hub.name,
                   base_url=hub.public_url.rstrip("/"), boards=tuple(loaded.cfg.boards),
                   webhooks=tuple(loaded.cfg.webhooks), templates=dict(templates or {}),
                   four_eyes=four_eyes or FourEyes(), check_area=check_area)

    def area_check(self) -> AreaCheck:
        return self.check_area or scope_check(self.geo)


class ConsoleError(HubError):
    """Invalid input, or an operation the warning's state does not allow (message German / English)."""


class ConsoleForbidden(AuthError):
    """Permission, scope or four eyes refuse (message German / English)."""


class StalePreview(ConsoleError):
    """The confirmation token is not that of a preview of the warning as it is now."""


def _msg(de: str, en: str) -> str:
    return f"{de} / {en}"


@functools.lru_cache(maxsize=8)
def scope_check(geo: Geography, tolerance_m: float = SCOPE_TOLERANCE_M) -> AreaCheck:
    """The default ``check_area``: the area must lie inside the union of the boundaries of the user's scope ARS
    (``tolerance_m`` grace). A scope whose boundary the hub does not know (a Gemeinde without ``[geo]
    boundaries``) cannot vouch for a drawn area: such areas are refused, never waved through."""
    unions: dict[tuple[str, ...], BaseGeometry | None] = {}

    def check(user: ConsoleUser, area: BaseGeometry | None) -> str | None:
        if area is None or area.is_empty:
            return None
        key = tuple(sorted(user.scopes))
        if key not in unions:
            shapes = [g for a in key if (ars := geo.registry.from_ars(a)) and (g := geo.geometry(ars)) is not None]
            unions[key] = shapely.union_all(shapes).buffer(tolerance_m) if shapes else None
        allowed = unions[key]
        if allowed is None:
            return _msg(f"Für Ihren Zuständigkeitsbereich ({', '.join(key) or '–'}) ist keine Grenze hinterlegt; "
                        "gezeichnete Gebiete können nicht geprüft werden",
                        "no boundary is known for your scope; drawn areas cannot be checked")
        outside = float(area.difference(allowed).area)
        if outside > 1.0:
            return _msg(f"{outside / 1e6:.3f} km² des Gebiets liegen außerhalb Ihres Zuständigkeitsbereichs",
                        f"{outside / 1e6:.3f} km² of the area lie outside your scope")
        return None

    return check


# -- rows -------------------------------------------------------------------------------------------------------------

_COLS = ("id", "thread", "version", "parent_id", "state", "status", "msg_type", "kind", "template", "content", "area",
         "channels", "audience", "topic", "author", "author_id", "editors", "approver", "approver_id",
         "single_person_reason", "reject_reason", "revision", "created_at", "updated_at", "submitted_at",
         "approved_at", "sent_at", "cap_identifier", "cap_sent", "alert_id", "store_thread")
_JSON = ("content", "area", "channels", "editors")
OPEN_STATES = ("draft", "submitted", "approved")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _row(values: Sequence[Any]) -> dict[str, Any]:
    d = dict(zip(_COLS, values, strict=True))
    for col in _JSON:
        d[col] = json.loads(d[col])
    return d


def get(store: Store, warning_id: int) -> dict[str, Any] | None:
    """One version (JSON columns decoded)."""
    ensure_schema(store)
    row = store.conn.execute(f"SELECT {', '.join(_COLS)} FROM console_warnings WHERE id=?", (warning_id,)).fetchone()
    return _row(row) if row else None


def versions(store: Store, thread: str) -> list[dict[str, Any]]:
    ensure_schema(store)
    return [_row(r) for r in store.conn.execute(
        f"SELECT {', '.join(_COLS)} FROM console_warnings WHERE thread=? ORDER BY version", (thread,))]


def warnings(store: Store, *, states: Sequence[str] | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Versions, newest first (optionally only in ``states``)."""
    ensure_schema(store)
    where, args = ("WHERE state IN (SELECT value FROM json_each(?))", (json.dumps(list(states)),)) if states \
        else ("", ())
    return [_row(r) for r in store.conn.execute(
        f"SELECT {', '.join(_COLS)} FROM console_warnings {where} ORDER BY id DESC LIMIT ?", (*args, limit))]


def history(store: Store, thread: str) -> list[dict[str, Any]]:
    """What happened to every version of a thread, oldest first."""
    ensure_schema(store)
    rows = store.conn.execute("SELECT id, warning_id, at, actor, action, detail FROM console_events WHERE thread=?"
                              " ORDER BY id", (thread,)).fetchall()
    return [{"id": i, "warning_id": w, "at": at, "actor": actor, "action": action, "detail": json.loads(detail)}
            for i, w, at, actor, action, detail in rows]


def _require(store: Store, warning_id: int) -> dict[str, Any]:
    row = get(store, warning_id)
    if row is None:
        raise ConsoleError(_msg(f"Meldung {warning_id} gibt es nicht", f"no warning {warning_id}"))
    return row


def _event(conn: sqlite3.Connection, row: Mapping[str, Any], actor: str, action: str, detail: Mapping[str, Any],
           now: datetime) -> None:
    conn.execute("INSERT INTO console_events (warning_id, thread, at, actor, action, detail) VALUES (?,?,?,?,?,?)",
                 (row["id"], row["thread"], utc_iso(now), actor, action, _dumps(dict(detail))))


@contextlib.contextmanager
def _one_transaction(store: Store) -> Iterator[sqlite3.Connection]:
    """One transaction around store functions that each open their own (``Store.transaction`` is not reentrant):
    inside, their ``store.transaction()`` joins this one, so everything commits together or nothing does."""
    with store.transaction() as conn:
        joined = contextlib.nullcontext(conn)
        setattr(store, "transaction", lambda: joined)  # noqa: B010 - shadows the method on this instance only
        try:
            yield conn
        finally:
            delattr(store, "transaction")


T = TypeVar("T")


def _audited(store: Store, user: ConsoleUser, action: str, subject: str, fn: Callable[[], T]) -> T:
    """Run an operation; a refusal by permission, scope or four eyes is audited (after its rollback)."""
    try:
        return fn()
    except ConsoleForbidden as err:
        store.audit(user.name, "console.refused", subject, {"action": action, "reason": str(err)})
        raise


def _need(user: ConsoleUser, permission: str) -> None:
    if not user.can(permission):
        raise ConsoleForbidden(_msg(f"Keine Berechtigung ({permission})", f"permission {permission!r} required"))


def _state(row: Mapping[str, Any], *allowed: str) -> None:
    if row["state"] not in allowed:
        raise ConsoleError(_msg(f"Meldung ist {row['state']}, erwartet: {', '.join(allowed)}",
                                f"warning is {row['state']}, expected {', '.join(allowed)}"))


# -- forms ----------------------------------------------------------------------------------------------------------


def _enum(value: Any, kind: type[Any], name: str, *, exclude: tuple[str, ...] = ("Unknown",)) -> str:
    allowed = [m.value for m in kind if m.value not in exclude]
    if value not in allowed:
        raise ConsoleError(_msg(f"{name}: {value!r} ist nicht erlaubt ({', '.join(allowed)})",
                                f"{name}: {value!r} is not allowed"))
    return str(value)


def _strs(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConsoleError(_msg(f"{name}: Liste von Texten erwartet", f"{name}: expected a list of strings"))
    return list(dict.fromkeys(v.strip() for v in value if v.strip()))


def _time(value: Any, name: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise ConsoleError(_msg(f"{name}: Zeit mit Zeitzone erwartet (ISO 8601)",
                                f"{name}: expected an ISO 8601 time with offset"))
    return utc_iso(at)


def _texts(raw: Any, base: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    if raw is not None and not isinstance(raw, Mapping):
        raise ConsoleError(_msg("texts: je Sprache headline, description, instruction",
                                "texts: per language headline, description, instruction"))
    out = {lang: dict(t) for lang, t in base.items()}
    for lang, parts in (raw or {}).items():
        if lang not in LANGUAGES:
            raise ConsoleError(_msg(f"Sprache {lang!r} wird nicht angeboten ({', '.join(LANGUAGES)})",
                                    f"language {lang!r} is not offered"))
        if not isinstance(parts, Mapping):
            raise ConsoleError(_msg(f"texts.{lang}: Felder erwartet", f"texts.{lang}: expected fields"))
        merged = {**out.get(lang, {}), **parts}
        text = {}
        for key, limit in _TEXT_MAX.items():
            value = merged.get(key) or ""
            if not isinstance(value, str) or len(value) > limit:
                raise ConsoleError(_msg(f"texts.{lang}.{key}: Text bis {limit} Zeichen",
                                        f"texts.{lang}.{key}: text of at most {limit} characters"))
            text[key] = value.strip()
        if any(text.values()):
            out[lang] = text
        else:
            out.pop(lang, None)
    return out


def _content(raw: Any, base: Mapping[str, Any], *, cancel: bool = False) -> dict[str, Any]:
    """Validated content: ``base`` (template or previous version) with the form's fields over it."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConsoleError(_msg("content: Felder erwartet", "content: expected fields"))
    m = {**base, **{k: v for k, v in raw.items() if k != "texts"}}
    if "category" in raw:
        m["categories"] = raw["category"]
    event = m.get("event")
    if not isinstance(event, str) or not event.strip() or len(event) > 200:
        raise ConsoleError(_msg("event: Ereignis fehlt", "event: missing"))
    cats = _strs(m.get("categories"), "category")
    if not cats:
        raise ConsoleError(_msg("category: mindestens eine Kategorie", "category: at least one"))
    out: dict[str, Any] = {
        "event": event.strip(), "categories": [_enum(c, Category, "category") for c in cats],
        "severity": _enum(m.get("severity"), Severity, "severity"),
        "urgency": _enum(m.get("urgency"), Urgency, "urgency"),
        "certainty": _enum(m.get("certainty"), Certainty, "certainty"),
        "response_types": [_enum(r, ResponseType, "response_types", exclude=()) for r in
                           _strs(m.get("response_types"), "response_types")],
        "texts": _texts(raw.get("texts"), base.get("texts") or {}),
        "event_code": m.get("event_code") or None,
        "instruction_codes": _strs(m.get("instruction_codes"), "instruction_codes"),
        "onset": _time(m.get("onset"), "onset"), "expires": _time(m.get("expires"), "expires"),
        "web": m.get("web") or None, "contact": m.get("contact") or None,
    }
    if out["event_code"] is not None and not (isinstance(out["event_code"], str) and _EVC.fullmatch(out["event_code"])):
        raise ConsoleError(_msg("event_code: BBK-EVC-nnn erwartet", "event_code: expected BBK-EVC-nnn"))
    if bad := [c for c in out["instruction_codes"] if not _ISC.fullmatch(c)]:
        raise ConsoleError(_msg(f"instruction_codes: {bad[0]!r} ist kein BBK-ISC-nnn", "expected BBK-ISC-nnn"))
    if out["web"] is not None and not re.match(r"https?://\S+$", str(out["web"])):
        raise ConsoleError(_msg("web: Adresse mit http(s):// erwartet", "web: expected an http(s) URL"))
    de = out["texts"].get("de-DE", {})
    if not de.get("headline") or not de.get("description"):
        raise ConsoleError(_msg("Deutscher Text: Überschrift und Beschreibung sind Pflicht",
                                "German text: headline and description are required"))
    if not cancel and out["expires"] is None:
        raise ConsoleError(_msg("expires: Ende der Gültigkeit fehlt", "expires: missing"))
    if out["onset"] and out["expires"] and out["expires"] <= out["onset"]:
        raise ConsoleError(_msg("expires liegt nicht nach onset", "expires is not after onset"))
    return out


def _points(coords: Any, where: str) -> list[list[float]]:
    """``[lon, lat]`` pairs inside Germany (a swapped order is named as such)."""
    if not isinstance(coords, list) or not all(isinstance(p, list | tuple) and len(p) >= 2 and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in p[:2]) for p in coords):
        raise ConsoleError(_msg(f"{where}: Koordinatenliste [lon, lat] erwartet", f"{where}: expected [lon, lat]"))
    pts = [[round(float(p[0]), 6), round(float(p[1]), 6)] for p in coords]
    if not all(_in(p[0], p[1]) for p in pts):
        if all(_in(p[1], p[0]) for p in pts):
            raise ConsoleError(_msg(f"{where}: Koordinaten sind [lat, lon]; GeoJSON ist [lon, lat]",
                                    f"{where}: coordinates are [lat, lon]; GeoJSON is [lon, lat]"))
        raise ConsoleError(_msg(f"{where}: liegt außerhalb Deutschlands", f"{where}: lies outside Germany"))
    return pts


def _ring(coords: Any, where: str) -> list[list[float]]:
    pts = _points(coords, where)
    if pts and pts[0] != pts[-1]:
        pts.append(pts[0])
    if len(pts) < 4 or len(pts) > 2000:
        raise ConsoleError(_msg(f"{where}: 3 bis 2000 Punkte", f"{where}: 3 to 2000 points"))
    return pts


def _in(lon: float, lat: float) -> bool:
    return _GERMANY_LON[0] <= lon <= _GERMANY_LON[1] and _GERMANY_LAT[0] <= lat <= _GERMANY_LAT[1]


def _feature(raw: Any, n: int) -> dict[str, Any]:
    where = f"area.features[{n}]"
    geom = raw.get("geometry") if isinstance(raw, Mapping) and raw.get("type") == "Feature" else raw
    props = (raw.get("properties") or {}) if isinstance(raw, Mapping) and raw.get("type") == "Feature" else {}
    if not isinstance(geom, Mapping):
        raise ConsoleError(_msg(f"{where}: GeoJSON-Geometrie erwartet", f"{where}: expected a GeoJSON geometry"))
    kind, coords = geom.get("type"), geom.get("coordinates")
    if kind == "Point":
        radius = props.get("radius_m") if isinstance(props, Mapping) else None
        if not isinstance(radius, int | float) or not 10 <= radius <= 50_000:
            raise ConsoleError(_msg(f"{where}: Kreis braucht radius_m (10 bis 50000)",
                                    f"{where}: a circle needs radius_m from 10 to 50000"))
        return {"type": "Feature", "geometry": {"type": "Point", "coordinates": _points([coords], where)[0]},
                "properties": {"radius_m": float(radius)}}
    polys = [coords] if kind == "Polygon" else coords if kind == "MultiPolygon" else None
    if not isinstance(polys, list) or not polys:
        raise ConsoleError(_msg(f"{where}: Polygon, MultiPolygon oder Point (Kreis) erwartet",
                                f"{where}: expected Polygon, MultiPolygon or Point (circle)"))
    rings = []
    for poly in polys:
        if not isinstance(poly, list) or len(poly) != 1:
            raise ConsoleError(_msg(f"{where}: CAP-Polygone haben keine Löcher",
                                    f"{where}: CAP polygons have no holes"))
        rings.append([_ring(poly[0], where)])
    shape = geojson_shape({"type": "MultiPolygon", "coordinates": rings})
    if not shape.is_valid:
        raise ConsoleError(_msg(f"{where}: Polygon überschneidet sich selbst", f"{where}: polygon intersects itself"))
    return {"type": "Feature", "geometry": {"type": "MultiPolygon" if len(rings) > 1 else "Polygon",
                                            "coordinates": rings if len(rings) > 1 else rings[0]}, "properties": {}}


def _area(raw: Any, geo: Geography) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConsoleError(_msg("area: Gebiete (ars) und/oder Zeichnungen (features) erwartet",
                                "area: expected ars and/or features"))
    ars = []
    for code in _strs(raw.get("ars"), "area.ars"):
        key = geo.registry.from_ars(code)
        if key is None:
            raise ConsoleError(_msg(f"area.ars: {code} ist kein bekannter Regionalschlüssel", f"unknown ARS {code}"))
        ars.append(key)
    feats = raw.get("features") or []
    if isinstance(feats, Mapping):
        feats = feats.get("features") or []
    if not isinstance(feats, list):
        raise ConsoleError(_msg("area.features: Liste erwartet", "area.features: expected a list"))
    features = [_feature(f, n) for n, f in enumerate(feats)]
    if not ars and not features:
        raise ConsoleError(_msg("Kein Gebiet gewählt", "no area selected"))
    desc = raw.get("desc")
    return {"ars": list(dict.fromkeys(ars)), "features": features,
            "desc": desc.strip()[:200] if isinstance(desc, str) and desc.strip() else None}


def _settings(form: Mapping[str, Any], base: Mapping[str, Any] | None) -> tuple[str, list[str], str, str | None]:
    """Status, channels, audience and topic; status and audience are fixed once a thread exists."""
    status = form.get("status", base["status"] if base else Status.ACTUAL.value)
    status = _enum(status, Status, "status", exclude=("System", "Test", "Draft"))
    audience = form.get("audience", base["audience"] if base else "public")
    topic = form.get("topic", base["topic"] if base else None)
    if base is not None and status != base["status"]:
        raise ConsoleError(_msg(f"Status {base['status']} kann in dieser Meldung nicht {status} werden "
                                "(eine Übung bleibt eine Übung)",
                                f"status {base['status']} cannot become {status} in this thread"))
    if base is not None and (audience, topic) != (base["audience"], base["topic"]):
        raise ConsoleError(_msg("Die Zielgruppe einer Meldung ändert sich nicht", "a thread keeps its audience"))
    channels = _strs(form.get("channels", base["channels"] if base else None), "channels")
    if not channels or any(c not in CHANNELS for c in channels):
        raise ConsoleError(_msg(f"channels: aus {', '.join(CHANNELS)}", f"channels: from {', '.join(CHANNELS)}"))
    if audience not in ("public", "topic"):
        raise ConsoleError(_msg("audience: public oder topic", "audience: public or topic"))
    if audience == "topic":
        if not isinstance(topic, str) or not _SLUG.fullmatch(topic):
            raise ConsoleError(_msg("topic: Thema (a-z, 0-9, -) fehlt", "topic: missing slug"))
        if channels != ["push"]:
            raise ConsoleError(_msg("Eine Themen-Meldung geht nur per Push an die Abonnenten des Themas, nie ins "
                                    "Web, auf Tafeln oder an Webhooks",
                                    "a topic message goes by push to its topic's subscribers only"))
    else:
        topic = None
    return status, channels, audience, topic


def template_content(tpl: Template, values: Mapping[str, object]) -> dict[str, Any]:
    """Adapter over hub.rules.templates: a template as console content. Placeholders without a value stay
    visible (``{sensor}``) so the operator fills them; submitting refuses texts that still hold any."""
    full: dict[str, object] = {p: "{" + p + "}" for p in tpl.uses}
    full.update({k: v for k, v in values.items() if v is not None})
    d = tpl.render(full)
    return {"event": d.event, "categories": [c.value for c in d.categories], "severity": d.severity.value,
            "urgency": d.urgency.value, "certainty": d.certainty.value,
            "response_types": [r.value for r in d.response_types], "event_code": d.event_code,
            "instruction_codes": list(d.instruction_codes), "web": d.web, "contact": d.contact,
            "texts": {lang: {"headline": t.headline, "description": t.description, "instruction": t.instruction}
                      for lang, t in d.texts.items() if lang in LANGUAGES}}


def all_clear_template(templates: Mapping[str, Template], original: str | None) -> Template | None:
    """The all-clear template of a warning made from template ``original``: the one its ``all_clear`` field names
    (compose templates), else ``entwarnung``."""
    tpl = templates.get(original) if original else None
    return templates.get(getattr(tpl, "all_clear", None) or "entwarnung")


def _local(at: datetime) -> str:
    from zoneinfo import ZoneInfo

    return at.astimezone(ZoneInfo("Europe/Berlin")).strftime("%d.%m.%Y %H:%M")


def _values(cfg: ConsoleConfig, area: Mapping[str, Any], expires: str | None, now: datetime) -> dict[str, object]:
    """What the console fills into a template: the district, the time of issue, the places (``ort``) and the end
    (``until``) of compose templates, and the alert placeholders a rule's template may use."""
    district = cfg.sender_name or cfg.geo.registry.name(cfg.district) or cfg.district
    return {"district": district, "time": _local(now), "ort": area.get("desc") or _area_desc(cfg, area),
            "area": area.get("desc") or _area_desc(cfg, area), "sender_name": district,
            "until": _local(datetime.fromisoformat(expires)) if expires else None}


# -- operations: compose ----------------------------------------------------------------------------------------------


def _check_scope(cfg: ConsoleConfig, user: ConsoleUser, area: Mapping[str, Any]) -> None:
    reg = cfg.geo.registry
    scopes = [s for s in (reg.from_ars(a) for a in user.scopes) if s is not None]
    for ars in area["ars"]:
        if not any(reg.is_within(ars, s) for s in scopes):
            raise ConsoleForbidden(_msg(f"{reg.name(ars) or ars} liegt außerhalb Ihres Zuständigkeitsbereichs",
                                        f"{ars} is outside your scope"))
    shapes = [g for a in area["ars"] if (g := cfg.geo.geometry(a)) is not None] + \
        [GERMANY.project(s) for s in _drawn_lonlat(area)]
    reason = cfg.area_check()(user, shapely.union_all(shapes) if shapes else None)
    if reason:
        raise ConsoleForbidden(reason)


def _drawn_lonlat(area: Mapping[str, Any]) -> list[BaseGeometry]:
    out = []
    for f in area["features"]:
        g = f["geometry"]
        if g["type"] == "Point":
            lon, lat = g["coordinates"]
            out.append(circle_lonlat(Circle(center=(lat, lon), radius_km=f["properties"]["radius_m"] / 1000)))
        else:
            out.append(geojson_shape(g))
    return out


def create_draft(store: Store, user: ConsoleUser, form: Mapping[str, Any], *, cfg: ConsoleConfig,
                 now: datetime | None = None) -> dict[str, Any]:
    """A new warning (version 1 of a new thread) as a draft. ``form``: status, template, content (event, category,
    severity, urgency, certainty, response_types, texts per language, event_code, instruction_codes, onset,
    expires, web, contact), area (ars, features as GeoJSON lon/lat, a Point with properties.radius_m is a circle),
    channels, audience (public | topic) and topic."""
    ensure_schema(store)
    now = now or now_utc()

    def run() -> dict[str, Any]:
        _need(user, "compose")
        name = form.get("template") or None
        tpl = cfg.templates.get(name) if isinstance(name, str) else None
        if name is not None and tpl is None:
            raise ConsoleError(_msg(f"Vorlage {name!r} gibt es nicht", f"no template {name!r}"))
        area = _area(form.get("area"), cfg.geo)
        given = form.get("content")
        raw: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
        hours = getattr(tpl, "default_hours", None)
        expires = _time(raw.get("expires"), "expires") or (utc_iso(now + timedelta(hours=hours)) if hours else None)
        base = {**template_content(tpl, _values(cfg, area, expires, now)), "expires": expires} if tpl else {}
        content = _content(form.get("content"), base)
        _future(content, now)
        defaults = {"channels": list(getattr(tpl, "default_channels", ()) or ()) or None,
                    "audience": getattr(tpl, "audience", None)}
        status, channels, audience, topic = _settings(
            {**{k: v for k, v in defaults.items() if v}, **form}, None)
        _check_scope(cfg, user, area)
        row = {"thread": f"c{uuid.uuid4().hex}", "version": 1, "parent_id": None, "state": "draft",
               "status": status, "msg_type": MsgType.ALERT.value, "kind": "warning", "template": name,
               "content": content, "area": area, "channels": channels, "audience": audience, "topic": topic}
        return _insert(store, user, row, "create", now)

    return _audited(store, user, "create", "", run)


def _future(content: Mapping[str, Any], now: datetime) -> None:
    expires = content.get("expires")
    if expires is not None and expires <= utc_iso(now):
        raise ConsoleError(_msg("Das Ende der Gültigkeit liegt in der Vergangenheit", "expires is in the past"))
    if expires is not None and expires > utc_iso(now + MAX_VALIDITY):
        raise ConsoleError(_msg("Höchstens 7 Tage gültig", "valid for at most 7 days"))


def _insert(store: Store, user: ConsoleUser, row: dict[str, Any], action: str, now: datetime) -> dict[str, Any]:
    stamp = utc_iso(now)
    with _one_transaction(store) as conn:
        cur = conn.execute(
            "INSERT INTO console_warnings (thread, version, parent_id, state, status, msg_type, kind, template,"
            " content, area, channels, audience, topic, author, author_id, editors, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (row["thread"], row["version"], row["parent_id"], row["state"], row["status"], row["msg_type"],
             row["kind"], row["template"], _dumps(row["content"]), _dumps(row["area"]), _dumps(row["channels"]),
             row["audience"], row["topic"], user.name, user.id, _dumps([user.id]), stamp, stamp))
        row = {**row, "id": int(cur.lastrowid or 0)}
        _event(conn, row, user.name, action, {"version": row["version"]}, now)
        store.audit(user.name, f"console.{action}", row["thread"],
                    {"warning": row["id"], "version": row["version"], "status": row["status"],
                     "msg_type": row["msg_type"], "kind": row["kind"]}, now=now)
    return _require(store, row["id"])


def edit_draft(store: Store, user: ConsoleUser, warning_id: int, form: Mapping[str, Any], *, cfg: ConsoleConfig,
               now: datetime | None = None) -> dict[str, Any]:
    """Change a draft (a submitted or rejected version becomes a draft again and must be submitted anew). Whoever
    edits counts as an author for four eyes. Status and audience cannot change."""
    ensure_schema(store)
    now = now or now_utc()

    def run() -> dict[str, Any]:
        _need(user, "compose")
        row = _require(store, warning_id)
        _state(row, "draft", "submitted", "rejected")
        content = _content(form.get("content"), row["content"], cancel=row["msg_type"] == MsgType.CANCEL.value)
        _future(content, now)
        status, channels, audience, topic = _settings(form, row)
        area = _area(form["area"], cfg.geo) if "area" in form else row["area"]
        if row["msg_type"] == MsgType.CANCEL.value and area != row["area"]:
            raise ConsoleError(_msg("Eine Aufhebung gilt dem ganzen Gebiet", "a cancel covers the whole area"))
        _check_scope(cfg, user, area)
        editors = list(dict.fromkeys([*row["editors"], user.id]))
        with _one_transaction(store) as conn:
            conn.execute("UPDATE console_warnings SET state='draft', content=?, area=?, channels=?, editors=?,"
                         " revision=revision+1, reject_reason=NULL, updated_at=? WHERE id=?",
                         (_dumps(content), _dumps(area), _dumps(channels), _dumps(editors), utc_iso(now), row["id"]))
            _event(conn, row, user.name, "edit", {"revision": row["revision"] + 1}, now)
            store.audit(user.name, "console.edit", row["thread"], {"warning": row["id"]}, now=now)
        return _require(store, row["id"])

    return _audited(store, user, "edit", str(warning_id), run)


def _ready(row: Mapping[str, Any]) -> None:
    """What a version must be before anyone may approve or send it."""
    for lang, text in row["content"]["texts"].items():
        for key, value in text.items():
            if found := _UNFILLED.search(value):
                raise ConsoleError(_msg(f"texts.{lang}.{key}: Platzhalter {found.group()} ist nicht ausgefüllt",
                                        f"texts.{lang}.{key}: placeholder {found.group()} not filled in"))


def submit(store: Store, user: ConsoleUser, warning_id: int, *, cfg: ConsoleConfig,
           now: datetime | None = None) -> dict[str, Any]:
    """Hand a draft over for approval."""
    ensure_schema(store)
    now = now or now_utc()

    def run() -> dict[str, Any]:
        _need(user, "compose")
        row = _require(store, warning_id)
        _state(row, "draft")
        _ready(row)
        _check_scope(cfg, user, row["area"])
        return _transition(store, user, row, "submit", "submitted", now, submitted_at=utc_iso(now))

    return _audited(store, user, "submit", str(warning_id), run)


def _transition(store: Store, user: ConsoleUser, row: Mapping[str, Any], action: str, state: str, now: datetime,
                detail: Mapping[str, Any] | None = None, **cols: Any) -> dict[str, Any]:
    sets = "".join(f", {c}=?" for c in cols)
    with _one_transaction(store) as conn:
        conn.execute(f"UPDATE console_warnings SET state=?, updated_at=?{sets} WHERE id=?",
                     (state, utc_iso(now), *cols.values(), row["id"]))
        _event(conn, row, user.name, action, detail or {}, now)
        store.audit(user.name, f"console.{action}", row["thread"], {"warning": row["id"], **(detail or {})}, now=now)
    return _require(store, row["id"])


def reject(store: Store, approver: ConsoleUser, warning_id: int, reason: str, *, cfg: ConsoleConfig,
           now: datetime | None = None) -> dict[str, Any]:
    """Send a submitted version back with a reason (its authors may edit it again)."""
    ensure_schema(store)
    now = now or now_utc()

    def run() -> dict[str, Any]:
        _need(approver, "approve")
        row = _require(store, warning_id)
        _state(row, "submitted")
        if approver.id in row["editors"]:
            raise ConsoleForbidden(_msg("Eigene Meldungen zurückziehen statt ablehnen", "withdraw your own warning"))
        if len((reason or "").strip()) < 5:
            raise ConsoleError(_msg("Begründung fehlt", "a reason is required"))
        return _transition(store, approver, row, "reject", "rejected", now, {"reason": reason.strip()},
                           reject_reason=reason.strip())

    return _audited(store, approver, "reject", str(warning_id), run)


def withdraw(store: Store, user: ConsoleUser, warning_id: int, *, cfg: ConsoleConfig,
             now: datetime | None = None) -> dict[str, Any]:
    """Drop a version that was not sent (its authors, or anyone who may approve)."""
    ensure_schema(store)
    now = now or now_utc()

    def run() -> dict[str, Any]:
        _need(user, "compose")
        row = _require(store, warning_id)
        _state(row, "draft", "submitted", "rejected")
        if user.id not in row["editors"] and not user.can("approve"):
            raise ConsoleForbidden(_msg("Nur die Verfasser ziehen zurück", "only its authors may withdraw it"))
        return _transition(store, user, row, "withdraw", "withdrawn", now)

    return _audited(store, user, "withdraw", str(warning_id), run)


def follow_up(store: Store, user: ConsoleUser, warning_id: int, action: str, *, cfg: ConsoleConfig,
              form: Mapping[str, Any] | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Start the next version of a sent warning as a draft: ``update`` (msgType Update; ``form`` may change
    content, area and channels), ``cancel`` (msgType Cancel) or ``all-clear`` (an Update with severity Minor,
    responseType AllClear and the all-clear template's texts). It references the sent version when sent."""
    ensure_schema(store)
    now = now or now_utc()

    def run() -> dict[str, Any]:
        _need(user, "compose")
        row = _require(store, warning_id)
        _state(row, "sent")
        later = versions(store, row["thread"])
        if later[-1]["id"] != row["id"]:
            raise ConsoleError(_msg("Es gibt schon eine neuere Fassung", "a newer version exists"))
        if row["msg_type"] == MsgType.CANCEL.value:
            raise ConsoleError(_msg("Die Meldung ist aufgehoben", "the warning is cancelled"))
        form_ = dict(form or {})
        settings = _settings({k: v for k, v in form_.items() if k in ("status", "audience", "topic")}, row)
        new = {"thread": row["thread"], "version": row["version"] + 1, "parent_id": row["id"], "state": "draft",
               "status": settings[0], "template": row["template"], "area": row["area"],
               "channels": row["channels"], "audience": row["audience"], "topic": row["topic"]}
        if action == "update":
            new.update(msg_type=MsgType.UPDATE.value, kind="warning",
                       content=_content(form_.get("content"), row["content"]))
            _future(new["content"], now)
            if "area" in form_:
                new["area"] = _area(form_["area"], cfg.geo)
            if "channels" in form_:
                new["channels"] = _settings({"channels": form_["channels"]}, row)[1]
        elif action == "cancel":
            new.update(msg_type=MsgType.CANCEL.value, kind="warning", content=_cancel_content(row["content"]))
        elif action == "all-clear":
            new.update(msg_type=MsgType.UPDATE.value, kind="all-clear",
                       content=_all_clear_content(cfg, row, now))
        else:
            raise ConsoleError(_msg(f"Unbekannte Folgemeldung {action!r}", f"unknown follow-up {action!r}"))
        _check_scope(cfg, user, new["area"])
        return _insert(store, user, new, action, now)

    return _audited(store, user, action, str(warning_id), run)


def _cancel_content(prev: Mapping[str, Any]) -> dict[str, Any]:
    texts = {}
    for lang, t in prev["texts"].items():
        en = lang == "en"
        texts[lang] = {"headline": ("Cancelled: " if en else "Aufgehoben: ") + t["headline"],
                       "description": "This message has been withdrawn." if en else
                       "Diese Meldung wurde zurückgenommen.", "instruction": ""}
    return _content({}, {**prev, "texts": texts, "onset": None, "expires": None}, cancel=True)


def _all_clear_content(cfg: ConsoleConfig, row: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    prev = row["content"]
    headline = prev["texts"]["de-DE"]["headline"][:120]
    tpl = all_clear_template(cfg.templates, row["template"])
    hours = getattr(tpl, "default_hours", None)
    expires = utc_iso(now + (timedelta(hours=hours) if hours else ALL_CLEAR_VALIDITY))
    values = {**_values(cfg, row["area"], expires, now), "headline": headline, "event": prev["event"],
              "severity": prev["severity"]}
    if tpl is not None and tpl.uses <= {k for k, v in values.items() if v is not None}:
        made = template_content(tpl, values)
        texts, codes = made["texts"], made["instruction_codes"]
        event_code = made["event_code"] or prev["event_code"]
    else:  # no template, or one for sensors ({value}, {unit} ...): the built-in words
        texts = {"de-DE": {"headline": f"Entwarnung: {headline}", "instruction": "",
                           "description": f"Die Gefahr ist vorüber. Die Warnung „{headline}“ ist aufgehoben."},
                 "de-DE-x-ls": {"headline": "Entwarnung", "description": "Die Gefahr ist vorbei.", "instruction": ""},
                 "en": {"headline": f"All clear: {prev['texts'].get('en', {}).get('headline') or prev['event']}",
                        "description": "The danger is over. The warning has ended.", "instruction": ""}}
        codes, event_code = [], prev["event_code"]
    base = {**prev, "severity": Severity.MINOR.value, "urgency": Urgency.PAST.value,
            "certainty": Certainty.OBSERVED.value, "response_types": [ResponseType.ALL_CLEAR.value],
            "texts": texts, "instruction_codes": codes, "event_code": event_code, "onset": None,
            "expires": expires}
    return _content({}, base)


# -- the CAP message ----------------------------------------------------------------------------------------------


def _area_desc(cfg: ConsoleConfig, area: Mapping[str, Any]) -> str:
    reg = cfg.geo.registry
    names = [reg.name(a) or a for a in area["ars"]]
    return ", ".join(names) or (cfg.sender_name or reg.name(cfg.district) or cfg.district)


def _cap_areas(cfg: ConsoleConfig, area: Mapping[str, Any]) -> tuple[Area, ...]:
    """Selected regions as one area of ARS geocodes; drawn shapes as another (CAP ``lat,lon``). Separate, because
    beside shapes, geocodes only say "touched" (hub.geo.resolve) and the rules' geometry ignores them."""
    out = []
    if area["ars"]:
        out.append(Area(area_desc=_area_desc(cfg, area)[:500],
                        geocodes=tuple(Value(value_name="ARS", value=a) for a in area["ars"])))
    polygons, circles = [], []
    for f in area["features"]:
        g = f["geometry"]
        if g["type"] == "Point":
            lon, lat = g["coordinates"]
            circles.append(Circle(center=(lat, lon), radius_km=round(f["properties"]["radius_m"] / 1000, 3)))
        else:
            for poly in (g["coordinates"] if g["type"] == "MultiPolygon" else [g["coordinates"]]):
                polygons.append(tuple((lat, lon) for lon, lat in poly[0]))
    if polygons or circles:
        district = cfg.sender_name or cfg.geo.registry.name(cfg.district) or cfg.district
        out.append(Area(area_desc=area.get("desc") or f"Markiertes Gebiet ({district})", polygons=tuple(polygons),
                        circles=tuple(circles)))
    return tuple(out)


def _mark(text: str, lang: str, exercise: bool) -> str:
    prefix = EXERCISE_PREFIX.get(lang, EXERCISE_PREFIX["en"])
    return prefix + text if exercise and text and not text.startswith(prefix) else text


def build_alert(cfg: ConsoleConfig, row: Mapping[str, Any], *, previous: Alert | None, sent: datetime) -> Alert:
    """The CAP 1.2 alert of a version: one info per language, BBK event code, instruction codes, ARS geocodes,
    polygons and circles; an exercise marked in every text; references to the previous version."""
    c = row["content"]
    exercise = row["status"] == Status.EXERCISE.value
    params = [Value(value_name="instructionCode", value=" ".join(c["instruction_codes"]))] \
        if c["instruction_codes"] else []
    if row["audience"] == "topic":
        params.append(Value(value_name="warnhub:topic", value=row["topic"]))
    codes = (Value(value_name=BBK_EVENT_PROFILE, value=c["event_code"]),) if c["event_code"] else ()
    areas = _cap_areas(cfg, row["area"])
    infos = []
    for lang in [x for x in LANGUAGES if x in c["texts"]]:
        t = c["texts"][lang]
        infos.append(Info(
            language=lang, categories=tuple(Category(x) for x in c["categories"]), event=c["event"],
            response_types=tuple(ResponseType(x) for x in c["response_types"]), urgency=Urgency(c["urgency"]),
            severity=Severity(c["severity"]), certainty=Certainty(c["certainty"]), event_codes=codes,
            onset=_dt(c["onset"]), expires=_dt(c["expires"]), sender_name=cfg.sender_name or None,
            headline=_mark(t["headline"], lang, exercise), description=_mark(t["description"], lang, exercise),
            instruction=_mark(t["instruction"], lang, exercise) or None, web=c["web"], contact=c["contact"],
            parameters=tuple(params), areas=areas))
    refs = (Reference(sender=previous.sender, identifier=previous.identifier, sent=previous.sent),) if previous \
        else ()
    return Alert(identifier=f"warnhub.console.{row['thread']}.{row['version']}", sender=cfg.sender, sent=sent,
                 status=Status(row["status"]), msg_type=MsgType(row["msg_type"]), scope=Scope.PUBLIC,
                 references=refs, infos=tuple(infos))


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _previous_sent(store: Store, row: Mapping[str, Any]) -> tuple[dict[str, Any] | None, Alert | None]:
    prev = store.conn.execute(
        f"SELECT {', '.join(_COLS)} FROM console_warnings WHERE thread=? AND version<? AND state='sent'"
        " ORDER BY version DESC LIMIT 1", (row["thread"], row["version"])).fetchone()
    if prev is None:
        if row["version"] > 1:
            raise ConsoleError(_msg("Die vorige Fassung wurde nie gesendet", "the previous version was never sent"))
        return None, None
    p = _row(prev)
    return p, store.alert(p["alert_id"])


def _sent_time(now: datetime, previous: Alert | None) -> datetime:
    sent = now.astimezone(UTC).replace(microsecond=0)
    if previous is not None and sent <= previous.sent:
        sent = previous.sent + timedelta(seconds=1)  # sent strictly increases along the chain
    return sent


# -- whom it reaches (the pipeline's targeting, without writing) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    alert: Alert
    area_proj: BaseGeometry | None
    area_lonlat: BaseGeometry | None
    regions: tuple[str, ...]
    inside_district: bool
    outside_share: float
    area_km2: float
    inside_km2: float
    neighbours: tuple[tuple[str, str], ...]
    boards: tuple[BoardConfig, ...]
    kiosks: tuple[BoardConfig, ...]
    webhooks: tuple[WebhookConfig, ...]


def _plan(cfg: ConsoleConfig, row: Mapping[str, Any], alert: Alert) -> _Plan:
    """Area, regions, boards and webhooks exactly as the pipeline computes them for the stored decision."""
    geo, reg, district = cfg.geo, cfg.geo.registry, cfg.district
    shapes = [s for s in RuleSet([], {}, geo=geo).geometry(alert) if s is not None and not s.is_empty]
    area_proj = shapely.union_all(shapes) if shapes else None
    area_lonlat = GERMANY.unproject(area_proj) if area_proj is not None else None
    res = resolve(alert, district, geo=geo)
    regions = tuple(dict.fromkeys([*row["area"]["ars"], *(h.ars for h in res.regions
                                                            if h.level == "kreis" or reg.is_within(h.ars, district))]))
    neighbours = tuple((h.ars, h.name or h.ars) for h in res.regions if h.level == "kreis"
                       and not reg.is_within(h.ars, district) and not reg.is_within(district, h.ars))
    exercise, channels, severity = alert.status is Status.EXERCISE, set(row["channels"]), alert.severity.value
    if row["audience"] != "public":
        channels &= {"push"}
    regions_set = set(regions)
    boards = tuple(b for b in cfg.boards if b.kind in BOARD_CHANNELS and "boards" in channels
                   and (b.exercise or not exercise) and _touches(geo, b.ars, regions_set, area_proj))
    kiosks = tuple(b for b in cfg.boards if b.kind == "kiosk" and channels & {"web", "boards"}
                   and (b.exercise or not exercise) and _touches(geo, b.ars, regions_set, area_proj))
    hooks = tuple(h for h in cfg.webhooks if "webhook" in channels and (h.exercise or not exercise)
                  and "public" in h.audiences and SEVERITY_ORDER.get(severity, 4) <= SEVERITY_ORDER[h.min_severity]
                  and (any(_touches(geo, a, regions_set, area_proj) for a in h.regions) if h.regions
                       else res.inside_district))
    return _Plan(alert, area_proj, area_lonlat, regions, res.inside_district, res.outside_share, res.area_km2,
                 res.inside_km2, neighbours, boards, kiosks, hooks)


def _touches(geo: Geography, ars: str, regions: set[str], area_proj: BaseGeometry | None) -> bool:
    """Pipeline._touches: by the region's boundary where known, else by the keys."""
    boundary = geo.geometry(ars)
    if boundary is not None and area_proj is not None:
        return bool(boundary.intersects(area_proj)) and boundary.intersection(area_proj).area > 1.0
    return any(geo.registry.is_within(ars, r) or geo.registry.is_within(r, ars) for r in regions)


def _decision(row: Mapping[str, Any], plan: _Plan, why: str) -> Decision:
    channels = tuple(row["channels"]) if row["audience"] == "public" else ("push",)
    audiences = ("public",) if row["audience"] == "public" else (f"topic:{row['topic']}",)
    return Decision("publish", ("console",), channels=channels, audiences=audiences, push="push" in channels,
                    severity=plan.alert.severity, regions=plan.regions, inside_district=plan.inside_district,
                    outside_share=plan.outside_share, why=why)


def confirmation(row: Mapping[str, Any], plan: _Plan) -> str:
    """The token a preview shows and sending demands: a hash of content, area, status, audience, channels and the
    boards, kiosks and webhooks reached. Push counts are shown but not bound (citizens subscribe any minute)."""
    doc = {"warning": row["id"], "thread": row["thread"], "version": row["version"], "status": row["status"],
           "msg_type": row["msg_type"], "kind": row["kind"], "content": row["content"], "area": row["area"],
           "channels": sorted(row["channels"]), "audience": row["audience"], "topic": row["topic"],
           "regions": list(plan.regions), "boards": [b.id for b in plan.boards],
           "kiosks": [b.id for b in plan.kiosks], "webhooks": [h.id for h in plan.webhooks]}
    return hashlib.sha256(_dumps(doc).encode()).hexdigest()


def topic_subscribers(store: Store, topic: str) -> set[str]:
    """Ids of the subscriptions that chose the event topic ``topic`` (``event:<topic>``)."""
    return {r[0] for r in store.conn.execute(
        "SELECT s.id FROM subscriptions s, json_each(s.topics) t WHERE t.value = ?", (f"event:{topic}",))}


# -- preview --------------------------------------------------------------------------------------------------------


def preview(store: Store, geo: Geography, index: Any, boards: Sequence[BoardConfig],
            webhooks: Sequence[WebhookConfig], warning: int | Mapping[str, Any], *, district: str = DEFAULT_DISTRICT,
            sender: str = "warnhub@example.invalid", sender_name: str = "", base_url: str = "",
            now: datetime | None = None) -> dict[str, Any]:
    """What sending this version now would do, without doing anything: audience per channel, overspill beyond
    the district, the exact push and board texts, whether the CAP passes validation, and the confirmation
    ``token`` that :func:`approve` / :func:`send` demand. ``index``: the pipeline's SubscriptionIndex (None: no
    push count)."""
    cfg = ConsoleConfig(geo=geo, district=district, sender=sender, sender_name=sender_name, base_url=base_url,
                        boards=tuple(boards), webhooks=tuple(webhooks))
    return preview_for(store, cfg, index, warning, now=now)


def preview_for(store: Store, cfg: ConsoleConfig, index: Any, warning: int | Mapping[str, Any], *,
                now: datetime | None = None) -> dict[str, Any]:
    """:func:`preview` with the console's config."""
    ensure_schema(store)
    row = _require(store, warning) if isinstance(warning, int) else dict(warning)
    prev, prev_alert = _previous_sent(store, row)
    alert = build_alert(cfg, row, previous=prev_alert, sent=_sent_time(now or now_utc(), prev_alert))
    plan = _plan(cfg, row, alert)
    report, _ = check_document(cfg.validator, to_xml(alert), SignaturePolicy.IGNORE)
    pub_thread = publications.thread_name(prev["store_thread"]) if prev else "w-neu"
    cancel = alert.msg_type is MsgType.CANCEL
    push_on = "push" in row["channels"]
    if cancel:  # the pipeline tells whoever had an earlier version
        had = dict(store.conn.execute(
            "SELECT channel, count(DISTINCT recipient) FROM outbox WHERE thread=? AND state IN ('done','inflight')"
            " GROUP BY channel", (pub_thread,)).fetchall())
        push_n: int | None = int(had.get("push", 0))
    elif push_on and index is not None:
        topic = row["audience"] == "topic"
        ids = index.match(plan.area_lonlat, plan.regions, severity=alert.severity.value,
                          categories={c.value for i in alert.infos for c in i.categories},
                          event_topics={row["topic"]} if topic else event_topics(alert),
                          exercise=alert.status is Status.EXERCISE, topic_only=topic)
        push_n = len(ids)
    else:
        push_n = 0 if not push_on else None
    pub = _publication_like(cfg, row, plan, pub_thread, prev)
    notes = _notes(row, plan)
    return {
        "warning": {k: row[k] for k in ("id", "thread", "version", "state", "status", "msg_type", "kind",
                                        "audience", "topic", "channels")},
        "cap": {"identifier": alert.identifier, "status": alert.status.value, "msgType": alert.msg_type.value,
                "severity": alert.severity.value, "verdict": report.verdict.value,
                "problems": report.errors + report.warnings},
        "audience": {"kind": row["audience"], "topic": row["topic"], "push": push_n,
                     "web": "web" in row["channels"] and row["audience"] == "public",
                     "boards": [{"id": b.id, "name": b.name} for b in plan.boards],
                     "kiosks": [{"id": b.id, "name": b.name} for b in plan.kiosks],
                     "webhooks": [{"id": h.id} for h in plan.webhooks]},
        "overspill": {"area_km2": round(plan.area_km2, 3), "inside_km2": round(plan.inside_km2, 3),
                      "outside_share": round(plan.outside_share, 4), "inside_district": plan.inside_district,
                      "neighbours": [{"ars": a, "name": n} for a, n in plan.neighbours],
                      "regions": list(plan.regions)},
        "texts": {"push": {n.language: _push_text(pub, n.language, cfg.base_url) for n in pub.notices},
                  "boards": {b.id: fit(board_notice(pub, b.language), lines=b.lines, chars=b.chars,
                                       charset=b.charset) for b in plan.boards}},
        "notes": notes,
        "token": confirmation(row, plan),
    }


def _publication_like(cfg: ConsoleConfig, row: Mapping[str, Any], plan: _Plan, thread: str,
                      prev: Mapping[str, Any] | None) -> Publication:
    """What the pipeline's publication of this version will hold (publications.issue keeps the infos)."""
    alert = plan.alert
    urgency = max((i.urgency for i in alert.infos), default=Urgency.UNKNOWN)
    msg_type = alert.msg_type.value if alert.msg_type is MsgType.CANCEL else ("Update" if prev else "Alert")
    expires = alert.expires
    return Publication(0, thread, row["version"], None, None, alert.identifier, cfg.sender, alert.sent, msg_type,
                       alert.status.value, alert.severity.value, urgency.value,
                       publications.ms(expires) if expires else None, "push" in row["channels"],
                       tuple(row["channels"]), plan.regions, tuple(Notice.of(i, alert.sender) for i in alert.infos),
                       plan.area_lonlat)


def _push_text(pub: Publication, lang: str, base_url: str) -> dict[str, Any]:
    raw = push_payload(pub, "preview", [lang], base_url)
    doc = json.loads(raw)
    return {"title": doc["headline"], "body": doc["body"], "bytes": len(raw), "payload": doc}


def _notes(row: Mapping[str, Any], plan: _Plan) -> list[str]:
    notes = []
    missing = [lang for lang in LANGUAGES if lang not in row["content"]["texts"]]
    if missing:
        notes.append(_msg(f"Ohne Text in: {', '.join(missing)}", f"no text in {', '.join(missing)}"))
    if plan.outside_share > 0.005:
        names = ", ".join(n for _, n in plan.neighbours) or "–"
        notes.append(_msg(f"{plan.outside_share:.0%} der Fläche liegen außerhalb des Kreises ({names})",
                          f"{plan.outside_share:.0%} of the area lies outside the district"))
    return notes


# -- approve and send -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    """A version that was sent: its CAP is stored with its publish decision. Wake the pipeline now."""

    warning: dict[str, Any]
    alert_id: int
    store_thread: int
    identifier: str


def approve(store: Store, approver: ConsoleUser, warning_id: int, *, token: str, cfg: ConsoleConfig,
            now: datetime | None = None) -> Sent:
    """Approve a submitted version and send it, in one transaction. The approver needs approve permission, the
    area in their scope, must not have written or edited it (four eyes), and must pass the ``token`` of a preview
    of the version as it is."""
    ensure_schema(store)
    now = now or now_utc()

    def run() -> Sent:
        _need(approver, "approve")
        row = _require(store, warning_id)
        _state(row, "submitted")
        if approver.id in row["editors"] or approver.id == row["author_id"]:
            raise ConsoleForbidden(_msg("Vier-Augen-Prinzip: Wer eine Meldung verfasst oder bearbeitet hat, gibt "
                                        "sie nicht frei", "four eyes: authors and editors cannot approve"))
        _ready(row)
        _check_scope(cfg, approver, row["area"])
        with _one_transaction(store) as conn:
            stamp = utc_iso(now)
            conn.execute("UPDATE console_warnings SET state='approved', approver=?, approver_id=?, approved_at=?,"
                         " updated_at=? WHERE id=?", (approver.name, approver.id, stamp, stamp, row["id"]))
            _event(conn, row, approver.name, "approve", {}, now)
            store.audit(approver.name, "console.approve", row["thread"], {"warning": row["id"]}, now=now)
            row = _require(store, warning_id)
            return _send(store, cfg, approver, row, token=token, now=now,
                         why=f"console {row['thread']} v{row['version']} by {row['author']}, approved by "
                             f"{approver.name}")

    return _audited(store, approver, "approve", str(warning_id), run)


def send(store: Store, user: ConsoleUser, warning_id: int, *, token: str, cfg: ConsoleConfig,
         reason: str | None = None, now: datetime | None = None) -> Sent:
    """Send a draft or submitted version without a second person: allowed where the policy does not require four
    eyes for its severity, or, where the admin allows it, an Extreme or Immediate warning by someone with approve
    permission who gives a ``reason`` (audited as ``console.single_person``)."""
    ensure_schema(store)
    now = now or now_utc()

    def run() -> Sent:
        _need(user, "compose")
        row = _require(store, warning_id)
        _state(row, "draft", "submitted")
        _ready(row)
        _check_scope(cfg, user, row["area"])
        c, policy = row["content"], cfg.four_eyes
        single = c["severity"] in policy.required_for
        if single:
            urgent = c["severity"] == Severity.EXTREME.value or c["urgency"] == Urgency.IMMEDIATE.value
            if not (policy.single_person_extreme and urgent and user.can("approve")):
                raise ConsoleForbidden(_msg(f"Vier-Augen-Prinzip: {c['severity']} braucht die Freigabe einer zweiten "
                                            "Person", f"four eyes: {c['severity']} needs a second person's approval"))
            if len((reason or "").strip()) < policy.min_reason:
                raise ConsoleError(_msg(f"Alleinversand nur mit Begründung (mindestens {policy.min_reason} Zeichen)",
                                        f"sending alone needs a reason of {policy.min_reason}+ characters"))
        with _one_transaction(store) as conn:
            why = f"console {row['thread']} v{row['version']} by {user.name}, "
            if single:
                text = (reason or "").strip()
                conn.execute("UPDATE console_warnings SET single_person_reason=?, approver=?, approver_id=? WHERE id=?",
                             (text, user.name, user.id, row["id"]))
                _event(conn, row, user.name, "single_person", {"reason": text}, now)
                store.audit(user.name, "console.single_person", row["thread"],
                            {"warning": row["id"], "severity": c["severity"], "urgency": c["urgency"],
                             "reason": text}, now=now)
                why += f"sent alone: {text}"
            else:
                why += f"no approval needed for {c['severity']}"
            return _send(store, cfg, user, _require(store, warning_id), token=token, now=now, why=why)

    return _audited(store, user, "send", str(warning_id), run)


def _send(store: Store, cfg: ConsoleConfig, user: ConsoleUser, row: Mapping[str, Any], *, token: str,
          now: datetime, why: str) -> Sent:
    """Inside the caller's transaction: CAP, validation, store, decision, state."""
    prev, prev_alert = _previous_sent(store, row)
    alert = build_alert(cfg, row, previous=prev_alert, sent=_sent_time(now, prev_alert))
    plan = _plan(cfg, row, alert)
    if not hmac.compare_digest(str(token or ""), confirmation(row, plan)):
        raise StalePreview(_msg("Die Meldung, ihre Empfänger oder Kanäle haben sich seit der Vorschau geändert: "
                                "bitte neu prüfen", "the warning, its audience or channels changed since the preview"))
    expires = alert.expires
    if alert.msg_type is not MsgType.CANCEL and (expires is None or expires <= alert.sent):
        raise ConsoleError(_msg("Die Gültigkeit ist abgelaufen", "the warning has expired"))
    raw = to_xml(alert)
    report, rec = check_document(cfg.validator, raw, SignaturePolicy.IGNORE)
    if rec is None or report.verdict is not Verdict.VALID:
        raise ConsoleError(_msg("Die CAP-Nachricht ist nicht gültig", "the CAP message is not valid") + ": "
                           + "; ".join(report.errors + report.warnings))
    added = store.add_record(rec, raw, origin=ORIGIN, now=now)
    if added.outcome != "new":
        raise ConsoleError(_msg("Diese Fassung ist schon gespeichert", "this version is stored already"))
    pending = decisions.Pending(added.alert_id, added.thread_id, ORIGIN, alert, prev_alert)
    if not decisions.record(store, pending, _decision(row, plan, why), rules_loaded_at=None, now=now):
        raise ConsoleError(_msg("Über diese Fassung wurde schon entschieden", "this version was decided already"))
    store.conn.execute(
        "UPDATE console_warnings SET state='sent', sent_at=?, updated_at=?, cap_identifier=?, cap_sent=?, alert_id=?,"
        " store_thread=? WHERE id=?", (utc_iso(now), utc_iso(now), alert.identifier, alert.sent.isoformat(),
                                      added.alert_id, added.thread_id, row["id"]))
    _event(store.conn, row, user.name, "send", {"identifier": alert.identifier, "alert": added.alert_id}, now)
    store.audit(user.name, "console.send", row["thread"],
                {"warning": row["id"], "identifier": alert.identifier, "status": alert.status.value,
                 "msg_type": alert.msg_type.value, "severity": alert.severity.value, "audience": row["audience"],
                 "channels": list(row["channels"]), "regions": list(plan.regions)}, now=now)
    return Sent(_require(store, row["id"]), added.alert_id, added.thread_id, alert.identifier)


# -- inbox and status -------------------------------------------------------------------------------------------


def inbox(store: Store, *, now: datetime | None = None, hours: float = PREVIEW_HOURS) -> dict[str, Any]:
    """What waits for the control room: external alerts a rule published or drafted (live threads), pending
    drafts (sensor drafts with the sensor's last ``hours`` of readings as ``(time, value)`` for a chart),
    unrouted alerts with the rules' explanation, and console versions awaiting approval."""
    ensure_schema(store)
    found = decisions.decisions(store, decision="publish") + decisions.decisions(store, decision="draft")
    origins = dict(store.conn.execute("SELECT id, origin FROM alerts WHERE id IN (SELECT value FROM json_each(?))",
                                      (json.dumps([d["alert_id"] for d in found]),)).fetchall())
    matched = sorted((d for d in found if origins.get(d["alert_id"]) != ORIGIN), key=lambda d: -d["alert_id"])
    since = readings.ms_of((now or now_utc()) - timedelta(hours=hours))
    pending = decisions.drafts(store, state="pending")
    for d in pending:
        d["readings"] = [(readings.iso_ms(ts), value) for ts, value in store.conn.execute(
            "SELECT ts, value FROM readings WHERE sensor_id=? AND ts>=? ORDER BY ts LIMIT 2000",
            (d["sensor"], since))] if d["sensor"] else []
    return {"alerts": matched, "drafts": pending, "unrouted": decisions.decisions(store, decision="unrouted"),
            "awaiting_approval": warnings(store, states=["submitted"])}


def status(store: Store, thread: str) -> dict[str, Any]:
    """Per version of a console thread: its state, its CAP, its publication and the deliveries per channel and
    state (hub.outbox.status)."""
    ensure_schema(store)
    rows = versions(store, thread)
    pubs = {v["id"]: publications.by_source_alert(store, v["alert_id"]) for v in rows if v["alert_id"]}
    counts = outbox.status(store, [p.id for p in pubs.values() if p is not None])
    out = []
    for v in rows:
        pub = pubs.get(v["id"])
        out.append({"id": v["id"], "version": v["version"], "state": v["state"], "msg_type": v["msg_type"],
                    "kind": v["kind"], "identifier": v["cap_identifier"], "alert_id": v["alert_id"],
                    "publication": {"id": pub.id, "thread": pub.thread, "version": pub.version,
                                    "identifier": pub.identifier} if pub else None,
                    "channels": counts.get(pub.id, {}) if pub else {}})
    return {"thread": thread, "versions": out}
