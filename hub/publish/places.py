"""Which publications concern a place: a region (ARS) or a point. One filter for the kiosk boards (the audience
a preview counts), the citizen pages, the widget and the JSON API. A Gemeinde's page does not show a warning for
another Gemeinde of its Kreis because the Kreis is among the warning's regions (:meth:`Geography.concerns`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from hub.geo.geography import Geography
from hub.geo.projection import GERMANY
from hub.publish.publications import Publication


@dataclass(frozen=True, slots=True)
class Place:
    ars: str | None = None
    lon: float | None = None
    lat: float | None = None



def select(pubs: Sequence[Publication], place: Place, geo: Geography,
           areas: dict[tuple[int, str], BaseGeometry] | None = None) -> list[Publication]:
    """The publications concerning a place (see the module docstring); order kept."""
    out = list(pubs)
    if place.ars is not None:
        out = [p for p in out if concerns_region(p, place.ars, geo, areas)]
    if place.lon is not None and place.lat is not None:
        out = [p for p in out if covers_point(p, place.lon, place.lat, geo)]
    return out


def region_concerned(geo: Geography, ars: str, regions: Sequence[str], area_lonlat: BaseGeometry | None) -> bool:
    """Does a warning with these regions and this area (lon/lat, or None) concern region ``ars``."""
    return geo.concerns(ars, tuple(regions), GERMANY.project(area_lonlat) if area_lonlat is not None else None)


def concerns_region(pub: Publication, ars: str, geo: Geography,
                    areas: dict[tuple[int, str], BaseGeometry] | None = None) -> bool:
    """By :meth:`hub.geo.geography.Geography.concerns`: a Gemeinde's widget does not show a warning for another
    Gemeinde of its Kreis because the Kreis is among the warning's regions."""
    if pub.area is None:
        return geo.concerns(ars, pub.regions, None)
    key = (pub.id, pub.identifier)
    area = areas.get(key) if areas is not None else None
    if area is None:
        area = GERMANY.project(pub.area)
        if areas is not None:
            if len(areas) > 1000:
                areas.clear()
            areas[key] = area
    return geo.concerns(ars, pub.regions, area)


def covers_point(pub: Publication, lon: float, lat: float, geo: Geography) -> bool:
    if pub.area is not None:
        return bool(pub.area.intersects(Point(lon, lat)))
    point = GERMANY.project(Point(lon, lat))
    return any((g := geo.geometry(r)) is not None and g.intersects(point) for r in pub.regions)
