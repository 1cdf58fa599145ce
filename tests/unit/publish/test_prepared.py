"""The publication is issued and serialised in the plan, off the store's writer thread; the writer only checks that
the thread's newest version is still the one the plan followed. If another version was published in between, the
writer issues it again after that one (the chain of versions and references stays intact). Real store, rules,
router and pipeline (tests/unit/publish/test_isolation.py's rig)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from hub.geo.geography import geography
from hub.publish import publications
from hub.publish.pipeline import unpublished
from tests.unit.publish.test_isolation import Rig


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(tmp_path, geography())
    yield r
    await r.close()


async def _update_due(rig: Rig) -> tuple[publications.Publication, object]:
    """v1 of a thread published, and the decided Update of it waiting to be published."""
    first = rig.ingest("prep-a")
    assert await rig.router.decide_pending() == 1
    await rig.pipeline.publish_pending()
    v1 = publications.by_source_alert(rig.store, first)
    assert v1 is not None and v1.version == 1
    rig.ingest("prep-u", msg_type="Update", sent=rig.now - timedelta(minutes=1),
               references=f"opendata@dwd.de,prep-a,{(rig.now - timedelta(minutes=5)).isoformat()}")
    assert await rig.router.decide_pending() == 1
    [item] = unpublished(rig.store, now=rig.clock())
    return v1, item


async def test_the_writer_stores_what_the_plan_issued(world: Rig) -> None:
    rig = world
    v1, item = await _update_due(rig)
    plan = rig.pipeline._plan(item, v1)  # type: ignore[arg-type]
    assert plan.encoded is not None and plan.after == 1
    done = await rig.astore.run(rig.pipeline._write, rig.store, plan)
    assert not isinstance(done, str)
    pub = done[0]
    assert (pub.version, pub.msg_type, pub.identifier) == (2, "Update", plan.encoded.alert.identifier)
    assert publications.cap_xml(rig.store, pub.id) == plan.encoded.cap_xml


async def test_a_version_published_since_the_plan_is_followed_not_overwritten(world: Rig) -> None:
    rig = world
    v1, item = await _update_due(rig)
    stale = rig.pipeline._plan(item, None)  # as if read before v1 was written: it would be v1 again
    assert stale.encoded is not None and stale.after is None and stale.encoded.alert.references == ()
    done = await rig.astore.run(rig.pipeline._write, rig.store, stale)
    assert not isinstance(done, str)
    pub = done[0]
    assert (pub.version, pub.msg_type) == (2, "Update")
    assert pub.identifier != stale.encoded.alert.identifier  # issued again in the writer, after v1
    alert = publications.alert_of(rig.store, pub.id)
    assert alert is not None and [r.identifier for r in alert.references] == [v1.identifier]
