"""The citizen pages (hub/web/citizen.py) in Debian's Chromium against the real daemon.

Warnings enter as DWD CAP files dropped into the daemon's inbox; the repository's rules publish DWD warnings for
Lüchow-Dannenberg to the web. One daemon serves the whole module (its tests build on each other in file order: the
warnings of one test stay for the next; the last test stops the daemon). Invariants: the start page lists the web
channel's current warnings most severe first, with severity in words and a shape, on a map too, and says "Keine
Warnungen" with the time when there are none; it stays current without a reload and says "Verbindung unterbrochen"
when the hub is gone or its sources are down; a warning page shows what to do first on a phone, every version, and a
cancelled or expired warning never looks current; Leichte Sprache and English where the warning carries them, the
pages in English on request; reading works without JavaScript; axe-core finds nothing serious or critical; every
page fits 320 px; no request leaves 127.0.0.1 and no cookie is set; the widget, and only the widget, can be framed
by another site. Screenshots go to tests/screenshots/citizen-*.png.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, expect

from hub.web.citizen_view import BERLIN, local
from tests.e2e.test_routing import Hub, dwd_cap
from tests.kits.browser import CONTEXT, PageLog, axe, open_page, screenshot, serve, watch
from tests.kits.hubproc import drop, wait_for

pytest_plugins = ("tests.kits.browser",)

DISTRICT = "033540000000"
HITZACKER = "033545406009"
WAIT_S = 20.0
WAIT_MS = 20_000
SEVERITY_WORDS = {"Extreme": "Extreme Gefahr", "Severe": "Gefahr", "Moderate": "Warnung", "Minor": "Information"}
PHONE = {"width": 320, "height": 640}
LS_HEADLINE = "Sturm im Landkreis. Bleiben Sie drinnen."
EN_HEADLINE = "Official WARNING of GALE-FORCE GUSTS"


# -- warnings into the daemon ------------------------------------------------------------------------------------


def cap(identifier: str, headline: str, *, severity: str = "Severe", msg_type: str = "Alert", references: str = "",
        sent: datetime | None = None, expires: datetime | None = None, instruction: str = "",
        description: str = "Es treten Sturmböen auf.") -> tuple[bytes, datetime]:
    sent = sent or datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    xml = dwd_cap(identifier, severity=severity, msg_type=msg_type, references=references, sent=sent,
                  expires=expires, description=description).decode()
    xml = re.sub(r"<headline>.*?</headline>", f"<headline>{headline}</headline>", xml)
    if instruction:
        xml = xml.replace("</description>", f"</description><instruction>{instruction}</instruction>")
    return xml.encode(), sent


def multilingual(identifier: str, headline: str) -> bytes:
    """A DWD-style warning in German, Leichte Sprache (de-DE-x-ls) and English."""
    xml, _ = cap(identifier, headline, instruction="Bleiben Sie in Gebäuden.")
    text = xml.decode()
    head, rest = text.split("<info>", 1)
    info, tail = rest.split("</info>", 1)
    ls = (info.replace("<language>de-DE</language>", "<language>de-DE-x-ls</language>")
          .replace(headline, LS_HEADLINE).replace("Es treten Sturmböen auf.", "Es gibt starken Wind.")
          .replace("Bleiben Sie in Gebäuden.", "Gehen Sie nicht nach draußen."))
    en = (info.replace("<language>de-DE</language>", "<language>en-GB</language>")
          .replace(headline, EN_HEADLINE).replace("Es treten Sturmböen auf.", "Gale-force gusts are expected.")
          .replace("Bleiben Sie in Gebäuden.", "Stay indoors."))
    return (head + "<info>" + info + "</info><info>" + ls + "</info><info>" + en + "</info>" + tail).encode()


class Site:
    """The module's daemon and what the tests have dropped into it."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.sent: dict[str, datetime] = {}
        self.named: dict[str, str] = {}
        """Threads later tests use, by what happened to them."""

    @property
    def base(self) -> str:
        return self.hub.proc.base

    def drop(self, name: str, data: bytes) -> None:
        drop(self.hub.inbox, f"{name}.xml", data, settled=True)

    def issue(self, identifier: str, headline: str, **kw: Any) -> None:
        data, sent = cap(identifier, headline, **kw)
        self.sent[identifier] = sent
        self.drop(identifier, data)

    def ref(self, identifier: str) -> str:
        return f"opendata@dwd.de,{identifier},{self.sent[identifier].isoformat()}"

    def warnings(self) -> list[dict[str, Any]]:
        return self.hub.proc.get_json(f"/api/v1/warnings?ars={DISTRICT}")["warnings"]

    def thread(self, headline: str) -> str:
        """The thread of the current warning with this German headline (waits until it is published)."""
        def find() -> str | None:
            for w in self.warnings():
                if any(i["headline"] == headline for i in w["infos"]):
                    return str(w["thread"])
            return None

        return wait_for(find, timeout=WAIT_S, what=f"a published warning {headline!r}")

    def versions(self, thread: str) -> list[dict[str, Any]]:
        return self.hub.proc.get_json(f"/api/v1/warnings/{thread}")["versions"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    hub = Hub(tmp_path_factory.mktemp("citizen"))
    try:
        hub.proc.start()
        yield Site(hub)
    finally:
        hub.proc.close()


# -- checks every page gets --------------------------------------------------------------------------------------


async def clean(page: Page, log: PageLog) -> None:
    """Nothing asked of another host, no script error, no cookie."""
    assert log.outside == [], log.outside
    assert log.errors == [], log.errors
    assert await page.context.cookies() == []


def serious(violations: list[dict[str, Any]]) -> list[str]:
    return [f"{v['id']} ({v['impact']}): {v['help']} – {[n['target'] for n in v['nodes']][:5]}"
            for v in violations if v["impact"] in ("serious", "critical")]


async def map_ready(page: Page) -> None:
    await page.locator("#map[data-ready='1']").wait_for(state="attached")


# -- the start page -------------------------------------------------------------------------------------------------


async def test_start_page_without_warnings(site: Site, page: Page, page_log: PageLog) -> None:
    """No warnings is said plainly, with the time of the last update; the page links the CAP Atom feeds."""
    await open_page(page, site.base, "/")
    none = page.locator("#no-warnings")
    await expect(none).to_contain_text("Keine Warnungen")
    assert re.search(r"Stand: heute, \d\d:\d\d Uhr", await none.inner_text())
    assert await page.locator("html").get_attribute("lang") == "de"
    feeds = await page.locator("link[rel=alternate][type='application/atom+xml']").evaluate_all(
        "links => links.map(l => l.getAttribute('href'))")
    assert feeds == [f"/feeds/{DISTRICT}.atom", "/feeds/cap.atom"]
    await map_ready(page)
    await expect(page.locator("path.warning-area")).to_have_count(0)
    await screenshot(page, "citizen-start-empty")
    await clean(page, page_log)


async def test_start_page_lists_by_severity_and_follows_live(site: Site, page: Page, page_log: PageLog) -> None:
    """Warnings arriving while the page is open appear without a reload, most severe first, severity in words and
    shapes, each an area on the map linking to its warning."""
    await open_page(page, site.base, "/")
    await map_ready(page)
    await page.locator("body[data-live='ok']").wait_for(state="attached")
    for identifier, severity in (("minor-1", "Minor"), ("extreme-1", "Extreme"), ("moderate-1", "Moderate"),
                                 ("severe-1", "Severe")):
        site.issue(identifier, f"Testwarnung {severity}", severity=severity)
    items = page.locator("#warning-list > li")
    await expect(items).to_have_count(4, timeout=WAIT_MS)
    order = ["Extreme", "Severe", "Moderate", "Minor"]
    assert await items.evaluate_all("els => els.map(e => e.dataset.severity)") == order
    words = await page.locator("#warning-list .badge .word").all_inner_texts()
    assert words == [SEVERITY_WORDS[s] for s in order]
    shapes = await page.locator("#warning-list .badge svg").evaluate_all(
        "els => els.map(e => e.getAttribute('class'))")
    assert len(set(shapes)) == 4, shapes  # a shape per level, not colour alone
    await expect(page.locator("path.warning-area")).to_have_count(4)
    await expect(page.locator("#no-warnings")).to_have_count(0)
    await screenshot(page, "citizen-start")

    await page.reload()  # the server renders the same
    assert await items.evaluate_all("els => els.map(e => e.dataset.severity)") == order
    await map_ready(page)
    await page.locator("path.warning-area.sev-severe").dispatch_event("click")  # the areas lie on each other
    await page.locator(".map-popup a").click()
    await expect(page.locator("h1#headline")).to_have_text("Testwarnung Severe")
    await clean(page, page_log)


# -- one warning ----------------------------------------------------------------------------------------------------


async def test_warning_page_history_update_and_cancel(site: Site, page: Page, page_log: PageLog) -> None:
    """The open page follows the warning: an update joins the history, the instruction comes first on a phone,
    and the cancellation turns the page into a big "BEENDET" that never looks current."""
    thread = site.thread("Testwarnung Severe")
    site.named["cancelled"] = thread
    await page.set_viewport_size(PHONE)
    opened = datetime.now(UTC)
    await open_page(page, site.base, f"/warnungen/{thread}")
    await page.locator("body[data-live='ok']").wait_for(state="attached")
    sent = site.sent["severe-1"] + timedelta(seconds=10)
    data, _ = cap("severe-1-update", "Testwarnung Severe", msg_type="Update", references=site.ref("severe-1"),
                  sent=sent, instruction="Meiden Sie Waldgebiete und Alleen.",
                  description="Orkanartige Böen bis 110 km/h.")
    site.sent["severe-1-update"] = sent
    site.drop("severe-1-update", data)
    versions = page.locator("ol.versions > li")
    await expect(versions).to_have_count(2, timeout=WAIT_MS)
    assert [k.strip() for k in await page.locator("ol.versions .kind").all_inner_texts()] == \
        ["Erstmeldung", "Aktualisierung"]
    await expect(page.locator("#instruction")).to_contain_text("Meiden Sie Waldgebiete")
    todo = await page.locator(".part-todo").bounding_box()
    what = await page.locator(".part-what").bounding_box()
    assert todo is not None and what is not None and todo["y"] < what["y"]  # what to do first on a phone
    # the end as the hub writes it (citizen_view.local: "heute"/"morgen"/a date), judged at either side of the render
    end = sent + timedelta(hours=6)  # dwd_cap's default validity
    ends = "|".join(re.escape(local(end, now=at)) for at in (opened, datetime.now(UTC)))
    await expect(page.locator(".part-when")).to_contain_text(re.compile(rf"Gültig bis\s*({ends})"))
    await expect(page.locator(".part-who")).to_contain_text("Deutscher Wetterdienst")
    await expect(page.locator("#state-banner")).to_have_count(0)
    await screenshot(page, "citizen-warning-phone")

    cancel, _ = cap("severe-1-cancel", "Testwarnung Severe", msg_type="Cancel", references=site.ref("severe-1-update"),
                    sent=sent + timedelta(seconds=10))
    site.drop("severe-1-cancel", cancel)
    banner = page.locator("#state-banner")
    await expect(banner).to_contain_text("BEENDET", timeout=WAIT_MS)
    await expect(banner).to_contain_text("aufgehoben")
    await expect(versions).to_have_count(3)
    assert (await page.locator("ol.versions .kind").all_inner_texts())[-1].strip() == "Aufhebung"
    await expect(page.locator(".warning-head .badge")).to_contain_text("Beendet – aufgehoben")
    assert "Beendet" in await page.title()
    await screenshot(page, "citizen-warning-cancelled")

    await open_page(page, site.base, "/")  # gone from the current warnings
    await expect(page.locator("#warning-list > li")).to_have_count(3)
    assert "Testwarnung Severe" not in await page.locator("#warning-list").inner_text()
    await clean(page, page_log)


async def test_expired_warning_is_shown_as_ended(site: Site, page: Page, page_log: PageLog) -> None:
    """A warning open on screen when it expires turns into "BEENDET – abgelaufen"; so does its page later."""
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=6)
    site.issue("short-1", "Kurze Warnung", severity="Moderate", expires=end)
    thread = site.thread("Kurze Warnung")
    await open_page(page, site.base, f"/warnungen/{thread}")
    await expect(page.locator("#state-banner")).to_have_count(0)
    banner = page.locator("#state-banner")
    await expect(banner).to_contain_text("abgelaufen", timeout=WAIT_MS)
    await expect(banner).to_contain_text("BEENDET")
    status, body = site.hub.proc.get(f"/warnungen/{thread}")
    assert status == 200 and "Diese Warnung ist abgelaufen" in body.decode()
    assert "Kurze Warnung" not in site.hub.proc.get("/")[1].decode()
    await clean(page, page_log)


async def test_leichte_sprache_and_english(site: Site, page: Page, page_log: PageLog) -> None:
    """The languages a warning carries are offered on its page; the pages themselves switch to English."""
    site.drop("multi-1", multilingual("multi-1", "Mehrsprachige Warnung"))
    thread = site.thread("Mehrsprachige Warnung")
    await open_page(page, site.base, f"/warnungen/{thread}")
    langs = page.locator(".text-langs a")
    assert await langs.all_inner_texts() == ["Deutsch", "Leichte Sprache", "English"]
    await page.get_by_role("link", name="Leichte Sprache").click()
    headline = page.locator("h1#headline")
    await expect(headline).to_have_text(LS_HEADLINE)
    assert await headline.get_attribute("lang") == "de-DE-x-ls"
    await expect(page.locator("#instruction")).to_contain_text("Gehen Sie nicht nach draußen.")
    await expect(page.locator(".text-langs a[aria-current='true']")).to_have_text("Leichte Sprache")
    await screenshot(page, "citizen-warning-leichte-sprache")

    await switch_to(page, "en")  # the whole page in English: the English text is chosen
    assert await page.locator("html").get_attribute("lang") == "en"
    await page.goto(f"{site.base}/warnungen/{thread}?lang=en")
    await expect(headline).to_have_text(EN_HEADLINE)
    await expect(page.get_by_role("heading", name="What should you do?")).to_be_visible()
    await expect(page.locator("#instruction")).to_contain_text("Stay indoors.")

    await page.goto(f"{site.base}/")  # remembered in this browser (localStorage, no cookie)
    await page.wait_for_url(re.compile(r"\?lang=en$"))
    await expect(page.locator("h1")).to_contain_text("Current warnings")
    words = await page.locator("#warning-list .badge .word").all_inner_texts()
    assert words[0] == "Extreme danger" and "Danger" in words
    assert EN_HEADLINE in await page.locator("#warning-list").inner_text()
    await screenshot(page, "citizen-start-en")
    await switch_to(page, "de")
    await expect(page.locator("h1")).to_contain_text("Aktuelle Warnungen")
    assert await page.locator("html").get_attribute("lang") == "de"
    await clean(page, page_log)


async def switch_to(page: Page, code: str) -> None:
    """Choose a language in the page's switcher (a disclosure listing all nine)."""
    await page.locator("#lang-switch summary").click()
    await page.locator(f"#lang-switch a[data-lang='{code}']").click()
    await page.wait_for_load_state()


async def test_reading_without_javascript(site: Site, browser: Browser) -> None:
    """With JavaScript off the warnings are all there: the list, the warning page, the way to other pages."""
    context = await browser.new_context(**CONTEXT, java_script_enabled=False)
    log = await watch(context)
    try:
        page = await context.new_page()
        await open_page(page, site.base, "/")
        items = page.locator("#warning-list > li")
        assert await items.count() == len(site.warnings()) >= 3
        await expect(page.locator("#map-section")).to_be_hidden()
        await page.get_by_role("link", name="Mehrsprachige Warnung").click()
        await expect(page.locator("h1#headline")).to_have_text("Mehrsprachige Warnung")
        await expect(page.locator("#instruction")).to_contain_text("Bleiben Sie in Gebäuden.")
        await page.get_by_role("link", name="Leichte Sprache").click()
        await expect(page.locator("h1#headline")).to_have_text(LS_HEADLINE)
        await open_page(page, site.base, "/abonnieren")
        await expect(page.locator("#needs-js")).to_contain_text("JavaScript und Web Push")
        await expect(page.locator("#subscribe-form")).to_be_hidden()
        await expect(page.locator("#test-section")).to_be_hidden()  # its button needs the script too
        await screenshot(page, "citizen-subscribe-nojs")
        await clean(page, log)
    finally:
        await context.close()


# -- subscribing, privacy -------------------------------------------------------------------------------------------


async def test_subscribe_form_picks_places(site: Site, page: Page, page_log: PageLog) -> None:
    """The form push.js reads: places by name, by tapping the map and by location, each removable; topics,
    least severity, languages."""
    regions = site.hub.proc.get_json("/api/v1/regions?q=hitz")
    assert regions[0] == {"ars": HITZACKER, "name": "Hitzacker (Elbe)", "level": "gemeinde"}
    every = site.hub.proc.get_json("/api/v1/regions")
    assert {r["level"] for r in every} == {"kreis", "verband", "gemeinde"} and every[0]["ars"] == DISTRICT
    assert site.hub.proc.get_json("/api/v1/regions?q=Hamburg") == []

    await page.context.grant_permissions(["geolocation"])
    await page.context.set_geolocation({"latitude": 52.96712, "longitude": 11.15345})
    await open_page(page, site.base, "/abonnieren")
    await map_ready(page)
    await page.locator("#place-search").fill("hitz")
    await page.get_by_role("button", name="Hinzufügen: Hitzacker (Elbe)").click()
    places = page.locator("#places > li")
    await expect(places).to_have_count(1)
    await page.locator("#radius").select_option("5000")
    await page.locator("#map").click()  # its middle: inside the district
    await page.locator("#radius").select_option("500")
    await page.locator("#use-location").click()
    await expect(places).to_have_count(3)
    chosen = [json.loads(p) for p in await places.evaluate_all("els => els.map(e => e.dataset.place)")]
    assert chosen[0] == {"ars": HITZACKER}
    assert chosen[1]["radius_m"] == 5000 and 52.8 < chosen[1]["lat"] < 53.3 and 10.5 < chosen[1]["lon"] < 11.7
    assert chosen[2] == {"lat": 52.967, "lon": 11.153, "radius_m": 500}  # rounded to ~100 m in the browser
    await screenshot(page, "citizen-subscribe")
    await places.nth(1).get_by_role("button").click()
    await expect(places).to_have_count(2)

    topics = await page.locator("input[name=topic]").evaluate_all("els => els.map(e => e.value)")
    assert {"unwetter", "hochwasser", "bombenfund", "feuer"} <= set(topics)
    assert await page.locator("select[name=min_severity] option").evaluate_all("els => els.map(e => e.value)") == \
        ["Minor", "Moderate", "Severe", "Extreme"]
    assert await page.locator("input[name=language]").evaluate_all("els => els.map(e => e.value)") == \
        ["de", "de-x-ls", "en", "ar", "es", "fr", "pl", "ru", "tr"]  # a subscription in any of the nine (issue 18)
    for needed in ("#event-topic", "#subscribe-button", "#subscription-list", "#push-status", "#offline-status",
                   "script[src='/static/citizen/push.js']", "script[src='/static/citizen/offline.js']"):
        await expect(page.locator(needed)).to_have_count(1)
    assert page_log.outside == [] and await page.context.cookies() == []


async def test_privacy_page_says_what_is_stored_and_logged(site: Site, page: Page, page_log: PageLog) -> None:
    await open_page(page, site.base, "/datenschutz")
    german = await page.locator("section#de").inner_text()
    for said in ("Keine Cookies", "endpoint", "100 m", "Themen", "Mindest-Warnstufe", "Sprachen", "Tag",
                 "kein Zugriffsprotokoll", "IP-Adresse"):
        assert said in german, said
    english = page.locator("section#en")
    assert await english.get_attribute("lang") == "en"
    assert "No cookies" in await english.inner_text()
    de_box, en_box = await page.locator("section#de").bounding_box(), await english.bounding_box()
    assert de_box is not None and en_box is not None and de_box["y"] < en_box["y"]  # German first
    await clean(page, page_log)


# -- the widget -----------------------------------------------------------------------------------------------------


async def test_widget_embeds_in_another_site(site: Site, page: Page, page_log: PageLog) -> None:
    """A municipality's page (another origin) includes the script; the widget shows the warnings in an iframe and
    opens them in a new tab. Only the widget may be framed: the start page refuses."""
    status, _ = site.hub.proc.get(f"/widget/{HITZACKER}")
    assert status == 200
    import urllib.request

    with urllib.request.urlopen(f"{site.base}/widget/{DISTRICT}") as resp:
        assert "frame-ancestors *" in resp.headers["Content-Security-Policy"]
        assert "set-cookie" not in {k.lower() for k in resp.headers}
    with urllib.request.urlopen(f"{site.base}/") as resp:
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]

    async def municipal(_: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text=(
            '<!doctype html><html lang="de"><head><title>Gemeinde Hitzacker</title></head><body>'
            "<main><h1>Gemeinde Hitzacker (Elbe)</h1>"
            f'<script src="{site.base}/widget/{HITZACKER}.js" async></script>'
            f'<iframe id="start" title="Startseite" src="{site.base}/"></iframe></main></body></html>'))

    app = web.Application()
    app.router.add_get("/", municipal)
    async with serve(app) as other:
        other = other.replace("127.0.0.1", "localhost")  # another origin
        await open_page(page, other, "/")
        frame = page.frame_locator(f"iframe[src^='{site.base}/widget/']")
        items = frame.locator("li")
        await expect(items).to_have_count(len(site.warnings()), timeout=WAIT_MS)
        await expect(items.first.locator(".word")).to_have_text("Extreme Gefahr")
        targets = await frame.locator("a").evaluate_all("els => els.map(e => e.target)")
        assert targets and set(targets) == {"_blank"}
        assert await page.locator("iframe[src^='http']").first.get_attribute("title") == \
            "Aktuelle Warnungen für Hitzacker (Elbe)"
        urls = [f.url for f in page.frames]
        assert f"{site.base}/" not in urls and any(u.startswith("chrome-error:") for u in urls), urls  # refused
        await screenshot(page, "citizen-widget-embedded")
    assert [u for u in page_log.outside] == []
    assert await page.context.cookies() == []


# -- accessibility and small screens --------------------------------------------------------------------------------


async def test_every_page_is_accessible_and_fits_320_px(site: Site, page: Page, page_log: PageLog) -> None:
    """axe-core: no serious or critical violation; no horizontal scrolling at 320 px (also 200 % zoom of 640 px);
    the first Tab reaches the skip link."""
    current = site.thread("Mehrsprachige Warnung")
    ended = site.named["cancelled"]
    assert site.versions(ended)[-1]["msgType"] == "Cancel"
    pages = {"start": "/", "start-en": "/?lang=en", "warning": f"/warnungen/{current}",
             "warning-ls": f"/warnungen/{current}?text=de-DE-x-ls", "warning-ended": f"/warnungen/{ended}",
             "subscribe": "/abonnieren", "privacy": "/datenschutz", "widget": f"/widget/{DISTRICT}",
             "missing": "/warnungen/w99999"}
    problems: dict[str, Any] = {}
    await page.set_viewport_size(PHONE)
    for name, path in pages.items():
        if name == "missing":
            assert (await page.goto(site.base + path)).status == 404  # type: ignore[union-attr]
            page_log.errors[:] = [e for e in page_log.errors if "404 (Not Found)" not in e]
        else:
            await open_page(page, site.base, path)
        if name in ("start", "start-en", "subscribe"):
            await map_ready(page)
        found = serious(await axe(page))
        width = await page.evaluate("document.documentElement.scrollWidth")
        if found or width > PHONE["width"]:
            problems[name] = {"axe": found, "scrollWidth": width}
        await screenshot(page, f"citizen-{name}-320")
    assert problems == {}, json.dumps(problems, indent=1, ensure_ascii=False)

    await page.set_viewport_size({"width": 1280, "height": 800})
    await open_page(page, site.base, "/?lang=de")
    await page.keyboard.press("Tab")
    focused = page.locator(":focus")
    await expect(focused).to_have_class("skip")
    await expect(focused).to_be_visible()
    await page.keyboard.press("Enter")
    await expect(page.locator("main:focus")).to_have_count(1)
    await clean(page, page_log)


# -- when things fail -----------------------------------------------------------------------------------------------


async def test_sources_down_said_on_the_page(site: Site, page: Page, page_log: PageLog) -> None:
    """Sources down: the hub's own list may be incomplete, and the page says so (server side)."""
    inbox = site.hub.inbox
    shutil.rmtree(inbox)
    inbox.write_text("kein Ordner")
    try:
        wait_for(lambda: site.hub.proc.get_json("/healthz")["status"] == "degraded", timeout=WAIT_S,
                 what="the inbox source down")
        await open_page(page, site.base, "/")
        notice = page.locator("#sources-notice")
        await expect(notice).to_contain_text("Verbindung unterbrochen")
        await expect(notice).to_contain_text("1 von 1 Quelle(n) gestört")
        await expect(notice).to_contain_text("unvollständig")
        await expect(page.locator("#warning-list > li")).to_have_count(len(site.warnings()))
        await screenshot(page, "citizen-start-sources-down")
        widget = site.hub.proc.get(f"/widget/{DISTRICT}")[1].decode()
        assert "Verbindung unterbrochen" in widget
    finally:
        inbox.unlink()
        inbox.mkdir()
    wait_for(lambda: site.hub.proc.get_json("/healthz")["status"] == "ok", timeout=WAIT_S, what="the source up again")
    await clean(page, page_log)


async def test_hub_gone_says_connection_interrupted(site: Site, page: Page, page_log: PageLog) -> None:
    """Last: the hub stops while the page is open. The page keeps the warnings and says "Verbindung unterbrochen"
    with the time of its last successful update."""
    opened = datetime.now(UTC)
    await open_page(page, site.base, "/")
    await page.locator("body[data-live='ok']").wait_for(state="attached")
    count = await page.locator("#warning-list > li").count()
    assert count >= 3
    site.hub.proc.stop()
    status = page.locator("#live-status")
    await expect(status).to_be_visible(timeout=WAIT_MS)
    # common.js clock(): the time alone on the same day in Berlin, else the day of the last update before it
    today = datetime.now(UTC).astimezone(BERLIN).date()
    days = {at.astimezone(BERLIN).date() for at in (opened, datetime.now(UTC))}
    before = "|".join(sorted("" if day == today else re.escape(f"{day:%d.%m.%Y}, ") for day in days))
    await expect(status).to_contain_text(re.compile(rf"Verbindung unterbrochen\. .* vom ({before})\d\d:\d\d Uhr"))
    await expect(page.locator("#warning-list > li")).to_have_count(count)  # what it knew stays
    await screenshot(page, "citizen-start-connection-lost")
    assert page_log.outside == [] and await page.context.cookies() == []
