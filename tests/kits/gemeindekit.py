"""The real Gemeinde and Samtgemeinde boundaries of Lüchow-Dannenberg for tests (tests/data/geo/README.md:
BKG VG250-EW, dl-de/by-2.0), written as a ``[geo] boundaries`` file."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import shapely
from shapely.geometry import shape

from hub.geo.registry import registry
from tests.kits import paths

GEMEINDEN_FILE = paths.DATA / "geo" / "gemeinden_luechow-dannenberg.geojson"

DISTRICT = "033540000000"  # Landkreis Lüchow-Dannenberg
HITZACKER = "033545406009"  # Hitzacker (Elbe), Stadt
DANNENBERG = "033545406004"  # Dannenberg (Elbe), Stadt
LUECHOW = "033545407018"  # Lüchow (Wendland), Stadt
ELBTALAUE = "033545406000"  # Samtgemeinde Elbtalaue (Hitzacker, Dannenberg, ...)
KUESTEN = "033545407013"  # Küsten: the tests leave its boundary out to have a region without one
IN_HITZACKER = (53.152, 11.043)  # lat, lon: Hitzacker town
IN_LUECHOW = (52.967, 11.155)  # lat, lon: Lüchow town
IN_DANNENBERG = (53.097, 11.094)  # lat, lon: Dannenberg town
GARTOW = (53.026, 11.462)  # lat, lon: Gartow


def features(*, without: Iterable[str] = ()) -> list[dict]:
    """The file's features whose ``ars`` the Destatis list knows (the dissolved gemeindefreie Gebiete at the
    Gemeindeverband level ``03354950x000`` are not in it), less ``without``."""
    reg, skip = registry(), set(without)
    doc = json.loads(GEMEINDEN_FILE.read_text(encoding="utf-8"))
    return [f for f in doc["features"] if f["properties"]["ars"] in reg and f["properties"]["ars"] not in skip]


def write_boundaries(path: Path, *, without: Iterable[str] = ()) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features(without=without)}),
                    encoding="utf-8")
    return path


def shapes() -> dict[str, shapely.Geometry]:
    """Lon/lat boundary per ARS."""
    return {f["properties"]["ars"]: shape(f["geometry"]) for f in features()}
