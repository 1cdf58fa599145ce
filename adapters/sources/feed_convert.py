"""A saved CAP feed as alerts (``warnhub convert --from atom``, rules replay): embedded alerts as they are, entries
that only link to CAP as a minimal CAP 1.2 alert built from the entry (its ``cap:`` summary where it has one).
The feed is read by :func:`adapters.sources.feed.read_feed` (hardened parser first).
"""

from __future__ import annotations

import collections
import logging
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import msgspec
from lxml import etree

from adapters.sources.feed import RESTRICTED, Entry, Feed, read_feed
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
from hub.errors import ParseError
from hub.ports import Converted

log = logging.getLogger("warnhub.source.feed")

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
    clean = RESTRICTED.sub("_", identifier)
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
