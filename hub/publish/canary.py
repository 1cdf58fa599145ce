"""Canaries (issue 17, section 2): a synthetic Test warning the hub sends itself, on a schedule, to the operator's
canary endpoints, to prove that each channel still delivers and how fast.

A canary round takes the whole path of a warning (:mod:`hub.publish.canary_watch` starts it):

1. **intake**: the round is one CAP 1.2 alert (:func:`alert_xml`: status ``Test``, scope ``Restricted``, the hub's
   canary sender :func:`sender_of`, an identifier with the round's random id, one info "Kontrollmeldung / Canary")
   that the hub ingests itself with origin ``canary`` (validated, stored, ``AlertStored``);
2. **decide**: the router decides it with the built-in canary decision before the rules, which never see it
   (:mod:`hub.decide.canary`);
3. **publish step**: the pipeline's writer job (:func:`queue_due`) ends the canary's thread and queues one outbox
   row per probe, and no publication: no page, feed, API, board or public stream can show it (invariant I3 by
   construction);
4. **delivery**: the channel's worker claims the rows, resolves them here (read at delivery time, like every
   warning's content), and sends them with the same encryption, signature, push service, circuit breaker and
   retries.

The alert names its probes (one canary to one endpoint, each with its own random id) in its ``parameter``
:data:`PARAM`, so whichever node decides and publishes it needs nothing from the node that made the round. Its
outbox rows are

- ``thread`` ``canary:<probe id>`` (:func:`is_canary`), ``publication_id`` 0, ``priority`` :data:`PRIORITY` (after
  every warning: a canary never delays one, and a channel too busy to carry it in time shows as late),
- expiring with the alert, two intervals after the round (a canary the hub could not decide or send in that time is
  of no use; a round decided later than that queues nothing).

The receiver acknowledges with a POST to :func:`receipt_path` (a service worker for Web Push, the receiving system
for a webhook). A 2xx from a push service or a webhook only says it was accepted: a channel that accepts and drops
shows as silent, and so does every channel when intake, decide or publish stop.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

from hub.cap.model import Alert, from_json
from hub.config.sections import BoardConfig
from hub.decide.canary import DECISION, ORIGIN
from hub.deliver import outbox
from hub.i18n.languages import code_of
from hub.ports import BoardText, BoardUpdate, Delivery, PushTarget, WebhookBody
from hub.store.clock import utc_iso
from hub.store.db import Store

log = logging.getLogger("warnhub.canary")

PREFIX = "canary:"
PRIORITY = 9
STATUS = "Test"
TITLE = "Kontrollmeldung / Canary"
BODY = ("Automatische Kontrollmeldung der Leitstelle, keine Warnung. / Automatic delivery check of the control "
        "room, not a warning.")
PARAM = "warnhub-canary-probe"
"""The alert's parameter naming one probe: ``<probe id> <channel> <recipient> <host>`` (``-`` for none)."""
KEEP_MS = 86_400_000
"""Finished canary rows older than this are deleted when the next round is queued."""


@dataclass(frozen=True, slots=True)
class Probe:
    """One canary to one endpoint: ``channel`` as the outbox names it (or ``sse``), ``recipient`` its id there."""

    id: str
    channel: str
    recipient: str
    host: str = ""


@dataclass(frozen=True, slots=True)
class Round:
    """A canary alert whose probes the publish step queued."""

    alert_id: int
    thread_id: int
    probes: tuple[Probe, ...]


def is_canary(thread: str) -> bool:
    return thread.startswith(PREFIX)


def probe_id(thread: str) -> str:
    return thread.removeprefix(PREFIX)


def new_id() -> str:
    return secrets.token_urlsafe(16)


def receipt_path(probe: str) -> str:
    return f"/api/v1/canary/{probe}/received"


def sender_of(hub_sender: str) -> str:
    """The CAP sender of the hub's canaries: its own sender's, marked, so no warning of the hub shares it."""
    return "canary." + hub_sender


def identifier_of(round_id: str) -> str:
    return f"warnhub.canary.{round_id}"


def _cap_time(value: datetime) -> str:
    return value.astimezone(UTC).replace(microsecond=0).isoformat()


def alert_xml(round_id: str, probes: Sequence[Probe], *, sender: str, sent: datetime, expires: datetime) -> bytes:
    """The round's CAP 1.2 alert: status Test, scope Restricted, one German/English info that says it is no
    warning, the probes as parameters. Never shaped for the public: no area, no severity."""
    params = "".join(f"<parameter><valueName>{PARAM}</valueName><value>{escape(_param(p))}</value></parameter>"
                     for p in probes)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
        f"<identifier>{escape(identifier_of(round_id))}</identifier><sender>{escape(sender)}</sender>"
        f"<sent>{_cap_time(sent)}</sent><status>{STATUS}</status><msgType>Alert</msgType><source>warnhub</source>"
        "<scope>Restricted</scope><restriction>Kontrollmeldung der Leitstelle, nur an ihre Kontrollempfänger / "
        "canary of the control room, to its canary endpoints only</restriction>"
        "<info><language>de-DE</language><category>Other</category><event>Kontrollmeldung</event>"
        "<responseType>None</responseType><urgency>Unknown</urgency><severity>Unknown</severity>"
        f"<certainty>Unknown</certainty><expires>{_cap_time(expires)}</expires><senderName>warnhub</senderName>"
        f"<headline>{TITLE}</headline><description>{escape(BODY)}</description>{params}</info></alert>"
    ).encode()


def _param(p: Probe) -> str:
    return f"{p.id} {p.channel} {p.recipient or '-'} {p.host or '-'}"


def probes_of(alert: Alert) -> tuple[Probe, ...]:
    """The probes a canary alert names (parameters :data:`PARAM`; a malformed one is left out)."""
    out = []
    for info in alert.infos:
        for v in info.parameters:
            parts = v.value.split()
            if v.value_name == PARAM and len(parts) == 4:
                pid, channel, recipient, host = (x if x != "-" else "" for x in parts)
                out.append(Probe(pid, channel, recipient, host))
    return tuple(out)


def queue_due(store: Store, *, now: datetime, limit: int = 20) -> list[Round]:
    """The publish step of canaries (on the writer): for every canary alert decided :data:`DECISION` whose thread
    is still open and which has not expired, end its thread and queue one outbox row per probe, in one transaction
    each (ending the thread is the claim: of two decide nodes only one queues a round). No publication is written.
    Returns the rounds queued (the SSE probes are the caller's to send)."""
    stamp = utc_iso(now)
    rows = store.conn.execute(
        "SELECT d.alert_id, d.thread_id, a.json, a.expires FROM decisions d JOIN alerts a ON a.id = d.alert_id"
        " JOIN threads t ON t.id = d.thread_id WHERE d.decision = ? AND a.origin = ? AND t.state IN"
        " ('active', 'updated') AND a.expires > ? ORDER BY d.alert_id LIMIT ?",
        (DECISION, ORIGIN, stamp, limit)).fetchall()
    out = []
    now_ms = int(now.timestamp() * 1000)
    for alert_id, thread_id, doc, expires in rows:
        try:
            probes = probes_of(from_json(doc))
        except Exception:  # noqa: BLE001 - an unreadable canary is ended unsent; the next round is a new one
            log.exception("canary alert %s cannot be read; ended without probes", alert_id)
            probes = ()
        not_after_ms = int(datetime.fromisoformat(expires.replace("Z", "+00:00")).timestamp() * 1000)
        with store.transaction() as conn:
            if conn.execute("UPDATE threads SET state = 'ended', updated_at = ? WHERE id = ?"
                            " AND state IN ('active', 'updated')", (stamp, thread_id)).rowcount != 1:
                continue
            queue_in(conn, [p for p in probes if p.channel != "sse"], now_ms=now_ms, not_after_ms=not_after_ms)
        out.append(Round(alert_id, thread_id, probes))
    return out


def queue_in(conn: Any, probes: Sequence[Probe], *, now_ms: int, not_after_ms: int) -> int:
    """Queue one outbox row per outbox probe (push, webhooks, boards) in the caller's transaction; old finished
    canary rows go. Returns the rows inserted."""
    rows = [outbox.NewDelivery(f"{PREFIX}{p.id}/{p.channel}/{p.recipient}", 0, PREFIX + p.id, p.channel,
                               p.recipient, p.host, PRIORITY, not_after_ms) for p in probes]
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


KEEP_ALERTS = timedelta(days=1)
"""Canary alerts whose thread ended longer ago than this are deleted by retention (:func:`prune`)."""


def prune(store: Store, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` canary threads (alert, decision, keys) that ended before ``before``; only threads that
    hold nothing but canaries. Returns the threads deleted (retention, hub.retention)."""
    with store.transaction() as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT t.id FROM threads t WHERE t.state NOT IN ('active', 'updated') AND t.updated_at < ?"
            " AND EXISTS (SELECT 1 FROM alerts a WHERE a.thread_id = t.id AND a.origin = ?)"
            " AND NOT EXISTS (SELECT 1 FROM alerts b WHERE b.thread_id = t.id AND b.origin != ?) LIMIT ?",
            (utc_iso(before), ORIGIN, ORIGIN, limit))]
        if ids:
            listed = json.dumps(ids)
            for sql in ("DELETE FROM decisions WHERE thread_id IN ({})", "DELETE FROM alerts WHERE thread_id IN ({})",
                        "DELETE FROM thread_keys WHERE thread_id IN ({})", "DELETE FROM threads WHERE id IN ({})"):
                conn.execute(sql.format("SELECT CAST(value AS BIGINT) FROM json_each(?)"), (listed,))
    return len(ids)
