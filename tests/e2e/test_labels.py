"""One warning reads the same everywhere: the severity words of hub/cap/labels.py, per language, on every surface.

The real daemon (``warnhub run``) with a real SQLite file; a control-room author composes a warning in German and
English for the district, a second person approves it, and the pipeline publishes it to the web, push and an HTTP
display board. For each of Minor, Moderate, Severe and Extreme the test reads what a person meets: the console's
warning page (German and English), the citizen warning page (``?lang=en`` too), the CAP Atom feed's summary, the Web
Push payload as a local push service decrypts it (one German, one English subscription), the text the display board
receives, and the kiosk board page. All must say the table's words; before the table the same Minor warning read
"Information" on the page, "Hinweis" on the board and "Advisory" on the kiosk.

The severities go out from least to most severe, so each new warning is the most severe one in force, the one a
board shows.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from lxml import etree

from hub.access import auth
from hub.cap import labels
from hub.geo.geography import geography
from hub.i18n.catalogs import translator
from hub.store.db import Store
from tests.kits.hubproc import REPO, HubProcess, free_port, until, write_config
from tests.kits.pushkit import PushReceiver, TestSubscription
from tests.kits.signedkit import SignedReceiver
from tests.kits.templatekit import review_relative

pytestmark = pytest.mark.asyncio(loop_scope="session")

DISTRICT = "033540000000"
PASSWORD = "Einheitliche-Worte-2026!"
USERS = {"anna": ("author", "approver"), "bert": ("approver",)}
BOARD_SECRET = "labels-board-secret"
ATOM = "{http://www.w3.org/2005/Atom}"
SEVERITIES = ("Minor", "Moderate", "Severe", "Extreme")  # least severe first: each new one is the board's


def config_extra(board_url: str) -> str:
    return f"""
[push]
allow_http_endpoints = true
vapid_key = "var/vapid.pem"
vapid_subject = "mailto:test@warnhub.example"
timeout_s = 2
workers = 1
budget_pushes = 100  # one daemon pushes many warnings to the same subscriptions here (the budget: test_budget.py)

[[boards]]
id = "tafel-kreishaus"
name = "Kreishaus Lüchow"
ars = "{DISTRICT}"
kind = "http"
url = "{board_url}"
secret = "{BOARD_SECRET}"
lines = 4
chars = 40
charset = "utf-8"

[[boards]]
id = "tafel-polski"
name = "Kreishaus Lüchow, polnisch"
ars = "{DISTRICT}"
kind = "http"
url = "{board_url}"
secret = "{BOARD_SECRET}"
lines = 4
chars = 40
charset = "utf-8"
language = "pl"

[[boards]]
id = "tafel-polski-klein"
name = "Bahnhof Lüchow, polnisch, latin-1"
ars = "{DISTRICT}"
kind = "http"
url = "{board_url}"
secret = "{BOARD_SECRET}"
lines = 3
chars = 16
charset = "latin-1"
language = "pl-PL"

[[boards]]
id = "kiosk-kreishaus"
name = "Kreishaus Lüchow, Foyer"
ars = "{DISTRICT}"
kind = "kiosk"

[[boards]]
id = "kiosk-tr"
name = "Kreishaus Lüchow, Foyer (Türkçe)"
ars = "{DISTRICT}"
kind = "kiosk"
language = "tr"

[[boards]]
id = "kiosk-ar"
name = "Kreishaus Lüchow, Foyer (العربية)"
ars = "{DISTRICT}"
kind = "kiosk"
language = "ar"

[[boards]]
id = "kiosk-en"
name = "Kreishaus Lüchow, Foyer (English)"
ars = "{DISTRICT}"
kind = "kiosk"
language = "en-GB"
"""


def prepare(home: Path) -> None:
    """The repository's rules (without the sensor rules: no MQTT here) and two console users."""
    shutil.copytree(REPO / "rules", home / "rules")
    main = home / "rules" / "luechow-dannenberg.toml"
    text = main.read_text(encoding="utf-8")
    main.write_text(text[:text.index("# --- Eigene Sensoren")], encoding="utf-8")
    review_relative(home / "rules")
    (home / "inbox").mkdir()
    store = Store(home / "hub.db")
    try:
        for name, roles in USERS.items():
            auth.add_user(store, name, roles, (DISTRICT,), PASSWORD, actor="test", registry=geography().registry)
    finally:
        store.close()


class Client:
    """The console API with a session cookie and the login's CSRF token."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def login(self, name: str) -> Client:
        async with self.http.post(f"{self.base}/console/login", json={"name": name, "password": PASSWORD}) as r:
            assert r.status == 200, await r.text()
            self.csrf = (await r.json())["csrf"]
        return self

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Accept": "application/json", "X-CSRF-Token": self.csrf}
        async with self.http.request(method, f"{self.base}{path}", json=body, headers=headers) as r:
            return r.status, (await r.json() if r.content_type == "application/json" else await r.text())

    async def close(self) -> None:
        await self.http.close()


@dataclass
class Kit:
    proc: HubProcess
    rx: PushReceiver
    board: SignedReceiver
    home: Path
    anna: Client
    bert: Client
    subs: dict[str, TestSubscription]
    """A push subscription for the district per language."""

    async def get(self, path: str) -> str:
        async with self.anna.http.get(f"{self.proc.base}{path}") as r:
            assert r.status == 200, (path, r.status)
            return await r.text()

    def published(self, thread: str) -> bool:
        with sqlite3.connect(f"file:{self.home / 'hub.db'}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT 1 FROM publications WHERE thread=?", (thread,)).fetchone() is not None

    def thread_of(self, wid: int) -> str:
        with sqlite3.connect(f"file:{self.home / 'hub.db'}?mode=ro", uri=True) as conn:
            return f"w{conn.execute('SELECT store_thread FROM console_warnings WHERE id=?', (wid,)).fetchone()[0]}"

    async def send(self, severity: str) -> str:
        """Compose (anna), submit, approve and send (bert) a warning of ``severity``; its publication thread."""
        headline = f"Stufe {severity} im Landkreis"
        form = {"status": "Actual", "channels": ["push", "web", "boards"], "audience": "public", "template": None,
                "area": {"ars": [DISTRICT], "features": []},
                "content": {"event": "Gefahrstoffaustritt", "category": ["CBRNE"], "severity": severity,
                            "urgency": "Immediate", "certainty": "Observed",
                            "expires": (datetime.now(UTC) + timedelta(hours=3)).isoformat(),
                            "texts": {"de-DE": {"headline": headline, "description": "Austritt im Gewerbegebiet.",
                                                "instruction": "Fenster schließen."},
                                      "en": {"headline": f"Level {severity} in the district",
                                             "description": "A leak in the business park.",
                                             "instruction": "Close the windows."}}}}
        status, body = await self.anna.call("POST", "/console/api/warnings", form)
        assert status == 201, body
        wid = int(body["warning"]["id"])
        assert (await self.anna.call("POST", f"/console/api/warnings/{wid}/submit"))[0] == 200
        status, prev = await self.bert.call("GET", f"/console/api/warnings/{wid}/preview")
        assert status == 200, prev
        w = prev["warning"]
        confirm = {"status": w["status"], "audience": w["audience"], "topic": w["topic"], "channels": w["channels"]}
        status, body = await self.bert.call("POST", f"/console/api/warnings/{wid}/approve",
                                            {"token": prev["token"], "confirm": confirm})
        assert status == 200 and body["warning"]["state"] == "sent", body
        return f"{wid}:{self.thread_of(wid)}"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def kit(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Kit]:
    home = tmp_path_factory.mktemp("labels")
    await asyncio.to_thread(prepare, home)
    async with PushReceiver() as rx, SignedReceiver(BOARD_SECRET, "/board") as board:
        port = free_port()
        proc = HubProcess(write_config(home, port=port, extra=config_extra(board.url)), port, home / "hub.log")
        await asyncio.to_thread(proc.start)
        anna, bert = Client(proc.base), Client(proc.base)
        try:
            await anna.login("anna")
            await bert.login("bert")
            subs: dict[str, TestSubscription] = {}
            async with aiohttp.ClientSession() as http:
                for lang in (*labels.LANGUAGES, "uk"):  # uk: a language the hub does not have
                    sub = rx.subscribe()
                    body = {"subscription": sub.as_json(), "places": [{"ars": DISTRICT}], "languages": [lang],
                            "min_severity": "Minor"}
                    async with http.post(f"{proc.base}/api/v1/subscriptions", json=body) as r:
                        assert r.status == 201, await r.text()
                    subs[lang] = sub
            yield Kit(proc, rx, board, home, anna, bert, subs)
        finally:
            await anna.close()
            await bert.close()
            await asyncio.to_thread(proc.close)


def first(pattern: str, html: str) -> tuple[str, ...]:
    found = re.search(pattern, html, re.S)
    assert found, pattern
    return found.groups()


@pytest.mark.parametrize("severity", SEVERITIES)
async def test_a_warning_carries_the_same_words_on_every_surface(kit: Kit, severity: str) -> None:
    de, en = labels.severity_word(severity, "de"), labels.severity_word(severity, "en")
    wid, thread = (await kit.send(severity)).split(":")
    seen: dict[str, tuple[str, ...]] = {}

    # the console's warning page: German, with English beside it
    page = await kit.get(f"/console/warnings/{wid}")
    seen["console"] = first(rf'<h1><span class="sev sev-{severity}" data-severity="{severity}">(.*?) '
                            r'<span class="en">(.*?)</span></span>', page)

    # the citizen page, in German and in English
    await until(lambda: kit.published(thread), f"the {severity} warning published")
    seen["citizen"] = (first(r'<span class="word">(.*?)</span>', await kit.get(f"/warnungen/{thread}"))[0],
                       first(r'<span class="word">(.*?)</span>', await kit.get(f"/warnungen/{thread}?lang=en"))[0])

    # the Atom feed: the entry's summary names the level in both languages
    feed = etree.fromstring((await kit.get("/feeds/cap.atom")).encode())
    entry = next(e for e in feed.iter(f"{ATOM}entry")
                 if e.find(f"{ATOM}category").get("term") == severity)  # type: ignore[union-attr]
    summary = entry.findtext(f"{ATOM}summary") or ""
    seen["feed"] = tuple(summary.split(" – ")[0].split(" / "))

    # the push payload as the push service decrypts it, one subscription per language
    def pushed(lang: str) -> list[dict[str, Any]]:
        return [r.body for r in kit.rx.received(kit.subs[lang].id) if r.body.get("severity") == severity]
    await until(lambda: all(pushed(lang) for lang in labels.LANGUAGES), f"the {severity} push in every language")
    seen["push"] = (pushed("de")[0]["word"], pushed("en")[0]["word"])

    # the display board's text (German) and the kiosk page (German and English)
    def on_board() -> list[dict[str, Any]]:
        return [g for g in kit.board.got if g["thread"] == thread and g["lines"] and g["board"] == "tafel-kreishaus"]
    await until(on_board, f"the {severity} warning on the board")
    lead = on_board()[-1]["lines"][0]
    kiosk = await kit.get("/boards/kiosk-kreishaus")
    seen["kiosk"] = first(r'<span id="sev-word">(.*?)</span> <span id="sev-en"[^>]*>(.*?)</span>', kiosk)

    assert lead.startswith(de + " ") or lead == de, lead
    assert seen == {surface: (de, en) for surface in seen}, seen


def catalogue(lang: str, message: str) -> str:
    """A text of the ``notify`` catalogue in ``lang`` (read through the hub's own translator, not copied here)."""
    return translator(lang, "notify").gettext(message)


async def test_a_push_speaks_the_subscriptions_language(kit: Kit) -> None:
    """Turkish and Arabic subscriptions get the severity word and every state word in their language (the warning's
    text stays German, marked as such, since the warning carries no Turkish or Arabic), and a link that opens the
    page in it; a subscription in a language the hub lacks (Ukrainian) reads German."""
    _, thread = (await kit.send("Severe")).split(":")

    def pushed(lang: str) -> dict[str, Any] | None:
        got = [r.body for r in kit.rx.received(kit.subs[lang].id) if r.body.get("thread") == thread]
        return got[-1] if got else None
    await until(lambda: all(pushed(lang) for lang in ("tr", "ar", "uk", "de", "en")), "the pushes in five languages")
    tr, ar, uk, de, en = (pushed(lang) or {} for lang in ("tr", "ar", "uk", "de", "en"))
    for lang, doc in (("tr", tr), ("ar", ar)):
        assert doc["uiLang"] == lang and doc["word"] == labels.severity_word("Severe", lang)
        assert doc["labels"]["cancelled"] == catalogue(lang, "Aufgehoben") != "Aufgehoben"
        assert doc["labels"]["expired"] == catalogue(lang, "Abgelaufen") != "Abgelaufen"
        assert doc["labels"]["allClear"] == catalogue(lang, "Entwarnung") != "Entwarnung"
        assert doc["labels"]["exercise"] == catalogue(lang, "ÜBUNG") != "ÜBUNG"
        assert "%(time)s" in doc["labels"]["expiredSince"]
        # the warning has no Turkish or Arabic text: English before German, as every page reads it, marked
        assert doc["lang"] == "en" and doc["translated"] is False
        assert doc["headline"] == "Level Severe in the district"
        assert doc["labels"]["untranslated"] == catalogue(lang, "Diese Warnung gibt es nicht in Ihrer Sprache.")
        assert doc["url"].endswith(f"/warnungen/{thread}?lang={lang}")
    assert (tr["word"], ar["word"]) == ("Tehlike", "خطر")
    assert uk["uiLang"] == "de" and uk["word"] == "Gefahr" and uk["labels"]["cancelled"] == "Aufgehoben"
    assert uk["url"].endswith(f"/warnungen/{thread}") and "untranslated" not in uk["labels"]
    assert de == {**uk, "key": de["key"]}  # Ukrainian reads exactly what German does
    assert en["translated"] is True and en["headline"] == "Level Severe in the district"
    assert en["labels"]["allClear"] == "All clear" and en["url"].endswith("?lang=en")


async def test_a_polish_board_shows_polish_words_within_its_budget(kit: Kit) -> None:
    """A board configured ``language = "pl"`` leads with the Polish severity word and says "do" where German says
    "bis"; a small latin-1 one (3 x 16) keeps its budget and shows the Polish word in its charset."""
    await kit.send("Extreme")

    def lines_of(board: str) -> list[str] | None:
        """The latest Extreme warning the board shows (this one, or an earlier test's sent within the same second)."""
        got = [g["lines"] for g in kit.board.got if g["board"] == board and g["severity"] == "Extreme" and g["lines"]]
        return got[-1] if got else None
    await until(lambda: lines_of("tafel-polski") and lines_of("tafel-polski-klein"), "the warning on Polish boards")
    big, small = lines_of("tafel-polski") or [], lines_of("tafel-polski-klein") or []
    assert big[0] == labels.severity_word("Extreme", "pl") == "Skrajne zagrożenie"
    assert re.fullmatch(r"do (\d{2}\.\d{2}\. )?\d{2}:\d{2}", big[-1]), big
    assert len(big) <= 4 and all(len(line) <= 40 for line in big), big
    assert len(small) <= 3 and all(len(line) <= 16 for line in small), small
    assert small[:2] == ["Skrajne", "zagrozenie"], small  # the word over two lines, ż without its dot in latin-1
    german = lines_of("tafel-kreishaus")
    assert german and german[0] == "Extreme Gefahr" and german[-1].startswith("bis "), german


async def test_the_widget_speaks_the_readers_language(kit: Kit) -> None:
    """``/widget/{ars}?lang=fr`` is French (its fixed texts from the widget catalogue, the severity word from the
    table, the German headline marked as German); without ``?lang=`` the browser's Accept-Language decides, and
    ``?lang=`` beats it; Arabic is right-to-left; the embedding script titles its iframe in the same language."""
    _, thread = (await kit.send("Moderate")).split(":")
    await until(lambda: kit.published(thread), "the Moderate warning published")
    fr = translator("fr", "widget")

    async def widget(query: str = "", accept: str | None = None, path: str = f"/widget/{DISTRICT}") -> str:
        headers = {"Accept-Language": accept} if accept else {}
        async with kit.anna.http.get(f"{kit.proc.base}{path}{query}", headers=headers) as r:
            assert r.status == 200 and r.headers["Vary"] == "Accept-Language", (query, r.status)
            return await r.text()

    page = await widget("?lang=fr", accept="tr")
    assert '<html lang="fr" dir="ltr">' in page
    h1 = first(r"<h1>(.*?)</h1>", page)[0]
    assert h1 == fr.format("Warnungen für %(region)s", region=first(r"<h1>Alertes pour (.*?)</h1>", page)[0])
    assert h1.startswith("Alertes pour ") and fr.gettext("Stand:") == "Mis à jour :" and "Mis à jour :" in page
    assert f'<span class="word">{labels.severity_word("Moderate", "fr")}</span>' in page  # "Avertissement"
    assert re.search(r'lang="en">Level Moderate in the district</a> <span class="small" lang="en">\(English\)',
                     page), "no French text: the English headline (English before German), marked as English"
    turkish = await widget(accept="tr-TR,tr;q=0.9,de;q=0.5")
    assert '<html lang="tr" dir="ltr">' in turkish and "için uyarılar</h1>" in turkish
    assert f'<span class="word">{labels.severity_word("Moderate", "tr")}</span>' in turkish  # "Uyarı"
    arabic = await widget("?lang=ar")
    assert '<html lang="ar" dir="rtl">' in arabic and translator("ar", "widget").gettext("Stand:") in arabic
    german = await widget()
    assert '<html lang="de" dir="ltr">' in german and "<h1>Warnungen für " in german and "Stand:" in german
    assert f'<span class="word">{labels.severity_word("Moderate", "de")}</span>' in german
    script = await widget("?lang=fr", path=f"/widget/{DISTRICT}.js")
    assert 'frame.title = "Alertes en cours pour ' in script


async def test_a_kiosk_speaks_its_language(kit: Kit) -> None:
    """A kiosk board configured Turkish shows the table's Turkish word with the English one beside, the validity and
    its other fixed texts from the notify catalogue, and the warning's German text marked as German; an Arabic
    kiosk is right-to-left; an English one shows English alone (the warning's English text, no second line)."""
    _, thread = (await kit.send("Severe")).split(":")
    await until(lambda: kit.published(thread), "the Severe warning published")
    tr = translator("tr", "notify")
    page = await kit.get("/boards/kiosk-tr")
    assert '<html lang="tr" dir="ltr">' in page
    word, en = first(r'<span id="sev-word">(.*?)</span> <span id="sev-en" class="en" lang="en">(.*?)</span>', page)
    level = next(s for s in SEVERITIES if labels.severity_word(s, "tr") == word)
    assert word != labels.severity_word(level, "de") and en == labels.severity_word(level, "en")
    validity = first(r'<p id="validity" class="validity">(.*?)</p>', page)[0]
    own, english = validity.split(" / ")
    assert re.fullmatch(tr.gettext("gültig bis %(time)s Uhr").replace("%(time)s", r"(\d\d\.\d\d\.\d{4}, )?\d\d:\d\d"),
                        own), validity
    assert english.startswith("valid until ")
    assert re.search(r'<h1 id="headline" lang="en" dir="auto">Level \w+ in the district</h1>', page)  # English, marked
    assert f"<h1>{tr.gettext('Keine Warnungen')}</h1>" in page and tr.gettext("Keine Warnungen") == "Uyarı yok"
    texts = json.loads(first(r'<script type="application/json" id="board-texts">(.*?)</script>', page)[0])
    assert texts["lang"] == "tr" and texts["position"] == tr.gettext("Warnung %(n)s von %(total)s")
    arabic = await kit.get("/boards/kiosk-ar")
    assert '<html lang="ar" dir="rtl">' in arabic and translator("ar", "notify").gettext("Keine Warnungen") in arabic
    english_only = await kit.get("/boards/kiosk-en")
    assert '<html lang="en" dir="ltr">' in english_only and 'id="sev-en"' not in english_only
    assert re.search(r'<h1 id="headline">Level \w+ in the district</h1>', english_only)
    assert "<h1>No warnings</h1>" in english_only and 'class="en"' not in english_only.split("<main>")[1]
