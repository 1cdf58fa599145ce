"""The polling framework every HTTP source shares (GUIDE.md section 4).

:class:`PollingSource` owns the loop: interval, a timeout around each poll, exponential backoff with jitter while
failing, and health. :class:`Http` owns the requests: conditional GET (ETag / Last-Modified; a 304 costs nothing),
a size limit per response, and clear errors for everything that can go wrong on the wire.

A subclass implements :meth:`PollingSource.poll`. It raises :class:`~hub.errors.SourceError` when nothing usable
came (the source is *down*: "unreachable" is never "no warnings"), returns a list of problems when it got only part
(the source is *degraded*; what came is used, nothing is ended on the strength of an incomplete fetch), and
returns an empty list when everything worked (*up*). Conditional-GET validators are kept only after a poll that
worked completely, so a body that failed to process is fetched again in full next time, not skipped by a 304.
"""

from __future__ import annotations

import abc
import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp

from hub import __version__
from hub.errors import FetchError, SourceError

if TYPE_CHECKING:
    from hub.config.load import LoadedConfig
    from hub.config.sections import HttpSourceConfig
    from hub.ports import SourceContext

USER_AGENT = f"warnhub/{__version__} (+https://github.com/warnhub/warnhub)"
_CHUNK = 64 * 1024


@dataclass(slots=True)
class Fetched:
    url: str
    status: int
    body: bytes
    content_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)


class Http:
    """GETs with conditional requests and a size limit, for one source."""

    def __init__(self, session: aiohttp.ClientSession, *, timeout_s: float, max_bytes: int) -> None:
        self.session = session
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self._validators: dict[str, tuple[str | None, str | None]] = {}
        self._pending: dict[str, tuple[str | None, str | None]] = {}
        self.requests = 0
        self.not_modified = 0

    async def get(self, url: str, *, conditional: bool = True, max_bytes: int | None = None) -> Fetched | None:
        """The body of ``url``, or None when the server says it has not changed since the last kept fetch.

        Raises FetchError for connection failures, timeouts, HTTP errors, truncated and oversized bodies.
        """
        limit = max_bytes or self.max_bytes
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"}
        if conditional and url in self._validators:
            etag, modified = self._validators[url]
            if etag:
                headers["If-None-Match"] = etag
            if modified:
                headers["If-Modified-Since"] = modified
        self.requests += 1
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self.session.get(url, headers=headers, allow_redirects=True, max_redirects=5) as resp:
                    if resp.status == 304:
                        self.not_modified += 1
                        return None
                    if resp.status >= 400:
                        raise FetchError(f"{url}: HTTP {resp.status} {resp.reason or ''}".strip())
                    if resp.content_length is not None and resp.content_length > limit:
                        raise FetchError(f"{url}: response of {resp.content_length} bytes exceeds the limit of "
                                         f"{limit}")
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in resp.content.iter_chunked(_CHUNK):
                        size += len(chunk)
                        if size > limit:
                            raise FetchError(f"{url}: response exceeds the limit of {limit} bytes")
                        chunks.append(chunk)
                    body = b"".join(chunks)
                    if conditional:
                        etag, modified = resp.headers.get("ETag"), resp.headers.get("Last-Modified")
                        if etag or modified:
                            self._pending[url] = (etag, modified)
                    return Fetched(url, resp.status, body, resp.content_type or "",
                                   {k: v for k, v in resp.headers.items()})
        except TimeoutError as err:
            raise FetchError(f"{url}: no complete answer within {self.timeout_s:g} s") from err
        except aiohttp.ClientPayloadError as err:
            raise FetchError(f"{url}: truncated response: {err}") from err
        except aiohttp.ClientError as err:
            raise FetchError(f"{url}: {type(err).__name__}: {err}") from err

    def commit(self) -> None:
        """The poll worked: remember the validators of what it fetched for the next conditional GET."""
        self._validators.update(self._pending)
        self._pending.clear()

    def discard(self) -> None:
        self._pending.clear()

    def forget(self, url: str) -> None:
        self._validators.pop(url, None)


def backoff_delay(interval_s: float, failures: int, max_s: float, *, rng: random.Random | None = None) -> float:
    """Seconds to wait after ``failures`` failed polls in a row: the interval, doubled per failure, capped, with
    jitter (between half and all of it) so many hubs do not retry in step."""
    if failures <= 0:
        return interval_s
    base = min(max_s, interval_s * 2 ** min(failures - 1, 16))
    r = rng or random
    return base * (0.5 + 0.5 * r.random())


class PollingSource(abc.ABC):
    """Owns interval, timeout, conditional GET, backoff and health; subclasses implement :meth:`poll`."""

    def __init__(self, settings: HttpSourceConfig, loaded: LoadedConfig, **_: Any) -> None:
        self.name = settings.name
        self.settings = settings
        self.loaded = loaded
        self.policy = loaded.source_policy(settings)
        self.http: Http | None = None
        self.polls = 0
        self.failures = 0

    @abc.abstractmethod
    async def poll(self, ctx: SourceContext, http: Http) -> list[str]:
        """One poll. Raise SourceError when nothing usable came; return problems when only part did."""

    async def run(self, ctx: SourceContext) -> None:
        session = ctx.http
        own = session is None
        if session is None:
            session = aiohttp.ClientSession()
        try:
            self.http = Http(session, timeout_s=self.settings.timeout_s, max_bytes=self.settings.max_bytes)
            while True:
                await self.poll_once(ctx)
                delay = backoff_delay(self.settings.interval_s, self.failures, self.settings.backoff_max_s)
                await asyncio.sleep(delay)
        finally:
            if own:
                await session.close()

    async def poll_once(self, ctx: SourceContext) -> list[str] | None:
        """Poll once and record the outcome in health; returns the problems, or None when it failed."""
        assert self.http is not None
        http = self.http
        started = time.monotonic()
        self.polls += 1
        try:
            # the whole poll (index plus every document it links) gets a bounded time, not just each request
            async with asyncio.timeout(self.settings.timeout_s * 4):
                problems = await self.poll(ctx, http)
        except (SourceError, TimeoutError) as err:
            http.discard()
            self.failures += 1
            msg = str(err) if isinstance(err, SourceError) else \
                f"poll did not finish within {self.settings.timeout_s * 4:g} s"
            ctx.health.down(self.name, msg)
            return None
        if problems:
            http.discard()  # something is missing: fetch everything in full next time, not a 304
        else:
            http.commit()
        self.failures = 0
        detail = {"poll_s": round(time.monotonic() - started, 3), "requests": http.requests,
                  "not_modified": http.not_modified}
        if problems:
            ctx.health.degraded(self.name, "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)"
                                                                       if len(problems) > 3 else ""),
                                detail=detail)
        else:
            ctx.health.up(self.name, detail=detail)
        return problems
