"""The NINA-compatible API (hub.web.nina_api) against a real SQLite store and a real aiohttp server: its answers have
the structure of real NINA answers (HA's dashboard and details, FPAS's MoWaS detail and GeoJSON; mapData only by
FACTS.md, see tests/data/nina/README.md), the GeoJSON is ``[lon, lat]``, warnhub's own NINA source reads the answers
back into the same warnings (round trip), and the daemon serves it.

Invariants protected: exercise never public (no Exercise, Test, Restricted or push-only publication on any /api31
route); update/cancel supersede (a cancelled warning leaves the lists; an Update keeps the id and raises the
version)."""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
import shapely
from aiohttp import web

from adapters.sources.nina import NinaSource
from adapters.sources.nina_convert import convert_warning
from adapters.sources.polling import Http
from hub.cap.model import Alert, Area, MsgType, Scope, Severity, Status, Value
from hub.cap.parse import parse
from hub.config.sections import NinaSourceConfig
from hub.i18n.languages import code_of
from hub.publish import nina_shape, publications
from hub.publish.publications import Publication
from hub.store.db import AsyncStore, Store
from hub.web import nina_api
from hub.web.app import security_headers
from hub.web.keys import HUB_KEY
from tests.kits import paths
from tests.kits.hubproc import HubProcess, free_port, write_config
from tests.kits.jsonshape import differences, shape
from tests.kits.sourcekit import HubKit

NINA = paths.DATA / "nina"
CAP = paths.DATA / "cap"
FPAS = "mow.DE-HE-KS-SE106-20250313-106-001"
MUL = "de_dwd_brightsky_MUL_1687511640000_0d1a4fb5.xml"  # DWD, 8 languages
GEWITTER = "de_dwd_kweathercore_update-MUL.xml"
DISTRICT = "033540000000"  # Landkreis Lüchow-Dannenberg
LUECHOW = "033545407018"  # Gemeinde Lüchow (Wendland)
GORLEBEN = "033545403007"
KASSEL = "066330000000"  # Landkreis Kassel, among the FPAS warning's ARS
LUECHOW_BOX = shapely.box(11.1, 52.93, 11.2, 52.99)  # lon/lat, in Lüchow, not in Gorleben
SENDER = "warnhub@lk-dan.example"
NINE = ["DE", "DE-LS", "EN", "AR", "ES", "FR", "PL", "RU", "TR"]


# -- warnings to publish (real data, changed where said) ------------------------------------------------------------


def fpas_alert() -> Alert:
    """The FPAS MoWaS message (9 languages) with its GeoJSON polygons, as warnhub's NINA source converts it; made a
    current Alert (it is a Cancel of 2025): msgType Alert, no references or AllClear, expires set by publish()."""
    obj = json.loads((NINA / f"fpas_{FPAS}.json").read_bytes())
    shapes = json.loads((NINA / f"fpas_{FPAS}.geojson").read_bytes())
    alert = convert_warning(obj, geojson=shapes).alert
    infos = tuple(msgspec.structs.replace(i, response_types=()) for i in alert.infos)
    return msgspec.structs.replace(alert, msg_type=MsgType.ALERT, references=(), infos=infos)


def cap_alert(name: str) -> Alert:
    return parse((CAP / name).read_bytes()).alert


def luechow_alert() -> Alert:
    """The DWD thunderstorm warning with its areas replaced by one: a box over the town of Lüchow."""
    alert = cap_alert(GEWITTER)
    ring = tuple((lat, lon) for lon, lat in LUECHOW_BOX.exterior.coords)
    area = Area(area_desc="Stadt Lüchow (Wendland)", polygons=(ring,))
    return msgspec.structs.replace(alert, infos=tuple(msgspec.structs.replace(i, areas=(area,)) for i in alert.infos))


def publish(store: Store, alert: Alert, *, thread: str, regions: tuple[str, ...] = (DISTRICT,), area: Any = None,
            severity: Severity = Severity.SEVERE, status: Status = Status.ACTUAL, cancel: bool = False,
            scope: Scope = Scope.PUBLIC, channels: tuple[str, ...] = ("web",)) -> Publication:
    """Publish ``alert`` as the hub's next version of ``thread``, valid for 3 hours from now."""
    now = datetime.now(UTC).replace(microsecond=0)  # NINA's times are to the second
    infos = tuple(msgspec.structs.replace(i, expires=now + timedelta(hours=3), severity=severity) for i in alert.infos)
    alert = msgspec.structs.replace(alert, infos=infos, status=status, scope=scope,
                                    msg_type=MsgType.CANCEL if cancel else alert.msg_type)
    previous = publications.latest(store, thread)
    version = previous.version + 1 if previous else 1
    issued = publications.issue(alert, sender=SENDER, district=DISTRICT, thread=thread, version=version,
                                previous=previous, severity=severity, now=now)
    with store.transaction() as conn:
        return publications.insert(conn, issued, thread=thread, version=version, source_thread=None,
                                   source_alert=None, push=True, channels=channels, regions=regions, area=area,
                                   now_ms=publications.ms(now))


def fpas_area() -> Any:
    alert = fpas_alert()
    return shapely.union_all([shapely.Polygon([(lon, lat) for lat, lon in ring])
                              for a in alert.infos[0].areas for ring in a.polygons])


def fpas_regions() -> tuple[str, ...]:
    params = {p.value_name: p.value for p in fpas_alert().infos[0].parameters}
    return tuple(params["warnVerwaltungsbereiche"].split(","))


# -- the server -----------------------------------------------------------------------------------------------------


@dataclass
class HubStandIn:
    """What the NINA routes use of the Hub: its store."""

    store: AsyncStore


class Server:
    def __init__(self, tmp: Path, rate_per_minute: int = nina_api.RATE_PER_MINUTE) -> None:
        self.astore = AsyncStore(Store(tmp / "hub.db"))
        self.app = web.Application(middlewares=[security_headers])
        self.app[HUB_KEY] = HubStandIn(self.astore)  # type: ignore[assignment]
        nina_api.setup(self.app, district=DISTRICT, rate_per_minute=rate_per_minute)
        self.runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2)
        self.port = 0
        self.session: aiohttp.ClientSession

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def publish(self, alert: Alert, **kw: Any) -> Publication:
        return await self.astore.run(publish, self.astore.store, alert, **kw)

    async def get(self, path: str, **kw: Any) -> tuple[int, Any, Any]:
        async with self.session.get(self.url(path), **kw) as resp:
            body = json.loads(await resp.read()) if resp.status != 304 else None
            return resp.status, body, resp.headers

    async def json(self, path: str) -> Any:
        status, body, headers = await self.get(path)
        assert status == 200, (path, status, body)
        assert headers["Access-Control-Allow-Origin"] == "*"
        return body

    async def __aenter__(self) -> Server:
        await self.runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self.runner, sock).start()
        self.session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()
        await self.runner.cleanup()
        self.astore.close()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with Server(tmp_path) as srv:
        yield srv


def nid(pub: Publication) -> str:
    return f"warnhub.{DISTRICT}.{pub.thread}"


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [i["id"] for i in items]


async def three(server: Server) -> tuple[Publication, Publication, Publication]:
    """The FPAS message for its Hessian Kreise, the DWD MUL warning for the whole district (no area), and the
    thunderstorm for the town of Lüchow."""
    hessen = await server.publish(fpas_alert(), thread="w1", regions=fpas_regions(), area=fpas_area(),
                                  severity=Severity.EXTREME)
    district = await server.publish(cap_alert(MUL), thread="w2", severity=Severity.MODERATE)
    luechow = await server.publish(luechow_alert(), thread="w3", area=LUECHOW_BOX)
    return hessen, district, luechow


# -- contract: the structure of real NINA answers -------------------------------------------------------------------

DASHBOARD_EXTRA = {
    # FACTS.md 5.1 lists both in dashboard items (other clients' samples); the HA sample lacks them
    "extra $[].payload.data.urgency", "extra $[].payload.data.valid",
    "extra $[].effective",  # NINA sends onset or effective; the HA sample has only onset
}
DASHBOARD_MISSING_WITHOUT_CODE = {
    # a warning without a BBK event code (here DWD's, which carry DWD's own codes) has an empty transKeys: the hub
    # does not invent a BBK code; the Hessian MoWaS message below has one and shows the key
    "missing $[].payload.data.transKeys.event",
}
DETAIL_MISSING = {
    # CAP <source> (DWD's "PVW"): the hub's own messages have none
    "missing $.source",
}
DETAIL_EXTRA = {
    # CAP area altitude/ceiling where the warning has them (DWD's thunderstorm); FACTS.md 5.1 lists both in NINA's
    # detail, the stored samples happen to have none
    "extra $.info[].area[].altitude", "extra $.info[].area[].ceiling",
}
WITHOUT_ONSET = {
    # onset/effective only where the warning states them: the Hessian MoWaS message states neither (as in NINA)
    "missing $[].onset",
}
TITLE_KEYS = ("extra $[].i18nTitle.",)
"""i18nTitle is a map of languages: the samples name only ``de``; the hub names every language a warning carries."""


def allowed(found: list[str], exact: set[str], prefixes: tuple[str, ...] = ()) -> list[str]:
    return [d for d in found if d not in exact and not d.startswith(prefixes)]


def sample(name: str) -> Any:
    return json.loads((NINA / name).read_bytes())


async def test_dashboard_has_the_structure_of_nina_s(server: Server) -> None:
    hessen, district, luechow = await three(server)
    ours = await server.json(f"/api31/dashboard/{DISTRICT}.json")
    assert ids(ours) == [nid(luechow), nid(district)]  # most severe first; Hessen is not in the district
    found = differences(shape(ours), shape(sample("ha_nina_sample_warnings_dashboard.json")))
    assert allowed(found, DASHBOARD_EXTRA | DASHBOARD_MISSING_WITHOUT_CODE, TITLE_KEYS) == [], found
    assert {"extra $[].i18nTitle.en", "extra $[].i18nTitle.ar"} <= set(found)  # the DWD MUL languages
    kassel = await server.json(f"/api31/dashboard/{KASSEL}.json")
    assert ids(kassel) == [nid(hessen)]
    assert allowed(differences(shape(kassel), shape(sample("ha_nina_sample_warnings_dashboard.json"))),
                   DASHBOARD_EXTRA | WITHOUT_ONSET, TITLE_KEYS) == []
    data = kassel[0]["payload"]["data"]
    assert data["area"]["type"] == "ZGEM" and data["transKeys"] == {"event": "BBK-EVC-078"}  # came with the warning
    assert data["provider"] == "MOWAS" and data["valid"] is True and data["msgType"] == "Alert"
    assert kassel[0]["payload"]["version"] == 1 and len(kassel[0]["payload"]["hash"]) == 64
    dwd = next(i for i in ours if i["id"] == nid(district))["payload"]["data"]
    assert dwd["area"] == {"type": "ARS", "data": DISTRICT} and dwd["transKeys"] == {} and dwd["provider"] == "DWD"


async def test_details_have_the_structure_of_nina_s(server: Server) -> None:
    pubs = [*await three(server)]
    pubs[2] = await server.publish(luechow_alert(), thread="w3", area=LUECHOW_BOX)  # an Update: references
    ours = [await server.json(f"/api31/warnings/{nid(p)}.json") for p in pubs]
    reference = [*sample("ha_nina_sample_warning_details.json").values(), sample(f"fpas_{FPAS}.json")]
    found = [d.replace("$[]", "$", 1) for d in differences(shape(ours), shape(reference))]
    assert allowed(found, DETAIL_MISSING | DETAIL_EXTRA) == [], found
    assert [i["language"] for i in ours[0]["info"]] == NINE
    assert [i["language"] for i in ours[1]["info"]] == ["DE", "EN", "FR", "ES", "AR", "RU", "TR", "PL"]
    assert [d["identifier"] for d in ours] == [p.identifier for p in pubs]
    first = ours[0]["info"][0]
    assert first["area"][0]["geocode"][0] == {"valueName": "AreaId", "value": "0"}
    params = {p["valueName"]: p["value"] for p in first["parameter"]}
    assert params["warnVerwaltungsbereiche"] == ",".join(fpas_regions())
    assert "<br/>" in first["description"] and "\n" not in first["description"]  # HTML as NINA's
    assert ours[0]["sent"] == pubs[0].sent.astimezone(nina_shape.BERLIN).isoformat(timespec="seconds")


async def test_geojson_has_nina_s_structure_and_lon_lat_order(server: Server) -> None:
    hessen, _district, luechow = await three(server)
    ours = await server.json(f"/api31/warnings/{nid(hessen)}.geojson")
    real = sample(f"fpas_{FPAS}.geojson")
    assert differences(shape(ours), shape(real)) == []
    assert sorted(json.dumps(f["geometry"]) for f in ours["features"]) == \
        sorted(json.dumps(f["geometry"]) for f in real["features"])  # the very rings NINA sent, lon first
    assert {f["properties"]["warnId"] for f in ours["features"]} == {hessen.identifier}
    box = await server.json(f"/api31/warnings/{nid(luechow)}.geojson")
    [ring] = box["features"][0]["geometry"]["coordinates"]
    assert all(11.1 <= lon <= 11.2 and 52.93 <= lat <= 52.99 for lon, lat in ring)  # [lon, lat], not [lat, lon]
    async with server.session.get(server.url(f"/api31/warnings/{nid(luechow)}.geojson")) as resp:
        assert resp.content_type == "application/geo+json"
    # one area named only by a code: the area the hub resolved (here the box) is what a map can show
    coded = luechow_alert()
    only_code = Area(area_desc="Stadt Lüchow (Wendland)", geocodes=(Value(value_name="ARS", value=LUECHOW),))
    coded = msgspec.structs.replace(coded, infos=tuple(msgspec.structs.replace(i, areas=(only_code,))
                                                       for i in coded.infos))
    by_code = await server.publish(coded, thread="w4", area=LUECHOW_BOX)
    [feature] = (await server.json(f"/api31/warnings/{nid(by_code)}.geojson"))["features"]
    assert feature["properties"]["areaId"] == 0
    assert shapely.Polygon(feature["geometry"]["coordinates"][0]).equals(LUECHOW_BOX)


async def test_map_data_lists_every_current_warning_by_provider(server: Server) -> None:
    hessen, district, luechow = await three(server)
    ours = await server.json("/api31/mapData.json")
    assert ids(ours) == [nid(hessen), nid(luechow), nid(district)]
    assert allowed(differences(shape(ours), shape(sample("derived_mowas_mapData.json"))), set(), TITLE_KEYS) == []
    assert list(ours[0]["i18nTitle"]) == [c.lower() for c in NINE]
    assert ours[0]["transKeys"] == {"event": "BBK-EVC-078"} and "transKeys" not in ours[2]  # no BBK code: none
    # the source the hub republished decides the provider (DWD's sender: DWD; a MoWaS station: MOWAS)
    assert ids(await server.json("/api31/mowas/mapData.json")) == [nid(hessen)]
    assert ids(await server.json("/api31/dwd/mapData.json")) == [nid(luechow), nid(district)]
    assert ids(await server.json("/api31/katwarn/mapData.json")) == []


# -- what is current, what is public --------------------------------------------------------------------------------


async def test_an_update_keeps_the_id_and_a_cancel_leaves_the_lists(server: Server) -> None:
    v1 = await server.publish(luechow_alert(), thread="w3", area=LUECHOW_BOX)
    first = (await server.json(f"/api31/dashboard/{DISTRICT}.json"))[0]
    v2 = await server.publish(luechow_alert(), thread="w3", area=LUECHOW_BOX, severity=Severity.EXTREME)
    second = (await server.json(f"/api31/dashboard/{DISTRICT}.json"))[0]
    assert first["id"] == second["id"] == nid(v1)
    assert (first["payload"]["version"], second["payload"]["version"]) == (1, 2)
    assert first["payload"]["hash"] != second["payload"]["hash"]
    assert second["payload"]["data"]["severity"] == "Extreme" and second["payload"]["data"]["msgType"] == "Update"
    latest = await server.json(f"/api31/warnings/{nid(v1)}.json")
    assert latest["identifier"] == v2.identifier and latest["references"].split(",")[:2] == [SENDER, v1.identifier]
    older = await server.json(f"/api31/warnings/{v1.identifier}.json")  # a version by its CAP identifier
    assert older["identifier"] == v1.identifier and older["msgType"] == "Alert"

    await server.publish(luechow_alert(), thread="w3", area=LUECHOW_BOX, cancel=True)
    assert await server.json(f"/api31/dashboard/{DISTRICT}.json") == []
    assert await server.json("/api31/mapData.json") == []
    assert (await server.json(f"/api31/warnings/{nid(v1)}.json"))["msgType"] == "Cancel"  # a client learns it ended


@pytest.mark.parametrize("kind", ["exercise", "test", "restricted", "push-only"])
async def test_exercise_test_and_non_public_messages_never_appear(server: Server, kind: str) -> None:
    """Invariant: exercise never public — on none of the four endpoints, by NINA id or CAP identifier."""
    hidden = await server.publish(
        luechow_alert(), thread="w5", area=LUECHOW_BOX,
        status={"exercise": Status.EXERCISE, "test": Status.TEST}.get(kind, Status.ACTUAL),
        scope=Scope.RESTRICTED if kind == "restricted" else Scope.PUBLIC,
        channels=("push",) if kind == "push-only" else ("web",))
    shown = await server.publish(cap_alert(MUL), thread="w6")
    for path in ("/api31/mapData.json", "/api31/dwd/mapData.json", f"/api31/dashboard/{DISTRICT}.json",
                 f"/api31/dashboard/{LUECHOW}.json"):
        assert ids(await server.json(path)) == [nid(shown)], path
    for wid in (nid(hidden), hidden.identifier):
        for suffix in ("json", "geojson"):
            status, body, headers = await server.get(f"/api31/warnings/{wid}.{suffix}")
            assert status == 404 and " / " in body["error"] and headers["Access-Control-Allow-Origin"] == "*"


async def test_dashboard_of_a_gemeinde_lists_what_concerns_that_gemeinde(server: Server) -> None:
    _hessen, district, luechow = await three(server)
    assert ids(await server.json(f"/api31/dashboard/{LUECHOW}.json")) == [nid(luechow), nid(district)]
    assert ids(await server.json(f"/api31/dashboard/{GORLEBEN}.json")) == [nid(district)]  # not Lüchow's storm
    for bad in ("999999999999", "03354", "abc", "0335400000000"):
        status, body, _headers = await server.get(f"/api31/dashboard/{bad}.json")
        assert status == 404 and " / " in body["error"], bad


# -- caching, CORS, limits ------------------------------------------------------------------------------------------


async def test_etag_304_cors_and_short_caching(server: Server) -> None:
    await three(server)
    for path in ("/api31/mapData.json", f"/api31/dashboard/{DISTRICT}.json",
                 f"/api31/warnings/warnhub.{DISTRICT}.w1.json", f"/api31/warnings/warnhub.{DISTRICT}.w1.geojson"):
        status, _body, headers = await server.get(path)
        assert status == 200 and headers["Cache-Control"] == "public, max-age=30"
        etag = headers["ETag"]
        status, body, headers = await server.get(path, headers={"If-None-Match": etag})
        assert status == 304 and body is None and headers["ETag"] == etag, path
        assert headers["Access-Control-Allow-Origin"] == "*"
        async with server.session.head(server.url(path)) as resp:
            assert resp.status == 200 and resp.headers["ETag"] == etag and await resp.read() == b"", path
    status, _body, before = await server.get("/api31/mapData.json")
    await server.publish(cap_alert(MUL), thread="w7")
    status, _body, headers = await server.get("/api31/mapData.json", headers={"If-None-Match": before["ETag"]})
    assert status == 200 and headers["ETag"] != before["ETag"]  # a new warning: the whole list again
    async with server.session.options(server.url("/api31/mapData.json"), headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "if-none-match"}) as resp:
        assert resp.status == 204 and resp.headers["Access-Control-Allow-Origin"] == "*"
        assert "If-None-Match" in resp.headers["Access-Control-Allow-Headers"]
    status, body, headers = await server.get("/api31/warnings/nope.json")
    assert status == 404 and body == {"error": "Unbekannte Warnung / unknown warning"}
    assert headers["Cache-Control"] == "no-store"
    async with server.session.get(server.url("/api31/archive.mowas/x-mapping.json")) as resp:
        assert resp.status == 404 and resp.headers["Access-Control-Allow-Origin"] == "*"  # a NINA path we lack


async def test_requests_per_address_are_limited(tmp_path: Path) -> None:
    async with Server(tmp_path, rate_per_minute=3) as server:
        for _ in range(3):
            assert (await server.get("/api31/mapData.json"))[0] == 200
        status, body, headers = await server.get(f"/api31/dashboard/{DISTRICT}.json")
        assert status == 429 and int(headers["Retry-After"]) >= 1 and " / " in body["error"]
        assert headers["Access-Control-Allow-Origin"] == "*"


# -- round trip: warnhub's own NINA source reads the answers back ---------------------------------------------------


def _areas(alert: Alert) -> list[tuple[str, list[Any]]]:
    return [(a.area_desc, [tuple(ring) for ring in a.polygons]) for i in alert.infos[:1] for a in i.areas]


def _shown(text: str | None) -> str | None:
    """A text as HTML shows it: runs of spaces in a line are one (DWD's Arabic description has a double space)."""
    return "\n".join(" ".join(line.split()) for line in text.split("\n")) if text else text


def _texts(alert: Alert) -> list[tuple[Any, ...]]:
    return [(code_of(i.language), i.event, i.severity, i.urgency, i.certainty, i.headline, _shown(i.description),
             _shown(i.instruction), i.web, i.expires) for i in alert.infos]


async def test_round_trip_through_warnhubs_own_nina_source(server: Server, tmp_path: Path) -> None:
    """The hub's /api31 answers, read by warnhub's NINA source into a second hub, give the same warnings: identity
    (sender, identifier, sent), languages, events, severities, headlines, texts and areas; an Update arrives as the
    next version of the same thread."""
    nine = copy.deepcopy(fpas_alert())  # the Hessian message as if it were for our district
    pubs = [await server.publish(nine, thread="w1", area=fpas_area(), severity=Severity.EXTREME),
            await server.publish(cap_alert(MUL), thread="w2", severity=Severity.MODERATE),
            await server.publish(luechow_alert(), thread="w3", area=LUECHOW_BOX)]
    (tmp_path / "peer").mkdir()
    async with HubKit(tmp_path / "peer") as peer:
        assert peer.session is not None
        cfg = NinaSourceConfig(name="nachbar", base_url=server.url("/api31"), feeds=["mowas", "dwd"],
                               dashboard_ars=[DISTRICT], timeout_s=10)
        src = NinaSource(cfg, peer.loaded)
        src.http = Http(peer.session, timeout_s=cfg.timeout_s, max_bytes=cfg.max_bytes)
        ctx = peer.context("nachbar", "nina")
        assert await src.poll_once(ctx) == []
        await peer.hub.recorder.drain()
        assert peer.store.counts()["rejections"] == 0

        def got() -> dict[str, Alert]:
            return {a.identifier: a for a in (peer.store.current_alert(t.id) for t in peer.store.threads())
                    if a is not None}

        back = got()
        assert sorted(back) == sorted(p.identifier for p in pubs)
        flags = [json.loads(raw) for (raw,) in peer.store.conn.execute("SELECT flags FROM alerts")]
        notes = [n for f in flags for n in f["errors"] + f["warnings"]]
        assert notes == []  # read as NINA's own answers: nothing to repair or assume, no validation finding
        for pub in pubs:
            original = await server.astore.run(publications.alert_of, server.astore.store, pub.id)
            assert original is not None
            mine = back[pub.identifier]
            assert mine.key() == original.key() and mine.msg_type is original.msg_type
            assert [code_of(i.language) for i in mine.infos] == [code_of(i.language) for i in original.infos]
            assert _texts(mine) == _texts(original), pub.thread
            assert _areas(mine) == _areas(original), pub.thread
        assert [code_of(i.language) for i in back[pubs[0].identifier].infos] == [c.lower() for c in
                                                                              ("de", "de-x-ls", *NINE[2:])]

        update = await server.publish(luechow_alert(), thread="w3", area=LUECHOW_BOX, severity=Severity.EXTREME)
        assert await src.poll_once(ctx) == []
        await peer.hub.recorder.drain()
        threads = {t.current_identifier: t for t in peer.store.threads()}
        assert update.identifier in threads and pubs[2].identifier not in threads  # the same thread, now v2
        assert threads[update.identifier].versions == 2
        assert got()[update.identifier].infos[0].severity is Severity.EXTREME


# -- the daemon -----------------------------------------------------------------------------------------------------


def test_the_daemon_serves_the_nina_api(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "inbox").mkdir()
    hub = HubProcess(write_config(tmp_path, port=port), port, tmp_path / "hub.log")
    try:
        hub.start()
        assert hub.get_json("/api31/mapData.json") == []
        assert hub.get_json(f"/api31/dashboard/{DISTRICT}.json") == []
        status, body = hub.get("/api31/warnings/nope.geojson")
        assert status == 404 and json.loads(body)["error"]
    finally:
        hub.close()
