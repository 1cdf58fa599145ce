"""hub.events: the bus delivers each event to its type's handlers in subscription order, an unsubscribed handler
hears nothing more, one that raises does not stop the others; the wake-up helper never loses a wake-up that
arrives while its consumer is busy; and the stages' loop (``keep_up``) works again after a wake-up or its idle
time, also after ``work`` raised."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hub.events import AlertStored, Bus, Decided, Queued, Wakeup, keep_up


def test_publish_reaches_handlers_of_the_type_in_subscription_order() -> None:
    bus, heard = Bus(), []
    bus.subscribe(Decided, lambda e: heard.append(("first", e.alert_id)))
    bus.subscribe(AlertStored, lambda e: heard.append(("stored", e.alert_id)))
    bus.subscribe(Decided, lambda e: heard.append(("second", e.alert_id)))
    bus.publish(Decided(7, 3, "publish"))
    bus.publish(AlertStored(8, 3, "dwd"))
    bus.publish(Queued(frozenset({"push"})))  # nobody listens: nothing happens
    assert heard == [("first", 7), ("second", 7), ("stored", 8)]


def test_unsubscribe_stops_only_that_handler_and_is_idempotent() -> None:
    bus, heard = Bus(), []
    first = bus.subscribe(Decided, lambda e: heard.append("first"))
    bus.subscribe(Decided, lambda e: heard.append("second"))
    twin = bus.subscribe(Decided, lambda e: heard.append("first"))  # an equal handler, subscribed again
    first.cancel()
    bus.publish(Decided(1, 1, "publish"))
    assert heard == ["second", "first"]  # the twin still hears: the handle removes its own entry only
    first()  # the handle is callable too; a second unsubscribe changes nothing
    twin()
    heard.clear()
    bus.publish(Decided(2, 1, "publish"))
    assert heard == ["second"] and bus.count(Decided) == 1


def test_a_handler_that_unsubscribes_while_the_event_is_delivered_does_not_skip_the_next() -> None:
    bus, heard = Bus(), []
    handle = bus.subscribe(Decided, lambda e: (heard.append("once"), handle.cancel()))
    bus.subscribe(Decided, lambda e: heard.append("always"))
    bus.publish(Decided(1, 1, "publish"))
    bus.publish(Decided(2, 1, "publish"))
    assert heard == ["once", "always", "always"]


def test_a_handler_that_raises_is_logged_and_the_others_still_hear(caplog: pytest.LogCaptureFixture) -> None:
    bus, heard = Bus(), []

    def broken(event: Decided) -> None:
        raise ValueError("listener bug")

    bus.subscribe(Decided, broken)
    bus.subscribe(Decided, lambda e: heard.append(e.alert_id))
    with caplog.at_level(logging.ERROR, logger="warnhub.events"):
        bus.publish(Decided(5, 1, "publish"))
    assert heard == [5]
    assert "listener bug" in caplog.text


async def test_wakeup_set_while_the_consumer_is_busy_is_kept() -> None:
    wakeup, rounds = Wakeup(), []
    busy, go_on = asyncio.Event(), asyncio.Event()

    async def consumer() -> None:
        for n in range(2):
            wakeup.clear()  # as keep_up does: look for work, then wait
            rounds.append(n)
            if n == 0:
                busy.set()
                await go_on.wait()  # busy with the first round's work
            if not await wakeup.wait(timeout=5):
                rounds.append("timed out")
                return

    task = asyncio.create_task(consumer())
    await busy.wait()
    wakeup.set()  # arrives while the consumer works, before it waits
    go_on.set()
    async with asyncio.timeout(2):  # without the kept wake-up the consumer would sleep its 5 s timeout
        while len(rounds) < 2:
            await asyncio.sleep(0.01)
    assert rounds[:2] == [0, 1]
    wakeup.set()
    await asyncio.wait_for(task, 2)
    assert "timed out" not in rounds


async def test_wakeup_wait_consumes_and_times_out() -> None:
    wakeup = Wakeup()
    assert await wakeup.wait(timeout=0.01) is False
    wakeup.set()
    wakeup.set()  # two wake-ups before the wait are one: there is work, look once
    assert await wakeup.wait(timeout=0.01) is True
    assert not wakeup.is_set()
    assert await wakeup.wait(timeout=0.01) is False


async def test_keep_up_works_on_wakeup_on_idle_and_after_work_raised(caplog: pytest.LogCaptureFixture) -> None:
    wakeup, calls = Wakeup(), []

    async def work() -> None:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) == 1:
            raise RuntimeError("store refused")

    with caplog.at_level(logging.ERROR):
        task = asyncio.create_task(keep_up(work, wakeup, idle_s=0.3, what="testing"))
        try:
            async with asyncio.timeout(2):
                while len(calls) < 2:  # the failed first round is tried again after the idle time
                    await asyncio.sleep(0.01)
                wakeup.set()  # the third round comes at once, not after another 0.3 s
                while len(calls) < 3:
                    await asyncio.sleep(0.01)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert calls[1] - calls[0] >= 0.25
    assert calls[2] - calls[1] < 0.25
    assert "testing failed; retrying in 0.3 s" in caplog.text
