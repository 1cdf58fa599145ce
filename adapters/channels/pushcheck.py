"""Checks of a push subscription's endpoint and keys, with the reason in English: the subscription API rejects a
subscription with them (:mod:`hub.web.subscriptions`), and the sender checks every target again before it pushes and
learns from :func:`inspect_endpoint` where to connect; the HTTP client connects only to the public addresses
a host resolves to (:func:`public_addresses`).

An endpoint must be an https URL of a public host (no private, loopback, link-local or reserved address, also in the
numeric forms the resolver accepts; no user information; at most :data:`MAX_ENDPOINT` characters), or, where allowed,
http on a loopback address. The keys must be an uncompressed P-256 point and a 16-byte secret. The scheme-and-host part
is cached (one cache per process): a fan-out meets few push services.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ipaddress
import re
import socket
from typing import NamedTuple
from urllib.parse import SplitResult, urlsplit

from cryptography.hazmat.primitives.asymmetric import ec

MAX_ENDPOINT = 2048

_CURVE = ec.SECP256R1()
_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_BAD_URL_CHARS = re.compile(r"[^\x21-\x7e]")
_NUMERIC_HOST = re.compile(r"[0-9a-fx.]+")


class NotPublic(OSError):
    """The push service's host name resolves to no public address (loopback, private, link-local, reserved): a
    subscription must not make the hub reach into its own network (SSRF)."""


class Address(NamedTuple):
    """Where to connect: scheme (``http``/``https``), host (no brackets), port, and the ``Host`` header value."""

    scheme: str
    host: str
    port: int
    host_header: str


def _public(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


async def public_addresses(host: str, port: int, loop: asyncio.AbstractEventLoop) -> list[str]:
    """The public addresses ``host`` resolves to, in the resolver's order; :class:`NotPublic` when there are none
    (addresses in private, loopback, link-local or reserved ranges are left out)."""
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found = list(dict.fromkeys(str(info[4][0]) for info in infos))
    usable = [ip for ip in found if _public(ip)]
    if not usable:
        raise NotPublic(f"push service host {host!r} resolves to no public address ({', '.join(found) or 'none'})")
    return usable


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    host = host.removesuffix(".")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):
        # forms the resolver takes as IPv4 although ip_address does not: 127.1, 0x7f.0.0.1, 2130706433
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def inspect_endpoint(url: str, allow_http: bool) -> tuple[str | None, str, Address | None, str]:
    """(reason or None, origin ``scheme://host[:port]``, where to connect, request target ``/path?query``)."""
    if len(url) > MAX_ENDPOINT:
        return f"endpoint longer than {MAX_ENDPOINT} characters", "", None, ""
    if _BAD_URL_CHARS.search(url):
        return "endpoint contains spaces, control or non-ASCII characters", "", None, ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "endpoint is not a valid URL", "", None, ""
    reason, origin, address = _inspect_origin(parts.scheme, parts.netloc, allow_http)
    return reason, origin, address, f"{parts.path or '/'}?{parts.query}" if parts.query else parts.path or "/"


@functools.lru_cache(maxsize=4096)
def _inspect_origin(scheme: str, netloc: str, allow_http: bool) -> tuple[str | None, str, Address | None]:
    """The part of the endpoint check that depends on scheme and host only (a fan-out meets few push services)."""
    parts = SplitResult(scheme, netloc, "", "", "")
    try:
        port = parts.port
    except ValueError:
        return "endpoint is not a valid URL", "", None
    host = parts.hostname
    if not host:
        return "endpoint has no host", "", None
    if "@" in netloc:
        return "endpoint must not carry user information", "", None
    ip = _ip_literal(host)
    if scheme == "https":
        if ip is not None and (not ip.is_global or ip.is_multicast):
            return "endpoint host is not a public address (private, loopback, link-local or reserved)", "", None
        if host.removesuffix(".") == "localhost" or host.removesuffix(".").endswith(".localhost"):
            return "endpoint host is localhost", "", None
    elif scheme == "http":
        if not allow_http:
            return "endpoint must use https", "", None
        if ip is None or not ip.is_loopback:
            return "http endpoints are allowed only on loopback addresses", "", None
    else:
        return "endpoint must use https", "", None
    default_port = 443 if scheme == "https" else 80
    host_part = f"[{host}]" if ":" in host else host
    if port is not None and port != default_port:
        host_part = f"{host_part}:{port}"
    return None, f"{scheme}://{host_part}", Address(scheme, host, port or default_port, host_part)


def check_endpoint(url: str, *, allow_http: bool) -> str | None:
    """None if a push may go to ``url``, else why not (in English)."""
    return inspect_endpoint(url, allow_http)[0]


def _strict_b64d(text: str) -> bytes:
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) & 3))


def check_keys(p256dh: str, auth: str) -> str | None:
    """None if a subscription's keys are usable, else why not (in English)."""
    try:
        point = _strict_b64d(p256dh)
    except ValueError:
        return "p256dh is not base64url"
    if len(point) != 65 or point[0] != 4:
        return "p256dh must be a 65-byte uncompressed P-256 point"
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, point)
    except ValueError:
        return "p256dh is not a point on P-256"
    try:
        secret = _strict_b64d(auth)
    except ValueError:
        return "auth is not base64url"
    if len(secret) != 16:
        return "auth must be 16 bytes"
    return None
