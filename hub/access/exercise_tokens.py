"""Tokens that let a staff test device subscribe to exercises (the table ``exercise_tokens``).

A citizen subscription never receives exercises; a subscription with ``exercise: true`` (a staff test phone, which
receives only exercises) is created only with a token that a signed-in console user or the ``warnhub
exercise-token`` command issued. A token is shown once, stored only as its SHA-256, valid for
:data:`TTL_S` (24 h) and used once; issuing and using it are audited (who issued it, which subscription used it).

Functions take the :class:`~hub.store.db.Store` and run on its writer thread (``AsyncStore.run``).
"""

from __future__ import annotations

import hashlib
import secrets
import time

from hub.errors import HubError
from hub.store.db import Store

TTL_S = 24 * 3600
MAX_TOKEN_LEN = 128
REFUSED = ("Übungs-Abos nur mit einem gültigen Freischalt-Code der Leitstelle (24 h gültig, einmal verwendbar) / "
           "exercise subscriptions need a valid token from the control room (valid for 24 h, single use)")


class ExerciseRefused(HubError):
    """No valid, unexpired, unused exercise token; the message is for the person (German, then English)."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def issue(store: Store, issued_by: str, *, via: str = "console", ttl_s: int = TTL_S,
          now_ms: int | None = None, district: str = "") -> tuple[str, int]:
    """A new token issued by the console user ``issued_by`` (``via`` the console or the CLI): ``(token,
    expires_ms)``; audited (in the audit chain of ``district``, the issuer's). Expired and used tokens are deleted
    on the way."""
    now = _now_ms() if now_ms is None else now_ms
    token = secrets.token_urlsafe(24)
    expires = now + ttl_s * 1000
    with store.transaction() as conn:
        conn.execute("DELETE FROM exercise_tokens WHERE expires_ms <= ? OR used_ms IS NOT NULL", (now,))
        conn.execute("INSERT INTO exercise_tokens (token_hash, issued_by, issued_ms, expires_ms) VALUES (?,?,?,?)",
                     (_hash(token), issued_by, now, expires))
        store.audit(issued_by, "exercise_token.issue", "", {"via": via, "expires_ms": expires,
                                                                 "token_sha256": _hash(token)[:16]}, district=district)
    return token, expires


def redeem(store: Store, token: str | None, subscription_id: str, *, now_ms: int | None = None) -> str:
    """Use a token for a subscription (call inside the transaction that stores it): returns who issued it; raises
    :class:`ExerciseRefused` for a missing, unknown, expired or used token. Audited."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LEN:
        raise ExerciseRefused(REFUSED)
    now = _now_ms() if now_ms is None else now_ms
    with store.transaction() as conn:
        rows = conn.execute("UPDATE exercise_tokens SET used_ms=? WHERE token_hash=? AND used_ms IS NULL"
                           " AND expires_ms > ? RETURNING issued_by", (now, _hash(token), now)).fetchall()
        if not rows:
            raise ExerciseRefused(REFUSED)
        issued_by = str(rows[0][0])
        store.audit(issued_by, "exercise_token.use", subscription_id, {"token_sha256": _hash(token)[:16]})
    return issued_by
