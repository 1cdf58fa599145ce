"""The directory source: CAP files dropped into a folder, the way many MoWaS receivers hand them over.

Each file is read, handed to intake (validated and stored, in one transaction) and only then moved: to ``done/``
when stored (new or duplicate), to ``rejected/`` with ``<name>.reason.txt`` beside it otherwise. A crash between
store and move only means the file is read again and found a duplicate: nothing accepted is lost, nothing twice.
Writers should write under a temporary name (``.name``, ``*.tmp``, ``*.part``) and rename; files changed in the
last ``settle_s`` seconds are left for the next scan in case a writer is still at work.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from hub.cap.sign import SignaturePolicy

if TYPE_CHECKING:
    from adapters.sources import SourceContext
    from hub.config import DirectorySourceConfig, LoadedConfig

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

    def pending(self, now: float | None = None) -> list[Path]:
        """Files ready to read, oldest first."""
        now = time.time() if now is None else now
        ready: list[tuple[float, str, Path]] = []
        with os.scandir(self.inbox) as entries:
            for entry in entries:
                if entry.name.startswith(".") or entry.name.endswith(_SKIP_SUFFIXES):
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                mtime = entry.stat(follow_symlinks=False).st_mtime
                if now - mtime < SETTLE_S:
                    continue
                ready.append((mtime, entry.name, Path(entry.path)))
        ready.sort()
        return [p for _, _, p in ready]

    async def run(self, ctx: SourceContext) -> None:
        for folder in (self.inbox, self.done, self.rejected):
            folder.mkdir(parents=True, exist_ok=True)
        slots = asyncio.Semaphore(IN_FLIGHT)
        while True:
            try:
                files = await asyncio.to_thread(self.pending)
            except OSError as err:
                ctx.health.down(self.name, f"cannot read {self.inbox}: {err}")
            else:
                ctx.health.up(self.name)
                async with asyncio.TaskGroup() as tg:
                    for path in files:
                        tg.create_task(self._guarded(ctx, path, slots))
            await asyncio.sleep(self.settings.interval_s)

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
        result = await ctx.ingest(raw, origin=self.name, policy=self.policy, path=str(path))
        if result.outcome == "rejected":
            note = (f"{datetime.now(UTC).isoformat(timespec='seconds')} rejected by {self.name}\n"
                    f"{result.reason}\n")
            await asyncio.to_thread(_move, path, self.rejected, note)
        else:
            await asyncio.to_thread(_move, path, self.done)


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
