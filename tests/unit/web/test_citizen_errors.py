"""The citizen site's error middleware: a page request that hits a limit or a bug gets the site's own page (with
``Retry-After`` kept); machine routes and other answers pass through untouched."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from hub.web import citizen_errors

Seen = list[tuple[int, dict[str, str]]]


def _page(seen: Seen) -> citizen_errors.ErrorPage:
    def page(request: web.Request, status: int, headers: dict[str, str]) -> web.Response:
        seen.append((status, headers))
        return web.Response(status=status, text="the site's page", headers=headers)
    return page


async def _limited(request: web.Request) -> web.StreamResponse:
    raise web.HTTPTooManyRequests(text='{"error": "zu viele"}', headers={"Retry-After": "30", "X-Other": "1"})


async def _broken(request: web.Request) -> web.StreamResponse:
    raise RuntimeError("a bug behind a page")


async def _gone(request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotFound()


async def _busy(request: web.Request) -> web.StreamResponse:
    raise web.HTTPServiceUnavailable()  # no Retry-After: not a limit, left alone


async def test_limits_failures_and_missing_pages_get_the_sites_page() -> None:
    seen: Seen = []
    middleware = citizen_errors.middleware(_page(seen))
    request = make_mocked_request("GET", "/warnungen/w1?lang=tr")
    response = await middleware(request, _limited)
    assert response.status == 429 and response.headers["Retry-After"] == "30"
    assert seen[-1] == (429, {"Retry-After": "30"})
    assert (await middleware(request, _broken)).status == 500 and seen[-1] == (500, {})
    assert (await middleware(make_mocked_request("GET", "/nirgends"), _gone)).status == 404
    with pytest.raises(web.HTTPServiceUnavailable):
        await middleware(request, _busy)
    assert len(seen) == 3


@pytest.mark.parametrize("method, path", [("GET", "/api/v1/warnings"), ("GET", "/start.json"), ("GET", "/sw.js"),
                                          ("GET", "/feeds/cap.atom"), ("GET", "/console/login"),
                                          ("POST", "/abonnieren")])
async def test_machine_routes_keep_their_own_answers(method: str, path: str) -> None:
    seen: Seen = []
    middleware = citizen_errors.middleware(_page(seen))
    with pytest.raises(web.HTTPTooManyRequests):
        await middleware(make_mocked_request(method, path), _limited)
    with pytest.raises(RuntimeError):
        await middleware(make_mocked_request(method, path), _broken)
    assert seen == []


def test_the_busy_answer_before_any_request_says_it_in_every_language() -> None:
    """The socket-level 503 (no request read, so no Accept-Language) carries each language's line."""
    from hub.i18n.catalogs import translator
    from hub.i18n.languages import CODES
    from hub.web.site import BUSY
    head, _, body = BUSY.partition(b"\r\n\r\n")
    lines = body.decode().splitlines()
    for code in CODES:
        assert translator(code, "pages").gettext("Der Server ist ausgelastet, bitte später erneut versuchen.") in lines
    assert len(lines) == len(CODES) and f"Content-Length: {len(body)}".encode() in head
