"""The directory source reads a file only once it has settled, also where file times come from another clock.

A network share whose server's clock is behind makes a file still being written look old by its modification
time; the source also wants its size and time unchanged for SETTLE_S by its own clock before reading it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from adapters.sources.directory import SETTLE_S, DirectorySource
from hub.config.load import load
from hub.config.sections import DirectorySourceConfig
from tests.kits.hubproc import write_config


def source(tmp_path: Path) -> tuple[DirectorySource, list[float]]:
    loaded = load(write_config(tmp_path, port=1))
    settings = next(s for s in loaded.cfg.sources if isinstance(s, DirectorySourceConfig))
    src = DirectorySource(settings, loaded, max_bytes=1 << 20)
    src.inbox.mkdir(parents=True, exist_ok=True)
    clock = [1000.0]
    src.monotonic = lambda: clock[0]
    return src, clock


def write(path: Path, data: bytes, *, age_s: float) -> None:
    with path.open("ab") as f:
        f.write(data)
    then = time.time() - age_s
    os.utime(path, (then, then))


def test_a_file_there_at_start_is_read_at_once(tmp_path: Path) -> None:
    src, _clock = source(tmp_path)
    write(src.inbox / "old.xml", b"<alert/>", age_s=3600)
    assert [p.name for p in src.pending()] == ["old.xml"]


def test_a_growing_file_with_an_old_time_waits_until_it_stops_changing(tmp_path: Path) -> None:
    src, clock = source(tmp_path)
    assert src.pending() == []  # the first scan: an empty folder
    growing = src.inbox / "growing.xml"
    write(growing, b"<alert>", age_s=3600)  # a server clock an hour behind: its time says "old"
    assert src.pending() == []  # new since the last scan: not yet known to be still
    clock[0] += SETTLE_S * 2
    write(growing, b"<identifier>x</identifier>", age_s=3600)  # still being written
    assert src.pending() == []  # changed since the last look
    clock[0] += SETTLE_S / 2
    assert src.pending() == []  # unchanged, but not for long enough
    clock[0] += SETTLE_S
    assert [p.name for p in src.pending()] == ["growing.xml"]


def test_a_renamed_file_is_complete_and_a_fresh_one_still_waits(tmp_path: Path) -> None:
    src, clock = source(tmp_path)
    assert src.pending() == []
    (src.inbox / "renamed.xml").write_bytes(b"<alert/>")  # fresh time, but inotify said: renamed in
    (src.inbox / "fresh.xml").write_bytes(b"<alert/>")
    assert [p.name for p in src.pending(complete={"renamed.xml"})] == ["renamed.xml"]
    clock[0] += SETTLE_S * 2  # unchanged for long enough, and (the wall clock moved on too) old enough
    assert sorted(p.name for p in src.pending(now=time.time() + SETTLE_S * 2)) == ["fresh.xml", "renamed.xml"]
