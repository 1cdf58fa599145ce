"""Sources: everything that brings CAP documents into the hub, registered explicitly by config ``type``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from adapters.sources.directory import DirectorySource
from hub.cap.sign import SignaturePolicy
from hub.health import Health
from hub.intake import IntakeResult


class Ingest(Protocol):
    def __call__(self, raw: bytes, *, origin: str, policy: SignaturePolicy,
                 path: str | None = None) -> Awaitable[IntakeResult]: ...


@dataclass(frozen=True, slots=True)
class SourceContext:
    """What a running source may use: hand documents to intake (stored before it returns), report health."""

    ingest: Ingest
    health: Health
    log: logging.Logger


class Source(Protocol):
    name: str

    async def run(self, ctx: SourceContext) -> None: ...


SOURCES: dict[str, Callable[..., Source]] = {
    "directory": DirectorySource,
}
"""Config ``type`` -> source class. Every entry is documented in README.md (a test checks)."""
