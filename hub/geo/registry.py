"""The ARS hierarchy: every Land, Regierungsbezirk, Kreis, Gemeindeverband and Gemeinde by its 12-digit Amtlicher
Regionalschlüssel (ARS = Land 2 + Bezirk 1 + Kreis 2 + Verband 4 + Gemeinde 3 digits), from the Destatis list
(2025-07-31), with names, levels, parent and child lookups, and the DWD warncell scheme mapped onto it
(:meth:`Registry.warncell`)."""

from __future__ import annotations

import enum
import functools
import gzip
import json
import re
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

GEODATA = Path(__file__).resolve().parent / "data"
ARS_FILE = GEODATA / "destatis_ars_2025-07-31.json.gz"
WARNCELLS_FILE = GEODATA / "dwd_warncells.json.gz"
GEMEINDEN_FILE = GEODATA / "gemeinden.zip"
"""Gemeinde and Gemeindeverband boundaries (BKG VG250), one member per Kreis, read when a Kreis is first needed."""

DEFAULT_DISTRICT = "033540000000"
"""Landkreis Lüchow-Dannenberg: the district when no config names one."""

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


def read_gz_json(path: Path) -> Any:
    return json.loads(gzip.decompress(path.read_bytes()))


class Registry:
    """The ARS hierarchy with names, and the DWD warncells mapped onto it."""

    def __init__(self, ars_rows: Iterable[list[Any]], cells: Mapping[str, str], version: str = "",
                 verband_names: Mapping[str, str] | None = None) -> None:
        self.version = version
        self.cells: dict[str, str] = dict(cells)
        self._verbandsfrei: dict[str, str] = {}
        """9-digit keys of verbandsfreie Gemeinden and gemeindefreie Gebiete (0xxx, 9xxx) to the Gemeinde ARS."""
        rows = [(r[0], r[1], bool(r[2])) for r in ars_rows]
        self.regions = self._build_regions(rows, cells, verband_names or {})
        self._build_index()

    def _build_regions(self, rows: list[tuple[str, str, bool]], cells: Mapping[str, str],
                       verband_names: Mapping[str, str]) -> dict[str, Region]:
        """Every region from the Destatis rows (ARS, name, is Ortsteil), Länder and Bezirke added; sets
        :attr:`_combined` and :attr:`_verbandsfrei` on the way."""
        regions: dict[str, Region] = {}
        gemeinde_rows = [(ars, name) for ars, name, ortsteil in rows if not ortsteil]
        kreisfrei = {ars[:5]: name for ars, name in gemeinde_rows if ars[5:] == "0000000"}

        kreis_names, self._combined = self._kreis_names(cells, kreisfrei)
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
        return regions

    def _build_index(self) -> None:
        """The lookups over :attr:`regions`: children, Gemeinden by AGS, the warncells per Kreis, empty caches."""
        regions = self.regions
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
    ars = read_gz_json(ARS_FILE)
    with zipfile.ZipFile(GEMEINDEN_FILE) as zf:
        names = json.loads(zf.read("verbaende.json"))
    return Registry(ars["daten"], read_gz_json(WARNCELLS_FILE), version=ars["version"], verband_names=names)

