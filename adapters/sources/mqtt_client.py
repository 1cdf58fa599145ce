"""The MQTT source's paho client: acknowledgements in batches, the client id, quiet shutdown logs.

Client id: ``client_id`` from the config, else ``warnhub-<hub name>-<suffix>-<source name>`` with a random suffix
created once and kept in ``mqtt-client-id`` beside the database, so two hubs with the same config never share a
session (see :mod:`adapters.sources.mqtt` for what happens when two clients use one id anyway).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import time
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt

from hub.errors import ConfigError, SourceError

if TYPE_CHECKING:
    from hub.config.load import LoadedConfig

SUFFIX_FILE = "mqtt-client-id"


class Client(mqtt.Client):
    """paho's client with :meth:`ack_many`."""

    def ack_many(self, acks: Sequence[tuple[int, int]]) -> None:
        """PUBACK a batch in order, waking the network thread once instead of once per message.

        paho's ``ack()`` writes a byte to its wake-up socket pair for every packet, a system call that also hands
        the GIL to the network thread each time; for a batch of thousands that doubled the cost of the batch.
        Relies on paho 2.x's ``_sockpairW`` (only ``loop()``, which this source never calls, replaces it); without
        it every ack wakes the thread as usual.
        """
        wake = getattr(self, "_sockpairW", None)
        if wake is None:
            for mid, qos in acks:
                self.ack(mid, qos)
            return
        self._sockpairW = None  # the network thread notices its own packets without a wake-up
        try:
            for mid, qos in acks:
                self.ack(mid, qos)
        finally:
            self._sockpairW = wake
        try:
            wake.send(b"0")
        except BlockingIOError:  # already awake: the pair is full of wake-ups
            pass


def derived_client_id(loaded: LoadedConfig | None, source: str) -> str:
    """``warnhub-<hub name>-<suffix>-<source>``; the random suffix is made once and kept beside the database."""
    if loaded is None:
        raise ConfigError(f"source {source}: without the hub's config, set client_id")
    name = unicodedata.normalize("NFKD", loaded.cfg.hub.name).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", name).strip("-")[:24].strip("-") or "hub"
    return f"warnhub-{slug}-{_suffix(loaded.db_path.parent / SUFFIX_FILE)}-{source}"


def _suffix(path: Path) -> str:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        text = path.read_text(encoding="ascii", errors="replace").strip()
        if not re.fullmatch(r"[0-9a-f]{8}", text):
            raise SourceError(f"{path} does not hold an MQTT client id suffix (8 hex digits): {text[:20]!r}; "
                              "delete it to make a new one (the broker's old session is then lost)") from None
        return text
    value = secrets.token_hex(4)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(value + "\n")
        f.flush()
        os.fsync(f.fileno())
    return value


def listening(host: str, port: int, *, settle_s: float = 0.2, timeout: float = 0.5) -> bool:
    """Does anything accept TCP connections at host:port ``settle_s`` from now? A broker killed or restarting
    does not; right at the moment its connections drop, its listening socket may not be closed yet."""
    time.sleep(settle_s)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def quiet_shutdown(record: logging.LogRecord) -> bool:
    """paho 2.2 logs an ERROR when its loop runs once more after a requested disconnect; that is no error."""
    return not str(record.msg).startswith("Client is not connected.")


def reason_of(err: BaseException | None) -> str:
    if err is None:
        return "unknown error"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__
