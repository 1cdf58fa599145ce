"""The NINA source: every NINA shape converts to XSD-valid CAP 1.2 (identity, coordinates, languages, text,
references, ARS, GeoJSON), and the polling source against a local replay server and a real hub: district filter,
no repeated work for unchanged lists, updates, ending only after complete fetches, broken and hostile input, and one
thread for a DWD warning that arrives directly and through NINA. Test data: tests/data/nina/README.md."""

from __future__ import annotations

import copy
import html
import json
import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from adapters.sources.nina import NinaSource, parse_list
from adapters.sources.nina_convert import NinaFormatError, convert_payload, convert_warning, warning_ars
from adapters.sources.nina_fields import (
    GERMANY_BBOX,
    _berlin_offset,
    _Notes,
    html_to_text,
    normalise_language,
    polygon_from_nina,
    strip_prefix,
)
from adapters.sources.nina_refs import repair_references
from adapters.sources.polling import Http
from adapters.sources.weblink import split_web
from hub.cap.model import Alert, Category, Certainty, Reference, ResponseType, Scope, Urgency
from hub.cap.parse import is_language_tag
from hub.cap.serialize import to_xml
from hub.cap.sign import SignaturePolicy
from hub.cap.validate import Validator, Verdict, schema_errors
from hub.config.sections import NinaSourceConfig
from hub.geo.registry import ars_prefix, ars_related
from hub.ports import Converted
from tests.kits import paths
from tests.kits.sourcekit import HubKit, ReplayServer

DATA = paths.DATA / "nina"
DWD_CAP = paths.DATA / "cap" / "de_dwd_kweathercore_update-MUL.xml"
FPAS = "mow.DE-HE-KS-SE106-20250313-106-001"
CORONA = "mow.DE-BW-S-SE018-20211102-18-001"
DWDLIKE = "mow.DE-NW-BN-SE030-20201014-30-000"
BIW = "biw.BIWAPP-69634"
DISTRICT = "033540000000"  # HubKit's district (Lüchow-Dannenberg)
STORE = "\n[store]\nmax_age_without_expires_h = 0\n"  # the samples are years old: no ending by age here
MARKUP = re.compile(r"<[A-Za-z/!]|&[A-Za-z]+;|&#\d")


def read(name: str) -> bytes:
    return (DATA / name).read_bytes()


def ha() -> dict[str, dict[str, Any]]:
    return json.loads(read("ha_nina_sample_warning_details.json"))


def fpas() -> dict[str, Any]:
    return json.loads(read(f"fpas_{FPAS}.json"))


def enc(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def in_germany(lat: float, lon: float) -> bool:
    lat0, lat1, lon0, lon1 = GERMANY_BBOX
    return lat0 <= lat <= lat1 and lon0 <= lon <= lon1


def check_cap(conv: Converted) -> Alert:
    """The alert as the hub would store it: CAP 1.2, schema-valid, (lat, lon) in Germany, plain text, aware times."""
    raw = to_xml(conv.alert)
    report = Validator().check(raw)
    assert report.verdict is not Verdict.REJECTED, report.errors
    assert report.cap_version == "1.2"
    assert not [e for e in report.errors if e.startswith("schema")], report.errors
    alert = report.alert
    assert alert is not None and alert.key() == conv.alert.key()
    assert alert.sent.tzinfo is not None
    for info in alert.infos:
        assert info.language and is_language_tag(info.language)
        for when in (info.effective, info.onset, info.expires):
            assert when is None or when.tzinfo is not None
        for text in (info.description, info.instruction, info.headline, info.event):
            assert not (text and MARKUP.search(text)), text
        for area in info.areas:
            for ring in area.polygons:
                assert len(ring) >= 4 and ring[0] == ring[-1]
                assert all(in_germany(lat, lon) for lat, lon in ring), ring[:3]
    return alert


# -- converter ------------------------------------------------------------------------------------------------------

SAMPLES = {
    "fpas-detail": (f"fpas_{FPAS}.json", None, 1),
    "fpas-detail+geojson": (f"fpas_{FPAS}.json", f"fpas_{FPAS}.geojson", 1),
    "ha-details-by-id": ("ha_nina_sample_warning_details.json", None, 3),
    "ha-dashboard": ("ha_nina_sample_warnings_dashboard.json", None, 2),
    "derived-mowas-mapData": ("derived_mowas_mapData.json", None, 3),
    "derived-biwapp-mapData": ("derived_biwapp_mapData.json", None, 1),
    "derived-bbk-list": ("derived_bbk_mowas_gefahrendurchsagen.json", None, 1),
    "derived-web-fields": ("derived_web_fields.json", None, 3),
}


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_every_sample_converts_to_valid_cap12(sample: str) -> None:
    name, shapes, count = SAMPLES[sample]
    convs = convert_payload(read(name), geojson=read(shapes) if shapes else None)
    assert len(convs) == count
    for conv in convs:
        check_cap(conv)
        summary = any("summary" in n for n in conv.notes)
        assert summary == ("mapData" in name or "dashboard" in name)
        if summary:
            assert conv.alert.note and "summary" in conv.alert.note


def _absolute_http(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and uri.isascii() and " " not in uri


def test_every_nina_payload_in_the_folder_converts_to_xsd_valid_cap() -> None:
    """Every JSON payload in tests/data/nina (with its .geojson where there is one, and without), not a list in
    the test: XSD-valid CAP 1.2, and each ``web`` an absolute http(s) URI (the XSD's anyURI lets prose through)."""
    payloads = sorted(DATA.glob("*.json"))
    assert {p.name for p in payloads} >= {name for name, _shapes, _count in SAMPLES.values()}
    for path in payloads:
        shapes = path.with_suffix(".geojson")
        for geojson in [None, shapes.read_bytes()] if shapes.exists() else [None]:
            convs = convert_payload(path.read_bytes(), geojson=geojson)
            assert convs, path.name
            for conv in convs:
                root = etree.fromstring(to_xml(conv.alert))
                assert schema_errors(root, "1.2") == [], (path.name, conv.alert.identifier)
                check_cap(conv)
                for info in conv.alert.infos:
                    assert info.web is None or _absolute_http(info.web), (path.name, info.web)


def _web_case(seq: str) -> tuple[Converted, str]:
    """A derived_web_fields.json warning converted, and the description the original (URI in web) converts to."""
    web = json.loads(read("derived_web_fields.json"))[f"mow.DE-NW-BN-SE030-20201014-30-{seq}"]
    original = convert_warning(ha()[DWDLIKE]).alert.infos[0]
    assert original.web == "https://www.wettergefahren.de" and original.description
    return convert_warning(web), original.description


def test_web_prose_gives_up_its_link_and_keeps_its_text_in_the_description() -> None:
    conv, description = _web_case("901")
    info = check_cap(conv).infos[0]
    assert info.web == "https://www.wettergefahren.de"
    prose = "Aktuelle Informationen unter https://www.wettergefahren.de und im Radio."
    assert info.description == f"{description}\n\n{prose}"
    assert any("not a URI" in n for n in conv.notes) and any("moved to the description" in n for n in conv.notes)


def test_web_anchor_gives_its_href() -> None:
    conv, description = _web_case("902")
    info = check_cap(conv).infos[0]
    assert info.web == "https://www.wettergefahren.de/warnungen/"
    assert info.description == description  # the anchor's label alone says nothing the link does not
    assert any("not a URI" in n for n in conv.notes)


def test_web_prose_without_a_link_moves_to_the_description() -> None:
    conv, description = _web_case("903")
    info = check_cap(conv).infos[0]
    assert info.web is None
    assert info.description == description + "\n\nAktuelle Informationen im Radio und in den Medien."


@pytest.mark.parametrize(("given", "web", "text"), [
    ("https://www.example.de/a?b=1", "https://www.example.de/a?b=1", None),
    ("www.example.de", "https://www.example.de", None),
    ("Siehe www.example.de/info.", "https://www.example.de/info", "Siehe www.example.de/info."),
    ("<a href='https://a.example.de/p'>hier</a>", "https://a.example.de/p", None),
    ("&lt;a href=&quot;https://a.example.de/&quot;&gt;Stadt&lt;/a&gt;", "https://a.example.de/", None),
    ("Infos: <a href=\"https://a.example.de/p\">hier</a> und im Radio", "https://a.example.de/p",
     "Infos: hier und im Radio"),
    ('<a href="javascript:alert(1)">Klick</a>', None, "Klick"),
    ("https://münchen.de/straße", "https://xn--mnchen-3ya.de/stra%C3%9Fe", None),
    ("Radio", None, "Radio"),
    ("  ", None, None),
], ids=["uri", "www", "prose-www", "anchor", "escaped-anchor", "anchor-in-prose", "javascript", "idna", "no-link",
        "blank"])
def test_split_web(given: str, web: str | None, text: str | None) -> None:
    assert split_web(given, html_to_text) == (web, text)


def test_nina_prefixes_are_stripped_from_identifiers_and_references() -> None:
    alert = convert_warning(fpas()).alert
    assert alert.key() == ("DE-HE-KS-SE106", "DE-HE-KS-SE106-20250313-106-001", alert.sent)
    assert alert.references == (Reference(sender="DE-HE-KS-SE106", identifier="DE-HE-KS-SE106-20250313-106-000",
                                          sent=datetime.fromisoformat("2025-03-13T09:15:06+00:00")),)
    assert [c.alert.identifier for c in convert_payload(read("ha_nina_sample_warning_details.json"))] == [
        "DE-BW-S-SE018-20211102-18-001", "DE-NW-BN-SE030-20201014-30-000", "BIWAPP-69634"]
    assert strip_prefix("dwd.2.49.0.0.276.0.DWD.PVW.1.x.MUL") == "2.49.0.0.276.0.DWD.PVW.1.x.MUL"
    assert strip_prefix("dwdmap.2.49.0.0.276.0.DWD.PVW.1.x.MUL") == "2.49.0.0.276.0.DWD.PVW.1.x.MUL"
    for kept in ("kat.0123456789abcdef01234567_public_topics", "lhp.HOCHWASSERZENTRALEN.DE.NI", "mow."):
        assert strip_prefix(kept) == kept


def test_languages_are_normalised() -> None:
    alert = convert_warning(fpas()).alert
    assert [i.language for i in alert.infos] == ["de-DE", "de-DE-x-ls", "en", "ar", "es", "fr", "pl", "ru", "tr"]
    cases = {"DE": "de-DE", "de-DE": "de-DE", "DE-DE": "de-DE", "DE-LS": "de-DE-x-ls", "EN": "en", "en-gb": "en-GB",
             "AR": "ar", "de_DE": "de-DE", "": None, "???": None, None: None}
    for raw, want in cases.items():
        assert normalise_language(raw) == want, raw
        assert want is None or is_language_tag(want)


def test_html_becomes_plain_text() -> None:
    de = convert_warning(fpas()).alert.infos[0]
    assert de.description == ('Dies ist die Entwarnung zur Warnung "Probealarm - Land Hessen" vom 13.03.2025 10:15:06 '
                              "gesendet durch LS Kassel, Land HE Red. (DEU, HE). Die Warnung ist aufgehoben.\n\n"
                              "Landesweiter Warntag in Hessen - hessenweiter Probealarm")
    assert de.instruction == "Informieren Sie sich in den Medien, zum Beispiel im Lokalradio.\nEs besteht keine Gefahr."
    biwapp = convert_warning(ha()[BIW]).alert.infos[0].description or ""
    assert "&nbsp;" not in biwapp and "<br>" not in biwapp and "ausgewiesen.\n\nDie Überwachungszone" not in biwapp
    assert "in Kraft.\n\nDie Überwachungszone" in biwapp
    assert html_to_text("<p>Eins</p><p>Zwei &amp; drei</p>") == "Eins\nZwei & drei"
    assert html_to_text("<ul><li>a</li><li>b</li></ul>") == "- a\n- b"
    assert html_to_text("&lt;b&gt;doppelt&lt;/b&gt; escaped") == "doppelt escaped"
    assert html_to_text("Böen <60 km/h, a < b & c") == "Böen <60 km/h, a < b & c"
    assert html_to_text("<br/> <br>") is None


def test_contact_and_area_desc_keep_their_line_breaks() -> None:
    """NINA's contact is HTML like the description (``<br/>`` between name, phone, address) and areaDesc may list
    areas one per line; both keep their lines as the description does, and the CAP stays schema-valid. Derived from
    the HA detail of mow.DE-NW-BN-SE030-20201014-30-000: contact and areaDesc replaced."""
    detail = copy.deepcopy(ha()[DWDLIKE])
    info = detail["info"][0]
    info["contact"] = "Kreisverwaltung Calw<br/>B&uuml;rgertelefon: 07051 160-0<br />Vogteistra&szlig;e 42, 75365 Calw"
    info["area"][0]["areaDesc"] = "Gemeinde Oberreichenbach,\r\nStadt  Nagold,\nStadt Neubulach"
    conv = convert_warning(detail)
    alert = check_cap(conv)
    de = alert.infos[0]
    assert de.contact == "Kreisverwaltung Calw\nBürgertelefon: 07051 160-0\nVogteistraße 42, 75365 Calw"
    assert de.areas[0].area_desc == "Gemeinde Oberreichenbach,\nStadt Nagold,\nStadt Neubulach"
    assert conv.alert.infos[0].contact == de.contact  # what the XML carried is what the converter made


def test_malformed_mowas_references_are_rebuilt_and_flagged() -> None:
    conv = convert_warning(ha()[CORONA])
    berlin_midnight = [("DE-NW-BN-SE030-20200506-30-001", "2020-05-06T00:00:00+02:00"),
                       ("DE-NW-BN-SE030-20200422-30-000", "2020-04-22T00:00:00+02:00"),
                       ("DE-NW-BN-SE030-20200420-30-001", "2020-04-20T00:00:00+02:00"),
                       ("DE-NW-BN-SE030-20200416-30-001", "2020-04-16T00:00:00+02:00"),
                       ("DE-NW-BN-SE030-20200403-30-000", "2020-04-03T00:00:00+02:00")]
    want = [Reference(sender="DE-NW-BN-SE030", identifier=i, sent=datetime.fromisoformat(s))
            for i, s in berlin_midnight]
    want.append(Reference(sender="DE-NW-BN-W003", identifier="DE-NW-BN-W003-20200403-000",
                          sent=datetime.fromisoformat("2020-04-03T00:00:00+00:00")))  # the one time given
    assert list(conv.alert.references) == want
    assert any("references were malformed" in n and "6 reference(s)" in n for n in conv.notes)
    assert any("sent time estimated for 5" in n for n in conv.notes)
    alert = check_cap(conv)
    assert alert.references == conv.alert.references


def test_reference_repairs_each_flagged_and_well_formed_ones_pass() -> None:
    sent = datetime.fromisoformat("2020-06-01T12:00:00+02:00")
    ok = ("DE-NW-BN-SE030,mow.DE-NW-BN-SE030-20200506-30-001,2020-05-06T10:00:00+02:00 "
          "opendata@dwd.de,x.1,2020-05-06T10:00:00+00:00")
    n = _Notes()
    refs = repair_references(ok, sender="DE-NW-BN-SE030", sent=sent, notes=n)
    assert [(r.sender, r.identifier) for r in refs] == [("DE-NW-BN-SE030", "DE-NW-BN-SE030-20200506-30-001"),
                                                        ("opendata@dwd.de", "x.1")]
    assert n.tuple() == ()
    n = _Notes()
    refs = repair_references("DE-NW,mow.DE-NW-BN-SE030-20200506-30-001,2020-05-06T10:00:00+02:00",
                             sender="DE-NW-BN-SE030", sent=sent, notes=n)
    assert refs[0].sender == "DE-NW-BN-SE030" and any("truncated sender" in x for x in n.tuple())
    n = _Notes()
    refs = repair_references("DE-NW-BN-SE030,mow.DE-NW-BN-SE030-20200506-30-001,66--T00:00:00+00:00",
                             sender="DE-NW-BN-SE030", sent=sent, notes=n)
    assert refs == (Reference(sender="DE-NW-BN-SE030", identifier="DE-NW-BN-SE030-20200506-30-001",
                              sent=datetime.fromisoformat("2020-05-06T00:00:00+02:00")),)
    assert any("66--T00:00:00+00:00" in x for x in n.tuple()) and any("estimated" in x for x in n.tuple())
    n = _Notes()  # BIWAPP: only space-separated ids
    refs = repair_references("biw.BIWAPP-1 biw.BIWAPP-2", sender="CAP@biwapp.de", sent=sent, notes=n)
    assert [(r.sender, r.identifier, r.sent) for r in refs] == [("CAP@biwapp.de", "BIWAPP-1", sent),
                                                                 ("CAP@biwapp.de", "BIWAPP-2", sent)]
    assert any("sender unknown for 2" in x for x in n.tuple())


def test_berlin_midnight_offset_matches_the_tz_database() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    day = date(2019, 1, 1)
    while day < date(2027, 1, 1):
        want = datetime(day.year, day.month, day.day, tzinfo=berlin).utcoffset()
        assert _berlin_offset(day).utcoffset(None) == want, day
        day += timedelta(days=1)


def test_ars_become_geocodes_on_every_area_and_the_parameter_stays() -> None:
    obj = fpas()
    ars = obj["info"][0]["parameter"][0]["value"].split(",")
    assert warning_ars(obj) == ars and len(ars) == 25
    alert = convert_warning(obj).alert
    for info in alert.infos:
        assert any(p.value_name == "warnVerwaltungsbereiche" and p.value.split(",") == ars for p in info.parameters)
        for area in info.areas:
            assert [g.value for g in area.geocodes if g.value_name == "ARS"] == ars
    corona = convert_warning(ha()[CORONA]).alert.infos[0].areas[0]
    assert "030000000000" in [g.value for g in corona.geocodes if g.value_name == "ARS"]
    assert warning_ars(ha()[BIW]) == []


def test_geojson_rings_go_to_their_areas_in_every_language() -> None:
    shapes = json.loads(read(f"fpas_{FPAS}.geojson"))
    conv = convert_warning(fpas(), geojson=shapes)
    alert = check_cap(conv)
    first = alert.infos[0].areas[0].polygons
    assert len(first) == 25
    lon, lat = shapes["features"][0]["geometry"]["coordinates"][0][0]
    assert first[0][0] == (lat, lon) == (50.937, 8.9742)
    for info in alert.infos[1:]:  # no AreaId in the other languages: the rings of the same position
        assert info.areas[0].polygons == first
    assert conv.notes == ()
    # holes, unmatched areas and other geometries are dropped and flagged
    ring = [[9.0, 50.0], [9.5, 50.0], [9.5, 50.5], [9.0, 50.5], [9.0, 50.0]]
    hole = [[9.1, 50.1], [9.2, 50.1], [9.2, 50.2], [9.1, 50.1]]
    odd = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"areaId": 0}, "geometry": {"type": "MultiPolygon",
                                                                      "coordinates": [[ring, hole], [ring]]}},
        {"type": "Feature", "properties": {"areaId": 7}, "geometry": {"type": "Polygon", "coordinates": [ring]}},
        {"type": "Feature", "properties": {"areaId": 0}, "geometry": {"type": "Point", "coordinates": [9, 50]}}]}
    conv = convert_warning(fpas(), geojson=odd)
    assert len(conv.alert.infos[0].areas[0].polygons) == 2
    notes = " | ".join(conv.notes)
    assert "1 hole(s) dropped" in notes and "areaId 7 match no area" in notes and "'Point'" in notes
    check_cap(conv)


def test_legacy_list_polygons_are_swapped_filtered_and_closed() -> None:
    [conv] = convert_payload(read("derived_bbk_mowas_gefahrendurchsagen.json"))
    shapes = json.loads(read(f"fpas_{FPAS}.geojson"))
    rings = conv.alert.infos[0].areas[0].polygons
    assert len(rings) == 25
    assert rings[0] == tuple((lat, lon) for lon, lat in shapes["features"][0]["geometry"]["coordinates"][0])
    assert any("1 bogus '-1.0,-1.0' point(s) dropped" in n for n in conv.notes)
    check_cap(conv)


def test_polygon_strings_edge_cases() -> None:
    n = _Notes()
    assert polygon_from_nina("8.0,50.0 9.0,50.0 9.0,51.0", n) == ((50.0, 8.0), (50.0, 9.0), (51.0, 9.0), (50.0, 8.0))
    assert polygon_from_nina("8.0,50.0 -1.0,-1.0 9.0,50.0", n) is None
    assert any("needs 4" in x for x in n.tuple())
    n = _Notes()
    assert polygon_from_nina("50.0,8.0 50.0,9.0 51.0,9.0 50.0,8.0", n) == (
        (50.0, 8.0), (50.0, 9.0), (51.0, 9.0), (50.0, 8.0))  # given as lat,lon: read that way, flagged
    assert any("lat,lon" in x for x in n.tuple())
    n = _Notes()
    assert polygon_from_nina("8.0,50.0 nine,50 9.0,51.0", n) is None and n.tuple()
    n = _Notes()
    paris = polygon_from_nina("2.35,48.85 2.4,48.85 2.4,48.9 2.35,48.85", n)
    assert paris is not None and any("outside Germany" in x for x in n.tuple())


def test_unknown_values_get_cap_defaults_with_notes() -> None:
    obj = {"identifier": "kat.0123456789abcdef01234567_public_topics", "sender": "CAP@katwarn.de",
           "sent": "2024-05-01T12:00:00", "status": "actual", "msgType": "Alert",
           "info": [{"language": "DE", "category": ["Weird", "Fire"], "event": "Brand", "urgency": "Soon",
                     "severity": "Severe", "headline": "Gro&szlig;brand", "responseType": ["Hide", "Shelter"],
                     "description": "Rauch<br>Fenster schlie&szlig;en",
                     "area": [{"areaDesc": "Ort", "polygon": ["9.1,52.1 9.2,52.1 9.2,52.2 9.1,52.2"]}]}]}
    conv = convert_warning(obj)
    alert = check_cap(conv)
    info = alert.infos[0]
    assert alert.identifier == obj["identifier"] and alert.scope is Scope.PUBLIC
    assert alert.sent.isoformat() == "2024-05-01T12:00:00+02:00"
    assert info.categories == (Category.OTHER, Category.FIRE) and info.urgency is Urgency.UNKNOWN
    assert info.certainty is Certainty.UNKNOWN and info.response_types == (ResponseType.SHELTER,)
    assert info.headline == "Großbrand" and info.description == "Rauch\nFenster schließen"
    notes = " | ".join(conv.notes)
    for flag in ("'Weird' unknown", "'Soon' unknown", "certainty missing", "scope missing", "'Hide' unknown",
                 "no UTC offset"):
        assert flag in notes


def test_garbage_payloads_are_refused() -> None:
    for body in (b"not json", b"42", b'{"a": 1}', b'[{"x": 1}]', b"[" * 100_000, b"\xff\xfe"):
        with pytest.raises(NinaFormatError):
            convert_payload(body)
    for obj in ({"identifier": "mow.x", "info": []}, {"sent": "2024-01-01T00:00:00+01:00"}, ["x"]):
        with pytest.raises(NinaFormatError):
            convert_warning(obj)  # type: ignore[arg-type]


def test_ars_levels() -> None:
    assert ars_prefix(DISTRICT) == "03354" and ars_prefix("051100000000") == "05110"
    assert ars_prefix("030000000000") == "03" and ars_prefix("031000000000") == "031"
    assert ars_prefix("000000000000") == "" and ars_prefix("033540012345") == "033540012345"
    for other, related in (("033540000000", True), ("030000000000", True), ("033540012345", True),
                           ("033540012000", True), ("000000000000", True), ("033550000000", False),
                           ("031000000000", False), ("064360000000", False)):
        assert ars_related(other, DISTRICT) is related, other


# -- the source against a replay server and a real hub ------------------------------------------------------------

def nina(kit: HubKit, srv: ReplayServer, **settings: Any) -> NinaSource:
    settings.setdefault("feeds", ["mowas"])
    settings.setdefault("dashboard_ars", [])
    settings.setdefault("timeout_s", 2.0)
    cfg = NinaSourceConfig(name="nina", base_url=srv.url("/api31"), **settings)
    src = NinaSource(cfg, kit.loaded)
    assert kit.session is not None
    src.http = Http(kit.session, timeout_s=cfg.timeout_s, max_bytes=cfg.max_bytes)
    return src


async def poll(src: NinaSource, kit: HubKit) -> list[str] | None:
    return await src.poll_once(kit.context("nina", "nina"))


def serve_detail(srv: ReplayServer, wid: str, obj: Any, shapes: Any = None) -> None:
    srv.set(f"/api31/warnings/{wid}.json", obj if isinstance(obj, bytes) else enc(obj))
    srv.set(f"/api31/warnings/{wid}.geojson", enc(shapes or {"type": "FeatureCollection", "features": []}))


def serve_samples(srv: ReplayServer) -> None:
    details = ha()
    for wid in (CORONA, DWDLIKE, BIW):
        serve_detail(srv, wid, details[wid])
    serve_detail(srv, FPAS, read(f"fpas_{FPAS}.json"), json.loads(read(f"fpas_{FPAS}.geojson")))


def detail_hits(srv: ReplayServer) -> int:
    return sum(n for path, n in srv.hits.items() if path.startswith("/api31/warnings/"))


def local_warning() -> dict[str, Any]:
    """DERIVED from the HA MoWaS detail: another MoWaS warning, for our district only, no references, no expires."""
    obj = copy.deepcopy(ha()[CORONA])
    obj.update(identifier="mow.DE-NI-DAN-SE001-20240102-1-000", sender="DE-NI-DAN-SE001", msgType="Alert",
               sent="2024-01-02T08:00:00+01:00")
    del obj["references"]
    for p in obj["info"][0]["parameter"]:
        if p["valueName"] == "warnVerwaltungsbereiche":
            p["value"] = DISTRICT
    return obj


LOCAL = "mow.DE-NI-DAN-SE001-20240102-1-000"


def thread_of(kit: HubKit, identifier: str) -> int:
    return next(t.id for t in kit.store.threads(include_ended=True) if t.current_identifier == identifier)


async def test_poll_keeps_the_district_and_skips_the_rest_by_ars(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path, STORE) as kit:
        serve_samples(srv)
        srv.set("/api31/mowas/mapData.json", read("derived_mowas_mapData.json"))
        srv.set("/api31/biwapp/mapData.json", read("derived_biwapp_mapData.json"))
        src = nina(kit, srv, feeds=["mowas", "biwapp"])
        assert await poll(src, kit) == []
        assert kit.hub.health.state("nina") == "up"
        threads = kit.store.threads(include_ended=True)
        # the corona notice names every Land (030000000000 covers us); Hessen's does not; two name no ARS at all
        assert [(t.sender, t.current_identifier) for t in threads] == [("DE-NW-BN-SE030",
                                                                        "DE-BW-S-SE018-20211102-18-001")]
        assert kit.store.counts()["alerts"] == 1 and kit.store.counts()["rejections"] == 0
        assert src.skipped_without_ars == 2
        assert all(srv.hits[f"/api31/warnings/{w}.json"] == 1 for w in (CORONA, FPAS, DWDLIKE, BIW))
        assert srv.hits[f"/api31/warnings/{CORONA}.geojson"] == 1
        assert srv.hits[f"/api31/warnings/{FPAS}.geojson"] == 0  # not ours: no polygons fetched
        assert kit.store.presence("nina") == {"DE-NW-BN-SE030/DE-BW-S-SE018-20211102-18-001": 0}
        stored = kit.store.current_alert(threads[0].id)
        assert stored is not None and len(stored.references) == 6
        assert "030000000000" in [g.value for g in stored.infos[0].areas[0].geocodes if g.value_name == "ARS"]
        verdict, flags = kit.store.conn.execute("SELECT verdict, flags FROM alerts").fetchone()
        assert verdict == "accepted" and "references were malformed" in flags


async def test_unchanged_lists_cost_no_details_and_a_new_version_is_stored_in_the_same_thread(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path, STORE) as kit:
        serve_samples(srv)
        items = json.loads(read("derived_mowas_mapData.json"))
        srv.set("/api31/mowas/mapData.json", enc(items))
        src = nina(kit, srv)
        assert await poll(src, kit) == []
        fetched = detail_hits(srv)
        assert fetched == 4  # three details and the corona GeoJSON
        # unchanged: the list answers 304, nothing else is asked
        assert await poll(src, kit) == []
        assert srv.not_modified["/api31/mowas/mapData.json"] == 1 and detail_hits(srv) == fetched
        # a changed list with the same versions: read in full, still no detail
        items[0]["i18nTitle"]["de"] += " (neu formuliert)"
        srv.set("/api31/mowas/mapData.json", enc(items))
        assert await poll(src, kit) == []
        assert srv.hits["/api31/mowas/mapData.json"] == 3 and detail_hits(srv) == fetched
        # a new version of the corona notice: its detail (and GeoJSON) only
        v2 = ha()[CORONA]
        v2.update(sent="2021-11-03T08:00:00+01:00",
                  references="DE-NW-BN-SE030,mow.DE-BW-S-SE018-20211102-18-001,2021-11-02T20:07:16+01:00")
        v2["info"][0]["headline"] = "Corona-Verordnung: Warnstufe bleibt"
        serve_detail(srv, CORONA, v2)
        items[0]["version"] = 2
        srv.set("/api31/mowas/mapData.json", enc(items))
        assert await poll(src, kit) == []
        assert srv.hits[f"/api31/warnings/{CORONA}.json"] == 2 and detail_hits(srv) == fetched + 2
        [thread] = kit.store.threads(include_ended=True)
        assert thread.versions == 2 and thread.headline == "Corona-Verordnung: Warnstufe bleibt"
        # and the same version listed again costs nothing
        assert await poll(src, kit) == []
        assert detail_hits(srv) == fetched + 2


@pytest.mark.parametrize("failure", ["500", "truncated", "timeout"])
async def test_a_vanished_warning_ends_only_after_n_complete_fetches(tmp_path: Path, failure: str) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path, STORE) as kit:
        details = ha()
        serve_detail(srv, CORONA, details[CORONA])
        serve_detail(srv, LOCAL, local_warning())
        both = enc([{"id": CORONA, "version": 1}, {"id": LOCAL, "version": 1}])
        one = enc([{"id": CORONA, "version": 1}])
        lst = "/api31/mowas/mapData.json"
        srv.set(lst, both)
        src = nina(kit, srv, geojson=False, missing_fetches_to_end=2, timeout_s=0.5)
        assert await poll(src, kit) == []
        local = thread_of(kit, "DE-NI-DAN-SE001-20240102-1-000")
        assert kit.store.thread(local).state == "active"  # type: ignore[union-attr]
        srv.set(lst, one)  # gone from the list: one miss
        assert await poll(src, kit) == []
        assert kit.store.thread(local).state == "active"  # type: ignore[union-attr]
        assert kit.store.presence("nina")["DE-NI-DAN-SE001/DE-NI-DAN-SE001-20240102-1-000"] == 1
        if failure == "500":
            srv.set(lst, status=500)
        elif failure == "truncated":
            changed = one + b" "  # another body (the same one would be answered 304 before the cut)
            srv.set(lst, changed, truncate_to=len(changed) // 2)
        else:
            srv.set(lst, one, delay_s=2)
        assert await poll(src, kit) is None  # a failed fetch: down, and it ends nothing
        assert kit.hub.health.state("nina") == "down"
        assert kit.store.thread(local).state == "active"  # type: ignore[union-attr]
        assert kit.store.presence("nina")["DE-NI-DAN-SE001/DE-NI-DAN-SE001-20240102-1-000"] == 1
        srv.set(lst, one)
        assert await poll(src, kit) == []  # the second complete fetch without it
        assert kit.hub.health.state("nina") == "up"
        assert kit.store.thread(local).state == "ended"  # type: ignore[union-attr]
        assert kit.store.thread(thread_of(kit, "DE-BW-S-SE018-20211102-18-001")).state == "updated"  # type: ignore[union-attr]


async def test_a_broken_detail_degrades_the_source_and_the_rest_is_stored(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path, STORE) as kit:
        serve_detail(srv, CORONA, ha()[CORONA])
        good = enc(local_warning())
        serve_detail(srv, LOCAL, good[: len(good) // 2])  # cut off mid-way: not JSON
        srv.set("/api31/mowas/mapData.json", enc([{"id": CORONA, "version": 1}, {"id": LOCAL, "version": 1}]))
        src = nina(kit, srv, geojson=False)
        problems = await poll(src, kit)
        assert problems and len(problems) == 1 and LOCAL in problems[0] and "not JSON" in problems[0]
        assert kit.hub.health.state("nina") == "degraded"
        assert [t.current_identifier for t in kit.store.threads()] == ["DE-BW-S-SE018-20211102-18-001"]
        assert kit.store.presence("nina") == {}  # incomplete: nothing reported as the current set
        serve_detail(srv, LOCAL, good)
        assert await poll(src, kit) == []
        assert kit.hub.health.state("nina") == "up"
        assert len(kit.store.threads()) == 2 and len(kit.store.presence("nina")) == 2
        assert srv.hits[f"/api31/warnings/{LOCAL}.json"] == 2 and srv.hits[f"/api31/warnings/{CORONA}.json"] == 1


GARBAGE = {
    "html": b"<html><body>502 Bad Gateway</body></html>",
    "empty": b"",
    "object": b'{"warnings": []}',
    "numbers": b"[1, 2, 3]",
    "no-id": b'[{"version": 1}]',
    "path-id": b'[{"id": "../../../etc/passwd", "version": 1}]',
    "query-id": b'[{"id": "x?y=1", "version": 1}]',
    "deep": b"[" * 100_000,
    "not-utf8": b"\xff\xfe[\x00",
}


@pytest.mark.parametrize("case", list(GARBAGE))
async def test_garbage_lists_mark_the_source_down_without_crashing(tmp_path: Path, case: str) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path, STORE) as kit:
        srv.set("/api31/mowas/mapData.json", GARBAGE[case])
        src = nina(kit, srv)
        assert await poll(src, kit) is None
        assert kit.hub.health.state("nina") == "down"
        assert "no NINA list could be read" in kit.hub.health.sources["nina"].last_error
        assert kit.store.counts()["alerts"] == 0 and detail_hits(srv) == 0


async def test_one_garbage_list_among_good_ones_degrades(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path, STORE) as kit:
        serve_samples(srv)
        srv.set("/api31/mowas/mapData.json", GARBAGE["html"])
        srv.set(f"/api31/dashboard/{DISTRICT}.json", read("ha_nina_sample_warnings_dashboard.json"))
        src = nina(kit, srv, dashboard_ars=None)  # default: the hub's district
        problems = await poll(src, kit)
        assert problems and "mapData.json" in problems[0]
        assert kit.hub.health.state("nina") == "degraded"
        assert len(kit.store.threads(include_ended=True)) == 2
        assert kit.store.presence("nina") == {}


async def test_dashboard_warnings_are_kept_without_ars(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path, STORE) as kit:
        serve_samples(srv)
        board = json.loads(read("ha_nina_sample_warnings_dashboard.json"))
        path = f"/api31/dashboard/{DISTRICT}.json"
        srv.set(path, enc(board))
        src = nina(kit, srv, feeds=[], dashboard_ars=None)
        assert await poll(src, kit) == []
        keys = sorted((t.sender, t.current_identifier) for t in kit.store.threads(include_ended=True))
        # the second names no ARS at all (its DWD-style content came with a mow. id): the server filtered for us
        assert keys == [("DE-NW-BN-SE030", "DE-BW-S-SE018-20211102-18-001"),
                        ("opendata@dwd.de", "DE-NW-BN-SE030-20201014-30-000")]
        fetched = detail_hits(srv)
        assert await poll(src, kit) == [] and detail_hits(srv) == fetched and srv.not_modified[path] == 1
        board[1]["payload"]["hash"] = "0" * 64  # a changed hash: that warning only is fetched again
        srv.set(path, enc(board))
        assert await poll(src, kit) == []
        assert srv.hits[f"/api31/warnings/{DWDLIKE}.json"] == 2 and srv.hits[f"/api31/warnings/{CORONA}.json"] == 1


async def test_geojson_polygons_are_stored_for_a_dashboard_warning(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path, STORE) as kit:
        serve_samples(srv)
        kassel = "066330000000"
        board = [{"id": FPAS, "payload": {"version": 1, "type": "ALERT", "id": FPAS, "hash": "a1",
                                          "data": {"headline": "Entwarnung: Probealarm - Land Hessen",
                                                   "provider": "MOWAS", "severity": "Extreme", "msgType": "Cancel"}},
                  "i18nTitle": {"de": "Entwarnung: Probealarm - Land Hessen"}, "sent": "2025-03-13T10:50:25+01:00"}]
        srv.set(f"/api31/dashboard/{kassel}.json", enc(board))
        src = nina(kit, srv, feeds=[], dashboard_ars=[kassel])
        assert await poll(src, kit) == []
        assert srv.hits[f"/api31/warnings/{FPAS}.geojson"] == 1
        [thread] = kit.store.threads(include_ended=True)
        assert thread.state == "cancelled" and thread.sender == "DE-HE-KS-SE106"
        alert = kit.store.current_alert(thread.id)
        assert alert is not None and len(alert.infos) == 9
        for info in alert.infos:
            rings = info.areas[0].polygons
            assert len(rings) == 25 and all(in_germany(lat, lon) for ring in rings for lat, lon in ring)


async def test_legacy_list_is_filtered_by_ars_and_needs_no_detail(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path, STORE) as kit:
        legacy = json.loads(read("derived_bbk_mowas_gefahrendurchsagen.json"))
        path = "/bbk.mowas/gefahrendurchsagen.json"
        srv.set(path, enc(legacy))
        src = nina(kit, srv, feeds=[], legacy_urls=[srv.url(path)])
        assert await poll(src, kit) == []
        assert kit.store.counts()["alerts"] == 0 and detail_hits(srv) == 0  # Hessen only
        legacy[0]["info"][0]["parameter"][0]["value"] += "," + DISTRICT  # now it names us too
        srv.set(path, enc(legacy))
        assert await poll(src, kit) == []
        [thread] = kit.store.threads(include_ended=True)
        alert = kit.store.current_alert(thread.id)
        assert alert is not None
        rings = alert.infos[0].areas[0].polygons
        assert len(rings) == 25 and all(in_germany(lat, lon) for ring in rings for lat, lon in ring)
        flags = kit.store.conn.execute("SELECT flags FROM alerts").fetchone()[0]
        assert "-1.0,-1.0" in flags
        assert detail_hits(srv) == 0


# -- one warning, two ways in ---------------------------------------------------------------------------------------

def cap_to_nina(alert: Alert) -> dict[str, Any]:
    """A CAP alert the way NINA serves a DWD warning: ``dwd.`` prefixes, uppercase language, HTML line breaks and
    entities, polygon strings ``lon,lat``, lists for category, responseType and code."""
    def pairs(values: Any) -> list[dict[str, str]]:
        return [{"valueName": v.value_name, "value": v.value} for v in values]

    def text(value: str | None) -> str | None:
        return html.escape(value).replace("\n", "<br/>") if value is not None else None

    infos = []
    for info in alert.infos:
        item: dict[str, Any] = {
            "language": (info.language or "en-US").upper(), "category": [c.value for c in info.categories],
            "event": info.event, "responseType": [r.value for r in info.response_types],
            "urgency": info.urgency.value, "severity": info.severity.value, "certainty": info.certainty.value,
            "eventCode": pairs(info.event_codes),
            **{k: v.isoformat() for k, v in (("effective", info.effective), ("onset", info.onset),
                                             ("expires", info.expires)) if v is not None},
            "senderName": info.sender_name, "headline": info.headline, "description": text(info.description),
            "instruction": text(info.instruction), "web": info.web, "contact": info.contact,
            "parameter": pairs(info.parameters),
            "area": [{"areaDesc": a.area_desc,
                      "polygon": [" ".join(f"{lon},{lat}" for lat, lon in ring) for ring in a.polygons],
                      "geocode": pairs(a.geocodes), "altitude": a.altitude, "ceiling": a.ceiling}
                     for a in info.areas],
        }
        infos.append({k: v for k, v in item.items() if v is not None})
    return {"identifier": "dwd." + alert.identifier, "sender": alert.sender, "sent": alert.sent.isoformat(),
            "status": alert.status.value, "msgType": alert.msg_type.value, "source": alert.source,
            "scope": alert.scope.value, "code": list(alert.codes),
            "references": " ".join(f"{r.sender},dwd.{r.identifier},{r.sent.isoformat()}" for r in alert.references),
            "info": infos}


async def test_dwd_direct_and_through_nina_is_one_thread_with_one_version(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path, STORE) as kit:
        direct = await kit.hub.intake.ingest(DWD_CAP.read_bytes(), origin="dwd", policy=SignaturePolicy.IGNORE)
        assert direct.outcome == "new" and direct.report.alert is not None
        detail = cap_to_nina(direct.report.alert)
        conv = convert_warning(detail)
        assert conv.alert.key() == direct.report.alert.key()
        assert conv.alert.references == direct.report.alert.references
        assert conv.alert.infos[0].description == direct.report.alert.infos[0].description
        # through the source: DWD's mapData names no ARS, but the hub holds the warning, so it is judged ours
        map_id = "dwdmap." + direct.report.alert.identifier
        srv.set("/api31/dwd/mapData.json", enc([{"id": map_id, "version": 1, "startDate": detail["sent"],
                                                 "severity": "Moderate", "type": "Update",
                                                 "i18nTitle": {"de": "Amtliche WARNUNG vor STARKEM GEWITTER"}}]))
        srv.set(f"/api31/warnings/{map_id}.json", enc(detail))
        src = nina(kit, srv, feeds=["dwd"], geojson=False)
        assert await poll(src, kit) == []
        assert srv.hits[f"/api31/warnings/{map_id}.json"] == 1
        [thread] = kit.store.threads(include_ended=True)
        assert thread.versions == 1 and kit.store.counts()["alerts"] == 1
        assert [v["origin"] for v in kit.store.versions(thread.id)] == ["dwd"]
        assert kit.store.presence("nina") == {f"opendata@dwd.de/{direct.report.alert.identifier}": 0}
        again = await kit.hub.intake.ingest_alert(conv.alert, origin="nina", notes=conv.notes)
        assert again.outcome == "duplicate" and again.thread_id == thread.id


async def test_nina_first_then_dwd_direct_is_a_duplicate(tmp_path: Path) -> None:
    async with HubKit(tmp_path, STORE) as kit:
        alert = Validator().check(DWD_CAP.read_bytes()).alert
        assert alert is not None
        conv = convert_warning(cap_to_nina(alert))
        first = await kit.hub.intake.ingest_alert(conv.alert, origin="nina", notes=conv.notes)
        assert first.outcome == "new"
        second = await kit.hub.intake.ingest(DWD_CAP.read_bytes(), origin="dwd", policy=SignaturePolicy.IGNORE)
        assert second.outcome == "duplicate" and second.thread_id == first.thread_id


def test_parse_list_versions() -> None:
    board = parse_list("dashboard", read("ha_nina_sample_warnings_dashboard.json"))
    assert [(i.id, i.filtered) for i in board] == [(CORONA, True), (DWDLIKE, True)]
    assert board[0].version == "dashboard:1:cae97b1c11bde900017305f681904ad5a6e8fd1c841241ced524b83eaa3522f4"
    mapped = parse_list("map", read("derived_mowas_mapData.json"))
    assert [i.version for i in mapped] == ["map:1", "map:2", "map:1"] and not any(i.filtered for i in mapped)
    [legacy] = parse_list("legacy", read("derived_bbk_mowas_gefahrendurchsagen.json"))
    assert legacy.id == FPAS and legacy.warning is not None and legacy.version.startswith("legacy:")
