"""What a CAP alert's areas cover (:func:`resolve`): Kreise, and the Gemeinden codes name or the areas touch near
the district; whether they touch the district; which share of the alert's area lies outside it."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from hub.cap.model import Alert, Area, Info, Value
from hub.geo.boundaries import Units
from hub.geo.geography import Geography, geography, touches_m2
from hub.geo.projection import (
    GERMANY,
    GERMANY_LAT,
    GERMANY_LON,
    circle_lonlat,
    geodesic_area_m2,
    in_box,
    polygon_lonlat,
)
from hub.geo.registry import DEFAULT_DISTRICT, Level, Registry

FULL_SHARE = 0.97
"""A region covered to at least this share of its area counts as fully covered: boundaries from different sources
(NINA's Kreis polygons against DWD's) differ by 1-2 % of a Kreis' area."""
_NEAR_LON = (-15.0, 35.0)
_NEAR_LAT = (35.0, 65.0)


class RegionHit(msgspec.Struct, frozen=True, kw_only=True):
    """A region an alert's areas cover."""

    ars: str
    name: str | None
    level: str
    coverage: str
    """``full`` or ``partial``."""
    share: float | None = None
    """Measured share of the region's area covered (None where only codes spoke)."""


class Resolution(msgspec.Struct, frozen=True, kw_only=True):
    """What an alert's areas cover, seen from one district."""

    district_ars: str
    regions: tuple[RegionHit, ...]
    """Kreise, Gemeinden/Ortsteile named by code, and the Gemeinden the areas touch in the district's Kreis and its
    neighbours (:meth:`Geography.local_units`) or by an extra boundary; sorted by ARS."""
    inside_district: bool
    """The areas touch the district (by code or by geometry)."""
    outside_share: float
    """Share of the alerted area outside the district: by true area where any geometry is known (polygons, circles,
    bundled or extra boundaries of coded regions), else by the number of codes naming regions outside."""
    basis: str
    """``area``, ``count`` (codes without geometry) or ``none`` (nothing to measure)."""
    area_km2: float = 0.0
    """Measured area of all shapes (0 without geometry)."""
    inside_km2: float = 0.0
    """The part of it inside the district's boundary."""
    unresolved: tuple[str, ...] = ()
    """Geocodes that name no known region (``WARNCELLID=501000001 (coast)``)."""
    notes: tuple[str, ...] = ()

    def summary(self, alert: str) -> dict[str, Any]:
        """The ``warnhub area --json`` object."""
        return {"alert": alert,
                "regions": [{"ars": r.ars, "name": r.name, "coverage": r.coverage} for r in self.regions],
                "inside_district": self.inside_district,
                "outside_share": round(self.outside_share, 4)}


_CELL_NAMES = ("WARNCELLID",)
_ARS_NAMES = ("ARS", "warnVerwaltungsbereiche")
_AGS_NAMES = ("AGS",)
_EXCLUDE = "EXCLUDE_POLYGON"
_SPLIT = re.compile(r"[\s,;]+")


@dataclass(slots=True)
class _Work:
    geo: Geography
    full: set[str] = field(default_factory=set)
    partial: set[str] = field(default_factory=set)
    cells: set[str] = field(default_factory=set)
    code_items: list[tuple[str, ...]] = field(default_factory=list)
    """Per code without geometry: the regions it names (for the count basis)."""
    shapes: list[BaseGeometry] = field(default_factory=list)
    far_m2: float = 0.0
    far_points: bool = False
    named: set[str] = field(default_factory=set)
    """Regions named by a code (kept in the hits even where their Kreis is covered fully)."""
    unresolved: list[str] = field(default_factory=list)
    ignored: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


def _areas_of(item: Alert | Info | Iterable[Area]) -> list[tuple[Area, bool]]:
    """(area, codes only touch) pairs, without repeats (a MUL alert repeats its areas in every language).

    The second item is True for the ``warnVerwaltungsbereiche`` parameter of an info that has shapes: those codes
    list what the shapes touch."""
    infos: list[Info]
    if isinstance(item, Alert):
        infos = list(item.infos)
    elif isinstance(item, Info):
        infos = [item]
    else:
        infos = [Info(areas=tuple(item))]
    seen: set[tuple[Area, bool]] = set()
    out: list[tuple[Area, bool]] = []
    for info in infos:
        shaped = any(a.polygons or a.circles for a in info.areas)
        extra = [p.value for p in info.parameters if p.value_name == "warnVerwaltungsbereiche"]
        areas = [(a, False) for a in info.areas]
        if extra:
            areas.append((Area(area_desc="warnVerwaltungsbereiche",
                               geocodes=tuple(Value(value_name="ARS", value=v) for v in extra)), shaped))
        for area, touch in areas:
            if (area, touch) not in seen:
                seen.add((area, touch))
                out.append((area, touch))
    return out


def resolve(alert_or_areas: Alert | Info | Iterable[Area], district_ars: str = DEFAULT_DISTRICT, *,
            geo: Geography | None = None) -> Resolution:
    """Resolve CAP areas (of an alert, one info, or a list of areas) against the regions and the district.

    Polygons (minus DWD's ``EXCLUDE_POLYGON`` holes) and circles are measured as geometry. Geocodes ``WARNCELLID``,
    ``ARS``, ``AGS`` and ``warnVerwaltungsbereiche`` (also as an info parameter) name regions: in an area without
    polygon or circle, a Land or Kreis code covers its Kreise fully and a Gemeinde code covers the Gemeinde fully
    and its Kreis partly; their known boundaries then count as the area's geometry. Codes beside shapes only mark
    regions as touched; the shapes decide coverage.
    """
    geo = geo or geography()
    reg = geo.registry
    if district_ars not in reg:
        raise ValueError(f"unknown district ARS {district_ars}")
    work = _Work(geo)
    for area, touch in _areas_of(alert_or_areas):
        _area(work, area, touch)
    _complete_kreise(reg, work)
    shares: dict[str, float] = {}
    union = shapely.union_all(work.shapes) if work.shapes else shapely.Polygon()
    area_m2 = float(union.area) + work.far_m2
    inside_m2, touches_geom = _measure_union(work, union, district_ars, shares)
    hits = _hits(reg, work, shares)
    inside_codes = any(reg.is_within(h.ars, district_ars) or reg.is_within(district_ars, h.ars) for h in hits)
    inside = inside_codes or touches_geom
    basis, outside = _outside_share(work, union, district_ars, (area_m2, inside_m2), touches_geom, shares)
    if work.ignored:
        work.notes.append("geocodes not used: " + ", ".join(sorted(work.ignored)))
    if geo.shared_boundary(district_ars):
        work.notes.append(f"district boundary is shared by {', '.join(geo.shared_boundary(district_ars))} "
                          "(one DWD cell); add a finer boundary")
    return Resolution(district_ars=district_ars, regions=hits, inside_district=inside, outside_share=outside,
                      basis=basis, area_km2=area_m2 / 1e6, inside_km2=inside_m2 / 1e6,
                      unresolved=tuple(work.unresolved), notes=tuple(work.notes))


def _complete_kreise(reg: Registry, work: _Work) -> None:
    """Codes: Kreise covered by all their parts (Kreis cells, Gemeinde cells or Gemeinden) are covered fully."""
    for k in sorted(work.partial - work.full):
        r = reg.get(k)
        if r is None or not r.is_(Level.KREIS):
            continue
        parts, leaves, gems = reg.kreis_cells(k), reg.gemeinde_cells(k), reg.gemeinden(k)
        if (parts and parts <= work.cells) or (leaves and leaves <= work.cells) or (gems and set(gems) <= work.full):
            work.full.add(k)


def _measure_union(work: _Work, union: BaseGeometry, district_ars: str, shares: dict[str, float]) -> tuple[float, bool]:
    """Measure the shapes' union against the Kreise and the district's local units (covered shares into ``shares``,
    the regions into ``work.full``/``work.partial``); return the area inside the district (m²) and whether the union
    touches the district."""
    geo, reg = work.geo, work.geo.registry
    inside_m2 = 0.0
    touches_geom = False
    district_geom = geo.geometry(district_ars)
    if not union.is_empty:
        shapely.prepare(union)
        for units in (geo.kreise, geo.local_units(district_ars)):
            if units is not None:
                _measure(union, units, units.region_area, work.full | work.partial, shares)
        for ars, share in shares.items():
            (work.full if share >= FULL_SHARE else work.partial).add(ars)
        if district_geom is not None:
            inter = float(union.intersection(district_geom).area) if union.intersects(district_geom) else 0.0
            inside_m2 = inter
            if union.area > 0:
                touches_geom = touches_m2(inter, float(union.area), float(district_geom.area))
            else:
                touches_geom = bool(union.intersects(district_geom))
        elif reg[district_ars].is_(Level.GEMEINDE):
            work.notes.append(f"no boundary for district {district_ars}: geometry not compared")
    return inside_m2, touches_geom


def _outside_share(work: _Work, union: BaseGeometry, district_ars: str, measured_m2: tuple[float, float],
                   touches_geom: bool, shares: Mapping[str, float]) -> tuple[str, float]:
    """The basis (``area``, ``count``, ``none``) and the share of the alerted area outside the district;
    ``measured_m2``: the area of all shapes and the part of it inside the district."""
    reg = work.geo.registry
    area_m2, inside_m2 = measured_m2
    if area_m2 > 0:
        basis = "area"
        outside = min(1.0, max(0.0, (area_m2 - inside_m2) / area_m2))
        skipped = [item for item in work.code_items if not any(reg.kreis_of(a) in shares or a in shares for a in item)]
        if skipped:
            ours = sum(1 for item in skipped if any(reg.is_within(a, district_ars) for a in item))
            work.notes.append(f"{len(skipped)} geocode(s) without a boundary and outside the measured shapes: not "
                              f"measured" + (f" ({ours} of them in the district)" if ours else ""))
    elif not union.is_empty or work.far_points:  # points only
        basis = "area"
        outside = 0.0 if touches_geom else 1.0
    elif work.code_items:
        basis = "count"
        out = sum(1 for item in work.code_items
                  if not any(reg.is_within(a, district_ars) or reg.is_within(district_ars, a) for a in item))
        outside = out / len(work.code_items)
    else:
        basis, outside = "none", 0.0
    return basis, outside



def _measure(union: BaseGeometry, units: Units, region_area: Mapping[str, float], named: set[str],
             shares: dict[str, float]) -> None:
    """Covered share per region of ``units`` (summed over each region's pieces).

    A piece shared by several Kreise (a "Kreis und Stadt" cell) counts for those of them the codes name, if any."""
    assert units.tree is not None
    idx = units.tree.query(union, predicate="intersects")
    if len(idx) == 0:
        return
    geoms = np.array(units.geoms, dtype=object)[idx]
    inside = shapely.contains_properly(union, geoms)
    inter = np.where(inside, units.areas[idx], 0.0)
    rest = ~inside
    if rest.any():
        inter[rest] = shapely.area(shapely.intersection(union, geoms[rest]))
    covered: dict[str, float] = defaultdict(float)
    touched: set[str] = set()
    union_area = float(union.area)
    for i, a in zip(idx, inter, strict=True):
        owners = units.regions[i]
        if len(owners) > 1 and named.intersection(owners):
            owners = tuple(o for o in owners if o in named)
        if union_area == 0 or touches_m2(float(a), union_area, float(units.areas[i])):
            touched.update(owners)
        for ars in owners:
            covered[ars] += float(a)
    for ars in touched:
        total = region_area.get(ars, 0.0)
        share = covered[ars] / total if total else 0.0
        shares[ars] = max(shares.get(ars, 0.0), min(1.0, share))


def _hits(reg: Registry, work: _Work, shares: Mapping[str, float]) -> tuple[RegionHit, ...]:
    """The covered regions; a Gemeinde only measured (not named by a code) is left out where its Kreis is covered
    fully (a Kreis-wide warning does not list each of its Gemeinden)."""
    out = []
    for ars in sorted(work.full | work.partial):
        r = reg.get(ars)
        if r is None or r.level in (Level.LAND, Level.BEZIRK, Level.VERBAND) and not r.is_(Level.KREIS):
            continue
        if r.level is Level.GEMEINDE and ars not in work.named and reg.kreis_of(ars) in work.full:
            continue
        level = Level.KREIS if r.is_(Level.KREIS) else r.level
        share = shares.get(ars)
        out.append(RegionHit(ars=ars, name=r.name, level=level.value,
                             coverage="full" if ars in work.full else "partial",
                             share=None if share is None else round(share, 4)))
    return tuple(out)


def _area(work: _Work, area: Area, touch: bool) -> None:
    shapes: list[BaseGeometry] = []
    holes: list[BaseGeometry] = []
    for ring in area.polygons:
        shapes.append(polygon_lonlat(ring))
    for circle in area.circles:
        shapes.append(circle_lonlat(circle))
    touch_only = bool(shapes) or touch  # beside shapes, codes only say "touched"; the shapes decide
    named: list[tuple[tuple[str, ...], BaseGeometry | None]] = []
    for code in area.geocodes:
        vname = code.value_name.strip()
        if vname == _EXCLUDE:
            try:
                pts = [tuple(float(x) for x in p.split(",")) for p in code.value.split()]
                holes.append(polygon_lonlat([(p[0], p[1]) for p in pts if len(p) == 2]))
            except ValueError:
                work.unresolved.append(f"{_EXCLUDE}={code.value[:40]}")
            continue
        if vname not in _CELL_NAMES + _ARS_NAMES + _AGS_NAMES:
            work.ignored.add(vname)
            continue
        for value in filter(None, _SPLIT.split(code.value)):
            found = _code(work, vname, value, touch_only)
            if found is not None:
                named.append(found)
    lonlat = [s for s in shapes if not s.is_empty]
    if lonlat:
        geom = shapely.union_all(lonlat)
        holes = [h for h in holes if not h.is_empty]
        if holes:
            geom = geom.difference(shapely.union_all(holes))
        _add_shape(work, geom)
    elif not touch_only:
        for regions, geom in named:
            if geom is not None:
                work.shapes.append(geom)
            else:
                work.code_items.append(regions)


def _code(work: _Work, vname: str, value: str, touch_only: bool) -> tuple[tuple[str, ...], BaseGeometry | None] | None:
    """Apply one code's coverage to ``work``; return the regions it names and their projected geometry (None if
    the code names nothing known)."""
    geo, reg = work.geo, work.geo.registry
    full: set[str] = set()
    partial: set[str] = set()
    if vname in _CELL_NAMES:
        cell = reg.warncell(value)
        if cell is None or not cell.kreise:
            work.unresolved.append(f"{vname}={value} ({cell.kind if cell else 'unknown'})")
            geom = geo.cell_geometry(value) if cell else None
            return ((), geom) if geom is not None else None
        if not touch_only:
            work.cells.add(cell.id)
        if cell.kind == "kreis":
            full.update(cell.kreise)
            names = cell.kreise
        elif cell.kind == "gemeinde" and cell.gemeinde:
            full.add(cell.gemeinde)
            partial.update(cell.kreise)
            names = (cell.gemeinde,)
        else:
            partial.update(cell.kreise)
            if cell.gemeinde:  # a Kreis cell that is now one Gemeinde (Eisenach), or part of a Gemeinde
                (full if cell.kind == "kreis-part" else partial).add(cell.gemeinde)
            names = (cell.gemeinde,) if cell.gemeinde else cell.kreise
        geom = geo.cell_geometry(cell.id)
    else:
        ars = reg.from_ags(value) if vname in _AGS_NAMES else reg.from_ars(value)
        if ars is None:
            work.unresolved.append(f"{vname}={value}")
            return None
        r = reg[ars]
        if r.is_(Level.KREIS):
            full.add(ars)
        elif r.level in (Level.LAND, Level.BEZIRK):
            if touch_only:
                return (ars,), None  # too coarse to say what the shapes touch
            full.update(reg.kreise_in(ars))
        elif r.level is Level.VERBAND:
            full.update(reg.gemeinden(ars))
            partial.update(reg.kreise_in(ars))
        else:
            full.add(ars)
            if r.parent:
                partial.add(r.parent if r.level is Level.ORTSTEIL else reg.kreis_of(ars) or r.parent)
        names = (ars,)
        geom = geo.geometry(ars)
    work.named.update(names)
    if touch_only:
        work.partial.update(full | partial)
    else:
        work.full.update(full)
        work.partial.update(partial)
    return names, geom


def _add_shape(work: _Work, geom_lonlat: BaseGeometry) -> None:
    if geom_lonlat.is_empty:
        return
    bounds = geom_lonlat.bounds
    if in_box(bounds, _NEAR_LON, _NEAR_LAT):
        work.shapes.append(GERMANY.project(geom_lonlat))
        if not in_box(bounds, GERMANY_LON, GERMANY_LAT):
            _swap_hint(work, geom_lonlat)
        return
    work.far_m2 += geodesic_area_m2(geom_lonlat)
    work.far_points = True
    _swap_hint(work, geom_lonlat)


def _swap_hint(work: _Work, geom_lonlat: BaseGeometry) -> None:
    minx, miny, maxx, maxy = geom_lonlat.bounds
    if in_box((miny, minx, maxy, maxx), GERMANY_LON, GERMANY_LAT):
        work.notes.append("a shape lies outside Germany but would lie inside with latitude and longitude swapped: "
                          "CAP polygons and circles are 'lat,lon'")

