"""The rules router on many nodes (issue 16, "the rules router decides each alert once: claim, not broadcast"): two
routers on one PostgreSQL database (each its own store connections, as two decide nodes) decide a batch of stored
alerts side by side; each alert is evaluated by one of them, once, and decided once. A node that dies holding
claims leaves its alerts to the other after the claim's time (an injected clock)."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.cap.validate import Validator
from hub.decide import decisions
from hub.decide.router import Router
from hub.decide.rules.engine import Decision, LiveRules, RuleSet
from hub.geo.geography import Geography, geography
from hub.intake.documents import Intake
from hub.store.db import AsyncStore, Store
from tests.e2e.test_routing import dwd_cap
from tests.kits.hubproc import REPO

DISTRICT = "033540000000"
N = 24


class CountingRouter(Router):
    """A router that notes every alert it evaluates."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.evaluated: list[int] = []

    async def _evaluate(self, ruleset: RuleSet, item: decisions.Pending) -> tuple[Decision, str | None]:
        self.evaluated.append(item.alert_id)
        await asyncio.sleep(0)  # the other node's turn, as evaluating in a thread gives it
        return await super()._evaluate(ruleset, item)


@pytest.fixture(scope="module")
def geo() -> Geography:
    return geography()


@pytest.fixture
def stores(two_nodes: tuple[AsyncStore, AsyncStore]) -> tuple[AsyncStore, AsyncStore]:
    return two_nodes  # tests/conftest.py


def live_rules(tmp_path: Path, geo: Geography) -> LiveRules:
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    main = rules / "luechow-dannenberg.toml"
    text = main.read_text(encoding="utf-8")
    main.write_text(text[:text.index("# --- Eigene Sensoren")], encoding="utf-8")  # no sensors configured here
    return LiveRules.open(rules, sensors=[], geo=geo)


def store_alerts(store: Store, now: datetime) -> list[int]:
    intake = Intake(Validator(), store)
    ids = []
    for i in range(N):
        result = intake.ingest(dwd_cap(f"claims-{i}", sent=now - timedelta(minutes=5)), origin="dwd")
        assert result.alert_id is not None, result
        ids.append(result.alert_id)
    return ids


async def test_two_routers_on_one_database_decide_each_alert_once_by_one_node(
        tmp_path: Path, geo: Geography, stores: tuple[AsyncStore, AsyncStore]) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    live = live_rules(tmp_path, geo)
    ids = store_alerts(stores[0].store, now)
    routers = [CountingRouter(s, live, district=DISTRICT, batch=4, node=f"node-{i}", clock=lambda: now)
               for i, s in enumerate(stores)]
    await asyncio.gather(*(r.decide_pending() for r in routers))
    one, two = (r.evaluated for r in routers)
    assert sorted(one + two) == ids, (one, two)  # every alert evaluated, by one node, once
    assert one and two  # both nodes took part
    assert routers[0].decided + routers[1].decided == N
    rows = stores[0].store.conn.execute("SELECT alert_id FROM decisions ORDER BY alert_id").fetchall()
    assert [r[0] for r in rows] == ids
    assert stores[0].store.conn.execute("SELECT count(*) FROM decide_claims").fetchone()[0] == 0  # ended with it


async def test_the_alerts_a_dead_node_claimed_are_decided_by_another_after_the_claim(
        tmp_path: Path, geo: Geography, stores: tuple[AsyncStore, AsyncStore]) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    live = live_rules(tmp_path, geo)
    ids = store_alerts(stores[0].store, now)
    taken = await stores[0].run(decisions.undecided, stores[0].store, limit=N, now=now, node="dead")
    assert [p.alert_id for p in taken] == ids  # the dead node claimed them all and never decided
    clock = [now + timedelta(milliseconds=decisions.CLAIM_MS - 1)]
    heir = CountingRouter(stores[1], live, district=DISTRICT, node="heir", clock=lambda: clock[0])
    assert await heir.decide_pending() == 0 and heir.evaluated == []  # the claims still hold
    clock[0] = now + timedelta(milliseconds=decisions.CLAIM_MS)
    assert await heir.decide_pending() == N and sorted(heir.evaluated) == ids
