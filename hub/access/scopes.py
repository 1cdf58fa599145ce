"""The scope checks an author's warning must pass on the server: by region key (:func:`check_regions`) and by
geometry (:func:`check_area`), against the regions a console user may warn (``User.scopes``)."""

from __future__ import annotations

import functools
from collections.abc import Iterable

import shapely
from shapely.geometry.base import BaseGeometry

from hub.access.auth import User
from hub.geo.geography import Geography
from hub.geo.registry import Level, Registry


def region_geometry(geo: Geography, ars: str) -> BaseGeometry | None:
    """Projected boundary of a region; for a Gemeindeverband without its own, the union of its Gemeinden when every
    one of them has a boundary. None where none is known (Gemeinden need ``[geo] boundaries``)."""
    geom = geo.geometry(ars)
    region = geo.registry.get(ars)
    if geom is None and region is not None and region.level is Level.VERBAND:
        parts = [geo.geometry(g) for g in geo.registry.gemeinden(ars)]
        if parts and all(p is not None for p in parts):
            geom = shapely.union_all(parts)
    return geom


@functools.lru_cache(maxsize=256)
def _scope_union(geo: Geography, scopes: tuple[str, ...], tolerance_m: float) -> tuple[BaseGeometry, tuple[str, ...]]:
    parts, missing = [], []
    for ars in scopes:
        geom = region_geometry(geo, ars)
        if geom is None:
            missing.append(ars)
        else:
            parts.append(geom)
    union = shapely.union_all(parts) if parts else shapely.GeometryCollection()
    if tolerance_m > 0 and not union.is_empty:
        union = union.buffer(tolerance_m)
    shapely.prepare(union)
    return union, tuple(missing)


def scope_geometry(user: User, geo: Geography) -> BaseGeometry:
    """Union of the user's scope regions, projected like ``geo.geometry`` (empty if no boundary is known)."""
    return _scope_union(geo, user.scopes, 0.0)[0]


def _names(reg: Registry, keys: Iterable[str]) -> str:
    return ", ".join(f"{reg.name(a) or a} ({a})" for a in keys)


def check_area(user: User, geo: Geography, area_projected: BaseGeometry, *, tolerance_m: float = 50.0,
               tolerance_share: float = 0.005) -> str | None:
    """None if the area (projected, as ``geo.geometry``) lies inside the user's scope, else why not (German,
    English).

    Boundary noise is tolerated: the scope is widened by ``tolerance_m``, and what still lies outside may be up to
    ``tolerance_share`` of the area (boundaries from different sources differ along their whole length). A scope
    region without a known boundary contributes nothing: the check fails closed, and says so.
    """
    if not user.scopes:
        return "Kein Zuständigkeitsbereich zugewiesen / no scope assigned"
    if area_projected.is_empty:
        return "Leeres Gebiet / empty area"
    allowed, missing = _scope_union(geo, user.scopes, tolerance_m)
    outside = area_projected.difference(allowed) if not allowed.is_empty else area_projected
    total = area_projected.area
    if outside.is_empty or (total > 0 and outside.area <= tolerance_share * total):
        return None
    reg = geo.registry
    if total > 0:
        share = outside.area / total
        de = f"Das Gebiet liegt zu {share:.1%} ({outside.area / 1e6:.2f} km²) außerhalb Ihres Zuständigkeitsbereichs"
        en = f"the area lies {share:.1%} ({outside.area / 1e6:.2f} km²) outside your scope"
    else:
        de, en = "Das Gebiet liegt außerhalb Ihres Zuständigkeitsbereichs", "the area lies outside your scope"
    reason = f"{de} ({_names(reg, user.scopes)}) / {en}"
    if missing:
        reason += (f"; keine Grenze bekannt für {_names(reg, missing)} ([geo] boundaries) / "
                   "no boundary known for these")
    return reason


def check_regions(user: User, registry: Registry, ars_list: Iterable[str]) -> str | None:
    """None if every region key lies in (or is) one of the user's scope regions, else why not. Unknown keys are
    refused."""
    unknown, outside = [], []
    for ars in ars_list:
        if ars not in registry:
            unknown.append(ars)
        elif not any(registry.is_within(ars, scope) for scope in user.scopes):
            outside.append(ars)
    if not unknown and not outside:
        return None
    parts = []
    if outside:
        parts.append(f"außerhalb Ihres Zuständigkeitsbereichs / outside your scope: {_names(registry, outside)}")
    if unknown:
        parts.append(f"unbekannter Regionalschlüssel / unknown region key: {', '.join(unknown)}")
    return "; ".join(parts)
