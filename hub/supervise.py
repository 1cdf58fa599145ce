"""Long-running tasks under supervision: a task that dies is logged, restarted with backoff and shown in /healthz.

The composition root (:mod:`hub.app`) starts the router, the pipeline and every source with
:meth:`Supervisor.start` inside its ``asyncio.TaskGroup``. A task that raises is restarted after 1, 2, 5, 10, then
every 30 seconds (the count starts again once a run lasted a minute); meanwhile its state is ``restarting`` and
/healthz says ``degraded``. A task that returns has ``stopped`` (a source that has nothing more to do).

Test hook, off by default: ``WARNHUB_TEST_CRASH=<task>:<n>[,<task>:<n>...]`` in the environment makes the first
``n`` starts of each named task raise at once (``RuntimeError``), so an end-to-end test can watch a real restart of
a real daemon (tests/e2e/test_app.py). Nothing else reads it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("warnhub.supervise")

RESTART_BACKOFF_S: tuple[float, ...] = (1, 2, 5, 10, 30)
STABLE_S = 60.0
"""A run this long counts as healthy: the next crash starts the backoff from the beginning."""
CRASH_ENV = "WARNHUB_TEST_CRASH"


def crash_plan(text: str | None) -> dict[str, int]:
    """``WARNHUB_TEST_CRASH`` parsed: task name -> how many starts raise. Empty when unset."""
    plan: dict[str, int] = {}
    for part in (text or "").split(","):
        name, _, count = part.strip().rpartition(":")
        if name and count.isdigit():
            plan[name] = int(count)
    return plan


@dataclass(slots=True)
class TaskState:
    name: str
    state: str = "running"
    """``running``, ``restarting`` (crashed, waiting for its backoff) or ``stopped`` (returned)."""
    restarts: int = 0
    last_error: str = ""
    since: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "restarts": self.restarts, "last_error": self.last_error,
                "since": self.since.isoformat(timespec="seconds")}


OnCrash = Callable[[BaseException, float], None]
"""Called with the error and the delay before the restart (a source marks itself down)."""


class Supervisor:
    """Starts supervised tasks in a TaskGroup, restarts those that die, and reports their states."""

    def __init__(self, *, backoff: tuple[float, ...] = RESTART_BACKOFF_S,
                 crashes: dict[str, int] | None = None) -> None:
        self.backoff = backoff
        self.tasks: dict[str, TaskState] = {}
        self.started = False
        """True once every part runs (until then /healthz answers 503 ``starting``)."""
        self._crashes = dict(crash_plan(os.environ.get(CRASH_ENV)) if crashes is None else crashes)
        self._handles: list[asyncio.Task[None]] = []

    def start(self, group: asyncio.TaskGroup, name: str, run: Callable[[], Awaitable[None]], *,
              on_crash: OnCrash | None = None) -> asyncio.Task[None]:
        """Run ``run()`` in ``group`` as task ``name``, again after each crash."""
        if name in self.tasks:
            raise ValueError(f"task {name!r} is supervised already")
        self.tasks[name] = TaskState(name)
        task = group.create_task(self._supervise(name, run, on_crash), name=name)
        self._handles.append(task)
        return task

    def cancel(self) -> None:
        """Stop every supervised task (the TaskGroup waits for them)."""
        for task in self._handles:
            task.cancel()

    @property
    def ok(self) -> bool:
        return all(t.state != "restarting" for t in self.tasks.values())

    def as_dict(self) -> dict[str, Any]:
        return {name: t.as_dict() for name, t in sorted(self.tasks.items())}

    async def _once(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        if self._crashes.get(name, 0) > 0:
            self._crashes[name] -= 1
            raise RuntimeError(f"injected crash ({CRASH_ENV})")
        await run()

    async def _supervise(self, name: str, run: Callable[[], Awaitable[None]], on_crash: OnCrash | None) -> None:
        state, failures = self.tasks[name], 0
        while True:
            started = time.monotonic()
            try:
                await self._once(name, run)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - a broken part must never take the hub down
                if time.monotonic() - started > STABLE_S:
                    failures = 0
                delay = self.backoff[min(failures, len(self.backoff) - 1)]
                failures += 1
                state.state, state.since, state.last_error = "restarting", datetime.now(UTC), _one_line(err)
                log.exception("task %s crashed; restarting in %ss", name, delay, extra={"task": name})
                if on_crash is not None:
                    on_crash(err, delay)
                await asyncio.sleep(delay)
                state.state, state.since = "running", datetime.now(UTC)
                state.restarts += 1
                continue
            state.state, state.since = "stopped", datetime.now(UTC)
            return


def _one_line(err: BaseException) -> str:
    while isinstance(err, BaseExceptionGroup) and err.exceptions:  # a TaskGroup's: name the error inside
        err = err.exceptions[0]
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return text[:500]
