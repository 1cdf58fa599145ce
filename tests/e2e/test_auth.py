"""Console access: users and passwords, the ``warnhub user`` CLI, scope checks on real geometry, sessions, CSRF and
login throttling, against a real SQLite file and a real aiohttp server."""

from __future__ import annotations

import datetime as dt
import getpass
import io
import json
import re
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, TCPConnector, web
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry
from yarl import URL

from hub.access import auth, scopes
from hub.cli.main import main as cli_main
from hub.errors import AuthError
from hub.geo.geography import Geography, geography
from hub.geo.projection import GERMANY
from hub.geo.registry import registry
from hub.store.db import AsyncStore, Store
from hub.web.auth import CONSOLE_HEADERS, USER_KEY, require, requires, setup_auth
from hub.web.client import TRUSTED_PROXIES_KEY, parse_networks
from tests.kits.hubproc import REPO, subprocess_env

PASSWORD = "Deichbruch-Elbe-2024"
KREIS = "033540000000"  # Landkreis Lüchow-Dannenberg
LUENEBURG = "033550000000"  # Landkreis Lüneburg, the neighbour across the north-west border
ELBTALAUE = "033545406000"  # Samtgemeinde Elbtalaue
HITZACKER = "033545406009"  # Hitzacker (Elbe), Stadt
DANNENBERG = "033545406004"  # Dannenberg (Elbe), Stadt: Hitzacker's neighbour in the same Samtgemeinde
T0 = dt.datetime(2025, 3, 13, 8, 0, tzinfo=dt.UTC)
CHEAP = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


class Clock:
    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "hub.db")
    yield s
    s.close()


def add(store: Store, name: str, roles: tuple[str, ...], scopes: tuple[str, ...],
        hasher: PasswordHasher | None = None) -> auth.User:
    return auth.add_user(store, name, roles, scopes, PASSWORD, actor="test", registry=registry(), hasher=hasher)


def audit(store: Store, action: str | None = None) -> list[dict[str, Any]]:
    return [e for e in store.audit_entries() if action is None or e["action"] == action]


# -- passwords and users -------------------------------------------------------------------------------------------


def test_hash_is_argon2id_and_verifies(store: Store) -> None:
    digest = auth.hash_password(PASSWORD)
    assert digest.startswith("$argon2id$") and PASSWORD not in digest
    assert auth.check_password(digest, PASSWORD) == (True, None)
    assert auth.check_password(digest, PASSWORD + "x") == (False, None)
    assert auth.check_password(None, PASSWORD) == (False, None)  # unknown user: a dummy hash is verified
    assert auth.check_password("not a hash", PASSWORD) == (False, None)


def test_password_policy() -> None:
    with pytest.raises(AuthError, match="mindestens 12 Zeichen"):
        auth.hash_password("elf Zeichen")
    auth.check_password_policy("zwölf Zeichen"[:12])


def test_rehash_on_login_when_parameters_change(store: Store) -> None:
    """A hash made with weaker parameters is replaced at the next successful login, and still verifies after."""
    add(store, "anna", ("author",), (KREIS,), hasher=CHEAP)

    def stored() -> str:
        return str(store.conn.execute("SELECT password_hash FROM users WHERE name='anna'").fetchone()[0])

    assert "m=8192,t=1,p=1" in stored()
    result = auth.authenticate(store, "anna", PASSWORD, "192.0.2.1", now=T0)
    assert result.reason == "ok"
    assert "m=65536,t=3,p=4" in stored()
    assert audit(store, "login.ok")[-1]["detail"] == json.dumps(
        {"reason": "ok", "rehashed": True, "remote": "192.0.2.1"}, separators=(",", ":"))
    before = stored()
    assert auth.authenticate(store, "Anna ", PASSWORD, "192.0.2.1", now=T0).reason == "ok"  # names ignore case
    assert stored() == before  # current parameters: left alone


def test_user_permissions() -> None:
    def user(*roles: str) -> auth.User:
        return auth.User(1, "x", frozenset(roles), (KREIS,), False)

    assert [p for p in auth.PERMISSIONS if user("viewer").can(p)] == ["read"]
    assert [p for p in auth.PERMISSIONS if user("author").can(p)] == ["read", "compose"]
    assert [p for p in auth.PERMISSIONS if user("approver").can(p)] == ["read", "compose", "approve"]
    assert [p for p in auth.PERMISSIONS if user("admin").can(p)] == ["read", "admin"]
    assert user("author", "admin").can("compose") and user("author", "admin").can("admin")
    assert not auth.User(1, "x", frozenset({"admin"}), (KREIS,), True).can("read")


def test_add_user_refuses_bad_input(store: Store) -> None:
    add(store, "anna", ("author",), (KREIS,))
    with pytest.raises(AuthError, match="already exists"):
        add(store, "ANNA", ("viewer",), (KREIS,))
    with pytest.raises(AuthError, match="unknown region key"):
        add(store, "bert", ("viewer",), ("033549999999",))
    with pytest.raises(AuthError, match="Rolle"):
        add(store, "bert", ("chef",), (KREIS,))
    with pytest.raises(AuthError, match="user name"):
        add(store, "bert smith", ("viewer",), (KREIS,))
    assert auth.check_scopes(["03354", "03354009"], registry()) == (KREIS, HITZACKER)  # Kreis key, AGS


# -- CLI -----------------------------------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A copy of the bundled config: its store (var/warnhub.db) lands in the temporary folder."""
    path = tmp_path / "config.toml"
    path.write_text((REPO / "config.toml").read_text(encoding="utf-8"), encoding="utf-8")
    return path


def run_cli(config: Path, *args: str, stdin: str = "") -> int:
    sys.stdin = io.StringIO(stdin)
    try:
        return cli_main(["user", *args, "--config", str(config)])
    finally:
        sys.stdin = sys.__stdin__


def cli_store(config: Path) -> Store:
    return Store(config.parent / "var" / "warnhub.db")


def test_cli_add_list_set_password_disable(config: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "leitstelle-os")
    assert run_cli(config, "add", "Anna", "--role", "author", "--role", "approver", "--scope", HITZACKER,
                   "--scope", "03354", "--password-stdin", stdin=PASSWORD + "\n") == 0
    capsys.readouterr()
    assert run_cli(config, "list", "--json") == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["name"], row["roles"], row["scopes"], row["disabled"]) == (
        "anna", ["approver", "author"], [HITZACKER, KREIS], False)

    # the prompt path: asked twice, a mismatch refused, a short password refused with the rule
    answers = iter(["Hochwasser-Alarm-1", "Hochwasser-Alarm-2"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    assert run_cli(config, "set-password", "anna") == 1
    assert "stimmen nicht überein" in capsys.readouterr().err
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": "kurz")
    assert run_cli(config, "set-password", "anna") == 1
    assert "mindestens 12 Zeichen / password too short: at least 12 characters" in capsys.readouterr().err

    with cli_store(config) as store:
        token, _ = auth.start_session(store, auth.get_user(store, "anna"), "192.0.2.1")  # type: ignore[arg-type]
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": "Sturmflut-Warnung-7")
    assert run_cli(config, "set-password", "anna") == 0
    with cli_store(config) as store:
        assert auth.authenticate(store, "anna", "Sturmflut-Warnung-7", "192.0.2.1").reason == "ok"
        assert auth.authenticate(store, "anna", PASSWORD, "192.0.2.1").reason == "wrong password"
        assert auth.load_session(store, token, idle=dt.timedelta(hours=1), max_age=dt.timedelta(hours=12)) is None

    assert run_cli(config, "disable", "anna") == 0
    assert run_cli(config, "disable", "nobody") == 1
    assert "unknown user" in capsys.readouterr().err
    with cli_store(config) as store:
        assert auth.authenticate(store, "anna", "Sturmflut-Warnung-7", "192.0.2.1").reason == "disabled"
        entries = store.audit_entries()
        assert store.verify_audit().ok
    mine = [(e["actor"], e["action"], e["subject"]) for e in entries if e["actor"] == "leitstelle-os"]
    assert mine == [("leitstelle-os", "user.add", "anna"), ("leitstelle-os", "user.set_password", "anna"),
                    ("leitstelle-os", "user.disable", "anna")]
    dump = json.dumps(entries)
    for secret in (PASSWORD, "Sturmflut-Warnung-7", "Hochwasser-Alarm"):
        assert secret not in dump
    assert run_cli(config, "enable", "anna") == 0
    with cli_store(config) as store:
        assert auth.authenticate(store, "anna", "Sturmflut-Warnung-7", "192.0.2.1").reason == "ok"


def test_cli_refuses_before_asking_for_a_password(config: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    def no_prompt(prompt: str = "") -> str:
        raise AssertionError("asked for a password although the command cannot succeed")

    monkeypatch.setattr(getpass, "getpass", no_prompt)
    assert run_cli(config, "add", "anna", "--role", "viewer", "--scope", "039999999999") == 1
    assert "unknown region key" in capsys.readouterr().err
    assert run_cli(config, "set-password", "nobody") == 1


def test_cli_as_a_process_reads_password_from_stdin(config: Path, tmp_path: Path) -> None:
    def warnhub(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hub.cli", "user", *args, "--config", str(config)],
                              input=stdin, cwd=str(tmp_path), env=subprocess_env(), capture_output=True, text=True,
                              timeout=120)

    short = warnhub("add", "bert", "--role", "viewer", "--scope", KREIS, "--password-stdin", stdin="zu kurz\n")
    assert short.returncode == 1 and "mindestens 12 Zeichen" in short.stderr
    ok = warnhub("add", "bert", "--role", "viewer", "--scope", KREIS, "--password-stdin", stdin=PASSWORD + "\n")
    assert ok.returncode == 0, ok.stderr
    listed = warnhub("list")
    assert listed.returncode == 0 and re.search(r"^bert\s+active\s+viewer\s.*Lüchow-Dannenberg", listed.stdout, re.M)
    with cli_store(config) as store:
        assert auth.authenticate(store, "bert", PASSWORD, "192.0.2.1").reason == "ok"


# -- scope ---------------------------------------------------------------------------------------------------------


def scoped(*scopes: str) -> auth.User:
    return auth.User(1, "x", frozenset({"author"}), scopes, False)


def spot(lon: float, lat: float, radius_m: float) -> BaseGeometry:
    """A round area (as a CAP circle would be), projected."""
    return GERMANY.project(Point(lon, lat)).buffer(radius_m)


HITZACKER_TOWN = (11.0436, 53.1525)  # on the Elbe, which is the Kreis border here (Amt Neuhaus lies across it)
HITZACKER_SOUTH = (11.03, 53.135)  # 2.6 km inside the Kreis border, 600 m from Hitzacker's border with Dannenberg
HITZACKER_INLAND = (10.9905, 53.1626)  # 1.8 km from every border of Hitzacker
DANNENBERG_TOWN = (11.0946, 53.0976)
DANNENBERG_EAST = (11.14, 53.085)  # inside the real Dannenberg boundary
LUENEBURG_TOWN = (10.4144, 53.2464)


@pytest.fixture(scope="module")
def gemeinde_geo() -> Geography:
    """The bundled geography: the real Gemeinde boundaries of Hitzacker and Dannenberg (BKG VG250)."""
    return geography()


def test_registry_knows_the_keys() -> None:
    reg = registry()
    assert reg.name(HITZACKER) == "Hitzacker (Elbe), Stadt"
    assert reg.name(DANNENBERG) == "Dannenberg (Elbe), Stadt"
    assert reg[HITZACKER].parent == ELBTALAUE and reg[ELBTALAUE].parent == KREIS


def test_check_regions() -> None:
    reg = registry()
    hitzacker, kreis = scoped(HITZACKER), scoped(KREIS)
    assert scopes.check_regions(hitzacker, reg, [HITZACKER]) is None
    refused = scopes.check_regions(hitzacker, reg, [HITZACKER, DANNENBERG])
    assert refused and "Dannenberg" in refused and "outside your scope" in refused
    assert scopes.check_regions(hitzacker, reg, [KREIS]) is not None  # the whole Kreis is more than Hitzacker
    assert scopes.check_regions(hitzacker, reg, [ELBTALAUE]) is not None
    assert scopes.check_regions(kreis, reg, [HITZACKER, DANNENBERG, ELBTALAUE, KREIS]) is None
    assert scopes.check_regions(kreis, reg, [LUENEBURG]) is not None
    assert "unknown region key" in (scopes.check_regions(kreis, reg, ["033549999999"]) or "")
    assert scopes.check_regions(scoped(HITZACKER, DANNENBERG), reg, [DANNENBERG]) is None


def test_kreis_user_on_real_kreis_boundary() -> None:
    geo = geography()
    user = scoped(KREIS)
    kreis = geo.geometry(KREIS)
    assert kreis is not None
    assert scopes.scope_geometry(user, geo).symmetric_difference(kreis).area < 1.0
    assert scopes.check_area(user, geo, spot(*HITZACKER_SOUTH, 1500)) is None
    assert scopes.check_area(user, geo, spot(*HITZACKER_TOWN, 400)) is None
    assert scopes.check_area(user, geo, spot(*DANNENBERG_TOWN, 3000)) is None
    across = scopes.check_area(user, geo, spot(*HITZACKER_TOWN, 1500))  # reaches across the Elbe into Lüneburg
    assert across and "outside your scope" in across
    assert scopes.check_area(user, geo, kreis) is None
    assert scopes.check_area(user, geo, kreis.buffer(30)) is None  # boundary noise
    refused = scopes.check_area(user, geo, spot(*LUENEBURG_TOWN, 2000))
    assert refused and "außerhalb Ihres Zuständigkeitsbereichs" in refused and "outside your scope" in refused
    assert "100.0%" in refused
    assert scopes.check_area(user, geo, kreis.buffer(3000)) is not None  # 3 km into the neighbours
    # a line or point outside is refused too (no area to take a share of)
    assert scopes.check_area(user, geo, GERMANY.project(Point(*LUENEBURG_TOWN))) is not None


def test_gemeinde_user_fails_closed_without_a_boundary() -> None:
    bundled = geography()  # Gemeinde boundaries are bundled now: a geography of the Kreis cells alone lacks them
    kreise_only = Geography(bundled.registry, bundled._kreis_cells, bundled._lake_cells)
    refused = scopes.check_area(scoped(HITZACKER), kreise_only, spot(*HITZACKER_TOWN, 500))
    assert refused and "keine Grenze bekannt" in refused and HITZACKER in refused


def test_gemeinde_user_with_boundaries(gemeinde_geo: Geography) -> None:
    hitzacker = scoped(HITZACKER)
    assert scopes.check_area(hitzacker, gemeinde_geo, spot(*HITZACKER_INLAND, 1500)) is None
    # 600 m from the real border between Hitzacker and Dannenberg, 1.5 km reach into Dannenberg: refused
    assert scopes.check_area(hitzacker, gemeinde_geo, spot(*HITZACKER_SOUTH, 1500)) is not None
    own = gemeinde_geo.geometry(HITZACKER)
    assert own is not None and scopes.check_area(hitzacker, gemeinde_geo, own) is None
    refused = scopes.check_area(hitzacker, gemeinde_geo, spot(*DANNENBERG_TOWN, 1500))
    assert refused and "Hitzacker" in refused
    assert scopes.check_area(hitzacker, gemeinde_geo, own.union(spot(*DANNENBERG_TOWN, 1500))) is not None
    assert scopes.check_area(hitzacker, gemeinde_geo, own.buffer(2000)) is not None
    # the Kreis user may target any of it; a user of both Gemeinden may target both
    assert scopes.check_area(scoped(KREIS), gemeinde_geo, spot(*DANNENBERG_TOWN, 1500)) is None
    both = own.union(spot(*DANNENBERG_EAST, 1500))
    assert scopes.check_area(scoped(HITZACKER, DANNENBERG), gemeinde_geo, both) is None


# -- web -----------------------------------------------------------------------------------------------------------


@requires("compose")
async def compose(request: web.Request) -> web.Response:
    form = await request.post() if request.content_type != "application/json" else await request.json()
    return web.json_response({"ok": True, "by": request[USER_KEY].name, "headline": form.get("headline")})


async def board(request: web.Request) -> web.Response:
    require(request, "read")
    return web.Response(text=f"Lage für {request[USER_KEY].name}", content_type="text/html")


async def public(request: web.Request) -> web.Response:
    return web.Response(text="öffentlich")


class Hub:
    """A console app on a real server over a store file; ``restart()`` builds both anew (the file stays).
    ``trusted_proxies`` as ``[web] trusted_proxies``; :meth:`client_from` gives a client with another address."""

    def __init__(self, path: Path, clock: Clock, *, trusted_proxies: tuple[str, ...] = (), **kw: Any) -> None:
        self.path, self.clock, self.kw, self.trusted = path, clock, kw, trusted_proxies
        self.client: TestClient[web.Request, web.Application] | None = None
        self.others: list[TestClient[web.Request, web.Application]] = []

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> TestClient[web.Request, web.Application]:
        self.astore = AsyncStore(Store(self.path))
        app = web.Application()
        app[TRUSTED_PROXIES_KEY] = parse_networks(self.trusted)
        self.settings = setup_auth(app, self.astore, clock=self.clock, **self.kw)
        app.router.add_get("/console/", board)
        app.router.add_post("/console/api/drafts", compose)
        app.router.add_get("/", public)
        server = TestServer(app)
        await server.start_server(ssl=ssl_context)
        self.client = TestClient(server, connector=TCPConnector(ssl=False))
        await self.client.start_server()
        return self.client

    async def client_from(self, address: str) -> TestClient[web.Request, web.Application]:
        """Another browser, connecting from ``address`` (any of 127.0.0.0/8 on Linux)."""
        assert self.client is not None
        other = TestClient(self.client.server, connector=TCPConnector(ssl=False, local_addr=(address, 0)))
        await other.start_server()
        self.others.append(other)
        return other

    async def stop(self) -> None:
        for other in self.others:
            await other.session.close()
        self.others.clear()
        if self.client is not None:
            await self.client.close()
            self.client = None
            self.astore.close()

    async def restart(self) -> TestClient[web.Request, web.Application]:
        await self.stop()
        return await self.start()

    def store(self) -> Store:
        return self.astore.store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def hub(tmp_path: Path, clock: Clock) -> AsyncIterator[Hub]:
    path = tmp_path / "hub.db"
    with Store(path) as s:
        add(s, "anna", ("author",), (KREIS,))
        add(s, "vera", ("viewer",), (KREIS,))
    h = Hub(path, clock, throttle=auth.Throttle(free_failures=5, max_failures_addr=8))
    await h.start()
    yield h
    await h.stop()


async def login(client: TestClient[web.Request, web.Application], name: str = "anna",
                password: str = PASSWORD) -> ClientResponse:
    return await client.post("/console/login", json={"name": name, "password": password})


async def test_unauthenticated_requests_are_refused(hub: Hub) -> None:
    c = hub.client
    assert c is not None
    r = await c.get("/console/", allow_redirects=False)
    assert r.status == 303 and URL(r.headers["Location"]).path == "/console/login"
    assert URL(r.headers["Location"]).query["next"] == "/console/"
    r = await c.get("/console/api/me")
    assert r.status == 401 and (await r.json())["error"] == "unauthenticated"
    r = await c.get("/console/", headers={"Accept": "application/json"}, allow_redirects=False)
    assert r.status == 401
    r = await c.post("/console/api/drafts", json={"headline": "x"})
    assert r.status == 401
    r = await c.get("/console/login")
    assert r.status == 200 and "Anmeldung Leitstelle" in await r.text()
    for key, value in CONSOLE_HEADERS.items():
        assert r.headers[key] == value
    r = await c.get("/")
    assert r.status == 200 and "Cache-Control" not in r.headers  # outside the console: untouched


async def test_login_sets_a_strict_cookie_and_stores_only_its_hash(hub: Hub) -> None:
    c = hub.client
    assert c is not None
    r = await login(c)
    assert r.status == 200
    me = await r.json()
    assert (me["name"], me["roles"], me["scopes"]) == ("anna", ["author"], [KREIS])
    cookie = r.headers["Set-Cookie"]
    assert re.search(r"(?i);\s*HttpOnly", cookie) and re.search(r"(?i);\s*SameSite=Strict", cookie)
    assert re.search(r"(?i);\s*Path=/(;|$)", cookie) and "secure" not in cookie.lower()  # plain http here
    token = r.cookies["warnhub_session"].value
    rows = hub.store().conn.execute("SELECT token_hash, csrf, remote FROM sessions").fetchall()
    assert rows == [(auth.token_hash(token), me["csrf"], "127.0.0.1")]
    assert token not in json.dumps(rows)
    r = await c.get("/console/")
    assert r.status == 200 and await r.text() == "Lage für anna"
    assert r.headers["Cache-Control"] == "no-store" and r.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["Referrer-Policy"] == "no-referrer"
    r = await c.get("/console/api/me")
    assert (await r.json())["csrf"] == me["csrf"]


def self_signed(tmp_path: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(T0 - dt.timedelta(days=1))
            .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return ctx


async def test_cookie_is_secure_over_tls(hub: Hub, tmp_path: Path) -> None:
    await hub.stop()
    c = await hub.start(self_signed(tmp_path))
    assert str(c.make_url("/")).startswith("https://")
    r = await login(c)
    assert r.status == 200 and re.search(r"(?i);\s*Secure", r.headers["Set-Cookie"])
    assert (await c.get("/console/api/me")).status == 200  # and the browser sends it back over TLS


async def test_html_login_form_and_next(hub: Hub) -> None:
    c = hub.client
    assert c is not None
    r = await c.post("/console/login", data={"name": "anna", "password": "falsch-falsch-falsch",
                                             "next": "/console/"}, allow_redirects=False)
    assert r.status == 401 and "Anmeldung fehlgeschlagen" in await r.text()
    r = await c.post("/console/login", data={"name": "anna", "password": PASSWORD, "next": "//evil.example/"},
                     allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/console/"  # never off to another site
    r = await c.get("/console/login?next=/console/", allow_redirects=False)
    assert r.status == 303  # signed in already


async def test_csrf_and_permissions(hub: Hub) -> None:
    c = hub.client
    assert c is not None
    csrf = (await (await login(c)).json())["csrf"]
    r = await c.post("/console/api/drafts", json={"headline": "Hochwasser"})
    assert r.status == 403 and (await r.json())["error"] == "csrf"
    r = await c.post("/console/api/drafts", json={"headline": "Hochwasser"}, headers={"X-CSRF-Token": "x" + csrf})
    assert r.status == 403
    r = await c.post("/console/api/drafts", json={"headline": "Hochwasser"}, headers={"X-CSRF-Token": csrf})
    assert r.status == 200 and await r.json() == {"ok": True, "by": "anna", "headline": "Hochwasser"}
    r = await c.post("/console/api/drafts", data={"headline": "Sturm", "csrf_token": csrf})
    assert r.status == 200 and (await r.json())["headline"] == "Sturm"
    r = await c.post("/console/api/drafts", data={"headline": "Sturm", "csrf_token": csrf},
                     headers={"Origin": "https://evil.example"})
    assert r.status == 403 and (await r.json())["error"] == "origin"
    for method in ("PUT", "PATCH", "DELETE"):
        r = await c.request(method, "/console/api/drafts")
        assert r.status == 403, method  # refused before the router's 405

    c.session.cookie_jar.clear()
    csrf = (await (await login(c, "vera")).json())["csrf"]
    r = await c.post("/console/api/drafts", json={}, headers={"X-CSRF-Token": csrf})
    assert r.status == 403 and await r.json() == {
        "error": "forbidden", "message": "Keine Berechtigung „compose“ / permission 'compose' required",
        "permission": "compose"}


async def test_logout_deletes_the_session(hub: Hub) -> None:
    c = hub.client
    assert c is not None
    csrf = (await (await login(c)).json())["csrf"]
    token = c.session.cookie_jar.filter_cookies(c.make_url("/"))["warnhub_session"].value
    r = await c.post("/console/logout", allow_redirects=False)
    assert r.status == 403  # logout is state-changing too
    r = await c.post("/console/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/console/login"
    assert hub.store().conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 0
    assert (await c.get("/console/api/me")).status == 401
    c.session.cookie_jar.update_cookies({"warnhub_session": token})  # the old cookie is worth nothing
    assert (await c.get("/console/api/me")).status == 401
    assert [(e["actor"], e["action"]) for e in audit(hub.store())][-2:] == [("anna", "login.ok"), ("anna", "logout")]


async def test_idle_timeout_and_maximum_age(hub: Hub, clock: Clock) -> None:
    c = hub.client
    assert c is not None
    await login(c)
    clock.advance(minutes=29)
    assert (await c.get("/console/api/me")).status == 200  # activity keeps it alive ...
    clock.advance(minutes=29)
    assert (await c.get("/console/api/me")).status == 200
    clock.advance(minutes=31)
    assert (await c.get("/console/api/me")).status == 401  # ... idleness ends it
    assert audit(hub.store(), "session.expired")[-1]["detail"] == '{"reason":"idle timeout"}'

    await login(c)
    created = clock.now
    while clock.now - created < dt.timedelta(hours=12):
        clock.advance(minutes=20)
        assert (await c.get("/console/api/me")).status == 200, clock.now - created
    clock.advance(minutes=1)
    assert (await c.get("/console/api/me")).status == 401  # busy all along, but 12 h is the most a session lives
    assert audit(hub.store(), "session.expired")[-1]["detail"] == '{"reason":"maximum age"}'


async def test_disabling_a_user_ends_the_session(hub: Hub) -> None:
    c = hub.client
    assert c is not None
    await login(c)
    await hub.astore.run(auth.set_disabled, hub.store(), "anna", True, actor="admin")
    assert (await c.get("/console/api/me")).status == 401
    assert (await login(c)).status == 401


async def test_a_wait_survives_a_restart(hub: Hub, clock: Clock) -> None:
    """Failures are counted in the store: a restart neither forgets a wait nor turns it into a lock."""
    c = hub.client
    assert c is not None
    for _ in range(4):
        assert (await login(c, password="falsch-falsch-falsch")).status == 401
    r = await login(c, password="falsch-falsch-falsch")  # the 5th starts a wait of 2 s (the default first delay)
    assert r.status == 401 and r.headers["Retry-After"] == "2" and (await r.json())["retry_after"] == 2
    c = await hub.restart()
    r = await login(c)  # the right password, but within the wait: not checked
    assert r.status == 429 and r.headers["Retry-After"] == "2"
    body = await r.json()
    assert body["error"] == "throttled" and body["message"] == (
        "Zu viele Fehlversuche: bitte in 2 Sekunden erneut versuchen / "
        "too many failed attempts: please try again in 2 seconds")
    assert (await login(c, "vera")).status == 200  # another name from the same address does not wait
    clock.advance(seconds=2)
    assert (await login(c)).status == 200  # a wait, never a lock


async def test_html_answer_while_throttled(hub: Hub) -> None:
    c = hub.client
    assert c is not None
    for _ in range(5):
        await login(c, password="falsch-falsch-falsch")
    r = await c.post("/console/login", data={"name": "anna", "password": PASSWORD}, allow_redirects=False)
    assert r.status == 429 and r.headers["Retry-After"] == "2"
    assert "Zu viele Fehlversuche: bitte in 2 Sekunden erneut versuchen" in await r.text()


async def test_audit_has_logins_never_passwords(hub: Hub, clock: Clock) -> None:
    c = hub.client
    assert c is not None
    await login(c, password="Passwort-ins-Namensfeld")
    await login(c, "Passwort-im-Namen", PASSWORD)
    await login(c)
    clock.advance(minutes=15)
    await hub.astore.run(auth.purge, hub.store(), idle=dt.timedelta(hours=1), max_age=dt.timedelta(hours=12),
                         throttle=hub.settings.throttle, now=clock.now)
    store = hub.store()
    assert store.verify_audit().ok
    actions = [(e["action"], e["subject"], json.loads(e["detail"])["reason"]) for e in audit(store)
               if e["action"].startswith("log")]
    assert actions == [("login.ok", "anna", "ok"), ("login.failed", "anna", "wrong password"),
                       ("login.failed", "", "unknown name")]
    dump = json.dumps(store.audit_entries())
    assert PASSWORD not in dump and "Passwort-ins-Namensfeld" not in dump and "Passwort-im-Namen" not in dump
