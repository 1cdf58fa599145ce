"""Access to the control-room console over the web: login and logout routes, sessions, CSRF and security headers.

:func:`setup_auth` installs, for every path under the console prefix (``/console`` by default):

- ``GET/POST {prefix}/login`` (HTML form, or JSON ``{"name", "password"}`` answered with JSON; 429 with
  ``Retry-After`` while :mod:`hub.access.login_throttle` makes the name and client address wait, the password unchecked)
  and ``POST {prefix}/logout``; ``GET {prefix}/api/me``;
- a middleware that wants a valid session everywhere under the prefix except the login page and ``static/``
  (HTML requests are sent to the login page with 303, ``/api/`` and JSON requests get 401 JSON), refuses
  state-changing requests without the session's CSRF token (header ``X-CSRF-Token`` or form field ``csrf_token``) or
  from another origin with 403, and puts the :class:`hub.access.auth.User` and :class:`hub.access.auth.Session` into
  ``request[USER_KEY]`` and ``request[SESSION_KEY]``;
- ``Cache-Control: no-store``, ``X-Frame-Options: DENY`` and a CSP with ``frame-ancestors 'none'`` on every console
  response (also streamed ones and errors).

Handlers check permissions with :func:`require` (or the :func:`requires` decorator).
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import html
import json
import math
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web
from argon2 import PasswordHasher

from hub.access import auth
from hub.access.login_throttle import Throttle
from hub.store.clock import now_utc
from hub.store.db import AsyncStore
from hub.web.client import client_address

COOKIE = "warnhub_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CONSOLE_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'; object-src 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HASH_WORKERS = 2


@dataclass(slots=True)
class AuthSettings:
    store: AsyncStore
    prefix: str = "/console"
    idle: timedelta = timedelta(minutes=30)
    max_age: timedelta = timedelta(hours=12)
    throttle: Throttle = field(default_factory=Throttle)
    clock: Callable[[], datetime] = now_utc
    hasher: PasswordHasher | None = None
    cookie: str = COOKIE
    secure_cookie: bool | None = None
    """None: ``Secure`` when the request came over TLS; True behind a proxy that terminates TLS."""
    hash_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=HASH_WORKERS, thread_name_prefix="argon2"))
    """Password checks run here, never in the default executor the pages use: Argon2 takes 64 MiB and tens of
    milliseconds a check, so a flood of logins waits here and cannot take the pages' threads or the memory."""

    def secure(self, request: web.Request) -> bool:
        return request.secure if self.secure_cookie is None else self.secure_cookie

    def under(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")

    def public(self, path: str) -> bool:
        """Paths under the prefix that need no session."""
        rest = path[len(self.prefix):]
        return rest == "/login" or rest.startswith("/static/")


AUTH_KEY = web.AppKey("auth", AuthSettings)
USER_KEY = web.RequestKey("user", auth.User)
"""The signed-in user of a console request (set by the sign-in middleware)."""
SESSION_KEY = web.RequestKey("session", auth.Session)


def setup_auth(app: web.Application, store: AsyncStore, *, prefix: str = "/console", idle_s: float = 1800,
               max_age_s: float = 12 * 3600, throttle: Throttle | None = None,
               clock: Callable[[], datetime] = now_utc, hasher: PasswordHasher | None = None,
               secure_cookie: bool | None = None) -> AuthSettings:
    """Install console access on ``app`` (before it starts); returns the settings (also ``app[AUTH_KEY]``)."""
    settings = AuthSettings(store, prefix.rstrip("/"), timedelta(seconds=idle_s), timedelta(seconds=max_age_s),
                            throttle or Throttle(), clock, hasher, secure_cookie=secure_cookie)
    app[AUTH_KEY] = settings

    async def purge(_app: web.Application) -> None:
        await store.run(auth.purge, store.store, idle=settings.idle, max_age=settings.max_age,
                        throttle=settings.throttle, now=settings.clock())

    async def close_pool(_app: web.Application) -> None:
        settings.hash_pool.shutdown(wait=False, cancel_futures=True)

    async def headers(request: web.Request, response: web.StreamResponse) -> None:
        if settings.under(request.path):
            response.headers.update(CONSOLE_HEADERS)

    app.on_startup.append(purge)
    app.on_cleanup.append(close_pool)
    app.on_response_prepare.append(headers)
    app.middlewares.append(_middleware(settings))
    p = settings.prefix
    app.router.add_get(f"{p}/login", functools.partial(login_page, settings=settings))
    app.router.add_post(f"{p}/login", functools.partial(login, settings=settings))
    app.router.add_post(f"{p}/logout", functools.partial(logout, settings=settings))
    app.router.add_get(f"{p}/api/me", me)
    return settings


# -- middleware ----------------------------------------------------------------------------------------------------


def wants_json(request: web.Request, settings: AuthSettings) -> bool:
    if request.path.startswith(settings.prefix + "/api/"):
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def json_error(exc: type[web.HTTPException], error: str, message: str, **extra: Any) -> web.HTTPException:
    return exc(text=json.dumps({"error": error, "message": message, **extra}, ensure_ascii=False),
               content_type="application/json")


def _same_origin(request: web.Request) -> bool:
    """A browser names the origin of a state-changing request; refuse other sites (a second wall behind CSRF)."""
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    if origin == "null":  # what a page under "Referrer-Policy: no-referrer" (ours) sends with every POST
        return request.headers.get("Sec-Fetch-Site") == "same-origin"
    return urlsplit(origin).netloc.lower() == request.host.lower()


async def _csrf_ok(request: web.Request, expected: str) -> bool:
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()  # cached: the handler reads it again
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


async def current(request: web.Request, settings: AuthSettings) -> tuple[auth.User, auth.Session] | None:
    """The valid session of the request's cookie, if any."""
    token = request.cookies.get(settings.cookie)
    if not token or len(token) > 200:
        return None
    store = settings.store
    return await store.run(auth.load_session, store.store, token, idle=settings.idle, max_age=settings.max_age,
                           now=settings.clock())


def _middleware(settings: AuthSettings) -> Any:
    @web.middleware
    async def console_access(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not settings.under(request.path):
            return await handler(request)
        unsafe = request.method in UNSAFE_METHODS
        if unsafe and not _same_origin(request):
            raise json_error(web.HTTPForbidden, "origin", "Anfrage von fremder Seite / cross-origin request refused")
        if settings.public(request.path):
            return await handler(request)
        found = await current(request, settings)
        if found is None:
            if wants_json(request, settings):
                raise json_error(web.HTTPUnauthorized, "unauthenticated",
                                 "Bitte anmelden / please sign in", login=f"{settings.prefix}/login")
            target = request.path_qs if request.method == "GET" else settings.prefix + "/"
            raise web.HTTPSeeOther(f"{settings.prefix}/login?next={quote(target, safe='')}")
        user, session = found
        if unsafe and not await _csrf_ok(request, session.csrf):
            raise json_error(web.HTTPForbidden, "csrf", "CSRF-Token fehlt oder falsch / missing or wrong CSRF token")
        request[USER_KEY], request[SESSION_KEY] = user, session
        return await handler(request)

    return console_access


# -- permissions ---------------------------------------------------------------------------------------------------


def require(request: web.Request, permission: str) -> auth.User:
    """The signed-in user if they hold ``permission``, else 401/403 with a JSON body."""
    user: auth.User | None = request.get(USER_KEY)
    if user is None:
        raise json_error(web.HTTPUnauthorized, "unauthenticated", "Bitte anmelden / please sign in")
    if not user.can(permission):
        raise json_error(web.HTTPForbidden, "forbidden",
                         f"Keine Berechtigung „{permission}“ / permission {permission!r} required",
                         permission=permission)
    return user


def requires(permission: str) -> Callable[[Handler], Handler]:
    """Decorator form of :func:`require` for handlers."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            require(request, permission)
            return await handler(request)

        return checked

    return wrap


# -- routes --------------------------------------------------------------------------------------------------------


_PAGE = """<!doctype html>
<html lang="de"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/static/console/icon.svg" type="image/svg+xml">
<title>Anmeldung Leitstelle / Control-room sign-in</title>
<style>body{{font-family:system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}}
label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.4rem;box-sizing:border-box}}
button{{margin-top:1rem;padding:.5rem 1rem}}.err{{color:#a00;font-weight:bold}}.en{{color:#555}}</style></head>
<body><h1>Anmeldung Leitstelle <span class="en">/ Control-room sign-in</span></h1>
{message}
<form method="post" action="{action}">
<input type="hidden" name="next" value="{next}">
<label for="name">Benutzername <span class="en">/ user name</span></label>
<input id="name" name="name" autocomplete="username" required autofocus value="{name}">
<label for="password">Passwort <span class="en">/ password</span></label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Anmelden <span class="en">/ sign in</span></button>
</form></body></html>
"""


def _safe_next(value: str | None, settings: AuthSettings) -> str:
    """Only back into the console: no other host, no scheme-relative ``//evil``."""
    home = settings.prefix + "/"
    if not value or not settings.under(value.split("?", 1)[0]) or value.startswith("//") or "\\" in value:
        return home
    return value


def _page(settings: AuthSettings, *, next_url: str, name: str = "", message: str = "",
          status: int = 200) -> web.Response:
    text = _PAGE.format(message=f'<p class="err">{html.escape(message)}</p>' if message else "",
                        action=html.escape(f"{settings.prefix}/login"), next=html.escape(next_url),
                        name=html.escape(name))
    return web.Response(text=text, content_type="text/html", charset="utf-8", status=status)


async def login_page(request: web.Request, *, settings: AuthSettings) -> web.StreamResponse:
    next_url = _safe_next(request.query.get("next"), settings)
    if await current(request, settings) is not None:
        raise web.HTTPSeeOther(next_url)
    return _page(settings, next_url=next_url)


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _me(user: auth.User, session: auth.Session) -> dict[str, Any]:
    return {"name": user.name, "roles": sorted(user.roles), "scopes": list(user.scopes),
            "permissions": user.permissions(), "csrf": session.csrf}


async def login(request: web.Request, *, settings: AuthSettings) -> web.StreamResponse:
    as_json = request.content_type == "application/json"
    if as_json:
        try:
            body = await request.json()
        except ValueError:
            raise json_error(web.HTTPBadRequest, "bad_request", "Kein JSON / not JSON") from None
        body = body if isinstance(body, dict) else {}
    else:
        body = dict(await request.post())
    name, password = body.get("name"), body.get("password")
    next_url = _safe_next(body.get("next") if isinstance(body.get("next"), str) else None, settings)
    if not isinstance(name, str) or not isinstance(password, str) or not name or not password:
        if as_json:
            raise json_error(web.HTTPBadRequest, "bad_request", "name und password nötig / name and password needed")
        return _page(settings, next_url=next_url, message="Bitte Name und Passwort angeben / enter name and password",
                     status=400)
    store, now = settings.store, settings.clock()
    remote = client_address(request)
    # counted before the password is checked: concurrent attempts cannot all pass the throttle together
    attempt = await store.run(auth.login_begin, store.store, name, remote, throttle=settings.throttle, now=now)
    ok, new_hash = False, None
    if attempt.retry_after is None:
        ok, new_hash = await asyncio.get_running_loop().run_in_executor(
            settings.hash_pool, auth.check_password, attempt.password_hash, password, settings.hasher)
    result = auth.login_failed(attempt, ok)
    if result is None:
        result = await store.run(auth.login_finish, store.store, attempt, ok, new_hash, now=now)
    if result.user is None:
        return _refused(settings, result, as_json=as_json, next_url=next_url, name=name)
    old = request.cookies.get(settings.cookie)
    if old:  # a fresh session at every login: a session id planted before login is worth nothing
        await store.run(auth.end_session, store.store, old, reason="replaced by login", now=now)
    token, session = await store.run(auth.start_session, store.store, result.user, remote, now=now)
    response: web.StreamResponse
    if "provider" in result.user.roles and next_url == settings.prefix + "/":  # a provider's home is /provider/
        next_url = "/provider/"
    response = web.json_response(_me(result.user, session)) if as_json else _see_other(next_url)
    response.set_cookie(settings.cookie, token, httponly=True, samesite="Strict", path="/",
                        secure=settings.secure(request))
    return response


def _wait(seconds: int) -> tuple[str, str]:
    if seconds < 120:
        return f"{seconds} Sekunden", f"{seconds} seconds"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} Minuten", f"{minutes} minutes"


def _refused(settings: AuthSettings, result: auth.LoginResult, *, as_json: bool, next_url: str,
             name: str) -> web.Response:
    """429 with Retry-After while the throttle makes this name and address (or the address) wait, else 401; one
    message for every other reason: a stranger learns nothing about which names exist."""
    retry = math.ceil(result.retry_after) if result.retry_after else None
    headers = {"Retry-After": str(retry)} if retry else {}
    if result.reason == "throttled" and retry:
        de, en = _wait(retry)
        message = (f"Zu viele Fehlversuche: bitte in {de} erneut versuchen / "
                   f"too many failed attempts: please try again in {en}")
        status, error = 429, "throttled"
    else:
        message = "Anmeldung fehlgeschlagen / sign-in failed"
        if retry:
            de, en = _wait(retry)
            message = (f"Anmeldung fehlgeschlagen; nächster Versuch in {de} möglich / "
                       f"sign-in failed; next attempt possible in {en}")
        status, error = 401, "login_failed"
    if as_json:
        body: dict[str, Any] = {"error": error, "message": message}
        if retry:
            body["retry_after"] = retry
        return web.json_response(body, status=status, headers=headers)
    page = _page(settings, next_url=next_url, name=name[:64], message=message, status=status)
    page.headers.update(headers)
    return page


async def logout(request: web.Request, *, settings: AuthSettings) -> web.StreamResponse:
    token = request.cookies.get(settings.cookie, "")
    await settings.store.run(auth.end_session, settings.store.store, token, now=settings.clock())
    response: web.StreamResponse
    if wants_json(request, settings) or request.content_type == "application/json":
        response = web.json_response({"ok": True})
    else:
        response = _see_other(f"{settings.prefix}/login")
    response.del_cookie(settings.cookie, path="/", secure=settings.secure(request), httponly=True,
                        samesite="Strict")
    return response


async def me(request: web.Request) -> web.Response:
    user = require(request, "read")
    return web.json_response(_me(user, request[SESSION_KEY]))
