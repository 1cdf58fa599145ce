"""Many districts on many nodes (issues 16 and 19): one node claims a version and decides it for every district; its
claim holds until the last district has decided, so two routers on one PostgreSQL database (tests/conftest.py
``two_nodes``) evaluate each (alert, district) once between them, and the claims end with the work."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hub.cap.validate import Validator
from hub.config import load as config
from hub.decide import decisions
from hub.decide.router import Router, open_districts
from hub.decide.rules.engine import RuleSet
from hub.geo.geography import geography
from hub.intake.documents import Intake
from hub.store.db import AsyncStore
from tests.kits.districts import LD, UE, write_two_districts
from tests.unit.decide.test_districts_decide import over_both

N = 16


async def test_two_nodes_decide_each_alert_for_each_district_once(tmp_path: Path,
                                                                  two_nodes: tuple[AsyncStore, AsyncStore]) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    loaded = config.load(write_two_districts(tmp_path, port=1))
    geo = geography()
    intake = Intake(Validator(), two_nodes[0].store)
    ids = []
    for i in range(N):
        stored = intake.ingest(over_both(f"nodes-{i}", severity="Moderate", sent=now - timedelta(minutes=5)),
                               origin="dwd")
        assert stored.alert_id is not None
        ids.append(stored.alert_id)
    evaluated: list[tuple[str, int, str]] = []
    routers = []
    for n, store in enumerate(two_nodes):
        rules = open_districts(loaded.districts, sensors=[], geo=geo)
        router = Router(store, rules[0].live, district=LD, districts=rules, batch=4, node=f"node-{n}",
                        clock=lambda: now)
        evaluate = router._evaluate

        async def counted(ruleset: RuleSet, item: decisions.Pending, router: Router = router,
                          evaluate: Any = evaluate) -> Any:
            evaluated.append((router.node, item.alert_id, router._for.ars))
            await asyncio.sleep(0)  # the other node's turn, as evaluating in a thread gives it
            return await evaluate(ruleset, item)

        router._evaluate = counted  # type: ignore[method-assign]
        routers.append(router)
    await asyncio.gather(*(r.decide_pending() for r in routers))
    done = sorted((a, d) for _, a, d in evaluated)
    assert done == sorted((a, d) for a in ids for d in (LD, UE)), evaluated  # each once, by one node
    assert {node for node, _, _ in evaluated} == {"node-0", "node-1"}  # both took part
    for alert in ids:  # the districts of one version were decided by the node that claimed it
        assert len({node for node, a, _ in evaluated if a == alert}) == 1, alert
    count = two_nodes[0].store.conn.execute("SELECT count(*) FROM decisions").fetchone()[0]
    assert count == 2 * N
    assert two_nodes[0].store.conn.execute("SELECT count(*) FROM decide_claims").fetchone()[0] == 0
