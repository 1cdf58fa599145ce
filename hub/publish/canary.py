"""Canaries (issue 17, section 2): a synthetic Test warning the hub sends itself, on a schedule, to the operator's
canary endpoints, to prove that each channel still delivers and how fast.

A canary takes the delivery path of a warning: its rows go into the outbox, the channel's worker claims them,
resolves them here (read at delivery time, like every warning's content), and the channel sends them with the same
encryption, signature, push service, circuit breaker and retries. It is never a warning: no publication, no thread
of the store, so no page, feed, API, board or public stream can show it (invariant I3 by construction). Its outbox
rows are

- ``thread`` ``canary:<probe id>`` (:func:`is_canary`), ``publication_id`` 0, ``priority`` :data:`PRIORITY` (after
  every warning: a canary never delays one, and a channel too busy to carry it in time shows as late),
- expiring after two intervals (a canary the channel could not send in that time is of no use).

Every probe (one canary to one endpoint) has its own random id; the receiver acknowledges with a POST to
:func:`receipt_path` (a service worker for Web Push, the receiving system for a webhook). A 2xx from a push service
or a webhook only says it was accepted: a channel that accepts and drops shows as silent.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hub.config.sections import BoardConfig
from hub.deliver import outbox
from hub.i18n.languages import code_of
from hub.ports import BoardText, BoardUpdate, Delivery, PushTarget, WebhookBody
from hub.store.db import Store

PREFIX = "canary:"
PRIORITY = 9
STATUS = "Test"
TITLE = "Kontrollmeldung / Canary"
BODY = ("Automatische Kontrollmeldung der Leitstelle, keine Warnung. / Automatic delivery check of the control "
        "room, not a warning.")
KEEP_MS = 86_400_000
"""Finished canary rows older than this are deleted when the next round is queued."""


@dataclass(frozen=True, slots=True)
class Probe:
    """One canary to one endpoint: ``channel`` as the outbox names it, ``recipient`` its id there."""

    id: str
    channel: str
    recipient: str
    host: str = ""


def is_canary(thread: str) -> bool:
    return thread.startswith(PREFIX)


def probe_id(thread: str) -> str:
    return thread.removeprefix(PREFIX)


def new_id() -> str:
    return secrets.token_urlsafe(16)


def receipt_path(probe: str) -> str:
    return f"/api/v1/canary/{probe}/received"


def queue(store: Store, probes: Sequence[Probe], *, now_ms: int, ttl_ms: int) -> int:
    """Queue one outbox row per outbox probe (push, webhooks) in one transaction; old finished canary rows go.
    Returns the rows inserted."""
    rows = [outbox.NewDelivery(f"{PREFIX}{p.id}/{p.channel}/{p.recipient}", 0, PREFIX + p.id, p.channel,
                               p.recipient, p.host, PRIORITY, now_ms + ttl_ms) for p in probes]
    with store.transaction() as conn:
        conn.execute("DELETE FROM outbox WHERE thread >= ? AND thread < ? AND state NOT IN ('queued', 'inflight')"
                     " AND finished_ms < ?", (PREFIX, PREFIX[:-1] + ";", now_ms - KEEP_MS))
        return outbox.enqueue_in(conn, rows, now_ms=now_ms).inserted


def queued_before(store: Store, probe: str) -> bool:
    """Whether a canary row of this probe was queued (by any node): its receipt is genuine."""
    return store.conn.execute("SELECT 1 FROM outbox WHERE thread=? LIMIT 1", (PREFIX + probe,)).fetchone() is not None


def document(probe: str, key: str, base_url: str = "", *, lang: str = "de") -> dict[str, object]:
    """What every canary carries: marked ``canary`` and status ``Test``, never shaped like a warning (no severity, no
    area, no publication), with the receipt URL the receiver POSTs to."""
    return {"key": key, "canary": True, "status": STATUS, "thread": PREFIX + probe, "version": 0, "lang": lang,
            "title": TITLE, "body": BODY, "receipt": base_url + receipt_path(probe)}


def push_target(d: Delivery, endpoint: str, p256dh: str, auth: str, languages: Sequence[str],
                ttl_s: int = 600) -> PushTarget:
    """The push of a canary row (the push channel's resolver, :mod:`hub.deliver.setup`): the receipt path is
    relative, the service worker fetches it from its own origin."""
    lang = next((c for tag in languages if (c := code_of(tag)) is not None), "de")
    body = json.dumps(document(probe_id(d.thread), d.key, lang=lang), ensure_ascii=False,
                      separators=(",", ":")).encode()
    return PushTarget(endpoint, p256dh, auth, body, ttl_s, "high", None)


def webhook_body(d: Delivery, base_url: str) -> WebhookBody:
    """A canary webhook's JSON (whatever the webhook's format: a canary is not CAP of a warning), with the absolute
    receipt URL the receiving system POSTs to."""
    doc = document(probe_id(d.thread), d.key, base_url)
    return WebhookBody("application/json", json.dumps(doc, ensure_ascii=False).encode())


BOARD_LINES = ("KONTROLLMELDUNG", "KEINE WARNUNG", "CANARY", "NOT A WARNING")


def board_update(d: Delivery, board: BoardConfig, base_url: str, *, now: datetime | None = None) -> BoardUpdate:
    """What a canary board shows (ASCII, fitted to its lines and characters): "KONTROLLMELDUNG / KEINE WARNUNG",
    status Test, gone after a minute, with the absolute receipt URL its controller POSTs to once it shows it."""
    lines = tuple(line[:board.chars] for line in BOARD_LINES[:board.lines])
    expires = (now or datetime.now(UTC)) + timedelta(minutes=1)
    return BoardUpdate(board.id, BoardText(
        thread=d.thread, version=0, msg_type="Alert", status=STATUS, severity="Unknown", expires=expires, lines=lines,
        headline="Kontrollmeldung / Canary", instruction=BODY if board.charset == "utf-8" else "",
        receipt=base_url + receipt_path(probe_id(d.thread))))
