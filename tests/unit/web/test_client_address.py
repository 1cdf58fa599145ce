"""The client address behind a reverse proxy: X-Forwarded-For counts only from ``[web] trusted_proxies``."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from hub.web.client import TRUSTED_PROXIES_KEY, client_address, parse_networks


def _request(peer: str, forwarded: str | None, trusted: list[str]) -> web.Request:
    app = web.Application()
    app[TRUSTED_PROXIES_KEY] = parse_networks(trusted)
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    transport_peer = (peer, 40000)

    class _Transport:
        def get_extra_info(self, name: str, default: object = None) -> object:
            return transport_peer if name == "peername" else default

        def is_closing(self) -> bool:
            return False

    return make_mocked_request("GET", "/", headers=headers, app=app, transport=_Transport())


def test_header_ignored_without_trusted_proxies() -> None:
    assert client_address(_request("203.0.113.9", "198.51.100.7", [])) == "203.0.113.9"


def test_header_ignored_from_an_untrusted_peer() -> None:
    assert client_address(_request("203.0.113.9", "198.51.100.7", ["10.0.0.0/8"])) == "203.0.113.9"


def test_client_behind_a_trusted_proxy() -> None:
    assert client_address(_request("10.0.0.5", "198.51.100.7", ["10.0.0.0/8"])) == "198.51.100.7"


def test_a_forged_leftmost_hop_does_not_count() -> None:
    """The visitor sends its own X-Forwarded-For; the proxy appends the real address: the rightmost untrusted hop
    is the client."""
    req = _request("10.0.0.5", "1.2.3.4, 198.51.100.7", ["10.0.0.0/8"])
    assert client_address(req) == "198.51.100.7"


def test_chained_proxies_and_garbage() -> None:
    assert client_address(_request("10.0.0.5", "198.51.100.7, 10.0.0.9", ["10.0.0.0/8"])) == "198.51.100.7"
    assert client_address(_request("10.0.0.5", "198.51.100.7, not-an-ip", ["10.0.0.0/8"])) == "10.0.0.5"
    assert client_address(_request("::ffff:10.0.0.5", "2001:db8::1", ["10.0.0.0/8"])) == "2001:db8::1"
