"""The registry with boundaries (:class:`Geography`): bundled Kreis and lake cells, bundled Gemeinden and
Gemeindeverbände, and operators' extra boundaries; whether a warning concerns a region
(:meth:`Geography.concerns`)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

import shapely
from shapely.geometry import shape as geojson_shape
from shapely.geometry.base import BaseGeometry

from hub.geo.boundaries import (
    KREISE_FILE,
    LAKES_FILE,
    BundledBoundaries,
    Units,
    geojson_features,
    load_extra_boundaries,
)
from hub.geo.projection import GERMANY, valid_polygons
from hub.geo.registry import Level, Registry, read_gz_json, registry

NEIGHBOUR_M = 2_000.0
"""Kreise whose boundary comes this close to the district's Kreis are its neighbours: their Gemeinden are measured
too (a warning across the district's border names the Gemeinden it reaches on both sides)."""

TOUCH_SHARE = 0.02
"""Geometry touches a region only where the overlap is at least this share of the smaller of the two areas (below
it, overlaps are what generalised borders of different sources produce) ..."""
TOUCH_M2 = 10_000.0
"""... and at least this many m² (1 ha): slivers along generalised borders do not count."""


def touches_m2(inter: float, a: float, b: float) -> bool:
    """Do two areas of ``a`` and ``b`` m² overlapping by ``inter`` m² touch (more than generalised borders of
    different sources produce: :data:`TOUCH_M2` and :data:`TOUCH_SHARE` of the smaller)?"""
    return inter >= TOUCH_M2 and inter >= TOUCH_SHARE * min(a, b)


class Geography:
    """The registry with boundaries: bundled Kreis and lake cells, bundled Gemeinden and Gemeindeverbände (read per
    Kreis when needed), plus any extra boundaries per ARS (they replace the bundled ones of the same region)."""

    def __init__(self, reg: Registry, kreis_cells: Mapping[str, BaseGeometry], lake_cells: Mapping[str, BaseGeometry],
                 extra: Mapping[str, BaseGeometry] | None = None, bundled: BundledBoundaries | None = None) -> None:
        self.registry = reg
        self.bundled = bundled
        self.extra: dict[str, BaseGeometry] = dict(extra or {})
        self._kreis_cells = dict(kreis_cells)
        self._lake_cells = dict(lake_cells)
        self.cell_geoms: dict[str, BaseGeometry] = {}
        """Projected geometry per warncell ID (bundled Kreis-level and lake cells)."""
        extra_kreise = {a for a in self.extra if reg[a].is_(Level.KREIS)}
        kreise = Units()
        shared: dict[str, tuple[str, ...]] = {}
        for cid, geom in sorted(kreis_cells.items()):
            cell = reg.warncell(cid)
            if cell is None or not cell.kreise:
                continue
            projected = GERMANY.project(geom)
            self.cell_geoms[cid] = projected
            owners = tuple(k for k in cell.kreise if k not in extra_kreise)
            if not owners:
                continue
            if len(owners) < len(cell.kreise):  # the rest of a shared cell: minus the Kreise given precisely
                projected = projected.difference(shapely.union_all([GERMANY.project(self.extra[k])
                                                                    for k in cell.kreise if k in extra_kreise]))
            if len(owners) > 1:
                for k in owners:
                    shared[k] = owners
            kreise.add(projected, owners)
        for cid, geom in lake_cells.items():
            self.cell_geoms[cid] = GERMANY.project(geom)
        for ars in sorted(extra_kreise):
            kreise.add(GERMANY.project(self.extra[ars]), (ars,))
        self._shared = shared
        self.kreise = kreise.build()
        self._extra_kreise = extra_kreise
        self._geom_cache: dict[str, BaseGeometry | None] = {}
        self._local: dict[str, Units | None] = {}
        self._lock = threading.Lock()

    def with_boundaries(self, extra: Mapping[str, BaseGeometry]) -> Geography:
        """A new geography with these lon/lat boundaries per ARS added (replacing earlier ones for the same ARS)."""
        unknown = sorted(a for a in extra if a not in self.registry)
        if unknown:
            raise ValueError(f"unknown ARS: {', '.join(unknown[:5])}")
        return Geography(self.registry, self._kreis_cells, self._lake_cells, {**self.extra, **extra}, self.bundled)

    def neighbours(self, kreis: str) -> tuple[str, ...]:
        """The Kreise whose boundary comes within :data:`NEIGHBOUR_M` of this Kreis (itself excluded)."""
        geom = self.geometry(kreis)
        if geom is None or self.kreise.tree is None:
            return ()
        near = self.kreise.tree.query(geom.buffer(NEIGHBOUR_M, quad_segs=2), predicate="intersects")
        return tuple(sorted({k for i in near for k in self.kreise.regions[i] if k != kreis}))

    def local_units(self, district: str) -> Units | None:
        """The boundaries :func:`resolve` measures below Kreis level for a district: the Gemeinden of the district's
        Kreis and of its neighbours (bundled, or the operator's where given), and every extra boundary below Kreis
        level. Built on first use per district, then kept; None if there are none."""
        with self._lock:
            if district in self._local:
                return self._local[district]
            reg = self.registry
            kreis = reg.kreis_of(district) if district in reg else None
            home = (kreis, *self.neighbours(kreis)) if kreis and self.bundled is not None else ()
            units = Units()
            for k in home:
                for ars, geom in self.bundled.kreis(k[:5]).items():  # type: ignore[union-attr]
                    r = reg.get(ars)
                    if r is not None and r.level is Level.GEMEINDE and ars not in self.extra:
                        units.add(geom, (ars,))
            for ars, geom in sorted(self.extra.items()):
                if ars not in self._extra_kreise:
                    units.add(GERMANY.project(geom), (ars,))
            found = units.build() if units.geoms else None
            self._local[district] = found
            return found

    def shared_boundary(self, ars: str) -> tuple[str, ...]:
        """The Kreise whose boundary is one shared cell with this Kreis (empty if its boundary is its own)."""
        return self._shared.get(ars, ())

    def region_area_m2(self, ars: str) -> float:
        if ars in self.kreise.region_area:
            return self.kreise.region_area[ars]
        geom = self.geometry(ars)
        return float(geom.area) if geom is not None else 0.0

    def geometry(self, ars: str) -> BaseGeometry | None:
        """Projected boundary of a region: an extra boundary, else for a Kreis the bundled outline (the union of its
        Gemeinden, so a Kreis and its Gemeinden share one border), else its DWD Kreis cells (for Land/Bezirk: all of
        its Kreise), else for a Gemeinde or Gemeindeverband the bundled boundary; None where none is known
        (Ortsteile, the few Gemeinden the bundled data lacks)."""
        if ars in self._geom_cache:
            return self._geom_cache[ars]
        reg = self.registry
        geom: BaseGeometry | None = None
        r = reg.get(ars)
        if ars in self.extra:
            geom = GERMANY.project(self.extra[ars])
        elif r is not None and r.is_(Level.KREIS) and self.bundled is not None \
                and (outline := self.bundled.outline(ars[:5])) is not None:
            geom = outline
        elif r is not None and (r.is_(Level.KREIS) or r.level in (Level.LAND, Level.BEZIRK)):
            want = set(reg.kreise_in(ars))
            parts = [g for g, owners in zip(self.kreise.geoms, self.kreise.regions, strict=True)
                     if want.intersection(owners)]
            geom = shapely.union_all(parts) if parts else None
        elif r is not None and r.level in (Level.GEMEINDE, Level.VERBAND) and self.bundled is not None:
            geom = self.bundled.get(ars)
        self._geom_cache[ars] = geom
        return geom

    def concerns(self, ars: str, keys: Iterable[str], area: BaseGeometry | None) -> bool:
        """Does a warning concern region ``ars`` (a citizen's place, a widget's or feed's region)?

        ``keys``: the ARS of the regions the warning covers; ``area``: its projected area (None: codes only). Where
        the warning has an area and the region a boundary, a key above the region (its Kreis, covered perhaps only
        in part) is not enough: the area must touch the boundary (:func:`touches_m2`), or a key must lie in the
        region. Otherwise the keys decide: one above, equal to or below the region."""
        reg = self.registry
        keys = list(keys)
        boundary = self.geometry(ars) if area is not None else None
        if boundary is None or area is None:
            return any(reg.is_within(ars, k) or reg.is_within(k, ars) for k in keys)
        if any(reg.is_within(k, ars) for k in keys):
            return True
        if not boundary.intersects(area):
            return False
        if area.area == 0:
            return True
        return touches_m2(float(boundary.intersection(area).area), float(area.area), float(boundary.area))

    def inner(self, ars: str) -> list[str]:
        """The regions inside one that have a boundary, one level down where it helps a map: a Kreis' Samtgemeinden
        and verbandsfreie Gemeinden, a Samtgemeinde's Gemeinden; plus every extra boundary inside it."""
        reg = self.registry
        found = {r.ars for r in reg.children(ars) if r.level in (Level.VERBAND, Level.GEMEINDE)}
        found.update(a for a in self.extra if a != ars and reg.is_within(a, ars))
        return [a for a in sorted(found) if self.geometry(a) is not None]

    def cell_geometry(self, cell_id: str) -> BaseGeometry | None:
        """Projected geometry of a warncell: the extra boundary of the Kreis or Gemeinde it is, else the bundled
        Kreis-level or lake cell, else None."""
        cell = self.registry.warncell(cell_id)
        if cell is not None:
            if cell.kind == "kreis" and len(cell.kreise) == 1:
                found = self.geometry(cell.kreise[0])  # the Kreis' outline: the same border as its Gemeinden
                if found is not None:
                    return found
            if cell.kind == "gemeinde" and cell.gemeinde:
                found = self.geometry(cell.gemeinde)
                if found is not None:
                    return found
        return self.cell_geoms.get(cell_id)


@functools.cache
def geography() -> Geography:
    """The bundled geography (loaded once: about 0.05 s, plus 0.08 s for the registry; Gemeinden per Kreis later)."""
    reg = registry()
    kreis_cells = {str(f["properties"]["WARNCELLID"]): valid_polygons(geojson_shape(f["geometry"]))
                   for f in geojson_features(read_gz_json(KREISE_FILE))}
    lake_cells = {str(f["properties"]["WARNCELLID"]): valid_polygons(geojson_shape(f["geometry"]))
                  for f in geojson_features(read_gz_json(LAKES_FILE))}
    return Geography(reg, kreis_cells, lake_cells, bundled=BundledBoundaries())


def with_extra_boundaries(paths: Iterable[str | Path], *, bundled: bool = True) -> Geography:
    """The bundled geography plus the operator's boundary files (config ``[geo] boundaries``), in order (a later
    file replaces an earlier one's region). Raises :class:`ConfigError` naming file and feature. ``bundled=False``:
    without the bundled Gemeinde boundaries (``[geo] bundled_gemeinden = false``), Kreis cells and the files only."""
    paths = list(paths)
    geo = geography()
    if not bundled:
        geo = Geography(geo.registry, geo._kreis_cells, geo._lake_cells)
    if not paths:
        return geo
    extra: dict[str, BaseGeometry] = {}
    for path in paths:
        extra.update(load_extra_boundaries(path, geo.registry))
    return geo.with_boundaries(extra)

