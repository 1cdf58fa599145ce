"""The directory source: CAP files dropped into a folder, the way many MoWaS receivers hand them over.

Each file is read, handed to intake (validated and stored, in one transaction) and only then moved: to ``done/``
when stored (new or duplicate), to ``rejected/`` with ``<name>.reason.txt`` beside it otherwise. A crash between
store and move only means the file is read again and found a duplicate: nothing accepted is lost, nothing twice.
The commit is durable (fsynced, whatever ``[store] synchronous`` says) before the move, so a power cut cannot
leave a file in done/ whose alert the store lost.
Writers should write under a temporary name (``.name``, ``*.tmp``, ``*.part``) and rename; files changed in the
last ``settle_s`` seconds are left for the next scan in case a writer is still at work.

On Linux the folder is also watched with inotify: a file renamed into it is read at once (a rename hands over a
complete file: no settling), and a file closed after writing wakes a scan, so a warning does not wait for the next
one. The scan every ``interval_s`` stays,
for files the watch cannot see (network file systems) and after a queue overflow.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import struct
import time
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from hub.cap.sign import SignaturePolicy
from hub.errors import StoreFull

if TYPE_CHECKING:
    from hub.config.load import LoadedConfig
    from hub.config.sections import DirectorySourceConfig
    from hub.ports import SourceContext

_SKIP_SUFFIXES = (".tmp", ".part", ".partial", "~", ".reason.txt")
SETTLE_S = 0.5
IN_FLIGHT = 8
"""Files handed to intake at once, so validation runs on every core while the store writes."""


class DirectorySource:
    def __init__(self, settings: DirectorySourceConfig, loaded: LoadedConfig, *, max_bytes: int) -> None:
        self.name = settings.name
        self.settings = settings
        self.inbox = loaded.path(settings.path)
        self.done = loaded.path(settings.done_dir) if settings.done_dir else self.inbox / "done"
        self.rejected = loaded.path(settings.rejected_dir) if settings.rejected_dir else self.inbox / "rejected"
        self.policy: SignaturePolicy = loaded.source_policy(settings)
        self.max_bytes = max_bytes
        self.monotonic = time.monotonic
        self._full: str | None = None
        """Why the store refused a file this round (disk full): the source shows down and the files wait."""
        self._looks: dict[str, tuple[int, int, float]] | None = None
        """Per file not yet read: size, mtime (ns) and since when (monotonic) they are unchanged; None before the
        first scan."""

    def pending(self, now: float | None = None, complete: Collection[str] = ()) -> list[Path]:
        """Files ready to read, oldest first. ``complete``: names known to be whole (renamed into the folder, as
        inotify says), read however recently they changed.

        Any other file must have settled by two measures: its modification time lies ``SETTLE_S`` back, and (after
        the first scan) its size and modification time have not changed for ``SETTLE_S`` by this process's own
        clock. The second holds where file times come from another clock than the hub's (a network share whose
        server's clock is off): a file still being written there may look old by its time, never unchanged."""
        now = time.time() if now is None else now
        mono = self.monotonic()
        looks: dict[str, tuple[int, int, float]] = {}
        ready: list[tuple[float, str, Path]] = []
        with os.scandir(self.inbox) as entries:
            for entry in entries:
                if entry.name.startswith(".") or entry.name.endswith(_SKIP_SUFFIXES):
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                st = entry.stat(follow_symlinks=False)
                seen = (self._looks or {}).get(entry.name)
                since = seen[2] if seen is not None and seen[:2] == (st.st_size, st.st_mtime_ns) else mono
                looks[entry.name] = (st.st_size, st.st_mtime_ns, since)
                if entry.name not in complete and (now - st.st_mtime < SETTLE_S
                                                   or (self._looks is not None and mono - since < SETTLE_S)):
                    continue
                ready.append((st.st_mtime, entry.name, Path(entry.path)))
        self._looks = looks
        ready.sort()
        return [p for _, _, p in ready]

    async def run(self, ctx: SourceContext) -> None:
        for folder in (self.inbox, self.done, self.rejected):
            folder.mkdir(parents=True, exist_ok=True)
        slots = asyncio.Semaphore(IN_FLIGHT)
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()
        watch: _Watch | None = None

        def unwatch() -> None:
            nonlocal watch
            if watch is not None:
                loop.remove_reader(watch.fd)
                watch.close()
                watch = None

        try:
            complete: set[str] = set()
            while True:
                try:
                    files = await asyncio.to_thread(self.pending, None, complete)
                except OSError as err:
                    ctx.health.down(self.name, f"cannot read {self.inbox}: {err}")
                    unwatch()  # the folder went away: watch the one that comes back
                else:
                    if watch is None and (watch := _Watch.open(self.inbox)) is not None:
                        loop.add_reader(watch.fd, changed.set)
                    self._full = None
                    async with asyncio.TaskGroup() as tg:
                        for path in files:
                            tg.create_task(self._guarded(ctx, path, slots))
                    if self._full is None:
                        ctx.health.up(self.name)
                    else:  # the files stay in the inbox and are offered again next round
                        ctx.health.down(self.name, f"Speicher voll, Dateien bleiben im Eingang / store full, files stay"
                                                   f" in the inbox: {self._full}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), self.settings.interval_s)
                changed.clear()
                complete = watch.names() if watch is not None else set()
                if watch is not None and watch.gone:
                    unwatch()
        finally:
            unwatch()

    async def _guarded(self, ctx: SourceContext, path: Path, slots: asyncio.Semaphore) -> None:
        async with slots:
            await self._one(ctx, path)

    async def _one(self, ctx: SourceContext, path: Path) -> None:
        try:
            raw = await asyncio.to_thread(_read_limited, path, self.max_bytes)
        except FileNotFoundError:
            return  # taken away by someone else
        except OSError as err:
            ctx.health.down(self.name, f"cannot read {path.name}: {err}")
            return
        # durable: the commit is on disk before the file leaves the inbox, so a power cut cannot lose a file in done/
        try:
            result = await ctx.ingest(raw, origin=self.name, policy=self.policy, path=str(path), durable=True)
        except StoreFull as err:
            self._full = str(err)
            return
        if result.outcome == "rejected":
            note = (f"{datetime.now(UTC).isoformat(timespec='seconds')} rejected by {self.name}\n"
                    f"{result.reason}\n")
            await asyncio.to_thread(_move, path, self.rejected, note)
        else:
            await asyncio.to_thread(_move, path, self.done)


class _Watch:
    """inotify (Linux) on one folder: wakes on files moved in or closed after writing; :meth:`names` answers those
    moved in since the last call (a file closed after writing may be written again: it still has to settle)."""

    _IN_CLOSE_WRITE, _IN_MOVED_TO, _IN_IGNORED = 0x008, 0x080, 0x8000
    _HEAD = struct.Struct("iIII")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.gone = False
        """The watched folder was deleted or moved away (the watch ended)."""

    @classmethod
    def open(cls, folder: Path) -> _Watch | None:
        """A watch on ``folder``, or None where inotify is not available (the scan alone then finds files)."""
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd < 0:
                return None
            if libc.inotify_add_watch(fd, os.fsencode(folder), cls._IN_CLOSE_WRITE | cls._IN_MOVED_TO) < 0:
                os.close(fd)
                return None
        except (OSError, AttributeError):
            return None
        return cls(fd)

    def names(self) -> set[str]:
        out: set[str] = set()
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            at = 0
            while at + self._HEAD.size <= len(data):
                _, mask, _, length = self._HEAD.unpack_from(data, at)
                name = data[at + self._HEAD.size:at + self._HEAD.size + length].split(b"\0", 1)[0]
                at += self._HEAD.size + length
                if mask & self._IN_MOVED_TO and name:
                    out.add(os.fsdecode(name))
                if mask & self._IN_IGNORED:
                    self.gone = True

    def close(self) -> None:
        os.close(self.fd)


def _read_limited(path: Path, max_bytes: int) -> bytes:
    """Read at most one byte past the limit: enough for intake to refuse an oversized file, never more."""
    with path.open("rb") as fh:
        return fh.read(max_bytes + 1)


def _move(path: Path, folder: Path, reason: str | None = None) -> Path:
    """Move into ``folder`` under a free name. A reason is written beside the target *before* the move (and in the
    same thread, so cancelling the awaiting task cannot split them): a crash in between leaves the file in the inbox
    to be read again, never a rejected file without its reason."""
    target = folder / path.name
    n = 1
    while target.exists():
        target = folder / f"{path.stem}.{n}{path.suffix}"
        n += 1
    if reason is not None:
        target.with_name(target.name + ".reason.txt").write_text(reason, "utf-8")
    os.replace(path, target)
    return target
