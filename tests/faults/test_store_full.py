"""A full disk under the store (issue 17, fault 2): intake refuses with an alarm and keeps the file, nothing accepted
is lost, the hub recovers when space returns; /healthz says so from a write probe; the read-only commands work on
the full disk and a hub started on it says why in one line.

The store lives on a real 8 MB tmpfs mounted for the test (the tests run as root); the inbox is on the normal disk.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kits.hubproc import HubProcess, cap_xml, drop, free_port, subprocess_env, wait_for, write_config


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of the disk (until the kernel says ENOSPC)."""
    filler = disk / f"filler-{uuid.uuid4().hex}"
    block = b"\0" * 65536
    with filler.open("wb", buffering=0) as fh:
        while True:
            try:
                fh.write(block)
            except OSError as err:
                assert err.errno == errno.ENOSPC
                break
    return filler


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hub.cli", *args, "--config", str(config)], capture_output=True,
                          text=True, env=subprocess_env(), cwd=str(config.parent), timeout=60)


def test_a_full_disk_stops_intake_with_an_alarm_loses_nothing_and_recovers(tmp_path: Path, small_disk: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port=port, db=str(small_disk / "hub.db"))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    hub = HubProcess(config, port, tmp_path / "hub.log").start()
    try:
        drop(inbox, "first.xml", cap_xml("full-1", headline="Vor dem vollen Speicher"), settled=True)
        wait_for(lambda: (inbox / "done" / "first.xml").exists() or None, timeout=30, what="first file stored")
        filler = fill(small_disk)

        dropped = drop(inbox, "second.xml", cap_xml("full-2", headline="Bei vollem Speicher"), settled=True)
        health = wait_for(lambda: (h := json.loads(hub.get("/healthz")[1]))["status"] == "down"
                          and h["sources"]["cap-inbox"]["state"] == "down" and h or None,
                          timeout=30, what="/healthz down with the store failing and the inbox down")
        assert health["store"].startswith("failing: ") and "store cannot write" in health["store"]
        assert "store full" in health["sources"]["cap-inbox"]["last_error"]
        assert dropped.exists(), "the file the store could not take stays in the inbox"

        for command in (("sources",), ("alerts",), ("audit", "verify")):  # read-only: work on the full disk
            done = cli(config, *command)
            assert done.returncode == 0 and "Traceback" not in done.stderr, (command, done.stderr)
        assert "cap-inbox" in cli(config, "sources").stdout
        assert "Vor dem vollen Speicher" in cli(config, "alerts").stdout

        filler.unlink()
        wait_for(lambda: (inbox / "done" / "second.xml").exists() or None, timeout=30, what="kept file stored")
        healthy = hub.wait_healthy()
        assert healthy["store"] == "ok" and healthy["sources"]["cap-inbox"]["state"] == "up"
        listed = cli(config, "alerts").stdout
        assert "Vor dem vollen Speicher" in listed and "Bei vollem Speicher" in listed
        assert "never retrieved" not in hub.log() and "Traceback" not in hub.log()
    finally:
        hub.close()


def test_a_hub_started_on_a_full_disk_says_so_in_one_line(tmp_path: Path, small_disk: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port=port, db=str(small_disk / "hub.db"))
    (tmp_path / "inbox").mkdir()
    hub = HubProcess(config, port, tmp_path / "hub.log").start()
    hub.stop()
    fill(small_disk)

    started = subprocess.run([sys.executable, "-m", "hub.cli", "run", "--config", str(config)], capture_output=True,
                             text=True, env=subprocess_env(), cwd=str(tmp_path), timeout=60)
    assert started.returncode == 1
    complaint = [line for line in started.stderr.splitlines() if not line.startswith("{")]  # JSON log lines aside
    assert len(complaint) == 1 and "nicht gestartet / not started" in complaint[0], started.stderr
    assert "store cannot write" in complaint[0] and "Traceback" not in started.stderr

    looked = cli(config, "sources")  # the hub is down: read as the file is on disk, and say so
    assert looked.returncode == 0 and "cap-inbox" in looked.stdout
    assert "disk full" in looked.stderr and "Traceback" not in looked.stderr
