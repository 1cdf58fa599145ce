"""hub.supervise: a task that raises is restarted after its backoff and reported (``restarting`` while it waits,
then ``running`` with the count and the last error); a task that returns is ``stopped``; the test hook parses
only what it documents."""

from __future__ import annotations

import asyncio

from hub.supervise import Supervisor, crash_plan


async def test_a_crashing_task_is_restarted_with_backoff_and_reported() -> None:
    sup = Supervisor(backoff=(0.2, 0.4), crashes={})
    runs: list[float] = []
    crashed: list[tuple[str, float]] = []
    release = asyncio.Event()

    async def flaky() -> None:
        runs.append(asyncio.get_running_loop().time())
        if len(runs) <= 2:
            raise OSError(f"store refused #{len(runs)}")
        await release.wait()

    async with asyncio.TaskGroup() as group:
        sup.start(group, "pipeline", flaky, on_crash=lambda err, delay: crashed.append((str(err), delay)))
        await asyncio.sleep(0.05)
        assert sup.tasks["pipeline"].state == "restarting" and not sup.ok
        assert sup.as_dict()["pipeline"]["last_error"] == "OSError: store refused #1"
        async with asyncio.timeout(3):
            while len(runs) < 3:
                await asyncio.sleep(0.01)
        state = sup.as_dict()["pipeline"]
        assert (state["state"], state["restarts"], state["last_error"]) == ("running", 2, "OSError: store refused #2")
        assert sup.ok
        release.set()
    assert sup.tasks["pipeline"].state == "stopped"
    assert crashed == [("store refused #1", 0.2), ("store refused #2", 0.4)]
    assert runs[1] - runs[0] >= 0.19 and runs[2] - runs[1] >= 0.39  # the second wait is the next backoff step


async def test_cancel_stops_supervised_tasks_and_injected_crashes_count_down() -> None:
    sup = Supervisor(backoff=(0.01,), crashes={"router": 2})
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    async with asyncio.TaskGroup() as group:
        sup.start(group, "router", forever)
        async with asyncio.timeout(2):
            await started.wait()
        assert sup.tasks["router"].restarts == 2
        assert "injected crash" in sup.tasks["router"].last_error
        sup.cancel()
    assert sup.tasks["router"].state == "running"  # cancelled at stop, not crashed


def test_crash_plan_reads_name_and_count_only() -> None:
    assert crash_plan(None) == {}
    assert crash_plan("pipeline:3, source:dwd:1,bad,router:x") == {"pipeline": 3, "source:dwd": 1}
