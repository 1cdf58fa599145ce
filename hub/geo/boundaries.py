"""Boundaries: the bundled Gemeinde and Gemeindeverband outlines (BKG, read per Kreis when needed), the bundled DWD
Kreis and lake warncells, and operators' GeoJSON boundaries per ARS (:func:`load_extra_boundaries`)."""

from __future__ import annotations

import json
import threading
import zipfile
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape as geojson_shape
from shapely.geometry.base import BaseGeometry

from hub.errors import ConfigError
from hub.geo.projection import GERMANY, GERMANY_LAT, GERMANY_LON, valid_polygons, within_box
from hub.geo.registry import GEMEINDEN_FILE, GEODATA, Registry, registry

KREISE_FILE = GEODATA / "dwd_warngebiete_kreise.geojson.gz"
LAKES_FILE = GEODATA / "dwd_warngebiete_seen.geojson.gz"

BOUNDARY_ATTRIBUTION = ("Verwaltungsgrenzen: © GeoBasis-DE / BKG (2025) (VG250-EW Stand 31.12.2023; Bayern: "
                        "© GeoBasis-DE / BKG (2017), VG250 Stand 2016), dl-de/by-2-0 "
                        "(https://www.govdata.de/dl-de/by-2-0), Daten verändert")
"""Shown wherever the bundled Gemeinde/Samtgemeinde boundaries are drawn (dl-de/by-2.0 requires it)."""


@dataclass(slots=True)
class Units:
    """Boundary pieces (projected) with the regions each one belongs to, indexed for queries."""

    geoms: list[BaseGeometry] = field(default_factory=list)
    regions: list[tuple[str, ...]] = field(default_factory=list)
    tree: shapely.STRtree | None = None
    areas: np.ndarray = field(default_factory=lambda: np.zeros(0))
    region_area: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Area per region (m²): the sum of its pieces."""

    def add(self, geom: BaseGeometry, regions: tuple[str, ...]) -> None:
        self.geoms.append(geom)
        self.regions.append(regions)

    def build(self) -> Units:
        self.tree = shapely.STRtree(self.geoms)
        self.areas = shapely.area(np.array(self.geoms, dtype=object))
        for owners, area in zip(self.regions, self.areas, strict=True):
            for ars in owners:
                self.region_area[ars] += float(area)
        return self


class BundledBoundaries:
    """The bundled Gemeinde and Gemeindeverband boundaries (``gemeinden.zip``: one member per Kreis), each Kreis read
    and projected on first use, then kept (thread-safe). Reading all of Germany would cost seconds and hundreds of
    MB; a district needs its own Kreis and its neighbours (:meth:`Geography.local_units`)."""

    def __init__(self, path: Path = GEMEINDEN_FILE) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._kreise: dict[str, dict[str, BaseGeometry]] = {}
        self._outlines: dict[str, BaseGeometry | None] = {}
        with zipfile.ZipFile(path) as zf:
            self._members = frozenset(n.removesuffix(".json") for n in zf.namelist() if n[:1].isdigit())

    def kreis(self, key: str) -> dict[str, BaseGeometry]:
        """Projected boundaries by ARS of the Gemeinden and Gemeindeverbände of a Kreis (its 5-digit key)."""
        found = self._kreise.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._kreise.get(key)
            if found is None:
                found = {}
                if key in self._members:
                    with zipfile.ZipFile(self.path) as zf:
                        doc = json.loads(zf.read(f"{key}.json"))
                    for f in doc["features"]:
                        found[f["properties"]["ars"]] = GERMANY.project(valid_polygons(geojson_shape(f["geometry"])))
                self._kreise[key] = found
        return found

    def get(self, ars: str) -> BaseGeometry | None:
        return self.kreis(ars[:5]).get(ars)

    def outline(self, key: str) -> BaseGeometry | None:
        """Projected outline of a Kreis (its 5-digit key): the union of its Gemeinden, made when the data was built;
        None for a Kreis the data lacks."""
        if key in self._outlines:
            return self._outlines[key]
        with self._lock:
            if key not in self._outlines:
                found = None
                if key in self._members:
                    with zipfile.ZipFile(self.path) as zf:
                        found = GERMANY.project(valid_polygons(geojson_shape(json.loads(zf.read(f"kreis/{key}.json")))))
                self._outlines[key] = found
        return self._outlines[key]

    def loaded(self) -> tuple[str, ...]:
        """The Kreise read so far."""
        return tuple(sorted(self._kreise))


def geojson_features(doc: Any) -> list[dict[str, Any]]:
    if doc.get("type") == "FeatureCollection":
        return list(doc.get("features") or [])
    if doc.get("type") == "Feature":
        return [doc]
    raise ValueError("not a GeoJSON Feature or FeatureCollection")


def load_extra_boundaries(path: str | Path, reg: Registry | None = None) -> dict[str, BaseGeometry]:
    """Read operator boundaries from an RFC 7946 GeoJSON file ([lon, lat] order) into lon/lat geometries per ARS.

    Each feature is a Polygon or MultiPolygon naming its region in ``properties``: ``ars``/``ARS`` (12 digits or a
    2/3/5/9-digit prefix), else a DWD ``WARNCELLID``, else ``ags``/``AGS``. Features of one ARS are joined; DWD part
    cells (``7``/``9``) count only when every part of their region is in the file. Raises :class:`ConfigError`
    naming the file and feature for anything unusable: unknown keys, incomplete parts, coordinates in [lat, lon]
    order or outside Germany. Config ``[geo] boundaries`` goes through :func:`with_extra_boundaries`.
    """
    reg = reg or registry()
    path = Path(path)
    try:
        features = geojson_features(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, AttributeError) as err:
        raise ConfigError(f"{path}: not readable as GeoJSON: {err}") from err
    found: dict[str, list[BaseGeometry]] = defaultdict(list)
    parts: dict[str, set[str]] = defaultdict(set)
    for n, feature in enumerate(features):
        where = f"{path}: $.features[{n}]"
        ars, part = _feature_region(feature.get("properties") or {}, reg, where)
        try:
            geom = geojson_shape(feature.get("geometry"))
        except (AttributeError, TypeError, ValueError, shapely.errors.GEOSException) as err:
            raise ConfigError(f"{where}.geometry: {err}") from err
        if geom.geom_type not in ("Polygon", "MultiPolygon") or geom.is_empty:
            raise ConfigError(f"{where}.geometry: {geom.geom_type} is not a Polygon or MultiPolygon")
        minx, miny, maxx, maxy = geom.bounds
        if not within_box((minx, miny, maxx, maxy), GERMANY_LON, GERMANY_LAT):
            if within_box((miny, minx, maxy, maxx), GERMANY_LON, GERMANY_LAT):
                raise ConfigError(f"{where}.geometry: coordinates are [lat, lon]; GeoJSON (RFC 7946) is [lon, lat]")
            raise ConfigError(f"{where}.geometry: lies outside Germany (bounds {geom.bounds})")
        found[ars].append(valid_polygons(geom))
        if part:
            parts[ars].add(part)
    for ars, given in parts.items():
        missing = sorted(_part_cells(reg, ars, next(iter(given))) - given)
        if missing:
            raise ConfigError(f"{path}: warncells {', '.join(sorted(given))} are parts of {ars} "
                              f"({reg.name(ars)}); the parts {', '.join(missing)} are missing")
    return {ars: shapely.union_all(geoms) for ars, geoms in found.items()}


def _part_cells(reg: Registry, ars: str, sample: str) -> set[str]:
    """All DWD cells of the same kind as ``sample`` that are parts of region ``ars``."""
    kreis = reg.kreis_of(ars) or ars
    if sample.startswith("9"):
        return {c for c in reg.kreis_cells(kreis) if reg.warncell(c).kind == "kreis-part"}  # type: ignore[union-attr]
    return {c for c in reg.gemeinde_cells(kreis)
            if (cell := reg.warncell(c)) is not None and cell.kind == "gemeinde-part" and cell.gemeinde == ars}


def _feature_region(props: Mapping[str, Any], reg: Registry, where: str) -> tuple[str, str | None]:
    """The ARS a feature stands for, and its warncell ID if it is only a part of that region."""
    for key in ("ars", "ARS"):
        if key in props:
            ars = reg.from_ars(str(props[key]))
            if ars is None:
                raise ConfigError(f"{where}.properties.{key}: {props[key]!r} is not a known ARS")
            return ars, None
    if "WARNCELLID" in props:
        cell = reg.warncell(str(props["WARNCELLID"]))
        if cell is not None and cell.kind == "kreis" and len(cell.kreise) == 1:
            return cell.kreise[0], None
        if cell is not None and cell.kind == "gemeinde" and cell.gemeinde:
            return cell.gemeinde, None
        if cell is not None and cell.kind == "gemeinde-part" and cell.gemeinde:
            return cell.gemeinde, cell.id
        if cell is not None and cell.kind == "kreis-part" and not cell.gemeinde:
            return cell.kreise[0], cell.id
        raise ConfigError(f"{where}.properties.WARNCELLID: {props['WARNCELLID']} names no region of the ARS list "
                          f"({cell.kind if cell else 'unknown cell'})")
    for key in ("ags", "AGS"):
        if key in props:
            ars = reg.from_ags(str(props[key]))
            if ars is None:
                raise ConfigError(f"{where}.properties.{key}: {props[key]!r} is not a known AGS")
            return ars, None
    raise ConfigError(f"{where}.properties: names no region (ars, WARNCELLID or ags)")

