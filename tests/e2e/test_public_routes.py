"""Nothing that is not a public warning leaves through a public route (issue 13, point 1).

Invariant protected: exercise never public; nor an unrouted or suppressed alert, nor a CAP Restricted or Private
message. The real daemon (``warnhub run``, tests/hubproc.py) with the repository's rules stores:

- a console exercise, sent by two operators through the console API and published to the exercise recipients (an
  exercise webhook receives it, and the training-room kiosk board shows it with its token);
- a DWD-style alert with scope Restricted and one with scope Private, which the DWD rule publishes;
- an alert no rule matches (unrouted) and a DWD alert with status Test (suppressed);
- one DWD warning, Actual and Public: the positive control, which must appear on the public pages.

Then every route the web app registers is walked without a session — the routes come from the router of the app
:func:`hub.web.app.make_app` builds for this config, not from a list in this file — with every path parameter filled
by the stored items' thread ids, publication threads, identifiers, board ids and region keys, GET and HEAD, with a
few queries (``?all=1``, ``?ars=``, ``?board=``). Streams are read up to their first event. No answer (body or
header) may contain an identifier, headline, text or area description of the sensitive items (an identifier the
request itself carried may come back, as in a redirect to the sign-in, but nothing else of that item); the positive
control must be found on the start page, the JSON API, the feed, the stream, the widget, the warning page and the kiosk.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import shutil
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import product
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from hub.access import auth
from hub.app import basic_services
from hub.config.load import load
from hub.geo.geography import geography
from hub.publish.index import SubscriptionIndex
from hub.store.db import AsyncStore, Store
from hub.web.app import make_app
from hub.web.live import Broadcaster
from tests.kits.hubproc import REPO, HubProcess, drop, free_port, write_config
from tests.kits.hubproc import until as _until
from tests.kits.signedkit import SignedReceiver

pytestmark = pytest.mark.asyncio(loop_scope="module")

DISTRICT = "033540000000"  # Landkreis Lüchow-Dannenberg
DANNENBERG = "033545406004"
PASSWORD = "Oeffentlich-nur-Warnungen-2026"
HOOK_SECRET = "hook-secret-for-public-routes"
TRAINING_TOKEN = "Schulungstafel-Schluessel-7f3a9c"
WAIT = 60


async def until(check: Any, what: str) -> Any:
    return await _until(check, what, WAIT)


def config_extra(hook_url: str) -> str:
    return f"""
[console]
single_person_extreme = false

[[boards]]
id = "kiosk-rathaus"
name = "Rathaus Lüchow, Foyer"
ars = "{DISTRICT}"
kind = "kiosk"

[[boards]]
id = "kiosk-schulung"
name = "Schulungsraum der Leitstelle"
ars = "{DISTRICT}"
kind = "kiosk"
exercise = true
token = "{TRAINING_TOKEN}"

[[webhooks]]
id = "lokalzeitung"
url = "{hook_url}"
format = "json"
secret = "{HOOK_SECRET}"

[[webhooks]]
id = "uebungsauswertung"
url = "{hook_url}"
format = "json"
secret = "{HOOK_SECRET}"
exercise = true
"""


def dwd(identifier: str, *, headline: str, area: str, description: str, scope: str = "Public",
        status: str = "Actual", extra: str = "") -> bytes:
    """A DWD-style Severe warning for the Kreis cell of Lüchow-Dannenberg, with texts of its own."""
    sent = datetime.now(UTC).replace(microsecond=0)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>opendata@dwd.de</sender><sent>{sent.isoformat()}</sent>
  <status>{status}</status><msgType>Alert</msgType><scope>{scope}</scope>{extra}
  <info>
    <language>de-DE</language><category>Met</category><event>STURMBÖEN</event>
    <urgency>Immediate</urgency><severity>Severe</severity><certainty>Likely</certainty>
    <eventCode><valueName>II</valueName><value>52</value></eventCode>
    <expires>{(sent + timedelta(hours=6)).isoformat()}</expires>
    <headline>{headline}</headline>
    <description>{description}</description>
    <area><areaDesc>{area}</areaDesc>
      <geocode><valueName>WARNCELLID</valueName><value>103354000</value></geocode></area>
  </info>
</alert>""".encode()


@dataclass
class Item:
    """A stored item and the strings that name it (identifiers, headline, texts, area)."""

    key: str
    identifier: str
    words: list[str]
    publications: list[str] = field(default_factory=list)
    """Identifiers of the hub's publications of it."""


INCOMING = {
    "restricted": ("restricted-zeta-4711", "Geschlossene Lage Zeta: Leitstellenfunk", "Sperrbereich Zeta-Nord",
                   "Nur fuer Einsatzkraefte: Lagebesprechung Zeta.", "Restricted", "Actual",
                   "<restriction>Nur BOS / emergency services only</restriction>"),
    "private": ("private-omega-0815", "Persoenliche Nachricht Omega an den Krisenstab", "Krisenstabsraum Omega",
                "Vertraulich: Rufbereitschaft Omega.", "Private", "Actual",
                "<addresses>krisenstab@lk-dan.example</addresses>"),
    "suppressed": ("testlauf-sigma-0042", "Testlauf Sigma der Sirenensteuerung", "Testgebiet Sigma-West",
                   "Technischer Test Sigma, keine Gefahr.", "Public", "Test", ""),
    "control": ("kontrolle-alpha-2026", "Amtliche Kontrollwarnung ALPHA vor STURMBOEEN", "Kreis Luechow-Dannenberg",
                "Sturmboeen der Kontrollwarnung Alpha.", "Public", "Actual", ""),
}
UNROUTED = ("fremd-kappa-9911", "Unbekannter Absender Kappa meldet Stoerung", "Ortsteil Kappa-Sued",
            "Meldung Kappa ohne Regel.")
EXERCISE = ("Uebungslage Delta: Chlorgas am Hafen", "Delta-Uebung: Fenster schliessen (nur Uebung).",
            "Delta-Uebung: Dies ist eine Stabsrahmenuebung.")


def unrouted_cap() -> bytes:
    identifier, headline, area, description = UNROUTED
    sent = datetime.now(UTC).replace(microsecond=0)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>test@warnhub.example</sender><sent>{sent.isoformat()}</sent>
  <status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
  <info><language>de-DE</language><category>Safety</category><event>Test</event><urgency>Immediate</urgency>
    <severity>Moderate</severity><certainty>Observed</certainty>
    <expires>{(sent + timedelta(hours=6)).isoformat()}</expires>
    <headline>{headline}</headline><description>{description}</description>
    <area><areaDesc>{area}</areaDesc></area></info>
</alert>""".encode()


def prepare(home: Path) -> None:
    (home / "inbox").mkdir()
    shutil.copytree(REPO / "rules", home / "rules")
    main = home / "rules" / "luechow-dannenberg.toml"  # without the sensor rules: no MQTT sensors here
    text = main.read_text(encoding="utf-8")
    text = text[:text.index("# --- Eigene Sensoren")]
    # the DWD Severe rule also to webhooks, so a public webhook shows where Restricted/Private messages must not go
    severe = 'then.publish = ["push", "web", "boards"]\nthen.push_on_update'
    assert text.count(severe) == 1
    main.write_text(text.replace(severe, severe.replace('"boards"]', '"boards", "webhook"]')), encoding="utf-8")
    store = Store(home / "hub.db")
    try:
        for name, roles in (("autorin", ("author",)), ("freigeber", ("approver",))):
            auth.add_user(store, name, roles, (DISTRICT,), PASSWORD, actor="test", registry=geography().registry)
    finally:
        store.close()
    for key, (identifier, headline, area, description, scope, status, extra) in INCOMING.items():
        drop(home / "inbox", f"{key}.xml", dwd(identifier, headline=headline, area=area, description=description,
                                              scope=scope, status=status, extra=extra), settled=True)
    drop(home / "inbox", "unrouted.xml", unrouted_cap(), settled=True)


def query(home: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{home / 'hub.db'}?mode=ro", uri=True) as conn:
        return conn.execute(sql, args).fetchall()


class Session:
    """A console user's session (cookie + CSRF token), as a script would use the console API."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def login(self, name: str) -> Session:
        async with self.http.post(f"{self.base}/console/login", json={"name": name, "password": PASSWORD}) as r:
            assert r.status == 200, await r.text()
            self.csrf = (await r.json())["csrf"]
        return self

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Accept": "application/json", "X-CSRF-Token": self.csrf}
        async with self.http.request(method, self.base + path, json=body, headers=headers) as r:
            data = await r.json()
            assert r.status in (200, 201), (path, r.status, data)
            return data


async def send_exercise(base: str) -> int:
    """The author writes and submits an exercise for the district; the approver confirms and sends it."""
    headline, instruction, description = EXERCISE
    form = {"status": "Exercise", "channels": ["web", "boards", "webhook"], "audience": "public", "template": None,
            "area": {"ars": [DISTRICT], "features": []},
            "content": {"event": "Gefahrstoff", "category": ["CBRNE"], "severity": "Severe", "urgency": "Immediate",
                        "certainty": "Observed", "expires": (datetime.now(UTC) + timedelta(hours=3)).isoformat(),
                        "texts": {"de-DE": {"headline": headline, "description": description,
                                            "instruction": instruction}}}}
    author, approver = Session(base), Session(base)
    try:
        await author.login("autorin")
        await approver.login("freigeber")
        wid = (await author.call("POST", "/console/api/warnings", form))["warning"]["id"]
        await author.call("POST", f"/console/api/warnings/{wid}/submit")
        preview = await approver.call("GET", f"/console/api/warnings/{wid}/preview")
        w = preview["warning"]
        sent = await approver.call("POST", f"/console/api/warnings/{wid}/approve", {
            "token": preview["token"], "confirm": {"status": w["status"], "audience": w["audience"],
                                                   "topic": w["topic"], "channels": w["channels"]}})
        assert sent["warning"]["state"] == "sent", sent
        return int(wid)
    finally:
        await author.http.close()
        await approver.http.close()



@dataclass
class Stored:
    proc: HubProcess
    home: Path
    config: Path
    items: dict[str, Item]
    console_warning: int
    hooks: SignedReceiver


def publications_of(home: Path, identifier: str) -> list[tuple[str, str, str]]:
    """(thread, identifier, status) of the hub's publications of a stored source alert."""
    return [tuple(r) for r in query(home, "SELECT p.thread, p.identifier, p.status FROM publications p JOIN alerts a"
                                          " ON a.id = p.source_alert WHERE a.identifier=?", identifier)]


def decided(home: Path, identifier: str) -> bool:
    return bool(query(home, "SELECT 1 FROM decisions d JOIN alerts a ON a.id = d.alert_id WHERE a.identifier=?",
                      identifier))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stored(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stored]:
    home = tmp_path_factory.mktemp("public-routes")
    await asyncio.to_thread(prepare, home)
    async with SignedReceiver(HOOK_SECRET) as hooks:
        port = free_port()
        config = write_config(home, port=port, extra=config_extra(hooks.url))
        text = config.read_text(encoding="utf-8")
        text = text.replace("[web]\n", "[web]\nnina_per_address_per_minute = 0  # the walk asks more than any client\n")
        config.write_text(text.replace('signature_policy = "verify"', 'signature_policy = "verify"\nworkers = 1'),
                          encoding="utf-8")
        proc = HubProcess(config, port, home / "hub.log")
        await asyncio.to_thread(proc.start)
        try:
            wid = await send_exercise(proc.base)
            got = await until(lambda: [g for g in hooks.got if g.get("status") == "Exercise"],
                              "the exercise at the exercise webhook")
            assert not hooks.bad, got
            items = {}
            for key, (identifier, headline, area, description, *_rest) in INCOMING.items():
                items[key] = Item(key, identifier, [identifier, headline, area, description])
            items["unrouted"] = Item("unrouted", UNROUTED[0], list(UNROUTED))
            for key in ("restricted", "private", "control"):  # the DWD rule publishes them ...
                pubs = await until(lambda k=key: publications_of(home, items[k].identifier), f"{key} published")
                items[key].publications = [p[1] for p in pubs]
            for key in ("suppressed", "unrouted"):  # ... and decides about the others
                await until(lambda k=key: decided(home, items[k].identifier), f"the decision about {key}")
                assert publications_of(home, items[key].identifier) == []
            exercise = await until(lambda: query(home, "SELECT identifier FROM publications WHERE status='Exercise'"),
                                   "the exercise's publication")
            items["exercise"] = Item("exercise", exercise[0][0], [*EXERCISE, exercise[0][0]],
                                     [r[0] for r in exercise])
            yield Stored(proc, home, config, items, wid, hooks)
        finally:
            await asyncio.to_thread(proc.close)


# -- the routes, from the app itself ------------------------------------------------------------------------------


def registered_routes(config: Path, scratch: Path) -> list[tuple[str, web.AbstractResource]]:
    """(method, resource) of every route of the app :func:`make_app` builds for this config, as the daemon does
    (services with geography, stream broadcaster and subscription index; its own empty store file)."""
    loaded = load(config)
    geo = geography() if not loaded.cfg.geo.boundaries else loaded.geography()
    hub = dataclasses.replace(basic_services(loaded, AsyncStore(Store(scratch / "routes.db"))), geo=geo,
                              broadcaster=Broadcaster(reg=geo.registry), index=SubscriptionIndex(geo=geo),
                              vapid_public_key="x")
    try:
        app = make_app(hub)
        return [(route.method, route.resource) for route in app.router.routes() if route.resource is not None]
    finally:
        hub.store.close()


_PARAM = re.compile(r"\{(\w+)\}")


def urls_of(resource: web.AbstractResource, values: list[str]) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Every URL of a resource, with the values put into it: a plain path; a pattern with each parameter filled by
    each value; a static folder with each of its files."""
    info = resource.get_info()
    if "path" in info:
        yield info["path"], ()
    elif "formatter" in info:
        names = _PARAM.findall(info["formatter"])
        for combo in product(values, repeat=len(names)):
            url = info["formatter"]
            for name, value in zip(names, combo, strict=True):
                url = url.replace("{" + name + "}", value, 1)
            yield url, combo
    elif "directory" in info:
        folder = Path(info["directory"])
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            yield info["prefix"].rstrip("/") + "/" + path.relative_to(folder).as_posix(), ()
    else:
        raise AssertionError(f"a route of a kind this walk does not know: {info}")


_FIRST_EVENT = re.compile(rb"event:[^\n]*\ndata:[^\n]*\n\n")


async def fetch(base: str, method: str, path: str) -> tuple[int, bytes]:
    """Status and the whole answer (head and body) of one request, as raw HTTP/1.0 (no chunking, and what a server
    sends after the head of a HEAD answer is read too); a stream is read to the end of its first event, at most
    16 MB or 10 s."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"{method} {path} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode())
        await writer.drain()
        answer = b""
        try:
            async with asyncio.timeout(10):
                while len(answer) < 16 << 20:
                    chunk = await reader.read(65536)
                    if not chunk:
                        break
                    answer += chunk
                    if b"text/event-stream" in answer.split(b"\r\n\r\n", 1)[0] and _FIRST_EVENT.search(answer):
                        break
        except TimeoutError:
            pass
    finally:
        writer.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, answer


def values_for(stored: Stored) -> list[str]:
    """What path parameters are filled with: every stored thread id, console warning id and publication thread and
    identifier, the sensitive items' source identifiers, the board ids, region keys."""
    home = stored.home
    ids = [str(r[0]) for r in query(home, "SELECT id FROM threads")]
    threads = [r[0] for r in query(home, "SELECT DISTINCT thread FROM publications")]
    identifiers = [r[0] for r in query(home, "SELECT identifier FROM publications")]
    nina_ids = [f"warnhub.{DISTRICT}.{t}" for t in threads]  # the NINA API's ids (hub.publish.nina_shape)
    return sorted({*ids, str(stored.console_warning), *threads, *identifiers, *nina_ids,
                   *(i.identifier for i in stored.items.values()), "kiosk-rathaus", "kiosk-schulung", DISTRICT,
                   DANNENBERG})


QUERIES = ("", "?all=1", f"?ars={DISTRICT}", "?board=kiosk-schulung", "?board=kiosk-rathaus",
           "?lang=en&text=de-DE&limit=500")


async def test_no_public_route_shows_anything_but_public_warnings(stored: Stored, tmp_path: Path) -> None:
    routes = registered_routes(stored.config, tmp_path)
    sensitive = {w: key for key, item in stored.items.items() if key != "control"
                 for w in (*item.words, *item.publications)}
    control = stored.items["control"]
    values = values_for(stored)
    leaks: list[str] = []
    found: dict[str, set[str]] = {}
    asked = 0
    for method, resource in routes:
        if method not in ("GET", "HEAD"):
            continue
        for path, used in urls_of(resource, values):
            queries = QUERIES if "{" not in resource.canonical and "/static/" not in path else ("", QUERIES[1])
            for q, verb in product(queries, ("GET", "HEAD") if method == "GET" else ("HEAD",)):
                status, body = await fetch(stored.proc.base, verb, path + q)
                asked += 1
                text = body.decode("utf-8", "replace")
                leaks += [f"{verb} {path}{q} ({status}): {key}: {word!r}" for word, key in sensitive.items()
                          if word in text and not any(word in v for v in used)]  # not an echo of the request
                if control.words[1] in text or control.publications[0] in text:
                    found.setdefault(resource.canonical, set()).add(path + q)
    assert not leaks, "\n".join(leaks[:40])
    # the walk reached the places where warnings are: the control is there (so the walk could find a leak)
    wanted = {"/", "/start.json", "/api/v1/warnings", "/api/v1/warnings/{thread}", "/api/v1/warnings/{thread}/cap.xml",
              "/api/v1/publications/{identifier}.xml", "/api/v1/stream", "/feeds/cap.atom", "/feeds/{ars}.atom",
              "/boards/{id}", "/warnungen/{thread}", "/widget/{ars}", "/api31/mapData.json",
              "/api31/dashboard/{ars}.json", "/api31/warnings/{id}.json", "/api31/warnings/{id}.geojson"}
    assert wanted <= set(found), sorted(wanted - set(found))
    assert asked > 500, asked


async def test_the_exercise_is_where_it_belongs(stored: Stored) -> None:
    """The positive side of the walk: the exercise reached its recipients, and the training-room board shows it
    to whoever holds its token (and the stored items are there for operators, behind the sign-in)."""
    exercise = stored.items["exercise"]
    async with aiohttp.ClientSession() as http:
        url = f"{stored.proc.base}/boards/kiosk-schulung?token={TRAINING_TOKEN}"
        async with http.get(url) as resp:
            assert resp.status == 200 and EXERCISE[0] in await resp.text()
        status, body = await fetch(stored.proc.base, "GET",
                                   f"/api/v1/stream?board=kiosk-schulung&token={TRAINING_TOKEN}")
        assert status == 200 and exercise.identifier in body.decode()
        async with http.get(f"{stored.proc.base}/console/api/alerts?all=1") as resp:
            assert resp.status == 401
    session = await Session(stored.proc.base).login("freigeber")
    try:
        listed = json.dumps(await session.call("GET", "/console/api/alerts?all=1&limit=500"), ensure_ascii=False)
        for key in ("restricted", "private", "unrouted", "suppressed", "control"):
            assert stored.items[key].identifier in listed, key
    finally:
        await session.http.close()


async def test_operator_alert_list_is_paged(stored: Stored) -> None:
    """``/console/api/alerts`` pages with ``limit`` and ``cursor``: every stored thread once, newest first; a bad
    ``limit`` or ``cursor`` is a clear 400 (German / English)."""
    every = [r[0] for r in query(stored.home, "SELECT id FROM threads ORDER BY last_sent DESC, id DESC")]
    session = await Session(stored.proc.base).login("freigeber")
    try:
        seen, cursor = [], None
        while True:
            page = await session.call("GET", "/console/api/alerts?all=1&limit=2" + (f"&cursor={cursor}" if cursor
                                                                                    else ""))
            assert len(page["threads"]) <= 2
            seen += [t["id"] for t in page["threads"]]
            cursor = page["next"]
            if cursor is None:
                break
        assert seen == every and len(every) >= 5
        for bad in ("limit=0", "limit=501", "limit=viele", "cursor=kaputt", "cursor=WzEsMl0"):
            async with session.http.get(f"{stored.proc.base}/console/api/alerts?{bad}") as resp:
                body = await resp.json()
                assert resp.status == 400 and " / " in body["message"], (bad, body)
    finally:
        await session.http.close()


async def test_restricted_and_private_messages_reach_no_public_channel(stored: Stored) -> None:
    """A rule that publishes a CAP Restricted or Private message (the DWD rule does, for the public) still sends it
    through no public channel: no push, board or public webhook row is written for it, while the Public control
    reaches the public webhook (the positive event the negative assertion waits for)."""
    control = stored.items["control"]
    await until(lambda: [g for g in stored.hooks.got if control.words[1] in json.dumps(g, ensure_ascii=False)],
                "the control at the public webhook")
    for key in ("restricted", "private"):
        marks = ",".join("?" * len(stored.items[key].publications))
        rows = query(stored.home, "SELECT o.channel, o.recipient FROM outbox o JOIN publications p"
                                  f" ON p.id = o.publication_id WHERE p.identifier IN ({marks})",
                     *stored.items[key].publications)
        assert rows == [], (key, rows)
        texts = stored.items[key].words
        assert not [g for g in stored.hooks.got if texts[1] in json.dumps(g, ensure_ascii=False)], key
    rows = query(stored.home, "SELECT o.recipient FROM outbox o JOIN publications p ON p.id = o.publication_id"
                              " WHERE p.identifier=? AND o.channel='webhooks'", control.publications[0])
    assert ("lokalzeitung",) in [tuple(r) for r in rows]
