"""Issue 19, migration: the store of a single-district hub becomes the first district of a multi-district hub with
nothing lost. A daemon for Lüchow-Dannenberg alone publishes a warning; the same store then runs as one hub for
Lüchow-Dannenberg and Uelzen: the warning, its decision and its publication are Lüchow-Dannenberg's, the audit
chains verify, and the old warning is on Lüchow-Dannenberg's pages, not on Uelzen's."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.e2e.test_routing import Hub, dwd_cap
from tests.kits.districts import LD, LD_SLUG, UE, UE_SLUG, write_two_districts
from tests.kits.hubproc import REPO, HubProcess, drop, subprocess_env, wait_for

WAIT = 30


def _districts(db: Path) -> dict[str, set[str]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        out = {t: {r[0] for r in conn.execute(f"SELECT DISTINCT district FROM {t}")}
               for t in ("decisions", "publications")}
    conn.close()
    return out


def test_a_single_district_store_runs_on_as_the_first_of_two_districts(tmp_path: Path) -> None:
    single = Hub(tmp_path)
    try:
        single.proc.start()
        drop(single.inbox, "storm.xml", dwd_cap("migrate-1"))
        wait_for(lambda: single.proc.get_json("/api/v1/warnings")["warnings"] or None, timeout=WAIT,
                 what="the warning published by the single-district hub")
    finally:
        single.proc.close()
    db = tmp_path / "hub.db"
    assert _districts(db)["publications"] == {LD}  # a single-district hub's rows are its district's

    config = write_two_districts(tmp_path, port=single.port)
    two = HubProcess(config, single.port, tmp_path / "two.log")
    try:
        two.start()
        found = _districts(db)
        assert LD in found["decisions"] and found["publications"] == {LD}  # Uelzen's rules: not in its area
        ld = two.get_json(f"/{LD_SLUG}/api/v1/warnings")["warnings"]
        ue = two.get_json(f"/{UE_SLUG}/api/v1/warnings")["warnings"]
        assert [w["identifier"] for w in ld] and not ue
        def both_decided() -> dict[str, object] | None:  # Uelzen, added later, decides the old alert too
            out = subprocess.run([sys.executable, "-m", "hub.cli", "alerts", "--all", "--json", "--config",
                                  str(config)], capture_output=True, text=True, timeout=60, env=subprocess_env(),
                                 cwd=REPO)
            found = json.loads(out.stdout.splitlines()[0])["decisions"]
            return found if set(found) == {LD, UE} else None

        decided = wait_for(both_decided, timeout=WAIT, what="the old alert decided by both districts")
        assert decided[LD]["decision"] == "publish" and decided[UE]["decision"] != "publish"  # type: ignore[index]
        verify = subprocess.run([sys.executable, "-m", "hub.cli", "audit", "verify", "--config", str(config)],
                                capture_output=True, text=True, timeout=60, env=subprocess_env(), cwd=REPO)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        two.close()
