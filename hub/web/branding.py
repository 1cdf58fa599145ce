"""A district's own look on its citizen site (issue 19): its logo at ``/logo`` and its colour in ``/brand.css``.

Both are routes of the district's site (``/uelzen/logo``, ``/uelzen/brand.css``), so its pages stay within the
site's Content-Security-Policy (nothing inline, nothing from elsewhere): ``brand.css`` sets the custom property
``--brand`` that ``/static/citizen/citizen.css`` paints the page header with (its own colour without one). The logo
is read once when the site is set up (``[[districts]] logo``, at most 256 kB, checked by hub.config.load) and served
with its image type and an ETag; an SVG logo can run no script (its own ``Content-Security-Policy``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from hub.config.districts import District

LOGO_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
              ".webp": "image/webp", ".gif": "image/gif"}
CACHE = "public, max-age=3600"
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


@dataclass(frozen=True, slots=True)
class Brand:
    css: bytes
    logo: bytes | None
    logo_type: str


BRAND_KEY = web.AppKey("brand", Brand)


def css_of(site: District) -> str:
    """The district's stylesheet: its colour as ``--brand`` (nothing but a checked hex colour reaches it)."""
    colour = site.colour if site.colour and _COLOUR.match(site.colour) else None
    return f":root {{ --brand: {colour}; }}\n" if colour else "/* no colour of its own */\n"


def setup(app: web.Application, site: District) -> None:
    """Add ``/brand.css`` and, with a logo, ``/logo`` to the district's site ``app``."""
    logo = site.logo.read_bytes() if site.logo is not None else None
    kind = LOGO_TYPES.get(site.logo.suffix.lower(), "application/octet-stream") if site.logo is not None else ""
    app[BRAND_KEY] = Brand(css_of(site).encode(), logo, kind)
    app.router.add_get("/brand.css", brand_css)
    if logo is not None:
        app.router.add_get("/logo", logo_file)


def of(site: District | None, base: str) -> dict[str, Any] | None:
    """What the page templates link: the stylesheet and the logo (None: a single-district hub's site)."""
    if site is None:
        return None
    return {"css": f"{base}/brand.css", "logo": f"{base}/logo" if site.logo is not None else None}


def _cached(request: web.Request, body: bytes, content_type: str, **headers: str) -> web.Response:
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    common = {"ETag": etag, "Cache-Control": CACHE, **headers}
    if etag in {t.strip().removeprefix("W/") for t in request.headers.get("If-None-Match", "").split(",")}:
        return web.Response(status=304, headers=common)
    return web.Response(body=body, headers={**common, "Content-Type": content_type})


async def brand_css(request: web.Request) -> web.Response:
    return _cached(request, request.app[BRAND_KEY].css, "text/css; charset=utf-8")


async def logo_file(request: web.Request) -> web.Response:
    brand = request.app[BRAND_KEY]
    assert brand.logo is not None  # the route exists only with a logo
    extra = {"Content-Security-Policy": SVG_CSP} if brand.logo_type == "image/svg+xml" else {}
    return _cached(request, brand.logo, brand.logo_type, **extra)
