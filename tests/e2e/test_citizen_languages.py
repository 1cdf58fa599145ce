"""The citizen pages in the nine languages (issue 18 §1) against the real daemon, in Debian's Chromium where it shows.

Warnings enter as DWD CAP files dropped into the daemon's inbox (one in German, Turkish and English; one in German
only). Invariants: a page's language comes from ``?lang=``, then ``Accept-Language``, else German; its fixed texts
are the ``pages`` catalogue's (compared with the catalogue, never with copies); links keep the language; the switcher
lists all nine by their own names; a warning's own text is shown in the reader's language when it carries it, else
English or German with a note in the reader's language; Arabic pages are right-to-left, fit 320 px and 1280 px and
axe finds no violation at all; error pages speak the reader's language; the service worker's words come from
``/i18n/sw/{lang}.json``. Screenshots: tests/screenshots/citizen-{start,warning}-{ar,tr}-*.png.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.async_api import Page, expect

from hub.i18n.catalogs import translator
from hub.i18n.languages import LANGUAGES
from tests.e2e.test_citizen_pages import Site, cap, clean, map_ready
from tests.e2e.test_citizen_push import controlled
from tests.e2e.test_routing import Hub
from tests.kits.browser import PageLog, axe, open_page, screenshot

pytest_plugins = ("tests.kits.browser",)

TR_HEADLINE = "Resmî FIRTINA uyarısı"
TR_INSTRUCTION = "Binalarda kalın."
EN_HEADLINE = "Official WARNING of GALE-FORCE GUSTS"
DE_ONLY = "Nur auf Deutsch"
PHONE = {"width": 320, "height": 640}
DESKTOP = {"width": 1280, "height": 800}


def pages(lang: str, text: str) -> str:
    """A text of the pages catalogue in ``lang`` (and it must differ from the German, or the test proves nothing)."""
    found = translator(lang, "pages").gettext(text)
    assert found != text, (lang, text)
    return found


def three_languages(identifier: str, headline: str) -> bytes:
    """A DWD-style warning in German, Turkish (tr-TR) and English."""
    xml, _ = cap(identifier, headline, instruction="Bleiben Sie in Gebäuden.")
    text = xml.decode()
    head, rest = text.split("<info>", 1)
    info, tail = rest.split("</info>", 1)
    tr = (info.replace("<language>de-DE</language>", "<language>tr-TR</language>")
          .replace(headline, TR_HEADLINE).replace("Bleiben Sie in Gebäuden.", TR_INSTRUCTION)
          .replace("Es treten Sturmböen auf.", "Fırtına rüzgârları bekleniyor."))
    en = (info.replace("<language>de-DE</language>", "<language>en-GB</language>")
          .replace(headline, EN_HEADLINE).replace("Bleiben Sie in Gebäuden.", "Stay indoors.")
          .replace("Es treten Sturmböen auf.", "Gale-force gusts are expected."))
    return (head + "<info>" + info + "</info><info>" + tr + "</info><info>" + en + "</info>" + tail).encode()


def fetch(site: Site, path: str, accept_language: str | None = None) -> tuple[int, dict[str, str], str]:
    headers = {"Accept-Language": accept_language} if accept_language else {}
    request = urllib.request.Request(site.base + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


def html_lang(body: str) -> tuple[str, str]:
    found = re.search(r'<html lang="([^"]+)" dir="([^"]+)">', body)
    assert found, body[:300]
    return found.group(1), found.group(2)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    hub = Hub(tmp_path_factory.mktemp("languages"))
    try:
        hub.proc.start()
        s = Site(hub)
        s.drop("tr-1", three_languages("tr-1", "Amtliche WARNUNG vor STURMBÖEN"))
        s.issue("de-1", DE_ONLY, severity="Moderate")
        s.named["tr"] = s.thread("Amtliche WARNUNG vor STURMBÖEN")
        s.named["de"] = s.thread(DE_ONLY)
        yield s
    finally:
        hub.proc.close()


# -- the language of a page -----------------------------------------------------------------------------------------


def test_accept_language_turkish_and_lang_beats_it(site: Site) -> None:
    """``Accept-Language: tr`` without ``?lang`` gives Turkish; ``?lang=`` beats the header; nothing gives German."""
    status, headers, body = fetch(site, "/", "tr-TR,tr;q=0.9,de;q=0.5")
    assert status == 200 and html_lang(body) == ("tr", "ltr")
    assert pages("tr", "Aktuelle Warnungen") in body and "Aktuelle Warnungen" not in body
    assert headers["Content-Language"] == "tr" and "Accept-Language" in headers["Vary"]
    _, _, body = fetch(site, "/?lang=en", "tr-TR,tr;q=0.9")
    assert html_lang(body) == ("en", "ltr") and "Current warnings" in body
    _, _, body = fetch(site, "/?lang=de", "tr")
    assert html_lang(body) == ("de", "ltr") and "Aktuelle Warnungen" in body
    _, _, body = fetch(site, "/?lang=xx", "pl")  # an unknown ?lang is no choice: the header decides
    assert html_lang(body) == ("pl", "ltr") and pages("pl", "Aktuelle Warnungen") in body
    _, _, body = fetch(site, "/")
    assert html_lang(body) == ("de", "ltr") and "Aktuelle Warnungen" in body


def test_switcher_lists_nine_own_names_and_links_keep_the_language(site: Site) -> None:
    _, _, body = fetch(site, f"/warnungen/{site.named['tr']}?lang=tr")
    switcher = re.search(r'<details class="lang-switch" id="lang-switch">(.*?)</details>', body, re.S)
    assert switcher
    links = re.findall(r'<a href="([^"]+)" lang="([^"]+)" hreflang="[^"]+" dir="([^"]+)" data-lang="[^"]+"[^>]*>'
                       r"([^<]+)</a>", switcher.group(1))
    assert [(lang, name) for _, lang, _, name in links] == [(lang.code, lang.own_name) for lang in LANGUAGES]
    assert [href for href, *_ in links] == [f"/warnungen/{site.named['tr']}?lang={lang.code}" for lang in LANGUAGES]
    assert {d for _, code, d, _ in links if code == "ar"} == {"rtl"}
    assert 'href="/abonnieren?lang=tr"' in body and 'href="/?lang=tr"' in body  # the site's links keep Turkish
    _, _, start = fetch(site, "/?lang=tr")
    assert f'href="/warnungen/{site.named["tr"]}?lang=tr"' in start


def test_warning_texts_in_the_readers_language_or_a_note(site: Site) -> None:
    """The warning's Turkish text for Turkish readers; a warning without Arabic shows English to Arabic readers, a
    German-only one German, each with a note in Arabic saying so."""
    _, _, body = fetch(site, f"/warnungen/{site.named['tr']}?lang=tr")
    assert TR_HEADLINE in body and TR_INSTRUCTION in body
    assert pages("tr", "Was sollten Sie tun?") in body and 'id="not-translated"' not in body
    note = translator("ar", "pages").gettext(
        "Diese Warnung gibt es nicht in Ihrer Sprache. Sie wird in dieser Sprache gezeigt: %(shown)s.")
    _, _, body = fetch(site, f"/warnungen/{site.named['tr']}?lang=ar")
    assert EN_HEADLINE in body and note % {"shown": "English"} in body
    _, _, body = fetch(site, f"/warnungen/{site.named['de']}?lang=ar")
    assert DE_ONLY in body and note % {"shown": "Deutsch"} in body
    ls = translator("de-x-ls", "pages").gettext(
        "Diese Warnung gibt es nicht in Ihrer Sprache. Sie wird in dieser Sprache gezeigt: %(shown)s.")
    _, _, body = fetch(site, f"/warnungen/{site.named['de']}?lang=de-x-ls")
    assert ls % {"shown": "Deutsch"} in body


def test_error_pages_in_the_readers_language(site: Site) -> None:
    status, headers, body = fetch(site, "/gibt-es-nicht", "tr")
    assert status == 404 and html_lang(body) == ("tr", "ltr") and pages("tr", "Seite nicht gefunden") in body
    status, _, body = fetch(site, "/warnungen/w99999?lang=ar")
    assert status == 404 and html_lang(body) == ("ar", "rtl") and pages("ar", "Warnung nicht gefunden") in body
    status, _, body = fetch(site, "/gibt-es-nicht")
    assert status == 404 and "Seite nicht gefunden" in body
    status, headers, body = fetch(site, "/api/v1/gibt-es-nicht", "tr")  # machine routes keep their own answers
    assert status == 404 and "<html" not in body


def test_service_worker_words(site: Site) -> None:
    status, headers, body = fetch(site, "/i18n/sw/tr.json")
    doc = json.loads(body)
    assert status == 200 and doc["lang"] == "tr" and "public" in headers["Cache-Control"]
    assert doc["texts"]["Aufgehoben"] == pages("tr", "Aufgehoben")
    assert doc["texts"]["Bitte die Warn-Seite öffnen."] == pages("tr", "Bitte die Warn-Seite öffnen.")
    assert json.loads(fetch(site, "/i18n/sw/ar.json")[2])["dir"] == "rtl"
    assert fetch(site, "/i18n/sw/uk.json")[0] == 404


# -- in the browser -------------------------------------------------------------------------------------------------


async def fits(page: Page, width: int) -> dict[str, Any]:
    """axe's violations (all of them, any impact) and the page's width beyond the viewport."""
    found = [f"{v['id']} ({v['impact']}): {v['help']} – {[n['target'] for n in v['nodes']][:5]}"
             for v in await axe(page)]
    wide = await page.evaluate("document.documentElement.scrollWidth")
    return {"axe": found, "overflow": max(0, wide - width)}


async def test_turkish_pages_in_chromium(site: Site, page: Page, page_log: PageLog) -> None:
    await page.set_viewport_size(PHONE)
    await open_page(page, site.base, "/?lang=tr")
    await map_ready(page)
    await expect(page.locator("h1")).to_contain_text(pages("tr", "Aktuelle Warnungen"))
    assert await page.locator("html").get_attribute("lang") == "tr"
    await expect(page.locator("#warning-list")).to_contain_text(TR_HEADLINE)
    assert await fits(page, PHONE["width"]) == {"axe": [], "overflow": 0}
    await screenshot(page, "citizen-start-tr-320")

    await page.locator("#warning-list a", has_text=TR_HEADLINE).click()
    await expect(page.locator("h1#headline")).to_have_text(TR_HEADLINE)
    assert page.url.endswith("?lang=tr")
    await expect(page.get_by_role("heading", name=pages("tr", "Was sollten Sie tun?"))).to_be_visible()
    assert await fits(page, PHONE["width"]) == {"axe": [], "overflow": 0}
    await screenshot(page, "citizen-warning-tr-320")
    await clean(page, page_log)


async def test_arabic_pages_right_to_left_in_chromium(site: Site, page: Page, page_log: PageLog) -> None:
    """Arabic: ``dir=rtl``, the header starts on the right, nothing overflows at 320 or 1280 px, axe finds nothing."""
    problems: dict[str, Any] = {}
    for size in (PHONE, DESKTOP):
        await page.set_viewport_size(size)
        for name, path in (("start", "/?lang=ar"), ("privacy", "/datenschutz?lang=ar"),
                           ("warning", f"/warnungen/{site.named['tr']}?lang=ar")):
            await open_page(page, site.base, path)
            if name == "start":
                await map_ready(page)
            assert await page.locator("html").get_attribute("dir") == "rtl"
            await expect(page.locator("h1").first).to_be_visible()
            found = await fits(page, size["width"])
            if found != {"axe": [], "overflow": 0}:
                problems[f"{name}-{size['width']}"] = found
            await screenshot(page, f"citizen-{name}-ar-{size['width']}")
    assert problems == {}, json.dumps(problems, indent=1, ensure_ascii=False)
    brand, nav = page.locator("header.site .brand"), page.locator("header.site nav")
    brand_box, nav_box = await brand.bounding_box(), await nav.bounding_box()
    assert brand_box and nav_box and brand_box["x"] > nav_box["x"]  # mirrored: the brand on the right
    await expect(page.locator("#not-translated")).to_contain_text("English")
    await clean(page, page_log)


async def test_the_switcher_changes_the_language_and_remembers_it(site: Site, page: Page, page_log: PageLog) -> None:
    await open_page(page, site.base, "/")
    await page.locator("#lang-switch summary").click()
    await expect(page.locator("#lang-switch a")).to_have_count(9)
    await page.locator("#lang-switch a[data-lang='ru']").click()
    await expect(page.locator("h1")).to_contain_text(pages("ru", "Aktuelle Warnungen"))
    await page.goto(f"{site.base}/warnungen/{site.named['de']}")  # remembered (localStorage, no cookie)
    await page.wait_for_url(re.compile(r"\?lang=ru$"))
    await expect(page.get_by_role("heading", name=pages("ru", "Was sollten Sie tun?"))).to_be_visible()
    await page.locator("header.site nav a[href='/datenschutz?lang=ru']").click()  # links keep the language
    own = page.locator("section#own[lang='ru']")  # the privacy text in Russian first, the binding German after it
    await expect(own.locator("#privacy-languages")).to_have_text(
        pages("ru", "Eine Übersetzung der deutschen Fassung unten; verbindlich ist die deutsche Fassung."))
    await expect(own).to_contain_text(pages("ru", "Keine Cookies: Diese Seiten setzen keine Cookies."))
    await expect(page.locator("section#de")).to_contain_text("Keine Cookies.")
    await page.locator("#lang-switch summary").click()
    await page.locator("#lang-switch a[data-lang='de']").click()
    await expect(page.locator("h1")).to_have_text("Datenschutz")
    await clean(page, page_log)


async def test_subscribe_script_speaks_the_page_language(site: Site, page: Page, page_log: PageLog) -> None:
    """push.js on /abonnieren?lang=tr: its messages from the catalogue, German beside them (marked ``lang=de``)."""
    await open_page(page, site.base, "/abonnieren?lang=tr")
    await page.locator("#subscribe-button").click()  # no place chosen
    status = page.locator("#push-status")
    wanted = "Bitte wählen Sie mindestens einen Ort (Suche oder Karte)."
    await expect(status.locator("span")).to_have_text(pages("tr", wanted))
    await expect(status.locator("small[lang='de']")).to_have_text(wanted)
    await expect(page.locator("#subscription-list")).to_contain_text(pages("tr", "Dieser Browser hat kein Abo."))
    await clean(page, page_log)


TITLE = """async (msg) => notification(msg, Date.parse('2031-01-14T09:00:00Z'), await words(languageOf(msg))).title"""


async def test_service_worker_words_follow_the_push_and_the_page(site: Site, page: Page, page_log: PageLog) -> None:
    """sw.js: a push linking to a Turkish page gets Turkish words; a German one German; the offline page speaks the
    language of the last page read (offline.js tells the worker)."""
    await open_page(page, site.base, "/?lang=tr")
    await controlled(page)
    worker = page.context.service_workers[0]
    cancel = {"msgType": "Cancel", "headline": "X", "url": "/warnungen/w1?lang=tr", "lang": "de-DE"}
    assert await worker.evaluate(TITLE, cancel) == f"{pages('tr', 'Aufgehoben')}: X"
    assert await worker.evaluate(TITLE, {**cancel, "url": "/warnungen/w1"}) == "Aufgehoben: X"
    assert await worker.evaluate(TITLE, {**cancel, "url": "/warnungen/w1", "lang": "ar"}) == (
        f"{pages('ar', 'Aufgehoben')}: X")
    for _ in range(100):  # offline.js posts the page's language once the worker is ready: wait for it to land
        if await worker.evaluate("lastLanguage") == "tr":
            break
        await asyncio.sleep(0.1)
    offline = await worker.evaluate("async () => (await offlinePage(await words(await lastLanguage()))).text()")
    assert '<html lang="tr" dir="ltr">' in offline and pages("tr", "Zur Startseite") in offline
    await clean(page, page_log)
