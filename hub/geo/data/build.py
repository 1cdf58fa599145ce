"""Rebuild the bundled geodata from the shared corpus: ``python -m hub.geo.data.build [CORPUS_GEO_DIR]``.

Writes compact, gzip-compressed copies next to this file (see README.md for provenance and licences). Nothing is
edited except the coordinate order of the DWD Kreis warncells ([lat, lon] in the source, RFC 7946 [lon, lat] here)
and dropped properties; coordinates keep the source's 4 decimals.
"""

from __future__ import annotations

import gzip
import json
import sys
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_CORPUS = Path("/work/shared/corpus/geo")

ARS_SOURCE = "destatis_regionalschluessel_ARS_2025-07-31_mmm-nina.json"
CELLS_SOURCE = "dwd_warncells_dwdwfsapi.json"
KREISE_SOURCE = "dwd_warngebiete_kreise_wdr-unwetter_latlon.json"
LAKES_DIR = "dwd_warncell_lakes_coast"

ARS_OUT = "destatis_ars_2025-07-31.json.gz"
CELLS_OUT = "dwd_warncells.json.gz"
KREISE_OUT = "dwd_warngebiete_kreise.geojson.gz"
LAKES_OUT = "dwd_warngebiete_seen.geojson.gz"
GEMEINDEN_DIR = "gemeinden"
GEMEINDEN_OUT = "gemeinden.zip"
LOCAL_KREIS = "03354"
"""The Kreis whose Gemeinden come unsimplified (``gemeinden_luechow-dannenberg.geojson``)."""
GEMEINDEN_ATTRIBUTION = ("Verwaltungsgrenzen: © GeoBasis-DE / BKG (2025) (VG250-EW Stand 31.12.2023; Bayern: "
                         "© GeoBasis-DE / BKG (2017), VG250 Stand 2016), dl-de/by-2-0 "
                         "(https://www.govdata.de/dl-de/by-2-0), Daten verändert")
"""The attribution line of ``PROVENANCE.md`` in the corpus' ``gemeinden`` folder (also in hub.geo)."""

KREISE_ATTRIBUTION = "Geobasisdaten: Copyright Bundesamt für Kartographie und Geodäsie, Frankfurt am Main, 2016"
LAKES_ATTRIBUTION = "© GeoBasis-DE / BKG 2021 (Daten modifiziert); Quelle: Deutscher Wetterdienst (CC BY 4.0)"


def _write(name: str, obj: Any) -> None:
    raw = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
    (HERE / name).write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
    print(f"{name}: {len(raw)} bytes JSON, {(HERE / name).stat().st_size} bytes gzip")


def _swap(coords: Any, fixed: list[Any]) -> Any:
    """[lat, lon] -> [lon, lat] at any nesting depth.

    The source has 8 points already in [lon, lat] order (each where one value is a whole degree, e.g.
    ``[10, 51.6125]`` in Kreis Northeim); in Germany latitude (47..56) and longitude (5..16) cannot be confused, so
    each point is put in order by its values. Those points are collected in ``fixed``.
    """
    if coords and isinstance(coords[0], (int, float)):
        first, second = coords
        if 5 <= first <= 16 and 47 <= second <= 56:
            fixed.append(coords)
            return [first, second]
        if not (47 <= first <= 56 and 5 <= second <= 16):
            raise SystemExit(f"point outside Germany: {coords}")
        return [second, first]
    return [_swap(c, fixed) for c in coords]


def build(corpus: Path) -> None:
    ars = json.loads((corpus / ARS_SOURCE).read_text(encoding="utf-8"))
    meta = ars["metadaten"]
    _write(ARS_OUT, {
        "kennung": meta["kennung"],
        "version": meta["version"],
        "herausgeber": meta["herausgebernameLang"][0]["value"],
        "spalten": [s["spaltennameTechnisch"] for s in ars["spalten"]],
        "daten": ars["daten"],
    })
    cells = json.loads((corpus / CELLS_SOURCE).read_text(encoding="utf-8"))
    _write(CELLS_OUT, cells)
    kreise = json.loads((corpus / KREISE_SOURCE).read_text(encoding="utf-8"))
    licences = {f["properties"]["LICENSE"] for f in kreise["features"]}
    if licences != {KREISE_ATTRIBUTION}:
        raise SystemExit(f"unexpected LICENSE values in {KREISE_SOURCE}: {licences}")
    fixed: list[Any] = []
    _write(KREISE_OUT, {
        "type": "FeatureCollection",
        "attribution": KREISE_ATTRIBUTION,
        "source": f"DWD WFS Warngebiete_Kreise ({kreise['timeStamp']}) via wdr-data/unwetter assets/shapes/map.json",
        "features": [
            {"type": "Feature",
             "properties": {"WARNCELLID": f["properties"]["WARNCELLID"], "NAME": f["properties"]["NAME"]},
             "geometry": {"type": f["geometry"]["type"], "coordinates": _swap(f["geometry"]["coordinates"], fixed)}}
            for f in kreise["features"]
        ],
    })
    print(f"{KREISE_SOURCE}: {len(fixed)} points were already [lon, lat]: {fixed}")
    lakes = []
    for path in sorted((corpus / LAKES_DIR).glob("*.geojson")):
        f = json.loads(path.read_text(encoding="utf-8"))
        if f["properties"]["COPYRIGHT"] != "© GeoBasis-DE / BKG 2021 (Daten modifiziert)":
            raise SystemExit(f"unexpected COPYRIGHT in {path}: {f['properties']['COPYRIGHT']}")
        lakes.append({"type": "Feature",
                      "properties": {"WARNCELLID": f["properties"]["WARNCELLID"], "NAME": f["properties"]["NAME"]},
                      "geometry": f["geometry"]})
    _write(LAKES_OUT, {"type": "FeatureCollection", "attribution": LAKES_ATTRIBUTION,
                       "source": "DWD WFS Warngebiete_Binnenseen via KDE/foss-public-alert-server",
                       "features": lakes})
    build_gemeinden(corpus / GEMEINDEN_DIR)


def _zip_member(zf: zipfile.ZipFile, name: str, obj: Any) -> None:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # fixed: the same corpus gives the same bytes
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, json.dumps(obj, ensure_ascii=False, separators=(",", ":")), compresslevel=9)


def _outlines(per_kreis: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Each Kreis' outline: the union of its Gemeinden (GeoJSON geometry), so that a Kreis and its Gemeinden have
    the same border (DWD's Kreis cells are coarser: 2.3 % of Lüchow-Dannenberg's area differs)."""
    import shapely
    from shapely.geometry import mapping, shape

    out = {}
    for kreis, features in per_kreis.items():
        parts = [shape(f["geometry"]) for f in features if f["properties"]["level"] == "gemeinde"]
        union = shapely.union_all(parts)
        digits = 6 if kreis == LOCAL_KREIS else 5
        out[kreis] = mapping(shapely.set_precision(union, 10 ** -digits))
    return out


def build_gemeinden(folder: Path) -> None:
    """``gemeinden.zip``: one member ``KKKKK.json`` per Kreis (its Gemeinden and Gemeindeverbände as GeoJSON,
    properties ``ars`` and ``level``, so hub.geo reads only the Kreise it needs), and ``verbaende.json``: the name
    of every Gemeindeverband (``"Samtgemeinde Elbtalaue"``). Kreis 03354 comes from the unsimplified file."""
    gem = json.loads(gzip.decompress((folder / "gemeinden_germany.geojson.gz").read_bytes()))
    gv = json.loads(gzip.decompress((folder / "verbandsgemeinden_germany.geojson.gz").read_bytes()))
    local = json.loads((folder / "gemeinden_luechow-dannenberg.geojson").read_text(encoding="utf-8"))
    per_kreis: dict[str, list[dict[str, Any]]] = defaultdict(list)
    names: dict[str, str] = {}

    def add(f: dict[str, Any], level: str) -> None:
        ars = f["properties"]["ars"]
        if level == "verband":
            if ars[5] != "5":  # verbandsfrei (0xxx) or gemeindefrei (9xxx): the Gemeinde is the unit
                return
            name, bez = f["properties"].get("name"), f["properties"].get("bez")
            if name and bez:
                names[ars] = f"{bez} {name}"
        per_kreis[ars[:5]].append({"type": "Feature", "properties": {"ars": ars, "level": level},
                                   "geometry": f["geometry"]})

    for f in gem["features"]:
        if not f["properties"]["ars"].startswith(LOCAL_KREIS):
            add(f, "gemeinde")
    for f in gv["features"]:
        if not f["properties"]["ars"].startswith(LOCAL_KREIS):
            add(f, "verband")
    for f in local["features"]:
        add(f, "gemeinde" if f["properties"]["level"] == "gemeinde" else "verband")
    outlines = _outlines(per_kreis)
    out = HERE / GEMEINDEN_OUT
    with zipfile.ZipFile(out, "w") as zf:
        zf.comment = GEMEINDEN_ATTRIBUTION.encode()
        _zip_member(zf, "verbaende.json", dict(sorted(names.items())))
        for kreis, features in sorted(per_kreis.items()):
            _zip_member(zf, f"{kreis}.json", {"type": "FeatureCollection", "attribution": GEMEINDEN_ATTRIBUTION,
                                              "features": sorted(features, key=lambda f: f["properties"]["ars"])})
            _zip_member(zf, f"kreis/{kreis}.json", outlines[kreis])
    print(f"{GEMEINDEN_OUT}: {len(per_kreis)} Kreise, {sum(map(len, per_kreis.values()))} features, "
          f"{len(names)} Verband names, {out.stat().st_size} bytes")


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CORPUS)
