"""Hardened reading of CAP 1.2, 1.1 and 1.0 XML into the model.

Only :func:`read_xml` turns bytes into an element tree, with entities unresolved, no network, no DTD and a size
limit; any DOCTYPE is refused outright (CAP never needs one, and it is where XXE and entity bombs live).
:func:`build_alert` then reads the tree tolerantly: element order, the ``cap:`` prefix, CAP 1.0's ``name=value``
pairs and stray case in enums are read, and each deviation is recorded as an error or warning for the validator.
What cannot identify a message (identifier, sender, sent, status, msgType, scope) raises :class:`ParseError`.
"""

from __future__ import annotations

import enum
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from lxml import etree

from hub.cap.model import (
    Alert,
    Area,
    Category,
    Certainty,
    Circle,
    Info,
    LatLon,
    MsgType,
    Polygon,
    Reference,
    Resource,
    ResponseType,
    Scope,
    Severity,
    Status,
    Urgency,
    Value,
)
from hub.cap.prolog import declares
from hub.errors import ParseError

DEFAULT_MAX_BYTES = 10 * 1024 * 1024

CAP_NAMESPACES: dict[str, str] = {
    "urn:oasis:names:tc:emergency:cap:1.2": "1.2",
    "urn:oasis:names:tc:emergency:cap:1.1": "1.1",
    "http://www.incident.com/cap/1.0": "1.0",
    "urn:oasis:names:tc:emergency:cap:1.0": "1.0",
}
CAP12_NS = "urn:oasis:names:tc:emergency:cap:1.2"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"

_local = threading.local()


def _parser() -> etree.XMLParser:
    """One hardened parser per thread (lxml parsers must not be shared between threads)."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            # collect_ids must stay at its default (True): collect_ids=False sets libxml2's XML_SKIP_IDS, which
            # makes libxml2 (2.14) load external parameter entities from local files (file:///dev/zero hangs).
        )
        _local.parser = parser
    return parser


@dataclass(slots=True)
class Parsed:
    """A readable CAP document: its tree, CAP version, the alert, and what was wrong with it."""

    root: etree._Element
    version: str
    alert: Alert
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def read_xml(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """Parse bytes with the hardened parser; raise ParseError with a one-line reason for anything hostile."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ParseError("input must be bytes (the XML declaration names the encoding)")
    if len(data) > max_bytes:
        raise ParseError(f"document is {len(data)} bytes, over the limit of {max_bytes} bytes")
    if not bytes(data[:1024]).strip():
        raise ParseError("empty document")
    if declares(bytes(data)):  # before libxml2 reads a DTD at all: it would parse (and count) the entities
        raise ParseError("DOCTYPE declaration refused: CAP needs none, and DTDs carry XXE and entity attacks")
    try:
        root = etree.fromstring(bytes(data), _parser())
    except etree.XMLSyntaxError as err:
        msg = _one_line(str(err))
        if "network entity" in msg or "external" in msg.lower():
            raise ParseError(f"external entity refused (XXE): {msg}") from err
        if "amplification" in msg or "entity" in msg.lower():
            raise ParseError(f"entity expansion refused (entity bomb): {msg}") from err
        raise ParseError(f"not well-formed XML: {msg}") from err
    except (ValueError, etree.ParserError) as err:
        raise ParseError(f"not XML: {_one_line(str(err))}") from err
    if root is None:
        raise ParseError("not XML: no root element")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise ParseError("DOCTYPE declaration refused: CAP needs none, and DTDs carry XXE and entity attacks")
    return root


def cap_version(root: etree._Element) -> str:
    """The CAP version named by the root's namespace; ParseError for anything that is not a CAP alert."""
    qname = etree.QName(root)
    if qname.localname != "alert":
        raise ParseError(f"root element is {_clark(qname)}, not a CAP alert")
    if qname.namespace is None:
        return "none"
    version = CAP_NAMESPACES.get(qname.namespace)
    if version is None:
        raise ParseError(f"root element is {_clark(qname)}: unknown namespace, not CAP 1.0, 1.1 or 1.2")
    return version


def _clark(qname: etree.QName) -> str:
    return f"{{{qname.namespace}}}{qname.localname}" if qname.namespace else qname.localname


def parse(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Parsed:
    """Bytes to a :class:`Parsed` CAP alert, or ParseError with a one-line reason."""
    root = read_xml(data, max_bytes=max_bytes)
    version = cap_version(root)
    return build_alert(root, version)


def build_alert(root: etree._Element, version: str) -> Parsed:
    reader = _Reader(version)
    alert = reader.alert(root)
    if version == "none":
        reader.errors.insert(0, "root <alert> has no CAP namespace; read as CAP 1.2")
    return Parsed(root=root, version=version, alert=alert, errors=reader.errors, warnings=reader.warnings)


E = TypeVar("E", bound=enum.Enum)

_LANG = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")


_LOCAL_NAMES: dict[object, str] = {}


def _local_name(el: etree._Element) -> str:
    """The tag without namespace; cached, since a DWD file has thousands of elements with a dozen tags."""
    tag = el.tag
    try:
        return _LOCAL_NAMES[tag]
    except KeyError:
        local = tag[tag.rfind("}") + 1 :] if isinstance(tag, str) else ""  # comments, PIs: no name
        if len(_LOCAL_NAMES) < 4096:  # hostile input must not grow the cache without bound
            _LOCAL_NAMES[tag] = local
        return local


def _text(el: etree._Element) -> str:
    return (el.text or "").strip()


@dataclass(slots=True)
class _InfoParts:
    """What :meth:`_Reader.info_parts` collects from one ``<info>``."""

    fields: dict[str, object] = field(default_factory=dict)
    categories: list[Category] = field(default_factory=list)
    responses: list[ResponseType] = field(default_factory=list)
    event_codes: list[Value] = field(default_factory=list)
    parameters: list[Value] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    areas: list[Area] = field(default_factory=list)


class _Reader:
    """Reads one alert tree; collects errors (breaks the standard) and warnings (odd but allowed)."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.errors: list[str] = []
        self.warnings: list[str] = []

    # -- scalars -------------------------------------------------------------------------------------------

    def time(self, text: str, where: str) -> datetime | None:
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            self.errors.append(f"{where}: {text!r} is not a date-time")
            return None
        if value.tzinfo is None:
            self.errors.append(f"{where}: {text!r} has no UTC offset; read as UTC")
            value = value.replace(tzinfo=UTC)
        return value

    def enum(self, cls: type[E], text: str, where: str) -> E | None:
        try:
            return cls(text)
        except ValueError:
            pass
        for member in cls:
            if member.value.lower() == text.lower().replace(" ", ""):
                self.errors.append(f"{where}: {text!r} read as {member.value!r}")
                return member
        if cls is Certainty and text.lower() == "very likely":  # CAP 1.0's value, folded into Likely by 1.1
            self.warnings.append(f"{where}: CAP 1.0 value 'Very Likely' read as 'Likely'")
            return cls("Likely")
        self.errors.append(f"{where}: {text!r} is not one of {', '.join(m.value for m in cls)}")
        return None

    def number(self, text: str, where: str) -> float | None:
        try:
            return float(text)
        except ValueError:
            self.errors.append(f"{where}: {text!r} is not a number")
            return None

    def pair(self, el: etree._Element, where: str) -> Value | None:
        """A valueName/value pair; CAP 1.0 writes it as one string ``name=value``."""
        if len(el) == 2:  # the usual shape, read without the general loop
            first, second = el[0], el[1]
            if _local_name(first) == "valueName" and _local_name(second) == "value":
                return Value(value_name=(first.text or "").strip(), value=(second.text or "").strip())
        name = value = None
        for child in el:
            local = _local_name(child)
            if local == "valueName":
                name = _text(child)
            elif local == "value":
                value = _text(child)
        if name is None and value is None and len(el) == 0:
            text = _text(el)
            if "=" in text:
                name, _, value = text.partition("=")
                return Value(value_name=name.strip(), value=value.strip())
            self.errors.append(f"{where}: {text!r} has no valueName")
            return Value(value_name="", value=text)
        if name is None or value is None:
            self.errors.append(f"{where}: needs both valueName and value")
        return Value(value_name=name or "", value=value or "")

    # -- alert ---------------------------------------------------------------------------------------------

    def alert(self, root: etree._Element) -> Alert:
        fields: dict[str, object] = {}
        codes: list[str] = []
        infos: list[Info] = []
        for child in root:
            local = _local_name(child)
            if not local:
                continue
            if local == "info":
                infos.append(self.info(child, f"info[{len(infos)}]"))
            elif local == "code":
                codes.append(_text(child))
            elif local in _ALERT_TEXT:
                fields[local] = _text(child)
            elif local == "password":
                self.warnings.append("password (CAP 1.0) dropped: the hub keeps no secrets from messages")
            elif etree.QName(child).namespace == DSIG_NS:
                continue  # the signature is checked by hub.cap.sign
            else:
                self.errors.append(f"unknown element <{local}> ignored")

        missing = [n for n in ("identifier", "sender", "sent", "status", "msgType", "scope") if not fields.get(n)]
        if missing:
            raise ParseError(f"required element(s) missing or empty: {', '.join(missing)}")
        sent = self.time(str(fields["sent"]), "sent")
        status = self.enum(Status, str(fields["status"]), "status")
        msg_type = self.enum(MsgType, str(fields["msgType"]), "msgType")
        scope = self.enum(Scope, str(fields["scope"]), "scope")
        if sent is None or status is None or msg_type is None or scope is None:
            raise ParseError(f"unusable header: {self.errors[-1]}")
        return Alert(
            identifier=str(fields["identifier"]),
            sender=str(fields["sender"]),
            sent=sent,
            status=status,
            msg_type=msg_type,
            source=_opt(fields, "source"),
            scope=scope,
            restriction=_opt(fields, "restriction"),
            addresses=_opt(fields, "addresses"),
            codes=tuple(codes),
            note=_opt(fields, "note"),
            references=self.references(_opt(fields, "references")),
            incidents=_opt(fields, "incidents"),
            infos=tuple(infos),
        )

    def references(self, text: str | None) -> tuple[Reference, ...]:
        if not text:
            return ()
        refs: list[Reference] = []
        for entry in text.split():
            parts = entry.split(",")
            if len(parts) != 3 or not parts[0] or not parts[1]:
                self.errors.append(f"references: {entry!r} is not sender,identifier,sent")
                continue
            sent = self.time(parts[2], f"references: {entry!r}")
            if sent is not None:
                refs.append(Reference(sender=parts[0], identifier=parts[1], sent=sent))
        return tuple(refs)

    # -- info ----------------------------------------------------------------------------------------------

    def info(self, el: etree._Element, where: str) -> Info:
        parts = self.info_parts(el, where)
        f = parts.fields
        times = {k: self.time(str(f[k]), f"{where}.{k}") if f.get(k) else None
                 for k in ("effective", "onset", "expires")}
        urgency, severity = self.ranked(f, where, "urgency", Urgency), self.ranked(f, where, "severity", Severity)
        certainty = self.ranked(f, where, "certainty", Certainty)
        if not f.get("event"):
            self.errors.append(f"{where}: event missing")
        if not parts.categories:
            self.errors.append(f"{where}: category missing")
        return Info(
            language=_opt(f, "language"),
            categories=tuple(parts.categories),
            event=str(f.get("event") or ""),
            response_types=tuple(parts.responses),
            urgency=urgency,
            severity=severity,
            certainty=certainty,
            audience=_opt(f, "audience"),
            event_codes=tuple(parts.event_codes),
            effective=times["effective"],
            onset=times["onset"],
            expires=times["expires"],
            sender_name=_opt(f, "senderName"),
            headline=_opt(f, "headline"),
            description=_opt(f, "description"),
            instruction=_opt(f, "instruction"),
            web=_opt(f, "web"),
            contact=_opt(f, "contact"),
            parameters=tuple(parts.parameters),
            resources=tuple(parts.resources),
            areas=tuple(parts.areas),
        )

    def info_parts(self, el: etree._Element, where: str) -> _InfoParts:
        """The children of one ``<info>`` in document order: text fields by name, the repeated elements as lists."""
        parts = _InfoParts()
        for child in el:
            local = _local_name(child)
            if not local:
                continue
            if local == "category":
                cat = self.enum(Category, _text(child), f"{where}.category")
                if cat is not None:
                    parts.categories.append(cat)
            elif local == "responseType":
                resp = self.enum(ResponseType, _text(child), f"{where}.responseType")
                if resp is not None:
                    parts.responses.append(resp)
            elif local == "eventCode":
                pair = self.pair(child, f"{where}.eventCode")
                if pair is not None:
                    parts.event_codes.append(pair)
            elif local == "parameter":
                pair = self.pair(child, f"{where}.parameter")
                if pair is not None:
                    parts.parameters.append(pair)
            elif local == "resource":
                parts.resources.append(self.resource(child, f"{where}.resource[{len(parts.resources)}]"))
            elif local == "area":
                parts.areas.append(self.area(child, f"{where}.area[{len(parts.areas)}]"))
            elif local in _INFO_TEXT:
                parts.fields[local] = _text(child)
            else:
                self.errors.append(f"{where}: unknown element <{local}> ignored")
        return parts

    def ranked(self, f: dict[str, object], where: str, key: str, cls: type[E]) -> E:
        """Urgency, severity or certainty of an info (``key``); a missing or unreadable one is read as Unknown."""
        text = f.get(key)
        value = self.enum(cls, str(text), f"{where}.{key}") if text else None
        if text is None:
            self.errors.append(f"{where}: {key} missing; read as Unknown")
        return value if value is not None else cls("Unknown")

    def resource(self, el: etree._Element, where: str) -> Resource:
        f = {_local_name(c): _text(c) for c in el if _local_name(c)}
        size = None
        if f.get("size"):
            try:
                size = int(f["size"])
            except ValueError:
                self.errors.append(f"{where}.size: {f['size']!r} is not an integer")
        if not f.get("resourceDesc"):
            self.errors.append(f"{where}: resourceDesc missing")
        if not f.get("mimeType") and self.version not in ("1.0", "1.1"):
            self.errors.append(f"{where}: mimeType missing")
        return Resource(
            resource_desc=f.get("resourceDesc", ""),
            mime_type=f.get("mimeType", ""),
            size=size,
            uri=f.get("uri") or None,
            deref_uri=f.get("derefUri") or None,
            digest=f.get("digest") or None,
        )

    def area(self, el: etree._Element, where: str) -> Area:
        desc = ""
        polygons: list[Polygon] = []
        circles: list[Circle] = []
        geocodes: list[Value] = []
        altitude = ceiling = None
        for child in el:
            local = _local_name(child)
            if local == "areaDesc":
                desc = _text(child)
            elif local == "polygon":
                poly = self.polygon(_text(child), f"{where}.polygon")
                if poly is not None:
                    polygons.append(poly)
            elif local == "circle":
                circle = self.circle(_text(child), f"{where}.circle")
                if circle is not None:
                    circles.append(circle)
            elif local == "geocode":
                pair = self.pair(child, f"{where}.geocode")
                if pair is not None:
                    geocodes.append(pair)
            elif local == "altitude":
                altitude = self.number(_text(child), f"{where}.altitude")
            elif local == "ceiling":
                ceiling = self.number(_text(child), f"{where}.ceiling")
            elif local:
                self.errors.append(f"{where}: unknown element <{local}> ignored")
        if not desc:
            self.errors.append(f"{where}: areaDesc missing")
        return Area(
            area_desc=desc,
            polygons=tuple(polygons),
            circles=tuple(circles),
            geocodes=tuple(geocodes),
            altitude=altitude,
            ceiling=ceiling,
        )

    def polygon(self, text: str, where: str) -> Polygon | None:
        try:
            points = [_point(p) for p in text.split()]
        except ValueError:
            self.errors.append(f"{where}: not a list of 'lat,lon' points; dropped")
            return None
        return tuple(points)

    def circle(self, text: str, where: str) -> Circle | None:
        parts = text.split()
        try:
            if len(parts) != 2:
                raise ValueError(text)
            return Circle(center=_point(parts[0]), radius_km=float(parts[1]))
        except ValueError:
            self.errors.append(f"{where}: {text!r} is not 'lat,lon radius'; dropped")
            return None


def _point(text: str) -> LatLon:
    lat, lon = text.split(",")
    return (float(lat), float(lon))


def _opt(fields: dict[str, object], key: str) -> str | None:
    value = fields.get(key)
    return str(value) if value else None


_ALERT_TEXT = frozenset(
    {"identifier", "sender", "sent", "status", "msgType", "source", "scope", "restriction", "addresses", "note",
     "references", "incidents"}
)
_INFO_TEXT = frozenset(
    {"language", "event", "urgency", "severity", "certainty", "audience", "effective", "onset", "expires",
     "senderName", "headline", "description", "instruction", "web", "contact"}
)


def is_language_tag(text: str) -> bool:
    """RFC 3066 shape, as CAP's ``language`` asks for."""
    return bool(_LANG.match(text))
