"""Each district's audit is a chain of its own (issue 19): it verifies on its own, it is archived with an anchor of
its own, and ``warnhub audit verify`` reports every chain by its district."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.store.audit import archive, verify_archive
from hub.store.chain import _audit_hash
from hub.store.db import Store
from tests.e2e.test_cli import warnhub
from tests.kits.districts import LD, UE, write_two_districts

DAY0 = datetime(2030, 3, 1, 10, 0, tzinfo=UTC)
CHAINS = ("", LD, UE)


def day(n: float) -> datetime:
    return DAY0 + timedelta(days=n)


def fill(s: Store, days: int = 4) -> None:
    """One entry a day in each chain, interleaved: the hub's, Lüchow-Dannenberg's, Uelzen's."""
    for i in range(days):
        for n, district in enumerate(CHAINS):
            s.audit("tester", "test.step", f"{district or 'hub'}-{i}", {"i": i}, now=day(i + n / 10), district=district)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store(store_url)
    fill(s)
    yield s
    s.close()


def test_altering_one_districts_entry_breaks_its_chain_only(store: Store) -> None:
    ue_seq = store.audit_entries(UE)[1]["seq"]
    store.conn.execute("UPDATE audit SET subject='x' WHERE seq=?", (ue_seq,))
    assert not store.verify_audit(UE).ok and store.verify_audit(UE).first_bad == ue_seq
    assert store.verify_audit(LD).ok and store.verify_audit("").ok
    assert not store.verify_audit().ok


def test_archive_anchors_each_chain_and_each_verifies_in_table_and_file(store: Store, tmp_path: Path,
                                                                       store_url: str) -> None:
    out = tmp_path / "a.jsonl"
    done = archive(store, day(2), out, actor="admin", now=day(5))
    assert (done.entries, done.first_seq, done.last_seq) == (6, 1, 6)
    assert {(g.district, g.first_seq, g.last_seq, g.entries) for g in done.chains} == \
        {("", 1, 4, 2), (LD, 2, 5, 2), (UE, 3, 6, 2)}
    anchors = store.conn.execute("SELECT district, seq FROM audit_anchors ORDER BY district").fetchall()
    assert [tuple(a) for a in anchors] == [("", 4), (LD, 5), (UE, 6)]
    for district in CHAINS:  # each chain continues from its own anchor, its archiving audited in itself
        check = store.verify_audit(district)
        assert check.ok and check.entries == 3, (district, check)
        assert store.audit_entries(district)[-1]["action"] == "audit.archive"
    assert verify_archive(store, out).ok

    store.audit("tester", "after", now=day(6), district=UE)
    second = tmp_path / "b.jsonl"
    done = archive(store, day(7), second, actor="admin", now=day(7))
    assert done.first_seq == 7 and store.verify_audit().ok
    assert verify_archive(store, out).ok and verify_archive(store, second).ok
    store.close()
    with Store(store_url) as again:  # after every entry went to files, seqs go on after the last one archived
        assert again.audit("tester", "reopened", district=LD) == done.last_seq + 1 + len(done.chains)
        assert again.verify_audit().ok


def test_a_forged_districts_segment_in_the_file_is_detected(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    archive(store, day(2), out, actor="admin", now=day(5))
    lines = out.read_text().splitlines()
    entry = json.loads(lines[2])  # Uelzen's first
    assert entry["district"] == UE
    entry["detail"] = '{"i":99}'
    entry["hash"] = _audit_hash(entry["prev_hash"], entry["seq"], entry["ts"], entry["actor"], entry["action"],
                                entry["subject"], entry["detail"], UE)
    lines[2] = json.dumps(entry, separators=(",", ":"))
    out.write_text("\n".join(lines) + "\n")
    store.conn.execute("UPDATE audit_anchors SET sha256=?", (hashlib.sha256(out.read_bytes()).hexdigest(),))
    check = verify_archive(store, out)
    assert not check.ok and "entry 6" in check.reason  # Uelzen's next entry no longer chains


def test_cli_verifies_each_district_and_archives_per_chain(tmp_path: Path) -> None:
    config = write_two_districts(tmp_path, port=1)
    db = tmp_path / "hub.db"
    with Store(db) as s:
        fill(s)
    ok = warnhub("audit", "verify", "--config", str(config), cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "hub: audit log intact: 4 entries" in ok.stdout
    assert "luechow-dannenberg (Landkreis Lüchow-Dannenberg): audit log intact: 4 entries" in ok.stdout
    assert "uelzen (Landkreis Uelzen): audit log intact: 4 entries" in ok.stdout

    with sqlite3.connect(db) as conn:
        seq = conn.execute("SELECT seq FROM audit WHERE district=? ORDER BY seq LIMIT 1 OFFSET 2", (UE,)).fetchone()[0]
        conn.execute("UPDATE audit SET detail='{}' WHERE seq=?", (seq,))
    bad = warnhub("audit", "verify", "--config", str(config), cwd=tmp_path)
    assert bad.returncode == 1
    assert f"uelzen (Landkreis Uelzen): audit log BROKEN at entry {seq}" in bad.stdout
    assert "luechow-dannenberg (Landkreis Lüchow-Dannenberg): audit log intact" in bad.stdout
    only = warnhub("audit", "verify", "--config", str(config), "--district", "luechow-dannenberg", cwd=tmp_path)
    assert only.returncode == 0 and "uelzen" not in only.stdout.replace("luechow", "")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit SET detail='{\"i\":2}' WHERE seq=?", (seq,))  # as it was

    out = tmp_path / "audit-old.jsonl"
    done = warnhub("audit", "archive", "--config", str(config), "--before", day(2).date().isoformat(),
                   "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "uelzen (Landkreis Uelzen): entries 3-6 (2)" in done.stdout
    after = warnhub("audit", "verify", "--config", str(config), "--archive", str(out), cwd=tmp_path)
    assert after.returncode == 0, after.stdout
    assert "uelzen (Landkreis Uelzen): audit log intact: 3 entries (from archived entry 6)" in after.stdout
    assert "archive intact" in after.stdout
