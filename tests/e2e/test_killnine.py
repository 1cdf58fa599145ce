"""kill -9 in the middle of intake loses nothing that was accepted, and stores nothing twice.

1,000 files wait in the inbox (950 distinct valid alerts, 50 that must be rejected); the daemon is killed with
SIGKILL while it works through them, then started again on the same folder and store. Afterwards every file has been
moved exactly once (done/ or rejected/, with the reason), none is left or lost, and every valid alert is in the store
exactly once.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

from tests.kits.hubproc import HubProcess, cap_xml, free_port, wait_for, write_config

TOTAL = 1000
BAD_EVERY = 20  # 50 of 1,000 are rejected


def make_files(inbox: Path) -> tuple[dict[str, bytes], dict[str, bytes], set[str]]:
    """Valid and rejected files, interleaved in processing order; returns (valid, rejected, identifiers)."""
    valid: dict[str, bytes] = {}
    rejected: dict[str, bytes] = {}
    identifiers: set[str] = set()
    for i in range(TOTAL):
        if i % BAD_EVERY == BAD_EVERY - 1:
            if (i // BAD_EVERY) % 2:
                name, data = f"{i:04d}-notxml.xml", f"Dies ist kein XML / not XML, Nr. {i}\n".encode()
            else:
                name = f"{i:04d}-doctype.xml"
                data = (f'<?xml version="1.0"?>\n<!DOCTYPE alert [<!ENTITY n "{i}">]>\n'.encode()
                        + cap_xml(f"doctype-{i}").split(b"\n", 1)[1])
            rejected[name] = data
        else:
            identifier = f"kill9-{i:04d}"
            name = f"{i:04d}-valid.xml"
            data = cap_xml(identifier, sent=f"2030-01-01T10:{i // 60 % 60:02d}:{i % 60:02d}+01:00",
                           expires="2099-01-01T00:00:00+01:00", headline=f"Testwarnung {i}")
            valid[name] = data
            identifiers.add(identifier)
    past = time.time() - 60  # settled: the source takes them at once
    for name, data in {**valid, **rejected}.items():
        path = inbox / name
        path.write_bytes(data)
        os.utime(path, (past, past))
    return valid, rejected, identifiers


def processes_in(folder: Path) -> list[int]:
    """Live processes working in ``folder``: the daemon started there and everything it started (validation workers,
    multiprocessing's resource tracker) inherit it as their working directory."""
    want = str(folder.resolve())
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if os.readlink(entry / "cwd") == want and alive(int(entry.name)):
                    out.append(int(entry.name))
            except OSError:
                pass
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def pending(inbox: Path) -> list[str]:
    return sorted(p.name for p in inbox.iterdir() if p.is_file())


def test_kill9_loses_nothing_accepted(tmp_path: Path) -> None:
    """Invariant: no accepted alert is lost and none is stored twice when the hub is killed (SIGKILL) mid-intake;
    every delivered file ends exactly once in done/ or rejected/ (with its reason), none left behind; the killed
    hub's worker processes do not outlive it."""
    port = free_port()
    config = write_config(tmp_path, port=port, interval_s=0.2, sweep_interval_s=60)
    inbox = tmp_path / "inbox"
    done, rejected_dir = inbox / "done", inbox / "rejected"
    inbox.mkdir()
    valid, rejected, identifiers = make_files(inbox)
    assert len(valid) == 950 and len(rejected) == 50 and len(identifiers) == 950

    first = HubProcess(config, port, tmp_path / "run1.log")
    second = HubProcess(config, port, tmp_path / "run2.log")
    try:
        first.start(wait=False)
        assert first.proc is not None

        def some_done() -> bool:
            first.assert_alive()
            return done.is_dir() and len(os.listdir(done)) > 50

        wait_for(some_done, timeout=60, interval=0.01, what="more than 50 files processed")
        first.proc.send_signal(signal.SIGKILL)
        assert first.proc.wait(timeout=30) == -signal.SIGKILL
        left = pending(inbox)
        assert left, "all files were processed before the kill; the crash tested nothing"
        # its validation workers (if any) notice they were orphaned and leave: nothing of the killed hub lingers
        wait_for(lambda: not processes_in(tmp_path), timeout=30, what="the killed hub's processes to exit")

        second.start()
        wait_for(lambda: not pending(inbox), timeout=120, what="the inbox to be empty after the restart")
        assert second.stop(timeout=60) == 0
    finally:
        first.kill()
        second.close()
        for pid in processes_in(tmp_path):  # only if a check above failed
            os.kill(pid, signal.SIGKILL)

    done_names = sorted(os.listdir(done))
    rejected_all = sorted(os.listdir(rejected_dir))
    reasons = sorted(n for n in rejected_all if n.endswith(".reason.txt"))
    rejected_names = sorted(n for n in rejected_all if not n.endswith(".reason.txt"))

    # every file moved exactly once, to the right place, unchanged; nothing left, nothing lost
    assert pending(inbox) == []
    assert done_names == sorted(valid), set(done_names) ^ set(valid)
    assert rejected_names == sorted(rejected), set(rejected_names) ^ set(rejected)
    for name, data in valid.items():
        assert (done / name).read_bytes() == data, name
    for name, data in rejected.items():
        assert (rejected_dir / name).read_bytes() == data, name
    # every rejected file has its reason beside it
    assert reasons == sorted(n + ".reason.txt" for n in rejected)
    for name in rejected:
        text = (rejected_dir / (name + ".reason.txt")).read_text(encoding="utf-8")
        assert "rejected by cap-inbox" in text, name
        assert ("DOCTYPE" in text) if "doctype" in name else ("XML" in text), (name, text)

    # every valid alert is in the store exactly once; every rejection is recorded
    with sqlite3.connect(tmp_path / "hub.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*), count(DISTINCT identifier) FROM alerts").fetchone() == (950, 950)
        assert {r[0] for r in conn.execute("SELECT identifier FROM alerts")} == identifiers
        assert conn.execute("SELECT count(*) FROM threads").fetchone() == (950,)
        assert conn.execute("SELECT count(*) FROM alerts WHERE thread_id IS NULL").fetchone() == (0,)
        distinct_rejections, total_rejections = conn.execute(
            "SELECT count(DISTINCT sha256), count(*) FROM rejections").fetchone()
        assert distinct_rejections == 50
        assert total_rejections >= 50  # one re-read after the crash may be recorded twice: that is fine
        actions = [r[0] for r in conn.execute("SELECT action FROM audit ORDER BY seq")]
        assert actions == ["hub.start", "hub.start", "hub.stop"]  # the killed run never said stop
