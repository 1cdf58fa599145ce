"""Power loss: what the hub tells a sender is stored (a file moved to done/, the console's "sent") is on disk first.

A power cut cannot be simulated honestly in a test; what can be observed is whether the bytes were forced to disk:
``strace`` records the system calls of a real process, so these tests show that the WAL is fsynced (SQLite's
``synchronous=FULL`` commit) after a document is read and before its file is renamed into done/, while the store
runs ``synchronous=NORMAL``, whose ordinary commits are not fsynced.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.errors import StoreError
from hub.store.db import Store
from tests.kits.hubproc import REPO, HubProcess, cap_xml, drop, free_port, subprocess_env, wait_for, write_config

WAIT = 30.0
STRACE = shutil.which("strace")
TRACED = "trace=openat,fsync,fdatasync,rename,renameat,renameat2"
_SYNC = re.compile(r"\b(?:fsync|fdatasync)\(\d+<([^>]*)>")


def _strace(log: Path) -> list[str]:
    if STRACE is None:
        raise AssertionError("strace is needed (Debian package strace)")
    return [STRACE, "-f", "-y", "-qq", "-e", TRACED, "-o", str(log)]


def _wal_syncs(lines: list[str]) -> list[int]:
    """Indexes of the lines that fsync a WAL file."""
    return [i for i, line in enumerate(lines) if (m := _SYNC.search(line)) and m.group(1).endswith("-wal")]


def _index(lines: list[str], pattern: str) -> int:
    found = [i for i, line in enumerate(lines) if re.search(pattern, line)]
    assert found, f"no system call matching {pattern!r} in the trace"
    return found[0]


# -- the mechanism: Store.transaction(durable=True) ---------------------------------------------------------------


def test_durable_commit_fsyncs_the_wal_an_ordinary_one_does_not(tmp_path: Path) -> None:
    """Under synchronous=NORMAL an ordinary commit reaches the WAL without fsync (a power cut may take it); a
    durable commit is fsynced before it returns. Markers (opening files named A, B, C) frame each commit."""
    script = textwrap.dedent(f"""
        from pathlib import Path
        from hub.store.db import Store
        folder = Path({str(tmp_path)!r})
        s = Store(folder / "hub.db", synchronous="NORMAL")
        s.add_rejection(b"warm-up", origin="t", reason="first write creates the WAL")
        (folder / "A").touch()
        s.add_rejection(b"plain", origin="t", reason="ordinary")
        (folder / "B").touch()
        s.add_rejection(b"durable", origin="t", reason="durable", durable=True)
        (folder / "C").touch()
        print(s.conn.execute("PRAGMA synchronous").fetchone()[0])
        s.close()
    """)
    log = tmp_path / "trace.log"
    out = subprocess.run([*_strace(log), sys.executable, "-c", script], cwd=REPO, env=subprocess_env(),
                         capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "1"  # NORMAL again after the durable commit
    lines = log.read_text().splitlines()
    a, b, c = (_index(lines, rf'"{re.escape(str(tmp_path / n))}"') for n in "ABC")
    syncs = _wal_syncs(lines)
    assert not [i for i in syncs if a < i < b], "an ordinary NORMAL commit was fsynced: the test proves nothing"
    assert [i for i in syncs if b < i < c], "the durable commit did not fsync the WAL"


def test_durable_transaction_runs_under_full_and_restores_the_level(tmp_path: Path) -> None:
    store = Store(tmp_path / "hub.db", synchronous="NORMAL")
    seen: list[str] = []
    store.conn.set_trace_callback(seen.append)
    with store.transaction(durable=True) as conn:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        with store.transaction(durable=True):  # a durable part of a durable transaction: fine
            pass
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 1
    assert seen.index("PRAGMA synchronous=FULL") < seen.index("BEGIN IMMEDIATE") < seen.index("COMMIT") \
        < seen.index("PRAGMA synchronous=NORMAL")
    with pytest.raises(ValueError), store.transaction(durable=True):
        raise ValueError("rolled back")
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 1
    with pytest.raises(StoreError, match="outermost"), store.transaction(), store.transaction(durable=True):
        pass  # SQLite cannot raise the level inside a transaction: refused, never silently not durable
    store.close()


# -- the directory source: durable before the move to done/ -------------------------------------------------------


@pytest.fixture
def traced_hub(tmp_path: Path) -> Iterator[tuple[HubProcess, Path, Path]]:
    port = free_port()
    config = write_config(tmp_path, port=port)  # [store] synchronous = "NORMAL"
    trace = tmp_path / "trace.log"
    proc = HubProcess(config, port, tmp_path / "warnhub.log")
    with (tmp_path / "warnhub.log").open("ab") as out:
        proc.proc = subprocess.Popen([*_strace(trace), sys.executable, "-m", "hub.cli", "run", "--config",
                                      str(config)], cwd=str(tmp_path), stdout=out, stderr=subprocess.STDOUT,
                                     env=subprocess_env())
    try:
        proc.wait_healthy(timeout=90)
        yield proc, tmp_path / "inbox", trace
    finally:
        # SIGTERM to the hub itself (strace's child), so it stops as an operator would stop it; then strace ends
        children = Path(f"/proc/{proc.proc.pid}/task/{proc.proc.pid}/children")
        pids = children.read_text().split() if children.exists() else []
        for pid in pids:
            subprocess.run(["kill", "-TERM", pid], check=False)
        try:
            proc.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_directory_source_fsyncs_the_store_before_moving_a_file_to_done(traced_hub: tuple[HubProcess, Path, Path]
                                                                        ) -> None:
    proc, inbox, trace = traced_hub
    drop(inbox, "durable.xml", cap_xml("durable-1"), settled=True)
    wait_for(lambda: (inbox / "done" / "durable.xml").exists(), timeout=WAIT, what="the file in done/")
    with sqlite3.connect(f"file:{inbox.parent / 'hub.db'}?mode=ro", uri=True) as db:
        stored = db.execute("SELECT count(*) FROM alerts WHERE identifier='durable-1'").fetchone()[0]
    assert stored == 1

    def renamed() -> list[str] | None:
        text = trace.read_text()
        return text.splitlines() if re.search(r"rename\w*\(.*durable\.xml", text) else None

    lines = wait_for(renamed, timeout=WAIT, what="the rename in the trace")
    read = _index(lines, r'openat\(.*inbox/durable\.xml".*O_RDONLY')
    moved = _index(lines, r'rename\w*\(.*inbox/durable\.xml.*done/durable\.xml')
    assert read < moved
    assert [i for i in _wal_syncs(lines) if read < i < moved], \
        "the file was moved to done/ before the store's WAL was fsynced: a power cut could lose the alert"


# -- the console: "sent" only after a durable commit --------------------------------------------------------------


def test_console_send_and_approve_commit_durably(tmp_path: Path) -> None:
    from hub.console import drafts, release, targeting
    from hub.console.model import ConsoleConfig, FourEyes
    from hub.decide.rules.engine import RuleSet
    from hub.geo.geography import geography
    from tests.unit.console.test_console import ANNA, BERT, DISTRICT, SENDER, form

    geo = geography()
    cfg = ConsoleConfig(geo=geo, district=DISTRICT, sender=SENDER, sender_name="Landkreis Lüchow-Dannenberg",
                                templates=RuleSet.load(REPO / "rules", geo=geo).templates)
    store = Store(tmp_path / "hub.db", synchronous="NORMAL")
    seen: list[str] = []
    store.conn.set_trace_callback(seen.append)

    def sent_commit() -> list[str]:
        """The statements of the transaction that marked the warning sent, with the level set before it."""
        at = next(i for i, s in enumerate(seen) if "SET state='sent'" in s)
        begin = max(i for i in range(at) if seen[i] == "BEGIN IMMEDIATE")
        end = next(i for i in range(at, len(seen)) if seen[i] == "COMMIT")
        return seen[begin - 1:end + 2]

    alone = ConsoleConfig(geo=geo, district=DISTRICT, sender=SENDER, templates=cfg.templates,
                                  four_eyes=FourEyes(required_for=frozenset({"Extreme", "Severe"})))
    moderate = drafts.create_draft(store, ANNA, form(severity="Moderate"), cfg=alone)
    token = targeting.preview_for(store, alone, None, moderate["id"])["token"]
    release.send(store, ANNA, moderate["id"], token=token, cfg=alone)  # needs no second person: send
    around = sent_commit()
    assert around[0] == "PRAGMA synchronous=FULL" and around[-1] == "PRAGMA synchronous=NORMAL", around
    seen.clear()
    severe = drafts.create_draft(store, ANNA, form(), cfg=cfg)
    assert "PRAGMA synchronous=FULL" not in seen  # a draft is an ordinary commit
    drafts.submit(store, ANNA, severe["id"], cfg=cfg)
    token = targeting.preview_for(store, cfg, None, severe["id"])["token"]
    release.approve(store, BERT, severe["id"], token=token, cfg=cfg)  # four eyes: approve sends
    around = sent_commit()
    assert around[0] == "PRAGMA synchronous=FULL" and around[-1] == "PRAGMA synchronous=NORMAL", around
    store.close()
