"""Health of each source: up or down, the last error, the last good run. "Unreachable" is never "no warnings"."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("warnhub.health")


@dataclass(slots=True)
class SourceHealth:
    name: str
    state: str = "starting"
    """``starting``, ``up`` or ``down``."""
    last_error: str = ""
    last_ok: datetime | None = None
    since: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "last_error": self.last_error,
                "last_ok": self.last_ok.isoformat() if self.last_ok else None,
                "since": self.since.isoformat() if self.since else None}


class Health:
    def __init__(self) -> None:
        self.sources: dict[str, SourceHealth] = {}

    def register(self, name: str) -> None:
        self.sources.setdefault(name, SourceHealth(name, since=datetime.now(UTC)))

    def up(self, name: str) -> None:
        h = self.sources.setdefault(name, SourceHealth(name))
        now = datetime.now(UTC)
        if h.state != "up":
            if h.state == "down":
                log.info("source recovered", extra={"source": name})
            h.state, h.since = "up", now
        h.last_ok = now

    def down(self, name: str, err: object) -> None:
        h = self.sources.setdefault(name, SourceHealth(name))
        h.last_error = " ".join(str(err).split()) or type(err).__name__
        if h.state != "down":  # log the change of state, not every failure
            log.warning("source failing: %s", h.last_error, extra={"source": name})
            h.state, h.since = "down", datetime.now(UTC)

    @property
    def ok(self) -> bool:
        return all(h.state != "down" for h in self.sources.values())

    def as_dict(self) -> dict[str, Any]:
        return {name: h.as_dict() for name, h in sorted(self.sources.items())}
