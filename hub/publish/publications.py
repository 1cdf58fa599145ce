"""Publications: the warnings the hub itself issues, as CAP 1.2 (table ``publications``).

A rule that publishes an incoming alert makes the hub issue its own message: its own sender and identifier, the
issuer's texts and areas, the severity the rules decided, and ``references`` to the hub's previous version of the
same incident, so downstream systems (the CAP Atom feed, webhooks) see one clean Alert → Update → Cancel chain
whatever the source did. A publication is stored before anything is sent (the outbox rows are written in the same
transaction by :mod:`hub.publish.pipeline`).

``thread`` names the incident on the hub's side (``w<source thread id>``), ``version`` counts its publications.
Texts per language (:class:`Notice`) are kept as JSON for the channels; the CAP XML is kept as issued.

Functions take the :class:`~hub.store.db.Store` and run on its writer thread.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import shapely
from lxml import etree
from shapely.geometry.base import BaseGeometry

from hub.cap import labels, sign
from hub.cap.model import Alert, Info, MsgType, Reference, ResponseType, Severity, from_json, to_json
from hub.cap.serialize import to_xml
from hub.store.db import Store

CANCEL_TTL = timedelta(hours=24)
"""How long a Cancel without an end of its own is worth delivering."""


def ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Notice:
    """What a channel shows of one language of a publication."""

    language: str
    event: str
    headline: str
    description: str
    instruction: str
    area_desc: str
    sender_name: str
    web: str | None
    all_clear: bool = False
    """responseType AllClear: the danger is over (an Entwarnung)."""
    event_codes: tuple[str, ...] = ()
    """The DWD II code and BBK event codes of the info (``61``, ``BBK-EVC-079``): the event's name in a reader's
    language comes from them (:mod:`hub.cap.event_names`) where the warning has no text in it."""

    @classmethod
    def of(cls, info: Info, fallback_sender: str) -> Notice:
        areas = ", ".join(dict.fromkeys(a.area_desc for a in info.areas if a.area_desc))
        codes = tuple(v.value.strip() for v in info.event_codes
                      if v.value_name == "II" or v.value.strip().startswith("BBK-EVC-"))
        return cls(info.lang, info.event, info.headline or info.event, info.description or "",
                   info.instruction or "", areas[:500], info.sender_name or fallback_sender, info.web,
                   ResponseType.ALL_CLEAR in info.response_types, codes)


def _language_key(tag: str) -> tuple[str, str]:
    """(primary language, private-use part) of a language tag: ``de-DE-x-ls`` -> ("de", "x-ls")."""
    low = tag.lower()
    head, sep, private = low.partition("-x-")
    if low.startswith("x-"):
        return "", low
    return head.split("-")[0], f"x-{private}" if sep else ""


@dataclass(frozen=True, slots=True)
class Publication:
    id: int
    thread: str
    version: int
    source_thread: int | None
    source_alert: int | None
    identifier: str
    sender: str
    sent: datetime
    msg_type: str
    status: str
    severity: str
    urgency: str
    expires_ms: int | None
    push: bool
    channels: tuple[str, ...]
    regions: tuple[str, ...]
    notices: tuple[Notice, ...]
    area: BaseGeometry | None
    """The area as a lon/lat geometry (None when only region keys are known)."""
    scope: str = ""
    """CAP scope (Public, Restricted, Private); "" where unknown, which is never public."""
    district: str = ""
    """The Kreis key of the district that issued it (its sender, its boards, its subscribers); "" in a store from
    before issue 19 (the first district's)."""

    @property
    def expires(self) -> datetime | None:
        return datetime.fromtimestamp(self.expires_ms / 1000, UTC) if self.expires_ms is not None else None

    def notice(self, languages: tuple[str, ...] | list[str] = ("de",)) -> Notice:
        """The best language for a reader who prefers ``languages``: exact; then the same language and variety
        (``de-x-ls`` finds ``de-DE-x-ls``, Leichte Sprache; ``de`` finds ``de-DE`` before Leichte Sprache); then the
        same language; then German."""
        for want in [*languages, "de"]:
            wanted = want.lower()
            for n in self.notices:
                if n.language.lower() == wanted:
                    return n
            primary, variety = _language_key(wanted)
            for n in self.notices:
                if _language_key(n.language) == (primary, variety):
                    return n
            for n in self.notices:
                if _language_key(n.language)[0] == primary:
                    return n
        return self.notices[0]

    @property
    def all_clear(self) -> bool:
        """An Update that says the danger is over (responseType AllClear)."""
        return self.msg_type == "Update" and any(n.all_clear for n in self.notices)

    def live(self, now: datetime | None = None) -> bool:
        """Current: not a Cancel and not past its expiry."""
        now_ms = ms(now or datetime.now(UTC))
        return self.msg_type != "Cancel" and (self.expires_ms is None or self.expires_ms > now_ms)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "thread": self.thread, "version": self.version, "identifier": self.identifier,
                "sender": self.sender, "sent": self.sent.isoformat(), "msgType": self.msg_type,
                "status": self.status, "scope": self.scope, "severity": self.severity, "urgency": self.urgency,
                "expires": self.expires.isoformat() if self.expires else None, "regions": list(self.regions),
                "infos": [notice_dict(n) for n in self.notices]}


def notice_dict(n: Notice) -> dict[str, Any]:
    return {"language": n.language, "event": n.event, "headline": n.headline, "description": n.description,
            "instruction": n.instruction, "areaDesc": n.area_desc, "senderName": n.sender_name, "web": n.web}


class Signer:
    """Signs the hub's CAP messages (enveloped XML-DSig, certificate carried), from config ``[hub] signing_key``
    and ``signing_cert``."""

    def __init__(self, key_pem: bytes, cert_pem: bytes) -> None:
        self.key_pem, self.cert_pem = key_pem, cert_pem

    def sign(self, xml: bytes) -> bytes:
        root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
        signed = sign.sign(root, key_pem=self.key_pem, cert_pem=self.cert_pem)
        return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def thread_name(source_thread: int, suffix: str = "") -> str:
    """The publication thread of stored incident ``source_thread``; ``suffix``: a district's other than the first
    (``-<slug>``, :class:`hub.publish.issuers.Issuer`)."""
    return f"w{source_thread}{suffix}"


def issue(source: Alert, *, sender: str, district: str, thread: str, version: int, previous: Publication | None,
          severity: Severity, now: datetime | None = None, sender_name: str | None = None) -> Alert:
    """The hub's CAP alert for a source version: Alert for the first publication of a thread, Update after it,
    Cancel when the source cancels; references the hub's previous version. ``sender_name``: the issuing
    district's, in every info (None: the source's, as a single-district hub keeps it)."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    if previous is not None and now <= previous.sent:
        now = previous.sent + timedelta(seconds=1)  # sent strictly increases along the chain
    if source.msg_type is MsgType.CANCEL:
        msg_type = MsgType.CANCEL
    else:
        msg_type = MsgType.ALERT if previous is None else MsgType.UPDATE
    infos = tuple(msgspec.structs.replace(i, severity=severity) if severity > i.severity else i
                  for i in source.infos)
    if sender_name is not None:
        infos = tuple(msgspec.structs.replace(i, sender_name=sender_name) for i in infos)
    refs = (Reference(sender=previous.sender, identifier=previous.identifier, sent=previous.sent),) if previous \
        else ()
    note = f"Quelle / source: {source.sender} {source.identifier} ({source.sent.isoformat()})"
    return Alert(identifier=f"warnhub.{district}.{thread}.{version}.{now:%Y%m%dT%H%M%S}", sender=sender, sent=now,
                 status=source.status, msg_type=msg_type, scope=source.scope, note=note, references=refs,
                 infos=infos, codes=tuple(c for c in source.codes if c not in ("SILENT_UPDATE",)))


_COLS = ("id", "thread", "version", "source_thread", "source_alert", "identifier", "sender", "sent", "msg_type",
         "status", "severity", "urgency", "expires_ms", "push", "channels", "regions", "notices", "area_wkb")


def _select(alias: str = "") -> str:
    """The columns :func:`_row` reads (``alias``: the table's name in the query), the CAP scope included."""
    a = f"{alias}." if alias else ""
    return ", ".join(a + c for c in _COLS) + f", json_extract({a}alert_json, '$.scope'), {a}district"


def _row(row: tuple[Any, ...]) -> Publication:
    d = dict(zip(_COLS, row[:len(_COLS)], strict=True))
    scope = row[len(_COLS)] if len(row) > len(_COLS) else ""
    district = row[len(_COLS) + 1] if len(row) > len(_COLS) + 1 else ""
    notices = tuple(Notice(**{**n, "event_codes": tuple(n.get("event_codes", ()))}) for n in json.loads(d["notices"]))
    area = shapely.from_wkb(d["area_wkb"]) if d["area_wkb"] else None
    return Publication(d["id"], d["thread"], d["version"], d["source_thread"], d["source_alert"], d["identifier"],
                       d["sender"], datetime.fromisoformat(d["sent"]), d["msg_type"], d["status"], d["severity"],
                       d["urgency"], d["expires_ms"], bool(d["push"]), tuple(json.loads(d["channels"])),
                       tuple(json.loads(d["regions"])), notices, area, scope or "", district or "")


@dataclass(frozen=True, slots=True)
class Encoded:
    """A publication's stored forms (texts, JSON, CAP signed where configured, area), made before its
    transaction: serialising and signing are CPU work that must not hold the store's one writer."""

    alert: Alert
    notices: str
    alert_json: str
    cap_xml: bytes
    area_wkb: bytes | None


def encode(alert: Alert, area: BaseGeometry | None, signer: Signer | None = None) -> Encoded:
    notices = tuple(Notice.of(i, alert.sender) for i in alert.infos)
    return Encoded(alert, json.dumps([asdict(n) for n in notices], ensure_ascii=False), to_json(alert).decode(),
                   signer.sign(to_xml(alert)) if signer is not None else to_xml(alert),
                   shapely.to_wkb(area) if area is not None and not area.is_empty else None)


def insert(conn: Any, alert: Alert, *, thread: str, version: int, source_thread: int | None,
           source_alert: int | None, push: bool, channels: tuple[str, ...], regions: tuple[str, ...],
           area: BaseGeometry | None, now_ms: int, signer: Signer | None = None,
           encoded: Encoded | None = None, district: str = "") -> Publication:
    """Write one publication inside the caller's transaction; ``signer`` adds an XML-DSig to the CAP.
    ``encoded``: its stored forms made beforehand (:func:`encode` of this ``alert`` and ``area``). ``district``:
    the Kreis key of the district that issues it."""
    enc = encoded if encoded is not None and encoded.alert is alert else encode(alert, area, signer)
    infos = alert.infos
    urgency = max((i.urgency for i in infos), default=None)
    expires = alert.expires
    if alert.msg_type is MsgType.CANCEL and expires is None:
        expires = alert.sent + CANCEL_TTL
    cur = conn.execute(
        f"INSERT INTO publications ({', '.join(_COLS[1:-1])}, area_wkb, alert_json, cap_xml, created_ms, district)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (thread, version, source_thread, source_alert, alert.identifier, alert.sender, alert.sent.isoformat(),
         alert.msg_type.value, alert.status.value, alert.severity.value,
         urgency.value if urgency is not None else "Unknown", ms(expires) if expires else None, int(push),
         json.dumps(list(channels)), json.dumps(list(regions)), enc.notices, enc.area_wkb, enc.alert_json,
         enc.cap_xml, now_ms, district))
    pid = int(cur.lastrowid or 0)
    row = conn.execute(f"SELECT {_select()} FROM publications WHERE id=?", (pid,)).fetchone()
    return _row(row)


def latest(store: Store, thread: str) -> Publication | None:
    row = store.conn.execute(f"SELECT {_select()} FROM publications WHERE thread=? ORDER BY version DESC"
                             " LIMIT 1", (thread,)).fetchone()
    return _row(row) if row else None


def by_source_alert(store: Store, alert_id: int, district: str | None = None) -> Publication | None:
    """The publication ``district`` (its Kreis key) made of a stored version; None: the first made of it."""
    which, args = ("", ()) if district is None else (" AND district=?", (district,))
    row = store.conn.execute(f"SELECT {_select()} FROM publications WHERE source_alert=?{which} ORDER BY id"
                             " LIMIT 1", (alert_id, *args)).fetchone()
    return _row(row) if row else None


def get(store: Store, pid: int) -> Publication | None:
    row = store.conn.execute(f"SELECT {_select()} FROM publications WHERE id=?", (pid,)).fetchone()
    return _row(row) if row else None


def many(store: Store, ids: list[int]) -> dict[int, Publication]:
    out: dict[int, Publication] = {}
    for i in range(0, len(ids), 500):
        part = ids[i:i + 500]
        for row in store.conn.execute(f"SELECT {_select()} FROM publications WHERE id IN "
                                      f"({','.join('?' * len(part))})", part):
            p = _row(row)
            out[p.id] = p
    return out


def versions(store: Store, thread: str) -> list[Publication]:
    return [_row(r) for r in store.conn.execute(
        f"SELECT {_select()} FROM publications WHERE thread=? ORDER BY version", (thread,))]


# -- what the public may see ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Audience:
    """Who reads a public route, and so which publications it may show: the one rule every public read path applies
    (citizen pages, widget, ``/api/v1/warnings*``, the CAP documents, the feeds, the SSE stream and kiosk boards),
    in SQL (:meth:`where`) and on live events (:meth:`admits`).

    Public is what the hub published to one of ``channels`` (the pipeline keeps the public channels off a decision
    that is not for the public: a topic message or one for emergency services), with a CAP status in ``statuses``
    (Actual; never Exercise, Test, System or Draft, unless a kiosk board in a training room shows exercises to
    whoever holds its token) and CAP scope Public (never Restricted or Private). ``district``: a district's own site
    (issue 19) shows only that district's publications; "" (a single-district hub) shows them all."""

    channels: frozenset[str] = frozenset({"web"})
    statuses: frozenset[str] = frozenset({"Actual"})
    district: str = ""

    def admits(self, pub: Publication) -> bool:
        return (pub.status in self.statuses and pub.scope == PUBLIC_SCOPE
                and not self.channels.isdisjoint(pub.channels) and self.district in ("", pub.district))

    def of(self, district: str) -> Audience:
        """The same audience on one district's site (``""``: every district's publications)."""
        return replace(self, district=district)

    def where(self, alias: str = "") -> tuple[str, list[str]]:
        """An SQL condition on ``publications`` (named ``alias`` in the query) and its parameters."""
        a = f"{alias}." if alias else ""
        statuses, channels = sorted(self.statuses), sorted(self.channels)
        sql = (f"{a}status IN ({','.join('?' * len(statuses))})"
               f" AND json_extract({a}alert_json, '$.scope') = ?"
               f" AND EXISTS (SELECT 1 FROM json_each({a}channels) c WHERE c.value IN"
               f" ({','.join('?' * len(channels))}))")
        if not self.district:
            return sql, [*statuses, PUBLIC_SCOPE, *channels]
        return sql + f" AND {a}district = ?", [*statuses, PUBLIC_SCOPE, *channels, self.district]

    def threads(self) -> tuple[str, list[str]]:
        """A condition on ``publications`` that keeps a thread's versions to this audience's district."""
        return ("district = ?", [self.district]) if self.district else ("1=1", [])


PUBLIC_SCOPE = "Public"
WEB = Audience()
"""Citizen pages, widget, JSON API, CAP documents, feeds and the public stream."""
KIOSK = Audience(frozenset({"web", "boards"}))
"""A kiosk board."""
KIOSK_EXERCISE = Audience(KIOSK.channels, frozenset({"Actual", "Exercise"}))
"""A kiosk board marked ``exercise``, opened with its token."""


def current(store: Store, audience: Audience = WEB, *, now: datetime | None = None) -> list[Publication]:
    """The latest publication of every thread that is still live (not cancelled, not expired) and that
    ``audience`` may see, most severe first, then newest, then by id."""
    now_ms = ms(now or datetime.now(UTC))
    shown, params = audience.where("p")
    mine, own = audience.threads()
    rows = store.conn.execute(
        f"SELECT {_select('p')} FROM publications p"
        f" JOIN (SELECT thread, max(version) AS v FROM publications WHERE {mine} GROUP BY thread) m"
        " ON m.thread = p.thread AND m.v = p.version"
        f" WHERE p.msg_type != 'Cancel' AND (p.expires_ms IS NULL OR p.expires_ms > ?) AND {shown}",
        (*own, now_ms, *params)).fetchall()
    pubs = [_row(r) for r in rows]
    pubs.sort(key=rank)
    return pubs


def rank(pub: Publication) -> tuple[int, int, int]:
    """The order of current warnings: most severe first, then newest, then by id."""
    return (-labels.rank(pub.severity), -ms(pub.sent), pub.id)


def recent(store: Store, audience: Audience = WEB, *, limit: int = 100) -> list[Publication]:
    """The newest publications ``audience`` may see (every version, Cancels included), newest first: the feed."""
    shown, params = audience.where()
    rows = store.conn.execute(f"SELECT {_select()} FROM publications WHERE {shown} ORDER BY id DESC LIMIT ?",
                              (*params, limit)).fetchall()
    return [_row(r) for r in rows]


def shown_versions(store: Store, thread: str, audience: Audience = WEB) -> list[Publication]:
    """The versions of one thread ``audience`` may see, oldest first."""
    shown, params = audience.where()
    return [_row(r) for r in store.conn.execute(
        f"SELECT {_select()} FROM publications WHERE thread=? AND {shown} ORDER BY version", (thread, *params))]


def shown_cap_xml(store: Store, identifier_or_id: str | int, audience: Audience = WEB) -> bytes | None:
    """The CAP of a publication (by CAP identifier or id) if ``audience`` may see it, else None."""
    col = "id" if isinstance(identifier_or_id, int) else "identifier"
    shown, params = audience.where()
    row = store.conn.execute(f"SELECT cap_xml FROM publications WHERE {col}=? AND {shown}",
                             (identifier_or_id, *params)).fetchone()
    return bytes(row[0]) if row else None


def cap_xml(store: Store, identifier_or_id: str | int) -> bytes | None:
    """The CAP of any publication: for channels and operators, never for a public route (:func:`shown_cap_xml`)."""
    col = "id" if isinstance(identifier_or_id, int) else "identifier"
    row = store.conn.execute(f"SELECT cap_xml FROM publications WHERE {col}=?", (identifier_or_id,)).fetchone()
    return bytes(row[0]) if row else None


def alert_of(store: Store, pid: int) -> Alert | None:
    row = store.conn.execute("SELECT alert_json FROM publications WHERE id=?", (pid,)).fetchone()
    return from_json(row[0]) if row else None


@dataclass(frozen=True, slots=True)
class Published:
    """Event (:mod:`hub.events`): a publication (the hub's own CAP message) and its outbox rows were committed."""

    publication: Publication
