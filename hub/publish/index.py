"""Targeting: which push subscriptions a warning reaches, answered from memory by :class:`SubscriptionIndex`.

The pipeline asks for every warning and the console for every preview, over up to millions of subscriptions, so an
answer must take milliseconds, not a scan of the table with a geometry test per row:

- Point places (a circle: lat/lon and a radius) live in numpy column arrays, projected to metres
  (:data:`hub.geo.projection.GERMANY`) and sorted by radius class and 5 km grid cell over Germany. A query reads
  only the cells within reach of the warning's bounding box, per radius class (one 50 km circle does not widen the
  search for all the 1 km ones), prunes the candidates by their distance to that box in one vectorised step, and
  tests only the few left exactly with shapely (inside the area, else within the radius of it).
- Region places (an ARS) are few distinct keys with many subscribers each. They match by the ARS hierarchy (a key
  above, equal to or below) and, for a warning with an area, by the region's known boundary. Those boundaries are
  large polygons, and a grid would have to cut them into cells; a shapely STRtree over them finds the few whose
  bounding box meets the area before the exact overlap test (:func:`_touches`, with hub.geo's thresholds for
  generalised borders).
- Severity, topic (a bitmask of CAP categories, plus event slugs), source kind (a bitmask of
  :data:`hub.publish.sources.SOURCES`), quiet hours (minutes of the local day in Europe/Berlin: below Severe a
  subscription in its quiet hours is left out) and exercise filter as array comparisons.

Changes go to a small delta that is merged into the arrays when it grows. :func:`load_index` fills an index from the
``subscriptions`` table (:mod:`hub.publish.subscriptions`: the table, parsing and storing) on the store's writer thread.
"""

from __future__ import annotations

import threading
from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from hub.cap import labels
from hub.geo.geography import TOUCH_M2, TOUCH_SHARE, Geography, geography
from hub.geo.projection import GERMANY
from hub.geo.registry import Registry
from hub.publish.matched import Matched
from hub.publish.sources import SOURCES
from hub.publish.subscriptions import (
    CATEGORIES,
    GERMANY_BBOX,
    TOPICS,
    PointPlace,
    Subscription,
    stream_for_targeting,
)
from hub.store.db import Store

_CAT_BIT = {c: 1 << n for n, c in enumerate(CATEGORIES)}
_ALL_TOPICS = 1 << 15
"""Topic bit of subscriptions without topics (every warning has it)."""
_RADIUS_CLASSES = (1_000, 5_000, 20_000, 50_000)
"""Point places are queried per class, each with its own largest radius: one 50 km subscriber does not widen the
search for all the 1 km ones."""
_CELL_M = 5_000.0
_DELTA_MAX = 2_048
_SOURCE_BIT = {s: 1 << n for n, s in enumerate(SOURCES)}
_ALL_SOURCES = (1 << len(SOURCES)) - 1
_NOT_QUIET = -1
_QUIET_BELOW = labels.rank("Severe")
"""A warning of this rank or higher reaches a subscription in its quiet hours too."""
LOCAL = ZoneInfo("Europe/Berlin")
"""Quiet hours are local time of the district (Germany)."""


def local_minute(now: datetime) -> int:
    """Minutes after local midnight (Europe/Berlin) of an aware ``now``: the clock on the subscriber's wall."""
    local = now.astimezone(LOCAL)
    return local.hour * 60 + local.minute


def _quiet_code(quiet: tuple[int, int] | None) -> int:
    return _NOT_QUIET if quiet is None else quiet[0] * 2048 + quiet[1]


def _in_quiet(code: np.ndarray, minute: int) -> np.ndarray:
    """Which quiet-hours codes contain ``minute`` (from inclusive, to exclusive; across midnight if from > to)."""
    start, end = code // 2048, code % 2048
    inside = np.where(start < end, (start <= minute) & (minute < end), (minute >= start) | (minute < end))
    return (code != _NOT_QUIET) & inside


@lru_cache(maxsize=4096)
def _topic_mask(topics: tuple[str, ...]) -> tuple[int, tuple[str, ...]]:
    """(category bitmask, event slugs) of a subscription's topics."""
    if not topics:
        return _ALL_TOPICS, ()
    mask = 0
    for t in topics:
        for cat in TOPICS[t].categories if t in TOPICS else ():
            mask |= _CAT_BIT[cat]
    return mask, tuple(t.removeprefix("event:") for t in topics if t.startswith("event:"))


def _grid() -> tuple[float, float, int, int]:
    """Origin, columns and rows of the 5 km grid over Germany's bounding box (projected)."""
    lon_min, lat_min, lon_max, lat_max = GERMANY_BBOX
    mesh = np.meshgrid(np.linspace(lon_min, lon_max, 60), np.linspace(lat_min, lat_max, 60))
    xy = GERMANY.forward(np.column_stack([m.ravel() for m in mesh]))
    x0, y0 = xy.min(axis=0) - _CELL_M
    x1, y1 = xy.max(axis=0) + _CELL_M
    return float(x0), float(y0), int((x1 - x0) // _CELL_M) + 1, int((y1 - y0) // _CELL_M) + 1


_X0, _Y0, _COLS, _ROWS = _grid()
_CELLS = _COLS * _ROWS


@dataclass(slots=True)
class _Raw:
    """Column arrays: one row per subscription (``ids`` ...) and one per place (``p*`` points, ``r*`` regions)."""

    ids: np.ndarray
    min_sev: np.ndarray
    topics: np.ndarray
    exercise: np.ndarray
    events: list[tuple[int, str]]
    px: np.ndarray
    py: np.ndarray
    pr: np.ndarray
    psub: np.ndarray
    rars: np.ndarray
    rsub: np.ndarray
    sources: np.ndarray
    quiet: np.ndarray
    """Quiet hours per subscription: from * 2048 + to (minutes), or -1."""

    @classmethod
    def of(cls, items: Iterable[tuple[str, Subscription]]) -> _Raw:
        ids: list[bytes] = []
        sev, topics, exercise = array("b"), array("H"), array("b")
        lon, lat, radius, psub, rsub = array("d"), array("d"), array("f"), array("i"), array("i")
        rars: list[str] = []
        events: list[tuple[int, str]] = []
        sources, quiet = array("B"), array("i")
        for n, (sub_id, sub) in enumerate(items):
            ids.append(sub_id.encode())
            sources.append(sum(_SOURCE_BIT[s] for s in sub.sources) or _ALL_SOURCES)
            quiet.append(_quiet_code(sub.quiet_hours))
            sev.append(labels.rank(sub.min_severity) or 1)
            mask, slugs = _topic_mask(sub.topics)
            topics.append(mask)
            events.extend((n, slug) for slug in slugs)
            exercise.append(sub.exercise)
            for p in sub.places:
                if isinstance(p, PointPlace):
                    lon.append(p.lon)
                    lat.append(p.lat)
                    radius.append(p.radius_m)
                    psub.append(n)
                else:
                    rars.append(p.ars)
                    rsub.append(n)
        xy = GERMANY.forward(np.column_stack((np.array(lon), np.array(lat)))) if lon else np.zeros((0, 2))
        return cls(np.array(ids, dtype="S"), np.array(sev, np.int8), np.array(topics, np.uint16),
                   np.array(exercise, bool), events, xy[:, 0].copy(), xy[:, 1].copy(), np.array(radius, np.float32),
                   np.array(psub, np.int32), np.array(rars, dtype="S12"), np.array(rsub, np.int32),
                   np.array(sources, np.uint8), np.array(quiet, np.int32))

    @staticmethod
    def concat(parts: Sequence[_Raw]) -> _Raw:
        offsets = np.cumsum([0] + [len(p.ids) for p in parts])
        cat = np.concatenate
        return _Raw(cat([p.ids for p in parts]), cat([p.min_sev for p in parts]), cat([p.topics for p in parts]),
                    cat([p.exercise for p in parts]), [(n + o, s) for p, o in zip(parts, offsets, strict=False)
                                                       for n, s in p.events],
                    cat([p.px for p in parts]), cat([p.py for p in parts]), cat([p.pr for p in parts]),
                    cat([(p.psub + o).astype(np.int32) for p, o in zip(parts, offsets, strict=False)]),
                    cat([p.rars for p in parts]),
                    cat([(p.rsub + o).astype(np.int32) for p, o in zip(parts, offsets, strict=False)]),
                    cat([p.sources for p in parts]), cat([p.quiet for p in parts]))

    def select(self, keep: np.ndarray) -> _Raw:
        """The rows of the subscriptions where ``keep`` is True, renumbered."""
        new = np.cumsum(keep, dtype=np.int64) - 1
        pk, rk = keep[self.psub], keep[self.rsub]
        return _Raw(self.ids[keep], self.min_sev[keep], self.topics[keep], self.exercise[keep],
                    [(int(new[n]), s) for n, s in self.events if keep[n]], self.px[pk], self.py[pk], self.pr[pk],
                    new[self.psub[pk]].astype(np.int32), self.rars[rk], new[self.rsub[rk]].astype(np.int32),
                    self.sources[keep], self.quiet[keep])


@dataclass(slots=True)
class _Query:
    geom: BaseGeometry | None
    """Projected area of the warning (None: only region keys)."""
    point_geom: BaseGeometry | None
    """What point places are tested against: ``geom``, else the known boundaries of the region keys."""
    keys: set[str]
    rank: int
    """Severity rank of the warning; 0 (Unknown) passes every filter."""
    topic_bits: int
    events: set[str]
    exercise: bool
    source_bit: int = _ALL_SOURCES
    minute: int | None = None
    """Local minute of the day for quiet hours (None: quiet hours are not applied)."""


@dataclass(slots=True)
class _Part:
    """An immutable set of subscriptions, sorted by id, with only ``alive`` changing (removals)."""

    raw: _Raw
    reg: Registry
    geo: Geography
    alive: np.ndarray = field(init=False)
    events: dict[str, np.ndarray] = field(init=False)
    offsets: np.ndarray = field(init=False)
    class_max: list[float] = field(init=False)
    region_subs: dict[str, np.ndarray] = field(init=False)
    below: dict[str, list[str]] = field(init=False)
    bounded: set[str] = field(init=False)
    """Region places with a known boundary: below a key, they match only where the area touches it."""
    region_tree: shapely.STRtree | None = field(init=False)
    region_geoms: list[tuple[str, BaseGeometry]] = field(init=False)

    def __post_init__(self) -> None:
        raw = self.raw
        order = np.argsort(raw.ids, kind="stable")
        rank = np.empty(len(order), np.int32)
        rank[order] = np.arange(len(order), dtype=np.int32)
        cls = np.searchsorted(np.array(_RADIUS_CLASSES, np.float32), raw.pr).clip(0, len(_RADIUS_CLASSES) - 1)
        col = ((raw.px - _X0) // _CELL_M).clip(0, _COLS - 1).astype(np.int64)
        row = ((raw.py - _Y0) // _CELL_M).clip(0, _ROWS - 1).astype(np.int64)
        key = cls * _CELLS + row * _COLS + col
        porder = np.argsort(key, kind="stable")
        raw = self.raw = _Raw(raw.ids[order], raw.min_sev[order], raw.topics[order], raw.exercise[order],
                              [(int(rank[n]), s) for n, s in raw.events], raw.px[porder], raw.py[porder],
                              raw.pr[porder], rank[raw.psub[porder]], raw.rars, rank[raw.rsub],
                              raw.sources[order], raw.quiet[order])
        self.offsets = np.searchsorted(key[porder], np.arange(len(_RADIUS_CLASSES) * _CELLS + 1))
        self.class_max = [float(raw.pr[self.offsets[c * _CELLS]:self.offsets[(c + 1) * _CELLS]].max(initial=0.0))
                          for c in range(len(_RADIUS_CLASSES))]
        self.alive = np.ones(len(raw.ids), bool)
        events: dict[str, list[int]] = defaultdict(list)
        for n, slug in raw.events:
            events[slug].append(n)
        self.events = {slug: np.array(subs, np.int32) for slug, subs in events.items()}
        self._regions()

    def _regions(self) -> None:
        raw = self.raw
        keys, inverse = np.unique(raw.rars, return_inverse=True)
        groups = np.split(raw.rsub[np.argsort(inverse, kind="stable")], np.cumsum(np.bincount(inverse))[:-1])
        self.region_subs = {k.decode(): g for k, g in zip(keys, groups, strict=True)} if len(keys) else {}
        self.below = defaultdict(list)
        self.region_geoms = []
        self.bounded = set()
        for ars in self.region_subs:
            for anc in self.reg.ancestors(ars):
                self.below[anc.ars].append(ars)
            geom = self.geo.geometry(ars)
            if geom is not None and not geom.is_empty:
                self.region_geoms.append((ars, geom))
                self.bounded.add(ars)
        self.region_tree = shapely.STRtree([g for _, g in self.region_geoms]) if self.region_geoms else None

    def kill(self, sub_id: str) -> bool:
        key = sub_id.encode()
        ids = self.raw.ids
        if not len(ids) or len(key) > ids.dtype.itemsize:
            return False
        i = int(np.searchsorted(ids, key))
        if i < len(ids) and ids[i] == key and self.alive[i]:
            self.alive[i] = False
            return True
        return False

    def eligible(self, subs: np.ndarray, q: _Query) -> np.ndarray:
        """Severity, topic, source, quiet hours, exercise and liveness filter for subscription rows."""
        raw = self.raw
        ok = self.alive[subs] & (raw.exercise[subs] == q.exercise) & ((raw.sources[subs] & q.source_bit) != 0)
        if q.rank:
            ok &= raw.min_sev[subs] <= q.rank
        if q.minute is not None and q.rank < _QUIET_BELOW:
            ok &= ~_in_quiet(raw.quiet[subs], q.minute)
        topical = (raw.topics[subs] & q.topic_bits) != 0
        for slug in q.events & self.events.keys():
            topical |= np.isin(subs, self.events[slug])
        return ok & topical

    def match(self, q: _Query) -> np.ndarray:
        # a mask, not np.unique: at a million matches sorting them took 0.4 s of the first push's second
        hit = np.zeros(len(self.raw.ids), bool)
        hit[self._points(q)] = True
        hit[self._regions_hit(q)] = True
        subs = np.flatnonzero(hit)
        return self.raw.ids[subs[self.eligible(subs, q)]]

    def _points(self, q: _Query) -> np.ndarray:
        g = q.point_geom
        if g is None or g.is_empty or not len(self.raw.px):
            return np.zeros(0, np.int32)
        minx, miny, maxx, maxy = g.bounds
        cand = []
        for c, reach in enumerate(self.class_max):
            c0, c1 = (int(np.clip((v - _X0) // _CELL_M, 0, _COLS - 1)) for v in (minx - reach, maxx + reach))
            r0, r1 = (int(np.clip((v - _Y0) // _CELL_M, 0, _ROWS - 1)) for v in (miny - reach, maxy + reach))
            base = c * _CELLS + np.arange(r0, r1 + 1) * _COLS
            cand.append(_ranges(self.offsets[base + c0], self.offsets[base + c1 + 1]))
        idx = np.concatenate(cand)
        raw = self.raw
        x, y, r = raw.px[idx], raw.py[idx], raw.pr[idx].astype(np.float64)
        dx = np.maximum(np.maximum(minx - x, x - maxx), 0.0)
        dy = np.maximum(np.maximum(miny - y, y - maxy), 0.0)
        near = dx * dx + dy * dy <= r * r
        near[near] = self.eligible(raw.psub[idx[near]], q)
        idx, x, y, r = idx[near], x[near], y[near], r[near]
        hit = shapely.contains_xy(g, x, y)
        rest = np.flatnonzero(~hit)
        if len(rest):
            hit[rest] = shapely.dwithin(g, shapely.points(x[rest], y[rest]), r[rest])
        return raw.psub[idx[hit]]

    def _regions_hit(self, q: _Query) -> np.ndarray:
        related: set[str] = set()
        g = q.geom
        shaped = g is not None and not g.is_empty
        for key in q.keys:
            # a key above a place (its Kreis, perhaps covered only in part) decides only for places without a
            # boundary, or for a warning without an area; the others are tested against the area below
            related.update(a for a in self.below.get(key, ()) if not shaped or a not in self.bounded)
            related.update(a for a in (key, *(r.ars for r in self.reg.ancestors(key))) if a in self.region_subs)
        if shaped and self.region_tree is not None:
            for i in self.region_tree.query(g, predicate="intersects"):
                ars, boundary = self.region_geoms[i]
                if ars not in related and _touches(g, boundary):
                    related.add(ars)
        if not related:
            return np.zeros(0, np.int32)
        return np.concatenate([self.region_subs[a] for a in related])


def _touches(g: BaseGeometry, boundary: BaseGeometry) -> bool:
    """An areal warning touches a region where the overlap is more than generalised borders produce (hub.geo)."""
    if g.area == 0:
        return True
    inter = float(g.intersection(boundary).area)
    return inter >= TOUCH_M2 and inter >= TOUCH_SHARE * min(float(g.area), float(boundary.area))


def _ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(lo[i], hi[i])``."""
    lens = hi - lo
    total = int(lens.sum())
    if not total:
        return np.zeros(0, np.int64)
    starts = np.repeat(lo - np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
    return starts + np.arange(total)


class SubscriptionIndex:
    """Finds the subscriptions a warning reaches. One object is shared by the web API (which tells it of every
    change) and the delivery pipeline (which asks it); thread-safe.

    Changes go to a small unindexed delta (removals mark the base); the next :meth:`match` after the delta has
    grown past a few thousand subscriptions rebuilds the base from its arrays (0.25-0.5 s per million places).
    """

    def __init__(self, items: Iterable[tuple[str, Subscription]] = (), *, geo: Geography | None = None) -> None:
        self._geo = geo
        self._lock = threading.RLock()
        self._delta: dict[str, Subscription] = {}
        self._delta_part: _Part | None = None
        self._dead = 0
        self._base = self._part(_Raw.of(items)) if items else None

    @property
    def geo(self) -> Geography:
        if self._geo is None:
            self._geo = geography()
        return self._geo

    def _part(self, raw: _Raw) -> _Part:
        return _Part(raw, self.geo.registry, self.geo)

    def reset(self, items: Iterable[tuple[str, Subscription]]) -> None:
        """Replace the whole content (streamed: ``items`` may be a generator)."""
        base = self._part(_Raw.of(items))
        with self._lock:
            self._base, self._delta, self._delta_part, self._dead = base, {}, None, 0

    def put(self, sub_id: str, sub: Subscription) -> None:
        """Add a subscription or replace the one with this id."""
        with self._lock:
            self._kill(sub_id)
            self._delta[sub_id] = sub
            self._delta_part = None

    def remove(self, sub_id: str) -> None:
        self.remove_many((sub_id,))

    def remove_many(self, ids: Iterable[str]) -> None:
        with self._lock:
            for sub_id in ids:
                self._kill(sub_id)
                if self._delta.pop(sub_id, None) is not None:
                    self._delta_part = None

    def _kill(self, sub_id: str) -> None:
        if self._base is not None and self._base.kill(sub_id):
            self._dead += 1

    def __len__(self) -> int:
        with self._lock:
            base = len(self._base.raw.ids) - self._dead if self._base is not None else 0
            return base + len(self._delta)

    def _compact(self) -> None:
        base = self._base
        n = len(base.raw.ids) if base is not None else 0
        if len(self._delta) <= _DELTA_MAX and self._dead <= max(_DELTA_MAX, n // 4):
            return
        parts = [base.raw.select(base.alive)] if base is not None else []
        self._base = self._part(_Raw.concat([*parts, _Raw.of(self._delta.items())]))
        self._delta, self._delta_part, self._dead = {}, None, 0

    def match(self, area_geom_lonlat: BaseGeometry | None, region_keys: Iterable[str], *, severity: str,
              categories: Iterable[str], event_topics: Iterable[str], exercise: bool,
              topic_only: bool = False, source: str | None = None, now: datetime | None = None) -> Matched:
        """Ids of the subscriptions a warning reaches (a sequence of str, held as bytes: :mod:`hub.publish.matched`).

        ``area_geom_lonlat``: the warning's area (lon/lat shapely geometry; for an alert with shapes and code-only
        areas, their union), or None. ``region_keys``: ARS of the regions it covers (12 digits or prefixes).
        A point place matches where its circle (radius in metres on the ground) reaches the area, or, without an
        area, the known boundaries of the region keys. A region place matches a key equal to or below it, or an
        area overlapping its known boundary (Kreise, Samtgemeinden, Gemeinden: bundled), or, where there is no
        area or no boundary, a key above it (as :meth:`hub.geo.geography.Geography.concerns`).
        Then: severity at least ``min_severity`` (``Unknown`` passes), a topic matching ``categories`` (CAP) or
        ``event_topics`` (slugs, ``event:`` optional) unless the subscription has none, and exercises only to
        exercise subscriptions and they only exercises. ``topic_only``: a message for the subscribers of
        ``event_topics`` alone (a school closure, a festival): subscriptions without one of those topics, including
        those without topics that take every public warning, are not matched. ``source``: the warning's kind of
        source (:func:`hub.publish.sources.source_of`; None: every subscription's sources take it). ``now``: the
        time that decides quiet hours (the pipeline's clock; None: quiet hours are not applied)."""
        reg = self.geo.registry
        keys = {a for k in region_keys if (a := reg.from_ars(str(k))) is not None}
        geom = _projected(area_geom_lonlat)
        point_geom = geom
        if point_geom is None:
            bounds = [b for k in sorted(keys) if (b := self.geo.geometry(k)) is not None]
            point_geom = shapely.union_all(bounds) if bounds else None
            if point_geom is not None:
                shapely.prepare(point_geom)
        bits = 0 if topic_only else _ALL_TOPICS
        for cat in () if topic_only else categories:
            bits |= _CAT_BIT.get(cat, 0)
        q = _Query(geom, point_geom, keys, labels.rank(severity), bits,
                   {e.removeprefix("event:") for e in event_topics}, exercise,
                   _SOURCE_BIT[source] if source is not None else _ALL_SOURCES,
                   local_minute(now) if now is not None else None)
        with self._lock:
            self._compact()
            if self._delta and self._delta_part is None:
                self._delta_part = self._part(_Raw.of(self._delta.items()))
            parts = [p for p in (self._base, self._delta_part if self._delta else None) if p is not None]
            return Matched.concat([p.match(q) for p in parts])


    def warm(self) -> None:
        """Run one match of a small area, so the first real warning does not pay for lazy imports and caches."""
        self.match(shapely.box(10.0, 51.0, 10.001, 51.001), (), severity="Extreme", categories=(), event_topics=(),
                   exercise=False)


def _projected(geom_lonlat: BaseGeometry | None) -> BaseGeometry | None:
    if geom_lonlat is None:
        return None
    geom = GERMANY.project(geom_lonlat)
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    shapely.prepare(geom)
    return geom


def load_index(store: Store, index: SubscriptionIndex) -> int:
    """Fill ``index`` with every subscription (streamed: no list of all of them); returns how many."""
    items = stream_for_targeting(store)
    count = 0

    def counted() -> Iterator[tuple[str, Subscription]]:
        nonlocal count
        for item in items:
            count += 1
            yield item

    index.reset(counted())
    return count
