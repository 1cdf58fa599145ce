"""The command line of a hub for several districts (issue 19): ``warnhub check`` prints each district and warns of
one without a DWD warncell of its own; ``warnhub rules check`` checks every district's rules (file, line and field of
an error, as for one folder); ``warnhub rules replay`` decides an input with each district's rules. Real parts: the
two-district config of tests/kits/districts.py, ``python -m hub.cli`` as its own process."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.kits.districts import LD, UE, write_two_districts
from tests.kits.hubproc import subprocess_env
from tests.unit.decide.test_districts_decide import over_both

DWD = """
[[sources]]
type = "dwd"
name = "dwd"
base_url = "http://127.0.0.1:9/dwd"
warncells = ["103354000"]
"""


def warnhub(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], cwd=str(cwd), env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)


def test_check_prints_each_district_and_warns_of_one_without_a_warncell(tmp_path: Path) -> None:
    write_two_districts(tmp_path, port=1, extra=DWD)
    out = warnhub("check", "--config", "config.toml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    ld = next(x for x in lines if x.strip().startswith("district luechow-dannenberg"))
    ue = next(x for x in lines if x.strip().startswith("district uelzen"))
    assert LD in ld and "leitstelle@luechow-dannenberg.example" in ld and "rules-ld" in ld
    assert UE in ue and "leitstelle@uelzen.example" in ue and "rules-ue" in ue
    warned = [x for x in lines if x.startswith("warning: district")]
    assert len(warned) == 1 and "uelzen" in warned[0] and "warncell" in warned[0]


def test_rules_check_checks_every_districts_rules(tmp_path: Path) -> None:
    write_two_districts(tmp_path, port=1)
    ok = warnhub("rules", "check", "--config", "config.toml", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert f"district luechow-dannenberg ({LD}):" in ok.stdout and f"district uelzen ({UE}):" in ok.stdout
    assert ok.stdout.count(": ok (") == 2

    ue_file = tmp_path / "rules-ue" / "uelzen.toml"
    text = ue_file.read_text(encoding="utf-8")
    ue_file.write_text(text.replace('when.min_severity = "Moderate"', 'when.min_severity = "Mittel"', 1),
                       encoding="utf-8")
    bad = warnhub("rules", "check", "--json", "--config", "config.toml", cwd=tmp_path)
    assert bad.returncode == 1
    rows = [json.loads(x) for x in bad.stdout.splitlines()]
    line = text[:text.index('when.min_severity = "Moderate"')].count("\n") + 1
    assert [(Path(r["file"]).name, r["line"], r["field"]) for r in rows if not r["warning"]] == [
        ("uelzen.toml", line, "$.rule[1].when.min_severity")], rows
    refused = [x for x in bad.stderr.splitlines() if "error(s)" in x]
    assert len(refused) == 1 and "rules-ue" in refused[0], bad.stderr
    assert "rules-ld: ok (" in bad.stderr  # Lüchow-Dannenberg's rules are fine: checked all the same


def test_rules_replay_decides_with_each_districts_rules(tmp_path: Path) -> None:
    write_two_districts(tmp_path, port=1)
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    cap = tmp_path / "border.xml"
    cap.write_bytes(over_both("border-replay", severity="Moderate", sent=sent))
    out = warnhub("rules", "replay", "--json", "--config", "config.toml", str(cap), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    got = {d["district"]: (d["decision"], d["channels"], d["push"]) for d in map(json.loads, out.stdout.splitlines())}
    assert got == {LD: ("publish", ["web", "boards"], False), UE: ("publish", ["push", "web", "boards"], True)}
