"""A lean HTTP/1.1 client for Web Push POSTs: keep-alive connections per origin, one write per request.

Push services (FCM, Mozilla autopush, Apple, UnifiedPush distributors) take RFC 8030 pushes as plain HTTP/1.1
POSTs over TLS and keep connections alive, so a fan-out needs very little of HTTP: a request with a
``Content-Length`` body, a status line, a few response headers (``Retry-After``, ``Content-Length``,
``Transfer-Encoding``, ``Connection``) and a short excerpt of an error body. aiohttp's client costs some 80 µs of
CPU per request for generality a push never uses; this one is an :class:`asyncio.Protocol` that parses in
``data_received`` and costs a fraction of that.

What it does and does not do:

* ``http`` and ``https`` (verified TLS with the default context, ALPN ``http/1.1``); no proxies, no redirects (a
  3xx is an answer like any other), no compression (no ``Accept-Encoding`` is sent), no request pipelining.
* Responses are read to their end: ``Content-Length`` bodies, chunked bodies (with trailers), or bodies that run
  until the server closes. Interim 1xx responses are skipped. A body larger than :data:`MAX_DRAIN` is not read
  to its end: the connection is closed instead. Only the first :data:`BODY_KEEP` bytes are kept.
* A connection goes back to its origin's idle pool only if the response allows it (HTTP/1.1 without
  ``Connection: close``, HTTP/1.0 with ``Connection: keep-alive``), was complete, and left nothing unread;
  connections idle longer than :data:`IDLE_S` are closed rather than used.
* A request on a reused connection that the server closed before answering a single byte (a keep-alive race:
  the server had closed it while idle) is sent once more on a fresh connection.
* One deadline per request covers connecting, TLS, sending and the whole response (:class:`TimeoutError`);
  a connection whose request timed out or was cancelled is closed, never reused.

Errors: :class:`TimeoutError`, :class:`OSError` (refused, reset, DNS, TLS verification ...) and
:class:`HttpError` (a response that is not HTTP/1.x or is malformed).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import NamedTuple

from adapters.channels.pushcheck import Address, public_addresses

MAX_HEAD = 64 * 1024
"""Status line and headers of a response, at most."""
MAX_DRAIN = 64 * 1024
"""Response bodies up to this size are read to their end (keeping the connection); larger ones close it."""
BODY_KEEP = 300
"""Bytes of a response body kept for the caller (error excerpts)."""
IDLE_S = 15.0
"""An idle keep-alive connection older than this is closed instead of used (servers drop idle ones too)."""
MAX_IDLE = 256
"""Idle connections kept per origin."""


class HttpError(Exception):
    """The server's answer is not a well-formed HTTP/1.x response."""


class _NoAnswer(ConnectionResetError):
    """The connection was closed before a single byte of the response arrived."""


class Response(NamedTuple):
    status: int
    retry_after: str | None
    body: bytes
    """The first :data:`BODY_KEEP` bytes of the body."""


# parser states
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _UNTIL_CLOSE, _DONE = range(8)
_HEX = frozenset(b"0123456789abcdefABCDEF")
_CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION, _RETRY_AFTER = range(4)
_FIELDS = {b"content-length": _CONTENT_LENGTH, b"transfer-encoding": _TRANSFER_ENCODING, b"connection": _CONNECTION,
           b"retry-after": _RETRY_AFTER}


class _Conn(asyncio.Protocol):
    """One connection: at most one request at a time; the response is parsed as it arrives."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.idle_since = 0.0
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, str | None, bytes, bool]] | None = None
        self.got = False
        self.state = _DONE
        self.status = 0
        self.retry_after: str | None = None
        self.keep = False
        self.remaining = 0
        self.drained = 0
        self.excerpt = bytearray()

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():  # bytes nobody asked for: the connection is out of step
            self.abort()
            return
        self.got = True
        self.buf += data
        try:
            finished = self._feed(eof=False)
        except HttpError as err:
            self.abort()
            waiter.set_exception(err)
            return
        if finished:
            self._finish(waiter)

    def eof_received(self) -> bool:
        waiter = self.waiter
        self.lost = True
        if waiter is not None and not waiter.done():
            if not self.got:
                waiter.set_exception(_NoAnswer("the server closed the connection without answering"))
            else:
                try:
                    self._feed(eof=True)  # completes a body that runs until close, raises otherwise
                except HttpError as err:
                    waiter.set_exception(err)
                else:
                    self._finish(waiter)
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            err: ConnectionResetError
            if not self.got:
                err = _NoAnswer(f"connection lost before the answer: {exc}" if exc else
                                "the server closed the connection without answering")
            else:
                err = ConnectionResetError(f"connection lost during the answer: {exc}" if exc else
                                           "the server closed the connection during the answer")
            waiter.set_exception(err)

    # -- use

    def abort(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    def usable(self) -> bool:
        return not self.lost and self.transport is not None and not self.transport.is_closing()

    async def exchange(self, request: bytes, deadline: float) -> tuple[int, str | None, bytes, bool]:
        """Send ``request``, wait for the whole response: (status, Retry-After, body excerpt, reusable)."""
        if not self.usable():
            raise _NoAnswer("the connection was closed")
        assert self.transport is not None
        waiter = self.waiter = self.loop.create_future()
        self.got = False
        self.state = _HEAD
        self.buf.clear()
        self.transport.write(request)
        timer = self.loop.call_at(deadline, self._expire)
        try:
            return await waiter
        finally:
            timer.cancel()
            self.waiter = None

    # -- internals

    def _expire(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError())
        self.abort()

    def _finish(self, waiter: asyncio.Future[tuple[int, str | None, bytes, bool]]) -> None:
        keep = self.keep and not self.buf and not self.lost  # anything left over means the stream is out of step
        waiter.set_result((self.status, self.retry_after, bytes(self.excerpt), keep))

    def _take(self, n: int) -> None:
        """Consume ``n`` body bytes from the buffer, keeping the start of the body."""
        room = BODY_KEEP - len(self.excerpt)
        if room > 0:
            self.excerpt += self.buf[:min(n, room)]
        del self.buf[:n]

    def _feed(self, *, eof: bool) -> bool:
        """Parse what is buffered; True when the response is complete. Raises HttpError."""
        while True:
            done = _STEPS[self.state](self, eof)
            if done is not None:
                return done

    # each step parses one state: True when the response is complete, False to wait for more bytes, None to go on
    # with the state it moved to

    def _step_head(self, eof: bool) -> bool | None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise HttpError("response head too large")
            if eof:
                raise HttpError("connection closed within the response head")
            return False
        head = bytes(buf[:end])
        del buf[:end + 4]
        self._head(head)
        return None

    def _step_length(self, eof: bool) -> bool | None:
        n = min(len(self.buf), self.remaining)
        self._take(n)
        self.remaining -= n
        if self.remaining == 0:
            self.state = _DONE
            return True
        if eof:
            raise HttpError("connection closed within the response body")
        return False

    def _step_chunk_size(self, eof: bool) -> bool | None:
        buf = self.buf
        end = buf.find(b"\r\n")
        if end < 0:
            if len(buf) > 1024:
                raise HttpError("chunk size line too long")
            if eof:
                raise HttpError("connection closed within a chunked body")
            return False
        size_text = bytes(buf[:end]).split(b";", 1)[0].strip()
        del buf[:end + 2]
        if not size_text or len(size_text) > 16 or not _HEX.issuperset(size_text):
            raise HttpError("bad chunk size")
        size = int(size_text, 16)
        if size == 0:
            self.state = _TRAILERS
            return None
        self.drained += size
        if self.drained > MAX_DRAIN:  # not worth reading: keep what we have, drop the connection
            self.keep = False
            self.state = _DONE
            return True
        self.remaining = size
        self.state = _CHUNK_DATA
        return None

    def _step_chunk_data(self, eof: bool) -> bool | None:
        n = min(len(self.buf), self.remaining)
        self._take(n)
        self.remaining -= n
        if self.remaining:
            if eof:
                raise HttpError("connection closed within a chunked body")
            return False
        self.state = _CHUNK_END
        return None

    def _step_chunk_end(self, eof: bool) -> bool | None:
        buf = self.buf
        if len(buf) < 2:
            if eof:
                raise HttpError("connection closed within a chunked body")
            return False
        if buf[:2] != b"\r\n":
            raise HttpError("chunk not followed by CRLF")
        del buf[:2]
        self.state = _CHUNK_SIZE
        return None

    def _step_trailers(self, eof: bool) -> bool | None:
        buf = self.buf
        end = buf.find(b"\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise HttpError("trailers too large")
            if eof:
                raise HttpError("connection closed within the trailers")
            return False
        del buf[:end + 2]
        if end == 0:  # the empty line after the trailer fields
            self.state = _DONE
            return True
        return None

    def _step_until_close(self, eof: bool) -> bool | None:
        self.drained += len(self.buf)
        self._take(len(self.buf))
        if eof or self.drained > MAX_DRAIN:
            self.state = _DONE
            return True
        return False

    def _step_done(self, eof: bool) -> bool | None:
        return True

    def _head(self, head: bytes) -> None:
        lines = head.lower().split(b"\r\n")  # names are case-insensitive; values we read are too, or digits
        first = lines[0]
        code = first[9:12]
        if first[:7] != b"http/1." or first[7:8] not in (b"0", b"1") or first[8:9] != b" " or not code.isdigit() or \
                first[12:13] not in (b"", b" "):
            raise HttpError(f"not an HTTP/1.x status line: {head[:len(first)][:60]!r}")
        status = int(code)
        fields = _fields(head, lines)
        if 100 <= status < 200:
            if status == 101:
                raise HttpError("unexpected 101 Switching Protocols")
            self.state = _HEAD  # an interim response: the real one follows
            return
        self.status = status
        self.retry_after = fields.retry_after
        self.keep = (b"close" not in fields.connection) if first[7:8] == b"1" else (b"keep-alive" in fields.connection)
        self.excerpt = bytearray()
        self.drained = 0
        self._frame(status, fields)

    def _frame(self, status: int, fields: _Fields) -> None:
        """How the body is delimited (RFC 9112 section 6.3), as the next state."""
        length = fields.length
        if status in (204, 304):
            self.state = _DONE
        elif fields.chunked:
            if length is not None:
                self.keep = False  # RFC 9112 section 6.3: both framings given, close after this response
            self.state = _CHUNK_SIZE
        elif fields.other_coding:
            self.keep = False
            self.state = _UNTIL_CLOSE
        elif length is not None:
            if length > MAX_DRAIN:
                self.keep = False
                length = min(length, BODY_KEEP)
            self.remaining = length
            self.state = _LENGTH if length else _DONE
        else:
            self.keep = False
            self.state = _UNTIL_CLOSE


_STEPS = {_HEAD: _Conn._step_head, _LENGTH: _Conn._step_length, _CHUNK_SIZE: _Conn._step_chunk_size,
          _CHUNK_DATA: _Conn._step_chunk_data, _CHUNK_END: _Conn._step_chunk_end, _TRAILERS: _Conn._step_trailers,
          _UNTIL_CLOSE: _Conn._step_until_close, _DONE: _Conn._step_done}


class _Fields(NamedTuple):
    """The header fields of a response head the client reads."""

    length: int | None
    chunked: bool
    other_coding: bool
    connection: list[bytes]
    retry_after: str | None


def _fields(head: bytes, lines: list[bytes]) -> _Fields:
    """The fields of a response head (``lines``: the head lowercased, split in lines). Raises HttpError."""
    length: int | None = None
    chunked = other_coding = False
    connection: list[bytes] = []
    retry_after: str | None = None
    for n in range(1, len(lines)):
        line = lines[n]
        if line[:1] in (b" ", b"\t"):
            continue  # obsolete line folding: a continuation of a header we do not need
        name, sep, value = line.partition(b":")
        if not sep or name[-1:] in (b" ", b"\t"):
            raise HttpError("malformed response header line")
        field = _FIELDS.get(name)
        if field is None:
            continue
        if field == _CONTENT_LENGTH:
            values = {v.strip() for v in value.split(b",")}
            if len(values) != 1 or not (v := values.pop()).isdigit() or (length is not None and int(v) != length):
                raise HttpError("bad Content-Length")
            length = int(v)
        elif field == _TRANSFER_ENCODING:
            codings = [c for c in (c.strip() for c in value.split(b",")) if c]
            if codings:
                chunked = codings[-1] == b"chunked"
                other_coding = not chunked
        elif field == _CONNECTION:
            connection += [c.strip() for c in value.split(b",")]
        else:  # Retry-After, as sent (an HTTP date is case-sensitive to some parsers)
            retry_after = head.split(b"\r\n")[n].partition(b":")[2].strip().decode("latin-1")
    return _Fields(length, chunked, other_coding, connection, retry_after)


class PushClient:
    """Keep-alive HTTP/1.1 connections per origin, for POSTs. Bound to the event loop that first uses it."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, idle_s: float = IDLE_S,
                 public_only: bool = True) -> None:
        """``public_only``: an ``https`` host is resolved first and only its public addresses are connected to
        (:class:`NotPublic` if it has none); ``http`` is only ever allowed to loopback test receivers."""
        self._ssl = ssl_context
        self.idle_s = idle_s
        self.public_only = public_only
        self._idle: dict[Address, list[_Conn]] = {}
        self._closed = False

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            ctx = ssl.create_default_context()
            ctx.set_alpn_protocols(["http/1.1"])
            self._ssl = ctx
        return self._ssl

    @staticmethod
    def request_head(address: Address, target: str, headers: bytes) -> bytes:
        """The request line, ``Host`` and the caller's header lines (each ending in CRLF), up to the length."""
        return b"".join((b"POST ", target.encode("ascii"), b" HTTP/1.1\r\nHost: ", address.host_header.encode("ascii"),
                         b"\r\n", headers))

    async def post(self, address: Address, head: bytes, body: bytes, timeout_s: float) -> Response:
        """POST ``body`` with ``head`` (from :meth:`request_head`); the whole exchange within ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        request = b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)
        conn = self._take(address)
        reused = conn is not None
        while True:
            if conn is None:
                conn = await self._connect(address, deadline, loop)
            try:
                status, retry_after, excerpt, keep = await conn.exchange(request, deadline)
            except _NoAnswer:
                conn.abort()
                if reused:  # the server had closed the idle connection: once more, on a new one
                    conn, reused = None, False
                    continue
                raise
            except BaseException:
                conn.abort()  # timed out, cancelled or broken: never reuse
                raise
            if keep and not self._closed:
                self._put(address, conn)
            else:
                conn.close()
            return Response(status, retry_after, excerpt)

    async def _connect(self, address: Address, deadline: float, loop: asyncio.AbstractEventLoop) -> _Conn:
        if self._closed:
            raise ConnectionAbortedError("the push client is closed")
        tls = self.ssl_context() if address.scheme == "https" else None
        async with asyncio.timeout_at(deadline):
            if tls is None or not self.public_only:
                _, conn = await loop.create_connection(lambda: _Conn(loop), address.host, address.port, ssl=tls,
                                                       server_hostname=address.host if tls else None,
                                                       happy_eyeballs_delay=0.25)
                return conn
            # connect to the checked addresses themselves, so a second lookup cannot rebind the name elsewhere
            failure: OSError | None = None
            for ip in await public_addresses(address.host, address.port, loop):
                try:
                    _, conn = await loop.create_connection(lambda: _Conn(loop), ip, address.port, ssl=tls,
                                                           server_hostname=address.host)
                    return conn
                except OSError as err:
                    failure = err
            assert failure is not None
            raise failure

    def _take(self, address: Address) -> _Conn | None:
        stack = self._idle.get(address)
        if not stack:
            return None
        oldest = time.monotonic() - self.idle_s
        while stack:
            conn = stack.pop()
            if conn.usable() and conn.idle_since >= oldest:
                return conn
            conn.close()
        return None

    def _put(self, address: Address, conn: _Conn) -> None:
        now = time.monotonic()
        conn.idle_since = now
        stack = self._idle.setdefault(address, [])
        stack.append(conn)
        while len(stack) > MAX_IDLE or stack[0].idle_since < now - self.idle_s:
            stack.pop(0).close()

    def idle_connections(self) -> int:
        return sum(len(s) for s in self._idle.values())

    def close(self) -> None:
        """Close idle connections now, busy ones when their request ends."""
        self._closed = True
        for stack in self._idle.values():
            for conn in stack:
                conn.close()
        self._idle.clear()
