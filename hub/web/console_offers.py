"""Offers from other districts in the console's API (issue 19, :mod:`hub.console.offers`), under ``/console/api/``:

- ``GET offers``: the offers waiting in the signed-in user's district (key, who offered it, when, its content and
  the part of the area in this district).
- ``POST offers/{key}/warning``: make a warning of this district from the offer (permission ``compose``;
  :func:`hub.console.drafts.from_offer`) → 201 with the new version and the page to go on with (``next``: the
  compose page to check and submit it); it then takes this district's own four eyes and goes out with its sender.
- ``POST offers/{key}/decline`` (``reason``): this district does not take it up.

Another district's offer is refused with 403 and a fixed body that says nothing about it; a key that exists
nowhere is 404. A user without a district (scopes in several, a provider) gets 403 on all of them.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from hub.access import auth
from hub.config.districts import District
from hub.console import drafts, offers
from hub.console.model import ConsoleConfig, ConsoleError, ConsoleForbidden
from hub.web.auth import require
from hub.web.console import ConsoleWeb, state_of

FORBIDDEN = {"error": "Kein Zugriff / forbidden"}
NOT_FOUND = {"error": "not_found", "message": "Dieses Angebot gibt es nicht. / This offer does not exist."}


def routes(app: web.Application, prefix: str) -> None:
    a = f"{prefix}/api/offers"
    app.router.add_get(a, offer_list)
    app.router.add_post(f"{a}/{{key}}/warning", take)
    app.router.add_post(f"{a}/{{key}}/decline", decline)


def _json(exc: type[web.HTTPException], body: dict[str, Any]) -> web.HTTPException:
    return exc(text=json.dumps(body, ensure_ascii=False), content_type="application/json")


def _district(s: ConsoleWeb, user: auth.User) -> District:
    """The user's district (a single-district hub: its one, for everyone); none: 403."""
    ds = s.services.loaded.districts
    found = None if auth.PROVIDER in user.roles else ds.first if not ds.multi else ds.of_scopes(user.scopes)
    if found is None:
        raise _json(web.HTTPForbidden, FORBIDDEN)
    return found


async def _config(s: ConsoleWeb, d: District) -> ConsoleConfig:
    """The console's config for ``d`` (its sender, name, four eyes, templates)."""
    return await s.config(d)


def _summary(o: dict[str, Any]) -> dict[str, Any]:
    doc = o["draft"]
    offer = doc["offer"]
    return {"key": o["key"], "at": o["created_at"], "why": o["why"], "from": offer["from"],
            "msg_type": offer["msg_type"], "kind": offer["kind"], "status": offer["status"], "event": doc["event"],
            "severity": doc["severity"], "expires": doc.get("expires"), "texts": doc["texts"], "area": doc["area"]}


async def offer_list(request: web.Request) -> web.Response:
    user = require(request, "read")
    s = state_of(request)
    d = _district(s, user)
    found = await s.run(offers.pending, d.ars)
    return web.json_response({"offers": [_summary(o) for o in found]},
                             dumps=lambda v: json.dumps(v, ensure_ascii=False, default=str))


async def _act(request: web.Request, fn: Any, *args: Any) -> Any:
    user = require(request, "read")  # compose: checked by hub.console after another district's offer is refused
    s = state_of(request)
    d = _district(s, user)
    cfg = await _config(s, d)
    try:
        return await s.run(fn, user, request.match_info["key"], *args, cfg=cfg)  # dashboards: at the next poll
    except LookupError:
        raise _json(web.HTTPNotFound, NOT_FOUND) from None
    except ConsoleForbidden as err:
        body = FORBIDDEN if str(err) == drafts.NOT_YOURS else {"error": "forbidden", "message": str(err)}
        raise _json(web.HTTPForbidden, body) from None
    except ConsoleError as err:
        raise _json(web.HTTPBadRequest, {"error": "invalid", "message": str(err)}) from None


async def take(request: web.Request) -> web.Response:
    row = await _act(request, drafts.from_offer)
    prefix = state_of(request).prefix
    return web.json_response({"warning": {k: row[k] for k in ("id", "thread", "version", "state", "msg_type")},
                              "next": f"{prefix}/compose?edit={row['id']}"}, status=201)


async def decline(request: web.Request) -> web.Response:
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        body = {}
    reason = str(body.get("reason") or "") if isinstance(body, dict) else ""
    await _act(request, drafts.decline_offer, reason)
    return web.json_response({"declined": request.match_info["key"]})
