"""Whom a publication reaches: the one resolution that the publish pipeline delivers by and the console's preview
shows (area, share outside the district, push subscriptions, boards, kiosks, webhooks).

:func:`recipients` takes the alert and its stored decision (or the decision the console is about to store) and
answers from the pipeline's own pieces: the alert's shapes (:meth:`hub.rules.RuleSet.geometry`), the subscription
index, and :func:`hub.pipeline.reach`. The area it measures is the one point places are tested against: the
alert's shapes, or without any, the boundaries of its region keys (so a region without a boundary of its own that
was widened to its Kreis measures as the Kreis).

:func:`regions` is the console's side: the region keys a console warning is published with. They name the picked
regions and what the area covers fully, never a Kreis only touched (that would put the warning on every widget of
the Kreis); a picked region without a boundary of its own is widened to its Kreis, and :class:`Regions` says so,
so the sender can be asked to confirm it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from hub.cap.model import Alert
from hub.config.sections import BoardConfig, WebhookConfig
from hub.geo.geography import Geography
from hub.geo.projection import GERMANY
from hub.geo.registry import Level
from hub.geo.resolve import Resolution
from hub.publish.places import region_concerned


@dataclass(frozen=True, slots=True)
class Audience:
    """Who one publication reaches, and the area that decides it (projected, equal-area metres)."""

    area_proj: BaseGeometry | None
    """The alert's own shapes (polygons, circles, boundaries of its codes); None without any."""
    area_lonlat: BaseGeometry | None
    footprint: BaseGeometry | None
    """What point places are tested against: ``area_proj``, else the boundaries of the region keys."""
    push: tuple[str, ...]
    """Ids of the push subscriptions (empty for a Cancel: the pipeline tells who had an earlier version)."""
    push_on: bool
    boards: tuple[BoardConfig, ...]
    kiosks: tuple[BoardConfig, ...]
    webhooks: tuple[WebhookConfig, ...]
    area_km2: float
    inside_km2: float
    outside_share: float


def recipients(geo: Geography | None, index: Any, boards: Sequence[BoardConfig], webhooks: Sequence[WebhookConfig],
               alert: Alert, decision: Mapping[str, Any], *, district: str, shapes: Iterable[Any] | None = None,
               measure: bool = True) -> Audience:
    """Whom ``alert`` published under ``decision`` (keys ``channels``, ``audiences``, ``push``, ``severity``,
    ``regions``, ``inside_district``) reaches. ``index``: the SubscriptionIndex (None: no push). ``shapes``: the
    alert's projected shapes if the caller has them cached (the pipeline's live RuleSet), else computed.
    ``measure``: False leaves area and share at 0 (the pipeline does not show them; the preview does)."""
    from hub.decide.rules.engine import RuleSet
    from hub.publish.pipeline import PUBLIC, audiences_of, effective_channels, event_topics, reach

    scope = alert.scope.value
    audiences = audiences_of(dict(decision), scope)
    public = PUBLIC in audiences
    topics = {a.removeprefix("topic:") for a in audiences if a.startswith("topic:")}
    if shapes is None:
        shapes = RuleSet([], {}, geo=geo).geometry(alert) if geo is not None else ()
    found = [s for s in shapes if s is not None and not s.is_empty]
    area_proj = shapely.union_all(found) if found else None
    area_lonlat = GERMANY.unproject(area_proj) if area_proj is not None else None
    exercise = alert.status.value == "Exercise"
    channels = set(effective_channels(dict(decision), scope))
    regions = {str(r) for r in decision["regions"]}
    push_on = "push" in channels and bool(decision["push"]) and (public or bool(topics))
    push: list[str] = []
    if push_on and index is not None and alert.msg_type.value != "Cancel":
        cats = {c.value for i in alert.infos for c in i.categories}
        push = index.match(area_lonlat, regions, severity=decision["severity"], categories=cats,
                           event_topics=event_topics(alert) if public else topics, exercise=exercise,
                           topic_only=not public)
    reached, hooks = reach(geo, boards, webhooks, channels=channels, audiences=audiences, regions=regions,
                           area_proj=area_proj, exercise=exercise, severity=decision["severity"],
                           inside_district=decision.get("inside_district") is not False)
    kiosks = tuple(b for b in boards if b.kind == "kiosk" and channels & {"web", "boards"} and public
                   and (b.exercise or not exercise) and _on_kiosk(geo, b.ars, regions, area_lonlat))
    footprint = area_proj if area_proj is not None else _boundaries(geo, regions)
    area_m2, inside_m2 = _measure(geo, footprint, district) if measure else (0.0, 0.0)
    outside = max(0.0, min(1.0, (area_m2 - inside_m2) / area_m2)) if area_m2 > 0 else 0.0
    return Audience(area_proj, area_lonlat, footprint, tuple(push), push_on, reached, kiosks, hooks,
                    area_m2 / 1e6, inside_m2 / 1e6, outside)


def _on_kiosk(geo: Geography | None, ars: str, regions: Iterable[str], area_lonlat: BaseGeometry | None) -> bool:
    """Does the kiosk page of region ``ars`` show it: the kiosk's own filter (hub.publish.places)."""
    if geo is None:
        return ars in regions
    return region_concerned(geo, ars, tuple(regions), area_lonlat)


def _boundaries(geo: Geography | None, regions: Iterable[str]) -> BaseGeometry | None:
    if geo is None:
        return None
    reg = geo.registry
    keys = sorted({a for r in regions if (a := reg.from_ars(r)) is not None})
    found = [g for k in keys if (g := geo.geometry(k)) is not None and not g.is_empty]
    return shapely.union_all(found) if found else None


@functools.lru_cache(maxsize=8)
def district_boundary(geo: Geography, district: str) -> BaseGeometry | None:
    """The district's boundary joined with the known boundaries of the regions in it (projected): a Gemeinde's exact
    boundary may stick out of the district's generalised one, and is inside the district all the same."""
    reg = geo.registry
    parts = [g for a in (district, *sorted(a for a in geo.extra if reg.is_within(a, district)))
             if (g := geo.geometry(a)) is not None and not g.is_empty]
    if not parts:
        return None
    joined = shapely.union_all(parts)
    shapely.prepare(joined)
    return joined


def _measure(geo: Geography | None, footprint: BaseGeometry | None, district: str) -> tuple[float, float]:
    if geo is None or footprint is None or footprint.is_empty:
        return 0.0, 0.0
    area = float(footprint.area)
    boundary = district_boundary(geo, district)
    if boundary is None:
        return area, 0.0
    return area, float(footprint.intersection(boundary).area) if footprint.intersects(boundary) else 0.0


# -- the console's region keys ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Widening:
    """A picked region without a boundary of its own, and the Kreis the warning then covers instead."""

    ars: str
    name: str
    kreis: str
    kreis_name: str


@dataclass(frozen=True, slots=True)
class Regions:
    keys: tuple[str, ...]
    widened: tuple[Widening, ...]


def regions(geo: Geography, district: str, picked: Sequence[str], res: Resolution) -> Regions:
    """The region keys a console warning is published with: the picked regions; the regions the area covers
    fully; Gemeinden (with boundaries) it touches inside the district; and, for a picked region without a boundary
    of its own, its Kreis (the widening, reported in ``widened``). A Kreis that is only touched is not a key: the
    area's geometry already reaches who is in it, and the key would reach the whole Kreis."""
    reg = geo.registry
    keys = list(picked)
    for h in res.regions:
        kreis = h.level == Level.KREIS.value
        if not (kreis or reg.is_within(h.ars, district)):
            continue
        if h.coverage == "full" or (not kreis and geo.geometry(h.ars) is not None):
            keys.append(h.ars)
    widened: list[Widening] = []
    for ars in picked:
        if geo.geometry(ars) is not None:
            continue
        kreis_ars = reg.kreis_of(ars) or district
        widened.append(Widening(ars, reg.name(ars) or ars, kreis_ars, reg.name(kreis_ars) or kreis_ars))
        keys.append(kreis_ars)
    return Regions(tuple(dict.fromkeys(keys)), tuple(widened))
