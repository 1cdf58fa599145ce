"""The control-room console on the web, end to end: the real daemon (``warnhub run`` as a subprocess) with a temporary
config and a real SQLite file, Playwright driving Debian's chromium, Web Push to a local push service that verifies
VAPID and really decrypts (tests/kits/pushkit.py), and a display-board controller that receives signed POSTs.

Invariants protected: nobody sends alone where four eyes are required (the author sees no approve button and the
API refuses her); only what was previewed and confirmed is sent (audience, status and channels as ticked); an
exercise never reaches a public subscription; a scoped author cannot warn a neighbouring Gemeinde (refused by the
server, not only hidden); update and cancel reach who had the warning; no console API without a session and no
change without the session's CSRF token; an actual warning from an overdue template needs an explicit, audited
confirmation.

Gemeinde boundaries: the real ones of Lüchow-Dannenberg (tests/data/geo, BKG VG250-EW, dl-de/by-2.0, via
tests/gemeindekit.py) as ``[geo] boundaries``, except Küsten's, left out so that one region has no boundary of its
own. A Gemeinde warning reaches only that Gemeinde (push, widget); a region without a boundary is widened to the
Kreis only when the sender ticks it (refused otherwise). Screenshots of both previews go to tests/screenshots/.

One daemon serves the whole module (started once; each test uses its own places and subscriptions).
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import shutil
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from playwright.async_api import Browser, Page, expect

from hub.access import auth
from hub.decide import decisions
from hub.decide.rules.engine import RuleSet
from hub.geo.geography import geography
from hub.intake import readings
from hub.store.db import Store
from hub.web.auth import CONSOLE_HEADERS
from hub.web.console import tile_csp
from tests.e2e.test_routing import dwd_cap
from tests.kits.browser import CONTEXT, TIMEOUT_MS, PageLog, axe, screenshot, watch
from tests.kits.consolekit import Operator
from tests.kits.gemeindekit import (
    DANNENBERG,
    DISTRICT,
    GARTOW,
    HITZACKER,
    IN_HITZACKER,
    IN_LUECHOW,
    KUESTEN,
    LUECHOW,
    shapes,
    write_boundaries,
)
from tests.kits.hubproc import REPO, HubProcess, cap_xml, drop, free_port, until, write_config
from tests.kits.pushkit import PushReceiver, TestSubscription
from tests.kits.signedkit import SignedReceiver
from tests.kits.templatekit import review_relative, reviewed_of, today

pytest_plugins = ("tests.kits.browser",)
pytestmark = pytest.mark.asyncio(loop_scope="session")

BERLIN = ZoneInfo("Europe/Berlin")
PASSWORD = "Deichbruch-2026-Elbe!"
USERS = {"anna": (("author", "approver"), (DISTRICT,)), "bert": (("approver",), (DISTRICT,)),
         "erik": (("author",), (HITZACKER,)), "vera": (("viewer",), (DISTRICT,))}
BOARD_SECRET = "board-secret-for-tests"
WAIT = 30


# -- the daemon and its surroundings ------------------------------------------------------------------------------


def config_extra(board_url: str) -> str:
    return f"""
[push]
allow_http_endpoints = true
vapid_key = "var/vapid.pem"
vapid_subject = "mailto:test@warnhub.example"
timeout_s = 2
workers = 1

[geo]
boundaries = ["gemeinden.geojson"]
bundled_gemeinden = false  # the operator's file only: Küsten has no boundary here

[console]
single_person_extreme = true

[[boards]]
id = "tafel-hitzacker"
name = "Hitzacker, Marktplatz"
ars = "{HITZACKER}"
kind = "http"
url = "{board_url}"
secret = "{BOARD_SECRET}"
lines = 4
chars = 32
charset = "ascii"
"""


STALE_TEMPLATE = "feuer-alte-fassung"


def prepare(home: Path) -> None:
    """Rules (plus a console template whose review is overdue), the Gemeinde boundaries, users, a sensor draft with its
    readings, and two incoming alerts (one the rules publish, one no rule matches), before the daemon starts."""
    (home / "inbox").mkdir()
    shutil.copytree(REPO / "rules", home / "rules")
    main = home / "rules" / "luechow-dannenberg.toml"  # without the sensor rules: no MQTT sensors here
    text = main.read_text(encoding="utf-8")
    main.write_text(text[:text.index("# --- Eigene Sensoren")], encoding="utf-8")
    review_relative(home / "rules")  # reviewed ten days ago, whatever the calendar says
    compose = home / "rules" / "templates" / "compose"
    old = (compose / "feuer.toml").read_text(encoding="utf-8")
    old = "\n".join(line for line in old.splitlines() if not line.startswith(("title", "reviewed")))
    overdue = today() - timedelta(days=400)
    (compose / f"{STALE_TEMPLATE}.toml").write_text(
        f'title = "Feuer (alte Fassung)"\nreviewed = {overdue}\nreviewed_by = "Testfall"\n' + old, encoding="utf-8")
    write_boundaries(home / "gemeinden.geojson", without=(KUESTEN,))
    store = Store(home / "hub.db")
    try:
        reg = geography().registry
        for name, (roles, scopes) in USERS.items():
            auth.add_user(store, name, roles, scopes, PASSWORD, actor="test", registry=reg)
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        levels = [(now - timedelta(minutes=15 * i), 480.0 + (24 - i) * 3.5) for i in range(24, -1, -1)]
        readings.add_batch(store, [("pegel-hitzacker", readings.ms_of(at), value, "cm", readings.ms_of(at))
                                   for at, value in levels])
        tpl = RuleSet.load(home / "rules", geo=geography()).templates["pegel-steigt"]
        draft = tpl.render({"rate": 42, "window": 60, "value": 564, "unit": "cm", "district": "Lüchow-Dannenberg",
                            "time": "08:00"}, rule="Elbe steigt schnell (Hitzacker)")
        decisions.add_sensor_drafts(store, [decisions.SensorDraft(
            "Elbe steigt schnell (Hitzacker)", "pegel-hitzacker", "fired", now, ("push", "web"), ("public",),
            "Pegel Hitzacker: +42 cm in 60 Minuten (Regel: mehr als 30 cm)", draft)])
    finally:
        store.close()
    sent = datetime.now(UTC).replace(microsecond=0)
    drop(home / "inbox", "dwd.xml", dwd_cap("dwd-moderate-1", severity="Moderate", sent=sent), settled=True)
    drop(home / "inbox", "fremd.xml", cap_xml("fremd-1", sent=sent.isoformat(),
                                              expires=(sent + timedelta(hours=6)).isoformat(),
                                              headline="Unbekannter Absender"), settled=True)


@dataclass
class Kit:
    proc: HubProcess
    rx: PushReceiver
    board: SignedReceiver
    home: Path

    @property
    def base(self) -> str:
        return self.proc.base

    def push_rows(self, warning: int) -> set[str]:
        """The endpoints of the push subscriptions the pipeline queued this console version for (the outbox, read
        from the daemon's SQLite file)."""
        with sqlite3.connect(f"file:{self.home / 'hub.db'}?mode=ro", uri=True) as conn:
            return {r[0] for r in conn.execute(
                "SELECT s.endpoint FROM outbox o JOIN publications p ON p.id = o.publication_id"
                " JOIN console_warnings c ON c.alert_id = p.source_alert JOIN subscriptions s ON s.id = o.recipient"
                " WHERE o.channel='push' AND c.id=?", (warning,))}

    def audit(self) -> list[tuple[str, str, str, dict[str, Any]]]:
        """(actor, action, subject, detail) of every audit entry, read from the daemon's SQLite file."""
        with sqlite3.connect(f"file:{self.home / 'hub.db'}?mode=ro", uri=True) as conn:
            return [(a, b, c, json.loads(d)) for a, b, c, d in
                    conn.execute("SELECT actor, action, subject, detail FROM audit ORDER BY seq")]

    async def subscribe(self, where: tuple[float, float] | str, *, exercise: bool = False) -> TestSubscription:
        """A push subscription for a point (lat, lon; 100 m) or a region (its ARS)."""
        sub = self.rx.subscribe()
        place = {"ars": where} if isinstance(where, str) else {"lat": where[0], "lon": where[1], "radius_m": 100}
        body = {"subscription": sub.as_json(), "places": [place],
                "languages": ["de"], "exercise": exercise}
        if exercise:  # a staff test device: only with a token the console issues to a signed-in user
            author = await Client(self.base).login("anna")
            try:
                status, issued = await author.call("POST", "/console/api/exercise-token")
            finally:
                await author.close()
            assert status == 201, issued
            body["exercise_token"] = issued["token"]
        async with aiohttp.ClientSession() as http, http.post(f"{self.base}/api/v1/subscriptions", json=body) as r:
            assert r.status == 201, await r.text()
        return sub


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def kit(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Kit]:
    home = tmp_path_factory.mktemp("console-web")
    await asyncio.to_thread(prepare, home)
    async with PushReceiver() as rx, SignedReceiver(BOARD_SECRET, "/board") as board:
        port = free_port()
        proc = HubProcess(write_config(home, port=port, extra=config_extra(board.url)), port, home / "hub.log")
        await asyncio.to_thread(proc.start)
        try:
            kit = Kit(proc, rx, board, home)
            vera = Operator(proc.base, "vera", PASSWORD)
            await until(lambda: len(vera.threads(all=False)) >= 2, "the two incoming alerts")
            yield kit
        finally:
            await asyncio.to_thread(proc.close)



# -- talking to the console -----------------------------------------------------------------------------------------


class Client:
    """The console API as a script would use it: a session cookie and the CSRF token from the login."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # cookies for 127.0.0.1
        self.csrf = ""

    async def login(self, name: str) -> Client:
        async with self.http.post(f"{self.base}/console/login", json={"name": name, "password": PASSWORD}) as r:
            assert r.status == 200, await r.text()
            self.csrf = (await r.json())["csrf"]
        return self

    async def call(self, method: str, path: str, body: Any = None, *, csrf: str | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        headers = {"Accept": "application/json", **(headers or {})}
        token = self.csrf if csrf is None else csrf
        if method != "GET" and token:
            headers["X-CSRF-Token"] = token
        async with self.http.request(method, f"{self.base}{path}", json=body, headers=headers,
                                     allow_redirects=False) as r:
            text = await r.text()
            return r.status, (json.loads(text) if text and r.content_type == "application/json" else text)

    async def approve(self, wid: int, *, action: str = "approve", **extra: Any) -> tuple[int, Any]:
        """Approve (or send) with the token of a fresh preview and the warning's own status, audience and
        channels as the confirmation; ``extra`` replaces any of them."""
        status, prev = await self.call("GET", f"/console/api/warnings/{wid}/preview")
        assert status == 200, prev
        w = prev["warning"]
        body = {"token": prev["token"], "confirm": {"status": w["status"], "audience": w["audience"],
                                                     "topic": w["topic"], "channels": w["channels"]}, **extra}
        return await self.call("POST", f"/console/api/warnings/{wid}/{action}", body)

    async def close(self) -> None:
        await self.http.close()


async def login(page: Page, base: str, name: str) -> None:
    await page.goto(f"{base}/console/login")
    await page.fill("#name", name)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/console/")


async def second_page(browser: Browser, **options: Any) -> tuple[Page, PageLog]:
    context = await browser.new_context(**CONTEXT, **options)
    context.set_default_timeout(TIMEOUT_MS)
    log = await watch(context)
    return await context.new_page(), log


def square(lat: float, lon: float, half: float = 0.004) -> list[list[float]]:
    """A small square ring, GeoJSON order (lon, lat)."""
    return [[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half], [lon - half, lat + half],
            [lon - half, lat - half]]


def form(*, ars: tuple[str, ...] = (), ring: list[list[float]] | None = None, status: str = "Actual",
         severity: str = "Severe", urgency: str = "Expected", template: str | None = None,
         headline: str = "Großbrand") -> dict[str, Any]:
    features = [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": {}}] \
        if ring else []
    return {"status": status, "channels": ["push", "web"], "audience": "public", "template": template,
            "area": {"ars": list(ars), "features": features},
            "content": {"event": "Großbrand", "category": ["Fire"], "severity": severity, "urgency": urgency,
                        "certainty": "Observed",
                        "expires": (datetime.now(UTC) + timedelta(hours=3)).isoformat(),
                        "texts": {"de-DE": {"headline": headline, "description": "Starke Rauchentwicklung.",
                                            "instruction": "Fenster und Türen schließen."}}}}


async def click_on_map(page: Page, lat: float, lon: float) -> None:
    """Click the compose map at a place (Leaflet tells where it draws it)."""
    await page.locator("#map").scroll_into_view_if_needed()
    x, y = await page.evaluate("([lat, lon]) => { const p = window.warnhubMap.latLngToContainerPoint([lat, lon]);"
                               " return [p.x, p.y]; }", [lat, lon])
    box = await page.locator("#map").bounding_box()
    assert box is not None and 0 < x < box["width"] and 0 < y < box["height"], (x, y, box)
    await page.mouse.click(box["x"] + x, box["y"] + y)


async def approve_in_browser(page: Page, base: str, wid: int) -> None:
    """Open a submitted version, tick both confirmations, approve; the page comes back showing it sent."""
    await page.goto(f"{base}/console/warnings/{wid}")
    button = page.locator("#btn-approve")
    assert await button.is_disabled()
    await page.check("#confirm-audience")
    assert await button.is_disabled()  # both confirmations, not one
    await page.check("#confirm-channels")
    assert await button.is_enabled()
    await button.click()
    await page.wait_for_selector("#state[data-state=sent]")


def warning_id(page: Page) -> int:
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


# -- tests ----------------------------------------------------------------------------------------------------------


async def test_no_console_without_session_and_no_change_without_csrf(kit: Kit) -> None:
    async with aiohttp.ClientSession() as anon:
        async with anon.get(f"{kit.base}/console/api/inbox") as r:
            assert r.status == 401 and (await r.json())["error"] == "unauthenticated"
        async with anon.post(f"{kit.base}/console/api/warnings", json=form(ars=(DISTRICT,))) as r:
            assert r.status == 401
        for path in ("/console/", "/console/compose?template=hochwasser", "/console/warnings/1"):
            async with anon.get(f"{kit.base}{path}", allow_redirects=False) as r:
                assert r.status == 303, path
                login_url = urlsplit(r.headers["Location"])
                assert login_url.path == "/console/login" and parse_qs(login_url.query)["next"] == [path]
    anna, vera = Client(kit.base), Client(kit.base)
    try:
        await anna.login("anna")
        await vera.login("vera")
        before = (await anna.call("GET", "/console/api/warnings"))[1]["warnings"]
        for token in ("", "not-the-token"):
            status, body = await anna.call("POST", "/console/api/warnings", form(ars=(DISTRICT,)), csrf=token)
            assert (status, body["error"]) == (403, "csrf")
        # a browser under "Referrer-Policy: no-referrer" sends "Origin: null": only a same-origin fetch passes
        status, body = await anna.call("POST", "/console/api/warnings", form(ars=(DISTRICT,)),
                                       headers={"Origin": "null", "Sec-Fetch-Site": "cross-site"})
        assert (status, body["error"]) == (403, "origin")
        status, body = await anna.call("POST", "/console/api/warnings", form(ars=(DISTRICT,)),
                                       headers={"Origin": "null"})
        assert (status, body["error"]) == (403, "origin")
        status, body = await vera.call("POST", "/console/api/warnings", form(ars=(DISTRICT,)))  # a viewer
        assert status == 403 and "compose" in body["message"]
        assert (await anna.call("GET", "/console/api/warnings"))[1]["warnings"] == before
        status, _ = await anna.call("GET", "/console/api/inbox")
        assert status == 200
    finally:
        await anna.close()
        await vera.close()
    assert ("vera", "console.refused") in [(a, b) for a, b, _, _ in kit.audit()]


async def test_compose_preview_four_eyes_push_update_and_cancel(kit: Kit, page: Page, page_log: PageLog,
                                                                browser: Browser) -> None:
    here = await kit.subscribe(IN_HITZACKER)
    elsewhere = await kit.subscribe(IN_LUECHOW)
    drill = await kit.subscribe(IN_HITZACKER, exercise=True)
    base = kit.base

    # anna, author and approver, on the dashboard: the inbox with the sensor's draft and its readings
    await login(page, base, "anna")
    assert await page.locator("#inbox-drafts svg polyline").count() == 1
    assert "Elbe steigt schnell" in await page.locator("#inbox-drafts").inner_text()
    assert "Unbekannter Absender" in await page.locator("#inbox-unrouted").inner_text()
    assert "UNWETTERWARNUNG" in await page.locator("#inbox-alerts").inner_text()
    await screenshot(page, "console_dashboard")

    # compose from the flood template, area by region search
    await page.click("a[href='/console/compose']")
    await page.click("button[data-template=hochwasser]")
    await expect(page.locator("#event")).to_have_value("Hochwasser")
    reviewed = reviewed_of(kit.home / "rules", "hochwasser")
    assert await page.locator("button[data-template=hochwasser] .tpl-rev").inner_text() == \
        f"geprüft reviewed {reviewed:%d.%m.%Y}"
    assert await page.locator(f"button[data-template={STALE_TEMPLATE}] .stale-flag").count() == 1
    # the page says which file is due for review and since when (the shipped ones, reviewed ten days ago, are not)
    due = page.locator("#templates-due")
    overdue = reviewed_of(kit.home / "rules", STALE_TEMPLATE)
    await expect(due).to_contain_text(f"templates/compose/{STALE_TEMPLATE}.toml – geprüft reviewed "
                                      f"{overdue:%d.%m.%Y}, fällig seit due since "
                                      f"{overdue + timedelta(days=365):%d.%m.%Y}")
    assert await due.locator("li").count() == 1
    await page.fill("#region-search", "Hitz")
    await page.click(f"#region-results button[data-ars='{HITZACKER}']")
    await expect(page.locator("#headline-de-DE")).to_have_value(re.compile("Hitzacker"))
    headline = await page.input_value("#headline-de-DE")
    assert headline == "Hochwasser in Hitzacker (Elbe)"  # the place as people say it, not Destatis' "…, Stadt"
    assert "Hitzacker" in await page.input_value("#headline-en")
    assert await page.locator("body.actual").count() == 1 and await page.locator("#exercise-banner").is_hidden()
    await screenshot(page, "console_compose")
    await page.click("#save")
    await page.wait_for_url(f"{base}/console/warnings/*")
    wid = warning_id(page)

    # the preview: one public subscription in Hitzacker, the board's own text, the exact push text
    assert await page.get_attribute("#aud-push", "data-count") == "1"
    assert await page.locator(".push-preview[data-lang=de-DE] .push-title").inner_text() == headline
    board = await page.locator("figure[data-board=tafel-hitzacker] .board-text").inner_text()
    assert 0 < len(board.splitlines()) <= 4 and all(len(line) <= 32 and line.isascii() for line in board.splitlines())
    await screenshot(page, "console_preview")
    await page.click("#btn-submit")
    await page.wait_for_selector("#state[data-state=submitted]")
    assert await page.locator("#btn-approve").count() == 0  # she may approve, but not her own
    assert await page.locator("#four-eyes").is_visible()

    anna = await Client(base).login("anna")
    try:
        status, body = await anna.approve(wid)  # and the API refuses her too
        assert status == 403 and "Vier-Augen" in body["message"], body
    finally:
        await anna.close()

    # bert approves: the buttons wait for both confirmations
    bert_page, bert_log = await second_page(browser)
    try:
        await login(bert_page, base, "bert")
        assert "Hochwasser in Hitzacker" in await bert_page.locator("#inbox-awaiting").inner_text()
        await approve_in_browser(bert_page, base, wid)
        await screenshot(bert_page, "console_sent")
        got = await kit.rx.wait_for(1, timeout=WAIT)
        assert [r.sub_id for r in got] == [here.id]
        push = got[0].body
        assert (push["headline"], push["msgType"], push["status"]) == (headline, "Alert", "Actual")
        await bert_page.wait_for_selector("tr[data-channel=push] td[data-state=delivered]:text-is('1')")
        await until(lambda: kit.board.got, "the board's text")
        assert kit.board.bad == []

        # update: a prefilled draft of the next version, written by bert, approved by anna
        await bert_page.click("#btn-update")
        await bert_page.wait_for_url(f"{base}/console/compose?edit=*")
        await bert_page.select_option("#severity", "Extreme")
        await bert_page.fill("#headline-de-DE", "Hochwasser in Hitzacker: Deich droht zu brechen")
        await bert_page.click("#save")
        await bert_page.wait_for_url(f"{base}/console/warnings/*")
        update_id = warning_id(bert_page)
        await bert_page.click("#btn-submit")
        await bert_page.wait_for_selector("#state[data-state=submitted]")
        assert await bert_page.locator("#btn-approve").count() == 0  # bert edited it now
        await approve_in_browser(page, base, update_id)
        await kit.rx.wait_for(2, timeout=WAIT)
        update = kit.rx.received(here.id)[-1].body
        assert (update["msgType"], update["severity"], update["version"]) == ("Update", "Extreme", 2)
        assert update["headline"] == "Hochwasser in Hitzacker: Deich droht zu brechen"

        # cancel: anna starts it, bert approves
        async with page.expect_navigation():
            await page.click("#btn-cancel")
        cancel_id = warning_id(page)
        assert cancel_id not in (wid, update_id)
        await page.click("#btn-submit")
        await page.wait_for_selector("#state[data-state=submitted]")
        await approve_in_browser(bert_page, base, cancel_id)
        await kit.rx.wait_for(3, timeout=WAIT)
        cancel = kit.rx.received(here.id)[-1].body
        assert (cancel["msgType"], cancel["version"]) == ("Cancel", 3)
        assert kit.rx.received(elsewhere.id) == [] and kit.rx.received(drill.id) == []
        assert kit.rx.errors == []
        await bert_page.goto(f"{base}/console/")
        await expect(bert_page.locator("#inbox-sent")).to_contain_text("Aufgehoben")
        await screenshot(bert_page, "console_dashboard_after")
        assert bert_log.errors == [] and bert_log.outside == []
    finally:
        await bert_page.context.close()
    assert page_log.errors == [] and page_log.outside == []
    actions = [(a, b) for a, b, _, d in kit.audit() if d.get("warning") in (wid, update_id, cancel_id)]
    assert ("anna", "console.refused") in [(a, b) for a, b, _, _ in kit.audit()]
    assert [x for x in actions if x[1] in ("console.approve", "console.send")] == [
        ("bert", "console.approve"), ("bert", "console.send"), ("anna", "console.approve"), ("anna", "console.send"),
        ("bert", "console.approve"), ("bert", "console.send")]


async def test_an_exercise_reaches_exercise_subscriptions_only(kit: Kit, page: Page, page_log: PageLog) -> None:
    public = await kit.subscribe(IN_LUECHOW)
    drill = await kit.subscribe(IN_LUECHOW, exercise=True)
    base = kit.base
    await login(page, base, "anna")
    await page.goto(f"{base}/console/compose?template=feuer")
    await expect(page.locator("#event")).to_have_value(re.compile(".+"))
    await page.check("input[name=status][value=Exercise]")
    assert await page.locator("body.exercise").count() == 1
    assert await page.locator("#exercise-banner").is_visible()
    assert await page.inner_text("#mode-label") == "ÜBUNG"
    await page.fill("#area-desc", "Lüchow, Übungsgelände")
    lat, lon = IN_LUECHOW
    await page.wait_for_selector("#map[data-ready='1']")  # the district drawn and the map fitted to it
    await page.evaluate("([lat, lon]) => window.warnhubMap.setView([lat, lon], 13, {animate: false})", [lat, lon])
    await page.click("#draw-polygon")
    for dlat, dlon in ((-0.006, -0.01), (-0.006, 0.01), (0.006, 0.01), (0.006, -0.01)):
        await click_on_map(page, lat + dlat, lon + dlon)
    await page.click("#draw-finish")
    await expect(page.locator("#map path[stroke='#b00020']")).to_have_count(1)  # the drawn area
    await screenshot(page, "console_compose_exercise")
    await page.click("#save")
    await page.wait_for_url(f"{base}/console/warnings/*")
    wid = warning_id(page)
    assert await page.locator("body.exercise #exercise-banner").is_visible()
    assert await page.get_attribute("#aud-push", "data-count") == "1"  # the exercise subscription only
    assert "ÜBUNG" in await page.locator(".confirm-audience").inner_text()
    assert (await page.locator(".push-preview[data-lang=de-DE] .push-title").inner_text()).startswith("ÜBUNG – ")
    await page.click("#btn-submit")
    await page.wait_for_selector("#state[data-state=submitted]")
    await screenshot(page, "console_exercise_submitted")

    bert = await Client(base).login("bert")
    try:
        # what bert confirms must be what the warning is: "Actual" is refused, nothing is sent
        status, body = await bert.approve(wid, confirm={"status": "Actual", "audience": "public", "topic": None,
                                                        "channels": ["push", "web", "boards", "webhook"]})
        assert status == 409 and body["error"] == "confirmation_mismatch", body
        status, body = await bert.approve(wid, token="0" * 64)
        assert status == 409 and body["error"] == "stale_preview", body
        status, body = await bert.approve(wid)
        assert status == 200 and body["warning"]["state"] == "sent", body
    finally:
        await bert.close()
    await until(lambda: kit.rx.received(drill.id), "the exercise push")
    got = kit.rx.received(drill.id)[0].body
    assert got["status"] == "Exercise" and got["headline"].startswith("ÜBUNG – ")
    # every push of the exercise was queued in the one transaction that queued the drill's, which has arrived: its
    # outbox rows are all there is, and they name one recipient (the drill subscription), never the public one
    with sqlite3.connect(f"file:{kit.home / 'hub.db'}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT recipient FROM outbox WHERE thread=? AND channel='push'",
                            (got["thread"],)).fetchall()
    assert len(rows) == 1, rows
    assert kit.rx.received(public.id) == []
    here = await asyncio.to_thread(kit.proc.get_json, f"/api/v1/warnings?lat={IN_LUECHOW[0]}&lon={IN_LUECHOW[1]}")
    assert all(w.get("status") != "Exercise" for w in here["warnings"])
    assert not any("ÜBUNG" in json.dumps(w, ensure_ascii=False) for w in here["warnings"])
    assert ("bert", "console.confirmation_mismatch") in [(a, b) for a, b, _, _ in kit.audit()]
    assert page_log.errors == [] and page_log.outside == []


async def test_a_scoped_author_cannot_warn_the_neighbouring_gemeinde(kit: Kit, page: Page, page_log: PageLog) -> None:
    erik = await Client(kit.base).login("erik")
    try:
        status, found = await erik.call("GET", "/console/api/regions?q=Dann")
        assert status == 200 and found["regions"] == []  # not offered ...
        status, found = await erik.call("GET", "/console/api/regions?q=Hitz")
        assert [r["ars"] for r in found["regions"]] == [HITZACKER] and found["regions"][0]["boundary"]
        real = shapes()
        dann = real[DANNENBERG].representative_point()
        hitz = real[HITZACKER].representative_point()
        for refused in (form(ars=(DANNENBERG,)), form(ring=square(dann.y, dann.x)), form(ars=(DISTRICT,))):
            status, body = await erik.call("POST", "/console/api/warnings", refused)  # ... and refused
            assert status == 403 and body["error"] == "forbidden" and "außerhalb" in body["message"], body
        status, body = await erik.call("POST", "/console/api/warnings", form(ring=square(hitz.y, hitz.x)))
        assert status == 201, body
        mine = body["warning"]["id"]
        status, body = await erik.call("POST", f"/console/api/warnings/{mine}/edit", {"area": {"ars": [DANNENBERG]}})
        assert status == 403, body
        status, body = await erik.call("POST", f"/console/api/warnings/{mine}/submit")
        assert status == 200 and body["warning"]["state"] == "submitted"
        status, body = await erik.approve(mine)  # an author never approves
        assert status == 403, body
    finally:
        await erik.close()
    refusals = [e for e in kit.audit() if e[:2] == ("erik", "console.refused")]
    assert len(refusals) == 5, refusals

    # his compose page offers only his Gemeinde
    await login(page, kit.base, "erik")
    await page.goto(f"{kit.base}/console/compose")
    await page.fill("#region-search", "Dannenberg")
    await page.wait_for_selector("#region-results li.empty")
    assert await page.locator("#region-results button").count() == 0
    assert "Hitzacker" in await page.inner_text("#scope-hint")
    # drawing in Dannenberg, next door: the server refuses it on the real boundaries, nothing is saved
    await page.goto(f"{kit.base}/console/compose?template=feuer")
    await expect(page.locator("#event")).to_have_value(re.compile(".+"))
    await page.fill("#area-desc", "Dannenberg, Markt")
    await page.wait_for_selector("#map[data-ready='1']")
    lat, lon = dann.y, dann.x
    await page.evaluate("([lat, lon]) => window.warnhubMap.setView([lat, lon], 13, {animate: false})", [lat, lon])
    await page.click("#draw-polygon")
    for dlat, dlon in ((-0.004, -0.006), (-0.004, 0.006), (0.004, 0.006), (0.004, -0.006)):
        await click_on_map(page, lat + dlat, lon + dlon)
    await page.click("#draw-finish")
    await page.click("#save")
    await expect(page.locator("#flash")).to_contain_text("außerhalb Ihres Zuständigkeitsbereichs")
    assert "/console/compose" in page.url
    refusals = [e for e in kit.audit() if e[:2] == ("erik", "console.refused")]
    assert len(refusals) == 6, refusals
    # the browser logs the refused request itself (403), nothing else
    assert all("status of 403" in e for e in page_log.errors) and page_log.outside == [], page_log.errors


async def test_overdue_template_and_sending_alone(kit: Kit, page: Page, page_log: PageLog) -> None:
    anna, erik = await Client(kit.base).login("anna"), await Client(kit.base).login("erik")
    gartow = square(*GARTOW)
    try:
        stale = form(ring=gartow, template=STALE_TEMPLATE)
        status, body = await anna.call("POST", "/console/api/warnings", stale)
        assert status == 400 and body["error"] == "stale_template", body
        status, body = await anna.call("POST", "/console/api/warnings", {**stale, "stale_reviewed": True})
        assert status == 201, body
        assert ("anna", "console.stale_template_confirmed") in [(a, b) for a, b, _, _ in kit.audit()]
        status, body = await anna.call("POST", "/console/api/warnings", {**stale, "status": "Exercise"})
        assert status == 201, body  # an exercise may use it

        # Extreme and immediate: the admin allows an approver to send alone, with a reason
        status, body = await anna.call("POST", "/console/api/warnings",
                                       form(ring=gartow, severity="Extreme", urgency="Immediate",
                                            headline="Gasaustritt in Gartow"))
        assert status == 201, body
        wid = body["warning"]["id"]
        status, body = await anna.approve(wid, action="send", reason="zu kurz")
        assert status == 400, body
        await login(page, kit.base, "anna")
        await page.goto(f"{kit.base}/console/warnings/{wid}")
        assert await page.locator("#btn-send-alone").is_disabled()
        await page.check("#confirm-audience")
        await page.check("#confirm-channels")
        assert await page.locator("#btn-send-alone").is_disabled()  # no reason yet
        await page.fill("#alone-reason", "Gaswolke zieht auf den Ort, zweite Person nicht erreichbar")
        assert await page.locator("#btn-send-alone").is_enabled()
        await screenshot(page, "console_send_alone")
        await page.click("#btn-send-alone")
        await page.wait_for_selector("#state[data-state=sent]")

        status, body = await erik.call("POST", "/console/api/warnings",
                                       form(ring=square(IN_HITZACKER[0], IN_HITZACKER[1], 0.002), severity="Extreme",
                                            urgency="Immediate"))
        assert status == 201, body
        status, body = await erik.approve(body["warning"]["id"], action="send", reason="x" * 40)
        assert status == 403 and "Vier-Augen" in body["message"], body  # an author alone: never
    finally:
        await anna.close()
        await erik.close()
    alone = [d for a, b, _, d in kit.audit() if (a, b) == ("anna", "console.single_person")]
    assert len(alone) == 1 and alone[0]["reason"].startswith("Gaswolke")
    assert page_log.errors == [] and page_log.outside == []


async def test_a_sensor_draft_becomes_a_warning_and_the_pages_pass_axe(kit: Kit, browser: Browser) -> None:
    """The dashboard's "use as warning" prefills the compose page from the sensor's draft; then axe-core checks
    the console's pages (in a context that lets the test inject axe past the console's CSP)."""
    page, log = await second_page(browser, bypass_csp=True)
    try:
        await login(page, kit.base, "anna")
        async with page.expect_navigation():
            await page.click("#inbox-drafts a.btn")
        assert "from_draft=" in page.url
        await expect(page.locator("#headline-de-DE")).to_have_value(re.compile("^Elbe steigt schnell"))
        assert await page.input_value("#event") == "Hochwasser"
        assert await page.is_checked("input[name=channels][value=push]")
        assert not await page.is_checked("input[name=channels][value=boards]")
        # the form's local time is the browser's (Europe/Berlin), whatever the host's zone
        await page.fill("#expires", (datetime.now(BERLIN) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
        await page.fill("#region-search", "Hitz")
        await page.click(f"#region-results button[data-ars='{HITZACKER}']")
        await expect(page.locator("#chosen li")).to_have_count(1)
        violations = {"compose": await axe(page)}
        await page.click("#save")
        await page.wait_for_url(f"{kit.base}/console/warnings/*")
        wid = warning_id(page)
        violations["warning"] = await axe(page)
        await page.goto(f"{kit.base}/console/")
        violations["dashboard"] = await axe(page)
        await page.goto(f"{kit.base}/console/compose?template=hochwasser")
        await page.check("input[name=status][value=Exercise]")
        violations["compose exercise"] = await axe(page)
        found = {k: [(x["id"], [n["target"] for n in x["nodes"]][:8]) for x in v] for k, v in violations.items()}
        assert found == {k: [] for k in violations}, found
        assert log.errors == [] and log.outside == []
    finally:
        await page.context.close()
    taken = [d for a, b, _, d in kit.audit() if (a, b) == ("anna", "console.from_draft")]
    assert len(taken) == 1 and taken[0]["warning"] == wid and taken[0]["draft"].startswith("sensor:"), taken
    with sqlite3.connect(f"file:{kit.home / 'hub.db'}?mode=ro", uri=True) as conn:  # it left the inbox
        assert conn.execute("SELECT state FROM drafts WHERE key=?", (taken[0]["draft"],)).fetchone() == ("taken",)


async def test_a_tile_server_is_allowed_on_console_pages_only() -> None:
    """Without [console] tile_url the console loads nothing from elsewhere (default-src 'self'); with it, images
    from that server only, and only on console pages."""
    allow = tile_csp("/console", "https://{s}.tile.example.org/{z}/{x}/{y}.png")
    csp = CONSOLE_HEADERS["Content-Security-Policy"]
    page, public = web.Response(headers={"Content-Security-Policy": csp}), web.Response(
        headers={"Content-Security-Policy": "default-src 'self'"})
    await allow(make_mocked_request("GET", "/console/compose"), page)
    await allow(make_mocked_request("GET", "/boards/kiosk"), public)
    assert page.headers["Content-Security-Policy"] == csp + "; img-src 'self' data: https://*.tile.example.org"
    assert public.headers["Content-Security-Policy"] == "default-src 'self'"


# -- issue 14: a public warning can always be ended; the console never misleads ----------------------------------

END_REASON = "Gas abgestellt, Gefahr vorbei: Meldung der Feuerwehr Gartow"


def _store_thread(kit: Kit, wid: int) -> int:
    with sqlite3.connect(f"file:{kit.home / 'hub.db'}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT store_thread FROM console_warnings WHERE id=?", (wid,)).fetchone()[0])


def _published(kit: Kit, publication_thread: str) -> list[str]:
    with sqlite3.connect(f"file:{kit.home / 'hub.db'}?mode=ro", uri=True) as conn:
        return [m for (m,) in conn.execute("SELECT msg_type FROM publications WHERE thread=? ORDER BY version",
                                           (publication_thread,))]


async def _public_warning(anna: Client, bert: Client, headline: str) -> int:
    status, body = await anna.call("POST", "/console/api/warnings", form(ring=square(*GARTOW), headline=headline))
    assert status == 201, body
    wid = int(body["warning"]["id"])
    assert (await anna.call("POST", f"/console/api/warnings/{wid}/submit"))[0] == 200
    status, body = await bert.approve(wid)
    assert status == 200 and body["warning"]["state"] == "sent", body
    return wid


async def test_a_public_warning_can_be_ended_after_withdrawn_rejected_and_stale_follow_ups(kit: Kit) -> None:
    anna, bert = await Client(kit.base).login("anna"), await Client(kit.base).login("bert")
    try:
        wid = await _public_warning(anna, bert, "Gasaustritt in Gartow")
        thread = f"w{_store_thread(kit, wid)}"
        await until(lambda: _published(kit, thread) == ["Alert"], "the warning published")
        api = f"/console/api/warnings/{wid}"
        # withdrawn: Aufheben, zur Freigabe geben, zurückziehen (the path)
        status, body = await anna.call("POST", f"{api}/follow-up", {"action": "cancel"})
        assert status == 201, body
        first = body["warning"]["id"]
        assert (await anna.call("POST", f"/console/api/warnings/{first}/submit"))[0] == 200
        assert (await anna.call("POST", f"/console/api/warnings/{first}/withdraw"))[0] == 200
        # the dashboard's card of the warning shows what went out, not the withdrawn follow-up "being published"
        status, page_html = await anna.call("GET", "/console/", headers={"Accept": "text/html"})
        card = re.search(r'<li class="card[^"]*" data-thread="' + re.escape(body["warning"]["thread"])
                         + r'">(.*?)</li>\s*(?:<li class="card|</ul>)', page_html, re.S)
        assert card is not None and "wird veröffentlicht" not in card.group(1), card
        # rejected
        status, body = await anna.call("POST", f"{api}/follow-up", {"action": "cancel"})
        assert status == 201, body  # old code: 400 "Es gibt schon eine neuere Fassung"
        second = body["warning"]["id"]
        assert (await anna.call("POST", f"/console/api/warnings/{second}/submit"))[0] == 200
        status, body = await bert.call("POST", f"/console/api/warnings/{second}/reject",
                                       {"reason": "Erst mit der Feuerwehr abstimmen"})
        assert status == 200, body
        # stale: an update submitted and left standing
        status, body = await anna.call("POST", f"{api}/follow-up", {"action": "update"})
        assert status == 201, body
        stale = body["warning"]["id"]
        assert (await anna.call("POST", f"/console/api/warnings/{stale}/submit"))[0] == 200
        assert _published(kit, thread) == ["Alert"]  # the warning as it was

        # from the page of the withdrawn follow-up: cancel, sent alone by the only approver on duty
        status, body = await anna.call("POST", f"/console/api/warnings/{first}/follow-up", {"action": "cancel"})
        assert status == 201, body
        final = body["warning"]["id"]
        status, body = await anna.approve(final, action="send", reason="zu kurz")
        assert status == 400 and "mindestens 20 Zeichen" in body["message"], body
        status, body = await anna.approve(final, action="send", reason=END_REASON)
        assert status == 200 and body["warning"]["state"] == "sent", body
        await until(lambda: _published(kit, thread) == ["Alert", "Cancel"], "the cancel published")
        for left in (second, stale):
            status, body = await anna.call("GET", f"/console/api/warnings/{left}")
            assert body["summary"]["state"] == "withdrawn", body
        status, body = await anna.call("POST", f"{api}/follow-up", {"action": "update"})
        assert status == 400 and body["message"] == ("Diese Warnung ist bereits aufgehoben. / "
                                                     "This warning has already been cancelled."), body
    finally:
        await anna.close()
        await bert.close()
    ended = [(a, d["reason"]) for a, b, _, d in kit.audit() if b == "console.end_alone" and d["warning"] == final]
    assert ended == [("anna", END_REASON)]


async def test_ending_in_the_browser_and_pages_that_tell_the_truth(kit: Kit, page: Page, page_log: PageLog,
                                                                   browser: Browser) -> None:
    anna, bert = await Client(kit.base).login("anna"), await Client(kit.base).login("bert")
    try:
        wid = await _public_warning(anna, bert, "Chlorgas in Gartow")
    finally:
        await anna.close()
        await bert.close()
    thread = f"w{_store_thread(kit, wid)}"
    await until(lambda: _published(kit, thread) == ["Alert"], "the warning published")
    base = kit.base
    await login(page, base, "anna")
    await page.goto(f"{base}/console/warnings/{wid}")
    # one name per warning, and how the others relate: the public page is the citizens' page of this warning
    assert await page.get_attribute("#public-page", "href") == f"/warnungen/{thread}"
    assert await page.inner_text("#id-publication") == thread
    assert await page.get_attribute("#id-incident", "href") == f"/console/incidents/{_store_thread(kit, wid)}"
    async with aiohttp.ClientSession() as anon, anon.get(f"{base}/warnungen/{thread}") as r:
        assert r.status == 200 and "Chlorgas in Gartow" in await r.text()
    await page.click("nav a[href='/console/incidents']")
    await page.wait_for_url(f"{base}/console/incidents")

    # Aufheben -> zur Freigabe geben -> zurückziehen, then the warning's page still offers the follow-ups
    await page.goto(f"{base}/console/warnings/{wid}")
    async with page.expect_navigation():
        await page.click("#btn-cancel")
    await page.click("#btn-submit")
    await page.wait_for_selector("#state[data-state=submitted]")
    explained = await page.inner_text("#four-eyes")
    assert "Sie haben diese Fassung verfasst oder bearbeitet" in explained and "allein senden" in explained
    await page.click("#btn-withdraw")
    await page.wait_for_selector("#state[data-state=withdrawn]")
    assert await page.locator("#btn-cancel").count() == 1  # old code: an empty actions box
    await page.goto(f"{base}/console/warnings/{wid}")
    async with page.expect_navigation():
        await page.click("#btn-cancel")
    cancel_id = warning_id(page)
    assert await page.locator("#end-alone-note").is_visible()
    await page.check("#confirm-audience")
    await page.check("#confirm-channels")
    assert await page.locator("#btn-send-alone").is_disabled()  # the reason first
    await page.fill("#alone-reason", END_REASON)
    await page.locator("#btn-send-alone").click()
    await page.wait_for_selector("#state[data-state=sent]")
    await screenshot(page, "console_ended_alone")
    await until(lambda: _published(kit, thread) == ["Alert", "Cancel"], "the cancel published")
    assert page_log.errors == [] and page_log.outside == []
    assert [d["reason"] for a, b, _, d in kit.audit() if b == "console.end_alone" and d["warning"] == cancel_id] \
        == [END_REASON]


async def test_the_author_sees_why_she_cannot_approve(kit: Kit, page: Page) -> None:
    erik = await Client(kit.base).login("erik")  # an author without approve permission, scoped to Hitzacker
    try:
        status, body = await erik.call("POST", "/console/api/warnings", form(ars=(HITZACKER,), headline="Glätte"))
        assert status == 201, body
        wid = body["warning"]["id"]
        assert (await erik.call("POST", f"/console/api/warnings/{wid}/submit"))[0] == 200
    finally:
        await erik.close()
    await login(page, kit.base, "erik")
    await page.goto(f"{kit.base}/console/warnings/{wid}")
    assert await page.locator("#btn-approve").count() == 0
    text = await page.inner_text("#four-eyes")
    assert text.startswith("Vier-Augen-Prinzip: Sie haben diese Fassung verfasst oder bearbeitet"), text


async def widget(kit: Kit, ars: str) -> str:
    status, body = await asyncio.to_thread(kit.proc.get, f"/widget/{ars}")
    assert status == 200, (ars, status)
    return body.decode()


async def test_a_gemeinde_warning_reaches_only_that_gemeinde(kit: Kit, page: Page, page_log: PageLog,
                                                             browser: Browser) -> None:
    """Erik, scoped to Hitzacker, warns Hitzacker; the preview's count is what the pipeline queues; a phone and a
    region subscription in Lüchow (same Kreis) get nothing, and Lüchow's widget does not show it."""
    in_hitzacker = await kit.subscribe(IN_HITZACKER)
    in_luechow = await kit.subscribe(IN_LUECHOW)
    luechow_region = await kit.subscribe(LUECHOW)
    base = kit.base
    headline = "Hochwasser in Hitzacker: Altstadt räumen"
    await login(page, base, "erik")
    await page.goto(f"{base}/console/compose?template=hochwasser")
    await expect(page.locator("#event")).to_have_value("Hochwasser")
    await page.fill("#region-search", "Hitz")
    await page.click(f"#region-results button[data-ars='{HITZACKER}']")
    await expect(page.locator("#chosen li")).to_have_count(1)
    # the page writes the template's headline for the chosen region: let it, then replace it (no race with it)
    await expect(page.locator("#headline-de-DE")).to_have_value(re.compile("Hitzacker"))
    await page.fill("#headline-de-DE", headline)
    await expect(page.locator("#headline-de-DE")).to_have_value(headline)
    await page.click("#save")
    await page.wait_for_url(f"{base}/console/warnings/*")
    wid = warning_id(page)
    count = int(await page.get_attribute("#aud-push", "data-count") or -1)
    overspill = await page.inner_text("#overspill")
    assert "0.0 %" in overspill, overspill  # Hitzacker lies in the Kreis
    assert await page.locator("#widening").count() == 0  # it has a boundary of its own: nothing widened
    assert await page.get_attribute("#aud-boards", "data-count") == "1"  # the Hitzacker board, nothing else
    await screenshot(page, "console_preview_gemeinde")
    await page.click("#btn-submit")
    await page.wait_for_selector("#state[data-state=submitted]")

    anna_page, anna_log = await second_page(browser)
    try:
        await login(anna_page, base, "anna")
        await approve_in_browser(anna_page, base, wid)
        await screenshot(anna_page, "console_sent_gemeinde")
        assert anna_log.errors == [] and anna_log.outside == []
    finally:
        await anna_page.context.close()
    # the positive event first: the phone in Hitzacker gets it ...
    await until(lambda: any(r.body.get("headline") == headline for r in kit.rx.received(in_hitzacker.id)),
                "the push in Hitzacker")
    queued = kit.push_rows(wid)  # written in one transaction with the publication: complete now
    assert in_hitzacker.endpoint in queued
    assert len(queued) == count  # the preview said exactly who
    # ... and nobody in Lüchow, by point or by region
    assert in_luechow.endpoint not in queued and luechow_region.endpoint not in queued
    assert kit.rx.received(in_luechow.id) == [] and kit.rx.received(luechow_region.id) == []
    # Hitzacker's widget shows it (first), Lüchow's does not
    await until(lambda: headline in kit.proc.get(f"/widget/{HITZACKER}")[1].decode(), "Hitzacker's widget")
    assert headline not in await widget(kit, LUECHOW)
    luechow = await asyncio.to_thread(kit.proc.get_json, f"/api/v1/warnings?ars={LUECHOW}")
    assert not any(headline in json.dumps(w, ensure_ascii=False) for w in luechow["warnings"])
    hitz = await asyncio.to_thread(kit.proc.get_json, f"/api/v1/warnings?ars={HITZACKER}")
    mine = [w for w in hitz["warnings"] if headline in json.dumps(w, ensure_ascii=False)]
    assert len(mine) == 1 and mine[0]["regions"] == [HITZACKER], mine  # not the Kreis
    assert page_log.errors == [] and page_log.outside == []


async def test_each_language_shows_its_review_state_when_composing_and_on_the_warning_page(
        kit: Kit, page: Page, page_log: PageLog) -> None:
    """Issue 18: the Bombenfund template in nine languages; German, Leichte Sprache and English carry the template's
    review, the six added languages are unreviewed, and an operator's own edit is no longer the reviewed text."""
    base = kit.base
    await login(page, base, "anna")
    await page.goto(f"{base}/console/compose?template=bombenfund")
    await expect(page.locator("#event")).to_have_value("Bombenfund")
    await page.fill("#region-search", "Hitz")
    await page.click(f"#region-results button[data-ars='{HITZACKER}']")
    await expect(page.locator("#headline-tr-TR")).to_have_value(re.compile("^Hitzacker \\(Elbe\\) bölgesinde"))
    assert await page.locator("[role=tab]").count() == 9
    await page.click("#tab-tr-TR")
    await expect(page.locator("#review-tr-TR")).to_have_text(
        "Nicht von Muttersprachler:innen geprüft / not reviewed by a native speaker")
    assert await page.get_attribute("#description-ar", "dir") == "rtl"
    await page.click("#tab-en")
    await expect(page.locator("#review-en")).to_contain_text(
        "Von Muttersprachler:in geprüft / reviewed by a native speaker: warnhub, Erstfassung")
    await expect(page.locator("#review-en")).to_contain_text("2026-11-21")  # the language's own review date
    await screenshot(page, "console_compose_languages")
    await page.fill("#headline-en", "Unexploded bomb in Hitzacker: leave the area")
    await expect(page.locator("#review-en")).to_have_text(
        "Geändert: nicht mehr der geprüfte Text / edited: no longer the reviewed text")
    await page.click("#save")
    await page.wait_for_url(f"{base}/console/warnings/*")
    states = {lang: await page.get_attribute(f"article.text[data-lang='{lang}']", "data-reviewed")
              for lang in ("de-DE", "de-DE-x-ls", "en", "ar", "es-ES", "fr-FR", "pl-PL", "ru-RU", "tr-TR")}
    assert states == {"de-DE": "yes", "de-DE-x-ls": "yes", "en": "no", "ar": "no", "es-ES": "no", "fr-FR": "no",
                      "pl-PL": "no", "ru-RU": "no", "tr-TR": "no"}, states
    assert await page.locator("article.text[data-sent=no]").count() == 0  # the district sends every language
    assert await page.get_attribute("article.text[data-lang=ar]", "dir") == "rtl"
    assert (await page.inner_text("article.text[data-lang=tr-TR] .headline")).startswith("Hitzacker (Elbe) bölgesinde")
    await expect(page.locator("ul.notes")).to_contain_text(
        "Noch nicht von Muttersprachlern geprüft: en, ar, es-ES, fr-FR, pl-PL, ru-RU, tr-TR")
    await screenshot(page, "console_warning_languages")
    assert page_log.errors == [] and page_log.outside == []


async def test_a_region_without_a_boundary_is_widened_only_when_confirmed(kit: Kit, page: Page,
                                                                         page_log: PageLog) -> None:
    """Küsten has no boundary here: the preview says the warning goes to the whole Kreis and how many phones;
    sending needs the extra tick (the API refuses without it), audited."""
    anywhere = await kit.subscribe(GARTOW)
    anna = await Client(kit.base).login("anna")
    bert = await Client(kit.base).login("bert")
    headline = "Gasaustritt in Küsten"
    try:
        status, body = await anna.call("POST", "/console/api/warnings", form(ars=(KUESTEN,), headline=headline))
        assert status == 201, body
        wid = body["warning"]["id"]
        status, body = await anna.call("POST", f"/console/api/warnings/{wid}/submit")
        assert status == 200, body
        status, body = await bert.approve(wid)  # without the widening ticked: refused, nothing sent
        assert status == 400 and "Ausweitung" in body["message"] and "confirm the widening" in body["message"], body
        await login(page, kit.base, "bert")
        await page.goto(f"{kit.base}/console/warnings/{wid}")
        count = await page.get_attribute("#aud-push", "data-count")
        said = await page.inner_text("#widening")
        assert f"Küsten ohne eigene Grenze – die Warnung gilt für den ganzen Landkreis Lüchow-Dannenberg ({count} " \
               "Abos)" in said, said
        assert f"the warning covers the whole district Lüchow-Dannenberg ({count} subscriptions)" in said, said
        button = page.locator("#btn-approve")
        await page.check("#confirm-audience")
        await page.check("#confirm-channels")
        assert await button.is_disabled()  # the widening is not ticked yet
        await page.check("#confirm-widen")
        assert await button.is_enabled()
        await page.locator("#confirm-box").scroll_into_view_if_needed()
        await screenshot(page, "console_preview_widening")
        await button.click()
        await page.wait_for_selector("#state[data-state=sent]")
        # the sent page has no preview; its map still draws the Kreis and never asks for Küsten's missing shape
        async with page.expect_response(lambda r: r.url.endswith(f"/regions/{DISTRICT}/shape")) as drawn:
            await page.reload()
        assert (await drawn.value).status == 200
    finally:
        await anna.close()
        await bert.close()
    assert not [u for u in page_log.requests if f"/regions/{KUESTEN}/shape" in u], page_log.requests
    await until(lambda: any(r.body.get("headline") == headline for r in kit.rx.received(anywhere.id)),
                "the push in Gartow (the whole Kreis)")
    assert len(kit.push_rows(wid)) == int(count or -1)
    widened = [d for a, b, _, d in kit.audit() if (a, b) == ("bert", "console.widening_confirmed")]
    assert widened == [{"warning": wid, "regions": [KUESTEN], "kreise": [DISTRICT]}], widened
    assert page_log.errors == [] and page_log.outside == []


async def test_every_link_on_the_console_pages_leads_somewhere(kit: Kit) -> None:
    """The console never misleads: every link on its pages (dashboard with the inbox, incidents, warnings, compose,
    and the pages they link to) answers, none is a 404 — the inbox once linked incidents to a public /alerts/N that
    no longer exists. Runs after the tests above, so the inbox holds warnings, drafts and incidents."""
    anna = await Client(kit.base).login("anna")
    try:
        seen: dict[str, int] = {}
        todo = ["/console/", "/console/incidents"]
        while todo and len(seen) < 400:
            path = todo.pop(0)
            if path in seen:
                continue
            async with anna.http.get(f"{kit.base}{path}", allow_redirects=False) as resp:
                seen[path] = resp.status
                text = await resp.text() if resp.content_type == "text/html" else ""
            if not path.startswith("/console"):
                continue  # a public page: checked, not followed
            for href in re.findall(r'href="(/[^"#]*)"', text):
                href = html.unescape(href)
                if href not in seen and "logout" not in href:
                    todo.append(href)
        broken = {p: s for p, s in seen.items() if s >= 400}
        assert not broken, broken
        assert any(re.fullmatch(r"/console/incidents/\d+", p) for p in seen), sorted(seen)
        assert any(p.startswith("/warnungen/w") for p in seen), sorted(seen)  # "Öffentliche Seite"
    finally:
        await anna.close()
