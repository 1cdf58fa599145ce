"""The web server's listening socket with an accept path that keeps descriptors in reserve (see hub.web.fdlimit).

:class:`GuardedSite` is an aiohttp ``TCPSite`` that accepts connections itself instead of asyncio's server loop:

- While fewer than ``reserve`` descriptors are free, a new connection gets a short ``503`` with ``Retry-After``
  (its text in each of the nine languages, one a line: it is sent before a request is read, so there is no
  ``Accept-Language`` to choose by) and is closed at once, so web clients can never take the descriptors intake
  and the store need.
- A connection that sends nothing for :data:`FIRST_BYTE_S` after it was accepted is closed: a client that only
  connects cannot hold a descriptor for ever (aiohttp waits for a first request without a time limit).
- If ``accept()`` still fails for want of descriptors, the socket is left alone for :data:`PAUSE_S` and one
  line is logged per :data:`LOG_EVERY_S` (asyncio's own server logs one line per attempt and retries in a loop:
  thousands a second).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from typing import Any

from aiohttp import web

from hub.i18n.catalogs import N_, translator
from hub.i18n.languages import CODES
from hub.web.fdlimit import FdBudget, budget

log = logging.getLogger("warnhub.web.site")

BATCH = 64
"""Connections accepted per wake-up at most (others wait for the next turn of the loop)."""
PAUSE_S = 0.5
LOG_EVERY_S = 10.0
RETRY_AFTER_S = 30
FIRST_BYTE_S = 10.0
_BUSY = N_("Der Server ist ausgelastet, bitte später erneut versuchen.")
_TEXT = "".join(dict.fromkeys(translator(code, "pages").gettext(_BUSY) + "\n" for code in CODES)).encode()
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Retry-After: %d\r\nConnection: close\r\nCache-Control: no-store\r\nContent-Length: %d\r\n\r\n"
        % (RETRY_AFTER_S, len(_TEXT))) + _TEXT
_OUT_OF = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class _Acceptor:
    """Accepts on a non-blocking listening socket and hands connections to aiohttp's protocol factory."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, factory: web.Server,
                 fds: FdBudget) -> None:
        self.loop, self.sock, self.factory, self.fds = loop, sock, factory, fds
        self.refused = 0
        self.failed = 0
        self._logged = float("-inf")
        self._tasks: set[asyncio.Task[Any]] = set()
        self._paused: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self.loop.add_reader(self.sock.fileno(), self._ready)

    def stop(self) -> None:
        if self._paused is not None:
            self._paused.cancel()
        self.loop.remove_reader(self.sock.fileno())

    def _ready(self) -> None:
        for _ in range(BATCH):
            try:
                conn, _addr = self.sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as err:
                self.failed += 1
                if err.errno not in _OUT_OF:
                    self._note(f"accept failed: {err!r}")
                    return
                self._note(f"accept failed: {err.strerror}")
                self.loop.remove_reader(self.sock.fileno())
                self._paused = self.loop.call_later(PAUSE_S, self._resume)
                return
            if self.fds.low():
                self._refuse(conn)
                continue
            self.fds.took()
            conn.setblocking(False)
            task = self.loop.create_task(self._serve(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, conn: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: _FirstByte(self.factory(), self.loop), conn)
        except OSError as err:
            log.debug("connection not set up: %r", err)
            conn.close()

    def _resume(self) -> None:
        self._paused = None
        if self.sock.fileno() >= 0:
            self.loop.add_reader(self.sock.fileno(), self._ready)

    def _refuse(self, conn: socket.socket) -> None:
        self.refused += 1
        try:
            conn.setblocking(False)
            conn.send(BUSY)
        except OSError:
            pass
        finally:
            conn.close()
        self._note(f"connection refused: fewer than {self.fds.reserve} file descriptors free")

    def _note(self, what: str) -> None:
        now = time.monotonic()
        if now - self._logged >= LOG_EVERY_S:
            self._logged = now
            log.warning("web: %s (refused %d, accept failures %d so far)", what, self.refused, self.failed)


class _FirstByte(asyncio.Protocol):
    """aiohttp's protocol for one connection, closed if the client sends nothing within :data:`FIRST_BYTE_S`."""

    def __init__(self, inner: asyncio.Protocol, loop: asyncio.AbstractEventLoop) -> None:
        self.inner = inner
        self._loop = loop
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._timer = self._loop.call_later(FIRST_BYTE_S, transport.abort)  # type: ignore[attr-defined]
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class GuardedSite(web.TCPSite):
    """``TCPSite`` whose accept path keeps :func:`hub.web.fdlimit.budget`'s reserve (see the module docstring)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, fds: FdBudget | None = None,
                 backlog: int = 128) -> None:
        super().__init__(runner, host, port, backlog=backlog)
        self.fds = fds or budget()
        self.acceptors: list[_Acceptor] = []

    async def start(self) -> None:
        self._runner._reg_site(self)  # what BaseSite.start does
        loop = asyncio.get_running_loop()
        factory = self._runner.server
        if factory is None:  # what TCPSite.start asserts
            raise RuntimeError("the runner is not set up: await runner.setup() before starting a site")
        server = await loop.create_server(factory, self._host, self._port, backlog=self._backlog,
                                          start_serving=False)
        self._server = server
        for wrapped in server.sockets:  # asyncio's server never serves them; close() still closes them
            sock = wrapped._sock  # type: ignore[attr-defined]  # the real socket behind asyncio's wrapper
            sock.listen(self._backlog)  # what asyncio's start_serving would do
            self.acceptors.append(_Acceptor(loop, sock, factory, self.fds))
        self._bound_port = server.sockets[0].getsockname()[1] if server.sockets else self._port
        for acceptor in self.acceptors:
            acceptor.start()

    @property
    def refused(self) -> int:
        return sum(a.refused for a in self.acceptors)

    async def stop(self) -> None:
        for acceptor in self.acceptors:
            acceptor.stop()
        await super().stop()
