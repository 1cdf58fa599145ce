"""Whom a publication reaches: the one resolution that the publish pipeline delivers by and the console's preview
shows (channels, area, share outside the district, push subscriptions, boards, kiosks, webhooks).

:func:`effective_channels` is the one audience -> channels rule: the public gets the decision's channels, topic
subscribers push alone, another audience (or a Restricted/Private message) all but the public channels. The
pipeline publishes by it, and the console stores and previews by it.

:func:`recipients` takes the alert and its stored decision (or the decision the console is about to store) and
answers from the pipeline's own pieces: the alert's shapes (:meth:`hub.decide.rules.engine.RuleSet.geometry`),
the subscription index, and :func:`reach` (boards and webhooks). The area it measures is the one point places are
tested against: the alert's shapes, or without any, the boundaries of its region keys (so a region without a
boundary of its own that was widened to its Kreis measures as the Kreis).

:func:`regions` is the console's side: the region keys a console warning is published with. They name the picked
regions and what the area covers fully, never a Kreis only touched (that would put the warning on every widget of
the Kreis); a picked region without a boundary of its own is widened to its Kreis, and :class:`Regions` says so,
so the sender can be asked to confirm it.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import shapely
from shapely.geometry.base import BaseGeometry

from hub.cap import labels
from hub.cap.model import Alert, Severity
from hub.config.districts import KREIS_DIGITS
from hub.config.sections import BoardConfig, WebhookConfig
from hub.decide.rules.engine import RuleSet
from hub.geo.geography import Geography
from hub.geo.projection import GERMANY
from hub.geo.registry import Level
from hub.geo.resolve import Resolution
from hub.publish.places import region_concerned
from hub.publish.sources import source_of
from hub.store.clock import now_utc


@dataclass(frozen=True, slots=True)
class Audience:
    """Who one publication reaches, and the area that decides it (projected, equal-area metres)."""

    area_proj: BaseGeometry | None
    """The alert's own shapes (polygons, circles, boundaries of its codes); None without any."""
    area_lonlat: BaseGeometry | None
    footprint: BaseGeometry | None
    """What point places are tested against: ``area_proj``, else the boundaries of the region keys."""
    push: Sequence[str]
    """Ids of the push subscriptions (a :class:`hub.publish.matched.Matched` from the index); empty for a Cancel
    (the pipeline tells who had an earlier version)."""
    push_on: bool
    boards: tuple[BoardConfig, ...]
    kiosks: tuple[BoardConfig, ...]
    webhooks: tuple[WebhookConfig, ...]
    area_km2: float
    inside_km2: float
    outside_share: float


# -- audience -> channels: the one rule for the pipeline and the console ------------------------------------------

PUBLIC = "public"
TOPIC = "topic:"
"""Prefix of a topic audience (``topic:<slug>``): the push subscriptions of that event topic, nothing else."""
PUBLIC_CHANNELS = frozenset({"web", "boards", "mqtt"})
"""Channels that show a warning to everyone: only for decisions whose audiences include ``public``."""
TOPIC_CHANNELS = frozenset({"push"})
"""The channels of a message for topic subscribers only."""
BOARD_CHANNELS = {"mqtt": "boards-mqtt", "http": "boards-http"}
"""The outbox channel of a board, by its kind."""


def audiences_of(audiences: Sequence[str], scope: str = "Public") -> set[str]:
    """The audiences a publish decision serves (none stored: the public, as the rules' default). A CAP message
    whose scope is not Public (Restricted, Private) never serves the public nor topic subscribers, whatever the
    rule says: only the named audiences (webhooks naming them) remain."""
    served = set(audiences or (PUBLIC,))
    if scope != "Public":
        served = {a for a in served if a != PUBLIC and not a.startswith(TOPIC)}
    return served


def effective_channels(channels: Sequence[str], audiences: Sequence[str], scope: str = "Public") -> tuple[str, ...]:
    """The channels a decision is published on: what the pipeline publishes and delivers by, and what the console
    stores for a version it sends and shows in its preview. For the public: the decision's channels. For topic
    subscribers only (``topic:<slug>``, a school closure): push alone, never the web, a board or a webhook (the
    console's promise and the README's). For another audience (``einsatzkraefte``) or a Restricted/Private
    message: the decision's channels less the public ones (webhooks naming the audience)."""
    served = audiences_of(audiences, scope)
    if PUBLIC in served:
        return tuple(channels)
    if served and all(a.startswith(TOPIC) for a in served):
        return tuple(c for c in channels if c in TOPIC_CHANNELS)
    return tuple(c for c in channels if c not in PUBLIC_CHANNELS)


def event_topics(alert: Alert) -> set[str]:
    """The event topics an alert names (parameter ``warnhub:topic`` or ``eventTopic``, comma-separated)."""
    out: set[str] = set()
    for info in alert.infos:
        for p in info.parameters:
            if p.value_name.lower() in ("warnhub:topic", "eventtopic"):
                out.update(v.strip().lower() for v in p.value.split(",") if v.strip())
    return out


def touches(geo: Any, ars: str, regions: Collection[str], area_proj: BaseGeometry | None) -> bool:
    """Does a warning reach this region: by its boundary where the hub knows it, else by the region keys."""
    boundary = geo.geometry(ars) if geo is not None else None
    if boundary is not None and area_proj is not None:
        return bool(boundary.intersects(area_proj)) and boundary.intersection(area_proj).area > 1.0
    reg = geo.registry if geo is not None else None
    if reg is None:
        return ars in regions
    return any(reg.is_within(ars, r) or reg.is_within(r, ars) for r in regions)


def reach(geo: Any, boards: Iterable[BoardConfig], webhooks: Iterable[WebhookConfig], *, channels: Collection[str],
          audiences: Collection[str], regions: Collection[str], area_proj: BaseGeometry | None, exercise: bool,
          severity: str, inside_district: bool) -> tuple[tuple[BoardConfig, ...], tuple[WebhookConfig, ...]]:
    """The MQTT/HTTP boards and the webhooks a publication reaches (the console's preview asks the same): boards of
    the channels whose region it touches, webhooks of an audience it serves at or above their minimum severity for
    their regions (none named: the district); exercises only where marked for exercises."""
    wanted = set(channels)
    reached = tuple(b for b in boards if b.kind in BOARD_CHANNELS and wanted & {"boards", "mqtt"}
                    and (b.exercise or not exercise) and touches(geo, b.ars, regions, area_proj))
    hooks = tuple(h for h in webhooks if "webhook" in wanted and (h.exercise or not exercise)
                  and set(audiences) & set(h.audiences)
                  and labels.rank(severity) >= labels.rank(h.min_severity)
                  and (any(touches(geo, a, regions, area_proj) for a in h.regions) if h.regions else inside_district))
    return reached, hooks


class Targeted(Protocol):
    """What targeting reads of a decision: the stored one (:class:`hub.decide.decisions.StoredDecision`) or the one
    the console is about to store (:class:`hub.decide.rules.engine.Decision`)."""

    @property
    def channels(self) -> tuple[str, ...]: ...
    @property
    def audiences(self) -> tuple[str, ...]: ...
    @property
    def push(self) -> bool: ...
    @property
    def severity(self) -> Severity: ...
    @property
    def regions(self) -> tuple[str, ...]: ...
    @property
    def inside_district(self) -> bool | None: ...


def recipients(geo: Geography | None, index: Any, boards: Sequence[BoardConfig], webhooks: Sequence[WebhookConfig],
               alert: Alert, decision: Targeted, *, district: str, shapes: Iterable[Any] | None = None,
               measure: bool = True, now: datetime | None = None, within: bool = False) -> Audience:
    """Whom ``alert`` published under ``decision`` reaches. ``index``: the SubscriptionIndex (None: no push).
    ``shapes``: the alert's projected shapes if the caller has them cached (the pipeline's live RuleSet), else
    computed. ``measure``: False leaves area and share at 0 (the pipeline does not show them; the preview does).
    ``now``: the time that decides the subscriptions' quiet hours (the pipeline passes its clock; default: now).
    Push subscriptions are filtered by their sources (:func:`hub.publish.sources.source_of` of the alert) too.
    ``within``: one of several districts publishes it, for its own people: the area is cut to the district
    (:func:`inside`), so subscribers, boards and webhooks elsewhere are its neighbours' to warn."""
    scope = alert.scope.value
    audiences = audiences_of(decision.audiences, scope)
    public = PUBLIC in audiences
    topics = {a.removeprefix(TOPIC) for a in audiences if a.startswith(TOPIC)}
    if shapes is None:
        shapes = RuleSet([], {}, geo=geo).geometry(alert) if geo is not None else ()
    found = [s for s in shapes if s is not None and not s.is_empty]
    area_proj = shapely.union_all(found) if found else None
    regions = set(decision.regions)
    if within and geo is not None:
        area_proj, regions = inside(geo, district, area_proj, regions)
    area_lonlat = GERMANY.unproject(area_proj) if area_proj is not None else None
    exercise = alert.status.value == "Exercise"
    channels = set(effective_channels(decision.channels, decision.audiences, scope))
    severity = decision.severity.value
    push_on = "push" in channels and decision.push and (public or bool(topics))
    push: Sequence[str] = ()
    if push_on and index is not None and alert.msg_type.value != "Cancel":
        cats = {c.value for i in alert.infos for c in i.categories}
        push = index.match(area_lonlat, regions, severity=severity, categories=cats,
                           event_topics=event_topics(alert) if public else topics, exercise=exercise,
                           topic_only=not public, source=source_of(alert), now=now or now_utc())
    reached, hooks = reach(geo, boards, webhooks, channels=channels, audiences=audiences, regions=regions,
                           area_proj=area_proj, exercise=exercise, severity=severity,
                           inside_district=decision.inside_district is not False)
    kiosks = tuple(b for b in boards if b.kind == "kiosk" and channels & {"web", "boards"} and public
                   and (b.exercise or not exercise) and _on_kiosk(geo, b.ars, regions, area_lonlat))
    footprint = area_proj if area_proj is not None else _boundaries(geo, regions)
    area_m2, inside_m2 = _measure(geo, footprint, district) if measure else (0.0, 0.0)
    outside = max(0.0, min(1.0, (area_m2 - inside_m2) / area_m2)) if area_m2 > 0 else 0.0
    return Audience(area_proj, area_lonlat, footprint, push, push_on, reached, kiosks, hooks,
                    area_m2 / 1e6, inside_m2 / 1e6, outside)


def inside(geo: Geography, district: str, area_proj: BaseGeometry | None,
           regions: Iterable[str]) -> tuple[BaseGeometry | None, set[str]]:
    """A warning's area (projected) and region keys as far as they lie in ``district`` (a Kreis key): the area cut
    to the district's boundary; the keys inside it, and the district's own key for a wider one that covers it (a
    Land's). One district of several warns its own people with it, never its neighbours'."""
    boundary = district_boundary(geo, district)
    if area_proj is not None and boundary is not None:
        area_proj = area_proj.intersection(boundary)
    stem = district[:KREIS_DIGITS]
    keys = set()
    for r in regions:
        wide = r.rstrip("0")
        if r[:KREIS_DIGITS] == stem and len(r) >= KREIS_DIGITS:
            keys.add(r)
        elif wide and len(wide) < KREIS_DIGITS and stem.startswith(wide):
            keys.add(district)
    return area_proj, keys


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
