"""Per-address limits for public endpoints: a rate per hour (:class:`AddressRate`) and open connections
(:class:`AddressSlots`), keyed by :func:`address_key` of :func:`hub.web.client.client_address`.

Both live in memory and are bounded: at most ``max_addresses`` addresses are tracked (the oldest are forgotten
first), so a flood of addresses cannot grow them without end. An IPv6 client counts by its /64 network (one line
or one host has a whole /64 to choose addresses from); IPv4 by its address.
"""

from __future__ import annotations

import collections
import ipaddress
import json
import math
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

MAX_ADDRESSES = 100_000


def address_key(address: str) -> str:
    """The key an address counts under: IPv6 by its /64, anything else as given."""
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        return address
    if addr.version == 6:
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


class AddressRate:
    """At most ``limit`` events per address in a sliding ``window_s``; :meth:`hit` counts one and says how many
    seconds to wait (0: allowed)."""

    def __init__(self, limit: int, window_s: float = 3600.0, *, max_addresses: int = MAX_ADDRESSES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window_s, self.max_addresses, self.clock = limit, window_s, max_addresses, clock
        self._hits: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()

    def hit(self, address: str) -> int:
        """Count an event for ``address``; 0 if within the limit, else the seconds until one is allowed again."""
        if self.limit <= 0:
            return 0
        now, key = self.clock(), address_key(address)
        times = self._hits.pop(key, None) or collections.deque()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        self._hits[key] = times  # most recently used last
        if len(times) >= self.limit:
            return max(1, math.ceil(times[0] + self.window_s - now))
        times.append(now)
        while len(self._hits) > self.max_addresses:
            self._hits.popitem(last=False)
        return 0


class AddressSlots:
    """Open connections in total and per address; :meth:`take` returns a release function or None when full."""

    def __init__(self, total: int, per_address: int) -> None:
        self.total, self.per_address = total, per_address
        self.open = 0
        self._by_key: dict[str, int] = {}

    def take(self, address: str) -> Callable[[], None] | None:
        key = address_key(address)
        if self.open >= self.total or self._by_key.get(key, 0) >= self.per_address:
            return None
        self.open += 1
        self._by_key[key] = self._by_key.get(key, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self.open -= 1
            left = self._by_key.get(key, 1) - 1
            if left > 0:
                self._by_key[key] = left
            else:
                self._by_key.pop(key, None)
        return release

    def of(self, address: str) -> int:
        return self._by_key.get(address_key(address), 0)


def refusal(cls: type[web.HTTPException], message: str, retry_after_s: int, **extra: Any) -> web.HTTPException:
    """A JSON refusal ``{"error": message}`` with ``Retry-After`` that closes the connection (so a client that
    never reads does not keep a descriptor on a keep-alive connection)."""
    exc = cls(text=json.dumps({"error": message, **extra}, ensure_ascii=False), content_type="application/json",
              headers={"Retry-After": str(max(1, int(retry_after_s))), "Cache-Control": "no-store"})
    exc.force_close()
    return exc
