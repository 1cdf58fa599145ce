"""Geometry on the WGS 84 ellipsoid: an equal-area Lambert azimuthal projection (authalic sphere, centre 52° N
10° E, as EPSG:3035; :data:`GERMANY`), so planar areas in metres² are true areas; geodesic areas; CAP circles as
geodesic circles (Vincenty's direct formula) and CAP polygons as valid lon/lat geometry."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from hub.cap.model import Circle, LatLon

CIRCLE_SEGMENTS = 128
"""Vertices of a CAP circle (the polygon's area is 0.04 % below the circle's)."""
GERMANY_LON = (5.0, 16.0)
GERMANY_LAT = (47.0, 56.0)
"""Germany's bounding box (degrees of longitude and latitude)."""

_A = 6378137.0
_F = 1 / 298.257223563
_B = _A * (1 - _F)
_E2 = _F * (2 - _F)
_E = math.sqrt(_E2)


def _q(sin_phi: Any) -> Any:
    return (1 - _E2) * (sin_phi / (1 - _E2 * sin_phi**2)
                        - np.log((1 - _E * sin_phi) / (1 + _E * sin_phi)) / (2 * _E))


_QP = float(_q(np.float64(1.0)))
_RQ = _A * math.sqrt(_QP / 2)
"""Radius of the authalic sphere (same surface as the WGS 84 ellipsoid)."""


class EqualArea:
    """Lambert azimuthal equal-area projection of the WGS 84 ellipsoid (via the authalic sphere), in metres."""

    def __init__(self, lat0: float = 52.0, lon0: float = 10.0) -> None:
        self.lon0 = math.radians(lon0)
        beta0 = math.asin(float(_q(np.float64(math.sin(math.radians(lat0))))) / _QP)
        self.sin_b0, self.cos_b0 = math.sin(beta0), math.cos(beta0)

    def forward(self, lonlat: np.ndarray) -> np.ndarray:
        """``(n, 2)`` lon, lat in degrees to ``(n, 2)`` x, y in metres."""
        lon = np.radians(lonlat[:, 0]) - self.lon0
        sin_b = np.clip(_q(np.sin(np.radians(lonlat[:, 1]))) / _QP, -1.0, 1.0)
        cos_b = np.sqrt(1 - sin_b**2)
        cos_l = np.cos(lon)
        k = np.sqrt(2 / np.maximum(1 + self.sin_b0 * sin_b + self.cos_b0 * cos_b * cos_l, 1e-12))
        return np.column_stack((_RQ * k * cos_b * np.sin(lon),
                                _RQ * k * (self.cos_b0 * sin_b - self.sin_b0 * cos_b * cos_l)))

    def inverse(self, xy: np.ndarray) -> np.ndarray:
        """``(n, 2)`` x, y in metres back to lon, lat in degrees (Snyder's inverse; authalic to geodetic latitude
        by series, well below a millimetre)."""
        x, y = xy[:, 0], xy[:, 1]
        rho = np.hypot(x, y)
        c = 2 * np.arcsin(np.clip(rho / (2 * _RQ), -1.0, 1.0))
        sin_c, cos_c = np.sin(c), np.cos(c)
        safe = np.where(rho == 0, 1.0, rho)
        beta = np.where(rho == 0, math.asin(self.sin_b0),
                        np.arcsin(np.clip(cos_c * self.sin_b0 + y * sin_c * self.cos_b0 / safe, -1.0, 1.0)))
        lon = self.lon0 + np.arctan2(x * sin_c, rho * self.cos_b0 * cos_c - y * self.sin_b0 * sin_c)
        e2, e4, e6 = _E2, _E2**2, _E2**3
        lat = (beta + (e2 / 3 + 31 * e4 / 180 + 517 * e6 / 5040) * np.sin(2 * beta)
               + (23 * e4 / 360 + 251 * e6 / 3780) * np.sin(4 * beta) + (761 * e6 / 45360) * np.sin(6 * beta))
        return np.column_stack((np.degrees(lon), np.degrees(lat)))

    def project(self, geom: BaseGeometry) -> BaseGeometry:
        return shapely.transform(geom, self.forward)

    def unproject(self, geom: BaseGeometry) -> BaseGeometry:
        return shapely.transform(geom, self.inverse)


GERMANY = EqualArea()


def geodesic_area_m2(geom_lonlat: BaseGeometry) -> float:
    """True area of a lon/lat geometry on the WGS 84 ellipsoid, in m²."""
    if geom_lonlat.is_empty:
        return 0.0
    c = geom_lonlat.centroid
    return float(EqualArea(c.y, c.x).project(geom_lonlat).area)


def destination(lat: float, lon: float, bearings_deg: np.ndarray, distance_m: float) -> np.ndarray:
    """Points ``distance_m`` from (lat, lon) along each bearing on the WGS 84 ellipsoid (Vincenty's direct
    formula); returns ``(n, 2)`` lon, lat in degrees."""
    alpha1 = np.radians(bearings_deg)
    sin_a1, cos_a1 = np.sin(alpha1), np.cos(alpha1)
    tan_u1 = (1 - _F) * math.tan(math.radians(lat))
    cos_u1 = 1 / math.sqrt(1 + tan_u1**2)
    sin_u1 = tan_u1 * cos_u1
    sigma1 = np.arctan2(tan_u1, cos_a1)
    sin_alpha = cos_u1 * sin_a1
    cos2_alpha = 1 - sin_alpha**2
    u2 = cos2_alpha * (_A**2 - _B**2) / _B**2
    a = 1 + u2 / 16384 * (4096 + u2 * (-768 + u2 * (320 - 175 * u2)))
    b = u2 / 1024 * (256 + u2 * (-128 + u2 * (74 - 47 * u2)))
    sigma = distance_m / (_B * a)
    for _ in range(100):
        cos_2sm = np.cos(2 * sigma1 + sigma)
        sin_s, cos_s = np.sin(sigma), np.cos(sigma)
        delta = b * sin_s * (cos_2sm + b / 4 * (cos_s * (-1 + 2 * cos_2sm**2)
                                                - b / 6 * cos_2sm * (-3 + 4 * sin_s**2) * (-3 + 4 * cos_2sm**2)))
        new = distance_m / (_B * a) + delta
        done = np.max(np.abs(new - sigma)) < 1e-12
        sigma = new
        if done:
            break
    cos_2sm = np.cos(2 * sigma1 + sigma)
    sin_s, cos_s = np.sin(sigma), np.cos(sigma)
    tmp = sin_u1 * sin_s - cos_u1 * cos_s * cos_a1
    lat2 = np.arctan2(sin_u1 * cos_s + cos_u1 * sin_s * cos_a1, (1 - _F) * np.sqrt(sin_alpha**2 + tmp**2))
    lam = np.arctan2(sin_s * sin_a1, cos_u1 * cos_s - sin_u1 * sin_s * cos_a1)
    c = _F / 16 * cos2_alpha * (4 + _F * (4 - 3 * cos2_alpha))
    big_l = lam - (1 - c) * _F * sin_alpha * (sigma + c * sin_s * (cos_2sm + c * cos_s * (-1 + 2 * cos_2sm**2)))
    lon2 = (math.radians(lon) + big_l + math.pi) % (2 * math.pi) - math.pi
    return np.column_stack((np.degrees(lon2), np.degrees(lat2)))


def circle_lonlat(circle: Circle, segments: int = CIRCLE_SEGMENTS) -> BaseGeometry:
    """A CAP circle as a lon/lat polygon of points at ``radius_km`` along evenly spaced bearings (a point for 0)."""
    lat, lon = circle.center
    if circle.radius_km <= 0:
        return shapely.Point(lon, lat)
    ring = destination(lat, lon, np.linspace(0.0, 360.0, segments, endpoint=False), circle.radius_km * 1000.0)
    return shapely.Polygon(ring)


def polygon_lonlat(ring: Iterable[LatLon]) -> BaseGeometry:
    """A CAP ring of (lat, lon) as a valid lon/lat geometry (empty if it has fewer than 3 distinct points).

    BBK's bogus ``-1.0,-1.0`` pairs are dropped (no warning area lies there)."""
    pts = [(lon, lat) for lat, lon in ring if (lat, lon) != (-1.0, -1.0)]
    if len(set(pts)) < 3:
        return shapely.Polygon()
    return valid_polygons(shapely.Polygon(pts))


def valid_polygons(geom: BaseGeometry) -> BaseGeometry:
    """The geometry if valid, else the polygonal parts of it made valid (empty if none)."""
    if geom.is_valid:
        return geom
    fixed = shapely.makevalid_polygons(geom)
    polys = [g for g in getattr(fixed, "geoms", [fixed]) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(polys) if polys else shapely.Polygon()


def within_box(bounds: tuple[float, float, float, float], lon: tuple[float, float], lat: tuple[float, float]) -> bool:
    minx, miny, maxx, maxy = bounds
    return lon[0] <= minx and maxx <= lon[1] and lat[0] <= miny and maxy <= lat[1]


def in_box(bounds: tuple[float, float, float, float], lon: tuple[float, float], lat: tuple[float, float]) -> bool:
    minx, miny, maxx, maxy = bounds
    return minx <= lon[1] and maxx >= lon[0] and miny <= lat[1] and maxy >= lat[0]

