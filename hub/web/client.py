"""Who is asking: the client address of a request, for throttles and per-address limits.

Behind a reverse proxy every request comes from the proxy's address. ``[web] trusted_proxies`` names the proxies
(addresses or CIDR networks); only when the peer is one of them is ``X-Forwarded-For`` read, right to left, and the
first hop that is not a trusted proxy is the client. Without trusted proxies the header is ignored: anyone can send
it, so reading it would let every visitor pick an address of their choice.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

TRUSTED_PROXIES_KEY = web.AppKey("trusted_proxies", tuple)


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """``["10.0.0.1", "fd00::/8"]`` as networks; a bad entry raises ``ValueError`` naming it."""
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {value!r}") from None
    return tuple(out)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _trusted(addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None, networks: tuple[Network, ...]) -> bool:
    return addr is not None and any(addr.version == n.version and addr in n for n in networks)


def client_address(request: web.Request) -> str:
    """The client's address as text (``""`` when unknown); see the module docstring for proxies."""
    peer_text = request.remote or ""
    networks: tuple[Network, ...] = request.config_dict.get(TRUSTED_PROXIES_KEY, ())
    peer = _address(peer_text)
    if not networks or not _trusted(peer, networks):
        return str(peer) if peer is not None else peer_text
    hops = [h for value in request.headers.getall("X-Forwarded-For", []) for h in value.split(",") if h.strip()]
    for hop in reversed(hops):
        addr = _address(hop)
        if addr is None:
            break  # a garbled hop: what lies left of it cannot be trusted
        if not _trusted(addr, networks):
            return str(addr)
    return str(peer)
