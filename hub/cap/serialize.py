"""Writing the model back out: CAP 1.2 XML (valid against the OASIS XSD) and JSON.

Whatever version a message arrived in, the hub speaks CAP 1.2. Times keep their UTC offset and drop fractions of a
second (CAP 1.2's dateTime pattern has none); numbers are written without exponents (XSD decimals have none).
"""

from __future__ import annotations

from datetime import datetime

from lxml import etree

from hub.cap.model import Alert, Area, Info, Polygon, Resource, Value, to_json

CAP12_NS = "urn:oasis:names:tc:emergency:cap:1.2"
_Q = "{" + CAP12_NS + "}"

__all__ = ["to_xml", "to_element", "to_json", "format_time", "format_number"]


def format_time(value: datetime) -> str:
    """CAP 1.2 dateTime: ``2024-05-19T17:18:00+04:00`` (never ``Z``, never fractions)."""
    text = value.replace(microsecond=0).isoformat()
    return text[:-6] + "+00:00" if text.endswith("-00:00") else text


def format_number(value: float) -> str:
    """A decimal without exponent, as short as round-trips."""
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = f"{value:.12f}".rstrip("0").rstrip(".")
    return text


def _sub(parent: etree._Element, name: str, text: str | None) -> None:
    if text is None:
        return
    el = etree.SubElement(parent, _Q + name)
    el.text = text


def _pairs(parent: etree._Element, name: str, pairs: tuple[Value, ...]) -> None:
    for pair in pairs:
        el = etree.SubElement(parent, _Q + name)
        _sub(el, "valueName", pair.value_name)
        _sub(el, "value", pair.value)


def _polygon_text(polygon: Polygon) -> str:
    return " ".join(f"{format_number(lat)},{format_number(lon)}" for lat, lon in polygon)


def _area(parent: etree._Element, area: Area) -> None:
    el = etree.SubElement(parent, _Q + "area")
    _sub(el, "areaDesc", area.area_desc)
    for polygon in area.polygons:
        _sub(el, "polygon", _polygon_text(polygon))
    for circle in area.circles:
        lat, lon = circle.center
        _sub(el, "circle", f"{format_number(lat)},{format_number(lon)} {format_number(circle.radius_km)}")
    _pairs(el, "geocode", area.geocodes)
    if area.altitude is not None:
        _sub(el, "altitude", format_number(area.altitude))
    if area.ceiling is not None:
        _sub(el, "ceiling", format_number(area.ceiling))


def _resource(parent: etree._Element, res: Resource) -> None:
    el = etree.SubElement(parent, _Q + "resource")
    _sub(el, "resourceDesc", res.resource_desc)
    _sub(el, "mimeType", res.mime_type)
    _sub(el, "size", None if res.size is None else str(res.size))
    _sub(el, "uri", res.uri)
    _sub(el, "derefUri", res.deref_uri)
    _sub(el, "digest", res.digest)


def _info(parent: etree._Element, info: Info) -> None:
    el = etree.SubElement(parent, _Q + "info")
    _sub(el, "language", info.language)
    for cat in info.categories:
        _sub(el, "category", cat.value)
    _sub(el, "event", info.event)
    for resp in info.response_types:
        _sub(el, "responseType", resp.value)
    _sub(el, "urgency", info.urgency.value)
    _sub(el, "severity", info.severity.value)
    _sub(el, "certainty", info.certainty.value)
    _sub(el, "audience", info.audience)
    _pairs(el, "eventCode", info.event_codes)
    for name in ("effective", "onset", "expires"):
        value = getattr(info, name)
        if value is not None:
            _sub(el, name, format_time(value))
    _sub(el, "senderName", info.sender_name)
    _sub(el, "headline", info.headline)
    _sub(el, "description", info.description)
    _sub(el, "instruction", info.instruction)
    _sub(el, "web", info.web)
    _sub(el, "contact", info.contact)
    _pairs(el, "parameter", info.parameters)
    for res in info.resources:
        _resource(el, res)
    for area in info.areas:
        _area(el, area)


def to_element(alert: Alert) -> etree._Element:
    """The alert as a CAP 1.2 ``<alert>`` element, in the schema's element order."""
    root = etree.Element(_Q + "alert", nsmap={None: CAP12_NS})
    _sub(root, "identifier", alert.identifier)
    _sub(root, "sender", alert.sender)
    _sub(root, "sent", format_time(alert.sent))
    _sub(root, "status", alert.status.value)
    _sub(root, "msgType", alert.msg_type.value)
    _sub(root, "source", alert.source)
    _sub(root, "scope", alert.scope.value)
    _sub(root, "restriction", alert.restriction)
    _sub(root, "addresses", alert.addresses)
    for code in alert.codes:
        _sub(root, "code", code)
    _sub(root, "note", alert.note)
    if alert.references:
        _sub(root, "references", " ".join(f"{r.sender},{r.identifier},{format_time(r.sent)}" for r in alert.references))
    _sub(root, "incidents", alert.incidents)
    for info in alert.infos:
        _info(root, info)
    return root


def to_xml(alert: Alert, *, pretty: bool = True) -> bytes:
    """The alert as a CAP 1.2 XML document (UTF-8, with declaration)."""
    return etree.tostring(to_element(alert), xml_declaration=True, encoding="UTF-8", pretty_print=pretty)
