"""The kiosk board page (``/boards/{id}``, hub/web/static/board.js) in Debian's Chromium against the real daemon.

Warnings enter as DWD CAP files dropped into the daemon's inbox and reach the open page only through its live feed
(never a reload). Invariants: the most urgent warning fills the screen, severity in words and colour (Extreme and
Severe interrupt, lesser ones take turns); no warning is said plainly; a lost connection is said plainly with the
time of the last update while the last state stays on screen; a warning is never shown as current after its expiry,
online or offline; a Cancel clears; nothing is asked of any host but the hub, no script error; the text fits a
1920×1080 screen and an 800×480 board. The page's clock is Playwright's (``page.clock``) where a test needs time
to pass: the rotation, the stale threshold and an expiry are reached in milliseconds. Screenshots of every state go
to tests/screenshots/kiosk-*.png.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Page, expect

from hub.cap import labels
from hub.i18n.catalogs import translator
from tests.e2e.test_routing import Hub, dwd_cap
from tests.kits.browser import AXE_JS, PageLog, axe, open_page, screenshot
from tests.kits.hubproc import drop, wait_for

pytest_plugins = ("tests.kits.browser",)

BOARD = """
[[boards]]
id = "foyer"
name = "Rathaus Dannenberg, Foyer"
ars = "033545406004"
kind = "kiosk"

[[boards]]
id = "foyer-tr"
name = "Rathaus Dannenberg, Foyer (Türkçe)"
ars = "033545406004"
kind = "kiosk"
language = "tr"

[[boards]]
id = "foyer-ar"
name = "Rathaus Dannenberg, Foyer (العربية)"
ars = "033545406004"
kind = "kiosk"
language = "ar"
"""
PATH = "/boards/foyer"
WAIT_MS = 20_000
"""A dropped file to the page: the directory source's poll, the pipeline, the stream."""
STALE_MS = 45_000
ROTATE_MS = 10_000
KIOSK_BEHIND = timedelta(hours=1)
"""The offline test's kiosk clock is this far behind (a board computer without a real-time clock)."""
BERLIN = ZoneInfo("Europe/Berlin")
RED = "rgb(176, 0, 32)"
ORANGE = "rgb(179, 83, 0)"
GREEN = "rgb(29, 59, 42)"
LONG_INSTRUCTION = ("ACHTUNG! Hinweis auf mögliche Gefahren: Es können zum Beispiel einzelne Bäume entwurzelt "
                    "werden. Dächer können beschädigt werden. Achten Sie besonders auf herabstürzende Äste, "
                    "Dachziegel oder Gegenstände. Halten Sie insbesondere Abstand von Gebäuden, Bäumen, Gerüsten "
                    "und Hochspannungsleitungen. Vermeiden Sie möglichst den Aufenthalt im Freien!")
LONGER_INSTRUCTION = (LONG_INSTRUCTION + " Schließen Sie Fenster und Türen. Sichern Sie Gegenstände im Freien. "
                      "Informieren Sie sich in den Medien, zum Beispiel im Lokalradio, und über die Warn-App NINA. "
                      "Helfen Sie älteren und hilfsbedürftigen Menschen in Ihrer Nachbarschaft. Rufen Sie die "
                      "Notrufnummer 112 nur in Notfällen an, damit die Leitungen für Notrufe frei bleiben.")


@dataclass(frozen=True)
class Issued:
    identifier: str
    sent: datetime

    @property
    def ref(self) -> str:
        return f"opendata@dwd.de,{self.identifier},{self.sent.isoformat()}"


def board_until(end: datetime, now: datetime) -> str:
    """What board.js ``until()`` writes for ``end`` at the hub's time ``now``: the clock alone on the same day in
    Berlin, else the date before it."""
    at, today = end.astimezone(BERLIN), now.astimezone(BERLIN).date()
    when = f"{at:%H:%M}" if at.date() == today else f"{at:%d.%m.%Y}, {at:%H:%M}"
    return f"gültig bis {when} Uhr"


class Inbox:
    """DWD warnings for Lüchow-Dannenberg dropped into a daemon's inbox (the repository's rules publish Moderate and
    up to the boards); remembers which are live, so a test leaves the board empty for the next one."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.live: list[Issued] = []

    @property
    def base(self) -> str:
        return self.hub.proc.base

    def issue(self, identifier: str, headline: str, *, severity: str = "Severe", expires: timedelta | None = None,
              instruction: str = "") -> Issued:
        sent = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
        end = sent + (expires or timedelta(hours=6))
        xml = dwd_cap(identifier, severity=severity, sent=sent, expires=end).decode()
        xml = re.sub(r"<headline>.*?</headline>", f"<headline>{headline}</headline>", xml)
        if instruction:
            xml = xml.replace("</description>", f"</description><instruction>{instruction}</instruction>")
        drop(self.hub.inbox, f"{identifier}.xml", xml.encode(), settled=True)
        self.live.append(Issued(identifier, sent))
        return self.live[-1]

    def cancel(self, what: Issued) -> None:
        sent = max(datetime.now(UTC).replace(microsecond=0), what.sent + timedelta(seconds=1))
        xml = dwd_cap(f"{what.identifier}-cancel", msg_type="Cancel", references=what.ref, sent=sent)
        drop(self.hub.inbox, f"{what.identifier}-cancel.xml", xml, settled=True)
        self.live.remove(what)

    def count(self) -> int:
        """How many warnings the hub itself has for the board (the JSON the page starts from)."""
        status, body = self.hub.proc.get(PATH)
        assert status == 200
        data = re.search(r'<script type="application/json" id="board-data">(.*?)</script>', body.decode(), re.S)
        assert data is not None
        return len(json.loads(data.group(1))["warnings"])

    def settle(self, count: int) -> None:
        wait_for(lambda: self.count() == count, timeout=WAIT_MS / 1000, what=f"{count} warning(s) on the board")

    def clear(self) -> None:
        for what in list(self.live):
            self.cancel(what)
        self.settle(0)


def new_hub(folder: Path) -> Hub:
    hub = Hub(folder, extra=BOARD)
    hub.proc.start()
    return hub


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """One daemon for the tests that keep it running."""
    h = new_hub(tmp_path_factory.mktemp("kiosk"))
    try:
        yield h
    finally:
        h.proc.close()


@pytest.fixture
def inbox(daemon: Hub) -> Iterator[Inbox]:
    box = Inbox(daemon)
    box.settle(0)
    yield box
    box.clear()  # also after a failure: the next test starts from an empty board


# -- what the page shows ---------------------------------------------------------------------------------------------


async def background(page: Page) -> str:
    return await page.evaluate("getComputedStyle(document.body).backgroundColor")


async def fits(page: Page) -> dict[str, int]:
    """The main element's sizes; the test asserts nothing is cut off or scrolls."""
    return await page.evaluate("""() => {
        const m = document.querySelector('main');
        return {sw: m.scrollWidth, cw: m.clientWidth, sh: m.scrollHeight, ch: m.clientHeight,
                dw: document.documentElement.scrollWidth, vw: window.innerWidth,
                dh: document.documentElement.scrollHeight, vh: window.innerHeight};
    }""")


async def assert_fits(page: Page, name: str) -> None:
    for width, height in ((1920, 1080), (800, 480), (480, 272)):
        await page.set_viewport_size({"width": width, "height": height})
        await page.wait_for_timeout(50)
        size = await fits(page)
        await screenshot(page, f"kiosk-{name}-{width}x{height}", full_page=False)
        assert size["sw"] <= size["cw"] and size["sh"] <= size["ch"], (name, width, height, size)
        assert size["dw"] <= size["vw"] and size["dh"] <= size["vh"], (name, width, height, size)


async def shows(page: Page, headline: str, word: str, colour: str) -> None:
    """``headline`` is the warning on screen: big, with its severity word, in its colour."""
    await expect(page.locator("#headline")).to_have_text(headline, timeout=WAIT_MS)
    await expect(page.locator("#warning")).to_be_visible()
    await expect(page.locator("#none")).to_be_hidden()
    await expect(page.locator("#sev-word")).to_have_text(word)
    assert await background(page) == colour


async def shows_none(page: Page) -> None:
    await expect(page.locator("#none")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#none h1")).to_have_text("Keine Warnungen")
    await expect(page.locator("#warning")).to_be_hidden()
    assert await background(page) == GREEN


async def pause(page: Page) -> None:
    """Stop the page's clock (it was installed): its timers run only when the test advances it."""
    await page.clock.pause_at(await page.evaluate("Date.now()") / 1000 + 0.5)


async def accessible(page: Page) -> None:
    """No axe-core violation. The hub's Content-Security-Policy refuses the kit's <script> tag for axe, so it goes in
    through the debugger protocol, which the policy does not govern (the page itself stays under the policy)."""
    async with asyncio.timeout(20):  # axe waits on timers: a paused page clock would hold it for ever
        await page.evaluate(AXE_JS.read_text(encoding="utf-8") + "\n;undefined")
        violations = await axe(page)
    assert violations == [], [(v["id"], [n["target"] for n in v["nodes"]]) for v in violations]


def clean(log: PageLog) -> None:
    assert log.outside == [], log.outside
    assert log.errors == [], log.errors
    assert sum("/boards/" in url for url in log.requests) == 1, log.requests  # live, never reloaded


# -- the tests -------------------------------------------------------------------------------------------------------


async def test_a_turkish_kiosk_follows_live_in_turkish(inbox: Inbox, page: Page, page_log: PageLog) -> None:
    """board.js composes in the board's language what it writes itself (validity, severity word) from the page's
    texts: a warning arriving live on a Turkish kiosk reads Turkish with English beside, its German text marked as
    German; an Arabic kiosk is right-to-left and fits the screens. Texts from the notify catalogue, not copies."""
    tr = translator("tr", "notify")
    await page.set_viewport_size({"width": 1920, "height": 1080})
    await open_page(page, inbox.base, "/boards/foyer-tr")
    await expect(page.locator("#none h1")).to_have_text(tr.gettext("Keine Warnungen"))
    inbox.issue("storm-tr", "Amtliche UNWETTERWARNUNG vor ORKANBÖEN", instruction=LONG_INSTRUCTION)
    await shows(page, "Amtliche UNWETTERWARNUNG vor ORKANBÖEN", labels.severity_word("Severe", "tr"), RED)
    await expect(page.locator("#sev-en")).to_have_text("Danger")
    when = r"(\d\d\.\d\d\.\d{4}, )?\d\d:\d\d"
    own = re.escape(tr.gettext("gültig bis %(time)s Uhr")).replace(re.escape("%(time)s"), when)
    await expect(page.locator("#validity")).to_have_text(re.compile(f"{own} / valid until {when}"))
    assert await page.locator("#headline").get_attribute("lang") == "de-DE"
    assert await page.locator("html").get_attribute("lang") == "tr"
    await accessible(page)
    await assert_fits(page, "tr-severe")
    clean(page_log)

    await page.set_viewport_size({"width": 1920, "height": 1080})
    await open_page(page, inbox.base, "/boards/foyer-ar")
    await shows(page, "Amtliche UNWETTERWARNUNG vor ORKANBÖEN", labels.severity_word("Severe", "ar"), RED)
    assert await page.locator("html").get_attribute("dir") == "rtl"
    assert await page.locator("#instruction").evaluate("e => getComputedStyle(e).direction") == "ltr"  # German text
    await accessible(page)
    await assert_fits(page, "ar-severe")


async def test_no_warning_then_severe_live_then_cancel(inbox: Inbox, page: Page, page_log: PageLog) -> None:
    await page.set_viewport_size({"width": 1920, "height": 1080})
    await open_page(page, inbox.base, PATH)
    await shows_none(page)
    await expect(page.locator("#offline")).to_be_hidden()
    assert re.fullmatch(r"\d\d:\d\d", await page.locator(".none-stamp").inner_text())
    await accessible(page)
    await assert_fits(page, "none")

    await page.set_viewport_size({"width": 1920, "height": 1080})
    storm = inbox.issue("storm-live", "Amtliche UNWETTERWARNUNG vor ORKANBÖEN", instruction=LONG_INSTRUCTION)
    await shows(page, "Amtliche UNWETTERWARNUNG vor ORKANBÖEN", "Gefahr", RED)
    await expect(page.locator("#sev-en")).to_have_text("Danger")
    await expect(page.locator("#area")).to_have_text("Kreis Lüchow-Dannenberg")
    await expect(page.locator("#instruction")).to_contain_text("Hochspannungsleitungen")
    await expect(page.locator("#validity")).to_have_text(re.compile(r"gültig bis (\d\d\.\d\d\.\d{4}, )?\d\d:\d\d Uhr"))
    await expect(page.locator("#position")).to_be_hidden()
    headline = await page.locator("#headline").evaluate("h => parseFloat(getComputedStyle(h).fontSize)")
    assert headline >= 60  # readable across a foyer at 1080p
    await accessible(page)
    await assert_fits(page, "severe")

    inbox.cancel(storm)
    await shows_none(page)
    await screenshot(page, "kiosk-cancelled", full_page=False)
    clean(page_log)


async def test_lesser_warnings_rotate_and_severe_interrupts(inbox: Inbox, page: Page, page_log: PageLog) -> None:
    await page.clock.install()
    await page.set_viewport_size({"width": 1920, "height": 1080})
    await open_page(page, inbox.base, PATH)
    await shows_none(page)
    await pause(page)  # it turns only when the test says
    rain = inbox.issue("rain", "Amtliche WARNUNG vor STARKREGEN", severity="Moderate")
    await shows(page, "Amtliche WARNUNG vor STARKREGEN", "Warnung", ORANGE)
    thunder = inbox.issue("thunder", "Amtliche WARNUNG vor GEWITTER", severity="Moderate")
    await expect(page.locator("#position")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#others li")).to_have_count(1)
    first = await page.locator("#headline").inner_text()
    second = ({"Amtliche WARNUNG vor STARKREGEN", "Amtliche WARNUNG vor GEWITTER"} - {first}).pop()
    await screenshot(page, "kiosk-rotation-1", full_page=False)

    await page.clock.fast_forward(ROTATE_MS)
    await shows(page, second, "Warnung", ORANGE)
    await expect(page.locator("#position")).to_contain_text("Warnung 2 von 2")
    await page.clock.resume()
    await accessible(page)
    await pause(page)
    await screenshot(page, "kiosk-rotation-2", full_page=False)
    await page.clock.fast_forward(ROTATE_MS)
    await shows(page, first, "Warnung", ORANGE)

    storm = inbox.issue("storm-interrupts", "Amtliche UNWETTERWARNUNG vor ORKANBÖEN", instruction=LONGER_INSTRUCTION)
    await shows(page, "Amtliche UNWETTERWARNUNG vor ORKANBÖEN", "Gefahr", RED)
    await expect(page.locator("#position")).to_be_hidden()  # the one urgent warning: nothing takes turns with it
    await expect(page.locator("#others li")).to_have_count(2)
    await expect(page.locator("#others")).to_contain_text("STARKREGEN")
    await screenshot(page, "kiosk-interrupted", full_page=False)
    await page.evaluate("""() => {  // the warning is an aria-live region: it changes only when the warning does
        window.mutations = 0;
        new MutationObserver(r => { window.mutations += r.length; })
            .observe(document.getElementById('warning'), {subtree: true, childList: true, characterData: true});
    }""")
    await page.clock.run_for(3 * ROTATE_MS)  # every tick of the page's timer
    await shows(page, "Amtliche UNWETTERWARNUNG vor ORKANBÖEN", "Gefahr", RED)  # it stays
    assert await page.evaluate("window.mutations") == 0
    await assert_fits(page, "three")

    inbox.cancel(storm)  # the lesser ones take turns again
    await page.set_viewport_size({"width": 1920, "height": 1080})
    await expect(page.locator("#sev-word")).to_have_text("Warnung", timeout=WAIT_MS)
    await expect(page.locator("#position")).to_be_visible()
    inbox.cancel(rain)
    inbox.cancel(thunder)
    await shows_none(page)
    clean(page_log)


async def test_offline_keeps_the_last_state_until_it_expires(tmp_path: Path, page: Page, page_log: PageLog) -> None:
    inbox = Inbox(new_hub(tmp_path))  # its own daemon: this one is stopped
    try:
        flood = inbox.issue("flood", "Amtliche UNWETTERWARNUNG vor EXTREMEM STARKREGEN", expires=timedelta(minutes=10))
        await asyncio.to_thread(inbox.settle, 1)
        await page.clock.install(time=datetime.now(UTC) - KIOSK_BEHIND)
        await page.set_viewport_size({"width": 1920, "height": 1080})
        await open_page(page, inbox.base, PATH)
        await shows(page, "Amtliche UNWETTERWARNUNG vor EXTREMEM STARKREGEN", "Gefahr", RED)
        end = flood.sent + timedelta(minutes=10)  # may fall on the next day: then the board writes the date
        shown = "|".join(re.escape(board_until(end, at)) for at in (flood.sent, datetime.now(UTC)))
        await expect(page.locator("#validity")).to_contain_text(re.compile(shown))
        await page.wait_for_timeout(500)  # the stream's snapshot
        inbox.hub.proc.stop()
    finally:
        inbox.hub.proc.close()
    stamp = await page.locator("#stamp").inner_text()  # the last update
    now = datetime.now(BERLIN)
    assert stamp in {f"{now - timedelta(minutes=1):%H:%M}", f"{now:%H:%M}"}  # in the hub's time, not the kiosk's

    await expect(page.locator("#offline")).to_be_hidden()
    await page.clock.fast_forward(STALE_MS + 2000)
    await expect(page.locator("#offline")).to_be_visible()
    await expect(page.locator("#offline")).to_contain_text(f"Verbindung unterbrochen – Stand: {stamp} Uhr")
    await shows(page, "Amtliche UNWETTERWARNUNG vor EXTREMEM STARKREGEN", "Gefahr", RED)  # the last valid state
    await accessible(page)
    await assert_fits(page, "offline")

    await page.set_viewport_size({"width": 1920, "height": 1080})
    # The kiosk's clock is an hour behind: it must still drop the warning at its expiry by the hub's clock (the
    # hub's times are whole seconds: the page may end it up to a second early, never late).
    kiosk_now = await page.evaluate("Date.now()") / 1000
    hub_now = datetime.fromtimestamp(kiosk_now, UTC) + KIOSK_BEHIND
    left_ms = (flood.sent + timedelta(minutes=10) - hub_now).total_seconds() * 1000
    await page.clock.fast_forward(int(left_ms) - 2500)
    await shows(page, "Amtliche UNWETTERWARNUNG vor EXTREMEM STARKREGEN", "Gefahr", RED)
    await page.clock.fast_forward(2600)
    await shows_none(page)
    await expect(page.locator("#offline")).to_be_visible()
    await screenshot(page, "kiosk-offline-expired", full_page=False)
    assert page_log.outside == [], page_log.outside
    # the browser logs its attempts to reach the stopped hub; nothing else may go wrong
    assert [e for e in page_log.errors if "ERR_CONNECTION_REFUSED" not in e] == [], page_log.errors
