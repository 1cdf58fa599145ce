"""`warnhub convert --from cap|atom|dwd-zip|nina --to cap|json`: every saved payload in tests/data (the corpus
copies and their DERIVED variants) becomes CAP 1.2 that validates against the XSD, one document per alert separated
by a blank line, with coordinates inside Germany where the source is German; broken payloads exit 1 with a reason."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from hub.cap import parse as cap_parse
from hub.cap.validate import Validator, Verdict
from hub.cli.main import main
from tests.kits import paths

DATA = paths.DATA
NINA = sorted((DATA / "nina").glob("*.json"))
FEEDS = sorted(p for p in (DATA / "feeds").iterdir() if p.is_file() and p.suffix in (".atom", ".rss", ".xml"))
DWD = sorted((DATA / "cap").glob("de_dwd_*.xml"))


def in_germany(lat: float, lon: float) -> bool:
    return 47.2 <= lat <= 55.1 and 5.8 <= lon <= 15.1


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["convert", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def documents(out: str) -> list[bytes]:
    """Split the output at the blank line before each XML declaration."""
    parts = out.split("\n\n<?xml")
    return [(p if i == 0 else "<?xml" + p).encode() for i, p in enumerate(parts) if p.strip()]


def check_all(out: str, *, german: bool) -> int:
    """Every written document is CAP 1.2 that ``validate`` finds no error in (XSD and semantic checks)."""
    docs = documents(out)
    validator = Validator()
    for raw in docs:
        report = validator.check(raw)
        assert report.verdict is not Verdict.REJECTED, report.errors
        assert report.cap_version == "1.2"
        assert report.errors == [], report.errors
        alert = cap_parse.parse(raw).alert
        if german:
            for info in alert.infos:
                for area in info.areas:
                    for ring in area.polygons:
                        assert all(in_germany(lat, lon) for lat, lon in ring), (alert.identifier, ring[:3])
    return len(docs)


REFUSED = {
    # NINA's mapData and dashboard summaries name an Update or Cancel but not what it updates (only the detail does)
    "derived_mowas_mapData.json": (1, 2, "must reference the message(s) it concerns"),
    "ha_nina_sample_warnings_dashboard.json": (0, 2, "must reference the message(s) it concerns"),
    # one of the feed's two alerts: an Update naming no references, expires equal to effective
    "meteoalarm_legacy-atom_france.atom": (1, 1, "is not after effective"),
}
"""Samples with alerts the semantic checks reject: (written, refused, part of the reason)."""


def check_refusals(path: Path, code: int, out: str, err: str, *, german: bool) -> None:
    """What convert writes is valid; what it refuses is named with the reason, and the exit code is 1."""
    written = check_all(out, german=german)
    refusals = [line for line in err.splitlines() if "refused, not valid CAP: " in line]
    if path.name in REFUSED:
        want_written, want_refused, reason = REFUSED[path.name]
        assert (code, written, len(refusals)) == (1, want_written, want_refused), err
        assert all(reason in line and line.startswith(f"warnhub: {path}: ") for line in refusals), refusals
    else:
        assert code == 0 and not refusals, err
        assert written >= 1


@pytest.mark.parametrize("path", NINA, ids=lambda p: p.name)
def test_every_nina_sample_converts(path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                    tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no config.toml here: convert needs none
    code, out, err = run(capsys, "--from", "nina", "--to", "cap", str(path))
    check_refusals(path, code, out, err, german=True)


def test_nina_geojson_beside_the_json_is_used(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    path = DATA / "nina" / "fpas_mow.DE-HE-KS-SE106-20250313-106-001.json"
    code, out, _ = run(capsys, "--from", "nina", "--to", "json", str(path))
    assert code == 0
    alert = json.loads(out.splitlines()[0])
    assert alert["identifier"] == "DE-HE-KS-SE106-20250313-106-001"  # NINA's mow. prefix is not CAP identity
    rings = [r for i in alert["info"] for a in i["area"] for r in a.get("polygon", [])]
    assert rings and all(in_germany(lat, lon) for r in rings for lat, lon in r)


@pytest.mark.parametrize("path", FEEDS, ids=lambda p: p.name)
def test_every_feed_sample_converts(path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                    tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "--from", "atom", "--to", "cap", str(path))
    check_refusals(path, code, out, err, german=False)


def test_dwd_zip_converts_every_member(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in DWD:
            zf.writestr(f.name, f.read_bytes())
    path = tmp_path / "Z_CAP_C_EDZW_LATEST_PVW_STATUS_PREMIUMDWD_COMMUNEUNION_MUL.zip"
    path.write_bytes(buf.getvalue())
    code, out, err = run(capsys, "--from", "dwd-zip", "--to", "cap", str(path))
    assert code == 0, err
    assert check_all(out, german=True) == len(DWD)
    # DWD's own "polygon" of two distinct points (de_dwd_kweathercore_update-MUL.xml) encloses nothing: dropped, said
    assert "polygon[0]: 2 distinct point(s) enclose nothing: dropped" in err


@pytest.mark.parametrize(("kind", "path"), [
    ("atom", DATA / "feeds" / "invalid" / "google_xee.atom"),
    ("nina", DATA / "cap" / "oasis-spec_cap12_appendix_A1.xml"),
    ("dwd-zip", DATA / "cap" / "oasis-spec_cap12_appendix_A1.xml"),
    ("cap", DATA / "cap_invalid" / "google_xxe_attack.xml"),
])
def test_broken_payloads_exit_1_with_a_reason(kind: str, path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "--from", kind, "--to", "cap", str(path))
    assert code == 1 and out == ""
    assert err.startswith(f"warnhub: {path}:") and len(err.strip()) > len(f"warnhub: {path}:")


A1 = (DATA / "cap" / "oasis-spec_cap12_appendix_A1.xml").read_text(encoding="utf-8")
"""The CAP 1.2 specification's example A.1; the tests below change one value in it."""


def test_a_locale_as_language_is_repaired_and_said(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "lang.xml"
    path.write_text(A1.replace("<category>", "<language>en_US</language>\n        <category>", 1), encoding="utf-8")
    assert Validator().check(path.read_bytes()).errors  # validate flags the input
    for to in ("cap", "json"):
        code, out, err = run(capsys, "--from", "cap", "--to", to, str(path))
        assert code == 0, err
        assert "repaired: hsas@dhs.gov/43b080713727: info[0].language: 'en_US' -> 'en-US'" in err
        if to == "cap":
            assert check_all(out, german=False) == 1 and "<language>en-US</language>" in out
        else:
            assert json.loads(out)["info"][0]["language"] == "en-US"


@pytest.mark.parametrize(("old", "new", "reason"), [
    ("<areaDesc>U.S. nationwide and interests worldwide</areaDesc>",
     "<areaDesc>x</areaDesc><polygon>38.47,-120.14 95.1,-119.52 38.34,-119.95 38.47,-120.14</polygon>",
     "info[0].area[0].polygon[0]: point 95.1,-119.52 out of range (lat,lon order?)"),
    ("<areaDesc>U.S. nationwide and interests worldwide</areaDesc>",
     "<areaDesc>x</areaDesc><circle>91.5,-120.1 5</circle>",
     "info[0].area[0].circle[0]: centre 91.5,-120.1 out of range"),
    ("<msgType>Alert</msgType>", "<msgType>Update</msgType>",
     "msgType Update must reference the message(s) it concerns"),
], ids=["latitude-beyond-90", "circle-beyond-90", "update-without-references"])
def test_what_validate_rejects_is_refused_with_the_reason(old: str, new: str, reason: str,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.xml"
    path.write_text(A1.replace(old, new, 1), encoding="utf-8")
    assert reason in Validator().check(path.read_bytes()).errors
    for to in ("cap", "json"):
        code, out, err = run(capsys, "--from", "cap", "--to", to, str(path))
        assert (code, out) == (1, "")
        assert err.strip() == (f"warnhub: {path}: hsas@dhs.gov/43b080713727: nicht geschrieben, kein gültiges CAP / "
                               f"refused, not valid CAP: {reason}")


def test_an_open_polygon_is_closed_and_said(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "open.xml"
    path.write_text(A1.replace("<areaDesc>U.S. nationwide and interests worldwide</areaDesc>",
                               "<areaDesc>x</areaDesc><polygon>38.47,-120.14 38.5,-119.52 38.34,-119.95</polygon>"),
                    encoding="utf-8")
    code, out, err = run(capsys, "--from", "cap", "--to", "cap", str(path))
    assert code == 0, err
    assert "info[0].area[0].polygon[0]: not closed: closed with its first point" in err
    assert check_all(out, german=False) == 1
    assert "38.47,-120.14 38.5,-119.52 38.34,-119.95 38.47,-120.14" in out


def test_cap11_resource_without_mime_type_gets_the_unknown_type_and_says_so(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    path = DATA / "cap_legacy" / "oasis-spec_cap11_appendix_A1.xml"  # CAP 1.1 left mimeType optional, 1.2 does not
    code, out, err = run(capsys, "--from", "cap", "--to", "cap", str(path))
    assert code == 0, err
    assert "info[0].resource[0]: no mimeType (optional before CAP 1.2): application/octet-stream" in err
    assert check_all(out, german=False) == 1 and "<mimeType>application/octet-stream</mimeType>" in out
