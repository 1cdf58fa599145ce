#!/usr/bin/env python3
"""Targeting benchmark: who a warning for the whole Landkreis Lüchow-Dannenberg reaches among N point places.

Builds a :class:`hub.targeting.SubscriptionIndex` from N subscriptions with one random point place each,
uniform over Germany's bounding box (seeded), radii mixed like real choices (60 % the default 1 km, 25 % 0.1-5 km,
10 % 5-20 km, 5 % 20-50 km). Queries with the Kreis boundary as the warning's area (lon/lat, from the bundled DWD
Kreis cells, as the API takes it). Baseline in the same run: one exact distance test of every place against the
same area (no index), which must find the same places. Prints one JSON line:
``{"places", "query_ms", "matched", "build_s", "rebuild_s", "baseline_ms", "index_mb"}``; ``query_ms`` is the median
of the queries, ``rebuild_s`` the rebuild after a change has grown the delta, ``index_mb`` the arrays' size.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import shape

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.geo.boundaries import KREISE_FILE  # noqa: E402
from hub.geo.geography import geography  # noqa: E402
from hub.geo.projection import GERMANY  # noqa: E402
from hub.publish import index as targeting  # noqa: E402
from hub.publish import subscriptions as subs  # noqa: E402

KREIS_CELL = "103354000"
"""DWD warncell of the Landkreis Lüchow-Dannenberg (ARS 033540000000)."""


def kreis_lonlat() -> shapely.Geometry:
    doc = json.loads(gzip.decompress(KREISE_FILE.read_bytes()))
    feature = next(f for f in doc["features"] if str(f["properties"]["WARNCELLID"]) == KREIS_CELL)
    return shape(feature["geometry"])


def places(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lon_min, lat_min, lon_max, lat_max = subs.GERMANY_BBOX
    lon = np.round(rng.uniform(lon_min, lon_max, n), 3)
    lat = np.round(rng.uniform(lat_min, lat_max, n), 3)
    kind = rng.random(n)
    radius = np.where(kind < 0.60, 1000, np.where(kind < 0.85, rng.uniform(100, 5000, n),
                                                  np.where(kind < 0.95, rng.uniform(5000, 20000, n),
                                                           rng.uniform(20000, 50000, n))))
    return lon, lat, np.round(radius)


def items(lon: np.ndarray, lat: np.ndarray, radius: np.ndarray) -> Iterator[tuple[str, subs.Subscription]]:
    for i, (x, y, r) in enumerate(zip(lon.tolist(), lat.tolist(), radius.tolist(), strict=True)):
        yield f"s{i:09d}", subs.Subscription("", "", "", (subs.PointPlace(y, x, int(r)),))


def baseline(area_lonlat: shapely.Geometry, lon: np.ndarray, lat: np.ndarray, radius: np.ndarray) -> set[int]:
    area = GERMANY.project(area_lonlat)
    shapely.prepare(area)
    xy = GERMANY.forward(np.column_stack((lon, lat)))
    hit = shapely.dwithin(area, shapely.points(xy), radius)
    return set(np.flatnonzero(hit).tolist())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--places", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument("--seed", type=int, default=20250731)
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args()

    area = kreis_lonlat()
    lon, lat, radius = places(args.places, args.seed)
    geography()  # loaded once by the daemon too; not part of the build
    start = time.perf_counter()
    index = targeting.SubscriptionIndex(items(lon, lat, radius))
    build_s = time.perf_counter() - start

    def query() -> list[str]:
        return index.match(area, set(), severity="Moderate", categories={"Met"}, event_topics=set(), exercise=False)

    times, found = [], []
    for _ in range(args.queries):
        start = time.perf_counter()
        found = query()
        times.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    expected = baseline(area, lon, lat, radius)
    baseline_ms = (time.perf_counter() - start) * 1000
    got = {int(i[1:]) for i in found}
    if got != expected:
        sys.exit(f"index and baseline disagree: {len(got ^ expected)} places differ")

    for i in range(targeting._DELTA_MAX + 1):  # grow the delta past its limit: the next query rebuilds
        index.put(f"s{i:09d}", subs.Subscription("", "", "", (subs.PointPlace(53.0, 11.0, 1000),)))
    start = time.perf_counter()
    query()
    rebuild_s = time.perf_counter() - start

    base = index._base
    assert base is not None
    size = sum(a.nbytes for a in (base.raw.ids, base.raw.min_sev, base.raw.topics, base.raw.exercise, base.raw.px,
                                  base.raw.py, base.raw.pr, base.raw.psub, base.alive, base.offsets))
    result = {"places": args.places, "query_ms": round(statistics.median(times), 2), "matched": len(found),
              "build_s": round(build_s, 2), "rebuild_s": round(rebuild_s, 2), "baseline_ms": round(baseline_ms, 1),
              "index_mb": round(size / 1e6, 1)}
    if not args.json:
        print(f"{args.places} places: median query {result['query_ms']} ms ({len(found)} matched), baseline "
              f"{result['baseline_ms']} ms, build {result['build_s']} s, rebuild {result['rebuild_s']} s",
              file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
