"""A Warntag replay for bench/storm.py and tests/faults/test_storm.py (issue 17 §1): many authorities trigger at
once — DWD, MoWaS, KATWARN and BIWAPP senders, overlapping areas of the district, Updates and Cancels among them,
a copy of one DWD warning through a second source (the NINA replay directory) — and one Extreme that arrives last.

The triggers are CAP 1.2 documents as each sender writes them (the sender decides the provider the rules see:
``opendata@dwd.de``, a MoWaS station code ``DE-NI-...``, ``...@katwarn.de``, ``...@biwapp.de``); the district's
rules (rules/luechow-dannenberg.toml) push DWD and MoWaS from Severe, and show KATWARN and BIWAPP on the web only.
With ``replay(nina_api=True)`` the MoWaS, KATWARN and BIWAPP triggers come as NINA JSON instead (the warning
detail ``warnings/{id}.json`` and the district's ``dashboard/{ARS}.json`` listing it, FACTS.md 5.1: ``lon,lat``
polygon strings, upper-case language, ``mow.``/``kat.``/``biw.`` ids), served by :class:`NinaApi` to the hub's
real NINA source; the console trigger of the storm is sent by :class:`ConsoleSender` (four eyes: one operator
writes and submits, another approves).
"""

from __future__ import annotations

import asyncio
import hashlib
import http.cookiejar
import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from adapters.sources.nina_fields import strip_prefix
from hub.access import auth
from hub.geo.geography import geography
from hub.store.db import Store
from tests.kits.sourcekit import ReplayServer

# the district's bounding box (lon, lat); polygons inside it overlap in the middle
WEST, SOUTH, EAST, NORTH = 10.76, 52.85, 11.59, 53.24
MID_LON, MID_LAT = (WEST + EAST) / 2, (SOUTH + NORTH) / 2
AREAS = {
    "west": (WEST, SOUTH, MID_LON + 0.08, NORTH), "east": (MID_LON - 0.08, SOUTH, EAST, NORTH),
    "south": (WEST, SOUTH, EAST, MID_LAT + 0.05), "north": (WEST, MID_LAT - 0.05, EAST, NORTH),
    "centre": (MID_LON - 0.2, MID_LAT - 0.12, MID_LON + 0.2, MID_LAT + 0.12), "all": (WEST, SOUTH, EAST, NORTH),
}
DWD_EVENTS = ("STURMBÖEN", "ORKANARTIGE BÖEN", "SCHWERES GEWITTER", "STARKREGEN", "HEFTIGER STARKREGEN",
              "GLATTEIS", "ORKANBÖEN", "SCHNEEVERWEHUNG", "EXTREMER FROST", "DAUERREGEN", "STARKER SCHNEEFALL",
              "GEWITTER mit HAGEL", "SCHWERE STURMBÖEN", "ERGIEBIGER DAUERREGEN")
MOWAS_SENDER = "DE-NI-DAN-S001"


@dataclass(frozen=True)
class Trigger:
    name: str
    data: bytes
    source: str
    """``inbox`` (the CAP directory), ``nina`` (the second source) or ``nina-api`` (NINA JSON, :class:`NinaApi`)."""
    kind: str
    """dwd, mowas, katwarn, biwapp, update, cancel, copy, extreme."""
    identifier: str = ""
    """The CAP identifier the hub stores it under."""
    nina: dict[str, Any] | None = field(default=None, compare=False)
    """For ``nina-api``: the warning detail as NINA serves it."""


def _polygon(area: str) -> str:
    w, s, e, n = AREAS[area]
    return " ".join(f"{lat},{lon}" for lon, lat in ((w, s), (e, s), (e, n), (w, n), (w, s)))


def cap(identifier: str, sender: str, sent: datetime, *, event: str, severity: str = "Severe",
        urgency: str = "Immediate", msg_type: str = "Alert", references: str = "", area: str = "all",
        warncell: bool = False, expires_h: float = 6.0) -> bytes:
    refs = f"<references>{references}</references>" if references else ""
    where = ("<geocode><valueName>WARNCELLID</valueName><value>103354000</value></geocode>" if warncell
             else f"<polygon>{_polygon(area)}</polygon>")
    expires = sent + timedelta(hours=expires_h)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>{sender}</sender><sent>{sent.isoformat()}</sent>
  <status>Actual</status><msgType>{msg_type}</msgType><scope>Public</scope>{refs}
  <info>
    <language>de-DE</language><category>Safety</category><event>{event}</event>
    <urgency>{urgency}</urgency><severity>{severity}</severity><certainty>Observed</certainty>
    <expires>{expires.isoformat()}</expires>
    <headline>Warntag: {event}</headline>
    <description>Probewarnung im Sturm-Test ({identifier}).</description>
    <instruction>Informieren Sie sich in den Medien.</instruction>
    <area><areaDesc>Landkreis Lüchow-Dannenberg ({area})</areaDesc>{where}</area>
  </info>
</alert>""".encode()


NINA_PREFIX = {"mowas": "", "katwarn": "kat.", "biwapp": "biw."}
"""The NINA id of a warning is its CAP identifier with the provider's prefix (MoWaS identifiers here carry
``mow.`` already); the NINA source stores it without ``mow.``/``biw.`` (:func:`strip_prefix`)."""


def nina_detail(identifier: str, sender: str, sent: datetime, *, event: str, severity: str = "Severe",
                urgency: str = "Immediate", msg_type: str = "Alert", references: str = "", area: str = "all",
                expires_h: float = 6.0, district: str = "033540000000") -> dict[str, Any]:
    """The same warning as :func:`cap` writes it, as NINA's ``warnings/{id}.json`` carries it."""
    w, s, e, n = AREAS[area]
    ring = " ".join(f"{lon},{lat}" for lon, lat in ((w, s), (e, s), (e, n), (w, n), (w, s)))  # NINA: lon,lat
    out: dict[str, Any] = {
        "identifier": identifier, "sender": sender, "sent": sent.isoformat(), "status": "Actual",
        "msgType": msg_type, "scope": "Public", "code": ["DVN:1"],
        "info": [{"language": "DE", "category": ["Safety"], "event": event, "urgency": urgency,
                  "severity": severity, "certainty": "Observed",
                  "expires": (sent + timedelta(hours=expires_h)).isoformat(),
                  "headline": f"Warntag: {event}", "description": f"Probewarnung im Sturm-Test ({identifier}).",
                  "instruction": "Informieren Sie sich in den Medien.",
                  "parameter": [{"valueName": "warnVerwaltungsbereiche", "value": district}],
                  "area": [{"areaDesc": f"Landkreis Lüchow-Dannenberg ({area})", "polygon": [ring],
                            "geocode": [{"valueName": "AreaId", "value": "0"}]}]}]}
    if references:
        out["references"] = references
    return out


def _trigger(name: str, kind: str, provider: str, identifier: str, sender: str, sent: datetime, *,
             nina_api: bool, source: str = "inbox", **kw: Any) -> Trigger:
    if nina_api and provider in NINA_PREFIX:
        nid = NINA_PREFIX[provider] + identifier
        refs = kw.get("references", "")
        if refs and provider != "mowas":
            ref_sender, ref_id, ref_sent = refs.split(",")
            kw["references"] = f"{ref_sender},{NINA_PREFIX[provider]}{ref_id},{ref_sent}"
        return Trigger(name, b"", "nina-api", kind, strip_prefix(nid), nina_detail(nid, sender, sent, **kw))
    return Trigger(name, cap(identifier, sender, sent, **kw), source, kind, identifier)


def replay(*, dwd: int = 14, mowas: int = 12, katwarn: int = 8, biwapp: int = 8, updates: int = 4, cancels: int = 3,
           copies: int = 2, tag: str = "storm", nina_api: bool = False) -> list[Trigger]:
    """The triggers in the order they arrive; the Extreme last. Defaults: 52 in all (the Warntag count; the
    benchmark sends one of the MoWaS ones through the console instead). ``nina_api``: MoWaS, KATWARN and BIWAPP
    come as NINA JSON (source ``nina-api``)."""
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    areas = [a for a in AREAS if a != "all"]
    out: list[Trigger] = []
    originals: dict[str, tuple[str, str, datetime, str]] = {}
    for i in range(max(dwd, mowas, katwarn, biwapp)):
        sent = base + timedelta(seconds=i)
        if i < dwd:
            ident = f"2.49.0.0.276.0.DWD.PVW.{tag}.{i}"
            event = DWD_EVENTS[i % len(DWD_EVENTS)]
            originals[f"dwd{i}"] = ("opendata@dwd.de", ident, sent, event)
            out.append(_trigger(f"dwd-{i}.xml", "dwd", "dwd", ident, "opendata@dwd.de", sent, nina_api=nina_api,
                                event=event, warncell=True))
        if i < mowas:
            ident = f"mow.{MOWAS_SENDER}-{tag}-{i}"
            area = areas[i % len(areas)]
            originals[f"mowas{i}"] = (MOWAS_SENDER, ident, sent, area)
            out.append(_trigger(f"mowas-{i}.xml", "mowas", "mowas", ident, MOWAS_SENDER, sent, nina_api=nina_api,
                                event="Gefahrendurchsage", area=area))
        if i < katwarn:
            out.append(_trigger(f"katwarn-{i}.xml", "katwarn", "katwarn", f"katwarn.{tag}.{i}", "warnung@katwarn.de",
                                sent, nina_api=nina_api, event="Gefahreninformation", area=areas[i % len(areas)]))
        if i < biwapp:
            out.append(_trigger(f"biwapp-{i}.xml", "biwapp", "biwapp", f"biwapp.{tag}.{i}", "lage@biwapp.de", sent,
                                nina_api=nina_api, event="Unwetter", area=areas[(i + 2) % len(areas)]))
    later = base + timedelta(seconds=30)
    for i in range(copies):  # the same DWD warning again, through the second source: one thread, no second push
        sender, ident, sent, event = originals[f"dwd{i}"]
        out.append(_trigger(f"copy-{i}.xml", "copy", "dwd", ident, sender, sent, nina_api=nina_api, source="nina",
                            event=event, warncell=True))
    for i in range(updates):  # significant: the validity changes
        sender, ident, sent, event = originals[f"dwd{i}"]
        out.append(_trigger(f"update-{i}.xml", "update", "dwd", f"{ident}.u", sender, later + timedelta(seconds=i),
                            nina_api=nina_api, event=event, msg_type="Update",
                            references=f"{sender},{ident},{sent.isoformat()}", warncell=True, expires_h=9.0))
    for i in range(cancels):
        sender, ident, sent, area = originals[f"mowas{i}"]
        out.append(_trigger(f"cancel-{i}.xml", "cancel", "mowas", f"{ident}.c", sender,
                            later + timedelta(seconds=10 + i), nina_api=nina_api, event="Entwarnung",
                            msg_type="Cancel", area=area, references=f"{sender},{ident},{sent.isoformat()}"))
    out.append(_trigger("extreme.xml", "extreme", "mowas", f"mow.{MOWAS_SENDER}-{tag}-extreme", MOWAS_SENDER,
                        later + timedelta(seconds=20), nina_api=nina_api, event="Gefahrendurchsage",
                        severity="Extreme", area="all"))
    return out


NINA_SOURCE = """
[[sources]]
type = "directory"
name = "nina-replay"
path = "nina-inbox"
interval_s = 0.2
"""
"""The second source: copies of warnings the CAP inbox also gets (as NINA carries DWD's)."""


class NinaApi:
    """A local NINA API (``{base}/dashboard/{ARS}.json`` and ``{base}/warnings/{id}.json``) on its own thread and
    event loop (tests/kits/sourcekit.py's replay server, with ETag and 304), for the hub's real NINA source;
    :meth:`publish` adds a warning (its detail first, then the list that names it)."""

    def __init__(self, district: str = "033540000000") -> None:
        self.district = district
        self.server = ReplayServer()
        self._items: list[dict[str, Any]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nina-api", daemon=True)
        self._thread.start()
        self._call(self.server.__aenter__())
        self._set(f"/api31/dashboard/{district}.json", b"[]")

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    def _set(self, path: str, body: bytes) -> None:
        async def put() -> None:
            self.server.set(path, body, content_type="application/json")
        self._call(put())

    def source(self, *, interval_s: float = 0.5) -> str:
        """The ``[[sources]]`` entry of the hub's NINA source for this server."""
        return f"""
[[sources]]
type = "nina"
name = "nina-api"
base_url = "{self.server.url('/api31')}"
feeds = []
dashboard_ars = ["{self.district}"]
geojson = false
interval_s = {interval_s}
timeout_s = 5
"""

    def publish(self, t: Trigger) -> None:
        assert t.nina is not None, t.name
        detail = json.dumps(t.nina, ensure_ascii=False).encode()
        info = t.nina["info"][0]
        nid = t.nina["identifier"]
        self._set(f"/api31/warnings/{nid}.json", detail)
        provider = {"kat.": "KATWARN", "biw.": "BIWAPP"}.get(nid[:4], "MOWAS")
        self._items.append({"id": nid, "payload": {
            "version": 1, "type": "ALERT", "id": nid, "hash": hashlib.sha256(detail).hexdigest()[:16],
            "data": {"headline": info["headline"], "provider": provider, "severity": info["severity"],
                     "urgency": info["urgency"], "msgType": t.nina["msgType"], "transKeys": {"event": "BBK-EVC-064"},
                     "area": {"type": "ZGEM", "data": "1+11057,100001"}, "valid": True}},
            "i18nTitle": {"de": info["headline"]}, "sent": t.nina["sent"]})
        self._set(f"/api31/dashboard/{self.district}.json", json.dumps(self._items, ensure_ascii=False).encode())

    def close(self) -> None:
        self._call(self.server.__aexit__(None, None, None))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


# -- the control room during the storm --------------------------------------------------------------------------------

CONSOLE_PASSWORD = "Deichbruch-im-Sturm-2026!"
AUTHOR, APPROVER = "anna", "bert"


def add_console_users(db: Path, district: str = "033540000000") -> None:
    """An author and an approver (four eyes) in the hub's store, before the daemon starts."""
    store = Store(db)
    try:
        reg = geography().registry
        auth.add_user(store, AUTHOR, ("author",), (district,), CONSOLE_PASSWORD, actor="test", registry=reg)
        auth.add_user(store, APPROVER, ("approver",), (district,), CONSOLE_PASSWORD, actor="test", registry=reg)
    finally:
        store.close()


CONSOLE_RING = [[11.01, 52.95], [11.23, 52.95], [11.23, 53.09], [11.01, 53.09], [11.01, 52.95]]
"""The console warning's area: about 15 by 15 km in the middle of the district, all within it (an author may warn
only within her scope), GeoJSON order (lon, lat)."""


def console_form(headline: str, *, severity: str = "Extreme") -> dict[str, Any]:
    """A public warning for push and web over :data:`CONSOLE_RING`."""
    return {"status": "Actual", "channels": ["push", "web"], "audience": "public", "template": None,
            "area": {"ars": [], "features": [{"type": "Feature", "properties": {},
                                              "geometry": {"type": "Polygon", "coordinates": [CONSOLE_RING]}}]},
            "content": {"event": "Deichbruch", "category": ["Met"], "severity": severity, "urgency": "Immediate",
                        "certainty": "Observed", "expires": (datetime.now(UTC) + timedelta(hours=3)).isoformat(),
                        "texts": {"de-DE": {"headline": headline, "description": "Der Deich ist gebrochen.",
                                            "instruction": "Verlassen Sie sofort das Gebiet."}}}}


class _Session:
    def __init__(self, base: str, name: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        status, body = self.call("POST", "/console/login", {"name": name, "password": CONSOLE_PASSWORD}, csrf="")
        assert status == 200, (status, body)
        self.csrf = str(body["csrf"])

    def call(self, method: str, path: str, body: Any = None, *, csrf: str | None = None) -> tuple[int, Any]:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        token = self.csrf if csrf is None else csrf
        if method != "GET" and token:
            headers["X-CSRF-Token"] = token
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with self.opener.open(req, timeout=60) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        return status, json.loads(raw) if raw.startswith(b"{") else raw


@dataclass
class ConsoleSend:
    identifier: str
    """The CAP identifier of what the console sent."""
    requested: float
    """Unix time at which the approver's send request left (the moment the control room pressed send)."""
    answered: float


class ConsoleSender:
    """The control room through the hub's own console API, as a script would use it: the author writes and submits
    a warning, the approver previews it and approves it (four eyes); both signed in with session and CSRF token."""

    def __init__(self, base: str) -> None:
        self.author = _Session(base, AUTHOR)
        self.approver = _Session(base, APPROVER)

    def prepare(self, form: dict[str, Any]) -> int:
        """Written and submitted, waiting for approval: the warning's id."""
        status, body = self.author.call("POST", "/console/api/warnings", form)
        assert status == 201, (status, body)
        wid = int(body["warning"]["id"])
        status, body = self.author.call("POST", f"/console/api/warnings/{wid}/submit")
        assert status == 200, (status, body)
        return wid

    def approve(self, wid: int) -> ConsoleSend:
        status, prev = self.approver.call("GET", f"/console/api/warnings/{wid}/preview")
        assert status == 200, (status, prev)
        w = prev["warning"]
        body = {"token": prev["token"], "confirm": {"status": w["status"], "audience": w["audience"],
                                                     "topic": w["topic"], "channels": w["channels"]}}
        requested = time.time()
        status, sent = self.approver.call("POST", f"/console/api/warnings/{wid}/approve", body)
        assert status == 200 and sent["warning"]["state"] == "sent", (status, sent)
        return ConsoleSend(str(sent["identifier"]), requested, time.time())
