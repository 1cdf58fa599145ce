"""A CAP ``<web>`` value (an ``xs:anyURI``, a hyperlink shown to citizens) out of what a source put in its web field.

Sources fill that field with a URI, but also with prose ("Aktuelle Informationen unter https://..."), a bare host
(``www.example.de``) or an HTML anchor. :func:`split_web` returns the first http(s) link as an absolute URI
(non-ASCII host as IDNA, other non-ASCII and spaces percent-encoded) and the field's plain text where it says more
than the link, for the description. Anything but http and https (``javascript:``, ``data:``) is never a link.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = ["split_web"]

_HREF = re.compile(r"""<a\b[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)
_ANCHOR_TEXT = re.compile(r"<a\b[^>]*>(.*?)</a\s*>", re.I | re.S)
_URL = re.compile(r"""(?:https?://|\bwww\.)[^\s<>"'«»]+""", re.I)
_TRAILING = ".,;:!?)]}'\"»›"
_SAFE = "/?#[]@!$&'()*+,;=%:~"
_WORDS = re.compile(r"\w", re.U)


def split_web(value: str | None, to_text: Callable[[str], str | None]) -> tuple[str | None, str | None]:
    """``(uri, text)``: the link for CAP ``<web>`` (or None) and the field's plain text when it is more than the
    link (or None). ``to_text`` turns the field's HTML into plain text (the source's own rules)."""
    if value is None or not value.strip():
        return None, None
    raw = html.unescape(value) if re.search(r"&lt;a\b", value, re.I) else value
    text = to_text(raw) or ""
    hrefs = [next(g for g in m.groups() if g is not None) for m in _HREF.finditer(raw)]
    found = [html.unescape(h) for h in hrefs] + _URL.findall(text)
    uri = next((u for u in map(_absolute, found) if u), None)
    if uri is None:
        return None, text or None
    rest = text
    for label in (to_text(a) or "" for a in _ANCHOR_TEXT.findall(raw)):
        rest = rest.replace(label, " ") if label else rest
    for link in found:
        rest = rest.replace(link, " ")
    return uri, (text if _WORDS.search(rest) else None)


def _absolute(candidate: str) -> str | None:
    """An absolute http(s) URI, or None when ``candidate`` is none."""
    link = candidate.strip().rstrip(_TRAILING)
    if link.lower().startswith("www."):
        link = "https://" + link
    try:
        parts = urlsplit(link)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host or "." not in host:
        return None
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    netloc = host + (f":{port}" if port is not None else "")
    return urlunsplit((parts.scheme.lower(), netloc, quote(parts.path, safe=_SAFE), quote(parts.query, safe=_SAFE),
                       quote(parts.fragment, safe=_SAFE)))
