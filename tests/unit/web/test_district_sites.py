"""Each district's citizen site on a hub of two districts (issue 19), in process: the app :func:`hub.web.app.make_app`
builds for the two-district config, over a real SQLite store holding publications of each district (as the decide
stage stores them: ``publications.district`` the issuing district's Kreis key).

Invariants: a district's site (under ``/{slug}/`` and at ``/`` of its own host name) shows that district's
publications alone — pages, JSON API, CAP documents, feeds, ``/api31``, the live stream — and every link on its pages
stays under its prefix; ``/`` of the hub lists the districts; the hub-wide routes stay at the root; the logo and the
colour are the district's own routes. The daemon-level test is tests/e2e/test_districts_pages.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from hub.app import basic_services
from hub.cap.model import Severity
from hub.cap.parse import parse
from hub.config.load import load
from hub.geo.geography import geography
from hub.publish import publications
from hub.publish.index import SubscriptionIndex
from hub.services import Services
from hub.store.db import AsyncStore, Store
from hub.web.app import make_app
from hub.web.live import Broadcaster, event_of
from tests.e2e.test_routing import dwd_cap
from tests.kits.districts import LD, LD_SENDER, LD_SLUG, UE, UE_SENDER, UE_SLUG, write_two_districts

HOST = "warnung.uelzen.example"
BOARDS = """
[[boards]]
id = "rathaus-uelzen"
name = "Rathaus Uelzen, Foyer"
ars = "033600025025"
kind = "kiosk"

[[boards]]
id = "uebung-uelzen"
name = "Übungsraum Uelzen"
ars = "033600025025"
kind = "kiosk"
exercise = true
token = "geheim-genug-123"
"""
LOGO = b'<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"><rect width="32" height="32"/></svg>'
HEAD = {LD: "Sturmwarnung Wendland", UE: "Sturmwarnung Heide"}
BOTH = "Hochwasser an der Grenze"


class Two:
    def __init__(self, hub: Services, client: TestClient[Any, Any], broadcaster: Broadcaster) -> None:
        self.hub, self.client, self.broadcaster = hub, client, broadcaster
        self.pubs: dict[str, publications.Publication] = {}

    def publish(self, name: str, district: str, headline: str, sender: str, thread: str, version: int = 1) -> None:
        """A publication of ``district`` as the decide stage stores it (the decide part writes ``district``)."""
        now = datetime.now(UTC).replace(microsecond=0)
        xml = re.sub(r"<headline>.*?</headline>", f"<headline>{headline}</headline>",
                     dwd_cap(name, sent=now - timedelta(minutes=1)).decode()).encode()
        source = parse(xml).alert
        assert source is not None
        issued = publications.issue(source, sender=sender, district=district, thread=thread, version=version,
                                    previous=None, severity=Severity.SEVERE, now=now)
        store = self.hub.store.store
        with store.transaction() as conn:
            pub = publications.insert(conn, issued, thread=thread, version=version, source_thread=None,
                                      source_alert=None, push=False, channels=("web",), regions=(district,),
                                      area=None, now_ms=publications.ms(now))
            conn.execute("UPDATE publications SET district=? WHERE id=?", (district, pub.id))
        self.pubs[name] = publications.get(store, pub.id)  # type: ignore[assignment]

    async def text(self, path: str, status: int = 200, **headers: str) -> str:
        resp = await self.client.get(path, headers=headers)
        body = await resp.text()
        assert resp.status == status, (path, resp.status, body[:300])
        return body


@pytest_asyncio.fixture
async def two(tmp_path: Path) -> AsyncIterator[Two]:
    (tmp_path / "ue-logo.svg").write_bytes(LOGO)
    config = write_two_districts(tmp_path, port=1, extra_ue=f'host = "{HOST}"\nlogo = "ue-logo.svg"',
                                 extra=BOARDS)
    loaded = load(config)
    geo = geography()
    broadcaster = Broadcaster(reg=geo.registry)
    hub = dataclasses.replace(basic_services(loaded, AsyncStore(Store(loaded.db_path))), geo=geo,
                              broadcaster=broadcaster, index=SubscriptionIndex(geo=geo), vapid_public_key="x")
    client = TestClient(TestServer(make_app(hub)))
    await client.start_server()
    site = Two(hub, client, broadcaster)
    site.publish("ld-1", LD, HEAD[LD], LD_SENDER, "w1")
    site.publish("ue-1", UE, HEAD[UE], UE_SENDER, "w2")
    site.publish("both-ld", LD, BOTH, LD_SENDER, "w3")  # one external alert, decided and published by each
    site.publish("both-ue", UE, BOTH, UE_SENDER, "w3-ue")
    try:
        yield site
    finally:
        await client.close()
        hub.store.close()


async def test_each_site_shows_its_own_district_alone(two: Two) -> None:
    ue = await two.text(f"/{UE_SLUG}/")
    ld = await two.text(f"/{LD_SLUG}/")
    assert HEAD[UE] in ue and HEAD[LD] not in ue and "Landkreis Uelzen" in ue
    assert HEAD[LD] in ld and HEAD[UE] not in ld and "Landkreis Lüchow-Dannenberg" in ld
    assert BOTH in ue and BOTH in ld  # each its own publication of it
    assert f'href="/{UE_SLUG}/warnungen/w3-ue"' in ue and 'warnungen/w3"' not in ue
    own = await two.text(f"/{UE_SLUG}/warnungen/w3-ue")
    assert "Landkreis Uelzen" in own
    assert HEAD[LD] not in await two.text(f"/{UE_SLUG}/warnungen/w1", 404)  # the other's warning is not here

    api = json.loads(await two.text(f"/{UE_SLUG}/api/v1/warnings"))
    assert {w["thread"] for w in api["warnings"]} == {"w2", "w3-ue"} and api["district"] == UE
    assert {w["sender"] for w in api["warnings"]} == {UE_SENDER}
    assert all(w["links"]["thread"].startswith(f"/{UE_SLUG}/api/v1/warnings/") for w in api["warnings"])
    await two.text(f"/{UE_SLUG}/api/v1/warnings/w1", 404)
    await two.text(f"/{UE_SLUG}/api/v1/publications/{two.pubs['ld-1'].identifier}.xml", 404)
    assert HEAD[UE] in await two.text(f"/{UE_SLUG}/api/v1/publications/{two.pubs['ue-1'].identifier}.xml")

    feed = await two.text(f"/{UE_SLUG}/feeds/cap.atom")
    assert two.pubs["ue-1"].identifier in feed and two.pubs["ld-1"].identifier not in feed
    assert two.pubs["both-ld"].identifier not in feed and two.pubs["both-ue"].identifier in feed
    nina = json.loads(await two.text(f"/{UE_SLUG}/api31/dashboard/{UE}.json"))
    assert [n["id"] for n in nina] and all(n["id"].startswith(f"warnhub.{UE}.") for n in nina)
    assert {n["payload"]["data"]["headline"] for n in nina} == {HEAD[UE], BOTH}
    ld_map = json.loads(await two.text(f"/{LD_SLUG}/api31/mapData.json"))
    assert {m["id"] for m in ld_map} == {f"warnhub.{LD}.w1", f"warnhub.{LD}.w3"}


async def test_host_name_root_listing_and_shared_routes(two: Two) -> None:
    at_host = await two.text("/", Host=HOST)
    assert HEAD[UE] in at_host and HEAD[LD] not in at_host
    assert 'href="/warnungen/w2"' in at_host  # at its own host name its site is the root
    assert HEAD[UE] in json.dumps(json.loads(await two.text("/api/v1/warnings", Host=HOST)), ensure_ascii=False)
    assert (await two.client.get("/static/citizen/citizen.css", headers={"Host": HOST})).status == 200
    assert (await two.client.get("/sw.js", headers={"Host": HOST})).status == 200

    board = await two.text(f"/{UE_SLUG}/boards/rathaus-uelzen")
    assert HEAD[UE] in board and HEAD[LD] not in board and f"/{UE_SLUG}/api/v1/stream?" in board
    await two.text(f"/{LD_SLUG}/boards/rathaus-uelzen", 404)  # Uelzen's board is on Uelzen's site alone
    moved = await two.client.get("/boards/rathaus-uelzen", allow_redirects=False)  # a kiosk set up before
    assert moved.status == 302 and moved.headers["Location"] == f"/{UE_SLUG}/boards/rathaus-uelzen"
    assert (await two.client.get("/boards/uebung-uelzen", allow_redirects=False)).status == 404  # no token
    moved = await two.client.get("/boards/uebung-uelzen?token=geheim-genug-123", allow_redirects=False)
    assert moved.headers["Location"] == f"/{UE_SLUG}/boards/uebung-uelzen?token=geheim-genug-123"
    bare = await two.client.get(f"/{UE_SLUG}", allow_redirects=False)
    assert bare.status == 301 and bare.headers["Location"] == f"/{UE_SLUG}/"
    listing = await two.text("/")
    assert listing.index("Landkreis Lüchow-Dannenberg") < listing.index("Landkreis Uelzen")
    assert f'href="/{LD_SLUG}/"' in listing and f'href="/{UE_SLUG}/"' in listing
    assert HEAD[UE] not in listing
    for path in ("/sw.js", "/static/citizen/citizen.css", "/api/v1/push/key", "/i18n/sw/de.json"):
        assert (await two.client.get(path)).status == 200, path
    assert (await two.client.get("/api/v1/warnings")).status == 404  # a district's, not the hub's
    moved = await two.client.get("/warnungen/w3-ue?lang=en", allow_redirects=False)  # a push's link to the root
    assert moved.status == 302 and moved.headers["Location"] == f"/{UE_SLUG}/warnungen/w3-ue?lang=en"
    assert (await two.client.get("/warnungen/w9", allow_redirects=False)).status == 404


async def test_links_logo_and_colour(two: Two) -> None:
    for page in ("/", "/abonnieren", "/datenschutz", "/warnungen/w2"):
        html = await two.text(f"/{UE_SLUG}{page}")
        hrefs = re.findall(r'<a [^>]*href="([^"]+)"', html)
        own = [h for h in hrefs if not h.startswith(("#", "tel:", "http"))]
        assert own and all(h.startswith(f"/{UE_SLUG}/") for h in own), (page, own)
        assert f'data-base="/{UE_SLUG}"' in html
    widget = await two.text(f"/{UE_SLUG}/widget/{UE}")
    assert HEAD[UE] in widget and HEAD[LD] not in widget
    assert all(h.startswith(f"/{UE_SLUG}/") for h in re.findall(r'<a [^>]*href="([^"]+)"', widget))
    assert f'src="/{UE_SLUG}/widget/{UE}.js"' in await two.text(f"/{UE_SLUG}/widget/{UE}.js")
    logo = await two.client.get(f"/{UE_SLUG}/logo")
    assert logo.status == 200 and logo.content_type == "image/svg+xml" and await logo.read() == LOGO
    assert "max-age" in logo.headers["Cache-Control"] and "sandbox" in logo.headers["Content-Security-Policy"]
    css = await two.client.get(f"/{UE_SLUG}/brand.css")
    assert css.content_type == "text/css" and "--brand: #00643c" in await css.text()
    assert "--brand: #005ca9" in await two.text(f"/{LD_SLUG}/brand.css")
    assert (await two.client.get(f"/{LD_SLUG}/logo")).status == 404  # Lüchow-Dannenberg has none
    regions = json.loads(await two.text(f"/{UE_SLUG}/api/v1/regions"))
    assert regions and all(r["ars"].startswith("03360") for r in regions)  # by default its own places
    assert "Orte in Landkreis Uelzen, auch in Landkreis Lüchow-Dannenberg." in await two.text(f"/{UE_SLUG}/abonnieren")
    assert "Places in Landkreis Uelzen, also in Landkreis Lüchow-Dannenberg." in await two.text(
        f"/{UE_SLUG}/abonnieren?lang=en")
    found = json.loads(await two.text(f"/{UE_SLUG}/api/v1/regions?q=Hitzacker"))
    assert "033545406009" in [r["ars"] for r in found]  # and the neighbour's by name (with its Samtgemeinde)


async def test_stream_of_a_site_carries_its_district_alone(two: Two) -> None:
    resp = await two.client.get(f"/{UE_SLUG}/api/v1/stream")
    assert resp.status == 200

    async def event() -> tuple[str, Any]:
        name, data = "", None
        while True:
            line = (await asyncio.wait_for(resp.content.readline(), 10)).decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
            elif not line and name:
                return name, data

    name, snapshot = await event()
    assert name == "snapshot" and {w["thread"] for w in snapshot["warnings"]} == {"w2", "w3-ue"}
    two.publish("ld-2", LD, "Neue Warnung Wendland", LD_SENDER, "w4")
    two.broadcaster.publish(event_of(two.pubs["ld-2"]))  # Lüchow-Dannenberg's first, then Uelzen's
    two.publish("ue-2", UE, "Neue Warnung Heide", UE_SENDER, "w5")
    two.broadcaster.publish(event_of(two.pubs["ue-2"]))
    name, data = await event()
    assert name == "publication" and data["thread"] == "w5", data  # the next one is Uelzen's: LD's never came
    assert data["publication"]["links"]["thread"] == f"/{UE_SLUG}/api/v1/warnings/w5"
    resp.close()
