"""Who may use the control-room console: local users, roles, scopes, sessions and logins.

Owns the tables ``users`` and ``sessions`` in the store (hub/store/schema.py), password hashing (Argon2id through
argon2-cffi, rehashed on login when the parameters change), the permission model, and the scope checks an author's
warning must pass on the server live in :mod:`hub.access.scopes`.

Every function taking a :class:`Store` runs on the store's one writer thread (``AsyncStore.run``), except password
verification (:func:`check_password`), which is slow on purpose and belongs in a worker thread. Passwords never
leave this module: not in the audit log, not in logs, not in errors.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import secrets
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hub.access import login_throttle
from hub.access.login_throttle import DEFAULT_THROTTLE, Throttle
from hub.config.districts import Districts, kreis_of
from hub.errors import AuthError
from hub.geo.registry import Registry
from hub.store.clock import now_utc, utc_iso
from hub.store.db import Store

ROLES = ("viewer", "author", "approver", "admin", "provider")
PERMISSIONS = ("read", "compose", "approve", "admin", "health")
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "author": frozenset({"read", "compose"}),
    "approver": frozenset({"read", "compose", "approve"}),
    # admin manages users and may allow the single-person path; it does not compose or approve by itself
    "admin": frozenset({"read", "admin"}),
    # the provider runs the hub for several districts (issue 19): manages their users (CLI) and sees their health
    # (/provider/), never content: no ``read``, no scopes, so no district and no console content route
    "provider": frozenset({"health"}),
}
PROVIDER = "provider"
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
"""Longer input is refused before hashing: no one types more, and hashing megabytes is a cheap denial of service."""
_NAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")

HASHER = PasswordHasher()
"""Argon2id with argon2-cffi's defaults (RFC 9106 low-memory profile: t=3, m=64 MiB, p=4)."""


# -- users ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    roles: frozenset[str]
    scopes: tuple[str, ...]
    """ARS (12 digits) of the regions the user may warn."""
    disabled: bool

    def can(self, permission: str) -> bool:
        if self.disabled:
            return False
        return any(permission in ROLE_PERMISSIONS.get(role, ()) for role in self.roles)

    def permissions(self) -> list[str]:
        return [p for p in PERMISSIONS if self.can(p)]


_USER_COLS = "id, name, roles, scopes, disabled"


def _user(row: tuple[Any, ...]) -> User:
    return User(id=row[0], name=row[1], roles=frozenset(json.loads(row[2])), scopes=tuple(json.loads(row[3])),
                disabled=bool(row[4]))


def normalise_name(name: str) -> str:
    """User names are case-insensitive: stored and compared in lower case."""
    norm = name.strip().lower()
    if not _NAME.match(norm):
        raise AuthError(f"Ungültiger Benutzername {name[:64]!r}: a-z, 0-9, '.', '_', '-', '@', höchstens 64 Zeichen / "
                        "invalid user name: a-z, 0-9, '.', '_', '-', '@', at most 64 characters")
    return norm


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"Passwort zu kurz: mindestens {MIN_PASSWORD} Zeichen / "
                        f"password too short: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AuthError(f"Passwort zu lang: höchstens {MAX_PASSWORD} Zeichen / "
                        f"password too long: at most {MAX_PASSWORD} characters")


def check_roles(roles: Iterable[str]) -> frozenset[str]:
    found = frozenset(roles)
    unknown = sorted(found - set(ROLES))
    if unknown or not found:
        raise AuthError(f"Unbekannte oder fehlende Rolle {', '.join(unknown)} (erlaubt / allowed: {', '.join(ROLES)})")
    return found


def check_scopes(scopes: Iterable[str], registry: Registry, *, roles: Iterable[str] = (),
                 districts: Districts | None = None) -> tuple[str, ...]:
    """Region keys as 12-digit ARS: also accepts 2/3/5/9-digit prefixes and 8-digit AGS; refuses unknown keys.

    With ``roles`` and ``districts`` (issue 19): a provider has no scope (and no other role: it sees no district's
    content); every other user's scopes must lie in exactly one district when the hub serves several (each
    authority's users are its own)."""
    if PROVIDER in set(roles):
        if set(roles) != {PROVIDER} or any(s.strip() for s in scopes):
            raise AuthError("Die Rolle provider steht allein und ohne Zuständigkeitsbereich / the provider role "
                            "stands alone, without a scope")
        return ()
    out: list[str] = []
    for code in scopes:
        code = code.strip()
        ars = registry.from_ags(code) if len(code) == 8 else registry.from_ars(code)
        if ars is None:
            raise AuthError(f"Unbekannter Regionalschlüssel / unknown region key: {code!r}")
        out.append(ars)
    if not out:
        raise AuthError("Mindestens ein Zuständigkeitsbereich (--scope) / at least one scope (--scope) is needed")
    if districts is not None and districts.multi and districts.of_scopes(out) is None:
        slugs = ", ".join(d.slug for d in districts)
        raise AuthError(f"Die Zuständigkeitsbereiche müssen in genau einem Kreis liegen ({slugs}) / the scopes must "
                        f"lie in exactly one district: {', '.join(out)}")
    return tuple(dict.fromkeys(out))


def district_of(user_scopes: Iterable[str], districts: Districts | None) -> str:
    """The Kreis key of the district a user belongs to, for its audit chain (``''``: none, or not known)."""
    found = districts.of_scopes(list(user_scopes)) if districts is not None and list(user_scopes) else None
    return found.ars if found is not None else ""


def session_chain(user_scopes: Iterable[str]) -> str:
    """The audit chain of a user's sign-ins, sign-outs and expired sessions: the Kreis all their scopes lie in (their
    district's, issue 19), else ``''`` (the hub's: a provider, or a user of no one Kreis)."""
    keys = list(user_scopes)
    kreise = {kreis_of(a) for a in keys}
    kreis = next(iter(kreise)) if len(kreise) == 1 and all(len(a) == 12 for a in keys) else ""
    return kreis if kreis[3:5] not in ("", "00") else ""


def hash_password(password: str, hasher: PasswordHasher | None = None) -> str:
    check_password_policy(password)
    return (hasher or HASHER).hash(password)


@functools.cache
def _dummy_hash() -> str:
    return HASHER.hash(secrets.token_urlsafe(16))


def check_password(stored_hash: str | None, password: str,
                   hasher: PasswordHasher | None = None) -> tuple[bool, str | None]:
    """Verify a password: ``(ok, new_hash)``, ``new_hash`` set when the hash should be replaced (parameters changed).

    Slow by design (run it in a worker thread). Without a stored hash (unknown user) a dummy hash is verified, so an
    unknown name costs about as long as a wrong password.
    """
    h = hasher or HASHER
    if len(password) > MAX_PASSWORD:
        password = password[:MAX_PASSWORD]  # still spend the time; the result is False anyway (policy caps at MAX)
        stored_hash = None
    try:
        h.verify(stored_hash or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False, None
    if stored_hash is None:
        return False, None
    return True, (h.hash(password) if h.check_needs_rehash(stored_hash) else None)


def add_user(store: Store, name: str, roles: Iterable[str], scopes: Iterable[str], password: str, *, actor: str,
             registry: Registry, hasher: PasswordHasher | None = None, now: datetime | None = None,
             districts: Districts | None = None) -> User:
    """A new user; ``districts``: the hub's, whose rules on scopes it must meet (:func:`check_scopes`), audited in
    its district's chain."""
    name = normalise_name(name)
    role_set = check_roles(roles)
    ars = check_scopes(scopes, registry, roles=role_set, districts=districts)
    digest = hash_password(password, hasher)
    stamp = utc_iso(now or now_utc())
    try:
        with store.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO users (name, password_hash, roles, scopes, disabled, created, updated, password_changed)"
                " VALUES (?,?,?,?,0,?,?,?)",
                (name, digest, json.dumps(sorted(role_set)), json.dumps(list(ars)), stamp, stamp, stamp))
    except sqlite3.IntegrityError:
        raise AuthError(f"Benutzer {name!r} gibt es schon / user {name!r} already exists") from None
    store.audit(actor, "user.add", name, {"roles": sorted(role_set), "scopes": list(ars)}, now=now,
                district=district_of(ars, districts))
    return User(int(cur.lastrowid or 0), name, role_set, ars, False)


def get_user(store: Store, name: str) -> User | None:
    row = store.conn.execute(f"SELECT {_USER_COLS} FROM users WHERE name=?", (name.strip().lower(),)).fetchone()
    return _user(row) if row else None


def _existing(store: Store, name: str) -> User:
    user = get_user(store, name)
    if user is None:
        raise AuthError(f"Unbekannter Benutzer / unknown user: {name!r}")
    return user


def list_users(store: Store) -> list[dict[str, Any]]:
    rows = store.conn.execute(f"SELECT {_USER_COLS}, created, password_changed, last_login FROM users ORDER BY name")
    out = []
    for row in rows:
        u = _user(row[:5])
        out.append({"id": u.id, "name": u.name, "roles": sorted(u.roles), "scopes": list(u.scopes),
                    "disabled": u.disabled, "created": row[5], "password_changed": row[6], "last_login": row[7]})
    return out


def set_password(store: Store, name: str, password: str, *, actor: str, hasher: PasswordHasher | None = None,
                 now: datetime | None = None, districts: Districts | None = None) -> User:
    """New password; every session of the user ends (whoever knew the old one is signed out) and its login
    throttle is lifted (:func:`unlock`)."""
    user = _existing(store, name)
    digest = hash_password(password, hasher)
    stamp = utc_iso(now or now_utc())
    with store.transaction() as conn:
        conn.execute("UPDATE users SET password_hash=?, password_changed=?, updated=? WHERE id=?",
                     (digest, stamp, stamp, user.id))
        ended = conn.execute("DELETE FROM sessions WHERE user_id=?", (user.id,)).rowcount
    cleared = login_throttle.clear(store, user.name, now=now or now_utc())
    store.audit(actor, "user.set_password", user.name, {"sessions_ended": ended, "throttle_cleared": cleared},
                now=now, district=district_of(user.scopes, districts))
    return user


def unlock(store: Store, name: str, *, actor: str, now: datetime | None = None,
           districts: Districts | None = None) -> tuple[User, int]:
    """Lift the login throttle of a user (``warnhub user unlock``): the waits of all its (name, address) pairs and
    its failures in address brakes are forgotten (:func:`hub.access.login_throttle.clear`). Audited as ``user.unlock``.
    Returns the user and the throttle rows cleared."""
    user = _existing(store, name)
    cleared = login_throttle.clear(store, user.name, now=now or now_utc())
    store.audit(actor, "user.unlock", user.name, {"throttle_cleared": cleared}, now=now,
                district=district_of(user.scopes, districts))
    return user, cleared


def set_disabled(store: Store, name: str, disabled: bool, *, actor: str, now: datetime | None = None,
                 districts: Districts | None = None) -> User:
    """Disable (ending every session at once) or enable a user."""
    user = _existing(store, name)
    stamp = utc_iso(now or now_utc())
    with store.transaction() as conn:
        conn.execute("UPDATE users SET disabled=?, updated=? WHERE id=?", (int(disabled), stamp, user.id))
        ended = conn.execute("DELETE FROM sessions WHERE user_id=?", (user.id,)).rowcount if disabled else 0
    store.audit(actor, "user.disable" if disabled else "user.enable", user.name, {"sessions_ended": ended}, now=now,
                district=district_of(user.scopes, districts))
    return _existing(store, name)


# -- login ---------------------------------------------------------------------------------------------------------


def throttle_of(console: Any) -> Throttle:
    """The throttle the config's ``[console]`` section asks for (hub.config.sections.ConsoleSection)."""
    return Throttle(free_failures=console.login_free_failures, first_delay_s=float(console.login_first_delay_s),
                    max_delay_s=float(console.login_max_delay_s),
                    max_failures_addr=console.max_failures_per_address, window_s=console.failure_window_min * 60.0,
                    retention_s=console.failed_login_retention_days * 86400.0)


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """What the first step of a login found and counted (see :func:`login_begin`)."""

    name: str
    """The user's name; ``""`` when no user has the name typed (which is not kept: it may be a password)."""
    remote: str
    user: User | None
    password_hash: str | None
    row: int
    """The throttle row that counted the attempt."""
    retry_after: float | None
    """Set: refused by the throttle, the password is not checked; seconds to wait."""
    delay: float = 0.0
    """If this attempt fails, the pair's next attempt has to wait this long."""


@dataclass(frozen=True, slots=True)
class LoginResult:
    user: User | None
    """Set on success only."""
    reason: str
    """``ok``, ``unknown name``, ``wrong password``, ``disabled`` or ``throttled``."""
    retry_after: float | None = None
    """Seconds before the next attempt of this name from this address can pass (throttled, or a failure that
    started a wait)."""


def login_begin(store: Store, name: str, remote: str, *, throttle: Throttle = DEFAULT_THROTTLE,
                now: datetime | None = None) -> LoginAttempt:
    """Step 1 (store thread): find the user, and check and count the attempt with the throttle
    (:func:`hub.access.login_throttle.admit`) before any password is checked."""
    norm = name.strip().lower()[:200]
    row = store.conn.execute(f"SELECT {_USER_COLS}, password_hash FROM users WHERE name=?", (norm,)).fetchone()
    user = _user(row[:5]) if row else None
    reason = "unknown name" if user is None else "disabled" if user.disabled else "wrong password"
    key = user.name if user is not None else login_throttle.UNKNOWN_NAME
    admission = login_throttle.admit(store, key, remote, reason, throttle=throttle, now=now or now_utc())
    return LoginAttempt(key, remote, user, row[5] if row else None, admission.row, admission.retry_after,
                        admission.delay)


def login_failed(attempt: LoginAttempt, ok: bool) -> LoginResult | None:
    """The refusal for an attempt after step 2 (:func:`check_password`), or None when it signs the user in. Writes
    nothing: the failure was counted in step 1 and is audited with its window (:mod:`hub.access.login_throttle`)."""
    if attempt.retry_after is not None:
        return LoginResult(None, "throttled", attempt.retry_after)
    user = attempt.user
    reason = ("unknown name" if user is None else "disabled" if user.disabled else "wrong password" if not ok
              else None)
    return None if reason is None else LoginResult(None, reason, attempt.delay or None)


def login_finish(store: Store, attempt: LoginAttempt, ok: bool, new_hash: str | None, *,
                 now: datetime | None = None) -> LoginResult:
    """Step 3 (store thread), after :func:`check_password` (step 2, in a worker thread): on success take the
    counted failure back, store a rehashed password and audit the login."""
    refused = login_failed(attempt, ok)
    if refused is not None:
        return refused
    user = attempt.user
    assert user is not None
    now = now or now_utc()
    detail: dict[str, Any] = {"remote": attempt.remote, "reason": "ok"}
    with store.transaction() as conn:
        login_throttle.succeeded(store, attempt.row)
        conn.execute("UPDATE users SET last_login=? WHERE id=?", (utc_iso(now), user.id))
        if new_hash is not None:
            conn.execute("UPDATE users SET password_hash=? WHERE id=?", (new_hash, user.id))
            detail["rehashed"] = True
    store.audit(user.name, "login.ok", user.name, detail, now=now, district=session_chain(user.scopes))
    return LoginResult(user, "ok")


def authenticate(store: Store, name: str, password: str, remote: str, *, throttle: Throttle = DEFAULT_THROTTLE,
                 hasher: PasswordHasher | None = None, now: datetime | None = None) -> LoginResult:
    """All three steps in this thread (CLI and tests; the web runs step 2 in its own small pool)."""
    attempt = login_begin(store, name, remote, throttle=throttle, now=now)
    ok, new_hash = (False, None)
    if attempt.retry_after is None:
        ok, new_hash = check_password(attempt.password_hash, password, hasher)
    return login_finish(store, attempt, ok, new_hash, now=now)


# -- sessions ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Session:
    token_hash: str
    user_id: int
    created: datetime
    last_seen: datetime
    csrf: str
    remote: str


TOUCH_S = 15.0
"""``last_seen`` is written at most this often per session (every console poll would otherwise be a write)."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(store: Store, user: User, remote: str, *, now: datetime | None = None) -> tuple[str, Session]:
    """A new session: returns the token for the cookie (only its SHA-256 is stored) and the session."""
    now = now or now_utc()
    token = secrets.token_urlsafe(32)
    session = Session(token_hash(token), user.id, now, now, secrets.token_urlsafe(32), remote)
    with store.transaction() as conn:
        conn.execute("INSERT INTO sessions (token_hash, user_id, created, last_seen, csrf, remote)"
                     " VALUES (?,?,?,?,?,?)",
                     (session.token_hash, user.id, utc_iso(now), utc_iso(now), session.csrf, remote))
    return token, session


def load_session(store: Store, token: str, *, idle: timedelta, max_age: timedelta,
                 now: datetime | None = None) -> tuple[User, Session] | None:
    """The user and session of a token; None if unknown, idle too long, too old, or the user is disabled (such a
    session is deleted, and the audit log says why it ended)."""
    now = now or now_utc()
    digest = token_hash(token)
    row = store.conn.execute(
        "SELECT s.user_id, s.created, s.last_seen, s.csrf, s.remote, u.id, u.name, u.roles, u.scopes, u.disabled"
        " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash=?", (digest,)).fetchone()
    if row is None:
        return None
    user = _user(row[5:])
    session = Session(digest, row[0], datetime.fromisoformat(row[1]), datetime.fromisoformat(row[2]), row[3], row[4])
    why = ("idle timeout" if now - session.last_seen > idle else "maximum age" if now - session.created > max_age
           else "disabled" if user.disabled else None)
    if why is not None:
        with store.transaction() as conn:
            gone = conn.execute("DELETE FROM sessions WHERE token_hash=?", (digest,)).rowcount
        if gone:
            store.audit(user.name, "session.expired", user.name, {"reason": why}, now=now,
                        district=session_chain(user.scopes))
        return None
    if (now - session.last_seen).total_seconds() >= TOUCH_S:
        with store.transaction() as conn:
            conn.execute("UPDATE sessions SET last_seen=? WHERE token_hash=?", (utc_iso(now), digest))
    return user, session


def end_session(store: Store, token: str, *, reason: str = "logout", now: datetime | None = None) -> bool:
    """Delete a session (logout); audited when there was one."""
    digest = token_hash(token)
    row = store.conn.execute("SELECT u.name, s.remote, u.scopes FROM sessions s JOIN users u ON u.id = s.user_id"
                             " WHERE s.token_hash=?", (digest,)).fetchone()
    if row is None:
        return False
    with store.transaction() as conn:
        conn.execute("DELETE FROM sessions WHERE token_hash=?", (digest,))
    store.audit(row[0], "logout", row[0], {"remote": row[1], "reason": reason}, now=now,
                district=session_chain(json.loads(row[2])))
    return True


def purge(store: Store, *, idle: timedelta, max_age: timedelta, throttle: Throttle = DEFAULT_THROTTLE,
          now: datetime | None = None) -> int:
    """Delete sessions past their idle or maximum age; audit ended windows of failed logins and delete them (with
    their addresses) after the retention (:func:`hub.access.login_throttle.purge`). Returns sessions removed."""
    now = now or now_utc()
    with store.transaction() as conn:
        n = conn.execute("DELETE FROM sessions WHERE last_seen < ? OR created < ?",
                         (utc_iso(now - idle), utc_iso(now - max_age))).rowcount
    login_throttle.purge(store, throttle=throttle, now=now)
    return n
