"""CAP Atom and RSS feeds: entries that embed a CAP alert, entries that link to one, and CAP summaries.

The feed's bytes pass the hardened parser (:func:`hub.cap.parse.read_xml`: no DOCTYPE, no entities, no network)
before anything else reads them, so a hostile feed is refused without resolving anything; only then does
feedparser read the index (ids, updated, titles). Links and embedded alerts are read from the hardened tree.

An entry is known by its ``id``; an entry without one by its CAP link, else by a hash of its XML. It is taken
again only when its ``updated`` (else ``published``, else its hash) or its link changes. A CAP ``alert``
element (CAP 1.0-1.2 namespace) inside an entry, or anywhere in the feed outside entries, is ingested as
serialised XML of that element (namespaces kept). Otherwise the entry's CAP link is fetched and ingested: the
first Atom link (rel alternate, related or enclosure) or RSS enclosure with a CAP/XML type, else the first such
link without a type (an RSS ``<link>`` has none, nor do the NWS index's links); links typed as anything else
(``text/html``) and links that are not http(s) are never fetched. Entries sharing one link fetch it once per poll.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlparse

import feedparser
from lxml import etree

from adapters.sources.polling import Http, PollingSource
from hub.cap import parse as cap_parse
from hub.errors import FetchError, ParseError

if TYPE_CHECKING:
    from hub.config.load import LoadedConfig
    from hub.config.sections import CapFeedSourceConfig
    from hub.ports import SourceContext

log = logging.getLogger("warnhub.source.feed")

ATOM = "http://www.w3.org/2005/Atom"
ATOM03 = "http://purl.org/atom/ns#"
RSS1 = "http://purl.org/rss/1.0/"
CAP_TYPES = frozenset({"application/cap+xml", "application/common-alerting-protocol+xml", "application/xml",
                       "text/xml"})
LINK_RELS = ("alternate", "related", "enclosure")
_CAP_ALERT_TAGS = tuple(f"{{{ns}}}alert" for ns in cap_parse.CAP_NAMESPACES)
RESTRICTED = re.compile(r"[\s,<&]")


@dataclass(slots=True)
class Entry:
    """One feed entry (or one CAP alert found outside any entry), as the source and the converter need it."""

    key: str
    key_from: str
    """``id``, ``link`` or ``hash`` (an entry without id: say so in logs and notes)."""
    version: str
    title: str = ""
    summary: str = ""
    published: str = ""
    element: etree._Element | None = None
    alerts: list[bytes] = field(default_factory=list)
    """Embedded CAP alerts, each serialised on its own (namespaces kept)."""
    link: str | None = None
    """The linked CAP document, absolute http(s)."""


@dataclass(slots=True)
class Feed:
    entries: list[Entry]
    sender: str
    """Who publishes the feed (author e-mail or name, else the host): the sender of summary alerts."""
    updated: str = ""


# -- reading --------------------------------------------------------------------------------------------------


def read_feed(data: bytes, *, url: str = "", max_bytes: int = cap_parse.DEFAULT_MAX_BYTES) -> Feed:
    """Read an Atom or RSS feed (or a bare CAP alert) safely; ParseError with a one-line reason otherwise."""
    root = cap_parse.read_xml(data, max_bytes=max_bytes)  # refuses DOCTYPE/entities before feedparser sees it
    elements = _entry_elements(root)
    if elements is None:
        raise ParseError(f"not an Atom or RSS feed: root element is <{etree.QName(root).localname}>")
    parsed = feedparser.parse(io.BytesIO(bytes(data)))  # a stream: feedparser treats bytes as a file name
    if len(parsed.entries) != len(elements):
        raise ParseError(f"feed entries disagree: feedparser read {len(parsed.entries)}, the XML has "
                         f"{len(elements)}")
    alerts_of: dict[Any, list[bytes]] = {el: [] for el in elements}
    loose: list[bytes] = []
    for alert in root.iter(*_CAP_ALERT_TAGS):
        owner, nested = _owner(alert, alerts_of)
        if nested:
            continue
        raw = etree.tostring(alert, encoding="UTF-8", xml_declaration=True)
        (alerts_of[owner] if owner is not None else loose).append(raw)
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for el, meta in zip(elements, parsed.entries, strict=True):
        entry = _entry(el, meta, alerts_of[el], url)
        if entry.key in seen:  # two entries with one key would take turns being "changed"
            seen[entry.key] += 1
            entry.key = f"{entry.key}#{seen[entry.key]}"
        else:
            seen[entry.key] = 1
        entries.append(entry)
    for raw in loose:
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        entries.append(Entry(key="alert-outside-entries:" + digest, key_from="hash", version=digest, alerts=[raw]))
    updated = str(dict.get(parsed.feed, "updated") or "")
    return Feed(entries=entries, sender=_feed_sender(parsed.feed, url), updated=updated)


def _entry_elements(root: etree._Element) -> list[etree._Element] | None:
    tag = etree.QName(root)
    if tag.localname == "feed" and tag.namespace in (ATOM, ATOM03):
        return root.findall(f"{{{tag.namespace}}}entry")
    if tag.localname == "rss" and tag.namespace is None:
        return root.findall("channel/item")
    if tag.localname == "RDF":
        return root.findall(f"{{{RSS1}}}item")
    if root.tag in _CAP_ALERT_TAGS:
        return []  # a bare alert: found below as an alert outside entries
    return None


def _owner(alert: etree._Element, entries: dict[Any, list[bytes]]) -> tuple[etree._Element | None, bool]:
    """The entry an alert sits in (None: outside entries), and whether it is nested in another alert."""
    for anc in alert.iterancestors():
        if anc.tag in _CAP_ALERT_TAGS:
            return None, True
        if anc in entries:
            return anc, False
    return None, False


def _entry(el: etree._Element, meta: Any, alerts: list[bytes], url: str) -> Entry:
    digest = "sha256:" + hashlib.sha256(etree.tostring(el, method="c14n")).hexdigest()
    link = _cap_link(el, url)
    ident = str(meta.get("id") or "").strip()
    if ident:
        key, key_from = ident, "id"
    elif link:
        key, key_from = link, "link"
    else:
        key, key_from = digest, "hash"
    # dict.get: feedparser's own get() maps a missing ``updated`` to ``published`` with a DeprecationWarning
    version = str(dict.get(meta, "updated") or dict.get(meta, "published") or digest)
    return Entry(key=key, key_from=key_from, version=version, title=str(meta.get("title") or "").strip(),
                 summary=str(meta.get("summary") or "").strip(), published=str(dict.get(meta, "published") or ""),
                 element=el, alerts=alerts, link=link)


def _cap_link(el: etree._Element, url: str) -> str | None:
    """The entry's link to a CAP document (see module docstring), absolute; None when it has none."""
    base = urljoin(url, el.base) if el.base else url
    typed: list[str] = []
    untyped: list[str] = []
    for child in el:
        if not isinstance(child.tag, str):
            continue
        local = etree.QName(child).localname
        if local == "link" and child.get("href") is not None:  # Atom
            rel = child.get("rel", "alternate")
            kind = (child.get("type") or "").split(";")[0].strip().lower()
            href = child.get("href", "")
        elif local == "enclosure" and child.get("url") is not None:  # RSS
            rel, kind, href = "enclosure", (child.get("type") or "").split(";")[0].strip().lower(), child.get("url", "")
        elif local == "link" and (child.text or "").strip():  # RSS <link>: untyped
            rel, kind, href = "alternate", "", (child.text or "").strip()
        else:
            continue
        if rel not in LINK_RELS:
            continue
        absolute = urljoin(base, href.strip())
        if urlparse(absolute).scheme not in ("http", "https"):
            continue
        if kind in CAP_TYPES:
            typed.append(absolute)
        elif not kind:
            untyped.append(absolute)
    found = typed or untyped
    return found[0] if found else None


def _feed_sender(meta: Any, url: str) -> str:
    author = meta.get("author_detail") or {}
    for candidate in (author.get("email"), author.get("name")):
        if candidate and not RESTRICTED.search(candidate):
            return str(candidate)
    host = urlparse(str(meta.get("link") or url or "")).hostname
    return host or "unknown-feed"


# -- the source -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Taken:
    """What an entry gave last time: its version and link, the alerts it names, and a lasting problem."""

    version: str
    link: str | None
    keys: frozenset[tuple[str, str]]
    problem: str | None = None


class CapFeedSource(PollingSource):
    """Polls a CAP Atom/RSS feed; ingests embedded alerts and the documents new or changed entries link to."""

    settings: CapFeedSourceConfig

    def __init__(self, settings: CapFeedSourceConfig, loaded: LoadedConfig, **kw: Any) -> None:
        super().__init__(settings, loaded, **kw)
        self._taken: dict[str, _Taken] = {}
        self._listed: frozenset[tuple[str, str]] | None = None
        """(sender, identifier) named by the last complete poll (for a 304 of a ``complete`` feed)."""

    async def poll(self, ctx: SourceContext, http: Http) -> list[str]:
        url = self.settings.url
        fetched = await http.get(url)
        if fetched is None:  # unchanged: the last complete list still holds, and counts as a complete fetch
            if self._listed is not None:
                await self._snapshot(ctx, self._listed)
            return []
        try:
            feed = await asyncio.to_thread(read_feed, fetched.body, url=url, max_bytes=self.settings.max_bytes)
        except ParseError as err:
            raise ParseError(f"{url}: feed refused: {err}") from err
        problems: list[str] = []
        entries = feed.entries
        complete = True
        if len(entries) > self.settings.max_entries:
            problems.append(f"{url}: feed lists {len(entries)} entries; only the first {self.settings.max_entries} "
                            "are read (max_entries)")
            entries, complete = entries[:self.settings.max_entries], False
        taken: dict[str, _Taken] = {}
        listed: set[tuple[str, str]] = set()
        this_poll: dict[str, _Taken | str] = {}
        for entry in entries:
            old = self._taken.get(entry.key)
            if old is not None and old.version == entry.version and old.link == entry.link:
                result: _Taken | str = old
            else:
                result = await self._take(ctx, http, entry, this_poll)
                if not isinstance(result, str):
                    self._taken[entry.key] = result  # kept even if the poll runs out of time later
            if isinstance(result, str):  # the linked document could not be fetched: try again next poll
                problems.append(result)
                complete = False
                continue
            taken[entry.key] = result
            listed |= result.keys
            if result.problem:
                problems.append(result.problem)
        problems = list(dict.fromkeys(problems))  # entries sharing a failed link name it once
        self._taken = taken
        self._listed = None
        if complete and self.settings.complete:
            self._listed = frozenset(listed)
            await self._snapshot(ctx, self._listed)
        return problems

    async def _snapshot(self, ctx: SourceContext, listed: frozenset[tuple[str, str]]) -> None:
        if self.settings.complete and ctx.snapshot is not None:
            await ctx.snapshot(self.name, listed, misses_to_end=self.settings.missing_fetches_to_end)

    async def _take(self, ctx: SourceContext, http: Http, entry: Entry,
                    this_poll: dict[str, _Taken | str]) -> _Taken | str:
        """Ingest a new or changed entry. Returns what it gave, or a problem string when its link failed."""
        if entry.key_from != "id":
            ctx.log.info("feed entry without id, known by its %s: %s", entry.key_from, entry.key[:200],
                         extra={"source": self.name})
        keys: set[tuple[str, str]] = set()
        problems: list[str] = []
        if entry.alerts:
            for raw in entry.alerts:
                result = await ctx.ingest(raw, origin=self.name, policy=self.policy,
                                          path=f"{self.settings.url}#{entry.key}")
                if result.outcome == "rejected" or result.sender is None or result.identifier is None:
                    problems.append(f"entry {entry.key}: embedded alert rejected: {result.reason}")
                else:
                    keys.add((result.sender, result.identifier))
        elif entry.link:
            if entry.link not in this_poll:  # entries sharing one document (MeteoAlarm: one per area) fetch it once
                this_poll[entry.link] = await self._fetch(ctx, http, entry.link)
            got = this_poll[entry.link]
            if isinstance(got, str):
                return got
            keys |= got.keys
            if got.problem:
                problems.append(f"entry {entry.key}: {got.problem}")
        else:
            ctx.log.info("feed entry %s carries no CAP (no embedded alert, no CAP link): ignored", entry.key[:200],
                         extra={"source": self.name})
        return _Taken(entry.version, entry.link, frozenset(keys), "; ".join(problems) or None)

    def link_allowed(self, link: str) -> bool:
        """Only hosts the operator named (default: the feed's own) are fetched: no requests to internal
        addresses because a feed says so."""
        own = urlparse(self.settings.url).hostname
        allowed = set(self.settings.link_hosts) or ({own} if own else set())
        return urlparse(link).hostname in allowed

    async def _fetch(self, ctx: SourceContext, http: Http, link: str) -> _Taken | str:
        if not self.link_allowed(link):
            return _Taken("", link, frozenset(), f"{link}: host not allowed (feed host or link_hosts only)")
        try:
            fetched = await http.get(link, conditional=False)
        except FetchError as err:
            return f"linked document: {err}"
        assert fetched is not None  # unconditional: never a 304
        if fetched.content_type in ("text/html", "application/xhtml+xml"):
            return _Taken("", link, frozenset(), f"{link} is {fetched.content_type}, not CAP")
        result = await ctx.ingest(fetched.body, origin=self.name, policy=self.policy, path=link)
        if result.outcome == "rejected" or result.sender is None or result.identifier is None:
            return _Taken("", link, frozenset(), f"{link} rejected: {result.reason}")
        return _Taken("", link, frozenset({(result.sender, result.identifier)}))
