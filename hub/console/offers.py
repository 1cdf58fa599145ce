"""A warning over the border (issue 19): the part of its area in another district of the hub is **offered** to that
district, never sent in its name.

An author may draw or pick an area that reaches into a neighbouring district the hub also serves (region keys of
its Gemeinden, a polygon or circle crossing the border). Scope is checked on the author's own part only
(:func:`check_scope`); what lies in the other district is split off (:func:`split`). When the version is sent
(after the sending district's own four eyes), its CAP covers the sender's part only (:func:`own_row`: the other
district's region keys dropped, drawn shapes clipped at its boundary), and in the same transaction each other
district gets an **offer** in its inbox (:func:`offer`): a ``drafts`` row with ``district`` = its Kreis key,
``origin`` = ``offer``, kind ``offer``, key ``offer:<thread>:<version>:<district>`` (one per offering version and
district), the content and the part of the area in that district, and who offered it (the district, not a person).
Updates, cancels and all-clears of the offering warning are offered too (a new row per version, naming the offers
before it); a version that no longer reaches a district that had an offer offers it a Cancel.

The receiving district's operators make a warning of their own from it (:func:`hub.console.drafts.from_offer`):
their authors, their four eyes, their sender. Audited: ``console.offer`` in the offering district's chain,
``console.offer_received`` in the receiving one's.

In a hub with one district nothing is split: every function here returns its input unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import shapely
from shapely.geometry import mapping
from shapely.geometry import shape as geojson_shape
from shapely.geometry.base import BaseGeometry

from hub.cap.model import Circle, MsgType
from hub.config.districts import District
from hub.console.model import SCOPE_TOLERANCE_M, ConsoleConfig, ConsoleForbidden, ConsoleUser, _check_scope, _msg
from hub.console.tables import _dumps
from hub.geo.projection import GERMANY, circle_lonlat
from hub.store.clock import utc_iso
from hub.store.db import Store

ORIGIN = "offer"
KIND = "offer"
SIMPLIFY_M = 10.0
"""A clipped shape is simplified to this many metres (a Kreis boundary has thousands of vertices)."""


@dataclass(frozen=True, slots=True)
class Part:
    """The part of an area in another district of the hub."""

    district: District
    area: dict[str, Any]
    """``{"ars": [...], "features": [...], "desc": None}`` like a version's area."""


def _others(cfg: ConsoleConfig) -> tuple[District | None, tuple[District, ...]]:
    ds = cfg.districts
    if ds is None or not ds.multi:
        return None, ()
    own = ds.by_ars(cfg.district)
    return own, tuple(d for d in ds if own is None or d.ars != own.ars)


def _lonlat(feature: Mapping[str, Any]) -> BaseGeometry:
    g = feature["geometry"]
    if g["type"] == "Point":
        lon, lat = g["coordinates"]
        return circle_lonlat(Circle(center=(lat, lon), radius_km=feature["properties"]["radius_m"] / 1000))
    return geojson_shape(g)


def _feature(lonlat: BaseGeometry) -> dict[str, Any] | None:
    polys = [shapely.Polygon(p.exterior) for p in getattr(lonlat, "geoms", [lonlat])  # CAP polygons have no holes
             if p.geom_type == "Polygon" and not p.is_empty]
    if not polys:
        return None
    geom = shapely.set_precision(shapely.MultiPolygon(polys) if len(polys) > 1 else polys[0], 1e-6)
    return {"type": "Feature", "properties": {}, "geometry": json.loads(json.dumps(mapping(geom)))}


def _clip(cfg: ConsoleConfig, feature: Mapping[str, Any], others: tuple[District, ...]) \
        -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
    """A drawn shape: its own part (the feature unchanged when nothing of it lies in another district) and its
    parts in other districts (by Kreis key). A strip of :data:`SCOPE_TOLERANCE_M` along the border is drawing
    noise, not a part."""
    shape = GERMANY.project(_lonlat(feature))
    parts: dict[str, BaseGeometry] = {}
    for d in others:
        kreis = cfg.geo.geometry(d.ars)
        if kreis is None:
            continue
        if shape.intersection(kreis.buffer(-SCOPE_TOLERANCE_M)).area > 1.0:
            parts[d.ars] = shape.intersection(kreis)
    if not parts:
        return dict(feature), {}
    own = shape.difference(shapely.union_all([cfg.geo.geometry(a) for a in parts]))
    out = {}
    for ars, part in parts.items():
        if (f := _feature(GERMANY.unproject(part.simplify(SIMPLIFY_M)))) is not None:
            out[ars] = f
    small = own.area <= 1.0 or own.buffer(-SCOPE_TOLERANCE_M / 2).is_empty
    return (None if small else _feature(GERMANY.unproject(own.simplify(SIMPLIFY_M)))), out


def split(cfg: ConsoleConfig, area: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[Part, ...]]:
    """A version's area as its own district's part and the parts in the hub's other districts (in config order).
    One district (or an area inside it): ``(area, ())``."""
    own_d, others = _others(cfg)
    if not others:
        return dict(area), ()
    own: dict[str, Any] = {**area, "ars": [], "features": []}
    parts: dict[str, dict[str, Any]] = {d.ars: {"ars": [], "features": [], "desc": None} for d in others}
    for ars in area["ars"]:
        d = cfg.districts.of_region(ars) if cfg.districts is not None else None
        (parts[d.ars]["ars"] if d is not None and d.ars in parts else own["ars"]).append(ars)
    for feature in area["features"]:
        mine, theirs = _clip(cfg, feature, others)
        if mine is not None:
            own["features"].append(mine)
        for ars, f in theirs.items():
            parts[ars]["features"].append(f)
    found = tuple(Part(d, parts[d.ars]) for d in others if parts[d.ars]["ars"] or parts[d.ars]["features"])
    return (own, found) if found else (dict(area), ())


def check_scope(cfg: ConsoleConfig, user: ConsoleUser, area: Mapping[str, Any]) -> None:
    """The console's scope check on the part of ``area`` in the user's own district (the rest is offered, never
    sent in its name); an area with nothing in the own district is refused."""
    own, parts = split(cfg, area)
    if parts and not own["ars"] and not own["features"]:
        names = ", ".join(p.district.name for p in parts)
        raise ConsoleForbidden(_msg(f"Das Gebiet liegt ganz in {names}: dort warnt nur dessen Leitstelle",
                                f"the area lies entirely in {names}: only its own authority warns there"))
    _check_scope(cfg, user, own)


def own_row(cfg: ConsoleConfig, row: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` with its area cut to the own district's part: what its CAP covers and its preview shows."""
    own, parts = split(cfg, row["area"])
    return {**row, "area": own} if parts else dict(row)


def offer_text(name: str, lang: str) -> str:
    """What the preview tells the author, per language."""
    if lang == "en":
        return f"The part in {name} is offered to {name} for its own decision (not sent in its name)"
    return f"Der Teil im {name} wird dem {name} zur eigenen Entscheidung angeboten (nicht in seinem Namen gesendet)"


def preview(cfg: ConsoleConfig, row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The offers sending ``row`` would make (the preview shows them before anything is sent)."""
    return [{"district": p.district.slug, "ars": p.district.ars, "name": p.district.name,
             "regions": list(p.area["ars"]), "shapes": len(p.area["features"]),
             "text": {"de": offer_text(p.district.name, "de"), "en": offer_text(p.district.name, "en")}}
            for p in split(cfg, row["area"])[1]]


def key_of(thread: str, version: int, district: str) -> str:
    return f"offer:{thread}:{version}:{district}"


def offer(store: Store, cfg: ConsoleConfig, row: Mapping[str, Any], *, identifier: str, now: datetime) -> list[str]:
    """Inside the send's transaction: an offer to each other district the sent version ``row`` reaches (and a
    Cancel to each that an earlier version reached and this one no longer does). Returns the keys written."""
    own_d, others = _others(cfg)
    if not others:
        return []
    parts = {p.district.ars: p for p in split(cfg, row["area"])[1]}
    earlier = _earlier(store, row["thread"])
    keys = []
    for d in others:
        part = parts.get(d.ars)
        if part is None and d.ars not in earlier:
            continue
        msg_type = row["msg_type"] if part is not None else MsgType.CANCEL.value
        area = part.area if part is not None else {"ars": [], "features": [], "desc": None}
        key = _store_offer(store, cfg, own_d, d, row, msg_type, area, identifier, earlier.get(d.ars, []), now)
        if key is not None:
            keys.append(key)
    return keys


def _earlier(store: Store, thread: str) -> dict[str, list[str]]:
    """Keys of the offers made so far from a thread, by receiving district."""
    out: dict[str, list[str]] = {}
    rows = store.conn.execute("SELECT key, district FROM drafts WHERE origin=? AND key LIKE ? ORDER BY id",
                              (ORIGIN, f"offer:{thread}:%"))
    for key, district in rows:
        out.setdefault(district, []).append(key)
    return out


def _store_offer(store: Store, cfg: ConsoleConfig, own: District | None, to: District, row: Mapping[str, Any],
                 msg_type: str, area: Mapping[str, Any], identifier: str, earlier: list[str],
                 now: datetime) -> str | None:
    by = {"district": cfg.district, "name": own.name if own else cfg.sender_name, "slug": own.slug if own else ""}
    c = row["content"]
    headline = (c["texts"].get("de-DE") or {}).get("headline") or c["event"]
    key = key_of(row["thread"], row["version"], to.ars)
    doc = {**c, "template": row["template"], "kind": row["kind"], "area": dict(area),
           "offer": {"from": by, "thread": row["thread"], "version": row["version"], "msg_type": msg_type,
                     "kind": row["kind"], "identifier": identifier, "status": row["status"],
                     "audience": row["audience"], "topic": row["topic"], "channels": list(row["channels"]),
                     "earlier": earlier}}
    what = {"Cancel": ("eine Aufhebung", "a cancel"), "Update": ("eine Aktualisierung", "an update")}.get(
        msg_type, ("eine Warnung", "a warning"))
    why = (f"{by['name']} bietet {what[0]} für den Teil in Ihrem Gebiet zur eigenen Entscheidung an: „{headline}“ / "
           f"{by['name']} offers {what[1]} for the part in your area, for your own decision")
    audiences = ["public"] if row["audience"] == "public" else [f"topic:{row['topic']}"]
    cur = store.conn.execute(
        "INSERT OR IGNORE INTO drafts (key, origin, alert_id, rule, sensor, kind, template, at, channels, audiences,"
        " why, draft, created_at, district) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (key, ORIGIN, None, by["name"], None, KIND, row["template"] or "", utc_iso(now), _dumps(list(row["channels"])),
         _dumps(audiences), why, _dumps(doc), utc_iso(now), to.ars))
    if cur.rowcount == 0:
        return None
    detail = {"offer": key, "thread": row["thread"], "version": row["version"], "msg_type": msg_type,
              "identifier": identifier, "regions": list(area["ars"]), "shapes": len(area["features"])}
    store.audit(by["name"], "console.offer", row["thread"], {**detail, "to": to.ars, "to_name": to.name}, now=now,
                district=cfg.district)
    store.audit(by["name"], "console.offer_received", key, {**detail, "from": cfg.district, "from_name": by["name"]},
                now=now, district=to.ars)
    return key


def load(store: Store, key: str) -> dict[str, Any] | None:
    """An offer by its key (any state): its row with ``district``, ``state`` and the offer document."""
    row = store.conn.execute("SELECT key, state, district, draft, created_at, why FROM drafts WHERE key=? AND origin=?",
                             (key, ORIGIN)).fetchone()
    if row is None:
        return None
    return {"key": row[0], "state": row[1], "district": row[2], "draft": json.loads(row[3]), "created_at": row[4],
            "why": row[5]}


def pending(store: Store, district: str, *, limit: int = 100) -> list[dict[str, Any]]:
    """The offers waiting in ``district``'s inbox, newest first."""
    keys = [r[0] for r in store.conn.execute(
        "SELECT key FROM drafts WHERE origin=? AND district=? AND state='pending' ORDER BY id DESC LIMIT ?",
        (ORIGIN, district, limit))]
    return [o for k in keys if (o := load(store, k)) is not None]
