"""The web channel (hub.web.warnings, hub.web.live) against a real SQLite store and a real aiohttp server:
the warnings API and its region/point filters, thread versions and CAP, the CAP Atom feed (read by feedparser, by
the hub's own feed parser, and ingested by a second hub), the SSE stream (snapshot, live publications, a client
that never reads is dropped while a reading client gets every event), and kiosk board pages.

Invariants protected: exercise never public; update/cancel supersede (a Cancel or an expired warning is no longer
current); a stuck client never costs another client an event."""

from __future__ import annotations

import asyncio
import io
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import feedparser
import msgspec
import pytest
import shapely
from aiohttp import web

from adapters.sources.feed import CapFeedSource, read_feed
from adapters.sources.polling import Http
from hub.cap.model import MsgType, Scope, Severity, Status
from hub.cap.parse import parse
from hub.config.sections import BoardConfig, CapFeedSourceConfig
from hub.publish import publications
from hub.publish.publications import Publication
from hub.store.db import AsyncStore, Store
from hub.web.app import security_headers
from hub.web.keys import HUB_KEY
from hub.web.live import Broadcaster, event_of
from hub.web.warnings import setup
from tests.kits import paths
from tests.kits.sourcekit import HubKit

CAP = paths.DATA / "cap"
MULTILINGUAL = "de_dwd_brightsky_MUL_1687511640000_0d1a4fb5.xml"  # 8 languages: large events
GLAETTE = "de_dwd_wdr-unwetter_alert1_glaette.xml"
GEWITTER = "de_dwd_kweathercore_update-MUL.xml"

DISTRICT = "033540000000"  # Landkreis Lüchow-Dannenberg
HAMBURG = "020000000000"
MUENCHEN = "091620000000"
LUECHOW_BOX = shapely.box(11.1, 52.93, 11.2, 52.99)  # lon/lat, inside the district
HAMBURG_BOX = shapely.box(9.95, 53.5, 10.05, 53.6)
IN_BOX = {"lat": "52.97", "lon": "11.15"}  # Lüchow
IN_DISTRICT_OUTSIDE_BOX = {"lat": "52.95", "lon": "11.45"}
IN_HAMBURG = {"lat": "53.55", "lon": "10.0"}
SENDER = "warnhub@lk-dan.example"
BOARDS = [BoardConfig(id="rathaus", name="Rathaus Lüchow", ars=DISTRICT, kind="kiosk"),
          BoardConfig(id="bahnhof-muc", name="Bahnhof", ars=MUENCHEN, kind="kiosk"),
          BoardConfig(id="led", name="LED-Tafel", ars=DISTRICT, kind="mqtt", topic="boards/led"),
          BoardConfig(id="schulung", name="Schulungsraum", ars=DISTRICT, kind="kiosk", exercise=True,
                      token="Tafel-Schluessel-2026-xyz")]
TRAINING_TOKEN = "Tafel-Schluessel-2026-xyz"


def issue_one(store: Store, name: str, *, thread: str, severity: Severity = Severity.MODERATE,
              expires_in: timedelta = timedelta(hours=3), regions: tuple[str, ...] = (DISTRICT,),
              area: Any = None, channels: tuple[str, ...] = ("web",), cancel: bool = False,
              exercise: bool = False, bare: bool = False, scope: Scope = Scope.PUBLIC) -> Publication:
    """Publish a real CAP file as the hub's own warning (next version of ``thread``)."""
    now = datetime.now(UTC)
    alert = parse((CAP / name).read_bytes()).alert
    infos = () if bare else tuple(msgspec.structs.replace(i, expires=now + expires_in, severity=severity)
                                  for i in alert.infos)
    alert = msgspec.structs.replace(alert, infos=infos, msg_type=MsgType.CANCEL if cancel else alert.msg_type,
                                    status=Status.EXERCISE if exercise else Status.ACTUAL, scope=scope)
    previous = publications.latest(store, thread)
    version = previous.version + 1 if previous else 1
    issued = publications.issue(alert, sender=SENDER, district=DISTRICT, thread=thread, version=version,
                                previous=previous, severity=severity, now=now)
    with store.transaction() as conn:
        return publications.insert(conn, issued, thread=thread, version=version, source_thread=None,
                                   source_alert=None, push=True, channels=channels, regions=regions, area=area,
                                   now_ms=publications.ms(now))


@dataclass
class HubStandIn:
    """What the web channel's handlers use of the Hub: its store."""

    store: AsyncStore


class Server:
    def __init__(self, tmp: Path) -> None:
        self.astore = AsyncStore(Store(tmp / "hub.db"))
        self.broadcaster = Broadcaster()
        self.app = web.Application(middlewares=[security_headers])
        self.app[HUB_KEY] = HubStandIn(self.astore)  # type: ignore[assignment]
        setup(self.app, broadcaster=self.broadcaster, boards=BOARDS, district=DISTRICT)
        self.runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2)
        self.port = 0
        self.session: aiohttp.ClientSession

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def issue(self, name: str, **kw: Any) -> Publication:
        return await self.astore.run(issue_one, self.astore.store, name, **kw)

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.session.get(self.url(path), **kw) as resp:
            body = await resp.json() if resp.content_type == "application/json" else await resp.text()
            return resp.status, body

    async def stop(self) -> None:
        await self.runner.cleanup()

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


async def events(resp: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Any]]:
    """Server-Sent Events as (event, data); comment lines and the retry hint skipped."""
    buf = b""
    while True:
        chunk = await resp.content.readany()
        if not chunk:
            return
        buf += chunk
        while b"\n\n" in buf:
            block, buf = buf.split(b"\n\n", 1)
            fields = dict(line.split(": ", 1) for line in block.decode().split("\n") if not line.startswith(":")
                          and ": " in line)
            if "event" in fields:
                yield fields["event"], msgspec.json.decode(fields["data"])


def threads(body: dict[str, Any]) -> list[str]:
    return [w["thread"] for w in body["warnings"]]


# -- JSON API -------------------------------------------------------------------------------------------------------


async def test_warnings_filter_by_region_key_area_and_point(server: Server) -> None:
    await server.issue(MULTILINGUAL, thread="w1", severity=Severity.SEVERE, area=LUECHOW_BOX)
    await server.issue(GLAETTE, thread="w2", severity=Severity.MINOR)  # no area: the district's boundary counts
    await server.issue(GEWITTER, thread="w3", regions=(HAMBURG,), area=HAMBURG_BOX)

    status, body = await server.get("/api/v1/warnings")
    assert status == 200 and body["district"] == DISTRICT
    assert threads(body) == ["w1", "w3", "w2"]  # most severe first
    w1 = body["warnings"][0]
    assert w1["severity"] == "Severe" and w1["msgType"] == "Alert" and w1["regions"] == [DISTRICT]
    assert w1["links"]["cap"] == f"/api/v1/publications/{w1['identifier']}.xml"

    assert threads((await server.get(f"/api/v1/warnings?ars={DISTRICT}"))[1]) == ["w1", "w2"]
    assert threads((await server.get("/api/v1/warnings?ars=03"))[1]) == ["w1", "w2"]  # Niedersachsen contains it
    # Gorleben lies in the district but not in w1's box (Lüchow): w1's Kreis key does not pull it in
    assert threads((await server.get("/api/v1/warnings?ars=033545403007"))[1]) == ["w2"]
    assert threads((await server.get("/api/v1/warnings?ars=033545407018"))[1]) == ["w1", "w2"]  # Lüchow
    hamburg = (await server.get(f"/api/v1/warnings?ars={HAMBURG}"))[1]
    assert threads(hamburg) == ["w3"] and hamburg["region"] == {"ars": HAMBURG, "name": "Hamburg"}

    assert threads((await server.get("/api/v1/warnings", params=IN_BOX))[1]) == ["w1", "w2"]
    assert threads((await server.get("/api/v1/warnings", params=IN_DISTRICT_OUTSIDE_BOX))[1]) == ["w2"]
    assert threads((await server.get("/api/v1/warnings", params=IN_HAMBURG))[1]) == ["w3"]


async def test_region_geometry_counts_where_keys_do_not_relate(server: Server) -> None:
    # a warning known only by a neighbour's key, whose area reaches into Hamburg
    await server.issue(GEWITTER, thread="w1", regions=("010530000000",), area=HAMBURG_BOX.buffer(0.2))
    assert threads((await server.get(f"/api/v1/warnings?ars={HAMBURG}"))[1]) == ["w1"]
    assert threads((await server.get(f"/api/v1/warnings?ars={DISTRICT}"))[1]) == []


@pytest.mark.parametrize("query", ["ars=abc", "ars=99", "lat=53", "lat=north&lon=11", "lat=91&lon=11",
                                   "lat=53&lon=nan"])
async def test_bad_parameters_are_a_clear_400(server: Server, query: str) -> None:
    status, body = await server.get(f"/api/v1/warnings?{query}")
    assert status == 400
    assert " / " in body["error"]  # German / English


async def test_cancelled_expired_and_exercise_warnings_are_not_current(server: Server) -> None:
    await server.issue(GLAETTE, thread="w1")
    await server.issue(GLAETTE, thread="w1", cancel=True, bare=True)  # a Cancel without info
    await server.issue(GLAETTE, thread="w2", expires_in=timedelta(minutes=-1))
    await server.issue(GLAETTE, thread="w3", exercise=True)
    await server.issue(GEWITTER, thread="w4")
    status, body = await server.get("/api/v1/warnings")
    assert status == 200 and threads(body) == ["w4"]
    cancelled = (await server.get("/api/v1/warnings/w1"))[1]
    assert [v["msgType"] for v in cancelled["versions"]] == ["Alert", "Cancel"] and cancelled["live"] is False
    assert (await server.get("/api/v1/warnings/w3"))[0] == 404  # an exercise is never public
    titles = [e.title for e in feedparser.parse(io.BytesIO(
        (await server.get("/feeds/cap.atom"))[1].encode())).entries]
    assert titles[0] == "Amtliche WARNUNG vor STARKEM GEWITTER"  # w4; the exercise w3 is not in the feed
    assert titles[2:] == ["Aufgehoben / cancelled", "Amtliche WARNUNG vor GLÄTTE"]  # w1: its Cancel, its Alert


async def test_thread_versions_and_cap_xml(server: Server) -> None:
    v1 = await server.issue(GLAETTE, thread="w7")
    v2 = await server.issue(GLAETTE, thread="w7", severity=Severity.SEVERE)
    status, body = await server.get("/api/v1/warnings/w7")
    assert status == 200 and body["live"] is True
    assert [(v["version"], v["msgType"], v["identifier"]) for v in body["versions"]] == [
        (1, "Alert", v1.identifier), (2, "Update", v2.identifier)]

    async with server.session.get(server.url("/api/v1/warnings/w7/cap.xml")) as resp:
        assert resp.status == 200 and resp.content_type == "application/xml" and resp.charset == "utf-8"
        latest = parse(await resp.read()).alert
    assert latest.identifier == v2.identifier and latest.msg_type is MsgType.UPDATE
    assert [r.identifier for r in latest.references] == [v1.identifier]
    async with server.session.get(server.url(f"/api/v1/publications/{v1.identifier}.xml")) as resp:
        assert resp.status == 200 and parse(await resp.read()).alert.identifier == v1.identifier
        assert resp.headers["Cache-Control"] == "no-cache"

    assert (await server.get("/api/v1/warnings/w404"))[0] == 404
    assert (await server.get("/api/v1/warnings/w404/cap.xml"))[0] == 404
    assert (await server.get("/api/v1/publications/nope.xml"))[0] == 404


# -- CAP Atom feed --------------------------------------------------------------------------------------------------


async def test_cap_atom_feed_parses_and_embeds_the_cap(server: Server) -> None:
    pubs = [await server.issue(MULTILINGUAL, thread="w1", area=LUECHOW_BOX),
            await server.issue(GLAETTE, thread="w2"),
            await server.issue(MULTILINGUAL, thread="w1", severity=Severity.SEVERE, area=LUECHOW_BOX),
            await server.issue(GEWITTER, thread="w3", regions=(HAMBURG,), area=HAMBURG_BOX),
            await server.issue(GLAETTE, thread="w4", exercise=True)]
    newest_first = [p.identifier for p in reversed(pubs[:4])]
    async with server.session.get(server.url("/feeds/cap.atom")) as resp:
        assert resp.status == 200 and resp.content_type == "application/atom+xml"
        etag = resp.headers["ETag"]
        data = await resp.read()

    parsed = feedparser.parse(io.BytesIO(data))
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert len(parsed.entries) == 4  # one per version; the exercise is not public
    for entry, identifier in zip(parsed.entries, newest_first, strict=True):
        assert entry.id.startswith("urn:") and entry.id.endswith(identifier.replace(":", "%3A"))
        cap_links = [link for link in entry.links if link.type == "application/cap+xml"]
        assert [link.href for link in cap_links] == [server.url(f"/api/v1/publications/{identifier}.xml")]
        assert entry.title and entry.updated

    feed = read_feed(data, url=server.url("/feeds/cap.atom"))  # the hub's own feed reader
    assert [parse(e.alerts[0]).alert.identifier for e in feed.entries] == newest_first
    assert all(len(e.alerts) == 1 and e.key_from == "id" for e in feed.entries)

    async with server.session.get(server.url("/feeds/cap.atom"), headers={"If-None-Match": etag}) as resp:
        assert resp.status == 304 and resp.headers["ETag"] == etag

    async with server.session.get(server.url(f"/feeds/{HAMBURG}.atom")) as resp:
        hamburg = read_feed(await resp.read())
    assert [parse(e.alerts[0]).alert.identifier for e in hamburg.entries] == [pubs[3].identifier]
    assert (await server.get("/feeds/999999999999.atom"))[0] == 404


async def test_another_warnhub_ingests_the_feed(server: Server, tmp_path: Path) -> None:
    first = await server.issue(GLAETTE, thread="w1")
    second = await server.issue(GEWITTER, thread="w2")
    (tmp_path / "peer").mkdir()
    async with HubKit(tmp_path / "peer") as peer:
        assert peer.session is not None
        cfg = CapFeedSourceConfig(name="nachbar", url=server.url("/feeds/cap.atom"))
        src = CapFeedSource(cfg, peer.loaded)
        src.http = Http(peer.session, timeout_s=10, max_bytes=cfg.max_bytes)
        ctx = peer.context("nachbar", "cap-feed")
        assert await src.poll_once(ctx) == []
        await peer.hub.recorder.drain()
        got = [r[0] for r in peer.store.conn.execute("SELECT identifier FROM alerts ORDER BY id")]
        assert sorted(got) == sorted([first.identifier, second.identifier])
        assert peer.store.counts()["rejections"] == 0
        assert await src.poll_once(ctx) == []  # unchanged: our ETag answers 304
        assert peer.store.counts()["alerts"] == 2


# -- SSE stream -----------------------------------------------------------------------------------------------------


async def wait_for_clients(b: Broadcaster, n: int) -> None:
    while b.clients != n:
        await asyncio.sleep(0.01)


async def test_stream_sends_snapshot_then_new_publications_and_ends_on_shutdown(server: Server) -> None:
    await server.issue(GLAETTE, thread="w1")
    async with server.session.get(server.url(f"/api/v1/stream?ars={DISTRICT}")) as resp:
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        stream = events(resp)
        name, snapshot = await anext(stream)
        assert name == "snapshot" and threads(snapshot) == ["w1"]

        hamburg = await server.issue(GEWITTER, thread="w2", regions=(HAMBURG,), area=HAMBURG_BOX)
        exercise = await server.issue(GLAETTE, thread="w3", exercise=True)
        ours = await server.issue(MULTILINGUAL, thread="w1", severity=Severity.SEVERE)
        assert server.broadcaster.publish(event_of(hamburg)) == 0  # not this region
        assert server.broadcaster.publish(event_of(exercise)) == 0  # never public
        assert server.broadcaster.publish(event_of(ours)) == 1
        name, data = await anext(stream)
        assert name == "publication" and (data["thread"], data["version"], data["msgType"]) == ("w1", 2, "Update")
        assert data["publication"]["identifier"] == ours.identifier and data["publication"]["links"]

        await server.stop()  # the hub shuts down: the stream says so and ends
        assert [n async for n, _ in stream] == ["shutdown"]


async def test_a_client_that_never_reads_is_dropped_and_others_get_every_event(server: Server) -> None:
    pub = await server.issue(MULTILINGUAL, thread="w1", severity=Severity.SEVERE)
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    stuck.setblocking(False)
    await asyncio.get_running_loop().sock_connect(stuck, ("127.0.0.1", server.port))
    await asyncio.get_running_loop().sock_sendall(
        stuck, f"GET /api/v1/stream?ars={DISTRICT} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    try:
        async with server.session.get(server.url(f"/api/v1/stream?ars={DISTRICT}")) as resp:
            stream = events(resp)
            assert (await anext(stream))[0] == "snapshot"
            await wait_for_clients(server.broadcaster, 2)
            received = []
            total = 400  # ~2.6 MB: far more than the stuck client's queue and socket buffers hold
            for version in range(total):
                server.broadcaster.publish({**event_of(pub), "version": version})
                name, data = await anext(stream)
                while name == "heartbeat":
                    name, data = await anext(stream)
                received.append(data["version"])
            assert received == list(range(total))
            assert server.broadcaster.dropped == 1 and server.broadcaster.clients == 1
    finally:
        stuck.close()


async def test_broadcaster_filters_by_region_key_status_and_channel() -> None:
    b = Broadcaster(heartbeat_s=3600)
    kreis, land, gemeinde = b.subscribe(DISTRICT), b.subscribe("030000000000"), b.subscribe("033545403007")
    hamburg, everyone, boards = b.subscribe(HAMBURG), b.subscribe(None), b.subscribe(DISTRICT, channels=["boards"])
    base = {"thread": "w1", "version": 1, "msgType": "Alert", "status": "Actual", "scope": "Public",
            "regions": [DISTRICT]}
    assert b.publish(base) == 5  # all but Hamburg and the boards-only subscriber (no channels given: any)
    assert b.publish({**base, "regions": ["033545403007"], "channels": ["web"]}) == 4  # Gemeinde: Kreis, Land, it
    assert b.publish({**base, "status": "Exercise"}) == 0
    assert b.publish({k: v for k, v in base.items() if k != "status"}) == 0  # unknown status: nobody
    assert b.publish({**base, "scope": "Restricted"}) == b.publish({**base, "scope": "Private"}) == 0
    assert b.publish({k: v for k, v in base.items() if k != "scope"}) == 0  # unknown scope: nobody
    assert [kreis.pending, land.pending, gemeinde.pending, hamburg.pending, everyone.pending, boards.pending] == [
        2, 2, 2, 0, 2, 1]
    b.close()
    assert b.clients == 0
    assert [m.event async for m in kreis] == ["publication", "publication", "shutdown"]
    late = b.subscribe(DISTRICT)
    assert [m.event async for m in late] == ["shutdown"]


async def test_a_full_queue_drops_only_that_client() -> None:
    b = Broadcaster(queue_size=3, heartbeat_s=3600)
    slow, fast = b.subscribe(DISTRICT), b.subscribe(DISTRICT)
    event = {"thread": "w1", "version": 1, "msgType": "Alert", "status": "Actual", "scope": "Public",
             "regions": [DISTRICT]}
    got = []
    for v in range(10):
        b.publish({**event, "version": v})
        got.append((await anext(fast)).data["version"])
    assert got == list(range(10))
    assert b.dropped == 1 and b.clients == 1
    assert [m.event async for m in slow] == ["dropped"]


# -- kiosk boards ---------------------------------------------------------------------------------------------------


async def test_kiosk_shows_the_most_severe_warning_in_colour_and_words(server: Server) -> None:
    severe = await server.issue(MULTILINGUAL, thread="w1", severity=Severity.SEVERE, area=LUECHOW_BOX)
    minor = await server.issue(GLAETTE, thread="w2", severity=Severity.MINOR)
    await server.issue(GEWITTER, thread="w3", severity=Severity.EXTREME, regions=(HAMBURG,), area=HAMBURG_BOX)
    async with server.session.get(server.url("/boards/rathaus")) as resp:
        assert resp.status == 200 and resp.headers["Cache-Control"] == "no-cache"
        html = await resp.text()
    assert 'class="board sev-Severe"' in html
    assert '<span id="sev-word">Gefahr</span> <span id="sev-en" class="en" lang="en">Danger</span>' in html
    assert f'<h1 id="headline">{severe.notice().headline}</h1>' in html
    assert "Official WARNING of HEAVY RAIN" in html  # English second
    assert "Platzregens" in html  # the instruction
    assert re.search(r"gültig bis (\d\d\.\d\d\.\d{4}, )?\d\d:\d\d Uhr", html)
    assert minor.notice().headline in html.split('id="others"')[1]  # listed below, not shown big
    assert '<span class="sev sev-Minor">Information</span>' in html.split('id="others"')[1]
    shown = html.split("<main>")[1]  # the page's words for every level (data-severities) precede it
    assert "Extreme Gefahr" not in shown  # Hamburg's warning is not this board's
    assert '<noscript><meta http-equiv="refresh"' in html and 'src="/static/board.js"' in html
    assert f"/api/v1/stream?ars={DISTRICT}&amp;board=rathaus" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing from elsewhere

    async with server.session.get(server.url("/static/board.js")) as resp:
        assert resp.status == 200 and "max-age" in resp.headers["Cache-Control"]
        assert "EventSource" in await resp.text()


async def test_kiosk_without_warnings_and_unknown_boards(server: Server) -> None:
    await server.issue(GLAETTE, thread="w1")
    status, html = await server.get("/boards/bahnhof-muc")
    assert status == 200 and "Keine Warnungen" in html and 'class="board sev-none"' in html
    assert re.search(r'<span class="none-stamp">\d\d:\d\d</span>', html)
    assert (await server.get("/boards/nirgends"))[0] == 404
    assert (await server.get("/boards/led"))[0] == 404  # an MQTT board has no page


async def test_exercise_kiosk_board_only_with_its_token(server: Server) -> None:
    """Invariant: exercise never public. A kiosk board in a training room shows exercises, but only to a request
    that carries its token; without it (or with a wrong one) page and stream answer 404 as for an unknown board."""
    drill = await server.issue(GLAETTE, thread="w1", exercise=True, channels=("web", "boards"))
    real = await server.issue(GEWITTER, thread="w2")
    for path in ("/boards/schulung", "/boards/schulung?token=falsch", f"/boards/schulung?token={TRAINING_TOKEN}x",
                 "/api/v1/stream?board=schulung", f"/api/v1/stream?board=schulung&token={TRAINING_TOKEN[:-1]}"):
        status, body = await server.get(path)
        assert status == 404 and "token" in body["error"] and " / " in body["error"], path
        assert drill.identifier not in str(body)
    status, html = await server.get(f"/boards/schulung?token={TRAINING_TOKEN}")
    assert status == 200 and drill.notice().headline in html and real.notice().headline in html
    assert f"/api/v1/stream?ars={DISTRICT}&amp;board=schulung&amp;token={TRAINING_TOKEN}" in html  # board.js
    assert f"url=/boards/schulung?i=1&amp;token={TRAINING_TOKEN}" in html  # the rotation without JavaScript
    async with server.session.get(server.url(f"/api/v1/stream?board=schulung&token={TRAINING_TOKEN}")) as resp:
        name, snapshot = await anext(events(resp))
    assert name == "snapshot" and set(threads(snapshot)) == {"w1", "w2"}
    status, html = await server.get("/boards/rathaus")  # a public board: never the exercise
    assert status == 200 and real.notice().headline in html and drill.identifier not in html


async def test_restricted_private_and_not_public_publications_stay_off_public_routes(server: Server) -> None:
    """Invariant: only what the hub published to the public with status Actual and scope Public leaves through a
    public route: not a CAP Restricted or Private message, not one published only to push (a topic message)."""
    hidden = [await server.issue(GLAETTE, thread="w1", scope=Scope.RESTRICTED, channels=("web", "boards")),
              await server.issue(GLAETTE, thread="w2", scope=Scope.PRIVATE, channels=("web", "boards")),
              await server.issue(GLAETTE, thread="w3", channels=("push",))]
    shown = await server.issue(GEWITTER, thread="w4", channels=("web", "boards"))
    assert threads((await server.get("/api/v1/warnings"))[1]) == ["w4"]
    for p in hidden:
        for path in (f"/api/v1/warnings/{p.thread}", f"/api/v1/warnings/{p.thread}/cap.xml",
                     f"/api/v1/publications/{p.identifier}.xml"):
            assert (await server.get(path))[0] == 404, path
        assert server.broadcaster.publish(event_of(p)) == 0
    for path in ("/feeds/cap.atom", f"/feeds/{DISTRICT}.atom", "/boards/rathaus"):
        status, body = await server.get(path)
        assert status == 200 and shown.identifier in body or shown.notice().headline in body, path
        assert not any(p.identifier in body for p in hidden), path
    async with server.session.get(server.url(f"/api/v1/stream?ars={DISTRICT}")) as resp:
        assert threads((await anext(events(resp)))[1]) == ["w4"]


async def test_warnings_are_paged_with_limit_and_cursor(server: Server) -> None:
    for n, severity in enumerate((Severity.MINOR, Severity.SEVERE, Severity.MODERATE, Severity.UNKNOWN,
                                  Severity.EXTREME)):
        await server.issue(GLAETTE, thread=f"w{n + 1}", severity=severity)
    status, body = await server.get("/api/v1/warnings")
    assert status == 200 and threads(body) == ["w5", "w2", "w3", "w1", "w4"] and body["next"] is None
    seen, cursor = [], None
    while True:
        status, body = await server.get("/api/v1/warnings?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200 and len(body["warnings"]) <= 2
        seen += threads(body)
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == ["w5", "w2", "w3", "w1", "w4"]  # each once, in order
    status, first = await server.get("/api/v1/warnings?limit=3")
    await server.issue(GLAETTE, thread="w9", severity=Severity.EXTREME)  # arrives between two pages
    status, rest = await server.get(f"/api/v1/warnings?limit=3&cursor={first['next']}")
    assert threads(first) == ["w5", "w2", "w3"] and threads(rest) == ["w1", "w4"]  # nothing repeated or skipped
    for query in ("limit=0", "limit=501", "limit=zwei", "cursor=kaputt", "cursor=WzEsMl0"):
        status, body = await server.get(f"/api/v1/warnings?{query}")
        assert status == 400 and " / " in body["error"], query
