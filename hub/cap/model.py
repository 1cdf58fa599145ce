"""The CAP 1.2 domain model: immutable, typed structures for alert, info, resource and area.

Every source produces these at the edge; nothing past adapters/sources/ sees raw XML or JSON. Field names follow
CAP in snake_case; the JSON form (msgspec, ``rename="camel"``) uses CAP's own element names (``msgType``,
``senderName``, ``info``, ``area``...). Times are always timezone-aware. Coordinates are ``(lat, lon)`` as in CAP
(GeoJSON and NINA use ``lon, lat``: adapters swap at the edge).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

import msgspec

LatLon = tuple[float, float]
"""A point as CAP writes it: latitude first, then longitude, in WGS 84 degrees."""

Polygon = tuple[LatLon, ...]
"""A closed ring of ``(lat, lon)`` points; the first and last point are the same."""


class Status(enum.Enum):
    ACTUAL = "Actual"
    EXERCISE = "Exercise"
    SYSTEM = "System"
    TEST = "Test"
    DRAFT = "Draft"


class MsgType(enum.Enum):
    ALERT = "Alert"
    UPDATE = "Update"
    CANCEL = "Cancel"
    ACK = "Ack"
    ERROR = "Error"


class Scope(enum.Enum):
    PUBLIC = "Public"
    RESTRICTED = "Restricted"
    PRIVATE = "Private"


class Category(enum.Enum):
    GEO = "Geo"
    MET = "Met"
    SAFETY = "Safety"
    SECURITY = "Security"
    RESCUE = "Rescue"
    FIRE = "Fire"
    HEALTH = "Health"
    ENV = "Env"
    TRANSPORT = "Transport"
    INFRA = "Infra"
    CBRNE = "CBRNE"
    OTHER = "Other"


class ResponseType(enum.Enum):
    SHELTER = "Shelter"
    EVACUATE = "Evacuate"
    PREPARE = "Prepare"
    EXECUTE = "Execute"
    AVOID = "Avoid"
    MONITOR = "Monitor"
    ASSESS = "Assess"
    ALL_CLEAR = "AllClear"
    NONE = "None"


class _Ranked(enum.Enum):
    """An enum whose members rank by their order of definition: the first is the most pressing."""

    @property
    def rank(self) -> int:
        """Higher is more pressing; ``Unknown`` ranks 0."""
        members = list(type(self))
        return len(members) - 1 - members.index(self)

    def __ge__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.rank >= other.rank

    def __gt__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.rank > other.rank

    def __le__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.rank <= other.rank

    def __lt__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.rank < other.rank


class Urgency(_Ranked):
    IMMEDIATE = "Immediate"
    EXPECTED = "Expected"
    FUTURE = "Future"
    PAST = "Past"
    UNKNOWN = "Unknown"


class Severity(_Ranked):
    EXTREME = "Extreme"
    SEVERE = "Severe"
    MODERATE = "Moderate"
    MINOR = "Minor"
    UNKNOWN = "Unknown"


class Certainty(_Ranked):
    OBSERVED = "Observed"
    LIKELY = "Likely"
    POSSIBLE = "Possible"
    UNLIKELY = "Unlikely"
    UNKNOWN = "Unknown"


class _Model(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """Base: immutable, keyword-only, CAP element names in JSON, defaults left out of JSON."""


class Value(_Model, frozen=True):
    """A ``valueName``/``value`` pair: eventCode, parameter and geocode."""

    value_name: str
    value: str


class Reference(_Model, frozen=True):
    """One entry of ``<references>``: the (sender, identifier, sent) of an earlier message."""

    sender: str
    identifier: str
    sent: datetime

    def key(self) -> tuple[str, str]:
        """Sender and identifier: what names a message even where a source mangles the time."""
        return (self.sender, self.identifier)


class Circle(_Model, frozen=True):
    center: LatLon
    """``(lat, lon)`` of the centre."""
    radius_km: float


class Resource(_Model, frozen=True):
    resource_desc: str
    mime_type: str
    size: int | None = None
    uri: str | None = None
    deref_uri: str | None = None
    digest: str | None = None


class Area(_Model, frozen=True):
    area_desc: str
    polygons: tuple[Polygon, ...] = msgspec.field(default=(), name="polygon")
    """Rings of ``(lat, lon)`` points."""
    circles: tuple[Circle, ...] = msgspec.field(default=(), name="circle")
    geocodes: tuple[Value, ...] = msgspec.field(default=(), name="geocode")
    altitude: float | None = None
    ceiling: float | None = None


class Info(_Model, frozen=True):
    language: str | None = None
    """As written; CAP's default when absent is ``en-US`` (see :attr:`lang`)."""
    categories: tuple[Category, ...] = msgspec.field(default=(), name="category")
    event: str = ""
    response_types: tuple[ResponseType, ...] = msgspec.field(default=(), name="responseType")
    urgency: Urgency = Urgency.UNKNOWN
    severity: Severity = Severity.UNKNOWN
    certainty: Certainty = Certainty.UNKNOWN
    audience: str | None = None
    event_codes: tuple[Value, ...] = msgspec.field(default=(), name="eventCode")
    effective: datetime | None = None
    onset: datetime | None = None
    expires: datetime | None = None
    sender_name: str | None = None
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    web: str | None = None
    contact: str | None = None
    parameters: tuple[Value, ...] = msgspec.field(default=(), name="parameter")
    resources: tuple[Resource, ...] = msgspec.field(default=(), name="resource")
    areas: tuple[Area, ...] = msgspec.field(default=(), name="area")

    @property
    def lang(self) -> str:
        """The effective language: CAP says an info without ``language`` is ``en-US``."""
        return self.language or "en-US"


class Alert(_Model, kw_only=True, frozen=True):
    identifier: str
    sender: str
    sent: Annotated[datetime, msgspec.Meta(tz=True)]
    status: Status
    msg_type: MsgType
    source: str | None = None
    """CAP's ``<source>`` element (the originating operator or device), not the hub adapter."""
    scope: Scope
    restriction: str | None = None
    addresses: str | None = None
    codes: tuple[str, ...] = msgspec.field(default=(), name="code")
    note: str | None = None
    references: tuple[Reference, ...] = ()
    incidents: str | None = None
    infos: tuple[Info, ...] = msgspec.field(default=(), name="info")

    def key(self) -> tuple[str, str, datetime]:
        """What names one message: CAP's (sender, identifier, sent)."""
        return (self.sender, self.identifier, self.sent)

    def has_code(self, code: str) -> bool:
        return code in self.codes

    @property
    def silent_update(self) -> bool:
        """DWD's ``SILENT_UPDATE`` code: an Update that changes nothing a citizen must be told again about
        (wording, internal data); it replaces the current version but deserves no new push."""
        return "SILENT_UPDATE" in self.codes

    @property
    def partial_clear(self) -> bool:
        """DWD's ``PARTIAL_CLEAR`` code: an Update that ends the warning for some of its areas; the areas it still
        names are the ones still warned, the rest are cleared."""
        return "PARTIAL_CLEAR" in self.codes

    @property
    def expires(self) -> datetime | None:
        """The latest ``expires`` of all infos, or None when any info has none (no end is stated)."""
        ends = [i.expires for i in self.infos]
        if not ends or any(e is None for e in ends):
            return None
        return max(e for e in ends if e is not None)

    @property
    def severity(self) -> Severity:
        """The highest severity over all infos (Unknown without infos)."""
        return max((i.severity for i in self.infos), default=Severity.UNKNOWN)

    def headline(self, prefer: tuple[str, ...] = ("de", "en")) -> str:
        """A one-line title in the first preferred language present, else the first info's."""
        for want in prefer:
            for info in self.infos:
                if info.lang.lower().split("-")[0] == want and (info.headline or info.event):
                    return info.headline or info.event
        for info in self.infos:
            if info.headline or info.event:
                return info.headline or info.event
        return self.identifier


def to_json(alert: Alert) -> bytes:
    """The alert as JSON with CAP's element names (times in RFC 3339)."""
    return msgspec.json.encode(alert)


def from_json(data: bytes | str) -> Alert:
    """Read back what :func:`to_json` wrote; raises ``msgspec.ValidationError`` on anything else."""
    return msgspec.json.decode(data, type=Alert)
