"""The hub's public warnings in the shapes of the BBK's NINA API (``warnung.bund.de/api31``): pure functions from a
:class:`~hub.publish.publications.Publication` and its CAP :class:`~hub.cap.model.Alert` to NINA's JSON, plus the
two store reads the NINA routes need beyond :mod:`hub.publish.publications`.

Choices (the shapes follow FACTS.md 5.1 and the samples in ``tests/data/nina/``):

- **Ids.** A warning's NINA id is ``warnhub.<district ARS>.<thread>`` (e.g. ``warnhub.033540000000.w12``): the hub's
  own prefix, stable across the versions of a warning, as KATWARN's ids are; ``payload.version`` counts the versions.
  The detail's ``identifier`` is the CAP identifier of the version shown (unique per message, as CAP wants: an
  Update's ``references`` name the previous one), and GeoJSON features carry it as ``warnId`` (in NINA ``warnId`` equals
  the detail's ``identifier``). ``warnings/{CAP identifier}.json`` answers for that version too.
- **Languages.** NINA's codes: ``DE``, ``DE-LS`` (Leichte Sprache), ``EN``, ``AR`` … in ``info[].language``; the same
  lower-cased (``de``, ``de-ls``, ``en`` …) as the keys of ``i18nTitle``. A language outside the nine keeps its tag,
  upper-cased. Regions of a language (``en-GB``) are not in NINA's codes and are dropped.
- **Times** in NINA's form: ISO 8601 to the second with the Europe/Berlin offset (``2025-03-13T10:50:25+01:00``).
- **Texts.** ``description``, ``instruction`` and ``contact`` are HTML in NINA: ``<``, ``>`` and ``&`` are escaped and
  line breaks become ``<br/>``. Headline, event and areaDesc stay plain text.
- **Areas.** Each area gets NINA's ``AreaId`` geocode (its position, ``0``, ``1`` …) beside its own geocodes; the
  polygons are in the ``.geojson`` (``[lon, lat]``, one feature per ring, ``areaId`` the area's position; a circle is
  sent as a 32-gon; a warning of one area named only by codes gets the area the hub resolved), as newer NINA
  details do. The hub's 12-digit region keys are the ``warnVerwaltungsbereiche``
  parameter (NINA's list of the ARS a warning concerns).
- **Provider** (``payload.data.provider``): from the source the hub republished (its CAP sender in the publication's
  note): ``DWD``, ``KATWARN``, ``BIWAPP``, ``LHP``, else ``MOWAS`` — also for the district's own warnings, NINA's
  class of warnings issued by an authority (NINA clients know only NINA's provider names).
- **Dashboard area** (``payload.data.area``): NINA's ``ZGEM`` where the warning came with one (it cannot be computed:
  an undocumented index into NINA's Gemeinde list), else ``{"type": "ARS", "data": "<ARS,ARS,…>"}``.
- **transKeys.event**: the warning's BBK event code (``BBK-EVC-nnn``) where it carries one; else the dashboard has an
  empty ``transKeys`` and mapData none (NINA's mapData items lack it at times too).
"""

from __future__ import annotations

import hashlib
import html
import math
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from hub.cap.model import Alert, Area, Info, Value, to_json
from hub.i18n.languages import code_of
from hub.publish import publications
from hub.publish.publications import WEB, Audience, Publication
from hub.store.db import Store

BERLIN = ZoneInfo("Europe/Berlin")
PREFIX = "warnhub"
PROVIDERS = {"mowas": "MOWAS", "katwarn": "KATWARN", "biwapp": "BIWAPP", "dwd": "DWD", "lhp": "LHP",
             "police": "POLICE"}
"""NINA's per-source list names (``{name}/mapData.json``) and the provider each stands for."""
_BY_SENDER = {"opendata@dwd.de": "DWD", "cap@dwd.de": "DWD", "cap@katwarn.de": "KATWARN", "cap@biwapp.de": "BIWAPP",
              "cap@hochwasserzentralen.de": "LHP"}
_SOURCE = re.compile(r"Quelle / source: (\S+)")
_THREAD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ARS_PARAMETER = "warnVerwaltungsbereiche"
ZGEM = "ZGEM"
GREY = "#C4C4C4"
COLOURS = {"Extreme": "#5B0A6E", "Severe": "#B00020", "Moderate": "#B35300", "Minor": "#FDE047"}
"""Map colours by severity (the kiosk boards' colours); a Cancel is grey as in NINA's sample."""
CIRCLE_POINTS = 32


# -- names, times, languages ----------------------------------------------------------------------------------------


def nina_id(district: str, thread: str) -> str:
    return f"{PREFIX}.{district}.{thread}"


def thread_of(district: str, wid: str) -> str | None:
    """The publication thread a NINA id names, or None when it is no id of this hub's (maybe a CAP identifier)."""
    head = f"{PREFIX}.{district}."
    rest = wid[len(head):] if wid.startswith(head) else ""
    return rest if _THREAD.match(rest) else None


def when(value: datetime) -> str:
    return value.astimezone(BERLIN).isoformat(timespec="seconds")


def nina_language(tag: str | None) -> str:
    """NINA's code of a language tag: ``de-DE`` -> ``DE``, ``de-DE-x-ls`` -> ``DE-LS``, ``en-GB`` -> ``EN``."""
    code = code_of(tag)
    if code == "de-x-ls":
        return "DE-LS"
    if code is not None:
        return code.upper()
    return (tag or "und").upper()


def german(alert: Alert) -> Info | None:
    """The German info (not Leichte Sprache), else the first."""
    return next((i for i in alert.infos if code_of(i.language) == "de"), alert.infos[0] if alert.infos else None)


def titles(pub: Publication, alert: Alert) -> dict[str, str]:
    """``i18nTitle``: the headline in every language the warning carries, German first."""
    out: dict[str, str] = {}
    first = german(alert)
    for info in [first, *alert.infos] if first is not None else []:
        key = nina_language(info.language).lower()
        text = info.headline or info.event
        if text and key not in out:
            out[key] = text
    return out or {"de": pub.identifier}


def provider(alert: Alert) -> str:
    found = _SOURCE.search(alert.note or "")
    sender = found.group(1).lower() if found else ""
    return _BY_SENDER.get(sender, "MOWAS")


def event_key(alert: Alert) -> str | None:
    """The BBK event code (``BBK-EVC-nnn``) of the warning, German info first."""
    first = german(alert)
    for info in [first, *alert.infos] if first is not None else []:
        for code in info.event_codes:
            if code.value.startswith("BBK-EVC-"):
                return code.value
    return None


def digest(alert: Alert) -> str:
    return hashlib.sha256(to_json(alert)).hexdigest()


def _regions(pub: Publication) -> list[str]:
    return [r for r in pub.regions if len(r) == 12 and r.isdigit()]


# -- lists ----------------------------------------------------------------------------------------------------------


def map_item(district: str, pub: Publication, alert: Alert) -> dict[str, Any]:
    """A ``mapData.json`` item."""
    out: dict[str, Any] = {"id": nina_id(district, pub.thread), "version": pub.version, "startDate": when(pub.sent)}
    if pub.expires is not None:
        out["expiresDate"] = when(pub.expires)
    out.update({"severity": pub.severity, "urgency": pub.urgency, "type": pub.msg_type,
                "i18nTitle": titles(pub, alert)})
    key = event_key(alert)
    if key:
        out["transKeys"] = {"event": key}
    return out


def _dashboard_area(pub: Publication, alert: Alert) -> dict[str, str]:
    first = german(alert)
    zgem = next((p.value for p in first.parameters if p.value_name == ZGEM), None) if first else None
    if zgem:
        return {"type": ZGEM, "data": zgem}
    return {"type": "ARS", "data": ",".join(_regions(pub))}


def dashboard_item(district: str, pub: Publication, alert: Alert, *, now: datetime | None = None) -> dict[str, Any]:
    """A ``dashboard/{ARS}.json`` item."""
    wid = nina_id(district, pub.thread)
    first = german(alert)
    key = event_key(alert)
    named = titles(pub, alert)
    data = {"headline": named.get("de") or next(iter(named.values())),
            "provider": provider(alert), "severity": pub.severity, "urgency": pub.urgency,
            "msgType": pub.msg_type, "transKeys": {"event": key} if key else {},
            "area": _dashboard_area(pub, alert), "valid": pub.live(now)}
    out: dict[str, Any] = {"id": wid, "payload": {"version": pub.version, "type": "ALERT", "id": wid,
                                                  "hash": digest(alert), "data": data},
                           "i18nTitle": named, "sent": when(pub.sent)}
    for name in ("onset", "effective"):
        value = getattr(first, name) if first is not None else None
        if value is not None:
            out[name] = when(value)
    if pub.expires is not None:
        out["expires"] = when(pub.expires)
    return out


# -- the detail -----------------------------------------------------------------------------------------------------


def _html(text: str | None) -> str:
    return html.escape(text or "", quote=False).replace("\r\n", "\n").replace("\n", "<br/>")


def _pairs(values: tuple[Value, ...] | list[Value]) -> list[dict[str, str]]:
    return [{"valueName": v.value_name, "value": v.value} for v in values]


def _area(area: Area, position: int) -> dict[str, Any]:
    codes = [Value(value_name="AreaId", value=str(position))]
    codes += [g for g in area.geocodes if g.value_name != "AreaId"]
    out: dict[str, Any] = {"areaDesc": area.area_desc, "geocode": _pairs(codes)}
    if area.altitude is not None:
        out["altitude"] = area.altitude
        if area.ceiling is not None:
            out["ceiling"] = area.ceiling
    return out


def _parameters(info: Info, regions: list[str]) -> list[dict[str, str]]:
    params = list(info.parameters)
    if regions:
        params = [p for p in params if p.value_name != ARS_PARAMETER]
        params.insert(0, Value(value_name=ARS_PARAMETER, value=",".join(regions)))
    return _pairs(params)


def _info(info: Info, regions: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"language": nina_language(info.language), "category": [c.value for c in info.categories],
                           "event": info.event}
    if info.response_types:
        out["responseType"] = [r.value for r in info.response_types]
    out.update({"urgency": info.urgency.value, "severity": info.severity.value, "certainty": info.certainty.value,
                "eventCode": _pairs(info.event_codes)})
    for name in ("effective", "onset", "expires"):
        value = getattr(info, name)
        if value is not None:
            out[name] = when(value)
    if info.sender_name:
        out["senderName"] = info.sender_name
    out.update({"headline": info.headline or info.event, "description": _html(info.description),
                "instruction": _html(info.instruction)})
    if info.web:
        out["web"] = info.web
    if info.contact:
        out["contact"] = _html(info.contact)
    out["parameter"] = _parameters(info, regions)
    out["area"] = [_area(a, n) for n, a in enumerate(info.areas)]
    return out


def detail(pub: Publication, alert: Alert) -> dict[str, Any]:
    """``warnings/{id}.json``: the CAP message in NINA's JSON, one ``info`` per language."""
    out: dict[str, Any] = {"identifier": alert.identifier, "sender": alert.sender, "sent": when(alert.sent),
                           "status": alert.status.value, "msgType": alert.msg_type.value}
    if alert.source:
        out["source"] = alert.source
    out.update({"scope": alert.scope.value, "code": list(alert.codes)})
    if alert.references:
        out["references"] = " ".join(f"{r.sender},{r.identifier},{when(r.sent)}" for r in alert.references)
    regions = _regions(pub)
    out["info"] = [_info(i, regions) for i in alert.infos]
    return out


# -- GeoJSON --------------------------------------------------------------------------------------------------------


def _circle_ring(lat: float, lon: float, radius_km: float) -> list[list[float]]:
    """A circle as a closed ring of ``[lon, lat]`` points (good enough for a map at district scale)."""
    dlat = radius_km / 111.32
    dlon = radius_km / (111.32 * max(math.cos(math.radians(lat)), 0.01))
    ring = [[round(lon + dlon * math.sin(a), 6), round(lat + dlat * math.cos(a), 6)]
            for a in (2 * math.pi * k / CIRCLE_POINTS for k in range(CIRCLE_POINTS))]
    return [*ring, ring[0]]


def _resolved(pub: Publication) -> list[list[list[float]]]:
    """The outer rings (``[lon, lat]``) of the area the hub resolved for the publication (warncells, ARS)."""
    parts = getattr(pub.area, "geoms", [pub.area]) if pub.area is not None else []
    return [[[round(x, 6), round(y, 6)] for x, y in p.exterior.coords] for p in parts if p.geom_type == "Polygon"]


def geojson(pub: Publication, alert: Alert) -> dict[str, Any]:
    """``warnings/{id}.geojson``: an RFC 7946 FeatureCollection, one Polygon feature per ring of the German info's
    areas, coordinates ``[lon, lat]`` (CAP's ``lat,lon`` swapped), with NINA's properties. A warning of one area
    named only by codes (a DWD warncell, an ARS) gets the area the hub resolved for it, so a map shows it."""
    first = german(alert)
    colour = GREY if pub.msg_type == "Cancel" else COLOURS.get(pub.severity, GREY)
    areas = first.areas if first is not None else ()
    rings_of = [[[[lon, lat] for lat, lon in ring] for ring in area.polygons]
                + [_circle_ring(c.center[0], c.center[1], c.radius_km) for c in area.circles] for area in areas]
    if len(areas) == 1 and not rings_of[0]:
        rings_of = [_resolved(pub)]
    features: list[dict[str, Any]] = []
    for position, rings in enumerate(rings_of):
        for ring in rings:
            features.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                             "properties": {"warnId": alert.identifier, "areaId": position, "strokeColor": colour,
                                            "strokeOpacity": 1.0, "strokeWeight": 1, "fillColor": colour,
                                            "fillOpacity": 0.5, "zIndex": 0},
                             "id": str(len(features))})
    return {"type": "FeatureCollection", "features": features}


# -- store reads (on the store's thread) ----------------------------------------------------------------------------


def alerts_of(store: Store, pubs: list[Publication]) -> list[tuple[Publication, Alert]]:
    """Each publication with its CAP alert (as issued)."""
    out = []
    for p in pubs:
        alert = publications.alert_of(store, p.id)
        if alert is not None:
            out.append((p, alert))
    return out


def shown(store: Store, district: str, wid: str, audience: Audience = WEB) -> tuple[Publication, Alert] | None:
    """The version a NINA id names, if ``audience`` may see it: the latest shown version of the thread for a hub id,
    that version for a CAP identifier."""
    thread = thread_of(district, wid)
    version = None
    if thread is None:
        where, params = audience.where()
        row = store.conn.execute(f"SELECT thread, version FROM publications WHERE identifier=? AND {where}",
                                 (wid, *params)).fetchone()
        if row is None:
            return None
        thread, version = row
    versions = publications.shown_versions(store, thread, audience)
    found = [p for p in versions if version is None or p.version == version]
    if not found:
        return None
    pub = found[-1]
    alert = publications.alert_of(store, pub.id)
    return (pub, alert) if alert is not None else None
