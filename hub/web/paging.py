"""Paging of list endpoints: ``limit`` (1 to :data:`MAX_LIMIT`) and ``cursor`` (opaque, from the previous page's
``next``).

A cursor is the sort key of the last item of a page (keyset paging): the next page starts after it, so items that
arrive meanwhile neither repeat nor push others off a page. :func:`page_of` checks both parameters and raises
:class:`BadPage` with a German / English reason that the endpoint answers as 400.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_LIMIT = 500
"""Items per page at most."""


class BadPage(ValueError):
    """``limit`` or ``cursor`` unusable; the message is German / English."""


@dataclass(frozen=True, slots=True)
class Page:
    limit: int
    after: tuple[Any, ...] | None
    """The sort key the page starts after (None: from the start)."""


def cursor_of(key: Sequence[Any]) -> str:
    """The opaque cursor for a sort key (a sequence of strings and integers)."""
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def page_of(query: Mapping[str, str], *, default: int, key: Sequence[type]) -> Page:
    """``limit`` and ``cursor`` from a query; ``key``: the types of the sort key a cursor must hold."""
    text = query.get("limit")
    limit = default
    if text is not None:
        try:
            limit = int(text)
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            raise BadPage(f"limit: eine ganze Zahl von 1 bis {MAX_LIMIT} / a whole number from 1 to {MAX_LIMIT}")
    cursor = query.get("cursor")
    if not cursor:
        return Page(limit, None)
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        values = None
    if not isinstance(values, list) or len(values) != len(key) or not all(
            type(v) is t for v, t in zip(values, key, strict=True)):
        raise BadPage("cursor: unbekannt; den Wert next der vorigen Seite angeben / unknown cursor; give the previous "
                      "page's next")
    return Page(limit, tuple(values))


def cut(items: Sequence[Any], page: Page, key: Any) -> tuple[list[Any], str | None]:
    """The page of ``items`` (sorted by ``key``, ascending) and the cursor of the next (None on the last page)."""
    start = 0
    if page.after is not None:
        start = next((n for n, item in enumerate(items) if tuple(key(item)) > page.after), len(items))
    shown = list(items[start:start + page.limit])
    more = start + page.limit < len(items)
    return shown, cursor_of(key(shown[-1])) if more and shown else None
