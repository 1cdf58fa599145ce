"""The history log (``[debug] history = "path"``): what the hub did, one JSON line per event, for the invariant
checker of the fault suite (``tests/kits/invariants.py``) and the storm benchmark.

Events, each with ``t`` (Unix time, seconds) and ``ev``:

- ``ingest``: an alert version was stored (``alert``, ``thread``, ``origin``);
- ``decide``: the rules decided it (``alert``, ``thread``, ``decision``);
- ``publish``: a publication and its outbox rows were committed (``pub``, ``thread``, ``version``, ``status``,
  ``msg_type``, ``scope``, ``severity``, ``urgency``, ``source_alert``, ``channels``);
- ``queue``: rows were queued for ``channels``;
- ``canary``: the publish step queued a canary round (``alert``, ``thread``, and ``probes``: each probe's outbox
  ``thread`` with its ``channel`` and ``recipient``; hub/publish/canary.py), which was ingested and decided before;
- ``send``: a channel's outcome for one row (``key``, ``pub``, ``thread``, ``channel``, ``recipient``, ``outcome``:
  done, retry, gone, failed, expired or coalesced (its reason: the summary's key), and ``reason``).

Receivers outside the hub (a push service, a board) record their own receipts; the checker joins them by the
idempotency ``key``. Off by default: it writes one line per delivery attempt. Not personal data beyond what the
store holds already (subscription ids, never endpoints), and meant for test and staging systems.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hub.events import RELAYED, AlertStored, Bus, Decided, Queued
from hub.ports import Delivery, Outcome
from hub.publish import canary
from hub.publish.publications import Published


class History:
    """Appends events to a file (``O_APPEND``: lines of concurrent writers never interleave within a line)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.clock = clock
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def record(self, ev: str, **fields: Any) -> None:
        if RELAYED.get():  # another node's event, relayed here: that node's history has it
            return
        self._write([{"t": self.clock(), "ev": ev, **fields}])

    def _write(self, events: Sequence[dict[str, Any]]) -> None:
        if self._fd < 0 or not events:
            return
        data = "".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n" for e in events)
        os.write(self._fd, data.encode())

    def attach(self, bus: Bus) -> None:
        """Record the pipeline's events as they are published on ``bus``."""
        bus.subscribe(AlertStored, lambda e: self.record("ingest", alert=e.alert_id, thread=e.thread_id,
                                                         origin=e.origin))
        bus.subscribe(Decided, lambda e: self.record("decide", alert=e.alert_id, thread=e.thread_id,
                                                     decision=e.decision))
        bus.subscribe(Published, self._published)
        bus.subscribe(Queued, lambda e: self.record("queue", channels=sorted(e.channels)))
        bus.subscribe(canary.Round, lambda e: self.record("canary", alert=e.alert_id, thread=e.thread_id, probes=[
            {"thread": canary.PREFIX + p.id, "channel": p.channel, "recipient": p.recipient} for p in e.probes]))

    def _published(self, event: Published) -> None:
        p = event.publication
        self.record("publish", pub=p.id, thread=p.thread, version=p.version, status=p.status, msg_type=p.msg_type,
                    scope=p.scope, severity=p.severity, urgency=p.urgency, source_alert=p.source_alert,
                    channels=list(p.channels))

    def sent(self, channel: str, pairs: Sequence[tuple[Delivery, Outcome]]) -> None:
        """The outbox's observer: one ``send`` line per row of a delivered batch."""
        now = self.clock()
        self._write([{"t": now, "ev": "send", "key": d.key, "pub": d.publication_id, "thread": d.thread,
                      "channel": channel, "recipient": d.recipient, "outcome": o.kind, "reason": o.reason}
                     for d, o in pairs])
