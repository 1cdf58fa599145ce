"""The store's timestamps: sortable UTC ISO 8601 text."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_iso(value: datetime) -> str:
    """A sortable UTC timestamp: ``2024-05-19T13:18:00+00:00``."""
    return value.astimezone(UTC).replace(microsecond=0).isoformat()


def now_utc() -> datetime:
    return datetime.now(UTC)
