"""The ``warnhub`` command line, run as a real process against a config (and store) in a temporary folder."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from hub.cap.validate import Validator, Verdict
from tests.kits.hubproc import CAP_DIR, DWD_CHAIN, DWD_CURRENT, REPO, XXE, cap_xml, subprocess_env
from tests.kits.templatekit import review_relative

BUNDLED = REPO / "config.toml"


def warnhub(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m hub.cli`` of this checkout as its own process."""
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], cwd=str(cwd), env=subprocess_env(),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A copy of the bundled config: its store (var/warnhub.db) lands in the temporary folder."""
    path = tmp_path / "config.toml"
    shutil.copy(BUNDLED, path)
    return path


def db_of(config: Path) -> Path:
    return config.parent / "var" / "warnhub.db"


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_console_script_is_installed(tmp_path: Path) -> None:
    """Invariant: the package installs a ``warnhub`` command (what operators and systemd units call)."""
    script = Path(sys.executable).with_name("warnhub")
    found = str(script) if script.exists() else shutil.which("warnhub")
    assert found, "warnhub console script not installed (pip install -e '.[test]')"
    proc = subprocess.run([found, "--version"], cwd=str(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("warnhub ")


def test_validate_json_one_object_per_file(tmp_path: Path, config: Path) -> None:
    """Invariant: ``validate --json`` prints exactly one JSON object per file, with a fixed set of keys
    (scripts depend on it), and exits 0 when nothing was rejected."""
    proc = warnhub("validate", "--json", "--config", str(config), *map(str, DWD_CHAIN), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    reports = json_lines(proc.stdout)
    assert [r["path"] for r in reports] == [str(p) for p in DWD_CHAIN]
    for r in reports:
        assert set(r) == {"path", "verdict", "cap_version", "errors", "warnings", "signature"}
        assert r["verdict"] == "valid"
        assert r["cap_version"] == "1.2"
        assert r["errors"] == [] and r["warnings"] == []
        assert r["signature"] == "absent"
    assert not db_of(config).exists()  # validating never touches the store


def test_validate_exit_1_when_a_file_is_rejected(tmp_path: Path, config: Path) -> None:
    """Invariant: ``validate`` exits 1 when any file is rejected (XXE), still reporting every file."""
    proc = warnhub("validate", "--json", "--config", str(config), str(DWD_CHAIN[0]), str(XXE), cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    reports = json_lines(proc.stdout)
    assert len(reports) == 2
    assert reports[0]["verdict"] == "valid"
    assert reports[1]["path"] == str(XXE)
    assert reports[1]["verdict"] == "rejected"
    assert reports[1]["cap_version"] is None
    assert any("DOCTYPE" in e for e in reports[1]["errors"])  # type: ignore[attr-defined]
    assert set(reports[1]) == {"path", "verdict", "cap_version", "errors", "warnings", "signature"}


def test_validate_folder_and_unreadable_path(tmp_path: Path) -> None:
    """Invariant: a folder is validated file by file; a path that cannot be read is reported as rejected, not a
    traceback (works without any config)."""
    proc = warnhub("validate", "--json", str(CAP_DIR), str(tmp_path / "missing.xml"), cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    reports = json_lines(proc.stdout)
    assert len(reports) == len(list(CAP_DIR.glob("*.xml"))) + 1
    assert all(r["verdict"] in ("valid", "accepted") for r in reports[:-1])
    assert reports[-1]["verdict"] == "rejected"
    assert "cannot read" in reports[-1]["errors"][0]  # type: ignore[index]


def test_import_reports_each_file_and_is_idempotent(tmp_path: Path, config: Path) -> None:
    """Invariant: ``import`` says per file new / duplicate / rejected (with the reason); importing again adds
    nothing - every file is a duplicate."""
    files = [*map(str, DWD_CHAIN), str(XXE)]
    first = warnhub("import", "--config", str(config), *files, cwd=tmp_path)
    assert first.returncode == 1, first.stderr  # something was rejected
    lines = first.stdout.splitlines()
    assert len(lines) == 5
    for line, path in zip(lines[:4], DWD_CHAIN, strict=True):
        assert line.split()[0] == "new" and str(path) in line
    assert lines[4].startswith(f"rejected  {XXE}: ")
    assert "DOCTYPE" in lines[4]
    assert "4 new, 0 duplicate, 1 rejected" in first.stderr
    assert db_of(config).exists()

    again = warnhub("import", "--config", str(config), *map(str, DWD_CHAIN), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert [line.split()[0] for line in again.stdout.splitlines()] == ["duplicate"] * 4
    assert "0 new, 4 duplicate, 0 rejected" in again.stderr
    with sqlite3.connect(db_of(config)) as conn:
        assert conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 4
        assert conn.execute("SELECT count(*) FROM rejections").fetchone()[0] == 1


def test_alerts_all_json_shows_the_dwd_thread(tmp_path: Path, config: Path) -> None:
    """Invariant: ``alerts --all --json`` lists the DWD chain as one incident of 4 versions, current = update 3,
    state expired."""
    assert warnhub("import", "--config", str(config), *map(str, DWD_CHAIN[::-1]), cwd=tmp_path).returncode == 0
    proc = warnhub("alerts", "--all", "--json", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    threads = json_lines(proc.stdout)
    assert len(threads) == 1
    t = threads[0]
    assert t["current_identifier"] == DWD_CURRENT
    assert t["versions"] == 4
    assert t["state"] == "expired"
    assert len(t["versions_list"]) == 4  # type: ignore[arg-type]
    assert t["versions_list"][-1]["identifier"] == DWD_CURRENT  # type: ignore[index]


def test_alerts_without_all_hides_ended(tmp_path: Path, config: Path) -> None:
    """Invariant: plain ``alerts`` shows only current incidents - an expired warning is never listed as current."""
    current = tmp_path / "current.xml"
    current.write_bytes(cap_xml("cli-current", sent="2030-01-01T10:00:00+01:00", expires="2099-01-01T00:00:00+01:00",
                                headline="Aktuelle Testwarnung"))
    assert warnhub("import", "--config", str(config), *map(str, DWD_CHAIN), str(current), cwd=tmp_path).returncode == 0
    proc = warnhub("alerts", "--json", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    threads = json_lines(proc.stdout)
    assert [t["current_identifier"] for t in threads] == ["cli-current"]
    assert threads[0]["state"] == "active"
    table = warnhub("alerts", "--config", str(config), cwd=tmp_path)
    assert "Aktuelle Testwarnung" in table.stdout
    assert "GLÄTTE" not in table.stdout
    everything = warnhub("alerts", "--all", "--config", str(config), cwd=tmp_path)
    assert "GLÄTTE" in everything.stdout and "Aktuelle Testwarnung" in everything.stdout


def test_alerts_on_empty_store(tmp_path: Path, config: Path) -> None:
    """Invariant: no incidents is said in words (German first), not as an empty screen."""
    proc = warnhub("alerts", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Keine aktuellen Meldungen" in proc.stdout


@pytest.mark.parametrize("name", [
    "de_dwd_wdr-unwetter_alert1_glaette.xml",
    "oasis-spec_cap12_appendix_A2.xml",
    "au_nsw-rfs_google-testdata_australia.xml",
])
def test_convert_to_cap_revalidates_as_valid_cap12(tmp_path: Path, name: str) -> None:
    """Invariant: what the hub publishes is valid CAP 1.2 - the re-serialised document validates as 'valid' and
    names the same message."""
    source = CAP_DIR / name
    proc = warnhub("convert", "--to", "cap", str(source), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.encode()
    report = Validator().check(out)
    assert report.verdict is Verdict.VALID, report.as_dict()
    assert report.cap_version == "1.2"
    original = Validator().check(source.read_bytes())
    assert report.alert is not None and original.alert is not None
    assert report.alert.key() == original.alert.key()
    assert report.alert == original.alert


def test_convert_legacy_cap_to_cap12(tmp_path: Path) -> None:
    """Invariant: a CAP 1.1 message converts to a schema-valid CAP 1.2 document."""
    source = CAP_DIR.parent / "cap_legacy" / "oasis-spec_cap11_appendix_A1.xml"
    proc = warnhub("convert", "--to", "cap", str(source), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = Validator().check(proc.stdout.encode())
    assert report.cap_version == "1.2"
    assert not [e for e in report.errors if e.startswith("schema:")], report.errors


def test_convert_to_json(tmp_path: Path) -> None:
    """Invariant: ``convert --to json`` prints JSON with CAP's own element names (msgType, info, ...)."""
    proc = warnhub("convert", "--to", "json", str(DWD_CHAIN[3]), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["msgType"] == "Update"
    assert doc["identifier"] == DWD_CURRENT
    assert doc["sender"] == "CAP@dwd.de"
    assert doc["references"][0]["identifier"].startswith("2.49.0.1.276.0.DWD.PVW.1548219660000")
    assert doc["info"][0]["language"] == "de-DE"


def test_convert_refuses_hostile_input(tmp_path: Path) -> None:
    """Invariant: ``convert`` never processes a DOCTYPE document; it says why and exits 1."""
    proc = warnhub("convert", "--to", "json", str(XXE), cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "DOCTYPE" in proc.stderr


def test_check_accepts_the_bundled_config(tmp_path: Path) -> None:
    """Invariant: ``warnhub check`` passes the shipped config (exit 0)."""
    proc = warnhub("check", "--config", str(BUNDLED), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout
    assert "4 source(s)" in proc.stdout


def test_check_warns_of_a_template_due_for_review_and_still_passes(tmp_path: Path, config: Path) -> None:
    """A console template due for review is a warning line naming the file and its review date, not a failure
    (exit 0). Review dates count back from today (tests.templatekit), so this holds on any day."""
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    review_relative(rules)  # all reviewed ten days ago ...
    overdue = review_relative(rules, 400, only="feuer")  # ... but one
    proc = warnhub("check", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stdout.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: Vorlage zur Prüfung fällig / template due for review: "
                        f"{rules / 'templates' / 'compose' / 'feuer.toml'} (geprüft / reviewed {overdue.isoformat()}, "
                        f"fällig seit / due since {(overdue + timedelta(days=365)).isoformat()})"], proc.stdout
    review_relative(rules, only="feuer")
    fresh = warnhub("check", "--config", str(config), cwd=tmp_path)
    assert fresh.returncode == 0 and "warning:" not in fresh.stdout, fresh.stdout


def test_check_refuses_a_broken_config_with_exit_2(tmp_path: Path, config: Path) -> None:
    """Invariant: ``warnhub check`` exits 2 on a broken config with a one-line message naming file and path,
    exactly as ``run`` would refuse it."""
    config.write_text(config.read_text(encoding="utf-8").replace("interval_s = 1.0", "intervall_s = 1.0"),
                      encoding="utf-8")
    proc = warnhub("check", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "config error" in proc.stderr
    assert str(config) in proc.stderr
    assert "$.sources[0]" in proc.stderr and "intervall_s" in proc.stderr
    assert "Traceback" not in proc.stderr
    run = warnhub("run", "--config", str(config), cwd=tmp_path)
    assert run.returncode == 2
    assert "$.sources[0]" in run.stderr


def test_audit_verify_detects_tampering(tmp_path: Path, config: Path) -> None:
    """Invariant: ``audit verify`` exits 0 on an intact log and 1 once an entry was changed behind the hub's back."""
    assert warnhub("import", "--config", str(config), str(DWD_CHAIN[0]), cwd=tmp_path).returncode == 0
    assert warnhub("import", "--config", str(config), str(DWD_CHAIN[1]), cwd=tmp_path).returncode == 0
    ok = warnhub("audit", "verify", "--config", str(config), cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "intact: 2 entries" in ok.stdout
    with sqlite3.connect(db_of(config)) as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit ORDER BY seq")]
        assert actions == ["cli.import", "cli.import"]
        conn.execute("""UPDATE audit SET detail='{"new":0}' WHERE seq=1""")
    bad = warnhub("audit", "verify", "--config", str(config), cwd=tmp_path)
    assert bad.returncode == 1
    assert "BROKEN at entry 1" in bad.stdout
