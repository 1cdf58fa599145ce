"""Rebuild the bundled geodata from the shared corpus: ``python -m hub.geodata.build [CORPUS_GEO_DIR]``.

Writes compact, gzip-compressed copies next to this file (see README.md for provenance and licences). Nothing is
edited except the coordinate order of the DWD Kreis warncells ([lat, lon] in the source, RFC 7946 [lon, lat] here)
and dropped properties; coordinates keep the source's 4 decimals.
"""

from __future__ import annotations

import gzip
import json
import sys
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


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CORPUS)
