"""The canaries' receipt route (issue 17, section 2): ``POST /api/v1/canary/{id}/received``.

A receiver acknowledges its canary here: the control-room device's service worker for a canary push, the receiving
system for a canary webhook. The probe's random id (which only that canary carried) is what authorises it; the answer
is 204 for a probe the hub sent, 404 otherwise, and at most :data:`PER_ADDRESS_PER_HOUR` receipts per address and
hour are taken (429 with Retry-After beyond). No body is read, nothing about the receiver is stored.
"""

from __future__ import annotations

import re

from aiohttp import web

from hub.publish.canary_watch import CanaryWatch
from hub.web.client import client_address
from hub.web.limits import AddressRate, refusal

PER_ADDRESS_PER_HOUR = 3600
"""A device answering a canary every second would still be within it."""
_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
CANARY_KEY = web.AppKey("canary", CanaryWatch)
_RATE_KEY = web.AppKey("canary_rate", AddressRate)
NO_STORE = {"Cache-Control": "no-store"}


def setup(app: web.Application, watch: CanaryWatch) -> None:
    app[CANARY_KEY] = watch
    app[_RATE_KEY] = AddressRate(PER_ADDRESS_PER_HOUR)
    app.router.add_post("/api/v1/canary/{id}/received", received)


async def received(request: web.Request) -> web.Response:
    wait_s = request.app[_RATE_KEY].hit(client_address(request))
    if wait_s:
        raise refusal(web.HTTPTooManyRequests, "Zu viele Anfragen / too many requests", wait_s)
    pid = request.match_info["id"]
    if not (_ID.fullmatch(pid) and await request.app[CANARY_KEY].acknowledge(pid)):
        raise web.HTTPNotFound(text="Unbekannte Kontrollmeldung / unknown canary", headers=NO_STORE)
    return web.Response(status=204, headers=NO_STORE)
