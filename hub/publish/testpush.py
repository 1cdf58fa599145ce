"""A test notification a subscriber sends themselves (issue 18, section 2): "does my phone really get warnings?"

It goes the way a warning goes, through the push channel's outbox, its worker, the same encryption and the same push
service, so that its arrival proves the path; and it is never a warning: no publication, no thread of the store, no
page, feed, board or webhook. Its outbox row is one ``push`` row with

- ``thread`` ``test:<test id>`` (:func:`is_test`; the push resolver builds its payload here, :func:`target`),
- ``publication_id`` 0 (no publication has it), ``priority`` 9 (after every warning), expiring after :data:`TTL_S`.

The table ``push_tests`` holds, per test, its random id, the subscription's id and when it was asked for and when the
service worker said it arrived; nothing about the person. Rows older than a day are deleted when the next test is
asked for, with the finished outbox rows of tests. A subscription may ask :data:`PER_HOUR` tests per hour.

The service worker reports receipt with a POST to the ``receipt`` path in the payload; the test's random id is what
authorises it (it reaches only the subscription's own browser, encrypted).
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hub.deliver import outbox
from hub.errors import HubError
from hub.i18n.catalogs import translator
from hub.i18n.languages import code_of
from hub.ports import Delivery, PushTarget
from hub.publish import subscriptions as subs
from hub.store.db import Store

PREFIX = "test:"
PER_HOUR = 3
WINDOW_MS = 3_600_000
KEEP_MS = 86_400_000
TTL_S = 120
"""The push service may hold a test this long; a test that arrives later than the page waits is of no use."""
PRIORITY = 9
WAIT_S = 30
"""How long the page waits for the receipt before it says what to check."""


class TooManyTests(HubError):
    """More than :data:`PER_HOUR` tests of one subscription within an hour."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("Höchstens 3 Test-Benachrichtigungen pro Stunde, bitte später erneut versuchen / at most 3 "
                         "test notifications per hour, please try again later")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class Started:
    test_id: str
    created_ms: int


def is_test(thread: str) -> bool:
    return thread.startswith(PREFIX)


def receipt_path(sub_id: str, test_id: str) -> str:
    return f"/api/v1/subscriptions/{sub_id}/test/{test_id}/received"


def _host(endpoint: str) -> str:
    rest = endpoint.partition("://")[2]
    return rest.partition("/")[0].lower()


def start(store: Store, sub_id: str, token: str, *, now_ms: int) -> Started | None:
    """Queue a test push for the subscription; None for an unknown id or a wrong token (alike). Raises
    :class:`TooManyTests` (with the seconds to wait) when the subscription asked :data:`PER_HOUR` within the hour."""
    with store.transaction() as conn:
        sub = subs.get(store, sub_id, token)
        if sub is None:
            return None
        conn.execute("DELETE FROM push_tests WHERE created_ms < ?", (now_ms - KEEP_MS,))
        conn.execute("DELETE FROM outbox WHERE thread >= ? AND thread < ? AND state NOT IN ('queued', 'inflight')"
                     " AND finished_ms < ?", (PREFIX, PREFIX[:-1] + ";", now_ms - KEEP_MS))
        recent = [r[0] for r in conn.execute(
            "SELECT created_ms FROM push_tests WHERE subscription_id=? AND created_ms > ? ORDER BY created_ms",
            (sub_id, now_ms - WINDOW_MS))]
        if len(recent) >= PER_HOUR:
            raise TooManyTests(max(1, math.ceil((recent[0] + WINDOW_MS - now_ms) / 1000)))
        test_id = secrets.token_urlsafe(16)
        conn.execute("INSERT INTO push_tests (id, subscription_id, created_ms) VALUES (?, ?, ?)",
                     (test_id, sub_id, now_ms))
        thread = PREFIX + test_id
        outbox.enqueue_in(conn, [outbox.NewDelivery(f"{thread}/push/{sub_id}", 0, thread, "push", sub_id,
                                                    _host(sub.endpoint), PRIORITY, now_ms + TTL_S * 1000)],
                          now_ms=now_ms)
    return Started(test_id, now_ms)


_STATES = {"queued": "sending", "inflight": "sending", "done": "sent"}


def state(store: Store, sub_id: str, token: str, test_id: str) -> dict[str, Any] | None:
    """What became of a test: ``sending`` (in the outbox), ``sent`` (the push service took it), ``received`` (the
    service worker showed it) or ``failed`` (the push service refused it, or it expired unsent); None for an unknown
    test, id or token."""
    if subs.get(store, sub_id, token) is None:
        return None
    row = store.conn.execute("SELECT created_ms, received_ms FROM push_tests WHERE id=? AND subscription_id=?",
                             (test_id, sub_id)).fetchone()
    if row is None:
        return None
    delivery = store.conn.execute("SELECT state FROM outbox WHERE key=?",
                                  (f"{PREFIX}{test_id}/push/{sub_id}",)).fetchone()
    sent = _STATES.get(delivery[0], "failed") if delivery else "failed"
    return {"id": test_id, "state": "received" if row[1] is not None else sent, "created_ms": row[0],
            "received_ms": row[1], "wait_s": WAIT_S}


def received(store: Store, sub_id: str, test_id: str, *, now_ms: int) -> bool:
    """The service worker showed the test: recorded once (a redelivered push changes nothing). False for an
    unknown test."""
    with store.transaction() as conn:
        conn.execute("UPDATE push_tests SET received_ms=? WHERE id=? AND subscription_id=? AND received_ms IS NULL",
                     (now_ms, test_id, sub_id))
        return conn.execute("SELECT 1 FROM push_tests WHERE id=? AND subscription_id=?",
                            (test_id, sub_id)).fetchone() is not None


def payload(sub_id: str, test_id: str, key: str, languages: Sequence[str]) -> bytes:
    """The push's JSON: marked ``test``, never shaped like a warning (no severity, no headline, no publication)."""
    lang = next((c for tag in languages if (c := code_of(tag)) is not None), "de")
    t = translator(lang, "subscribe")
    doc = {"key": key, "test": True, "thread": PREFIX + test_id, "lang": lang,
           "title": t.gettext("Test: Ihre Warn-Benachrichtigungen kommen an"),
           "body": t.gettext("Dies ist eine Test-Benachrichtigung, die Sie selbst angefordert haben. Es ist keine "
                             "Warnung."),
           "receipt": receipt_path(sub_id, test_id), "url": "/abonnieren"}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def target(d: Delivery, endpoint: str, p256dh: str, auth: str, languages: Sequence[str]) -> PushTarget:
    """The push of a test's outbox row (for the push channel's resolver, :mod:`hub.deliver.setup`)."""
    body = payload(d.recipient, d.thread.removeprefix(PREFIX), d.key, languages)
    return PushTarget(endpoint, p256dh, auth, body, TTL_S, "high", None)
