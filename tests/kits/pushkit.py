"""Test kit for Web Push: a local push service that checks VAPID and really decrypts what it is sent.

``PushReceiver`` is an aiohttp server on 127.0.0.1 (``async with PushReceiver() as rx``). ``rx.subscribe()`` makes a
subscription the way a browser does (a P-256 key pair and a 16-byte auth secret); a POST to its endpoint must carry
a valid VAPID ``Authorization`` (ES256 signature against ``k``, ``aud`` equal to the receiver's origin, ``exp`` in
the future and at most 24 h ahead), ``Content-Encoding: aes128gcm`` and a ``TTL`` header, and a body that decrypts
with the subscription's private key. Accepted pushes are answered 201 and recorded as :class:`Received`; a request
that fails a check is answered 400/401/413 and recorded in ``rx.errors`` (tests assert it stays empty).
``rx.behave()`` makes one subscription answer 404/410/429/500 or hang (its first ``times`` requests only, if given);
``rx.hit_times`` has the arrival time of every request per subscription.

``decrypt="deferred"`` stores raw bodies and decrypts them on :meth:`PushReceiver.verify_all` (or at ``GET /stats``),
so a benchmark can time delivery without the receiver's decryption competing for the CPUs. VAPID tokens are checked
on arrival in both modes (a verified token is cached, only its expiry is checked again).

Run as its own process for a benchmark::

    python -m tests.kits.pushkit serve --subscriptions N --out subs.json [--port P] [--deferred]

writes the subscriptions (with their private keys, see :meth:`TestSubscription.from_json`) and prints the port.
``GET /count`` answers ``{"arrived", "errors"}`` without decrypting anything (cheap enough to poll);
``GET /sample`` answers ``{"payload"}``, one decrypted JSON payload; ``GET /stats`` answers ``{"received",
"unique_keys", "duplicates", "errors"}``: pushes accepted, distinct (subscription, ``key`` field of the decrypted
JSON payload) pairs, pushes that repeated such a pair, and failed requests. In deferred mode /stats and /sample first
decrypt everything that arrived since the last call (on the receiver's event loop: the first call after a large run
takes a while).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import http_ece
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from multidict import CIMultiDict

_CURVE = ec.SECP256R1()


def b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) & 3))


@dataclass
class TestSubscription:
    """What a browser's PushManager.subscribe() yields, plus the private half only the browser knows."""

    __test__ = False  # not a pytest test class

    id: str
    endpoint: str
    p256dh: str
    auth: str
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)

    @property
    def auth_secret(self) -> bytes:
        return b64d(self.auth)

    def as_json(self) -> dict[str, Any]:
        """The browser's PushSubscription JSON."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}

    def to_json(self) -> dict[str, Any]:
        """``as_json()`` plus id and the PEM private key, for a verifier in another process."""
        pem = self.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())
        return {"id": self.id, **self.as_json(), "private_key": pem.decode()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TestSubscription:
        key = serialization.load_pem_private_key(data["private_key"].encode(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cls(data["id"], data["endpoint"], data["keys"]["p256dh"], data["keys"]["auth"], key)

    def decrypt(self, body: bytes) -> bytes:
        return http_ece.decrypt(body, private_key=self.private_key, auth_secret=self.auth_secret,
                                version="aes128gcm")


@dataclass
class Received:
    sub_id: str
    body: Any
    """The decrypted payload: parsed JSON if it is JSON, else the bytes."""
    headers: dict[str, str]
    """TTL, Urgency and Topic as they arrived (absent ones left out)."""
    at: float
    """time.time() on arrival."""
    raw: bytes = b""
    """The decrypted payload as bytes."""
    token: str = ""
    """The VAPID JWT the request carried."""


@dataclass
class Behaviour:
    status: int | None = None
    retry_after: str | None = None
    hang_s: float | None = None
    times: int | None = None
    """Requests still to answer so (None: every one)."""


@dataclass
class _Pending:
    sub_id: str
    body: bytes
    headers: dict[str, str]
    at: float
    token: str


class VapidError(Exception):
    pass


def verify_vapid(header: str, origin: str, now: float) -> tuple[str, str, dict[str, Any]]:
    """Check an ``Authorization: vapid t=..., k=...`` header; (token, k, claims) or VapidError."""
    scheme, _, params = header.partition(" ")
    if scheme.lower() != "vapid":
        raise VapidError(f"authorization scheme {scheme!r} is not vapid")
    fields = dict(p.strip().partition("=")[::2] for p in params.split(","))
    token, k = fields.get("t", ""), fields.get("k", "")
    parts = token.split(".")
    if len(parts) != 3 or not k:
        raise VapidError("vapid needs t=<JWT> and k=<key>")
    try:
        head, claims = json.loads(b64d(parts[0])), json.loads(b64d(parts[1]))
        sig = b64d(parts[2])
        public = ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, b64d(k))
    except ValueError as err:
        raise VapidError(f"unreadable token or key: {err}") from err
    if head.get("alg") != "ES256" or len(sig) != 64:
        raise VapidError("token is not ES256")
    try:
        public.verify(encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")),
                      f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as err:
        raise VapidError("bad token signature") from err
    check_claims(claims, origin, now)
    sub = claims.get("sub", "")
    if not isinstance(sub, str) or not sub.startswith(("mailto:", "https:")):
        raise VapidError(f"sub {sub!r} is not a mailto: or https: URI")
    return token, k, claims


def check_claims(claims: dict[str, Any], origin: str, now: float) -> None:
    if claims.get("aud") != origin:
        raise VapidError(f"aud {claims.get('aud')!r} is not {origin!r}")
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= now or exp > now + 86400:
        raise VapidError(f"exp {exp!r} is not within the next 24 h")


class PushReceiver:
    def __init__(self, *, decrypt: Literal["now", "deferred"] = "now", port: int = 0,
                 server_key: str | None = None, lean: bool = False, host: str = "127.0.0.1") -> None:
        """``server_key``: the applicationServerKey subscriptions were made with; if given, ``k`` must equal it.
        ``lean``: serve with :class:`_LeanProtocol` instead of aiohttp (benchmarks; no :meth:`behave`).
        ``host``: the loopback address to serve on (another one, such as 127.0.0.2, is another push host)."""
        self.host = host
        self.deferred = decrypt == "deferred"
        self.lean = lean
        self._server: asyncio.AbstractServer | None = None
        self._lean_conns: set[asyncio.Transport] = set()
        self.port = port
        self.server_key = server_key
        self.subs: dict[str, TestSubscription] = {}
        self.behaviours: dict[str, Behaviour] = {}
        self.hits: Counter[str] = Counter()
        self.hit_times: dict[str, list[float]] = {}
        """time.time() of every push request's arrival, per subscription."""
        self.errors: list[tuple[str, int, str]] = []
        """(subscription id, status answered, reason)."""
        self.in_flight = 0
        self.most_in_flight = 0
        """The most push requests this receiver was answering at once."""
        self._gate: asyncio.Event | None = None
        self._received: list[Received] = []
        self._pending: list[_Pending] = []
        self._keys: Counter[Any] = Counter()
        self._tokens: dict[str, tuple[str, dict[str, Any]]] = {}
        self._runner: web.ServerRunner | None = None
        self._arrived = asyncio.Event()
        self._closing = asyncio.Event()

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def subscribe(self) -> TestSubscription:
        key = ec.generate_private_key(_CURVE)
        sub_id = uuid.uuid4().hex
        public = key.public_key().public_bytes(serialization.Encoding.X962,
                                               serialization.PublicFormat.UncompressedPoint)
        sub = TestSubscription(sub_id, f"{self.origin}/push/{sub_id}", b64e(public), b64e(os.urandom(16)), key)
        self.subs[sub_id] = sub
        return sub

    def behave(self, sub_id: str, status: int | None = None, retry_after: str | int | None = None,
               hang_s: float | None = None, times: int | None = None) -> None:
        """Answer ``status`` (with Retry-After) instead of accepting, and/or wait ``hang_s`` first; for the next
        ``times`` requests only (then accept again), or every one."""
        self.behaviours[sub_id] = Behaviour(status, None if retry_after is None else str(retry_after), hang_s, times)

    def hold(self) -> None:
        """Keep every push request waiting (unanswered) until :meth:`release`."""
        self._gate = asyncio.Event()

    def release(self) -> None:
        if self._gate is not None:
            self._gate.set()

    async def wait_in_flight(self, count: int, timeout: float) -> None:
        """Wait until ``count`` push requests are being answered at once."""
        async with asyncio.timeout(timeout):
            while self.in_flight < count:
                self._arrived.clear()
                await self._arrived.wait()

    def received(self, sub_id: str | None = None) -> list[Received]:
        return [r for r in self._received if sub_id is None or r.sub_id == sub_id]

    async def wait_for(self, count: int, timeout: float) -> list[Received]:
        """Wait until ``count`` pushes were accepted (deferred mode: arrived, then decrypted)."""
        async with asyncio.timeout(timeout):
            while len(self._received) + len(self._pending) < count:
                self._arrived.clear()
                await self._arrived.wait()
        self.verify_all()
        return self.received()

    def verify_all(self) -> list[Received]:
        """Decrypt what arrived in deferred mode; failures go to ``errors``. Returns everything received."""
        pending, self._pending = self._pending, []
        for p in pending:
            try:
                plain = self.subs[p.sub_id].decrypt(p.body)
            except (http_ece.ECEException, ValueError) as err:
                self.errors.append((p.sub_id, 400, f"cannot decrypt: {err}"))
                continue
            self._record(p.sub_id, plain, p.headers, p.at, p.token)
        return self.received()

    def stats(self) -> dict[str, int]:
        self.verify_all()
        unique = len(self._keys)
        return {"received": len(self._received), "unique_keys": unique,
                "duplicates": sum(self._keys.values()) - unique, "errors": len(self.errors)}

    def receipts(self) -> list[dict[str, Any]]:
        """Every decrypted JSON push as ``{"sub", "payload", "at"}`` in arrival order (the checker's receipts)."""
        self.verify_all()
        return [{"sub": r.sub_id, "payload": r.body, "at": r.at} for r in sorted(self._received, key=lambda r: r.at)
                if not isinstance(r.body, bytes)]

    def sample(self) -> Any:
        """One decrypted JSON payload (the first received), or None."""
        self.verify_all()
        return next((r.body for r in self._received if not isinstance(r.body, bytes)), None)

    def _record(self, sub_id: str, plain: bytes, headers: dict[str, str], at: float, token: str) -> None:
        try:
            body: Any = json.loads(plain)
        except ValueError:
            body = plain
        if isinstance(body, dict) and "key" in body:
            self._keys[(sub_id, json.dumps(body["key"]))] += 1
        self._received.append(Received(sub_id, body, headers, at, plain, token))

    def _failed(self, sub_id: str, status: int, reason: str) -> tuple[int, str]:
        self.errors.append((sub_id, status, reason))
        return status, reason

    def _check_vapid(self, header: str) -> str:
        """The token of a valid VAPID header; a header seen before is only checked for expiry again."""
        now = time.time()
        cached = self._tokens.get(header)
        if cached is not None:
            check_claims(cached[1], self.origin, now)
            return cached[0]
        token, k, claims = verify_vapid(header, self.origin, now)
        if self.server_key is not None and k != self.server_key:
            raise VapidError("k is not the key the subscription was made with")
        self._tokens[header] = (token, claims)
        return token

    async def _push(self, request: web.BaseRequest, sub_id: str) -> web.Response:
        self.hits[sub_id] += 1
        self.hit_times.setdefault(sub_id, []).append(time.time())
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self._arrived.set()
        try:
            if self._gate is not None:
                await self._gate.wait()
            return await self._answer(request, sub_id)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.BaseRequest, sub_id: str) -> web.Response:
        sub = self.subs.get(sub_id)
        if sub is None:
            return web.Response(status=404, text="no such subscription")
        behaviour = self.behaviours.get(sub_id)
        if behaviour is not None and behaviour.times is not None:
            if behaviour.times <= 0:
                behaviour = None
            else:
                behaviour.times -= 1
        if behaviour is not None and behaviour.hang_s:
            try:
                await asyncio.wait_for(self._closing.wait(), behaviour.hang_s)
            except TimeoutError:
                pass
            if request.transport is None or request.transport.is_closing():
                return web.Response(status=499, text="sender gave up")  # nobody is listening; record nothing
        h = request.headers
        if behaviour is not None and behaviour.status is not None:
            problem = self._check_headers(sub_id, h)
            if problem is not None:
                return web.Response(status=problem[0], text=problem[1])
            extra = {"Retry-After": behaviour.retry_after} if behaviour.retry_after is not None else {}
            return web.Response(status=behaviour.status, headers=extra, text=f"status {behaviour.status}")
        status, text = self._accept(sub, h, await request.read())
        return web.Response(status=status, text=text or None)

    def _check_headers(self, sub_id: str, h: Mapping[str, str]) -> tuple[int, str] | None:
        """(status, reason) of a failed check of the request's headers (recorded in ``errors``), or None."""
        try:
            self._check_vapid(h.get("Authorization", ""))
        except VapidError as err:
            return self._failed(sub_id, 401, f"VAPID: {err}")
        if h.get("Content-Encoding") != "aes128gcm":
            return self._failed(sub_id, 400, f"Content-Encoding {h.get('Content-Encoding')!r} is not aes128gcm")
        if not h.get("TTL", "").isdigit():
            return self._failed(sub_id, 400, "TTL header missing or not a number")
        return None

    def _accept(self, sub: TestSubscription, h: Mapping[str, str], body: bytes) -> tuple[int, str]:
        """Check one push to an existing subscription and record it; (status, reason) to answer."""
        problem = self._check_headers(sub.id, h)
        if problem is not None:
            return problem
        if len(body) > 4096:
            return self._failed(sub.id, 413, f"body of {len(body)} bytes is larger than 4096")
        token = self._tokens[h["Authorization"]][0]
        kept = {k: h[k] for k in ("TTL", "Urgency", "Topic") if k in h}
        if self.deferred:
            self._pending.append(_Pending(sub.id, body, kept, time.time(), token))
        else:
            try:
                plain = sub.decrypt(body)
            except (http_ece.ECEException, ValueError) as err:
                return self._failed(sub.id, 400, f"cannot decrypt: {err}")
            self._record(sub.id, plain, kept, time.time(), token)
        self._arrived.set()
        return 201, ""

    async def _route(self, request: web.BaseRequest) -> web.StreamResponse:
        # the low-level server (no Application, router or middlewares) costs a benchmark's CPUs least
        path = request.path
        if request.method == "POST" and path.startswith("/push/"):
            return await self._push(request, path[6:])
        if request.method == "GET":
            answer = self._get(path)
            if answer is not None:
                return web.json_response(answer)
        return web.Response(status=404, text="not found")

    def _get(self, path: str) -> dict[str, Any] | None:
        if path == "/stats":
            return dict(self.stats())
        if path == "/count":
            return {"arrived": len(self._received) + len(self._pending), "errors": len(self.errors)}
        if path == "/receipts":  # for the invariant checker (tests/kits/invariants.py)
            return {"receipts": self.receipts()}
        if path == "/sample":
            return {"payload": self.sample()}
        return None

    async def __aenter__(self) -> PushReceiver:
        if self.lean:
            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(lambda: _LeanProtocol(self), self.host, self.port)
            self.port = self._server.sockets[0].getsockname()[1]
            return self
        runner = self._runner = web.ServerRunner(web.Server(self._route, access_log=None), shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port).start()
        self.port = runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing.set()
        self.release()
        if self._server is not None:
            self._server.close()
            for conn in list(self._lean_conns):
                conn.close()
            await self._server.wait_closed()
        if self._runner is not None:
            await self._runner.cleanup()


_REASONS = {201: "Created", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            413: "Content Too Large", 200: "OK"}


class _LeanProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive for a benchmark's push service: frames requests by Content-Length and runs the same
    checks as the aiohttp server (:meth:`PushReceiver._accept`) in a fraction of its CPU time, which a benchmark
    on two cores would otherwise take from the hub. No chunked bodies, no pipelining guarantees beyond order."""

    def __init__(self, rx: PushReceiver) -> None:
        self.rx = rx
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.rx._lean_conns.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.rx._lean_conns.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buf[:end].decode("latin-1").split("\r\n")
            headers: CIMultiDict[str] = CIMultiDict()
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip()] = value.strip()
            length = int(headers.get("Content-Length", "0") or 0)
            if len(self.buf) < end + 4 + length:
                return
            body, self.buf = self.buf[end + 4:end + 4 + length], self.buf[end + 4 + length:]
            method, _, rest = lines[0].partition(" ")
            self.answer(method, rest.rpartition(" ")[0], headers, body)

    def answer(self, method: str, path: str, headers: CIMultiDict[str], body: bytes) -> None:
        payload = b""
        if method == "POST" and path.startswith("/push/"):
            self.rx.hits[path[6:]] += 1
            sub = self.rx.subs.get(path[6:])
            status, text = self.rx._accept(sub, headers, body) if sub is not None else (404, "no such subscription")
            payload = text.encode()
        elif method == "GET" and (found := self.rx._get(path)) is not None:
            status, payload = 200, json.dumps(found).encode()
        else:
            status, payload = 404, b"not found"
        assert self.transport is not None
        self.transport.write(f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Length: {len(payload)}"
                             f"\r\nContent-Type: application/json\r\n\r\n".encode() + payload)


async def _serve(args: argparse.Namespace) -> None:
    async with PushReceiver(decrypt="deferred" if args.deferred else "now", port=args.port, lean=args.lean) as rx:
        subs = [rx.subscribe().to_json() for _ in range(args.subscriptions)]
        tmp = Path(f"{args.out}.tmp")
        tmp.write_text(json.dumps(subs), encoding="utf-8")
        tmp.replace(args.out)  # whoever waits for the file never reads half of it
        print(rx.port, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.kits.pushkit", description="local Web Push receiver")
    cmd = parser.add_subparsers(dest="cmd", required=True)
    serve = cmd.add_parser("serve", help="serve N subscriptions until SIGTERM/SIGINT")
    serve.add_argument("--subscriptions", type=int, required=True)
    serve.add_argument("--out", type=Path, required=True, help="write the subscriptions (with private keys) here")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--deferred", action="store_true", help="decrypt at GET /stats, not on arrival")
    serve.add_argument("--lean", action="store_true", help="a minimal HTTP/1.1 server instead of aiohttp's")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
