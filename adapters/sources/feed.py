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
import collections
import hashlib
import io
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urljoin, urlparse

import feedparser
import msgspec
from lxml import etree

from adapters.sources.polling import Http, PollingSource
from hub.cap import parse as cap_parse
from hub.cap.model import (
    Alert,
    Area,
    Category,
    Certainty,
    Info,
    MsgType,
    Polygon,
    Scope,
    Severity,
    Status,
    Urgency,
    Value,
)
from hub.errors import FetchError, ParseError
from hub.ports import Converted

if TYPE_CHECKING:
    from hub.config import CapFeedSourceConfig, LoadedConfig
    from hub.ports import SourceContext

log = logging.getLogger("warnhub.source.feed")

ATOM = "http://www.w3.org/2005/Atom"
ATOM03 = "http://purl.org/atom/ns#"
RSS1 = "http://purl.org/rss/1.0/"
CAP_TYPES = frozenset({"application/cap+xml", "application/common-alerting-protocol+xml", "application/xml",
                       "text/xml"})
LINK_RELS = ("alternate", "related", "enclosure")
_CAP_ALERT_TAGS = tuple(f"{{{ns}}}alert" for ns in cap_parse.CAP_NAMESPACES)
_RESTRICTED = re.compile(r"[\s,<&]")


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
        if candidate and not _RESTRICTED.search(candidate):
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
        allowed = set(self.settings.link_hosts) or {urlparse(self.settings.url).hostname}
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


# -- convert (warnhub convert --from atom) --------------------------------------------------------------------


def convert_payload(data: bytes) -> list[Converted]:
    """A feed's CAP as alerts: embedded alerts as they are; entries that only link to CAP as a minimal CAP 1.2
    alert built from the entry (its ``cap:`` summary where it has one), with notes saying so.

    Entries that carry nothing usable (no alert, no CAP link, no ``cap:`` summary) are skipped and logged; a feed
    with nothing usable at all raises ParseError, as does a hostile or unreadable one.
    """
    feed = read_feed(data)
    out: list[Converted] = []
    summaries: dict[tuple[str, str, datetime], int] = {}
    merged: collections.Counter[int] = collections.Counter()
    skipped: list[str] = []
    for entry in feed.entries:
        where = f"feed entry {entry.key}"
        if entry.key_from != "id":
            where += f" (no id; known by its {entry.key_from})"
        if entry.alerts:
            for raw in entry.alerts:
                try:
                    parsed = cap_parse.parse(raw)
                except ParseError as err:
                    skipped.append(f"{where}: embedded alert unreadable: {err}")
                    continue
                out.append(Converted(parsed.alert, (f"embedded in {where}", *parsed.errors, *parsed.warnings)))
            continue
        caps = _cap_children(entry.element)
        if not caps and not entry.link:
            skipped.append(f"{where} carries no CAP (no embedded alert, CAP link or cap: summary)")
            continue
        try:
            alert, notes = summary_alert(entry, caps, feed)
        except ParseError as err:
            skipped.append(f"{where}: {err}")
            continue
        key = alert.key()
        if "identifier" in caps and key in summaries:  # MeteoAlarm: one entry per area of one alert
            i = summaries[key]
            merged[i] += 1
            out[i] = Converted(_merge_summaries(out[i].alert, alert), out[i].notes)
            continue
        summaries[key] = len(out)
        merged[len(out)] = 1
        out.append(Converted(alert, (f"built from {where}", *notes)))
    for i, count in merged.items():
        if count > 1:
            out[i] = Converted(out[i].alert, (f"merged from {count} feed entries with one identifier (one per area)",
                                              *out[i].notes))
    if not out:
        raise ParseError(f"feed holds no usable CAP ({len(feed.entries)} entry(ies)): "
                         + (skipped[0] if skipped else "nothing to read"))
    for reason in skipped:
        log.warning("skipped %s", reason[:300])
    return out


def _cap_children(el: etree._Element | None) -> dict[str, list[etree._Element]]:
    """The entry's ``cap:*`` children by lower-case local name (``msgType`` and MeteoAlarm's ``message_type``
    both as ``msgtype``)."""
    found: dict[str, list[etree._Element]] = {}
    if el is None:
        return found
    for child in el:
        if not isinstance(child.tag, str):
            continue
        q = etree.QName(child)
        if q.namespace in cap_parse.CAP_NAMESPACES:
            name = q.localname.lower().replace("_", "")
            found.setdefault("msgtype" if name == "messagetype" else name, []).append(child)
    return found


E = TypeVar("E", Status, MsgType, Scope, Category, Urgency, Severity, Certainty)


def _enum(cls: type[E], caps: dict[str, list[etree._Element]], name: str) -> E | None:
    text = _text(caps, name).lower().replace(" ", "")
    return next((m for m in cls if m.value.lower() == text), None) if text else None


def _text(caps: dict[str, list[etree._Element]], name: str) -> str:
    els = caps.get(name)
    return " ".join((els[0].text or "").split()) if els else ""


def _when(text: str) -> datetime | None:
    """An Atom (RFC 3339) or RSS (RFC 822) time, timezone-aware (UTC when it names no zone)."""
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        try:
            value = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _pairs(els: list[etree._Element]) -> list[Value]:
    """valueName/value pairs; NWS puts several pairs (and space-separated values) in one element."""
    out: list[Value] = []
    for el in els:
        name = ""
        for child in el:
            local = etree.QName(child).localname if isinstance(child.tag, str) else ""
            if local == "valueName":
                name = (child.text or "").strip()
            elif local == "value":
                out.append(Value(value_name=name, value=(child.text or "").strip()))
    return out


def summary_alert(entry: Entry, caps: dict[str, list[etree._Element]], feed: Feed) -> tuple[Alert, list[str]]:
    """A minimal, XSD-valid CAP 1.2 alert from a feed entry's ``cap:`` summary (or only its title and link);
    every value the entry did not give is named in the notes."""
    notes: list[str] = []
    where = f"full document at {entry.link}" if entry.link else "no link to the full document"
    note = f"summary from feed entry; {where}"
    notes.append(note)

    def pick(value: E | None, default: E, what: str) -> E:
        if value is None:
            notes.append(f"{what} not in the feed entry: {default.value}")
            return default
        return value

    identifier = _text(caps, "identifier") or (entry.key if entry.key_from != "hash" else entry.key[7:])
    clean = _RESTRICTED.sub("_", identifier)
    if clean != identifier:
        notes.append(f"identifier {identifier!r} has restricted characters: written as {clean!r}")
    sender = _text(caps, "sender") or feed.sender
    sent = _when(_text(caps, "sent")) or _when(entry.published) or _when(entry.version) or _when(feed.updated)
    if sent is None:
        raise ParseError("no time for sent (no cap:sent, published or updated)")
    if not _text(caps, "sent"):
        notes.append("sent not in the feed entry's cap: fields: taken from its published/updated time")
    geocodes = [Value(value_name=p.value_name, value=v) for p in _pairs(caps.get("geocode", []))
                for v in p.value.split()]
    polygons = [p for p in (_polygon(el.text or "") for el in caps.get("polygon", [])) if p]
    area_desc = _text(caps, "areadesc")
    areas: tuple[Area, ...] = ()
    if area_desc or geocodes or polygons:
        areas = (Area(area_desc=area_desc or entry.title or "unnamed area", polygons=tuple(polygons),
                      geocodes=tuple(geocodes)),)
    category = _enum(Category, caps, "category")
    if category is None:
        notes.append("category not in the feed entry: Other")
    info = Info(
        categories=(category or Category.OTHER,),
        event=_text(caps, "event") or entry.title or "unknown event",
        urgency=pick(_enum(Urgency, caps, "urgency"), Urgency.UNKNOWN, "urgency"),
        severity=pick(_enum(Severity, caps, "severity"), Severity.UNKNOWN, "severity"),
        certainty=pick(_enum(Certainty, caps, "certainty"), Certainty.UNKNOWN, "certainty"),
        event_codes=tuple(_pairs(caps.get("eventcode", []))),
        effective=_when(_text(caps, "effective")), onset=_when(_text(caps, "onset")),
        expires=_when(_text(caps, "expires")),
        headline=entry.title or None, description=entry.summary or None, web=entry.link,
        parameters=tuple(p for p in _pairs(caps.get("parameter", [])) if p.value_name),
        areas=areas,
    )
    alert = Alert(
        identifier=clean, sender=sender, sent=sent,
        status=pick(_enum(Status, caps, "status"), Status.ACTUAL, "status"),
        msg_type=pick(_enum(MsgType, caps, "msgtype"), MsgType.ALERT, "msgType"),
        scope=pick(_enum(Scope, caps, "scope"), Scope.PUBLIC, "scope"),
        note=note, infos=(info,),
    )
    if alert.msg_type is not MsgType.ALERT:
        notes.append(f"msgType {alert.msg_type.value}: the entry names no references")
    return alert, notes


def _polygon(text: str) -> Polygon | None:
    try:
        points = tuple((float(lat), float(lon)) for lat, lon in (p.split(",") for p in text.split()))
    except ValueError:
        return None
    return points if len(points) >= 4 else None


def _merge_summaries(first: Alert, other: Alert) -> Alert:
    """One alert from entries that summarise the same alert (MeteoAlarm: one entry per area). Infos that agree
    but for areas and wording (headline, description name the area) share one info with all areas."""
    infos = list(first.infos)
    for info in other.infos:
        for i, have in enumerate(infos):
            if _bare(have) == _bare(info):
                infos[i] = msgspec.structs.replace(
                    have, areas=tuple(dict.fromkeys(have.areas + info.areas)),
                    headline=have.headline if have.headline == info.headline else None,
                    description=have.description if have.description == info.description else None)
                break
        else:
            infos.append(info)
    return msgspec.structs.replace(first, infos=tuple(infos))


def _bare(info: Info) -> Info:
    return msgspec.structs.replace(info, areas=(), headline=None, description=None)
