"""Archiving the audit log: the oldest segment leaves the table for a file, and the chain stays verifiable whole."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.errors import StoreError
from hub.store.audit import archive, verify_archive
from hub.store.chain import _audit_hash
from hub.store.db import Store
from tests.e2e.test_cli import BUNDLED, db_of, warnhub

DAY0 = datetime(2030, 3, 1, 10, 0, tzinfo=UTC)


def day(n: int) -> datetime:
    return DAY0 + timedelta(days=n)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """Six audit entries, on each backend (tests/conftest.py)."""
    s = Store(store_url)
    for i in range(6):  # entries 1..6, one a day
        s.audit("tester", "test.step", f"s{i + 1}", {"i": i + 1}, now=day(i))
    yield s
    s.close()


def test_archive_moves_the_oldest_segment_and_the_chain_continues_from_its_anchor(store: Store, tmp_path: Path,
                                                                                 store_url: str) -> None:
    out = tmp_path / "archive" / "audit-1.jsonl"
    done = archive(store, day(3), out, actor="admin", now=day(7))
    assert (done.entries, done.first_seq, done.last_seq) == (3, 1, 3)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["seq"] for e in lines] == [1, 2, 3] and done.hash == lines[-1]["hash"]
    assert [e["seq"] for e in store.audit_entries()] == [4, 5, 6, 7]  # 7: the archiving, audited
    assert store.audit_entries()[-1]["action"] == "audit.archive"
    check = store.verify_audit()
    assert check.ok and check.entries == 4 and check.anchor == 3
    assert verify_archive(store, out).ok
    store.audit("tester", "after", now=day(8))  # appending goes on from the chain's end
    assert store.verify_audit().ok

    # a second archive takes everything up to now, the archiving entry included; the table restarts from it
    second = tmp_path / "archive" / "audit-2.jsonl"
    done = archive(store, day(9), second, actor="admin", now=day(9))
    assert (done.first_seq, done.last_seq) == (4, 8)
    assert [e["seq"] for e in store.audit_entries()] == [9]
    assert store.verify_audit().ok and store.verify_audit().anchor == 8
    assert verify_archive(store, out).ok and verify_archive(store, second).ok
    store.close()
    with Store(store_url) as again:  # a fresh process appends after the anchor, not from 1
        assert again.audit("tester", "reopened") == 10
        assert again.verify_audit().ok


def test_nothing_before_the_date_writes_no_file(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "none.jsonl"
    assert archive(store, day(-1), out, actor="admin").entries == 0
    assert not out.exists() and store.verify_audit().entries == 6


def test_a_broken_chain_is_not_archived(store: Store, tmp_path: Path) -> None:
    store.conn.execute("""UPDATE audit SET detail='{"i":99}' WHERE seq=2""")
    with pytest.raises(StoreError, match="does not verify"):
        archive(store, day(3), tmp_path / "a.jsonl", actor="admin")
    assert not (tmp_path / "a.jsonl").exists() and len(store.audit_entries()) == 6


def test_an_existing_file_is_never_overwritten(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    out.write_text("keep me")
    with pytest.raises(StoreError, match="exists"):
        archive(store, day(3), out, actor="admin")
    assert out.read_text() == "keep me" and len(store.audit_entries()) == 6


def test_tampering_with_the_remaining_chain_is_detected(store: Store, tmp_path: Path) -> None:
    archive(store, day(3), tmp_path / "a.jsonl", actor="admin", now=day(7))
    store.conn.execute("""UPDATE audit SET detail='{"i":99}' WHERE seq=5""")
    check = store.verify_audit()
    assert not check.ok and check.first_bad == 5 and "altered" in check.reason


def test_deleting_the_first_entry_after_the_anchor_is_detected(store: Store, tmp_path: Path) -> None:
    archive(store, day(3), tmp_path / "a.jsonl", actor="admin", now=day(7))
    store.conn.execute("DELETE FROM audit WHERE seq=4")
    check = store.verify_audit()
    assert not check.ok and "entry 4 is missing" in check.reason


def test_a_forged_anchor_is_detected(store: Store, tmp_path: Path) -> None:
    """Moving the anchor past entries (to hide them) or dropping it breaks the chain at the table's start."""
    archive(store, day(3), tmp_path / "a.jsonl", actor="admin", now=day(7))
    store.conn.execute("DELETE FROM audit_anchors")
    assert not store.verify_audit().ok


def test_tampering_with_the_archive_file_is_detected(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    archive(store, day(3), out, actor="admin", now=day(7))
    lines = out.read_text().splitlines()
    entry = json.loads(lines[1])
    entry["detail"] = '{"i":99}'
    entry["hash"] = _audit_hash(entry["prev_hash"], entry["seq"], entry["ts"], entry["actor"], entry["action"],
                                entry["subject"], entry["detail"])  # rehashed: the next entry no longer chains
    forged = tmp_path / "forged.jsonl"
    forged.write_text("\n".join([lines[0], json.dumps(entry, separators=(",", ":")), lines[2]]) + "\n")
    check = verify_archive(store, forged)
    assert not check.ok and "no anchor records this file" in check.reason
    # even with the anchor's SHA-256 forged to match, the chain inside the file gives it away
    store.conn.execute("UPDATE audit_anchors SET sha256=?", (hashlib.sha256(forged.read_bytes())
                                                             .hexdigest(),))
    check = verify_archive(store, forged)
    assert not check.ok and "entry 3" in check.reason
    truncated = tmp_path / "short.jsonl"
    truncated.write_text("\n".join(lines[:2]) + "\n")
    assert not verify_archive(store, truncated).ok


def test_cli_archive_and_verify(tmp_path: Path) -> None:
    """``warnhub audit archive --before --out`` and ``warnhub audit verify --archive`` as an operator runs them."""
    config = tmp_path / "config.toml"
    shutil.copy(BUNDLED, config)
    db = db_of(config)
    with Store(db) as s:
        for i in range(4):
            s.audit("tester", "test.step", f"s{i}", now=day(i))
    out = tmp_path / "audit-2030-03.jsonl"
    bad_date = warnhub("audit", "archive", "--config", str(config), "--before", "März", "--out", str(out),
                       cwd=tmp_path)
    assert bad_date.returncode == 2 and "not a date" in bad_date.stderr
    done = warnhub("audit", "archive", "--config", str(config), "--before", day(2).date().isoformat(),
                   "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "archived entries 1-2 (2)" in done.stdout and out.exists()
    ok = warnhub("audit", "verify", "--config", str(config), "--archive", str(out), cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout
    assert "intact: 3 entries (from archived entry 2)" in ok.stdout and "archive intact" in ok.stdout
    again = warnhub("audit", "archive", "--config", str(config), "--before", day(3).date().isoformat(),
                    "--out", str(out), cwd=tmp_path)
    assert again.returncode == 1 and "exists" in again.stderr
    out.write_text(out.read_text().replace("s0", "s9"))
    bad = warnhub("audit", "verify", "--config", str(config), "--archive", str(out), cwd=tmp_path)
    assert bad.returncode == 1 and "archive BROKEN" in bad.stdout
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit SET subject='x' WHERE seq=3")
    bad = warnhub("audit", "verify", "--config", str(config), cwd=tmp_path)
    assert bad.returncode == 1 and "BROKEN at entry 3" in bad.stdout


def test_the_segment_ends_at_the_first_entry_not_older_than_the_date(tmp_path: Path) -> None:
    """Times along the chain need not rise (a clock set back): the archived segment is a prefix without gaps."""
    with Store(tmp_path / "hub.db") as s:
        for n, when in enumerate((day(0), day(5), day(1), day(2))):
            s.audit("tester", "step", f"s{n + 1}", now=when)
        done = archive(s, day(3), tmp_path / "a.jsonl", actor="admin", now=day(6))
        assert (done.first_seq, done.last_seq) == (1, 1)
        assert [e["seq"] for e in s.audit_entries()] == [2, 3, 4, 5]
        assert s.verify_audit().ok and verify_archive(s, tmp_path / "a.jsonl").ok
