"""The browser kit (tests/kits/browser.py) against the real Chromium: the vendored Leaflet draws a GeoJSON area from
/static/vendor/, nothing leaves the loopback, screenshots and axe-core work, and misuse fails clearly."""

from __future__ import annotations

import json
import textwrap

import pytest
from aiohttp import web

from tests.kits import paths
from tests.kits.browser import axe, chromium_path, is_local, open_page, screenshot, serve

pytest_plugins = ("tests.kits.browser", "pytester")

ROOT = paths.REPO
STATIC = ROOT / "hub" / "web" / "static"

# A rough ring around Marburg, GeoJSON order (lon, lat).
AREA = {
    "type": "Feature",
    "properties": {"name": "Testgebiet"},
    "geometry": {
        "type": "Polygon",
        "coordinates": [[[8.70, 50.78], [8.82, 50.78], [8.82, 50.84], [8.70, 50.84], [8.70, 50.78]]],
    },
}

MAP_PAGE = textwrap.dedent("""\
    <!doctype html>
    <html lang="de">
    <head>
      <meta charset="utf-8">
      <title>Karte</title>
      <link rel="stylesheet" href="/static/vendor/leaflet/leaflet.css">
      <style>#map { width: 800px; height: 500px; }</style>
    </head>
    <body>
      <main><div id="map"></div></main>
      <script src="/static/vendor/leaflet/leaflet.js"></script>
      <script>
        const map = L.map("map");
        const area = L.geoJSON(%s, {style: {color: "#c00", weight: 2}}).addTo(map);
        map.fitBounds(area.getBounds());
        L.marker(area.getBounds().getCenter()).addTo(map);
      </script>
    </body>
    </html>
    """) % json.dumps(AREA)


def map_app() -> web.Application:
    async def index(request: web.Request) -> web.Response:
        return web.Response(text=MAP_PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC)  # as hub/web/warnings.py does
    return app


async def test_vendored_leaflet_draws_a_geojson_area(page, page_log) -> None:
    async with serve(map_app()) as base:
        await open_page(page, base, "/")
        assert await page.evaluate("window.L.version") == "1.9.4"
        polygon = page.locator("path.leaflet-interactive")
        await polygon.wait_for()
        assert await polygon.count() == 1
        assert (await polygon.get_attribute("d") or "").startswith("M")
        icon = page.locator("img.leaflet-marker-icon")
        assert await icon.evaluate("img => img.complete && img.naturalWidth") > 0  # images/ served as Leaflet expects
        shot = await screenshot(page, "browser_kit_leaflet")

    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert page_log.outside == []
    assert page_log.requests and all(is_local(url) for url in page_log.requests)
    assert {base + "/static/vendor/leaflet/leaflet.js", base + "/static/vendor/leaflet/images/marker-icon.png"} \
        <= set(page_log.requests)
    assert page_log.errors == []


async def test_requests_off_the_machine_are_recorded_and_refused(page, page_log) -> None:
    await page.set_content('<img alt="" src="http://192.0.2.1/tile.png"><img alt="" src="https://example.org/a.png">')
    assert sorted(page_log.outside) == ["http://192.0.2.1/tile.png", "https://example.org/a.png"]


async def test_locale_timezone_and_errors_are_seen(page, page_log) -> None:
    await page.set_content("<script>console.error('kaputt'); setTimeout(() => { throw new Error('weg'); });</script>")
    await page.wait_for_timeout(50)
    assert await page.evaluate("navigator.language") == "de-DE"
    assert await page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == "Europe/Berlin"
    assert await page.evaluate("new Date(Date.UTC(2024, 6, 1, 12)).toLocaleString()") == "1.7.2024, 14:00:00"
    assert page_log.errors[0] == "console: kaputt"
    assert "weg" in page_log.errors[1]


async def test_axe_reports_violations(page) -> None:
    await page.set_content('<html lang="de"><head><title>t</title></head><body><main><h1>Test</h1>'
                           '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">'
                           "</main></body></html>")
    assert [v["id"] for v in await axe(page)] == ["image-alt"]


def test_missing_chromium_fails_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARNHUB_CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setattr("os.access", lambda path, mode: False)
    with pytest.raises(pytest.fail.Exception, match="scripts/system-deps.sh"):
        chromium_path()


def test_a_function_loop_fixture_fails_at_setup(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_misuse="""
        import pytest
        pytest_plugins = ("tests.kits.browser",)

        @pytest.fixture
        async def server():
            yield "http://127.0.0.1:1"

        async def test_it(page, server):
            pass
        """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--rootdir={pytester.path}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*async fixture(s) server run in another event loop than the browser*"])
