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
from hub.cli import main

DATA = Path(__file__).parent / "data"
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
    docs = documents(out)
    validator = Validator()
    for raw in docs:
        report = validator.check(raw)
        assert report.verdict is not Verdict.REJECTED, report.errors
        assert report.cap_version == "1.2"
        schema = [e for e in report.errors if "schema" in e.lower() or "Element" in e]
        assert schema == [], schema
        alert = cap_parse.parse(raw).alert
        if german:
            for info in alert.infos:
                for area in info.areas:
                    for ring in area.polygons:
                        assert all(in_germany(lat, lon) for lat, lon in ring), (alert.identifier, ring[:3])
    return len(docs)


@pytest.mark.parametrize("path", NINA, ids=lambda p: p.name)
def test_every_nina_sample_converts(path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                    tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no config.toml here: convert needs none
    code, out, err = run(capsys, "--from", "nina", "--to", "cap", str(path))
    assert code == 0, err
    assert check_all(out, german=True) >= 1


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
    assert code == 0, err
    assert check_all(out, german=False) >= 1


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
