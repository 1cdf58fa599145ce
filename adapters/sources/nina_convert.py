"""NINA JSON -> CAP 1.2 :class:`~hub.cap.model.Alert`: pure functions, no I/O.

Accepted shapes (:func:`convert_payload`): one warning detail (``warnings/{id}.json``), an object of details keyed
by id, a legacy ``bbk.*`` list (a JSON array of whole warnings), and the ``mapData.json`` / ``dashboard/{ARS}.json``
lists. List items are summaries: each becomes a minimal CAP alert flagged as a summary (the running source never
stores those; it fetches the detail).

Choices, each flagged in the notes where it changes what the source said:

- **Identity.** NINA prefixes identifiers with its channel: ``mow.`` (MoWaS), ``dwd.`` (DWD; ``dwdmap.`` in mapData)
  and ``biw.`` (BIWAPP). These prefixes are stripped from identifier and references, so a warning that also arrives
  directly (MoWaS CAP, DWD CAP) has the same CAP identity (sender, identifier, sent) and the store keeps one thread
  with one version. ``kat.``, ``lhp.`` and others stay: their ids (``kat.<hex>_public_topics``,
  ``lhp.HOCHWASSERZENTRALEN.DE.<XX>``) do not show how the issuer's own CAP names them.
- **Coordinates.** NINA polygon strings are ``lon,lat``; CAP's are ``lat,lon``: swapped here. ``-1.0,-1.0`` pairs
  are dropped, rings are closed, rings with fewer than 4 points are dropped. A ring that only lies in Germany when
  read the other way round is read that way. GeoJSON (``warnings/{id}.geojson``) gives outer rings only (holes are
  dropped); a feature belongs to the area whose ``AreaId`` geocode equals its ``areaId``; an area of another
  language's info without ``AreaId`` takes the rings of the area at the same position in the first info that has it.
- **Language.** ``DE`` -> ``de-DE``, ``DE-LS`` (Leichte Sprache) -> ``de-DE-x-ls``, others lowercased
  (``EN`` -> ``en``).
- **Text.** Description, instruction, contact and areaDesc are HTML (``<br/>``, entities): turned into plain text
  with their line breaks kept as newlines.
- **Web.** CAP ``web`` must be a URI: prose ("Aktuelle Informationen unter ...") or an HTML anchor in NINA's web
  field gives up its first http(s) link (``www.`` hosts get ``https://``); its text, where it says more than the
  link, is appended to the description (:mod:`adapters.sources.weblink`).
- **References.** Well-formed ``sender,identifier,sent`` triples pass (minus prefixes). Malformed ones (lists inside
  the fields, truncated senders, broken times) are rebuilt where the parts are there: a MoWaS identifier
  ``DE-<Land>-<district>-<station>-<YYYYMMDD>-<seq>`` names its sender (first four parts) and date; a missing sent
  is estimated as that date at 00:00 Europe/Berlin.
- **ARS.** ``warnVerwaltungsbereiche`` (comma-separated 12-digit ARS) stays a parameter and also becomes ``ARS``
  geocodes on every area of its info.
- **Enums and defaults.** Unknown category -> Other, unknown urgency/severity/certainty -> Unknown, missing scope ->
  Public, missing status -> Actual. Times without offset are read as Europe/Berlin. An ``expires`` more than a year
  after ``sent`` (the HA sample has ``3021``) is dropped as a typo, so the warning can still end.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import msgspec

from adapters.sources.nina_fields import (
    _circle,
    _enum,
    _line,
    _list,
    _Notes,
    _pairs,
    _str,
    _time,
    html_to_text,
    normalise_language,
    parse_geojson,
    polygon_from_nina,
    strip_prefix,
)
from adapters.sources.nina_refs import _mowas_parts, repair_references
from adapters.sources.weblink import split_web
from hub.cap.model import (
    Alert,
    Area,
    Category,
    Certainty,
    Info,
    MsgType,
    Polygon,
    ResponseType,
    Scope,
    Severity,
    Status,
    Urgency,
    Value,
)
from hub.errors import ParseError
from hub.ports import Converted

__all__ = ["NinaFormatError", "convert_payload", "convert_warning", "convert_summary", "warning_ars"]

MAX_EXPIRES_AFTER_SENT = timedelta(days=366)
ARS_PARAMETER = "warnVerwaltungsbereiche"
SUMMARY_NOTE = "NINA list summary, not the full warning: built from a mapData/dashboard item"
_SENDER_BY_PREFIX = {"dwd.": "opendata@dwd.de", "dwdmap.": "opendata@dwd.de", "kat.": "CAP@katwarn.de",
                     "biw.": "CAP@biwapp.de", "lhp.": "CAP@hochwasserzentralen.de"}
_SENDER_BY_PROVIDER = {"DWD": "opendata@dwd.de", "KATWARN": "CAP@katwarn.de", "BIWAPP": "CAP@biwapp.de",
                       "LHP": "CAP@hochwasserzentralen.de"}
_ARS = re.compile(r"^[0-9]{12}$")


class NinaFormatError(ParseError):
    """A NINA payload is not one of the known shapes, or lacks what identifies a warning."""


# -- warnings -----------------------------------------------------------------------------------------------------

def _ars_values(parameters: list[Value], notes: _Notes) -> list[str]:
    out: list[str] = []
    for p in parameters:
        if p.value_name != ARS_PARAMETER:
            continue
        for item in re.split(r"[\s,;]+", p.value):
            if not item:
                continue
            if _ARS.match(item):
                if item not in out:
                    out.append(item)
            else:
                notes.add(f"{ARS_PARAMETER}: {item[:20]!r} is not a 12-digit ARS: dropped")
    return out


def warning_ars(obj: Any) -> list[str]:
    """The 12-digit ARS a NINA warning detail names (``warnVerwaltungsbereiche`` and ``ARS`` geocodes)."""
    out: list[str] = []
    if not isinstance(obj, dict):
        return out
    notes = _Notes()
    for info in _list(obj.get("info")):
        if not isinstance(info, dict):
            continue
        candidates = _ars_values(_pairs(info.get("parameter"), "parameter", notes), notes)
        for area in _list(info.get("area")):
            if isinstance(area, dict):
                candidates += [g.value for g in _pairs(area.get("geocode"), "geocode", notes)
                               if g.value_name == "ARS" and _ARS.match(g.value)]
        out += [a for a in candidates if a not in out]
    return out


def _area(raw: Any, what: str, ars: list[str], notes: _Notes) -> tuple[Area, str | None]:
    """One area and its NINA ``AreaId`` (for GeoJSON)."""
    if not isinstance(raw, dict):
        notes.add(f"{what} is not an object: replaced by an empty area")
        raw = {}
    desc = html_to_text(raw.get("areaDesc"))  # lines kept: NINA lists areas one per line
    if desc is None:
        notes.add(f"{what}: areaDesc missing")
    polygons: list[Polygon] = []
    for text in _list(raw.get("polygon")):
        if isinstance(text, str):
            ring = polygon_from_nina(text, notes)
            if ring is not None:
                polygons.append(ring)
        else:
            notes.add(f"{what}: polygon that is not a string: dropped")
    circles = [c for t in _list(raw.get("circle")) if isinstance(t, str) and (c := _circle(t, notes)) is not None]
    geocodes = _pairs(raw.get("geocode"), "geocode", notes)
    area_id = next((g.value for g in geocodes if g.value_name == "AreaId"), None)
    have = {(g.value_name, g.value) for g in geocodes}
    geocodes += [Value(value_name="ARS", value=a) for a in ars if ("ARS", a) not in have]
    altitude, ceiling = _number(raw.get("altitude"), notes), _number(raw.get("ceiling"), notes)
    if ceiling is not None and altitude is None:
        notes.add(f"{what}: ceiling without altitude: dropped")
        ceiling = None
    return Area(area_desc=desc or "", polygons=tuple(polygons), circles=tuple(circles), geocodes=tuple(geocodes),
                altitude=altitude, ceiling=ceiling), area_id


def _number(value: Any, notes: _Notes) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        notes.add(f"altitude/ceiling {str(value)[:20]!r} is not a number: dropped")
        return None


def _web(raw: dict[str, Any], notes: _Notes) -> tuple[str | None, str | None]:
    """CAP ``web`` (a URI) and ``description``: prose or an anchor in NINA's web field gives up its link, and
    its text, where it says more than the link, goes to the end of the description."""
    given = _str(raw.get("web"))
    web, text = split_web(given, html_to_text)
    description = html_to_text(raw.get("description"))
    if given is not None and web != given:
        notes.add(f"web {given[:60]!r} is not a URI: " + (f"link {web!r} taken out" if web else "no link in it"))
    if text:
        description = f"{description}\n\n{text}" if description else text
        notes.add("web: its text moved to the description")
    return web, description


def _info(raw: Any, sent: datetime, notes: _Notes) -> tuple[Info, list[str | None]]:
    if not isinstance(raw, dict):
        raise NinaFormatError("an info is not an object")
    language = normalise_language(raw.get("language"))
    if language is None:
        notes.add(f"language {raw.get('language')!r} unusable: set to 'und' (undetermined)")
        language = "und"
    categories = [c for v in _list(raw.get("category"))
                  if (c := _enum(Category, v, Category.OTHER, "category", notes)) is not None]
    if not categories:
        notes.add("category missing: set to Other")
        categories = [Category.OTHER]
    responses = [r for v in _list(raw.get("responseType"))
                 if (r := _enum(ResponseType, v, None, "responseType", notes)) is not None]
    event = _line(raw.get("event"))
    headline = _line(raw.get("headline"))
    if event is None:
        event = headline or "Warnung"
        notes.add(f"event missing: set to {event!r}")
    times = {k: _time(raw.get(k), k, notes) for k in ("effective", "onset", "expires")}
    expires = times["expires"]
    if expires is not None and expires - sent > MAX_EXPIRES_AFTER_SENT:
        notes.add(f"expires {expires.isoformat()} is more than a year after sent: dropped as a typo")
        expires = None
    parameters = _pairs(raw.get("parameter"), "parameter", notes)
    ars = _ars_values(parameters, notes)
    web, description = _web(raw, notes)
    areas: list[Area] = []
    area_ids: list[str | None] = []
    for n, item in enumerate(_list(raw.get("area"))):
        area, area_id = _area(item, f"area[{n}]", ars, notes)
        areas.append(area)
        area_ids.append(area_id)
    info = Info(
        language=language,
        categories=tuple(dict.fromkeys(categories)),
        event=event,
        response_types=tuple(dict.fromkeys(responses)),
        urgency=_enum(Urgency, raw.get("urgency"), Urgency.UNKNOWN, "urgency", notes) or Urgency.UNKNOWN,
        severity=_enum(Severity, raw.get("severity"), Severity.UNKNOWN, "severity", notes) or Severity.UNKNOWN,
        certainty=_enum(Certainty, raw.get("certainty"), Certainty.UNKNOWN, "certainty", notes)
        or Certainty.UNKNOWN,
        audience=_line(raw.get("audience")),
        event_codes=tuple(_pairs(raw.get("eventCode"), "eventCode", notes)),
        effective=times["effective"],
        onset=times["onset"],
        expires=expires,
        sender_name=_line(raw.get("senderName")),
        headline=headline,
        description=description,
        instruction=html_to_text(raw.get("instruction")),
        web=web,
        contact=html_to_text(raw.get("contact")),  # "Leitstelle<br/>Tel. …": one line each, as in description
        parameters=tuple(parameters),
        areas=tuple(areas),
    )
    return info, area_ids


def _attach(infos: list[Info], area_ids: list[list[str | None]], rings: dict[str, list[Polygon]],
            notes: _Notes) -> list[Info]:
    """GeoJSON rings onto the areas they belong to (by AreaId, else by position; see the module docstring)."""
    width = max((len(ids) for ids in area_ids), default=0)
    by_position: list[str | None] = [next((ids[j] for ids in area_ids if j < len(ids) and ids[j] is not None), None)
                                     for j in range(width)]
    used: set[str] = set()
    out: list[Info] = []
    for info, ids in zip(infos, area_ids, strict=True):
        areas = []
        for j, area in enumerate(info.areas):
            key = ids[j] if ids[j] is not None else by_position[j]
            if area.polygons or key is None or key not in rings:
                areas.append(area)
                continue
            used.add(key)
            areas.append(msgspec.structs.replace(area, polygons=tuple(rings[key])))
        out.append(msgspec.structs.replace(info, areas=tuple(areas)))
    unused = sorted(set(rings) - used)
    if unused:
        notes.add(f"GeoJSON features of areaId {', '.join(unused[:5])} match no area: dropped")
    return out


def convert_warning(obj: Mapping[str, Any], *, geojson: Any = None) -> Converted:
    """One NINA warning detail (``warnings/{id}.json``, or an item of a legacy list) as a CAP alert with notes.

    ``geojson`` is the decoded ``warnings/{id}.geojson``; its rings go to areas that carry none of their own.
    Raises NinaFormatError when the warning lacks what identifies it (identifier, sender, sent).
    """
    if not isinstance(obj, dict):
        raise NinaFormatError("a NINA warning must be a JSON object")
    notes = _Notes()
    raw_id = _str(obj.get("identifier"))
    if raw_id is None:
        raise NinaFormatError("warning without identifier")
    identifier = strip_prefix(raw_id)
    sender = _str(obj.get("sender"))
    if sender is None:
        derived = _mowas_parts(identifier)
        sender = derived[0] if derived else next((s for p, s in _SENDER_BY_PREFIX.items() if raw_id.startswith(p)),
                                                 None)
        if sender is None:
            raise NinaFormatError(f"{raw_id}: sender missing")
        notes.add(f"sender missing: derived from the identifier as {sender!r}")
    sent = _time(obj.get("sent"), "sent", notes)
    if sent is None:
        raise NinaFormatError(f"{raw_id}: sent missing or not a date-time")
    status = _enum(Status, obj.get("status"), Status.ACTUAL, "status", notes) or Status.ACTUAL
    msg_type = _enum(MsgType, obj.get("msgType"), MsgType.ALERT, "msgType", notes) or MsgType.ALERT
    scope = _enum(Scope, obj.get("scope"), Scope.PUBLIC, "scope", notes) or Scope.PUBLIC
    codes = tuple(c for v in _list(obj.get("code")) if (c := _str(v)) is not None)
    references = repair_references(obj.get("references"), sender=sender, sent=sent, notes=notes)
    infos: list[Info] = []
    area_ids: list[list[str | None]] = []
    for raw in _list(obj.get("info")):
        info, ids = _info(raw, sent, notes)
        infos.append(info)
        area_ids.append(ids)
    if not infos:
        notes.add("warning without info")
    if geojson is not None:
        rings = parse_geojson(geojson, notes, warn_id=raw_id)
        if rings:
            infos = _attach(infos, area_ids, rings, notes)
    alert = Alert(
        identifier=identifier, sender=sender, sent=sent, status=status, msg_type=msg_type,
        source=_str(obj.get("source")), scope=scope, restriction=_str(obj.get("restriction")),
        addresses=_str(obj.get("addresses")), codes=codes, note=_str(obj.get("note")), references=references,
        incidents=_str(obj.get("incidents")), infos=tuple(infos),
    )
    return Converted(alert, notes.tuple())


# -- list summaries -------------------------------------------------------------------------------------------------

def convert_summary(item: Mapping[str, Any]) -> Converted:
    """A ``mapData.json`` or ``dashboard/{ARS}.json`` item as a minimal CAP alert, flagged as a summary."""
    if not isinstance(item, dict):
        raise NinaFormatError("a list item must be a JSON object")
    notes = _Notes()
    notes.add(SUMMARY_NOTE)
    raw_id = _str(item.get("id"))
    if raw_id is None:
        raise NinaFormatError("list item without id")
    payload = item.get("payload") if isinstance(item.get("payload"), dict) else {}
    assert isinstance(payload, dict)
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    assert isinstance(data, dict)
    identifier = strip_prefix(raw_id)
    derived = _mowas_parts(identifier)
    provider = _str(data.get("provider"))
    sender = (derived[0] if derived else None) or _SENDER_BY_PROVIDER.get((provider or "").upper()) or next(
        (s for p, s in _SENDER_BY_PREFIX.items() if raw_id.startswith(p)), "warnung.bund.de")
    notes.add(f"sender not in the list: inferred as {sender!r}")
    sent = _time(item.get("sent") or item.get("startDate"), "sent", notes)
    if sent is None:
        raise NinaFormatError(f"{raw_id}: list item without sent/startDate")
    titles = item.get("i18nTitle") if isinstance(item.get("i18nTitle"), dict) else {}
    assert isinstance(titles, dict)
    headline = _line(data.get("headline")) or _line(titles.get("de"))
    trans = data.get("transKeys") if isinstance(data.get("transKeys"), dict) else item.get("transKeys")
    event_key = _str(trans.get("event")) if isinstance(trans, dict) else None
    expires = _time(item.get("expires") or item.get("expiresDate"), "expires", notes)
    if expires is not None and expires - sent > MAX_EXPIRES_AFTER_SENT:
        notes.add(f"expires {expires.isoformat()} is more than a year after sent: dropped as a typo")
        expires = None
    severity = data.get("severity", item.get("severity"))
    urgency = data.get("urgency", item.get("urgency"))
    params = []
    area = data.get("area")
    if isinstance(area, dict) and _str(area.get("type")) and _str(area.get("data")):
        params.append(Value(value_name=str(_str(area.get("type"))), value=str(_str(area.get("data")))))
    languages = [("de", headline)] + [(k, _line(v)) for k, v in titles.items() if k != "de" and isinstance(k, str)]
    infos = []
    for lang, title in languages:
        tag = normalise_language(lang.upper() if lang.lower() == "de" else lang)
        if tag is None or (title is None and lang != "de"):
            continue
        infos.append(Info(
            language=tag, categories=(Category.OTHER,), event=event_key or title or "Warnung",
            urgency=_enum(Urgency, urgency, Urgency.UNKNOWN, "urgency", notes) or Urgency.UNKNOWN,
            severity=_enum(Severity, severity, Severity.UNKNOWN, "severity", notes) or Severity.UNKNOWN,
            certainty=Certainty.UNKNOWN,
            event_codes=(Value(value_name="profile:DE-BBK-EVENTCODE", value=event_key),)
            if event_key and event_key.startswith("BBK-EVC-") else (),
            effective=_time(item.get("effective"), "effective", notes),
            onset=_time(item.get("onset"), "onset", notes), expires=expires, headline=title,
            parameters=tuple(params)))
    msg_type = _enum(MsgType, data.get("msgType") or item.get("type"), MsgType.ALERT, "msgType", notes) \
        or MsgType.ALERT
    alert = Alert(identifier=identifier, sender=sender, sent=sent, status=Status.ACTUAL, msg_type=msg_type,
                  scope=Scope.PUBLIC, note=SUMMARY_NOTE, infos=tuple(infos))
    return Converted(alert, notes.tuple())


# -- payloads -----------------------------------------------------------------------------------------------------

def decode_json(data: bytes) -> Any:
    """JSON, or NinaFormatError (not JSON, not UTF-8, nested too deep)."""
    try:
        return msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError, ValueError) as err:
        raise NinaFormatError(f"not JSON: {str(err)[:120]}") from err


def _is_warning(obj: Any) -> bool:
    return isinstance(obj, dict) and "identifier" in obj and "info" in obj


def convert_payload(data: bytes, *, geojson: bytes | None = None) -> list[Converted]:
    """Every warning in a NINA payload of any known shape (see the module docstring).

    ``geojson`` (a ``warnings/{id}.geojson``) is applied to the warning whose NINA id its features name.
    Raises NinaFormatError for anything else.
    """
    obj = decode_json(data)
    shapes = decode_json(geojson) if geojson is not None else None

    def one(warning: dict[str, Any]) -> Converted:
        return convert_warning(warning, geojson=shapes if _geojson_matches(shapes, warning) else None)

    if isinstance(obj, dict):
        if _is_warning(obj):
            return [one(obj)]
        if all(_is_warning(v) for v in obj.values()):
            return [one(v) for v in obj.values()]
        raise NinaFormatError("a JSON object that is neither a NINA warning nor warnings keyed by id")
    if isinstance(obj, list):
        if all(_is_warning(v) for v in obj):
            return [one(v) for v in obj]
        if all(isinstance(v, dict) and isinstance(v.get("id"), str) for v in obj):
            return [convert_summary(v) for v in obj]
        raise NinaFormatError("a JSON array that is neither a warning list nor a mapData/dashboard list")
    raise NinaFormatError(f"a JSON {type(obj).__name__} is no NINA payload")


def _geojson_matches(shapes: Any, warning: dict[str, Any]) -> bool:
    if shapes is None:
        return False
    features = shapes.get("features") if isinstance(shapes, dict) else None
    ids = {f.get("properties", {}).get("warnId") for f in features or [] if isinstance(f, dict)
           and isinstance(f.get("properties"), dict)}
    ids.discard(None)
    return not ids or warning.get("identifier") in ids
