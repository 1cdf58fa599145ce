"""Citizen subscription API (no accounts: a random id and a token shown once), see hub/publish/subscriptions.py.

Routes (JSON; every response ``Cache-Control: no-store``; bodies up to 16 KB):
- ``POST /api/v1/subscriptions``: 201 ``{"id", "token", "subscription"}``. The same push endpoint again replaces
  its subscription (same id, new token).
- ``GET|PUT|DELETE /api/v1/subscriptions/{id}`` with ``Authorization: Bearer <token>``: 200 ``{"id",
  "subscription"}`` (DELETE: 204). An unknown id and a wrong token both answer 404 with the same body; no header: 401.
- ``POST /api/v1/subscriptions/{id}/test`` with the token: 202 ``{"id", "state", "wait_s"}``, a test notification
  through the real push path (hub/publish/testpush.py), at most 3 per subscription and hour (then 429 with
  ``Retry-After``). ``GET /api/v1/subscriptions/{id}/test/{test_id}`` with the token: its state (``sending``,
  ``sent``, ``received``, ``failed``). ``POST /api/v1/subscriptions/{id}/test/{test_id}/received`` (no token: the
  service worker has only the test's random id from the encrypted push): 204; unknown: 404; at most
  ``[web] subscribe_per_address_per_hour`` * 10 receipts per address and hour.
- ``"exercise": true`` (a staff test device, which receives only exercises) needs ``"exercise_token"``: a token
  the console or ``warnhub exercise-token`` issued (24 h, single use, see hub.access.exercise_tokens); else 403.
- Errors: ``{"error": "<German> / <English>: ..."}`` with 400 (invalid JSON or field), 403 (exercise without a
  valid token), 409 (PUT with a push endpoint of another subscription), 413 (body too large), 429 (more than
  ``[web] subscribe_per_address_per_hour`` POSTs from one address) and 503 (``[push] max_subscriptions`` reached),
  both with ``Retry-After``.

The :class:`~hub.publish.index.SubscriptionIndex` lives at ``app[INDEX_KEY]`` for the delivery pipeline to share;
these handlers tell it of every change (the delivery worker does the same when it deletes gone endpoints).
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from hub.config.sections import PushSection, WebSection
from hub.events import Queued, SubscriptionsChanged
from hub.geo.registry import registry
from hub.ports import CheckEndpoint, CheckKeys
from hub.publish import index as targeting
from hub.publish import subscriptions as subs
from hub.publish import testpush
from hub.registry import push as push_hooks
from hub.web.client import client_address
from hub.web.keys import HUB_KEY
from hub.web.limits import AddressRate, refusal

log = logging.getLogger("warnhub.web.subscriptions")

INDEX_KEY = web.AppKey("subscription_index", targeting.SubscriptionIndex)
MAX_BODY = 16 * 1024
NO_STORE = {"Cache-Control": "no-store"}
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NOT_FOUND = "Unbekanntes Abo oder falscher Token / unknown subscription or wrong token"


@dataclass(frozen=True, slots=True)
class _Checks:
    allow_http: bool
    check_endpoint: CheckEndpoint
    check_keys: CheckKeys
    rate: AddressRate
    max_subscriptions: int
    receipts: AddressRate


_CHECKS_KEY = web.AppKey("subscription_checks", _Checks)


def setup(app: web.Application, *, allow_http: bool, index: targeting.SubscriptionIndex | None = None,
          check_endpoint: CheckEndpoint | None = None,
          check_keys: CheckKeys | None = None,
          per_address_per_hour: int = WebSection().subscribe_per_address_per_hour,
          max_subscriptions: int = PushSection().max_subscriptions) -> targeting.SubscriptionIndex:
    """Add the routes and ``app[INDEX_KEY]`` (``index``, or a new one filled from the store at startup).

    The push checks default to the push channel's (:func:`hub.registry.push`); without them this raises (no weaker
    fallback)."""
    if check_endpoint is None or check_keys is None:
        hooks = push_hooks()
        check_endpoint = check_endpoint or hooks.check_endpoint
        check_keys = check_keys or hooks.check_keys
    index = index if index is not None else targeting.SubscriptionIndex()
    app[INDEX_KEY] = index
    app[_CHECKS_KEY] = _Checks(allow_http, check_endpoint, check_keys, AddressRate(per_address_per_hour),
                               max_subscriptions, AddressRate(per_address_per_hour * 10))
    app.on_startup.append(_load)
    app.router.add_post("/api/v1/subscriptions", create)
    app.router.add_get("/api/v1/subscriptions/{id}", read)
    app.router.add_put("/api/v1/subscriptions/{id}", replace)
    app.router.add_delete("/api/v1/subscriptions/{id}", remove)
    app.router.add_post("/api/v1/subscriptions/{id}/test", test_push)
    app.router.add_get("/api/v1/subscriptions/{id}/test/{test_id}", test_state)
    app.router.add_post("/api/v1/subscriptions/{id}/test/{test_id}/received", test_received)
    return index


async def _load(app: web.Application) -> None:
    hub = app[HUB_KEY]
    count = await hub.store.run(targeting.load_index, hub.store.store, app[INDEX_KEY])
    log.info("subscriptions loaded into the targeting index: %d", count)


def _error(cls: type[web.HTTPException], message: str, **headers: str) -> web.HTTPException:
    return cls(text=json.dumps({"error": message}, ensure_ascii=False), content_type="application/json",
               headers={**NO_STORE, **headers})


def _json(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers=NO_STORE,
                             dumps=lambda d: json.dumps(d, ensure_ascii=False))


async def _body(request: web.Request) -> tuple[subs.Subscription, str | None]:
    """The subscription of the request body and its ``exercise_token`` (None without one)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _too_large()
    raw = bytearray()
    while chunk := await request.content.read(MAX_BODY + 1 - len(raw)):
        raw += chunk
        if len(raw) > MAX_BODY:
            raise _too_large()
    try:
        data = json.loads(raw)
    except ValueError as err:
        raise _error(web.HTTPBadRequest, f"Ungültiges JSON / invalid JSON: {err}") from None
    checks = request.app[_CHECKS_KEY]
    token = data.pop("exercise_token", None) if isinstance(data, dict) else None
    try:
        if token is not None and (not isinstance(token, str) or data.get("exercise") is not True):
            raise subs.SubscriptionError("Ungültiger Wert / invalid value: exercise_token: Text, nur mit "
                                         "exercise: true / a string, only with exercise: true")
        sub = subs.parse_subscription(data, registry=registry(), check_endpoint=checks.check_endpoint,
                                      check_keys=checks.check_keys, allow_http=checks.allow_http)
    except subs.SubscriptionError as err:
        raise _error(web.HTTPBadRequest, str(err)) from None
    return sub, token


def _too_large() -> web.HTTPException:
    return web.HTTPRequestEntityTooLarge(
        max_size=MAX_BODY, actual_size=MAX_BODY + 1, content_type="application/json", headers=NO_STORE,
        text=json.dumps({"error": f"Anfrage zu groß / request too large: höchstens / at most {MAX_BODY} Bytes"},
                        ensure_ascii=False))


def _credentials(request: web.Request) -> tuple[str, str]:
    """(id, token); a malformed id is simply not found, a missing token is 401."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 256:
        raise _error(web.HTTPUnauthorized, "Token fehlt / missing token: Authorization: Bearer <token>",
                     **{"WWW-Authenticate": "Bearer"})
    sub_id = request.match_info["id"]
    if not _ID.fullmatch(sub_id):
        raise _error(web.HTTPNotFound, _NOT_FOUND)
    return sub_id, token


async def create(request: web.Request) -> web.Response:
    checks = request.app[_CHECKS_KEY]
    wait_s = checks.rate.hit(client_address(request))
    if wait_s:
        raise refusal(web.HTTPTooManyRequests, "Zu viele Abo-Anfragen von dieser Adresse, bitte später erneut "
                      "versuchen / too many subscription requests from this address, please try again later", wait_s)
    sub, exercise_token = await _body(request)
    hub = request.app[HUB_KEY]
    full = len(request.app[INDEX_KEY]) >= checks.max_subscriptions
    try:
        sub_id, token = await hub.store.run(subs.create, hub.store.store, sub, exercise_token=exercise_token,
                                            at_capacity=full)
    except subs.ExerciseRefused as err:
        raise _error(web.HTTPForbidden, str(err)) from None
    except subs.SubscriptionsFull as err:
        log.warning("subscription refused: %d subscriptions, [push] max_subscriptions reached",
                    len(request.app[INDEX_KEY]))
        raise refusal(web.HTTPServiceUnavailable, str(err), 3600) from None
    request.app[INDEX_KEY].put(sub_id, sub)
    hub.events.publish(SubscriptionsChanged((sub_id,)))  # every other node's index too (hub.cluster)
    response = _json({"id": sub_id, "token": token, "subscription": sub.as_dict()}, status=201)
    response.headers["Location"] = f"/api/v1/subscriptions/{sub_id}"
    return response


async def read(request: web.Request) -> web.Response:
    sub_id, token = _credentials(request)
    hub = request.app[HUB_KEY]
    sub = await hub.store.run(subs.get, hub.store.store, sub_id, token)
    if sub is None:
        raise _error(web.HTTPNotFound, _NOT_FOUND)
    return _json({"id": sub_id, "subscription": sub.as_dict()})


async def replace(request: web.Request) -> web.Response:
    sub_id, token = _credentials(request)
    sub, exercise_token = await _body(request)
    hub = request.app[HUB_KEY]
    try:
        found = await hub.store.run(subs.update, hub.store.store, sub_id, token, sub, exercise_token=exercise_token)
    except subs.EndpointTaken as err:
        raise _error(web.HTTPConflict, str(err)) from None
    except subs.ExerciseRefused as err:
        raise _error(web.HTTPForbidden, str(err)) from None
    if not found:
        raise _error(web.HTTPNotFound, _NOT_FOUND)
    request.app[INDEX_KEY].put(sub_id, sub)
    hub.events.publish(SubscriptionsChanged((sub_id,)))
    return _json({"id": sub_id, "subscription": sub.as_dict()})


async def remove(request: web.Request) -> web.Response:
    sub_id, token = _credentials(request)
    hub = request.app[HUB_KEY]
    if not await hub.store.run(subs.delete, hub.store.store, sub_id, token):
        raise _error(web.HTTPNotFound, _NOT_FOUND)
    request.app[INDEX_KEY].remove(sub_id)
    hub.events.publish(SubscriptionsChanged((sub_id,)))
    return web.Response(status=204, headers=NO_STORE)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def test_push(request: web.Request) -> web.Response:
    """Queue a test notification for the subscription (its token), through the push channel's outbox."""
    sub_id, token = _credentials(request)
    hub = request.app[HUB_KEY]
    try:
        started = await hub.store.run(testpush.start, hub.store.store, sub_id, token, now_ms=_now_ms())
    except testpush.TooManyTests as err:
        raise refusal(web.HTTPTooManyRequests, str(err), err.retry_after_s) from None
    if started is None:
        raise _error(web.HTTPNotFound, _NOT_FOUND)
    hub.events.publish(Queued(frozenset({"push"})))
    log.info("test push queued for a subscription")
    return _json({"id": started.test_id, "state": "sending", "wait_s": testpush.WAIT_S}, status=202)


async def test_state(request: web.Request) -> web.Response:
    sub_id, token = _credentials(request)
    test_id = request.match_info["test_id"]
    hub = request.app[HUB_KEY]
    found = None
    if _ID.fullmatch(test_id):
        found = await hub.store.run(testpush.state, hub.store.store, sub_id, token, test_id)
    if found is None:
        raise _error(web.HTTPNotFound, "Unbekannter Test / unknown test")
    return _json(found)


async def test_received(request: web.Request) -> web.Response:
    """The service worker showed the test push (authorised by the test's random id, which only the push carried)."""
    wait_s = request.app[_CHECKS_KEY].receipts.hit(client_address(request))
    if wait_s:
        raise refusal(web.HTTPTooManyRequests, "Zu viele Anfragen / too many requests", wait_s)
    sub_id, test_id = request.match_info["id"], request.match_info["test_id"]
    hub = request.app[HUB_KEY]
    ok = bool(_ID.fullmatch(sub_id) and _ID.fullmatch(test_id)) and await hub.store.run(
        testpush.received, hub.store.store, sub_id, test_id, now_ms=_now_ms())
    if not ok:
        raise _error(web.HTTPNotFound, "Unbekannter Test / unknown test")
    return web.Response(status=204, headers=NO_STORE)
