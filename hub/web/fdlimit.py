"""Open files: the hub raises its soft ``RLIMIT_NOFILE`` to the hard limit at start, keeps descriptors in reserve
for intake and the store, and rate-limits asyncio's accept-error log line.

Measured before this existed: at systemd's default soft limit of 1024, 1,100 stream clients that never read took
every descriptor; intake failed with "Too many open files", ``/healthz`` and publishing stopped, and asyncio logged
"socket.accept() out of system resource" thousands of times a second. Now:

- :func:`raise_limit` lifts the soft limit to the hard one (systemd's default hard limit is 524288).
- :class:`FdBudget` (one per process, :func:`budget`) says how many descriptors are free. The web server's accept
  path (:class:`hub.web.site.GuardedSite`) answers a new connection with a short 503 and closes it while fewer than
  ``reserve`` are free, and a new event stream needs ``2 * reserve`` free (:mod:`hub.web.live`), so the web side
  can never take the descriptors that intake, the store and outgoing deliveries need.
- :class:`AcceptErrorFilter` on the ``asyncio`` logger lets one accept-error line through per interval, with the
  count of those it held back.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from collections.abc import Callable

log = logging.getLogger("warnhub.fdlimit")

DEFAULT_RESERVE = 64
RECOUNT_S = 0.05
"""Counting /proc/self/fd costs about a microsecond per descriptor: recount at most this often."""
ACCEPT_ERROR = "socket.accept() out of system resource"


def raise_limit() -> tuple[int, int]:
    """Raise the soft open-file limit to the hard one (at most 1,048,576); returns ``(before, after)``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    want = min(want, 1 << 20)
    if soft == resource.RLIM_INFINITY or want <= soft:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError) as err:
        log.warning("cannot raise the open-file limit from %d to %d: %s", soft, want, err)
        return soft, soft
    return soft, want


def _count_open() -> int:
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # the listing's own descriptor
    except OSError:
        return 0


class FdBudget:
    """Free descriptors of this process: ``limit - open``, counted at most every :data:`RECOUNT_S` (descriptors
    taken in between are added by :meth:`took`)."""

    def __init__(self, reserve: int = DEFAULT_RESERVE, *, count: Callable[[], int] = _count_open,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.reserve = reserve
        self._count, self._clock = count, clock
        self._open = 0
        self._at = float("-inf")

    @property
    def limit(self) -> int:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return soft if soft != resource.RLIM_INFINITY else 1 << 20

    def free(self) -> int:
        now = self._clock()
        if now - self._at >= RECOUNT_S:
            self._open, self._at = self._count(), now
        return self.limit - self._open

    def took(self, n: int = 1) -> None:
        """Descriptors opened since the last count (new connections), until the next count sees them."""
        self._open += n

    def low(self, factor: int = 1) -> bool:
        """Fewer than ``factor * reserve`` descriptors free."""
        return self.free() < factor * self.reserve


_BUDGET = FdBudget()


def budget() -> FdBudget:
    """The process's budget (descriptors are per process)."""
    return _BUDGET


class AcceptErrorFilter(logging.Filter):
    """At most one "socket.accept() out of system resource" record per ``interval_s``; the next one that passes
    says how many were held back."""

    def __init__(self, interval_s: float = 10.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_s, self._clock = interval_s, clock
        self._last = float("-inf")
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if ACCEPT_ERROR not in str(record.msg):
            return True
        now = self._clock()
        if now - self._last < self.interval_s:
            self.suppressed += 1
            return False
        if self.suppressed:
            record.msg = f"{record.msg} ({self.suppressed} more in the last {now - self._last:.0f} s not logged)"
        self._last, self.suppressed = now, 0
        return True


def setup(reserve: int = DEFAULT_RESERVE) -> None:
    """At daemon start: raise the limit, set the reserve, filter asyncio's accept-error line (once per process)."""
    before, after = raise_limit()
    _BUDGET.reserve = reserve
    logger = logging.getLogger("asyncio")
    if not any(isinstance(f, AcceptErrorFilter) for f in logger.filters):
        logger.addFilter(AcceptErrorFilter())
    log.info("open-file limit %d (was %d), %d kept in reserve for intake and the store", after, before, reserve)
