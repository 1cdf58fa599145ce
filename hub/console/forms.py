"""Validation of what a form sends: content (event, codes, times, texts per language), area (ARS and GeoJSON
features in ``lon,lat``) and settings (status, channels, audience, topic). Refusals are :class:`ConsoleError`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shapely.geometry import shape as geojson_shape

from hub.cap.model import Category, Certainty, ResponseType, Severity, Status, Urgency
from hub.console.model import CHANNELS, LANGUAGES, ConsoleError, _msg
from hub.geo.geography import Geography
from hub.store.clock import utc_iso

_SLUG = re.compile(r"[a-z0-9-]{1,40}")
_EVC = re.compile(r"BBK-EVC-\d{3}")
_ISC = re.compile(r"BBK-ISC-\d{3}")
_GERMANY_LON, _GERMANY_LAT = (5.0, 16.0), (47.0, 56.0)
_TEXT_MAX = {"headline": 140, "description": 4000, "instruction": 4000}



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


def _still_reviewed(base: Mapping[str, Any], texts: Mapping[str, Any]) -> dict[str, Any]:
    """The review state of the languages whose text is still the template's as reviewed (an edited text is no
    longer what a native speaker confirmed). From ``base`` only, never from a form."""
    before = base.get("texts") or {}
    return {lang: dict(state) for lang, state in (base.get("review") or {}).items()
            if lang in texts and texts[lang] == before.get(lang)}


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
    out["review"] = _still_reviewed(base, out["texts"])
    out["biwapp_category"] = base.get("biwapp_category") or None
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
