"""Bundled Gemeinde and Samtgemeinde boundaries (hub/geo/data/gemeinden.zip, BKG VG250)
used wherever an area is resolved: hub.geo's resolve() and Geography, DWD Gemeinde warncells, the region search of
the citizen pages and the console, the subscription index, and the widget and warnings API per ARS of a real daemon
(the issue's failure: the widget of Lüchow showed a Hitzacker warning). Real data throughout."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import shapely
from shapely.geometry import shape

from hub.access.auth import User
from hub.cap.model import Area, Value
from hub.geo.boundaries import BOUNDARY_ATTRIBUTION
from hub.geo.geography import Geography, geography
from hub.geo.projection import GERMANY, geodesic_area_m2
from hub.geo.registry import GEMEINDEN_FILE
from hub.geo.resolve import resolve
from hub.publish.index import SubscriptionIndex
from hub.publish.subscriptions import PointPlace, RegionPlace, Subscription
from hub.web import citizen_view
from hub.web.console_api import search_regions
from tests.e2e.test_routing import Hub, dwd_cap
from tests.kits.consolekit import Operator, add_reader
from tests.kits.hubproc import drop, wait_for

LD = "033540000000"  # Landkreis Lüchow-Dannenberg
HITZACKER = "033545406009"  # Hitzacker (Elbe), Stadt
LUECHOW = "033545407018"  # Lüchow (Wendland), Stadt: 21 km south of Hitzacker
ELBTALAUE = "033545406000"  # Samtgemeinde Elbtalaue (Hitzacker is one of its Gemeinden)
LUECHOW_SG = "033545407000"
GARTOW_SG = "033545403000"
LUECHOW_TOWN = (11.1536, 52.9675)  # lon, lat
HITZACKER_TOWN = (10.9950, 53.1530)
CORPUS_LD = Path("/work/shared/corpus/geo/gemeinden/gemeinden_luechow-dannenberg.geojson")


@pytest.fixture(scope="module")
def world() -> Geography:
    return geography()


def point(lon_lat: tuple[float, float]) -> shapely.Point:
    return GERMANY.project(shapely.Point(*lon_lat))


def codes(name: str, value: str) -> list[Area]:
    return [Area(area_desc="codes", geocodes=(Value(value_name=name, value=value),))]


# -- hub.geo ----------------------------------------------------------------------------------------------------------


def test_gemeinde_ars_resolves_to_its_own_boundary(world: Geography) -> None:
    """A CAP area with geocode ARS of Hitzacker is Hitzacker's boundary, a small share of the district, not the
    Kreis; Lüchow's town centre lies outside it."""
    res = resolve(codes("ARS", HITZACKER), LD, geo=world)
    hits = {h.ars: (h.coverage, h.share) for h in res.regions}
    assert set(hits) == {LD, HITZACKER}
    assert hits[HITZACKER] == ("full", 1.0)
    assert hits[LD][0] == "partial" and hits[LD][1] is not None and hits[LD][1] < 0.06  # 58.7 of 1229 km²
    assert res.basis == "area" and 55 < res.area_km2 < 62 and res.inside_district
    boundary = world.geometry(HITZACKER)
    assert boundary is not None
    assert boundary.contains(point(HITZACKER_TOWN)) and not boundary.contains(point(LUECHOW_TOWN))
    assert not world.geometry(LUECHOW).intersection(boundary).area > 1.0  # type: ignore[union-attr]


def test_the_district_uses_the_unsimplified_file(world: Geography) -> None:
    """Lüchow-Dannenberg's Gemeinden are the corpus' unsimplified ones (6 decimals), not the simplified Germany file."""
    corpus = {f["properties"]["ars"]: f for f in json.loads(CORPUS_LD.read_text(encoding="utf-8"))["features"]}
    for ars in (HITZACKER, LUECHOW, ELBTALAUE):
        expected = GERMANY.project(shape(corpus[ars]["geometry"]))
        got = world.geometry(ars)
        assert got is not None
        assert shapely.get_num_coordinates(got) == shapely.get_num_coordinates(expected)
        assert got.symmetric_difference(expected).area < 1e-6 * expected.area
    members = shapely.union_all([world.geometry(g) for g in world.registry.gemeinden(ELBTALAUE)])
    assert members.symmetric_difference(world.geometry(ELBTALAUE)).area < 1e-4 * members.area  # type: ignore[arg-type]


def test_gemeinden_elsewhere_are_read_when_needed(world: Geography) -> None:
    """Only the Kreise asked for are read; a Gemeinde far away (Stadt Marburg) still has its boundary."""
    marburg = "065340014014"
    assert world.registry.name(marburg) == "Marburg, Universitätsstadt"
    g = world.geometry(marburg)
    assert g is not None and 110e6 < g.area < 140e6  # 124.5 km²
    assert "06534" in world.bundled.loaded()  # type: ignore[union-attr]
    assert "09162" not in world.bundled.loaded()  # type: ignore[union-attr]  # München: never asked for


def test_samtgemeinden_are_named_as_on_the_citizen_page(world: Geography) -> None:
    reg = world.registry
    assert reg.name(ELBTALAUE) == "Samtgemeinde Elbtalaue"
    assert reg.name(LUECHOW_SG) == "Samtgemeinde Lüchow (Wendland)"
    assert reg.name(GARTOW_SG) == "Samtgemeinde Gartow"
    assert world.inner(LD) == sorted([GARTOW_SG, ELBTALAUE, LUECHOW_SG, "033549501501", "033549502502"])


def test_dwd_gemeinde_warncell_is_the_gemeindes_boundary(world: Geography) -> None:
    """DWD's Gemeinde cell 803354009 is Hitzacker: its geometry is Hitzacker's boundary, not nothing (before: the
    cell had no geometry and the warning fell back to the whole Kreis)."""
    assert world.cell_geometry("803354009") is world.geometry(HITZACKER)
    res = resolve(codes("WARNCELLID", "803354009"), LD, geo=world)
    assert {h.ars for h in res.regions} == {LD, HITZACKER}
    assert res.basis == "area" and 55 < res.area_km2 < 62


def test_polygon_names_the_gemeinden_it_touches(world: Geography) -> None:
    """A small polygon around Lüchow's town centre names Lüchow (Wendland) among the regions, not Hitzacker."""
    lon, lat = LUECHOW_TOWN
    ring = ((lat - 0.01, lon - 0.01), (lat - 0.01, lon + 0.01), (lat + 0.01, lon + 0.01), (lat + 0.01, lon - 0.01),
            (lat - 0.01, lon - 0.01))
    res = resolve([Area(area_desc="Lüchow", polygons=(ring,))], LD, geo=world)
    gemeinden = {h.ars for h in res.regions if h.level == "gemeinde"}
    assert LUECHOW in gemeinden and HITZACKER not in gemeinden


def test_an_operators_boundary_overrides_the_bundled_one(world: Geography) -> None:
    """``[geo] boundaries`` still win: an operator's (here deliberately small) Hitzacker replaces the bundled one."""
    small = shapely.box(10.98, 53.14, 11.01, 53.16)
    finer = world.with_boundaries({HITZACKER: small})
    assert finer.geometry(HITZACKER).area < 0.2 * world.geometry(HITZACKER).area  # type: ignore[union-attr]
    res = resolve(codes("ARS", HITZACKER), LD, geo=finer)
    assert res.area_km2 == pytest.approx(geodesic_area_m2(small) / 1e6, rel=1e-3)
    assert finer.geometry(LUECHOW) is not None  # the other Gemeinden keep the bundled boundaries


# -- region search ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "ars"), [("Elbtalaue", ELBTALAUE), ("Lüchow (Wendland)", LUECHOW_SG),
                                            ("Gartow", GARTOW_SG)])
def test_region_search_finds_samtgemeinden_by_their_usual_names(world: Geography, query: str, ars: str) -> None:
    """The citizen search (/api/v1/regions?q=) and the console's find each Samtgemeinde by its name, named
    "Samtgemeinde …" in both, and the console knows its boundary (no "ohne Grenze")."""
    citizen = citizen_view.search(citizen_view.regions(world, LD), query)
    found = next(r for r in citizen if r["ars"] == ars)
    assert found == {"ars": ars, "name": world.registry.name(ars), "level": "verband"}
    assert found["name"].startswith("Samtgemeinde ") and query in found["name"]
    user = User(id=1, name="leitstelle", roles=frozenset({"viewer"}), scopes=(LD,), disabled=False)
    console = {r["ars"]: r for r in search_regions(world, user, query)}
    assert console[ars]["name"] == found["name"] and console[ars]["boundary"] is True
    hitz = search_regions(world, user, "Hitzacker")
    assert [(r["ars"], r["boundary"]) for r in hitz] == [(HITZACKER, True)]


# -- subscriptions ----------------------------------------------------------------------------------------------------


def test_a_hitzacker_area_does_not_reach_a_place_in_luechow(world: Geography) -> None:
    """The index: a warning whose area is Hitzacker (regions: the Kreis, partly, and Hitzacker) reaches places in
    Hitzacker, in its Samtgemeinde and the whole Kreis, and a point in Hitzacker; not Lüchow, by ARS or by point."""
    subs = {"hitzacker": RegionPlace(ars=HITZACKER), "elbtalaue": RegionPlace(ars=ELBTALAUE),
            "kreis": RegionPlace(ars=LD), "luechow": RegionPlace(ars=LUECHOW),
            "luechow-sg": RegionPlace(ars=LUECHOW_SG),
            "punkt-hitzacker": PointPlace(lon=HITZACKER_TOWN[0], lat=HITZACKER_TOWN[1], radius_m=500),
            "punkt-luechow": PointPlace(lon=LUECHOW_TOWN[0], lat=LUECHOW_TOWN[1], radius_m=500)}
    index = SubscriptionIndex(((k, Subscription(endpoint=f"https://push.example/{k}", p256dh="", auth="", places=(p,)))
                               for k, p in subs.items()), geo=world)
    res = resolve(codes("ARS", HITZACKER), LD, geo=world)
    area = GERMANY.unproject(world.geometry(HITZACKER))
    kw = {"severity": "Severe", "categories": ("Met",), "event_topics": (), "exercise": False}
    got = set(index.match(area, [h.ars for h in res.regions], **kw))
    assert got == {"hitzacker", "elbtalaue", "kreis", "punkt-hitzacker"}
    # a Kreis-wide warning still reaches everyone in the Kreis
    assert set(index.match(GERMANY.unproject(world.geometry(LD)), [LD], **kw)) == set(subs)


# -- the daemon: widget, warnings API, attribution ----------------------------------------------------------------


def gemeinde_cap(identifier: str) -> bytes:
    """A DWD warning for DWD's Gemeinde cell of Hitzacker (803354009) only."""
    xml = dwd_cap(identifier).decode()
    xml = xml.replace("<areaDesc>Kreis Lüchow-Dannenberg</areaDesc>", "<areaDesc>Stadt Hitzacker (Elbe)</areaDesc>")
    xml = xml.replace("<value>103354000</value>", "<value>803354009</value>")
    xml = xml.replace("Amtliche UNWETTERWARNUNG vor STURMBÖEN", "Hochwasser in Hitzacker")
    return xml.encode()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = Hub(tmp_path_factory.mktemp("gemeinden"))
    try:
        h.proc.start()
        yield h
    finally:
        h.proc.close()


def test_widget_of_luechow_does_not_show_a_hitzacker_warning(hub: Hub) -> None:
    """The issue's failure: a warning for Hitzacker showed in the widget of Lüchow (033545407018). Now it shows for
    Hitzacker, its Samtgemeinde and the Kreis, and neither in Lüchow's widget nor in ``/api/v1/warnings?ars=`` of
    Lüchow."""
    drop(hub.inbox, "hitzacker.xml", gemeinde_cap("hitzacker-1"), settled=True)

    def listed(ars: str) -> list[str]:
        return [i["headline"] for w in hub.proc.get_json(f"/api/v1/warnings?ars={ars}")["warnings"]
                for i in w["infos"]]

    wait_for(lambda: "Hochwasser in Hitzacker" in listed(HITZACKER), timeout=30, what="the Hitzacker warning")
    assert "Hochwasser in Hitzacker" in listed(ELBTALAUE) and "Hochwasser in Hitzacker" in listed(LD)
    assert "Hochwasser in Hitzacker" not in listed(LUECHOW)
    assert "Hochwasser in Hitzacker" not in listed(LUECHOW_SG)
    status, page = hub.proc.get(f"/widget/{HITZACKER}")
    assert status == 200 and "Hochwasser in Hitzacker" in page.decode()
    status, page = hub.proc.get(f"/widget/{LUECHOW}")
    assert status == 200 and "Hochwasser in Hitzacker" not in page.decode() and "Keine Warnungen" in page.decode()
    status, feed = hub.proc.get(f"/feeds/{LUECHOW}.atom")
    assert status == 200 and "hitzacker-1" not in feed.decode() and b"Hochwasser" not in feed
    status, feed = hub.proc.get(f"/feeds/{HITZACKER}.atom")
    assert status == 200 and b"Hochwasser in Hitzacker" in feed


def test_attribution_is_on_every_map_page(hub: Hub) -> None:
    """dl-de/by-2.0: the attribution line of the bundled boundaries wherever they are drawn."""
    with zipfile.ZipFile(GEMEINDEN_FILE) as zf:
        assert zf.comment.decode() == BOUNDARY_ATTRIBUTION  # the line from the corpus' PROVENANCE.md
    assert "dl-de/by-2-0" in BOUNDARY_ATTRIBUTION and "Daten verändert" in BOUNDARY_ATTRIBUTION
    thread = wait_for(lambda: next((w["thread"] for w in hub.proc.get_json("/api/v1/warnings")["warnings"]), None),
                      timeout=30, what="a published warning")
    for path in ("/", "/abonnieren", f"/warnungen/{thread}"):
        status, page = hub.proc.get(path)
        assert status == 200 and BOUNDARY_ATTRIBUTION in page.decode(), path


def test_region_search_and_maps_over_http(hub: Hub) -> None:
    """``/api/v1/regions?q=`` and the console's ``/console/api/regions?q=`` find "Elbtalaue" as the Samtgemeinde
    with a boundary; the console map's layers carry the Samtgemeinden and the attribution line for Leaflet."""
    citizen = hub.proc.get_json("/api/v1/regions?q=Elbtalaue")
    assert citizen[0] == {"ars": ELBTALAUE, "name": "Samtgemeinde Elbtalaue", "level": "verband"}
    add_reader(hub.tmp / "hub.db")
    operator = Operator(hub.proc.base)
    status, body = operator.get("/console/api/regions?q=Elbtalaue")
    assert status == 200
    found = json.loads(body)["regions"]
    assert found[0]["ars"] == ELBTALAUE and found[0]["name"] == "Samtgemeinde Elbtalaue" and found[0]["boundary"]
    status, body = operator.get(f"/console/api/regions/{HITZACKER}/shape")
    assert status == 200 and json.loads(body)["properties"]["ars"] == HITZACKER  # no more "ohne Grenze"
    status, body = operator.get("/console/api/map")
    layers = json.loads(body)
    assert status == 200 and layers["attribution"] == BOUNDARY_ATTRIBUTION
    assert {f["properties"]["name"] for f in layers["regions"]} >= {
        "Samtgemeinde Elbtalaue", "Samtgemeinde Gartow", "Samtgemeinde Lüchow (Wendland)"}


def test_bundled_gemeinden_can_be_switched_off(tmp_path: Path) -> None:
    """``[geo] bundled_gemeinden = false``: only the Kreis cells and the operator's own files (then a region without
    a boundary is widened only on the sender's confirmation); the default uses the bundled boundaries."""
    from hub.config.load import load
    from tests.kits.hubproc import write_config

    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    on = load(write_config(tmp_path / "on", port=1)).geography()
    off = load(write_config(tmp_path / "off", port=1, extra="[geo]\nbundled_gemeinden = false\n")).geography()
    assert on.geometry(HITZACKER) is not None and off.geometry(HITZACKER) is None
    assert off.geometry("033540000000") is not None  # the Kreis keeps its DWD cell
