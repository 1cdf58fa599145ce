"""Each district's citizen site on one daemon serving two districts (issue 19), from the inbox to the browser.

One daemon (``write_two_districts``: Lüchow-Dannenberg and Uelzen, Uelzen with its own host name and logo) for the
module. DWD warnings dropped into its inbox, each for one Kreis's warncell, are decided by that district's rules
(both publish a Severe DWD warning for their own Kreis to the web) and published as that district's. Invariants:
``/uelzen/`` shows Uelzen's warnings and not Lüchow-Dannenberg's, ``/luechow-dannenberg/`` the reverse, and so do
each site's CAP Atom feed, JSON API and NINA-compatible ``/api31``; ``/`` at Uelzen's host name is Uelzen's start
page, ``/`` at any other name lists both districts; ``/uelzen/logo`` serves the logo; the live stream of ``/uelzen/``
carries Uelzen's next warning and never Lüchow-Dannenberg's (proven by a later Uelzen warning arriving first). In
Chromium the Uelzen start page shows its name and colour, every link on it stays under ``/uelzen/``, no console
errors, axe finds nothing serious. Screenshot: tests/screenshots/districts-uelzen-start.png.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Page, expect

from tests.e2e.test_routing import dwd_cap
from tests.kits.browser import PageLog, axe, open_page, screenshot
from tests.kits.districts import LD, LD_SLUG, UE, UE_SLUG, write_two_districts
from tests.kits.hubproc import HubProcess, drop, free_port, wait_for

pytest_plugins = ("tests.kits.browser",)

HOST = "warnung.uelzen.example"
LOGO = b'<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"><circle cx="16" cy="16" r="14"/></svg>'
CELL = {LD: ("103354000", "Kreis Lüchow-Dannenberg"), UE: ("103360000", "Kreis Uelzen")}
SLUG = {LD: LD_SLUG, UE: UE_SLUG}
FIRST = {LD: "Sturm im Wendland", UE: "Sturm in der Heide"}
WAIT_S = 30.0


def warning(identifier: str, district: str, headline: str) -> bytes:
    """A Severe DWD warning for one Kreis's warncell (its own rules publish it to the web)."""
    cell, name = CELL[district]
    xml = dwd_cap(identifier, sent=datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)).decode()
    xml = xml.replace("<value>103354000</value>", f"<value>{cell}</value>").replace(
        "<areaDesc>Kreis Lüchow-Dannenberg</areaDesc>", f"<areaDesc>{name}</areaDesc>")
    return re.sub(r"<headline>.*?</headline>", f"<headline>{headline}</headline>", xml).encode()


class Two:
    def __init__(self, proc: HubProcess, inbox: Any) -> None:
        self.proc, self.inbox = proc, inbox

    def drop(self, identifier: str, district: str, headline: str) -> None:
        drop(self.inbox, f"{identifier}.xml", warning(identifier, district, headline), settled=True)

    def get(self, path: str, **headers: str) -> tuple[int, str, dict[str, str]]:
        request = urllib.request.Request(self.proc.base + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, resp.read().decode(), dict(resp.headers)
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(), dict(err.headers)

    def headlines(self, district: str) -> set[str]:
        status, body, _ = self.get(f"/{SLUG[district]}/api/v1/warnings")
        assert status == 200, body[:300]
        return {i["headline"] for w in json.loads(body)["warnings"] for i in w["infos"]}


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Two]:
    tmp = tmp_path_factory.mktemp("districts")
    (tmp / "inbox").mkdir()
    (tmp / "ue-logo.svg").write_bytes(LOGO)
    port = free_port()
    config = write_two_districts(tmp, port=port, extra_ue=f'host = "{HOST}"\nlogo = "ue-logo.svg"')
    proc = HubProcess(config, port, tmp / "hub.log")
    try:
        proc.start()
        site = Two(proc, tmp / "inbox")
        site.drop("ld-1", LD, FIRST[LD])
        site.drop("ue-1", UE, FIRST[UE])
        for d in (LD, UE):
            wait_for(lambda d=d: FIRST[d] in site.headlines(d), timeout=WAIT_S, what=f"{FIRST[d]!r} on its site")
        yield site
    finally:
        proc.close()


def test_each_site_lists_its_own_district_alone(two: Two) -> None:
    assert two.headlines(UE) == {FIRST[UE]} and two.headlines(LD) == {FIRST[LD]}
    for d, other in ((UE, LD), (LD, UE)):
        status, page, _ = two.get(f"/{SLUG[d]}/")
        assert status == 200 and FIRST[d] in page and FIRST[other] not in page
        status, feed, headers = two.get(f"/{SLUG[d]}/feeds/cap.atom")
        assert status == 200 and "atom" in headers["Content-Type"]
        assert FIRST[d] in feed and FIRST[other] not in feed
        status, body, _ = two.get(f"/{SLUG[d]}/api31/dashboard/{d}.json")
        nina = json.loads(body)
        assert status == 200 and [n["payload"]["data"]["headline"] for n in nina] == [FIRST[d]]
        assert nina[0]["id"].startswith(f"warnhub.{d}.")
        status, body, _ = two.get(f"/{SLUG[d]}/api31/mapData.json")
        assert status == 200 and len(json.loads(body)) == 1


def test_host_name_root_and_logo(two: Two) -> None:
    status, page, _ = two.get("/", Host=HOST)
    assert status == 200 and "Landkreis Uelzen" in page and FIRST[UE] in page and FIRST[LD] not in page
    status, listing, _ = two.get("/")
    assert status == 200 and FIRST[UE] not in listing
    assert listing.index("Landkreis Lüchow-Dannenberg") < listing.index("Landkreis Uelzen")
    assert f'href="/{LD_SLUG}/"' in listing and f'href="/{UE_SLUG}/"' in listing
    status, logo, headers = two.get(f"/{UE_SLUG}/logo")
    assert status == 200 and headers["Content-Type"] == "image/svg+xml" and logo.encode() == LOGO
    assert "max-age" in headers["Cache-Control"]


async def test_stream_of_uelzen_carries_uelzen_alone(two: Two) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{two.proc.base}/{UE_SLUG}/api/v1/stream") as resp:
        assert resp.status == 200

        async def event() -> tuple[str, Any]:
            name, data = "", None
            while True:
                line = (await asyncio.wait_for(resp.content.readline(), WAIT_S)).decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                elif not line and name:
                    if name != "heartbeat":
                        return name, data
                    name = ""

        name, snapshot = await event()
        assert name == "snapshot"
        assert [i["headline"] for w in snapshot["warnings"] for i in w["infos"]] == [FIRST[UE]]
        two.drop("ld-2", LD, "Zweiter Sturm im Wendland")
        await asyncio.to_thread(wait_for, lambda: "Zweiter Sturm im Wendland" in two.headlines(LD),
                                timeout=WAIT_S, what="LD's second warning published")
        two.drop("ue-2", UE, "Zweiter Sturm in der Heide")
        name, data = await event()  # Uelzen's, published after LD's: LD's never came
        assert name == "publication", (name, data)
        assert [i["headline"] for i in data["publication"]["infos"]] == ["Zweiter Sturm in der Heide"]
        assert data["publication"]["links"]["thread"].startswith(f"/{UE_SLUG}/api/v1/warnings/")


async def test_uelzen_start_page_in_the_browser(two: Two, page: Page, page_log: PageLog) -> None:
    await open_page(page, two.proc.base, f"/{UE_SLUG}/")
    await expect(page.locator("h1 .h1-place")).to_have_text("Landkreis Uelzen")
    await expect(page.locator("#warning-list")).to_contain_text(FIRST[UE])
    colour = await page.locator("header.site").evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(0, 100, 60)"  # Uelzen's #00643c
    await expect(page.locator("img.brand-logo")).to_have_attribute("src", f"/{UE_SLUG}/logo")
    assert await page.locator("img.brand-logo").evaluate("i => i.complete && i.naturalWidth > 0")
    await page.locator("body[data-live='ok']").wait_for(state="attached")  # its stream: /uelzen/api/v1/stream
    hrefs = await page.locator("a[href]").evaluate_all("els => els.map(a => a.getAttribute('href'))")
    own = [h for h in hrefs if not h.startswith(("#", "tel:"))]
    assert own and all(h.startswith(f"/{UE_SLUG}/") for h in own), own
    await page.locator("#map[data-ready='1']").wait_for(state="attached")
    found = [v for v in await axe(page) if v["impact"] in ("serious", "critical")]
    assert found == [], found
    await screenshot(page, "districts-uelzen-start")
    assert page_log.errors == [] and page_log.outside == []
    assert any(f"/{UE_SLUG}/api/v1/stream" in r for r in page_log.requests)
    assert await page.context.cookies() == []
