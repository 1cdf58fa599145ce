"""Regions and area resolution (hub/geo/) against real data: the bundled Destatis/DWD files, DWD CAP files and a
NINA MoWaS message (tests/data/geo/README.md)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely
from shapely.geometry import shape

from hub.cap.model import Area, Circle, Info, Value
from hub.cap.parse import parse
from hub.errors import ConfigError
from hub.geo.boundaries import KREISE_FILE, load_extra_boundaries
from hub.geo.geography import Geography, geography
from hub.geo.projection import GERMANY, circle_lonlat, geodesic_area_m2
from hub.geo.registry import Level, Registry, read_gz_json, registry
from hub.geo.resolve import Resolution, resolve
from tests.kits import paths
from tests.kits.hubproc import REPO, subprocess_env

DATA = paths.DATA
GEO = DATA / "geo"
DWD_CHAIN = sorted((DATA / "cap").glob("de_dwd_wdr-unwetter_alert1_*.xml"))
NINA_HESSEN = GEO / "fpas_mow.DE-HE-KS-SE106-20250313-106-001.json"

LD = "033540000000"  # Landkreis Lüchow-Dannenberg
HITZACKER = "033545406009"
LUECHOW_STADT = "033545407018"  # Lüchow (Wendland), Stadt
SALZWEDEL = "150810000000"  # Altmarkkreis Salzwedel, the Kreis south-east of Lüchow-Dannenberg
LUECHOW = (52.9675, 11.1536)
HAMBURG = (53.5511, 9.9937)


@pytest.fixture(scope="module")
def reg() -> Registry:
    return registry()


@pytest.fixture(scope="module")
def world() -> Geography:
    return geography()


def circle(lat_lon: tuple[float, float], km: float) -> list[Area]:
    return [Area(area_desc=f"{km} km", circles=(Circle(center=lat_lon, radius_km=km),))]


def codes(name: str, *values: str) -> list[Area]:
    return [Area(area_desc="codes", geocodes=tuple(Value(value_name=name, value=v) for v in values))]


def kreise(res: Resolution) -> list[tuple[str, str]]:
    """The Kreis-level hits (the Gemeinden the areas touch are listed beside them)."""
    return [(h.ars, h.coverage) for h in res.regions if h.level == "kreis"]


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    la1, lo1, la2, lo2 = map(math.radians, (*a, *b))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


# -- registry ---------------------------------------------------------------------------------------------------------


def test_registry_luechow_dannenberg_and_its_gemeinden(reg: Registry) -> None:
    ld = reg[LD]
    assert ld.level is Level.KREIS and ld.name == "Kreis Lüchow-Dannenberg"
    assert [a.ars for a in reg.ancestors(LD)] == ["033000000000", "030000000000"]
    assert reg.name("030000000000") == "Niedersachsen"
    gemeinden = reg.gemeinden(LD)
    assert len(gemeinden) == 29  # 27 Gemeinden and 2 gemeindefreie Gebiete (Gartow, Göhrde)
    assert HITZACKER in gemeinden and "033545407018" in gemeinden  # Lüchow (Wendland), Stadt
    assert reg.name(HITZACKER) == "Hitzacker (Elbe), Stadt"
    assert reg.parent(HITZACKER).ars == "033545406000"  # type: ignore[union-attr]
    assert reg.parent("033545406000").ars == LD  # type: ignore[union-attr]
    assert reg.kreis_of(HITZACKER) == LD and reg.is_within(HITZACKER, "030000000000")
    assert not reg.is_within(HITZACKER, "033550000000")
    assert {c.ars for c in reg.children(LD)} == {"033545403000", "033545406000", "033545407000",
                                                "033549501501", "033549502502"}


def test_registry_counts_and_special_keys(reg: Registry) -> None:
    kreise = [r for r in reg.regions.values() if r.is_(Level.KREIS)]
    assert len(kreise) == 400 and all(r.name for r in kreise)
    assert len(reg.kreise_in("030000000000")) == 45
    hamburg = reg["020000000000"]
    assert hamburg.level is Level.LAND and hamburg.is_(Level.KREIS) and hamburg.is_(Level.GEMEINDE)
    assert reg.kreise_in("020000000000") == ("020000000000",)
    neuwerk = reg["021210142142"]
    assert neuwerk.level is Level.ORTSTEIL and neuwerk.parent == "020000000000"
    oldenburg = reg["034030000000"]
    assert oldenburg.level is Level.KREIS and oldenburg.is_(Level.GEMEINDE)
    assert reg.from_ags("03354009") == HITZACKER
    assert reg.from_ags("03354000") == LD and reg.from_ags("03354") == LD
    assert reg.from_ars("03") == "030000000000" and reg.from_ars("03354") == LD
    assert reg.from_ars("033549999999") is None and reg.from_ars("abc") is None


def test_warncells_map_onto_the_registry(reg: Registry) -> None:
    kreis = reg.warncell("103354000")
    assert kreis is not None and kreis.kind == "kreis" and kreis.kreise == (LD,)
    assert kreis.name == "Kreis Lüchow-Dannenberg"
    hitzacker = reg.warncell("803354009")
    assert hitzacker is not None and hitzacker.kind == "gemeinde"
    assert hitzacker.gemeinde == HITZACKER and hitzacker.kreise == (LD,)
    both = reg.warncell("903458999")  # Kreis und Stadt Oldenburg
    assert both is not None and both.kind == "kreis" and both.kreise == ("034580000000", "034030000000")
    part = reg.warncell("901051002")  # Kreis Dithmarschen - Küste
    assert part is not None and part.kind == "kreis-part" and part.kreise == ("010510000000",)
    berlin = reg.warncell("711001001")  # Berl. - Marzahn: 7 + Land + Bezirk digits, not 7 + AGS
    assert berlin is not None and berlin.kind == "gemeinde-part" and berlin.kreise == ("110000000000",)
    eisenach = reg.warncell("116056000")
    assert eisenach is not None and eisenach.kreise == ("160630000000",) and eisenach.gemeinde == "160630105105"
    for cid, kind in (("203258000", "lake"), ("501000001", "coast"), ("401000006", "sea")):
        cell = reg.warncell(cid)
        assert cell is not None and cell.kind == kind and cell.kreise == ()
    assert reg.warncell("12345") is None
    # every Gemeinde cell of the district names a Gemeinde of the district
    ld_cells = reg.gemeinde_cells(LD)
    assert len(ld_cells) == 29
    assert {reg.warncell(c).gemeinde for c in ld_cells} == set(reg.gemeinden(LD))  # type: ignore[union-attr]
    gemeinde_cells = [c for c in reg.cells if c.startswith("8")]
    unmapped = [c for c in gemeinde_cells if reg.warncell(c).gemeinde is None]  # type: ignore[union-attr]
    assert len(gemeinde_cells) == 10969 and len(unmapped) == 52  # Gemeinden merged since DWD's list was made


# -- boundaries -------------------------------------------------------------------------------------------------------


def _point(lat_lon: tuple[float, float]) -> shapely.Point:
    return GERMANY.project(shapely.Point(lat_lon[1], lat_lon[0]))


def test_kreis_boundary_contains_luechow_not_hamburg(world: Geography) -> None:
    district = world.geometry(LD)
    assert district is not None
    assert district.contains(_point(LUECHOW)) and not district.contains(_point(HAMBURG))
    area_km2 = district.area / 1e6
    assert 1220 < area_km2 < 1230  # official figure 1,220.7 km²: the outline of its VG250 Gemeinden (1,226.5)
    assert district.symmetric_difference(world.cell_geoms["103354000"]).area < 0.03 * district.area  # DWD's cell
    # an equal-area projection gives the same area from any centre (geodesic_area_m2 centres on the shape)
    assert geodesic_area_m2(shape(_bundled_feature("103354000")["geometry"])) == pytest.approx(
        world.cell_geoms["103354000"].area, rel=1e-6)


def _bundled_feature(cell_id: str) -> dict[str, object]:
    doc = read_gz_json(KREISE_FILE)
    return next(f for f in doc["features"] if str(f["properties"]["WARNCELLID"]) == cell_id)


def test_bundled_boundaries_are_lon_lat_valid_and_disjoint(world: Geography) -> None:
    doc = read_gz_json(KREISE_FILE)
    assert doc["attribution"].startswith("Geobasisdaten: Copyright Bundesamt für Kartographie und Geodäsie")
    coords = np.concatenate([shapely.get_coordinates(shape(f["geometry"])) for f in doc["features"]])
    assert len(doc["features"]) == 402
    assert coords[:, 0].min() > 5.8 and coords[:, 0].max() < 15.1  # longitude first
    assert coords[:, 1].min() > 47.2 and coords[:, 1].max() < 55.1
    geoms = world.kreise.geoms
    assert all(g.is_valid for g in geoms)
    total = shapely.union_all(geoms).area
    assert total == pytest.approx(sum(g.area for g in geoms), rel=1e-9)  # no overlaps
    assert 355_000 < total / 1e6 < 360_000  # Germany: about 357,600 km²


def test_bundled_boundary_matches_corpus_sample_and_fixes_its_trap(world: Geography) -> None:
    sample = json.loads((GEO / "de_districts_sample_luechow-dannenberg_harz_rhein-kreis-neuss.geojson").read_text())
    by_cell = {str(f["properties"]["WARNCELLID"]): shape(f["geometry"]) for f in sample["features"]}
    ours = shape(_bundled_feature("103354000")["geometry"])
    assert ours.symmetric_difference(by_cell["103354000"]).area < 1e-9
    # the sample swapped blindly: one Harz point was already lon,lat in the source and now lies at longitude 52
    harz = shapely.get_coordinates(by_cell["915085001"])
    assert (harz[:, 0] > 16).sum() == 1
    fixed = shapely.get_coordinates(shape(_bundled_feature("915085001")["geometry"]))
    assert (fixed[:, 0] < 16).all() and len(fixed) == len(harz)


def test_load_extra_boundaries(tmp_path: Path, world: Geography, reg: Registry) -> None:
    cells = json.loads((GEO / "dwd_warncells_brightsky_alert_cells.geojson").read_text())
    with pytest.raises(ConfigError, match="705515102 are missing"):  # Münster-Nord without Münster-Süd
        load_extra_boundaries(GEO / "dwd_warncells_brightsky_alert_cells.geojson")
    goettingen_only = tmp_path / "goettingen.geojson"
    goettingen_only.write_text(json.dumps({"type": "FeatureCollection", "features": cells["features"][:1]}))
    extra = load_extra_boundaries(goettingen_only)
    assert list(extra) == ["031590016016"] and reg.name("031590016016") == "Göttingen, Stadt"
    finer = world.with_boundaries(extra)
    res = resolve(circle((51.5413, 9.9158), 2), "031590000000", geo=finer)  # Göttingen centre
    hits = {h.ars: h for h in res.regions}
    assert hits["031590016016"].coverage == "partial" and hits["031590016016"].level == "gemeinde"
    assert 0 < hits["031590016016"].share < 0.2  # type: ignore[operator]
    assert res.inside_district and res.outside_share < 1e-9
    assert "031590016016" not in {h.ars for h in resolve(circle((51.5413, 9.9158), 2), LD).regions}
    swapped = tmp_path / "swapped.geojson"
    feature = cells["features"][0]
    feature["geometry"]["coordinates"] = [[[[lat, lon] for lon, lat in ring] for ring in poly]
                                          for poly in feature["geometry"]["coordinates"]]
    swapped.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    with pytest.raises(ConfigError, match=r"\$\.features\[0\]\.geometry: coordinates are \[lat, lon\]"):
        load_extra_boundaries(swapped)
    unknown = tmp_path / "unknown.geojson"
    unknown.write_text(json.dumps({"type": "Feature", "properties": {"ars": "039999999999"},
                                   "geometry": cells["features"][0]["geometry"]}))
    with pytest.raises(ConfigError, match="not a known ARS"):
        load_extra_boundaries(unknown)


# -- circles and polygons ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("km", [1, 10, 50, 200])
def test_circle_is_geodesic_and_has_area_pi_r2(km: float) -> None:
    poly = circle_lonlat(Circle(center=LUECHOW, radius_km=km))
    assert geodesic_area_m2(poly) / 1e6 == pytest.approx(math.pi * km**2, rel=0.01)
    ring = shapely.get_coordinates(poly)
    distances = [haversine_km(LUECHOW, (lat, lon)) for lon, lat in ring]
    assert max(abs(d - km) for d in distances) < km * 0.005  # sphere vs ellipsoid: < 0.5 %
    width_deg = ring[:, 0].max() - ring[:, 0].min()
    height_deg = ring[:, 1].max() - ring[:, 1].min()
    assert width_deg / height_deg == pytest.approx(1 / math.cos(math.radians(LUECHOW[0])), rel=0.02)


def test_small_circle_around_luechow_stays_inside() -> None:
    res = resolve(circle(LUECHOW, 5), LD)
    assert kreise(res) == [(LD, "partial")]
    gemeinden = {h.ars for h in res.regions if h.level == "gemeinde"}
    assert LUECHOW_STADT in gemeinden and HITZACKER not in gemeinden  # the bundled Gemeinde boundaries
    assert all(registry().is_within(a, LD) for a in gemeinden)
    assert res.inside_district and res.basis == "area"
    assert res.outside_share < 1e-9
    assert res.area_km2 == pytest.approx(math.pi * 25, rel=0.01)


def test_ten_km_circle_around_luechow_reaches_sachsen_anhalt() -> None:
    # Lüchow lies 6.9 km from the Kreis boundary (DWD's), so a 10 km circle spills slightly into the Altmark
    res = resolve(circle(LUECHOW, 10), LD)
    assert kreise(res) == [(LD, "partial"), (SALZWEDEL, "partial")]
    assert res.inside_district and 0.02 < res.outside_share < 0.15


def test_fifty_km_circle_spills_into_neighbours() -> None:
    res = resolve(circle(LUECHOW, 50), LD)
    hits = {h.ars: h.coverage for h in res.regions}
    assert hits[LD] == "full"
    assert {SALZWEDEL, "033600000000", "033550000000", "120700000000"} <= set(hits)  # Salzwedel, Uelzen, Lüneburg,
    assert all(c == "partial" for a, c in kreise(res) if a != LD)  # Prignitz
    assert not any(registry().is_within(a, LD) for a in hits if a != LD)  # LD is full: no Gemeinde listed
    assert res.inside_district and res.outside_share > 0.5
    assert res.outside_share == pytest.approx(1 - res.inside_km2 / res.area_km2)


def test_swapped_polygon_does_not_resolve_into_germany() -> None:
    ring = [(52.94, 11.10), (52.94, 11.20), (53.00, 11.20), (53.00, 11.10), (52.94, 11.10)]  # around Lüchow
    good = resolve([Area(area_desc="ok", polygons=(tuple(ring),))], LD)
    assert [a for a, _ in kreise(good)] == [LD] and good.outside_share < 0.01
    swapped = tuple((lon, lat) for lat, lon in ring)  # a GeoJSON/NINA ring pasted into CAP unchanged
    bad = resolve([Area(area_desc="swapped", polygons=(swapped,))], LD)
    assert bad.regions == () and not bad.inside_district and bad.outside_share == 1.0
    assert any("swapped" in n for n in bad.notes)


def test_exclude_polygon_cuts_a_hole() -> None:
    outer = ((52.90, 11.05), (52.90, 11.25), (53.05, 11.25), (53.05, 11.05), (52.90, 11.05))
    hole = "52.95,11.10 52.95,11.20 53.00,11.20 53.00,11.10 52.95,11.10"  # as DWD writes it: lat,lon pairs
    plain = resolve([Area(area_desc="a", polygons=(outer,))], LD)
    holed = resolve([Area(area_desc="a", polygons=(outer,),
                              geocodes=(Value(value_name="EXCLUDE_POLYGON", value=hole),))], LD)
    hole_km2 = geodesic_area_m2(shapely.box(11.10, 52.95, 11.20, 53.00)) / 1e6
    assert plain.area_km2 - holed.area_km2 == pytest.approx(hole_km2, rel=1e-3)


# -- geocodes ---------------------------------------------------------------------------------------------------------


def test_nina_land_code_covers_every_kreis_of_the_land(reg: Registry) -> None:
    res = resolve(codes("ARS", "030000000000"), LD)
    hits = dict(kreise(res))
    assert hits[LD] == "full" and len(hits) == 45 and set(hits.values()) == {"full"}
    assert res.inside_district and res.basis == "area"
    assert res.outside_share == pytest.approx(1 - 1229 / 47721, abs=0.005)
    assert not resolve(codes("ARS", "060000000000"), LD).inside_district


def test_gemeinde_codes_are_partial_for_their_kreis() -> None:
    res = resolve(codes("ARS", HITZACKER), LD)
    assert [(h.ars, h.coverage) for h in res.regions] == [(LD, "partial"), (HITZACKER, "full")]
    # measured by Hitzacker's bundled boundary (VG250) against DWD's coarser Kreis polygon: < 1 % outside
    assert res.inside_district and res.basis == "area" and res.outside_share < 0.01
    assert 50 < res.area_km2 < 70  # Hitzacker (Elbe): 58.7 km², not the Kreis' 1229
    by_ags = resolve(codes("AGS", "03354009", "03355022"), LD)  # Hitzacker and the Stadt Lüneburg
    assert by_ags.inside_district and 0.4 < by_ags.outside_share < 0.6  # 70 km² of 129 km² outside
    cell = resolve(codes("WARNCELLID", "803354009"), LD)
    assert [(h.ars, h.coverage) for h in cell.regions] == [(LD, "partial"), (HITZACKER, "full")]
    every = resolve(codes("WARNCELLID", *sorted(registry().gemeinde_cells(LD))), LD)
    assert dict((h.ars, h.coverage) for h in every.regions)[LD] == "full"


def test_kreis_code_and_unresolvable_codes() -> None:
    res = resolve(codes("WARNCELLID", "103354000", "501000001", "999999999"), LD)
    assert kreise(res) == [(LD, "full")]
    assert res.outside_share == pytest.approx(0.0, abs=1e-9) and res.basis == "area"
    assert res.unresolved == ("WARNCELLID=501000001 (coast)", "WARNCELLID=999999999 (unknown)")
    shared = resolve(codes("WARNCELLID", "903458999"), "034030000000")
    assert {h.ars for h in shared.regions} == {"034030000000", "034580000000"}
    assert any("shared" in n for n in shared.notes)


def test_nina_warnverwaltungsbereiche_parameter() -> None:
    doc = json.loads(NINA_HESSEN.read_text(encoding="utf-8"))
    info = doc["info"][0]
    listed = next(p["value"] for p in info["parameter"] if p["valueName"] == "warnVerwaltungsbereiche").split(",")
    assert len(listed) == 25
    area = Area(area_desc=info["area"][0]["areaDesc"], geocodes=(Value(value_name="AreaId", value="0"),))
    param = Info(parameters=(Value(value_name="warnVerwaltungsbereiche", value=",".join(listed)),), areas=(area,))
    res = resolve(param, LD)
    assert {h.ars for h in res.regions} == set(listed) and {h.coverage for h in res.regions} == {"full"}
    assert not res.inside_district and res.outside_share == 1.0
    assert any("AreaId" in n for n in res.notes)
    marburg = resolve(param, "065340000000")
    assert marburg.inside_district and 0.9 < marburg.outside_share < 0.99
    # with the message's own polygons (RFC 7946 lon,lat, turned into CAP lat,lon) the codes only mark what is touched
    shapes = json.loads(NINA_HESSEN.with_suffix(".geojson").read_text(encoding="utf-8"))
    rings = tuple(tuple((lat, lon) for lon, lat in f["geometry"]["coordinates"][0]) for f in shapes["features"])
    with_polygons = Info(parameters=param.parameters, areas=(Area(area_desc="Land Hessen", polygons=rings),))
    res = resolve(with_polygons, "065340000000")
    full = {h.ars for h in res.regions if h.coverage == "full"}
    assert full == set(listed)  # NINA's Kreis polygons cover DWD's Kreise to 98-100 %
    assert "064310000000" not in {h.ars for h in res.regions}  # Bergstraße: unlisted, only a 1.4 % border sliver
    assert res.inside_district and 0.9 < res.outside_share < 0.99


# -- DWD corpus files -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", DWD_CHAIN, ids=lambda p: p.stem)
def test_dwd_files_resolve_by_warncell(path: Path, reg: Registry) -> None:
    alert = parse(path.read_bytes()).alert
    cells = [g.value for i in alert.infos for a in i.areas for g in a.geocodes if g.value_name == "WARNCELLID"]
    assert len(cells) > 700
    res = resolve(alert, LD)
    hits = {h.ars: h for h in res.regions}
    kreise = {c[1:6] + "0000000" for c in cells}  # Kreis from the cell ID's digits 2-6
    assert kreise <= set(hits)
    for cid in cells:
        gemeinde = reg.warncell(cid).gemeinde  # type: ignore[union-attr]
        if gemeinde:
            assert hits[gemeinde].coverage == "full"
    assert hits["059740024024"].name == "Lippetal" and hits["059740000000"].name == "Kreis Soest"
    extra_kreise = {a for a, h in hits.items() if h.level == "kreis"} - kreise
    assert len(extra_kreise) <= 2  # the event polygon touches hardly anything the cells do not name
    assert not res.inside_district and res.outside_share == 1.0
    # Gemeinde Sien (Kreis Birkenfeld) is named by its cell but lies outside the event polygon
    assert res.notes in ((), ("1 geocode(s) without a boundary and outside the measured shapes: not measured",))
    soest = resolve(alert, "059740000000")
    assert soest.inside_district and 0 < soest.outside_share < 1


def test_mul_alert_resolves_once_per_area() -> None:
    alert = parse((DATA / "cap" / "de_dwd_brightsky_MUL_1687511640000_0d1a4fb5.xml").read_bytes()).alert
    assert len(alert.infos) == 8
    res = resolve(alert, LD)
    assert [(h.ars, h.coverage) for h in res.regions if h.level == "gemeinde"] == [
        ("120630189189", "full"), ("120695902018", "full"), ("120695902270", "full")]


def test_far_away_alerts_lie_outside() -> None:
    alert = parse((DATA / "cap" / "au_nsw-rfs_google-testdata_australia.xml").read_bytes()).alert
    res = resolve(alert, LD)
    assert res.regions == () and not res.inside_district and res.outside_share == 1.0 and res.area_km2 > 0
    point = parse((DATA / "cap" / "oasis-spec_cap12_appendix_A3.xml").read_bytes()).alert  # radius 0
    assert resolve(point, LD).outside_share == 1.0


# -- CLI --------------------------------------------------------------------------------------------------------------


def test_cli_area_json(tmp_path: Path) -> None:
    path = DATA / "cap" / "de_dwd_wdr-unwetter_alert1_update3.xml"
    out = subprocess.run([sys.executable, "-m", "hub.cli", "area", "--json", str(path)], cwd=str(tmp_path),
                         env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert list(doc) == ["alert", "regions", "inside_district", "outside_share"]
    assert doc["alert"].startswith("CAP@dwd.de/2.49.0.1.276.0.DWD.PVW.")
    assert {"ars": "059740000000", "name": "Kreis Soest", "coverage": "partial"} in doc["regions"]
    assert doc["inside_district"] is False and doc["outside_share"] == 1.0
    text = subprocess.run([sys.executable, "-m", "hub.cli", "--config", str(REPO / "config.toml"), "area",
                           str(path)], cwd=str(tmp_path), env=subprocess_env(), capture_output=True, text=True,
                          timeout=120)
    assert text.returncode == 0, text.stderr
    assert "district  033540000000 Kreis Lüchow-Dannenberg: not touched" in text.stdout


def test_equal_area_projection_round_trips() -> None:
    """Invariant: unproject(project(g)) is g to well below a metre anywhere in Germany (the hub stores areas it
    computed in metres as lon/lat)."""
    import numpy as np

    rng = np.random.default_rng(7)
    pts = np.column_stack((rng.uniform(5.8, 15.1, 1000), rng.uniform(47.2, 55.1, 1000)))
    back = GERMANY.inverse(GERMANY.forward(pts))
    assert np.abs(back - pts).max() < 1e-7  # degrees: about a centimetre
    assert not np.allclose(GERMANY.forward(pts), pts)
