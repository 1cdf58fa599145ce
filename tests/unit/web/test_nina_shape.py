"""The pieces of the NINA API's shapes (hub.publish.nina_shape) and the structure helper its contract tests rely on
(tests.kits.jsonshape): the helper must find what differs, or the contract tests would prove nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from adapters.sources.nina_fields import html_to_text, normalise_language
from hub.cap.model import Area, Circle, Info, Value
from hub.publish import nina_shape
from tests.kits import paths
from tests.kits.jsonshape import differences, merge, shape

DISTRICT = "033540000000"


def test_shape_reduces_values_to_keys_and_types_and_merges_list_elements() -> None:
    assert shape({"a": 1, "b": [{"x": "s"}, {"y": 1.5}], "c": None, "d": True}) == {
        "a": "int", "b": [{"x": "str", "y": "float"}], "c": "null", "d": "bool"}
    assert shape([]) == [] and shape([1, "x"]) == ["int|str"]
    assert merge({"a": "int"}, {"a": "str", "b": "bool"}) == {"a": "int|str", "b": "bool"}


def test_differences_name_missing_extra_and_retyped_keys_by_path() -> None:
    sample = shape([{"id": "x", "payload": {"version": 1, "data": {"area": {"type": "ZGEM"}}}}])
    ours = shape([{"id": 7, "payload": {"version": 1, "data": {"area": {}}, "more": [1]}}])
    assert sorted(differences(ours, sample)) == [
        "extra $[].payload.more", "missing $[].payload.data.area.type", "type $[].id: ours int, sample str"]
    assert differences(shape({"l": [[1.0, 2.0]]}), shape({"l": [[1, 2]]})) == ["type $.l[][]: ours float, sample int"]
    assert differences(shape({"l": []}), shape({"l": [{"a": 1}]})) == []  # an empty list says nothing
    assert differences(ours, ours) == []


def test_the_real_samples_agree_with_each_other_where_they_overlap() -> None:
    """The merged shape of the real details is the reference of the contract test: each sample fits it."""
    nina = paths.DATA / "nina"
    details = [*json.loads((nina / "ha_nina_sample_warning_details.json").read_bytes()).values(),
               json.loads((nina / "fpas_mow.DE-HE-KS-SE106-20250313-106-001.json").read_bytes())]
    reference = shape(details)
    for d in details:
        assert [x for x in differences(shape(d), reference[0]) if not x.startswith("missing")] == []


@pytest.mark.parametrize(("tag", "code"), [
    ("de-DE", "DE"), ("de", "DE"), ("de-DE-x-ls", "DE-LS"), ("de-x-ls", "DE-LS"), ("en-GB", "EN"), ("en", "EN"),
    ("ar", "AR"), ("es-ES", "ES"), ("fr-FR", "FR"), ("pl-PL", "PL"), ("ru-RU", "RU"), ("tr-TR", "TR"),
    ("zh-MO", "ZH-MO"), (None, "UND")])
def test_languages_in_nina_codes_and_back(tag: str | None, code: str) -> None:
    assert nina_shape.nina_language(tag) == code
    if tag is not None and code != "ZH-MO":  # warnhub's NINA source reads the code as the same language
        assert (normalise_language(code) or "").split("-")[0] == tag.split("-")[0]
    if code == "DE-LS":
        assert normalise_language(code) == "de-DE-x-ls"


def test_ids_are_the_hubs_own_and_name_the_thread() -> None:
    wid = nina_shape.nina_id(DISTRICT, "w12")
    assert wid == "warnhub.033540000000.w12" and nina_shape.thread_of(DISTRICT, wid) == "w12"
    assert nina_shape.thread_of(DISTRICT, "warnhub.033540000000.w12.2.20261207T031400") is None  # a CAP identifier
    assert nina_shape.thread_of("031510000000", wid) is None  # another hub's
    assert nina_shape.thread_of(DISTRICT, "mow.DE-HE-KS-SE106-20250313-106-001") is None


def test_times_carry_the_berlin_offset_of_their_day() -> None:
    assert nina_shape.when(datetime(2025, 3, 13, 9, 50, 25, 999, tzinfo=UTC)) == "2025-03-13T10:50:25+01:00"
    assert nina_shape.when(datetime(2025, 7, 1, 12, 0, tzinfo=UTC)) == "2025-07-01T14:00:00+02:00"


@pytest.mark.parametrize("text", ["Zeile 1\nPegel < 3 m & steigend", "a < b > c\n\nAbsatz", "ohne Umbruch"])
def test_texts_become_nina_html_that_reads_back_as_the_same_text(text: str) -> None:
    info = Info(language="de-DE", event="Test", description=text, instruction=text, contact=text)
    out = nina_shape._info(info, [DISTRICT])
    for key in ("description", "instruction", "contact"):
        assert "\n" not in out[key] and "< " not in out[key] and ("&lt;" in out[key]) == ("<" in text)
        assert html_to_text(out[key]) == text
    assert out["parameter"] == [{"valueName": "warnVerwaltungsbereiche", "value": DISTRICT}]


def test_areas_get_nina_area_ids_and_circles_become_lon_lat_rings() -> None:
    area = Area(area_desc="Rund um Lüchow", circles=(Circle(center=(52.97, 11.15), radius_km=2.0),),
                geocodes=(Value(value_name="AreaId", value="7"), Value(value_name="ARS", value="033545407018")))
    assert nina_shape._area(area, 3)["geocode"] == [{"valueName": "AreaId", "value": "3"},
                                                    {"valueName": "ARS", "value": "033545407018"}]
    ring = nina_shape._circle_ring(52.97, 11.15, 2.0)
    assert ring[0] == ring[-1] and len(ring) == nina_shape.CIRCLE_POINTS + 1
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    assert 11.11 < min(lons) < 11.13 and 11.17 < max(lons) < 11.19  # 2 km east-west at 53° N: ±0.03° of longitude
    assert 52.95 < min(lats) < 52.955 and 52.985 < max(lats) < 52.99  # ±0.018° of latitude
