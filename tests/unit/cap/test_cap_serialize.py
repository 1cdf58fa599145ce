"""hub.cap.serialize and the JSON form: CAP 1.2 XML that passes the XSD and loses nothing; CAP-named JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from hub.cap import model, serialize
from hub.cap.model import Alert
from hub.cap.parse import parse
from hub.cap.validate import schema_errors
from tests.kits import paths

DATA = paths.DATA
READABLE = sorted((DATA / "cap").glob("*.xml")) + sorted((DATA / "cap_legacy").glob("*.xml"))
CAP12_NS = "urn:oasis:names:tc:emergency:cap:1.2"


def _ids(paths: list[Path]) -> list[str]:
    return [f"{p.parent.name}/{p.name}" for p in paths]


def _times(alert: Alert) -> Iterator[tuple[str, str]]:
    """Every time in the alert as written (isoformat keeps the UTC offset; == on datetimes ignores it)."""
    yield "sent", alert.sent.isoformat()
    for ref in alert.references:
        yield f"references {ref.identifier}", ref.sent.isoformat()
    for i, info in enumerate(alert.infos):
        for name in ("effective", "onset", "expires"):
            value: datetime | None = getattr(info, name)
            if value is not None:
                yield f"info[{i}].{name}", value.isoformat()


@pytest.mark.parametrize("path", READABLE, ids=_ids(READABLE))
def test_xml_round_trip(path: Path) -> None:
    original = parse(path.read_bytes())
    xml = serialize.to_xml(original.alert)
    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")

    again = parse(xml)
    assert again.version == "1.2"
    assert etree.QName(again.root).namespace == CAP12_NS
    assert schema_errors(again.root, "1.2") == []
    assert again.alert == original.alert
    assert list(_times(again.alert)) == list(_times(original.alert))


@pytest.mark.parametrize("path", READABLE, ids=_ids(READABLE))
def test_xml_round_trip_is_stable(path: Path) -> None:
    """Writing what was read back gives the same bytes: nothing drifts on a second pass."""
    first = serialize.to_xml(parse(path.read_bytes()).alert)
    assert serialize.to_xml(parse(first).alert) == first


@pytest.mark.parametrize("path", READABLE, ids=_ids(READABLE))
def test_json_round_trip(path: Path) -> None:
    alert = parse(path.read_bytes()).alert
    data = model.to_json(alert)
    back = model.from_json(data)
    assert back == alert
    assert list(_times(back)) == list(_times(alert))
    assert model.from_json(data.decode()) == alert


def test_json_uses_cap_names(corpus: Path) -> None:
    alert = parse((corpus / "cap/oasis-spec_cap12_appendix_A2.xml").read_bytes()).alert
    doc = json.loads(model.to_json(alert))
    assert doc["msgType"] == "Alert"
    assert doc["sent"] == "2003-06-17T14:57:00-07:00"
    info = doc["info"][0]
    assert info["senderName"] == "NATIONAL WEATHER SERVICE SACRAMENTO CA"
    assert info["category"] == ["Met"]
    assert info["responseType"] == ["Shelter"]
    assert info["eventCode"] == [{"valueName": "SAME", "value": "SVR"}]
    assert info["expires"] == "2003-06-17T16:00:00-07:00"
    area = info["area"][0]
    assert area["areaDesc"].startswith("EXTREME NORTH CENTRAL TUOLUMNE COUNTY")
    assert area["polygon"][0][0] == [38.47, -120.14]  # lat, lon as in CAP
    assert area["geocode"][0] == {"valueName": "SAME", "value": "006109"}
    text = model.to_json(alert).decode()
    for snake in ("msg_type", "sender_name", "infos", "areas", "event_codes", "value_name", "area_desc"):
        assert f'"{snake}"' not in text


def test_json_references_and_resources(corpus: Path) -> None:
    tsunami = json.loads(model.to_json(parse(
        (corpus / "cap/us_wcatwc_oasiscap_tsunami-update-multiref.xml").read_bytes()).alert))
    assert tsunami["references"][0] == {"sender": "wcatwc@noaa.gov", "identifier": "PAAQ-1-mg5a94",
                                        "sent": "2013-01-05T09:01:16Z"}  # RFC 3339 (JSON) may write Z
    a1 = json.loads(model.to_json(parse((corpus / "cap/oasis-spec_cap12_appendix_A1.xml").read_bytes()).alert))
    resource = a1["info"][0]["resource"][0]
    assert {"resourceDesc", "mimeType"} <= set(resource)


def test_json_from_other_input_is_refused() -> None:
    import msgspec

    with pytest.raises(msgspec.ValidationError):
        model.from_json(b'{"identifier": "x"}')
    with pytest.raises(msgspec.ValidationError):  # times must carry an offset
        model.from_json(b'{"identifier": "x", "sender": "s", "sent": "2024-01-01T00:00:00", "status": "Actual",'
                        b' "msgType": "Alert", "scope": "Public"}')


def test_offsets_survive_xml(corpus: Path) -> None:
    alert = parse((corpus / "cap/au_nsw-rfs_google-testdata_australia.xml").read_bytes()).alert
    xml = serialize.to_xml(alert)
    assert b"<sent>2011-10-05T23:04:00+10:00</sent>" in xml
    assert parse(xml).alert.sent.utcoffset() == timedelta(hours=10)


def test_utc_written_with_numeric_offset(corpus: Path) -> None:
    """CAP 1.2 wants +00:00, never Z; -00:00 as read is written +00:00."""
    alert = parse((corpus / "cap/ca_ec_google-testdata_canada.xml").read_bytes()).alert
    xml = serialize.to_xml(alert)
    assert b"2012-05-02T21:45:05+00:00" in xml and b"-00:00" not in xml
    assert serialize.format_time(datetime(2024, 5, 19, 13, 18, 0, 999_999, tzinfo=UTC)) == (
        "2024-05-19T13:18:00+00:00")


def test_prefixed_input_written_with_default_namespace(corpus: Path) -> None:
    xml = serialize.to_xml(parse((corpus / "cap/au_nsw-rfs_google-testdata_australia.xml").read_bytes()).alert)
    assert b"<cap:" not in xml and f'<alert xmlns="{CAP12_NS}">'.encode() in xml


def test_legacy_cap10_written_as_cap12(corpus: Path) -> None:
    original = parse((corpus / "cap_legacy/oasis-spec_cap10_appendix_A2.xml").read_bytes())
    assert original.version == "1.0"
    xml = serialize.to_xml(original.alert)
    assert b"<valueName>same</valueName>" in xml and b"same=SVR" not in xml
    assert schema_errors(parse(xml).root, "1.2") == []


def test_numbers_without_exponent() -> None:
    assert serialize.format_number(1e-7) == "0.0000001"
    assert serialize.format_number(38.47) == "38.47"
    assert serialize.format_number(-120.0) == "-120.0"


def test_compact_output(corpus: Path) -> None:
    alert = parse((corpus / "cap/oasis-spec_cap12_appendix_A3.xml").read_bytes()).alert
    compact = serialize.to_xml(alert, pretty=False)
    assert b">\n" not in compact.split(b"?>", 1)[1].strip()  # no indentation between elements
    assert b">\n" in serialize.to_xml(alert)
    assert parse(compact).alert == alert
