"""Repairs ``warnhub convert`` makes before it writes CAP, each one said; what cannot be repaired is refused.

Only repairs whose meaning is certain are made: a language written as a locale (``en_US``, ``DE``) becomes the
RFC 3066 tag CAP asks for (``en-US``, ``de``); a polygon ring left open is closed with its first point; a "polygon"
of fewer than three distinct points encloses nothing and is dropped (the area's other geometry and geocodes stay,
the warned area does not change); a resource without ``mimeType`` (optional before CAP 1.2) gets
``application/octet-stream``, RFC 2046's "unknown type". Coordinates beyond range, open polygons and the like are not
guessed at (a swapped latitude and longitude could be either): the output is validated with the same
:class:`hub.cap.validate.Validator` as ``warnhub validate`` and refused when the XSD or the semantic checks object.
"""

from __future__ import annotations

import re

import msgspec

from hub.cap.model import Alert, Area, Info
from hub.cap.parse import is_language_tag


def language_tag(text: str) -> str | None:
    """``en_US`` -> ``en-US``, ``DE`` -> ``de``, ``de-de`` -> ``de-DE``; None when no tag can be made of it."""
    parts = [p for p in re.split(r"[-_\s]+", text.strip()) if p]
    if not parts:
        return None
    tag = "-".join([parts[0].lower()] + [p.upper() if len(p) == 2 and p.isalpha() else p for p in parts[1:]])
    return tag if is_language_tag(tag) else None


def repair(alert: Alert) -> tuple[Alert, list[str]]:
    """The alert with its certain repairs made, and one note per repair (``info[0].language: 'en_US' -> 'en-US'``)."""
    notes: list[str] = []
    infos = tuple(_info(info, f"info[{i}]", notes) for i, info in enumerate(alert.infos))
    if not notes:
        return alert, notes
    return msgspec.structs.replace(alert, infos=infos), notes


def _info(info: Info, where: str, notes: list[str]) -> Info:
    before = len(notes)
    lang = info.language
    if lang is not None and not is_language_tag(lang) and (fixed := language_tag(lang)) is not None:
        notes.append(f"{where}.language: {lang!r} -> {fixed!r}")
        info = msgspec.structs.replace(info, language=fixed)
    resources = []
    for k, res in enumerate(info.resources):
        if not res.mime_type:
            notes.append(f"{where}.resource[{k}]: no mimeType (optional before CAP 1.2): application/octet-stream")
            res = msgspec.structs.replace(res, mime_type="application/octet-stream")
        resources.append(res)
    areas = tuple(_area(area, f"{where}.area[{k}]", notes) for k, area in enumerate(info.areas))
    if len(notes) == before:
        return info
    return msgspec.structs.replace(info, areas=areas, resources=tuple(resources))


def _area(area: Area, where: str, notes: list[str]) -> Area:
    rings = []
    for k, ring in enumerate(area.polygons):
        distinct = len(set(ring))
        if distinct < 3:
            notes.append(f"{where}.polygon[{k}]: {distinct} distinct point(s) enclose nothing: dropped")
            continue
        if ring[0] != ring[-1]:
            notes.append(f"{where}.polygon[{k}]: not closed: closed with its first point")
            ring = (*ring, ring[0])
        rings.append(ring)
    return area if len(rings) == len(area.polygons) and rings == list(area.polygons) else \
        msgspec.structs.replace(area, polygons=tuple(rings))
