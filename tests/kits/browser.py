"""Test kit for browser tests: Debian's Chromium driven by Playwright's async API, never a browser it downloads.

A test module turns it on with ``pytest_plugins = ("tests.kits.browser",)`` and then asks for the fixtures:

``browser``
    One headless Chromium for the whole session (``executable_path`` from ``$WARNHUB_CHROMIUM``, ``chromium`` on
    ``PATH`` or ``/usr/bin/chromium``). Missing Chromium is a failure, not a skip: ``sh scripts/system-deps.sh``
    installs it (the README's test command runs it first).
``page``
    A fresh page in a fresh context for each test: ``locale="de-DE"``, ``timezone_id="Europe/Berlin"``, 1280×720,
    10 s default timeout. Every request the context makes is recorded, and one to anywhere but the loopback is
    aborted (a test never reaches the internet, and says so): see ``page_log``.
``page_log``
    The :class:`PageLog` of ``page``: ``requests`` (every URL asked for), ``outside`` (those that were aborted),
    ``errors`` (uncaught exceptions and ``console.error`` messages), ``console``.

Helpers: ``async with serve(app) as base_url`` runs an aiohttp app on 127.0.0.1 for the test;
``await open_page(page, base_url, "/path")`` opens it and fails on an HTTP error; ``await screenshot(page, "name")``
writes ``name.png`` to ``$WARNHUB_SCREENSHOTS`` (default ``tests/screenshots/``, git-ignored) for a person to look at;
``await axe(page)`` runs axe-core (``tests/vendor/axe-core``) and answers its violations.
The kit reports with ``pytest.fail``, never ``assert``, so a test module may import it before pytest registers it as
a plugin (PYTEST_DONT_REWRITE: no assertion rewriting, and no warning that it came too late).

The event loop: Playwright's objects belong to the loop that started them, and ``browser`` lives for the session, so
every test that uses these fixtures runs in pytest-asyncio's session loop (this plugin marks it
``asyncio(loop_scope="session")``). Any async fixture such a test uses must run in that loop too
(``@pytest_asyncio.fixture(loop_scope="session")``): one in a function loop would never be driven while the test
awaits, so the kit fails such a test at setup, naming the fixture. Starting the app under test inside the test body
with ``serve()`` avoids the question. Example::

    from tests.kits.browser import open_page, screenshot, serve

    pytest_plugins = ("tests.kits.browser",)

    async def test_map(page, page_log):
        async with serve(make_app()) as base:
            await open_page(page, base, "/karte")
            await page.locator("path.leaflet-interactive").wait_for()
            await screenshot(page, "karte")
        assert page_log.outside == [] and page_log.errors == []
"""

from __future__ import annotations

import inspect
import ipaddress
import os
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from weakref import WeakKeyDictionary

import pytest
import pytest_asyncio
from aiohttp import web

from tests.kits import paths

try:
    from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Response, Route, async_playwright
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("the browser tests need Playwright: pip install -e '.[test]'") from err

TESTS = paths.TESTS
AXE_JS = TESTS / "vendor" / "axe-core" / "axe.min.js"
CONTEXT: dict[str, Any] = {
    "locale": "de-DE",
    "timezone_id": "Europe/Berlin",
    "viewport": {"width": 1280, "height": 720},
}
TIMEOUT_MS = 10_000
_FIXTURES = frozenset({"browser", "page", "page_log"})
_SESSION_LOOP = pytest.mark.asyncio(loop_scope="session")


def chromium_path() -> str:
    """The Chromium to drive; fails the test (does not skip it) when there is none."""
    candidates = [os.environ.get("WARNHUB_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    pytest.fail("Chromium not found ($WARNHUB_CHROMIUM, chromium on PATH, /usr/bin/chromium): "
                "run `sh scripts/system-deps.sh` as root (installs Debian's chromium)", pytrace=False)


# -- pytest hooks (active in a session that loaded this module as a plugin) -----------------------------------------


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(_SESSION_LOOP, append=False)  # first, so it is the closest asyncio marker


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if not _FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return
    wrong = _function_loop_fixtures(item)
    if wrong:
        pytest.fail(f"{item.nodeid}: async fixture(s) {', '.join(wrong)} run in another event loop than the browser; "
                    "declare them @pytest_asyncio.fixture(loop_scope=\"session\") or start them inside the test",
                    pytrace=False)


def _function_loop_fixtures(item: pytest.Item) -> list[str]:
    """The async fixtures of ``item`` that pytest-asyncio would run outside the session loop (its own rule)."""
    default = item.config.getini("asyncio_default_fixture_loop_scope")
    wrong = []
    for name, defs in item._fixtureinfo.name2fixturedefs.items():  # type: ignore[attr-defined]
        fixturedef = defs[-1]
        func = getattr(fixturedef.func, "__func__", fixturedef.func)
        if not (getattr(func, "_force_asyncio_fixture", False)
                or inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)):
            continue
        scope = getattr(func, "_loop_scope", None) or (fixturedef.scope if default == "fixture-scope" else default)
        if (scope or fixturedef.scope) != "session":
            wrong.append(name)
    return wrong


# -- fixtures -------------------------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_path()
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(**CONTEXT)
    context.set_default_timeout(TIMEOUT_MS)
    await watch(context)
    try:
        yield await context.new_page()
    finally:
        await context.close()


@pytest.fixture
def page_log(page: Page) -> PageLog:
    return _LOGS[page.context]


# -- what a page did ------------------------------------------------------------------------------------------------


@dataclass
class PageLog:
    requests: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)


_LOGS: WeakKeyDictionary[BrowserContext, PageLog] = WeakKeyDictionary()


def is_local(url: str) -> bool:
    """True for a URL that stays on this machine (loopback, ``data:``, ``blob:``, ``about:``)."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def watch(context: BrowserContext) -> PageLog:
    """Record what ``context`` asks for and what goes wrong in its pages; abort requests that would leave the
    machine. The ``page`` fixture does this already; call it for a context a test makes itself."""
    log = _LOGS[context] = PageLog()

    async def refuse(route: Route) -> None:
        log.outside.append(route.request.url)
        await route.abort("blockedbyclient")

    def on_console(message: ConsoleMessage) -> None:
        log.console.append(f"{message.type}: {message.text}")
        if message.type == "error":
            log.errors.append(f"console: {message.text}")

    context.on("request", lambda request: log.requests.append(request.url))
    context.on("console", on_console)
    context.on("weberror", lambda error: log.errors.append(f"uncaught: {error.error}"))
    await context.route(lambda url: not is_local(url), refuse)
    return log


# -- helpers --------------------------------------------------------------------------------------------------------


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run ``app`` on 127.0.0.1 (a free port) in the test's loop; yields the base URL without a trailing slash."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def open_page(page: Page, server: Any, path: str = "/", *, wait_until: str = "load") -> Response:
    """Open ``path`` on ``server`` (a base URL, or aiohttp's ``TestServer``/``TestClient``) and answer the
    response; fails the test on a non-2xx/3xx answer."""
    base = server if isinstance(server, str) else str(server.make_url("/"))
    url = base.rstrip("/") + "/" + path.lstrip("/")
    response = await page.goto(url, wait_until=wait_until)  # type: ignore[arg-type]
    if response is None or not response.ok:
        pytest.fail(f"GET {url}: {response.status if response else 'no response'}", pytrace=False)
    return response


def screenshot_dir() -> Path:
    return Path(os.environ.get("WARNHUB_SCREENSHOTS") or TESTS / "screenshots")


async def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Write a PNG of ``page`` for review and answer its path (``name`` is made file-name safe)."""
    folder = screenshot_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (re.sub(r"[^\w.-]+", "_", name).strip("._") + ".png")
    await page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    return path


async def axe(page: Page, context: Any = None, options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run axe-core on ``page`` (optionally on a CSS selector or axe context) and answer its violations. axe is
    evaluated through the debugger protocol, which the page's Content-Security-Policy does not govern (a
    ``<script>`` tag would be blocked by the hub's ``default-src 'self'``). ``axe.run`` waits on timers: it never
    returns while the page's clock (``page.clock``) is paused."""
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.evaluate(AXE_JS.read_text(encoding="utf-8") + "\n;undefined")
    result = await page.evaluate(
        "([context, options]) => axe.run(context || document, options || {})", [context, options])
    return result["violations"]
