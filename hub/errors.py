"""The hub's one tree of errors. Raise ``from`` the cause; convert at the boundary (CLI, source, web)."""

from __future__ import annotations


class HubError(Exception):
    """Base of every error the hub raises on purpose."""


class ConfigError(HubError):
    """A config or rule file is unusable; the message names the file and the path within it."""


class SourceError(HubError):
    """A source could not deliver."""


class FetchError(SourceError):
    """The outside world did not answer as expected (network, HTTP status, size)."""


class ParseError(SourceError):
    """A document is unusable: hostile, not XML, not CAP, or missing what identifies it. One-line reason."""


class DeliveryError(HubError):
    """A channel could not deliver."""


class StoreError(HubError):
    """The store refused or failed an operation."""


class StoreFull(StoreError):
    """The store cannot write: its disk is full or failing (SQLite's SQLITE_FULL or SQLITE_IOERR). Nothing was
    written; whoever offered the data keeps it and offers it again when the store can write."""


class AuthError(HubError):
    """Who is asking may not do this."""
