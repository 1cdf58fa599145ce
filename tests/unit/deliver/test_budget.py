"""The push budget per person (hub/deliver/budget.py) on a real outbox: at most N pushes per window, one of them kept
for an Extreme; the rest coalesced into one summary row due when the window allows; test pushes never count; what
was counted survives a restart."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Self

import pytest

from hub.deliver import budget, outbox
from hub.deliver.breaker import CircuitBreaker
from hub.deliver.outbox import NewDelivery, RetryPolicy
from hub.ports import Delivery, Outcome
from hub.store.db import AsyncStore, Store

WINDOW = 600_000
T0 = 1_800_000_000_000


def row(recipient: str, pub: int, *, priority: int = 3, thread: str | None = None) -> NewDelivery:
    return NewDelivery(f"{pub}/push/{recipient}", pub, thread or f"w{pub}", "push", recipient, "push.example",
                       priority, None)


class Inner:
    """A push channel that takes everything and remembers what it was given."""

    name = "push"

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def deliver(self, batch: Sequence[Delivery]) -> Sequence[Outcome]:
        self.sent += [d.key for d in batch]
        return [Outcome.done() for _ in batch]


@pytest.fixture
async def astore(store_url: str | Path) -> AsyncIterator[AsyncStore]:
    """On both backends (the budget's queries run on SQLite and PostgreSQL)."""
    a = AsyncStore(Store(store_url))
    yield a
    a.close()


async def drain(astore: AsyncStore, channel: budget.BudgetedChannel, now: int) -> None:
    """Claim and deliver every due push row at ``now`` (the worker's step, with the clock held)."""
    while batch := await astore.run(outbox.claim, astore.store, "push", 500, lease_s=60, now_ms=now):
        channel.clock = lambda: now
        outcomes = await channel.deliver(batch)
        await astore.run(outbox.complete, astore.store, list(zip(batch, outcomes, strict=True)), now_ms=now,
                         policy=RetryPolicy())


def states(store: Store) -> dict[str, tuple[str, str | None]]:
    return {k: (s, e) for k, s, e in store.conn.execute("SELECT key, state, last_error FROM outbox")}


def test_two_below_extreme_then_coalesced_extreme_always_and_tests_free() -> None:
    b = budget.PushBudget(WINDOW, 3)
    rows = [Delivery(i, f"{i}/push/a", i, f"w{i}", "push", "a", 3, 0, None, "h") for i in range(1, 5)]
    test = Delivery(9, "test:x/push/a", 0, "test:x", "push", "a", 9, 0, None, "h")
    extreme = Delivery(10, "10/push/a", 10, "w10", "push", "a", 0, 0, None, "h")
    first = b.judge([test, rows[0]], T0)
    second = b.judge(rows[1:], T0 + 1000)
    assert [d.key for d in first.send] == ["test:x/push/a", "1/push/a"]
    assert [d.key for d in second.send] == ["2/push/a"]
    summary = f"summary:a/{T0 + WINDOW}"  # due when the first push counted leaves the window
    assert second.coalesced == {3: summary, 4: summary} and [s.key for s in second.summaries] == [summary]
    assert [d.key for d in b.judge([extreme], T0 + 2000).send] == []  # priority 0 (Immediate) alone is no Extreme
    assert [d.key for d in b.judge([extreme], T0 + 2000, extreme={10}).send] == ["10/push/a"]
    assert b.held(summary, "a") == 3
    again = b.judge([rows[0]], T0 + 3000)  # a retry of a row counted already: sent, not counted twice
    assert again.send == [rows[0]] and not again.coalesced
    later = b.judge([Delivery(11, "11/push/a", 11, "w11", "push", "a", 3, 0, None, "h")], T0 + 4000)
    assert later.coalesced == {11: summary} and not later.summaries and b.held(summary, "a") == 4
    other = b.judge([Delivery(12, "12/push/b", 12, "w12", "push", "b", 3, 0, None, "h")], T0 + 4000)
    assert other.send and not other.coalesced  # the budget is per person


async def test_storm_on_a_real_outbox_ends_with_one_summary_per_person(astore: AsyncStore) -> None:
    store = astore.store
    inner = Inner()
    channel = budget.BudgetedChannel(inner, astore, budget.PushBudget(WINDOW, 3), clock=lambda: T0)
    await channel.__aenter__()
    outbox.enqueue(store, [row(p, pub) for pub in range(1, 6) for p in ("a", "b")], now_ms=T0)
    with store.transaction() as conn:  # publication 6 is Extreme
        conn.execute("INSERT INTO publications (id, thread, version, identifier, sender, sent, msg_type, status,"
                     " severity, urgency, push, channels, regions, notices, alert_json, cap_xml, created_ms)"
                     " VALUES (6, 'w6', 1, 'id6', 's', '2030-01-01T10:00:00+00:00', 'Alert', 'Actual', 'Extreme',"
                     " 'Immediate', 1, '[]', '[]', '[]', '{}', ?, 0)", (b"\0",))
    outbox.enqueue(store, [row("a", 6, priority=0)], now_ms=T0)
    await drain(astore, channel, T0)
    # the Extreme first (claim order), then two Minor per person; three coalesced each
    assert inner.sent[0] == "6/push/a" and len(inner.sent) == 5
    got = states(store)
    summary_a, summary_b = f"summary:a/{T0 + WINDOW}", f"summary:b/{T0 + WINDOW}"
    assert sorted(k for k, (s, e) in got.items() if s == "coalesced" and e == summary_a) == \
        ["3/push/a", "4/push/a", "5/push/a"]
    assert got[summary_a][0] == "queued" and got[summary_b][0] == "queued"
    await drain(astore, channel, T0 + WINDOW - 1)  # not due before the window allows
    assert len(inner.sent) == 5
    restarted = budget.BudgetedChannel(inner, astore, budget.PushBudget(WINDOW, 3), clock=lambda: T0 + 10)
    await restarted.__aenter__()  # a restart: rebuilt from the outbox, the same summary gathers further rows
    outbox.enqueue(store, [row("a", 7)], now_ms=T0 + 10)
    await drain(astore, restarted, T0 + 10)
    assert states(store)["7/push/a"] == ("coalesced", summary_a)
    assert restarted.budget.held(summary_a, "a") == 4
    await drain(astore, restarted, T0 + WINDOW)
    assert sorted(inner.sent[-2:]) == [summary_a, summary_b]
    assert {states(store)[k][0] for k in (summary_a, summary_b)} == {"done"}


def test_summary_payload_in_the_subscriptions_language_opens_the_start_page() -> None:
    doc = json.loads(budget.summary_payload("summary:a/1", 4, ["fr-FR", "de"], "https://warn.example"))
    assert doc["title"] == "4 nouvelles alertes pour vos lieux" and doc["url"] == "https://warn.example/?lang=fr"
    de = json.loads(budget.summary_payload("summary:a/1", 3, []))
    assert de["title"] == "3 neue Warnungen für Ihre Orte" and de["url"] == "/" and de["summary"] is True


def test_coalesced_rows_never_open_the_hosts_circuit() -> None:
    """A batch held back by the budget did not ask the push service: its host is not failing."""
    breaker = CircuitBreaker()
    breaker.record("push.example", ["coalesced"] * 600)
    assert not breaker.open_hosts()
    breaker.record("push.example", ["retry"] * 600)
    assert breaker.open_hosts()


def test_pushes_count_from_the_push_services_answer() -> None:
    """A summary is due a window after the pushes were answered, not claimed: it never lands within one window of
    them at the receiver, however long the batch took."""
    b = budget.PushBudget(WINDOW, 3)
    rows = [Delivery(i, f"{i}/push/a", i, f"w{i}", "push", "a", 3, 0, None, "h") for i in range(1, 4)]
    judged = b.judge(rows, T0)
    assert len(judged.send) == 2 and b.due("a", T0) == T0 + WINDOW
    b.completed(judged.send, T0 + 5000)
    assert b.due("a", T0 + 5000) == T0 + 5000 + WINDOW and b.due("nobody", T0) == T0


async def test_the_queue_of_a_person_over_budget_joins_the_summary_at_once(astore: AsyncStore) -> None:
    """One claim that finds a person over the budget takes the rest of their queued warnings (below Extreme) into
    the summary in one statement, not one claim and answer per row; an Extreme stays queued and goes out."""
    store = astore.store
    inner = Inner()
    channel = budget.BudgetedChannel(inner, astore, budget.PushBudget(WINDOW, 3), clock=lambda: T0)
    await channel.__aenter__()
    with store.transaction() as conn:  # the day's publications; 99 is Extreme
        for pub in [*range(1, 11), 99]:
            conn.execute("INSERT INTO publications (id, thread, version, identifier, sender, sent, msg_type, status,"
                         " severity, urgency, push, channels, regions, notices, alert_json, cap_xml, created_ms)"
                         " VALUES (?, ?, 1, ?, 's', '2030-01-01T10:00:00+00:00', 'Alert', 'Actual', ?, 'Immediate',"
                         " 1, '[]', '[]', '[]', '{}', ?, ?)",
                         (pub, f"w{pub}", f"id{pub}", "Extreme" if pub == 99 else "Severe", b"\0", T0 - 1000))
    outbox.enqueue(store, [row("a", pub) for pub in range(1, 11)] + [row("a", 99, priority=9)], now_ms=T0)
    batch = await astore.run(outbox.claim, store, "push", 3, lease_s=60, now_ms=T0)
    outcomes = await channel.deliver(batch)
    await astore.run(outbox.complete, store, list(zip(batch, outcomes, strict=True)), now_ms=T0,
                     policy=RetryPolicy())
    got = states(store)
    summary = f"summary:a/{T0 + WINDOW}"
    assert sorted(k for k, (s, e) in got.items() if s == "coalesced" and e == summary) == \
        sorted(f"{p}/push/a" for p in range(3, 11))  # the third judged, the other 7 queued taken at once
    assert got["99/push/a"][0] == "queued" and channel.budget.held(summary, "a") == 8
    await drain(astore, channel, T0)
    assert inner.sent == ["1/push/a", "2/push/a", "99/push/a"]


def test_a_pending_summary_takes_the_slot_the_window_frees() -> None:
    """When the window lets one more push through, the summary gets it: a warning judged first at that moment joins
    the summary (else the person would get the warning and the summary within one window: four pushes)."""
    b = budget.PushBudget(WINDOW, 3)
    rows = [Delivery(i, f"{i}/push/a", i, f"w{i}", "push", "a", 3, 0, None, "h") for i in range(1, 4)]
    first = b.judge(rows, T0)
    summary = first.summaries[0]
    late = Delivery(4, "4/push/a", 4, "w4", "push", "a", 3, 0, None, "h")
    due = Delivery(5, summary.key, 0, summary.key, "push", "a", 2, 0, None, "h")
    at_end = b.judge([late, due], summary.due_ms + 1)
    assert [d.key for d in at_end.send] == [summary.key] and at_end.coalesced == {4: summary.key}
    assert b.held(summary.key, "a") == 2  # its payload, built after judging, counts the late one too
    b.completed(at_end.send, summary.due_ms + 2)
    assert b.held(summary.key, "a") == 0


def test_the_control_rooms_canaries_pass_and_never_count() -> None:
    """A canary to a control-room device (hub/publish/canary.py) is no warning to a person: it is never coalesced
    and takes no slot (the merged canary fault test saw canaries coalesced into a summary that never went out)."""
    b = budget.PushBudget(WINDOW, 3)
    canaries = [Delivery(20 + i, f"canary:{i}/push/a", 0, f"canary:{i}", "push", "a", 9, 0, None, "h")
                for i in range(5)]
    judged = b.judge(canaries, T0)
    assert [d.key for d in judged.send] == [d.key for d in canaries] and not judged.coalesced
    rows = [Delivery(i, f"{i}/push/a", i, f"w{i}", "push", "a", 3, 0, None, "h") for i in range(1, 3)]
    assert [d.key for d in b.judge(rows, T0 + 1000).send] == ["1/push/a", "2/push/a"]  # both slots still free


def add_publication(store: Store, pub: int, severity: str) -> None:
    with store.transaction() as conn:
        conn.execute("INSERT INTO publications (id, thread, version, identifier, sender, sent, msg_type, status,"
                     " severity, urgency, push, channels, regions, notices, alert_json, cap_xml, created_ms)"
                     " VALUES (?, ?, 1, ?, 's', '2030-01-01T10:00:00+00:00', 'Alert', 'Actual', ?, 'Immediate',"
                     " 1, '[]', '[]', '[]', '{}', ?, ?)", (pub, f"w{pub}", f"id{pub}", severity, b"\0", T0 - 1000))


async def test_two_delivery_nodes_together_keep_one_budget_per_person(pg_url: str) -> None:
    """Two delivery nodes (two stores with connections of their own on one PostgreSQL database, each with its own
    budget object) claim the same people's warnings side by side and judge them at the same moment: together they
    push each person at most ``budget_pushes`` (each node counting in its memory pushed a person 5 of 7 here), an
    Extreme always goes through, test pushes and canaries pass, and each person gets one summary, sent once."""
    nodes = [AsyncStore(Store(pg_url)), AsyncStore(Store(pg_url))]
    try:
        store = nodes[0].store
        inners = [Inner(), Inner()]
        channels = [budget.BudgetedChannel(inner, node, budget.PushBudget(WINDOW, 3), clock=lambda: T0)
                    for inner, node in zip(inners, nodes, strict=True)]
        for channel in channels:
            await channel.__aenter__()
        for pub in range(1, 7):
            add_publication(store, pub, "Severe")
        for pub in (9, 10):
            add_publication(store, pub, "Extreme")
        rows = [row("a", 9, priority=0)]
        for pub in range(1, 7):
            rows += [row("a", pub), row("b", pub)] + ([row("b", 10)] if pub == 3 else [])
        rows += [NewDelivery("test:t1/push/a", 0, "test:t1", "push", "a", "push.example", 9, None),
                     NewDelivery("canary:c1/push/a", 0, "canary:c1", "push", "a", "push.example", 9, None)]
        outbox.enqueue(store, rows, now_ms=T0)
        # both nodes hold a batch with warnings of both people before either has judged one
        batches = [await node.run(outbox.claim, node.store, "push", n, lease_s=60, now_ms=T0)
                   for node, n in zip(nodes, (5, 6), strict=True)]
        assert all({d.recipient for d in b} == {"a", "b"} for b in batches)
        answers = await asyncio.gather(*(c.deliver(b) for c, b in zip(channels, batches, strict=True)))
        for node, batch, outcomes in zip(nodes, batches, answers, strict=True):
            await node.run(outbox.complete, node.store, list(zip(batch, outcomes, strict=True)), now_ms=T0,
                           policy=RetryPolicy())
        for node, channel in zip(nodes, channels, strict=True):  # the rest of the queue, on both nodes
            await drain(node, channel, T0)
        sent = inners[0].sent + inners[1].sent
        warnings = {p: [k for k in sent if k.endswith(f"/push/{p}") and not k.startswith(("test:", "canary:"))]
                    for p in ("a", "b")}
        assert len(warnings["a"]) <= 3 and len(warnings["b"]) <= 3, warnings
        assert "9/push/a" in sent and "10/push/b" in sent  # an Extreme always gets through
        assert "test:t1/push/a" in sent and "canary:c1/push/a" in sent  # neither counts nor is held back
        got = states(store)
        summaries = sorted(k for k in got if k.startswith(budget.SUMMARY))
        assert [k.split("/")[0] for k in summaries] == ["summary:a", "summary:b"], summaries  # one per person
        for key in summaries:
            person = key.split(":")[1].split("/")[0]
            held = [k for k, (s, e) in got.items() if s == "coalesced" and e == key]
            assert len(held) + len(warnings[person]) == 7, (key, held, warnings)
        later = T0 + 2 * WINDOW
        for node, channel in zip(nodes, channels, strict=True):
            await drain(node, channel, later)
        sent = inners[0].sent + inners[1].sent
        assert sorted(k for k in sent if k.startswith(budget.SUMMARY)) == summaries  # each sent once
    finally:
        for node in nodes:
            node.close()
