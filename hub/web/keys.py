"""The web application's typed keys for the hub's services (:class:`~hub.services.Services`), set by
:func:`hub.web.app.make_app`. A handler takes the one service it needs (``request.app[STORE_KEY]``); ``HUB_KEY``
holds the whole record for pages that use several. Kept apart from hub.web.app so the route modules it mounts can
import the keys without an import cycle.
"""

from __future__ import annotations

from aiohttp import web

from hub.decide.router import Router
from hub.events import Bus
from hub.health import Health
from hub.metrics import Metrics
from hub.services import ConfigRef, Services
from hub.store.db import AsyncStore
from hub.supervise import Supervisor

HUB_KEY = web.AppKey("hub", Services)
CONFIG_KEY = web.AppKey("config", ConfigRef)
"""The config in force (``app[CONFIG_KEY].current``; SIGHUP may replace it)."""
STORE_KEY = web.AppKey("store", AsyncStore)
EVENTS_KEY = web.AppKey("events", Bus)
METRICS_KEY = web.AppKey("metrics", Metrics)
HEALTH_KEY = web.AppKey("health", Health)
TASKS_KEY = web.AppKey("tasks", Supervisor)
ROUTER_KEY = web.AppKey("router", Router)
"""The rules stage (absent where a kit serves the web without it)."""
VAPID_KEY = web.AppKey("vapid_public_key", str)
"""The hub's VAPID public key, the browsers' ``applicationServerKey`` (absent: push is not set up)."""
SITES_KEY = web.AppKey("sites", list)
"""The listening sites (filled once they start): /metrics reports the connections they refused."""

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
