"""Login throttling without lock-outs: growing delays per (user name, client address), a brake per address, and
failed logins audited in aggregate.

No stranger can keep the control room out. Failures count per (name, address) pair, so wrong passwords from one
address never delay the right password from another. After ``free_failures`` failures of a pair each further
attempt of that pair has to wait, ``first_delay_s`` doubling per failure up to ``max_delay_s``; the pair's count is
forgotten after ``window_s`` of quiet (counted from the end of its last wait) and at its next successful login. An
address that failed ``max_failures_addr`` times within ``window_s`` (all names together) is refused until enough of
those failures lie a window back (a pair's failures of one window count until its last one does). A refused
attempt is answered at once: its password is never checked.

Attempts are counted before the password is verified (:func:`admit`: check and count in one store transaction on
the one writer thread), so concurrent attempts cannot all pass the check before the first failure is counted; a
successful login takes its count back (:func:`succeeded`).

Table ``login_failures``: one row per (name, address) and window (``window_s`` from the row's first attempt). When
its window has ended the row becomes ONE ``login.failed`` audit entry (counts, first and last attempt, reason) that
holds no address: the audit log is a hash chain kept for years. The address stays in the row only, and
:func:`purge` deletes rows ``retention_s`` after their last attempt (DSGVO Art. 5(1)(e), storage limitation). A name
no user has is stored as ``""`` (``unknown name``): people type passwords into the name field, so what was typed is
never stored, not even as a hash.

Every function taking a :class:`Store` runs on the store's writer thread.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hub.store.clock import utc_iso
from hub.store.db import Store

UNKNOWN_NAME = ""
"""The name column of attempts on a name no user has."""


@dataclass(frozen=True, slots=True)
class Throttle:
    """See the module docstring; the defaults are ``[console]``'s (hub.config.sections.ConsoleSection)."""

    free_failures: int = 5
    first_delay_s: float = 2.0
    max_delay_s: float = 600.0
    max_failures_addr: int = 30
    window_s: float = 900.0
    retention_s: float = 7 * 86400.0

    def delay(self, streak: int) -> float:
        """The wait after ``streak`` failures of a pair in a row."""
        if streak < self.free_failures:
            return 0.0
        return min(self.max_delay_s, self.first_delay_s * 2.0 ** min(streak - self.free_failures, 32))


DEFAULT_THROTTLE = Throttle()


@dataclass(frozen=True, slots=True)
class Admission:
    row: int
    """The ``login_failures`` row that counted this attempt."""
    retry_after: float | None
    """Set: refused, the password must not be checked; seconds until the next attempt may pass."""
    delay: float = 0.0
    """Admitted: the wait the pair now has if this attempt fails (0: none)."""


def address_key(remote: str | None) -> str:
    """Throttling key of an address: IPv6 by /64 (one host often owns a whole /64), IPv4 as is."""
    if not remote:
        return "unknown"
    try:
        addr = ipaddress.ip_address(remote)
    except ValueError:
        return remote[:64]
    if addr.version == 6:
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


def _seconds(until: str, now: datetime) -> float:
    return max(1.0, (datetime.fromisoformat(until) - now).total_seconds())


def _close(store: Store, row: tuple[Any, ...], now: datetime) -> None:
    """Audit one ended window of a pair (no address) and mark it audited."""
    rid, name, reason, opened, seen, failures, refused = row
    store.audit("anonymous", "login.failed", name,
                {"reason": reason if failures else "throttled", "failures": failures, "refused": refused,
                 "first": opened, "last": seen, "ref": rid}, now=now)
    store.conn.execute("UPDATE login_failures SET audited=1 WHERE id=?", (rid,))


_CLOSE_COLS = "id, name, reason, opened, seen, failures, refused"


def _pair(store: Store, name: str, addr: str, throttle: Throttle,
          now: datetime) -> tuple[int | None, int, str | None]:
    """The pair's open row (None when its window ended: that one is audited now), its streak and wait."""
    row = store.conn.execute(
        f"SELECT {_CLOSE_COLS}, audited, last_failure, streak, not_before FROM login_failures"
        " WHERE name=? AND addr=? ORDER BY id DESC LIMIT 1", (name, addr)).fetchone()
    if row is None:
        return None, 0, None
    audited, last_failure, streak, not_before = row[7:]
    rid: int | None = row[0]
    if not audited and row[3] <= utc_iso(now - timedelta(seconds=throttle.window_s)):
        _close(store, row[:7], now)
        audited, rid = 1, None
    elif audited:
        rid = None
    quiet_from = max(last_failure or row[3], not_before or "")
    if datetime.fromisoformat(quiet_from) + timedelta(seconds=throttle.window_s) <= now:
        streak, not_before = 0, None
    return rid, streak, not_before


def _address_wait(store: Store, addr: str, throttle: Throttle, now: datetime) -> float | None:
    """Seconds until the address is under its limit again; None if it is."""
    window = timedelta(seconds=throttle.window_s)
    rows = store.conn.execute("SELECT failures, last_failure FROM login_failures WHERE addr=? AND last_failure > ?"
                              " AND failures > 0 ORDER BY last_failure", (addr, utc_iso(now - window))).fetchall()
    excess = sum(f for f, _ in rows) - throttle.max_failures_addr + 1
    if excess <= 0:
        return None
    for failures, last in rows:
        excess -= failures
        if excess <= 0:
            return _seconds(utc_iso(datetime.fromisoformat(last) + window), now)
    return throttle.window_s  # not reached: the rows sum to more than the excess


def admit(store: Store, name: str, remote: str | None, reason: str, *, throttle: Throttle,
          now: datetime) -> Admission:
    """Check the pair's wait and the address brake and count the attempt, in one transaction: a refused attempt as
    ``refused``, an admitted one as a failure (until :func:`succeeded` takes it back). ``name`` is a user's name or
    :data:`UNKNOWN_NAME`; ``reason`` what a failure of this attempt will be (``wrong password``, ``unknown name``,
    ``disabled``)."""
    addr, stamp = address_key(remote), utc_iso(now)
    with store.transaction() as conn:
        rid, streak, not_before = _pair(store, name, addr, throttle, now)
        if rid is None:
            rid = int(conn.execute(
                "INSERT INTO login_failures (name, addr, reason, opened, seen, streak, not_before)"
                " VALUES (?,?,?,?,?,?,?)", (name, addr, reason, stamp, stamp, streak, not_before)).lastrowid or 0)
        wait = _seconds(not_before, now) if not_before is not None and not_before > stamp else None
        wait = max(filter(None, (wait, _address_wait(store, addr, throttle, now))), default=None)
        if wait is not None:
            conn.execute("UPDATE login_failures SET refused=refused+1, seen=?, streak=?, not_before=? WHERE id=?",
                         (stamp, streak, not_before, rid))
            return Admission(rid, wait)
        delay = throttle.delay(streak + 1)
        conn.execute("UPDATE login_failures SET failures=failures+1, streak=?, reason=?, seen=?, last_failure=?,"
                     " not_before=? WHERE id=?",
                     (streak + 1, reason, stamp, stamp, utc_iso(now + timedelta(seconds=delay)) if delay else None,
                      rid))
    return Admission(rid, None, delay)


def succeeded(store: Store, row: int) -> None:
    """A counted attempt was a successful login: take its failure back and forget the pair's streak."""
    with store.transaction() as conn:
        conn.execute("UPDATE login_failures SET failures=max(failures-1, 0), streak=0, not_before=NULL WHERE id=?",
                     (row,))
        conn.execute("DELETE FROM login_failures WHERE id=? AND failures=0 AND refused=0", (row,))


def clear(store: Store, name: str, *, now: datetime) -> int:
    """Lift the throttle of a user name (``warnhub user unlock``, a new password): its open windows are audited
    first (the ``login.failed`` entries stay complete), then every row of the name is deleted, so neither its
    pairs' waits nor its failures in an address brake remain. Returns the rows deleted."""
    with store.transaction() as conn:
        for row in conn.execute(f"SELECT {_CLOSE_COLS} FROM login_failures WHERE name=? AND audited=0 ORDER BY id",
                                (name,)).fetchall():
            _close(store, row, now)
        return conn.execute("DELETE FROM login_failures WHERE name=?", (name,)).rowcount


def purge(store: Store, *, throttle: Throttle, now: datetime) -> int:
    """Audit every window that has ended; delete rows (and with them the addresses) ``retention_s`` after their
    last attempt. Returns the rows deleted."""
    with store.transaction() as conn:
        ended = conn.execute(f"SELECT {_CLOSE_COLS} FROM login_failures WHERE audited=0 AND opened <= ? ORDER BY id",
                             (utc_iso(now - timedelta(seconds=throttle.window_s)),)).fetchall()
        for row in ended:
            _close(store, row, now)
        return conn.execute("DELETE FROM login_failures WHERE seen < ? AND audited=1",
                            (utc_iso(now - timedelta(seconds=throttle.retention_s)),)).rowcount
