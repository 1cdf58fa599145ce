"""Each authority's console sees and decides only its own (issue 19), end to end: one daemon (``warnhub run``) serving
Lüchow-Dannenberg (LD) and Uelzen (UE) with a real SQLite file.

LD's author writes and submits a warning, LD's approver approves and sends it, a second one waits for approval, and a
sensor draft and a compose template of LD's own wait too. Then each of UE's users (viewer, author, approver, admin)
requests EVERY console route the app registers (enumerated from the app's router, so a route added later is covered
or fails here until this test knows how to fill it): a route naming one of LD's things (warning, draft, incident,
publication, template) answers 403 with the one fixed body, whatever the method; a list answers without any of LD's
things; nothing in a body or header names LD's headline, thread, identifiers, draft or template. UE's refused POSTs
change nothing in the store, and UE's author cannot warn LD's Gemeinden by picking them. A user whose scopes lie in
both districts belongs to neither and gets 403 everywhere. LD's users see all of their own.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
import pytest_asyncio

from hub.access import auth
from hub.decide import decisions
from hub.decide.rules.engine import RuleSet
from hub.geo.geography import geography
from hub.geo.registry import registry
from hub.store.db import Store
from tests.e2e.test_public_routes import registered_routes
from tests.e2e.test_routing import dwd_cap
from tests.kits.consoleclient import ConsoleClient
from tests.kits.districts import HITZACKER, LD, ROOT, UE, UE_SENDER, UELZEN_TOWN, write_two_districts
from tests.kits.hubproc import HubProcess, drop, free_port, subprocess_env, until

pytestmark = pytest.mark.asyncio(loop_scope="session")

PASSWORD = "Zwei-Kreise-eine-Leitstelle-2026!"
LD_USERS = {"lena": ("author", LD), "lars": ("approver", LD)}
UE_USERS = {"uwe": ("viewer", UE), "ute": ("author", UE), "udo": ("approver", UE), "uta": ("admin", UE)}
BOTH = "mia"
"""A user scoped to both Kreise: a user of two authorities belongs to neither."""
HEADLINE = "Deichbruch-Testwarnung-Elbe-LD-4711"
WAITING = "Wartende-Freigabe-LD-0815"
TEMPLATE = "ld-deichbruch"
TEMPLATE_TITLE = "Deichbruch nur Lüchow-Dannenberg"
FORBIDDEN_BODY = {"error": "Kein Zugriff / forbidden"}
OPEN = {"/console/login", "/console/logout", "/console/api/me"}
"""Console routes without content: signing in and out, who is signed in."""


def add_user(config: Path, name: str, roles: tuple[str, ...], scopes: tuple[str, ...]) -> None:
    """``warnhub user add`` as an operator would run it."""
    args = [sys.executable, "-m", "hub.cli", "user", "add", name, "--password-stdin", "--config", str(config)]
    args += [x for r in roles for x in ("--role", r)] + [x for s in scopes for x in ("--scope", s)]
    done = subprocess.run(args, input=PASSWORD + "\n", capture_output=True, text=True, timeout=120,
                          env=subprocess_env())
    assert done.returncode == 0, done.stderr


def prepare(home: Path, port: int) -> Path:
    """Both districts, LD with a compose template folder of its own and a sensor draft; every user; an external
    alert (the whole hub's) in the inbox."""
    (home / "inbox").mkdir()
    own = home / "ld-templates"
    own.mkdir()
    compose = ROOT / "rules" / "templates" / "compose"
    text = (compose / "feuer.toml").read_text(encoding="utf-8")
    text = re.sub(r'^title = ".*"$', f'title = "{TEMPLATE_TITLE}"', text, count=1, flags=re.M)
    (own / f"{TEMPLATE}.toml").write_text(text, encoding="utf-8")
    shutil.copy(compose / "entwarnung-feuer.toml", own / "entwarnung-feuer.toml")
    config = write_two_districts(home, port=port, extra_ld='templates = "ld-templates"')
    store = Store(home / "hub.db")
    try:
        tpl = RuleSet.load(home / "rules-ld", geo=geography()).templates["pegel-steigt"]
        draft = tpl.render({"rate": 42, "window": 60, "value": 564, "unit": "cm", "district": "Lüchow-Dannenberg",
                            "time": "08:00"}, rule="Elbe steigt schnell (Hitzacker)")
        decisions.add_sensor_drafts(store, [decisions.SensorDraft(
            "Elbe steigt schnell (Hitzacker)", "pegel-hitzacker", "fired", datetime.now(UTC), ("web",), ("public",),
            "Pegel Hitzacker: +42 cm in 60 Minuten", draft)])
    finally:
        store.close()
    for name, (role, scope) in {**LD_USERS, **UE_USERS}.items():
        add_user(config, name, (role,), (scope,))
    both = Store(home / "hub.db")  # the CLI refuses a user of two districts: one from an older hub, as it was stored
    try:
        auth.add_user(both, BOTH, ("viewer",), (LD, UE), PASSWORD, actor="test", registry=registry())
    finally:
        both.close()
    drop(home / "inbox", "dwd.xml", dwd_cap("dwd-hubweit-1", severity="Moderate"), settled=True)
    return config


class Client(ConsoleClient):
    """A console session with the test's password."""

    def __init__(self, base: str) -> None:
        super().__init__(base, PASSWORD)


def warning_form(headline: str, ars: str) -> dict[str, Any]:
    return {"status": "Actual", "channels": ["web"], "audience": "public", "area": {"ars": [ars], "features": []},
            "content": {"event": "Deichbruch", "category": ["Met"], "severity": "Severe", "urgency": "Immediate",
                        "certainty": "Observed", "expires": (datetime.now(UTC) + timedelta(hours=3)).isoformat(),
                        "texts": {"de-DE": {"headline": headline, "description": "Der Deich ist gebrochen.",
                                            "instruction": "Gebiet verlassen."}}}}


async def approve(client: Client, wid: int) -> None:
    status, sent = await client.approve(wid)
    assert status == 200, sent


@dataclass
class LdThings:
    """What Lüchow-Dannenberg has, as the test found it."""

    sent: int
    waiting: int
    thread: str
    identifier: str
    incident: int
    publication: str
    published_as: str
    """The publication's CAP identifier (the hub's own, not the console's)."""
    draft: str
    secrets: list[str] = field(default_factory=list)
    """Strings none of UE's answers may contain."""


@dataclass
class Kit:
    proc: HubProcess
    home: Path
    config: Path
    ld: LdThings

    @property
    def base(self) -> str:
        return self.proc.base

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.home / 'hub.db'}?mode=ro", uri=True)

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Everything of LD's a console action could change."""
        with self.db() as conn:
            return {t: conn.execute(q).fetchall() for t, q in (
                ("console_warnings", "SELECT * FROM console_warnings ORDER BY id"),
                ("console_events", "SELECT * FROM console_events ORDER BY id"),
                ("drafts", "SELECT * FROM drafts ORDER BY id"),
                ("publications", "SELECT id, thread, version, district FROM publications ORDER BY id"),
                ("audit", f"SELECT seq, action, subject FROM audit WHERE district = '{LD}' ORDER BY seq"))}


async def make_ld_things(base: str, home: Path) -> LdThings:
    """LD's author writes, submits; LD's approver approves and sends; a second version waits for approval."""
    lena, lars = await Client(base).login("lena"), await Client(base).login("lars")
    try:
        ids = []
        for headline in (HEADLINE, WAITING):
            status, made = await lena.call("POST", "/console/api/warnings", warning_form(headline, HITZACKER))
            assert status == 201, made
            wid = made["warning"]["id"]
            status, body = await lena.call("POST", f"/console/api/warnings/{wid}/submit")
            assert status == 200, body
            ids.append(wid)
        await approve(lars, ids[0])
    finally:
        await lena.close()
        await lars.close()

    def published() -> tuple[Any, ...] | None:
        with sqlite3.connect(f"file:{home / 'hub.db'}?mode=ro", uri=True) as conn:
            return conn.execute(
                "SELECT c.thread, c.cap_identifier, c.store_thread, p.thread, p.identifier FROM console_warnings c"
                " JOIN publications p ON p.source_alert = c.alert_id WHERE c.id = ?", (ids[0],)).fetchone()

    thread, identifier, incident, publication, published_as = await until(published, "LD's warning published")
    with sqlite3.connect(f"file:{home / 'hub.db'}?mode=ro", uri=True) as conn:
        draft, content = conn.execute("SELECT key, draft FROM drafts WHERE state = 'pending'").fetchone()
        waiting_thread = conn.execute("SELECT thread FROM console_warnings WHERE id = ?", (ids[1],)).fetchone()[0]
    draft_headline = json.loads(content)["texts"]["de-DE"]["headline"]
    secrets = [HEADLINE, WAITING, thread, waiting_thread, identifier, publication, published_as, draft, draft_headline,
               TEMPLATE, TEMPLATE_TITLE]
    return LdThings(ids[0], ids[1], thread, identifier, incident, publication, published_as, draft, secrets)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def kit(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Kit]:
    home = tmp_path_factory.mktemp("districts-console")
    port = free_port()
    config = await asyncio.to_thread(prepare, home, port)
    proc = HubProcess(config, port, home / "hub.log")
    await asyncio.to_thread(proc.start)
    try:
        yield Kit(proc, home, config, await make_ld_things(proc.base, home))
    finally:
        await asyncio.to_thread(proc.close)


# -- every console route, from the app's router ----------------------------------------------------------------------


def console_routes(config: Path, scratch: Path) -> list[tuple[str, str]]:
    """(method, path pattern) of every GET and POST route under /console of the app the daemon builds."""
    out = []
    for method, resource in registered_routes(config, scratch):
        info = resource.get_info()
        pattern = info.get("path") or info.get("formatter") or ""
        if method in ("GET", "POST") and (pattern == "/console" or pattern.startswith("/console/")) \
                and pattern not in OPEN:
            out.append((method, pattern))
    return sorted(set(out))


def _published(kit: Kit, thread: str, version: int) -> bool:
    with kit.db() as conn:
        return conn.execute("SELECT 1 FROM publications WHERE thread = ? AND version = ?",
                            (thread, version)).fetchone() is not None


def fill(pattern: str, ld: LdThings) -> list[str] | None:
    """The URLs of a route pattern that name LD's things (None: the route names none of LD's things: a list, or
    a region's boundary). A parameter this test does not know fails it: a new route must be added here."""
    names = re.findall(r"\{(\w+)\}", pattern)
    if not names:
        return None
    if names == ["ars"]:  # region boundaries: public geodata (BKG), nothing of LD's authority
        return None
    values: dict[str, list[str]] = {
        "id": [str(ld.sent), str(ld.waiting)] if "/warnings/" in pattern else [str(ld.incident)],
        "thread": [ld.publication], "name": [TEMPLATE], "key": [ld.draft]}
    assert len(names) == 1 and names[0] in values, f"route {pattern}: fill its parameters in this test"
    return [pattern.replace("{" + names[0] + "}", v) for v in values[names[0]]]


def list_urls(method: str, pattern: str, ld: LdThings) -> list[tuple[str, Any]]:
    """The requests of a route without LD's things in its path: plain, and where it takes LD's things another way
    (compose page query, the create body) with them."""
    path = re.sub(r"\{ars\}", HITZACKER, pattern)
    if method == "GET" and pattern == "/console/compose":
        return [(path, None), (f"{path}?edit={ld.waiting}", None),
                (f"{path}?from_draft={quote(ld.draft, safe='')}", None), (f"{path}?template={TEMPLATE}", None)]
    if method == "POST" and pattern == "/console/api/warnings":
        return [(path, {**warning_form("UE eigene", UELZEN_TOWN), "from_draft": ld.draft}),
                (path, {**warning_form("UE eigene", UELZEN_TOWN), "template": TEMPLATE}),
                (path, warning_form("UE in LD", HITZACKER))]
    return [(path, {} if method == "POST" else None)]


def named(query_or_body: str, ld: LdThings) -> bool:
    """Whether a request names one of LD's things outside its path (a query or body): then 403 is required."""
    return any(s in unquote(query_or_body) for s in (str(ld.waiting), ld.draft, TEMPLATE))


def leaked(text: str, ld: LdThings) -> list[str]:
    """Where LD's strings stand in ``text`` as a whole (``w2`` not in ``w23``)."""
    found = [m for s in ld.secrets if (m := re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", text))]
    return [text[max(0, m.start() - 80):m.end() + 40] for m in found]  # each with what surrounds it


async def test_a_user_of_one_district_gets_nothing_of_the_other_on_any_console_route(
        kit: Kit, tmp_path: Path) -> None:
    ld = kit.ld
    routes = console_routes(kit.config, tmp_path)
    assert ("GET", "/console/api/warnings/{id}") in routes and ("POST", "/console/api/warnings/{id}/send") in routes
    assert ("GET", "/console/incidents/{id}") in routes and ("GET", "/console/api/publications/{thread}/status") \
        in routes
    before = kit.snapshot()
    for name in UE_USERS:
        client = await Client(kit.base).login(name)
        try:
            for method, pattern in routes:
                urls = fill(pattern, ld)
                if urls is not None:
                    for url in urls:
                        status, text, headers = await client.raw(method, url, {} if method == "POST" else None)
                        assert status == 403, (name, method, url, status, text[:300])
                        assert json.loads(text) == FORBIDDEN_BODY, (name, method, url, text[:300])
                        assert not leaked(headers, ld), (name, method, url, headers)
                    continue
                for url, body in list_urls(method, pattern, ld):
                    status, text, headers = await client.raw(method, url, body)
                    assert not leaked(text + headers, ld), (name, method, url, status, leaked(text + headers, ld))
                    if method == "POST" and body and (body.get("from_draft") or body.get("template")):
                        assert status == 403 and json.loads(text) == FORBIDDEN_BODY, (name, url, status, text)
                    elif method == "POST" and body and body["area"]["ars"] == [HITZACKER]:
                        assert status == 403, (name, url, status, text)  # outside the user's scope (or no compose)
                    elif "?" in url and named(url.split("?", 1)[1], ld) and status != 403:
                        raise AssertionError((name, url, status, text[:300]))
        finally:
            await client.close()
    assert kit.snapshot() == before, "a refused request changed LD's things"
    with kit.db() as conn:  # what UE's users did do is in UE's audit chain (their exercise tokens)
        issued = conn.execute("SELECT DISTINCT district FROM audit WHERE action = 'exercise_token.issue'").fetchall()
    assert issued == [(UE,)]


async def test_lists_show_ue_only_its_own_and_the_hubs_external_alerts(kit: Kit) -> None:
    client = await Client(kit.base).login("udo")
    try:
        status, inbox = await client.call("GET", "/console/api/inbox")
        assert status == 200
        data = inbox["data"]
        assert data["sent"] == [] and data["awaiting"] == [] and data["mine"] == [] and data["drafts"] == []
        status, listed = await client.call("GET", "/console/api/warnings")
        assert status == 200 and listed["warnings"] == []
        status, alerts = await client.call("GET", "/console/api/alerts?all=1")
        assert status == 200 and alerts["district"] == UE
        identifiers = {t["current_identifier"] for t in alerts["threads"]}
        assert "dwd-hubweit-1" in identifiers and kit.ld.identifier not in identifiers  # the hub's, not LD's own
        status, page = await client.call("GET", "/console/")
        assert status == 200 and "Landkreis Uelzen" in page and "#00643c" in page
    finally:
        await client.close()


async def test_a_user_of_both_districts_belongs_to_neither(kit: Kit) -> None:
    client = await Client(kit.base).login(BOTH)
    try:
        for path in ("/console/", "/console/api/inbox", "/console/api/alerts", "/console/incidents",
                     f"/console/api/warnings/{kit.ld.sent}"):
            status, body = await client.call("GET", path)
            assert (status, body) == (403, FORBIDDEN_BODY), (path, status, body)
        status, me = await client.call("GET", "/console/api/me")
        assert status == 200, me
    finally:
        await client.close()


async def test_ld_sees_and_decides_its_own(kit: Kit) -> None:
    ld = kit.ld
    client = await Client(kit.base).login("lars")
    try:
        status, page = await client.call("GET", f"/console/warnings/{ld.sent}")
        assert status == 200 and HEADLINE in page and "Landkreis Lüchow-Dannenberg" in page
        status, listed = await client.call("GET", "/console/api/warnings")
        assert {w["thread"] for w in listed["warnings"]} >= {ld.thread}
        status, inbox = await client.call("GET", "/console/api/inbox")
        assert [w["id"] for w in inbox["data"]["awaiting"]] == [ld.waiting]
        assert ld.draft in {d["key"] for d in inbox["data"]["drafts"]}
        status, delivery = await client.call("GET", f"/console/api/publications/{ld.publication}/status")
        assert status == 200 and delivery["versions"][0]["identifier"] == ld.published_as
        status, incident = await client.call("GET", f"/console/api/alerts/{ld.incident}")
        assert status == 200 and incident["thread"]["current_identifier"] == ld.identifier
        status, templates = await client.call("GET", "/console/api/templates")
        assert TEMPLATE in {t["name"] for t in templates["templates"]}
        status, compose = await client.call("GET", f"/console/compose?from_draft={quote(ld.draft, safe='')}")
        assert status == 200, compose
    finally:
        await client.close()
    with kit.db() as conn:
        rows = conn.execute("SELECT DISTINCT district FROM console_warnings").fetchall()
        audited = conn.execute("SELECT DISTINCT district FROM audit WHERE action IN"
                               " ('console.create', 'console.submit', 'console.approve', 'console.send')").fetchall()
    assert rows == [(LD,)] and audited == [(LD,)]


async def test_ue_sends_its_own_in_its_own_name_and_ld_sees_none_of_it(kit: Kit) -> None:
    """UE's author and approver send a warning of UE's (its sender, its district); LD's lists do not show it and
    LD's approver is refused on it."""
    ute, udo, lars = [await Client(kit.base).login(n) for n in ("ute", "udo", "lars")]
    try:
        status, made = await ute.call("POST", "/console/api/warnings", warning_form("Uelzen-eigene-Warnung-42", UE))
        assert status == 201, made
        wid = made["warning"]["id"]
        assert (await ute.call("POST", f"/console/api/warnings/{wid}/submit"))[0] == 200
        status, refused = await lars.call("POST", f"/console/api/warnings/{wid}/approve", {})
        assert (status, refused) == (403, FORBIDDEN_BODY)
        await approve(udo, wid)
        status, listed = await lars.call("GET", "/console/api/warnings")
        assert status == 200 and wid not in {w["id"] for w in listed["warnings"]}
        status, page = await lars.call("GET", "/console/")
        assert status == 200 and "Uelzen-eigene-Warnung-42" not in page
    finally:
        for c in (ute, udo, lars):
            await c.close()
    with kit.db() as conn:
        district, alert_id = conn.execute("SELECT district, alert_id FROM console_warnings WHERE id = ?",
                                          (wid,)).fetchone()
        sender = conn.execute("SELECT sender FROM alerts WHERE id = ?", (alert_id,)).fetchone()[0]
        thread, incident = conn.execute("SELECT thread, store_thread FROM console_warnings WHERE id = ?",
                                        (wid,)).fetchone()
    assert (district, sender) == (UE, UE_SENDER)
    # the night the console is down, `warnhub cancel` ends it with UE's own config, in UE's name
    done = subprocess.run([sys.executable, "-m", "hub.cli", "cancel", thread, "--reason",
                           "Deich hält, Gefahr vorüber (Pegel fällt)", "--config", str(kit.config)],
                          capture_output=True, text=True, timeout=120,
                          env=subprocess_env(), cwd=str(kit.home))
    assert done.returncode == 0, done.stderr
    with kit.db() as conn:
        ended = conn.execute("SELECT district, msg_type, alert_id FROM console_warnings WHERE thread = ?"
                             " ORDER BY version DESC LIMIT 1", (thread,)).fetchone()
        cancel_sender = conn.execute("SELECT sender FROM alerts WHERE id = ?", (ended[2],)).fetchone()[0]
    assert ended[:2] == (UE, "Cancel") and cancel_sender == UE_SENDER
    await until(lambda: _published(kit, f"w{incident}-uelzen", 2), "UE's cancel published in UE's thread")
