"""Regions and areas: Germany's ARS hierarchy, DWD warncells, Kreis boundaries, and resolving CAP areas against them.

* :class:`Registry`: every Land, Regierungsbezirk, Kreis, Gemeindeverband and Gemeinde by its 12-digit Amtlicher
  Regionalschlüssel (ARS = Land 2 + Bezirk 1 + Kreis 2 + Verband 4 + Gemeinde 3 digits), from the Destatis list
  (2025-07-31), with parent and child lookups, and the DWD warncell scheme mapped onto it (:meth:`Registry.warncell`).
* :class:`Geography`: the registry plus boundaries. Bundled are the 402 DWD Kreis warncells (all Kreise; 32 kreisfreie
  Städte share one cell with the Landkreis around them, see :meth:`Geography.shared_boundary`), 23 lake cells, and
  BKG's Gemeinden, Gemeindeverbände and Kreis outlines (:class:`BundledBoundaries`, read per Kreis when needed;
  attribution :data:`BOUNDARY_ATTRIBUTION`). Operators add finer GeoJSON per ARS with :func:`load_extra_boundaries`
  and :meth:`Geography.with_boundaries`; theirs replace the bundled boundary of the same region.
* :func:`resolve`: what a CAP alert's areas cover (Kreise, and the Gemeinden codes name or the areas touch near the
  district), whether they touch the district, and which share of the alert's area lies outside it;
  :meth:`Geography.concerns`: whether a warning concerns a region (a place, a widget, a feed).

Geometry is measured on the WGS 84 ellipsoid: shapes are projected with an equal-area Lambert azimuthal projection
(authalic sphere, centre 52° N 10° E, as EPSG:3035), so planar areas in metres² are true areas. CAP circles are
geodesic circles (Vincenty's direct formula), not circles in degrees. Data files live in ``hub/geo/data/`` (see its
README for provenance and attribution).
"""

from __future__ import annotations

import enum
import functools
import gzip
import json
import math
import re
import threading
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
import shapely
from shapely.geometry import shape as geojson_shape
from shapely.geometry.base import BaseGeometry

from hub.cap.model import Alert, Area, Circle, Info, LatLon, Value
from hub.errors import ConfigError

GEODATA = Path(__file__).resolve().parent / "data"
ARS_FILE = GEODATA / "destatis_ars_2025-07-31.json.gz"
WARNCELLS_FILE = GEODATA / "dwd_warncells.json.gz"
KREISE_FILE = GEODATA / "dwd_warngebiete_kreise.geojson.gz"
LAKES_FILE = GEODATA / "dwd_warngebiete_seen.geojson.gz"
GEMEINDEN_FILE = GEODATA / "gemeinden.zip"
"""Gemeinde and Gemeindeverband boundaries (BKG VG250), one member per Kreis, read when a Kreis is first needed."""
BOUNDARY_ATTRIBUTION = ("Verwaltungsgrenzen: © GeoBasis-DE / BKG (2025) (VG250-EW Stand 31.12.2023; Bayern: "
                        "© GeoBasis-DE / BKG (2017), VG250 Stand 2016), dl-de/by-2-0 "
                        "(https://www.govdata.de/dl-de/by-2-0), Daten verändert")
"""Shown wherever the bundled Gemeinde/Samtgemeinde boundaries are drawn (dl-de/by-2.0 requires it)."""
NEIGHBOUR_M = 2_000.0
"""Kreise whose boundary comes this close to the district's Kreis are its neighbours: their Gemeinden are measured
too (a warning across the district's border names the Gemeinden it reaches on both sides)."""

DEFAULT_DISTRICT = "033540000000"
"""Landkreis Lüchow-Dannenberg: the district when no config names one."""

FULL_SHARE = 0.97
"""A region covered to at least this share of its area counts as fully covered: boundaries from different sources
(NINA's Kreis polygons against DWD's) differ by 1-2 % of a Kreis' area."""
TOUCH_SHARE = 0.02
"""Geometry touches a region only where the overlap is at least this share of the smaller of the two areas (below
it, overlaps are what generalised borders of different sources produce) ..."""
TOUCH_M2 = 10_000.0
"""... and at least this many m² (1 ha): slivers along generalised borders do not count."""
CIRCLE_SEGMENTS = 128
"""Vertices of a CAP circle (the polygon's area is 0.04 % below the circle's)."""

LAND_NAMES: dict[str, str] = {
    "01": "Schleswig-Holstein", "02": "Hamburg", "03": "Niedersachsen", "04": "Bremen",
    "05": "Nordrhein-Westfalen", "06": "Hessen", "07": "Rheinland-Pfalz", "08": "Baden-Württemberg",
    "09": "Bayern", "10": "Saarland", "11": "Berlin", "12": "Brandenburg", "13": "Mecklenburg-Vorpommern",
    "14": "Sachsen", "15": "Sachsen-Anhalt", "16": "Thüringen",
}
BEZIRK_NAMES: dict[str, str] = {
    # Niedersachsen, Rheinland-Pfalz and Sachsen dissolved these; the digit still names the former region.
    "031": "Braunschweig", "032": "Hannover", "033": "Lüneburg", "034": "Weser-Ems",
    "051": "Düsseldorf", "053": "Köln", "055": "Münster", "057": "Detmold", "059": "Arnsberg",
    "064": "Darmstadt", "065": "Gießen", "066": "Kassel",
    "071": "Koblenz", "072": "Trier", "073": "Rheinhessen-Pfalz",
    "081": "Stuttgart", "082": "Karlsruhe", "083": "Freiburg", "084": "Tübingen",
    "091": "Oberbayern", "092": "Niederbayern", "093": "Oberpfalz", "094": "Oberfranken", "095": "Mittelfranken",
    "096": "Unterfranken", "097": "Schwaben",
    "145": "Chemnitz", "146": "Dresden", "147": "Leipzig",
}
KREIS_ALIASES: dict[str, str] = {"16056": "16063"}
"""Kreis keys in DWD's cells that no longer exist: Eisenach joined the Wartburgkreis on 2021-07-01."""
GEMEINDE_ALIASES: dict[str, str] = {"16056000": "160630105105"}
"""Gemeinde AGS in DWD's cells that moved: Stadt Eisenach is now 16063105."""

_GERMANY_LON = (5.0, 16.0)
_GERMANY_LAT = (47.0, 56.0)
_NEAR_LON = (-15.0, 35.0)
_NEAR_LAT = (35.0, 65.0)


class Level(enum.Enum):
    LAND = "land"
    BEZIRK = "bezirk"
    KREIS = "kreis"
    VERBAND = "verband"
    GEMEINDE = "gemeinde"
    ORTSTEIL = "ortsteil"


@dataclass(frozen=True, slots=True)
class Region:
    """One unit of the ARS hierarchy."""

    ars: str
    name: str | None
    """Destatis' name for Gemeinden and Ortsteile; DWD's warncell name for Kreise (Destatis' for kreisfreie Städte
    without a cell of their own); for Gemeindeverbände VG250's kind and name ("Samtgemeinde Elbtalaue"), None for
    the few formed since 2016."""
    level: Level
    """The highest level the key stands for (Hamburg's 020000000000 is a Land, also a Kreis and a Gemeinde)."""
    parent: str | None
    also: frozenset[Level] = frozenset()
    """Further levels of the same key: KREIS for Hamburg and Berlin, GEMEINDE for kreisfreie Städte."""

    def is_(self, level: Level) -> bool:
        """True if the key stands for a region of this level (as its own or as a further level)."""
        return self.level is level or level in self.also


@dataclass(frozen=True, slots=True)
class Warncell:
    """A DWD warncell and where it lies in the ARS hierarchy."""

    id: str
    name: str | None
    kind: Literal["kreis", "kreis-part", "gemeinde", "gemeinde-part", "lake", "coast", "sea", "other"]
    kreise: tuple[str, ...]
    """Kreis ARS the cell lies in; a ``kreis`` cell covers them whole (two for "Kreis und Stadt" cells)."""
    gemeinde: str | None = None
    """Gemeinde ARS: the cell itself (``gemeinde``) or the Gemeinde it is part of (``gemeinde-part``)."""


ARS_LEVELS = (2, 3, 5, 9, 12)
"""ARS digits per level: Land, Regierungsbezirk, Kreis, Gemeindeverband, Gemeinde."""


def _pad(prefix: str) -> str:
    return prefix + "0" * (12 - len(prefix))


def ars_prefix(ars: str) -> str:
    """The significant digits of an ARS (the inverse of padding): trailing zero groups mean the higher level
    (``033540000000`` -> ``03354``). Empty for ``000000000000`` (all of Germany). Needs no registry, so it also
    reads keys the registry does not know (NINA's dashboard keys)."""
    for length in ARS_LEVELS:
        if set(ars[length:]) <= {"0"}:
            return "" if set(ars[:length]) <= {"0"} else ars[:length]
    return ars


def ars_related(a: str, b: str) -> bool:
    """Does one of two ARS areas contain the other (by key alone)?"""
    pa, pb = ars_prefix(a), ars_prefix(b)
    return pa.startswith(pb) or pb.startswith(pa)


def _read_gz_json(path: Path) -> Any:
    return json.loads(gzip.decompress(path.read_bytes()))


class Registry:
    """The ARS hierarchy with names, and the DWD warncells mapped onto it."""

    def __init__(self, ars_rows: Iterable[list[Any]], cells: Mapping[str, str], version: str = "",
                 verband_names: Mapping[str, str] | None = None) -> None:
        self.version = version
        verband_names = verband_names or {}
        self.cells: dict[str, str] = dict(cells)
        regions: dict[str, Region] = {}
        rows = [(r[0], r[1], bool(r[2])) for r in ars_rows]
        gemeinde_rows = [(ars, name) for ars, name, ortsteil in rows if not ortsteil]
        kreisfrei = {ars[:5]: name for ars, name in gemeinde_rows if ars[5:] == "0000000"}

        kreis_names, self._combined = self._kreis_names(cells, kreisfrei)
        self._verbandsfrei: dict[str, str] = {}
        """9-digit keys of verbandsfreie Gemeinden and gemeindefreie Gebiete (0xxx, 9xxx) to the Gemeinde ARS."""
        kreise = {ars[:5] for ars, _ in gemeinde_rows if ars[:5] in kreis_names or ars[:5] in kreisfrei}
        for land, name in LAND_NAMES.items():
            also = frozenset({Level.KREIS, Level.GEMEINDE}) if land + "000" in kreise else frozenset()
            regions[_pad(land)] = Region(_pad(land), name, Level.LAND, None, also)
        for bezirk in sorted({k[:3] for k in kreise if k[2] != "0"}):
            regions[_pad(bezirk)] = Region(_pad(bezirk), BEZIRK_NAMES.get(bezirk), Level.BEZIRK, _pad(bezirk[:2]))
        for k in sorted(kreise):
            if k[2:] == "000":
                continue  # Hamburg, Berlin: the Land key stands for the Kreis
            parent = _pad(k[:3]) if k[2] != "0" else _pad(k[:2])
            also = frozenset({Level.GEMEINDE}) if k in kreisfrei else frozenset()
            regions[_pad(k)] = Region(_pad(k), kreis_names.get(k) or kreisfrei.get(k), Level.KREIS, parent, also)
        for ars, name in gemeinde_rows:
            if ars in regions:
                continue  # kreisfreie Stadt, Hamburg, Berlin: already there as Kreis or Land
            kreis = _pad(ars[:5]) if ars[:5] in kreise else _pad(ars[:2])
            verband = ars[:9] + "000"
            if ars[5] == "5":  # 5xxx: a Gemeindeverband (Amt, Samtgemeinde, Verbandsgemeinde ...)
                if verband not in regions:
                    regions[verband] = Region(verband, verband_names.get(verband), Level.VERBAND, kreis)
                regions[ars] = Region(ars, name, Level.GEMEINDE, verband)
            else:  # 0xxx verbandsfreie Gemeinde, 9xxx gemeindefreies Gebiet: directly below the Kreis
                regions[ars] = Region(ars, name, Level.GEMEINDE, kreis)
                self._verbandsfrei[ars[:9]] = ars
        for ars, name, ortsteil in rows:
            if ortsteil:
                city = _pad(ars[:2]) if ars[:2] + "000" in kreise else _pad(ars[:5])
                regions[ars] = Region(ars, name, Level.ORTSTEIL, city)
        self.regions = regions

        self._children: dict[str, list[str]] = defaultdict(list)
        for r in regions.values():
            if r.parent is not None:
                self._children[r.parent].append(r.ars)
        self._gemeinde_by_ags: dict[str, str] = {}
        for r in regions.values():
            if r.is_(Level.GEMEINDE):
                self._gemeinde_by_ags[r.ars[:5] + r.ars[9:]] = r.ars
        self._gemeinden: dict[str, tuple[str, ...]] = {}
        self._ancestors: dict[str, tuple[str, ...]] = {}
        self._kreis_units: dict[str, set[str]] = defaultdict(set)
        self._leaf_units: dict[str, set[str]] = defaultdict(set)
        self._cell_cache: dict[str, Warncell | None] = {}
        for cid in self.cells:
            cell = self.warncell(cid)
            if cell is None:
                continue
            for k in cell.kreise:
                if cell.kind in ("kreis", "kreis-part"):
                    self._kreis_units[k].add(cid)
                elif cell.kind in ("gemeinde", "gemeinde-part"):
                    self._leaf_units[k].add(cid)

    @staticmethod
    def _kreis_names(cells: Mapping[str, str], kreisfrei: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        """Kreis names from DWD's Kreis cells, and the kreisfreie Stadt of each "Kreis und Stadt X" cell."""
        names: dict[str, str] = {}
        combined: dict[str, str] = {}
        own_cell = {cid[1:6] for cid in cells if cid[0] == "1"}
        for cid, name in sorted(cells.items()):
            k = cid[1:6]
            if cid[0] == "1" and cid[6:] == "000" and k not in KREIS_ALIASES:
                names[k] = name
            elif cid[0] == "9" and k not in names:
                if " und Stadt " in name:
                    head, city = name.split(" und Stadt ", 1)
                    names[k] = f"Kreis {city}" if head == "Kreis" else head
                    matches = [c for c, n in kreisfrei.items()
                               if c[:2] == k[:2] and n.startswith(city) and c not in own_cell]
                    if len(matches) == 1:
                        combined[cid] = matches[0]
                else:
                    names[k] = re.split(r" - | \(ohne ", name)[0]
        return names, combined

    # -- lookups ----------------------------------------------------------------------------------------------------

    def __contains__(self, ars: object) -> bool:
        return ars in self.regions

    def __getitem__(self, ars: str) -> Region:
        return self.regions[ars]

    def __len__(self) -> int:
        return len(self.regions)

    def get(self, ars: str) -> Region | None:
        return self.regions.get(ars)

    def name(self, ars: str) -> str | None:
        r = self.regions.get(ars)
        return r.name if r else None

    def parent(self, ars: str) -> Region | None:
        r = self.regions.get(ars)
        return self.regions[r.parent] if r and r.parent else None

    def ancestors(self, ars: str) -> list[Region]:
        """Parent, grandparent ... up to the Land."""
        return [self.regions[a] for a in self._ancestor_keys(ars)]

    def _ancestor_keys(self, ars: str) -> tuple[str, ...]:
        found = self._ancestors.get(ars)
        if found is None:
            r = self.regions.get(ars)
            found = (r.parent, *self._ancestor_keys(r.parent)) if r is not None and r.parent else ()
            self._ancestors[ars] = found
        return found

    def children(self, ars: str) -> list[Region]:
        """The regions one step below (Bezirke or Kreise of a Land, Verbände and Gemeinden of a Kreis ...)."""
        return [self.regions[c] for c in sorted(self._children.get(ars, ()))]

    def descendants(self, ars: str) -> Iterator[Region]:
        for child in self.children(ars):
            yield child
            yield from self.descendants(child.ars)

    def is_within(self, ars: str, container: str) -> bool:
        """True if ``ars`` is ``container`` or lies below it."""
        return ars == container or container in self._ancestor_keys(ars)

    def gemeinden(self, ars: str) -> tuple[str, ...]:
        """ARS of every Gemeinde in the region (the region itself if it is one)."""
        found = self._gemeinden.get(ars)
        if found is None:
            r = self.regions.get(ars)
            own = (ars,) if r is not None and r.is_(Level.GEMEINDE) else ()
            found = own + tuple(d.ars for d in self.descendants(ars) if d.level is Level.GEMEINDE)
            self._gemeinden[ars] = found
        return found

    def kreise_in(self, ars: str) -> tuple[str, ...]:
        """ARS of the Kreise in a Land or Bezirk; for a Kreis or anything below, the Kreis it lies in."""
        r = self.regions.get(ars)
        if r is None:
            return ()
        if r.is_(Level.KREIS):
            return (ars,)
        if r.level in (Level.LAND, Level.BEZIRK):
            return tuple(d.ars for d in self.descendants(ars) if d.level is Level.KREIS)
        k = self.kreis_of(ars)
        return (k,) if k else ()

    def kreis_of(self, ars: str) -> str | None:
        """The Kreis a region lies in (itself for a Kreis); None for Länder, Bezirke and unknown keys."""
        r = self.regions.get(ars)
        if r is None:
            return None
        if r.is_(Level.KREIS):
            return ars
        return next((a for a in self._ancestor_keys(ars) if self.regions[a].is_(Level.KREIS)), None)

    def from_ags(self, ags: str) -> str | None:
        """The ARS for an AGS (8 digits: Gemeinde, or a Kreis written as ``KKKKK000``; 2, 3 or 5 digits)."""
        ags = ags.strip()
        if not ags.isdigit():
            return None
        if len(ags) == 8:
            ags = GEMEINDE_ALIASES.get(ags, ags)
            if len(ags) == 12:
                return ags
            found = self._gemeinde_by_ags.get(ags)
            if found is None and ags.endswith("000"):
                return self.from_ars(ags[:5])
            return found
        return self.from_ars(ags) if len(ags) in (2, 3, 5) else None

    def from_ars(self, code: str) -> str | None:
        """A known ARS for a code: 12 digits, or a 2-, 3-, 5- or 9-digit prefix (padded with zeros)."""
        code = code.strip()
        if not code.isdigit() or len(code) not in (2, 3, 5, 9, 12):
            return None
        ars = _pad(code)
        if ars in self.regions:
            return ars
        if len(code) == 9 and code in self._verbandsfrei:
            return self._verbandsfrei[code]
        alias = KREIS_ALIASES.get(ars[:5])
        if alias and ars[5:] == "0000000":
            return _pad(alias)
        return None

    # -- DWD warncells ----------------------------------------------------------------------------------------------

    def warncell(self, cell_id: str | int) -> Warncell | None:
        """Where a DWD warncell ID lies; None for an ID that is not 9 digits or not derivable.

        ``1``+AGS(5)+``000`` Kreis, ``9``+AGS(5)+``nnn`` part of a Kreis (``999``: a Kreis and the kreisfreie Stadt
        inside it), ``8``+AGS(8) Gemeinde, ``7``+... part of a Gemeinde, ``2`` lake, ``5`` coast, ``4`` sea.
        """
        cid = str(cell_id).strip()
        if cid in self._cell_cache:
            return self._cell_cache[cid]
        cell = self._derive_cell(cid)
        self._cell_cache[cid] = cell
        return cell

    def _derive_cell(self, cid: str) -> Warncell | None:
        if len(cid) != 9 or not cid.isdigit():
            return None
        name = self.cells.get(cid)
        kind, key = cid[0], cid[1:6]
        kreis = self.from_ars(key) if kind in "1789" else None
        if kind == "1" and cid[6:] == "000" and kreis:
            if key in KREIS_ALIASES:
                return Warncell(cid, name, "kreis-part", (kreis,), self.from_ags(cid[1:]))
            return Warncell(cid, name, "kreis", (kreis,), kreis if self.regions[kreis].is_(Level.GEMEINDE) else None)
        if kind == "9" and kreis:
            city = self._combined.get(cid)
            if city:
                return Warncell(cid, name, "kreis", (kreis, _pad(city)))
            return Warncell(cid, name, "kreis-part", (kreis,))
        if kind == "8" and kreis:
            return Warncell(cid, name, "gemeinde", (kreis,), self.from_ags(cid[1:]))
        if kind == "7":
            if cid[1:3] in ("02", "11"):
                kreis = _pad(cid[1:3])  # Hamburg, Berlin: 7 + Land + Bezirk/Ortsteil digits
            if kreis:
                gem = self.gemeinden(kreis)
                return Warncell(cid, name, "gemeinde-part", (kreis,), gem[0] if len(gem) == 1 else None)
        if kind == "2":
            return Warncell(cid, name, "lake", ())
        if kind == "5":
            return Warncell(cid, name, "coast", ())
        if kind == "4":
            return Warncell(cid, name, "sea", ())
        if name is not None:
            return Warncell(cid, name, "other", ())
        return None

    def kreis_cells(self, kreis: str) -> frozenset[str]:
        """The Kreis-level cells (``1``/``9``) that together make up the Kreis."""
        return frozenset(self._kreis_units.get(kreis, ()))

    def gemeinde_cells(self, kreis: str) -> frozenset[str]:
        """The Gemeinde-level cells (``8``/``7``) that together make up the Kreis."""
        return frozenset(self._leaf_units.get(kreis, ()))


@functools.cache
def registry() -> Registry:
    """The bundled registry (loaded once)."""
    ars = _read_gz_json(ARS_FILE)
    with zipfile.ZipFile(GEMEINDEN_FILE) as zf:
        names = json.loads(zf.read("verbaende.json"))
    return Registry(ars["daten"], _read_gz_json(WARNCELLS_FILE), version=ars["version"], verband_names=names)


# -- geodesy ----------------------------------------------------------------------------------------------------------

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
    return _valid(shapely.Polygon(pts))


def _valid(geom: BaseGeometry) -> BaseGeometry:
    if geom.is_valid:
        return geom
    fixed = shapely.make_valid(geom)
    polys = [g for g in getattr(fixed, "geoms", [fixed]) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(polys) if polys else shapely.Polygon()


def _within_box(bounds: tuple[float, float, float, float], lon: tuple[float, float], lat: tuple[float, float]) -> bool:
    minx, miny, maxx, maxy = bounds
    return lon[0] <= minx and maxx <= lon[1] and lat[0] <= miny and maxy <= lat[1]


def _in_box(bounds: tuple[float, float, float, float], lon: tuple[float, float], lat: tuple[float, float]) -> bool:
    minx, miny, maxx, maxy = bounds
    return minx <= lon[1] and maxx >= lon[0] and miny <= lat[1] and maxy >= lat[0]


# -- boundaries -------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Units:
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

    def build(self) -> _Units:
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
                        found[f["properties"]["ars"]] = GERMANY.project(_valid(geojson_shape(f["geometry"])))
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
                        found = GERMANY.project(_valid(geojson_shape(json.loads(zf.read(f"kreis/{key}.json")))))
                self._outlines[key] = found
        return self._outlines[key]

    def loaded(self) -> tuple[str, ...]:
        """The Kreise read so far."""
        return tuple(sorted(self._kreise))


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
        kreise = _Units()
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
        self._local: dict[str, _Units | None] = {}
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

    def local_units(self, district: str) -> _Units | None:
        """The boundaries :func:`resolve` measures below Kreis level for a district: the Gemeinden of the district's
        Kreis and of its neighbours (bundled, or the operator's where given), and every extra boundary below Kreis
        level. Built on first use per district, then kept; None if there are none."""
        with self._lock:
            if district in self._local:
                return self._local[district]
            reg = self.registry
            kreis = reg.kreis_of(district) if district in reg else None
            home = (kreis, *self.neighbours(kreis)) if kreis and self.bundled is not None else ()
            units = _Units()
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


def _features(doc: Any) -> list[dict[str, Any]]:
    if doc.get("type") == "FeatureCollection":
        return list(doc.get("features") or [])
    if doc.get("type") == "Feature":
        return [doc]
    raise ValueError("not a GeoJSON Feature or FeatureCollection")


@functools.cache
def geography() -> Geography:
    """The bundled geography (loaded once: about 0.05 s, plus 0.08 s for the registry; Gemeinden per Kreis later)."""
    reg = registry()
    kreis_cells = {str(f["properties"]["WARNCELLID"]): _valid(geojson_shape(f["geometry"]))
                   for f in _features(_read_gz_json(KREISE_FILE))}
    lake_cells = {str(f["properties"]["WARNCELLID"]): _valid(geojson_shape(f["geometry"]))
                  for f in _features(_read_gz_json(LAKES_FILE))}
    return Geography(reg, kreis_cells, lake_cells, bundled=BundledBoundaries())


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
        features = _features(json.loads(path.read_text(encoding="utf-8")))
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
        if not _within_box((minx, miny, maxx, maxy), _GERMANY_LON, _GERMANY_LAT):
            if _within_box((miny, minx, maxy, maxx), _GERMANY_LON, _GERMANY_LAT):
                raise ConfigError(f"{where}.geometry: coordinates are [lat, lon]; GeoJSON (RFC 7946) is [lon, lat]")
            raise ConfigError(f"{where}.geometry: lies outside Germany (bounds {geom.bounds})")
        found[ars].append(_valid(geom))
        if part:
            parts[ars].add(part)
    for ars, given in parts.items():
        missing = sorted(_part_cells(reg, ars, next(iter(given))) - given)
        if missing:
            raise ConfigError(f"{path}: warncells {', '.join(sorted(given))} are parts of {ars} "
                              f"({reg.name(ars)}); the parts {', '.join(missing)} are missing")
    return {ars: shapely.union_all(geoms) for ars, geoms in found.items()}


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


# -- resolution -------------------------------------------------------------------------------------------------------


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
    # codes: Kreise covered by all their parts are covered fully
    for k in sorted(work.partial - work.full):
        r = reg.get(k)
        if r is None or not r.is_(Level.KREIS):
            continue
        parts, leaves, gems = reg.kreis_cells(k), reg.gemeinde_cells(k), reg.gemeinden(k)
        if (parts and parts <= work.cells) or (leaves and leaves <= work.cells) or (gems and set(gems) <= work.full):
            work.full.add(k)
    shares: dict[str, float] = {}
    union = shapely.union_all(work.shapes) if work.shapes else shapely.Polygon()
    area_m2 = float(union.area) + work.far_m2
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
                touches_geom = _touches(inter, float(union.area), float(district_geom.area))
            else:
                touches_geom = bool(union.intersects(district_geom))
        elif reg[district_ars].is_(Level.GEMEINDE):
            work.notes.append(f"no boundary for district {district_ars}: geometry not compared")
    hits = _hits(reg, work, shares)
    inside_codes = any(reg.is_within(h.ars, district_ars) or reg.is_within(district_ars, h.ars) for h in hits)
    inside = inside_codes or touches_geom
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
    if work.ignored:
        work.notes.append("geocodes not used: " + ", ".join(sorted(work.ignored)))
    if geo.shared_boundary(district_ars):
        work.notes.append(f"district boundary is shared by {', '.join(geo.shared_boundary(district_ars))} "
                          "(one DWD cell); add a finer boundary")
    return Resolution(district_ars=district_ars, regions=hits, inside_district=inside, outside_share=outside,
                      basis=basis, area_km2=area_m2 / 1e6, inside_km2=inside_m2 / 1e6,
                      unresolved=tuple(work.unresolved), notes=tuple(work.notes))


def touches_m2(inter: float, a: float, b: float) -> bool:
    """Do two areas of ``a`` and ``b`` m² overlapping by ``inter`` m² touch (more than generalised borders of
    different sources produce: :data:`TOUCH_M2` and :data:`TOUCH_SHARE` of the smaller)?"""
    return inter >= TOUCH_M2 and inter >= TOUCH_SHARE * min(a, b)


_touches = touches_m2


def _measure(union: BaseGeometry, units: _Units, region_area: Mapping[str, float], named: set[str],
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
        if union_area == 0 or _touches(float(a), union_area, float(units.areas[i])):
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
    if _in_box(bounds, _NEAR_LON, _NEAR_LAT):
        work.shapes.append(GERMANY.project(geom_lonlat))
        if not _in_box(bounds, _GERMANY_LON, _GERMANY_LAT):
            _swap_hint(work, geom_lonlat)
        return
    work.far_m2 += geodesic_area_m2(geom_lonlat)
    work.far_points = True
    _swap_hint(work, geom_lonlat)


def _swap_hint(work: _Work, geom_lonlat: BaseGeometry) -> None:
    minx, miny, maxx, maxy = geom_lonlat.bounds
    if _in_box((miny, minx, maxy, maxx), _GERMANY_LON, _GERMANY_LAT):
        work.notes.append("a shape lies outside Germany but would lie inside with latitude and longitude swapped: "
                          "CAP polygons and circles are 'lat,lon'")
