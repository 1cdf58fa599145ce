"""Many districts in one hub (issue 19): every district's own rules decide each stored alert for it, and each
district publishes its own decisions in its name. Real parts: the two-district config of tests/kits/districts.py
(Lüchow-Dannenberg with the repository's rules, Uelzen with rules of its own), the store (a SQLite file and a
PostgreSQL database), the intake, the router and the pipeline on an injected clock.

A DWD warning over both Kreise (warncells of both) is decided twice, with different outcomes: Uelzen's rules push
markantes Wetter (Moderate), Lüchow-Dannenberg's put it on the web and the boards only. A console warning is its
own district's alone; a district whose decision is missing (added later, or a crash between two districts) decides
on the next pass without the other deciding again; one district's rules raising does not stop the other's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.cap.parse import parse
from hub.cap.validate import Validator
from hub.config import load as config
from hub.decide import decisions
from hub.decide.router import DistrictRules, Router, open_districts
from hub.decide.rules.engine import RuleSet
from hub.geo.geography import Geography, geography
from hub.intake.documents import Intake
from hub.publish import publications
from hub.publish.pipeline import Pipeline
from hub.store.db import AsyncStore, Store
from tests.e2e.test_routing import dwd_cap
from tests.kits.districts import (
    HITZACKER,
    LD,
    LD_SENDER,
    LD_SLUG,
    SUHLENDORF,
    UE,
    UE_SENDER,
    UE_SLUG,
    UELZEN_TOWN,
    write_two_districts,
)

BOTH = ('<geocode><valueName>WARNCELLID</valueName><value>103354000</value></geocode></area>\n'
        '    <area><areaDesc>Kreis Uelzen</areaDesc>'
        '<geocode><valueName>WARNCELLID</valueName><value>103360000</value></geocode></area>')
"""The Kreis cells of both districts (Lüchow-Dannenberg's is dwd_cap's own)."""


def over_both(identifier: str, **kw: Any) -> bytes:
    """A DWD-style warning (tests.e2e.test_routing.dwd_cap) for the Kreis cells of Lüchow-Dannenberg and Uelzen."""
    raw = dwd_cap(identifier, **kw)
    one = b'<geocode><valueName>WARNCELLID</valueName><value>103354000</value></geocode></area>'
    assert raw.count(one) == 1
    return raw.replace(one, BOTH.encode())


def board(board_id: str, ars: str, district: str = "") -> str:
    slug = f'district = "{district}"\n' if district else ""
    return (f'[[boards]]\nid = "{board_id}"\nname = "{board_id}"\nars = "{ars}"\nkind = "mqtt"\nport = 1883\n'
            f'topic = "boards/{board_id}"\n{slug}\n')


BOARDS = "\n" + board("tafel-hitzacker", HITZACKER) + board("tafel-uelzen", UELZEN_TOWN) \
    + board("tafel-suhlendorf", SUHLENDORF, UE_SLUG) + board("tafel-ld-in-uelzen", UELZEN_TOWN, LD_SLUG) \
    + '[[webhooks]]\nid = "zeitung-ld"\nurl = "http://127.0.0.1:9/ld"\nsecret = "s"\n\n' \
    + f'[[webhooks]]\nid = "zeitung-ue"\nurl = "http://127.0.0.1:9/ue"\nsecret = "s"\ndistrict = "{UE_SLUG}"\n'
"""Boards of each district (by the Kreis their ``ars`` lies in, or named by ``district``) and a webhook each."""


@pytest.fixture(scope="module")
def geo() -> Geography:
    return geography()


class Rig:
    """Both districts' rules as the daemon opens them, a router and a pipeline over one store and clock."""

    def __init__(self, tmp: Path, geo: Geography, store_url: str) -> None:
        self.loaded = config.load(write_two_districts(tmp, port=1, extra=BOARDS))
        self.store = Store(store_url)
        self.astore = AsyncStore(self.store)
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.rules = open_districts(self.loaded.districts, sensors=[], geo=geo)
        assert [(r.ars, r.slug) for r in self.rules] == [(LD, "luechow-dannenberg"), (UE, UE_SLUG)]
        self.evaluated: list[tuple[int, str]] = []
        self.router = self.make_router(self.rules)
        self.pipeline = Pipeline(self.astore, self.loaded, self.rules[0].live, index=None, clock=self.clock)
        self.intake = Intake(Validator(), self.store)

    def make_router(self, rules: list[DistrictRules]) -> Router:
        router = Router(self.astore, rules[0].live, district=rules[0].ars, districts=rules, clock=self.clock)
        evaluate = router._evaluate

        async def counted(ruleset: RuleSet, item: decisions.Pending) -> Any:
            self.evaluated.append((item.alert_id, router._for.ars))
            return await evaluate(ruleset, item)

        router._evaluate = counted  # type: ignore[method-assign]
        return router

    def clock(self) -> datetime:
        return self.now

    def ingest(self, raw: bytes, origin: str = "dwd") -> int:
        result = self.intake.ingest(raw, origin=origin)
        assert result.alert_id is not None, result
        return result.alert_id

    def decision(self, alert_id: int, district: str) -> decisions.StoredDecision | None:
        return decisions.decision_of(self.store, alert_id, district)


@pytest.fixture
def rig(tmp_path: Path, geo: Geography, store_url: str) -> Iterator[Rig]:
    r = Rig(tmp_path, geo, store_url)
    yield r
    r.astore.close()


async def test_one_dwd_warning_is_decided_by_each_district_with_its_own_rules_and_published_in_its_name(
        rig: Rig) -> None:
    alert = rig.ingest(over_both("both-1", severity="Moderate", sent=rig.now - timedelta(minutes=5)))
    assert await rig.router.decide_pending() == 1
    ld, ue = rig.decision(alert, LD), rig.decision(alert, UE)
    assert ld is not None and ue is not None
    assert (ld.decision, ld.channels, ld.push, ld.district) == ("publish", ("web", "boards"), False, LD)
    assert (ue.decision, ue.channels, ue.push, ue.district) == ("publish", ("push", "web", "boards"), True, UE)
    assert ld.rules == ("DWD: markantes Wetter (Moderate) ins Web und auf die Tafeln",)
    assert ue.rules == ("Uelzen: DWD ab markantem Wetter (Moderate) per Push und im Web",)
    assert sorted(d for _, d in rig.evaluated) == [LD, UE]
    assert await rig.router.decide_pending() == 0  # decided for both: nothing left

    assert await rig.pipeline.publish_pending() == 2
    by = {d: publications.by_source_alert(rig.store, alert, d) for d in (LD, UE)}
    ld_pub, ue_pub = by[LD], by[UE]
    assert ld_pub is not None and ue_pub is not None
    assert (ld_pub.sender, ld_pub.district, ld_pub.push) == (LD_SENDER, LD, False)
    assert (ue_pub.sender, ue_pub.district, ue_pub.push) == (UE_SENDER, UE, True)
    thread = rig.store.conn.execute("SELECT thread_id FROM alerts WHERE id=?", (alert,)).fetchone()[0]
    assert (ld_pub.thread, ue_pub.thread) == (f"w{thread}", f"w{thread}-{UE_SLUG}")
    assert ld_pub.identifier.startswith(f"warnhub.{LD}.w{thread}.1.")
    assert ue_pub.identifier.startswith(f"warnhub.{UE}.w{thread}-{UE_SLUG}.1.")
    assert {n.sender_name for n in ld_pub.notices} == {"Landkreis Lüchow-Dannenberg"}
    assert {n.sender_name for n in ue_pub.notices} == {"Landkreis Uelzen"}
    assert await rig.pipeline.publish_pending() == 0
    boards = dict(rig.store.conn.execute("SELECT recipient, publication_id FROM outbox WHERE channel='boards-mqtt'"))
    # each district's boards show its own publication only (the LD board standing in Uelzen shows neither: Uelzen's
    # is not its district's, and Lüchow-Dannenberg's warns Lüchow-Dannenberg's area)
    assert boards == {"tafel-hitzacker": ld_pub.id, "tafel-uelzen": ue_pub.id, "tafel-suhlendorf": ue_pub.id}
    hooks = {ars: [h.id for h in i.webhooks] for ars, i in rig.pipeline.issuers.items()}
    assert hooks == {LD: ["zeitung-ld"], UE: ["zeitung-ue"]}  # a webhook naming no district: the first district's


async def test_drafts_carry_their_district_and_keys_never_collide(rig: Rig) -> None:
    """Lüchow-Dannenberg's rules draft a Kreis notice for an Extreme DWD warning; Uelzen's publish it. The draft is
    Lüchow-Dannenberg's, keyed with its district."""
    alert = rig.ingest(over_both("both-extreme", severity="Extreme", sent=rig.now - timedelta(minutes=5)))
    await rig.router.decide_pending()
    ld, ue = rig.decision(alert, LD), rig.decision(alert, UE)
    assert ld is not None and ue is not None and ld.drafts == ("unwetter-hinweis",) and ue.drafts == ()
    rows = rig.store.conn.execute("SELECT key, district, alert_id FROM drafts").fetchall()
    assert [tuple(r) for r in rows] == [(f"alert:{alert}:{LD}:unwetter-hinweis", LD, alert)]


async def test_a_console_warning_is_decided_by_its_own_district_only(rig: Rig) -> None:
    """The console records its warning's decision for its own district in the send's transaction; no other
    district's rules ever decide it (a warning of Uelzen must never be published in Lüchow-Dannenberg's name), nor
    does the router decide one whose decision is missing."""
    raw = over_both("console-ue", severity="Severe", sent=rig.now - timedelta(minutes=5))
    alert = rig.ingest(raw, origin="console")
    thread = rig.store.conn.execute("SELECT thread_id FROM alerts WHERE id=?", (alert,)).fetchone()[0]
    pending = decisions.Pending(alert, thread, "console", parse(raw).alert, None)
    assert decisions.record(rig.store, pending, decisions.Decision("publish", (), channels=("web",)),
                            rules_loaded_at=None, district=UE)
    lonely = rig.ingest(over_both("console-lost", sent=rig.now - timedelta(minutes=5)), origin="console")
    assert await rig.router.decide_pending() == 0
    assert rig.evaluated == []
    assert rig.decision(alert, LD) is None and rig.decision(lonely, LD) is None and rig.decision(lonely, UE) is None
    assert await rig.pipeline.publish_pending() == 1
    pub = publications.by_source_alert(rig.store, alert)
    assert pub is not None and (pub.district, pub.sender) == (UE, UE_SENDER)


async def test_a_district_whose_decision_is_missing_decides_on_the_next_pass(rig: Rig) -> None:
    """Uelzen joins later (or the node died after Lüchow-Dannenberg's decision): the next pass decides for Uelzen
    alone, and Lüchow-Dannenberg's decision is not made again."""
    only_ld = rig.make_router(rig.rules[:1])
    alert = rig.ingest(over_both("later", severity="Moderate", sent=rig.now - timedelta(minutes=5)))
    assert await only_ld.decide_pending() == 1
    first = rig.decision(alert, LD)
    assert first is not None and rig.decision(alert, UE) is None
    assert rig.evaluated == [(alert, LD)]

    assert await rig.router.decide_pending() == 1
    assert rig.evaluated == [(alert, LD), (alert, UE)]
    later = rig.decision(alert, UE)
    assert later is not None and later.decision == "publish" and later.push
    assert rig.decision(alert, LD) == first
    assert await rig.router.decide_pending() == 0


async def test_one_districts_rules_failing_does_not_stop_the_others(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Uelzen's rules raise on the warning: Lüchow-Dannenberg's decision is made and published all the same;
    Uelzen's is stored unrouted and failed, retried with backoff on its own, and decided once its rules work."""
    ue_rules = rig.rules[1].live.current
    assert ue_rules is not None

    def broken(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("rule bug in Uelzen")

    monkeypatch.setattr(ue_rules, "evaluate", broken)
    alert = rig.ingest(over_both("one-fails", severity="Moderate", sent=rig.now - timedelta(minutes=5)))
    await rig.router.decide_pending()
    ld, ue = rig.decision(alert, LD), rig.decision(alert, UE)
    assert ld is not None and ld.decision == "publish" and not ld.failed
    assert ue is not None and (ue.decision, ue.failed_stage, ue.attempts) == ("unrouted", "rules", 1)
    assert "rule bug in Uelzen" in ue.failure
    assert await rig.pipeline.publish_pending() == 1
    assert publications.by_source_alert(rig.store, alert, LD) is not None
    assert publications.by_source_alert(rig.store, alert, UE) is None

    monkeypatch.undo()
    rig.evaluated.clear()
    rig.now += decisions.retry_delay(1) + timedelta(seconds=1)
    assert await rig.router.decide_pending() == 1
    assert rig.evaluated == [(alert, UE)]  # Lüchow-Dannenberg's decision stands, not made again
    fixed = rig.decision(alert, UE)
    assert fixed is not None and (fixed.decision, fixed.failed, fixed.push) == ("publish", False, True)
    assert await rig.pipeline.publish_pending() == 1
    ue_pub = publications.by_source_alert(rig.store, alert, UE)
    assert ue_pub is not None and ue_pub.sender == UE_SENDER


async def test_the_hubs_canary_is_decided_for_the_first_district_only(rig: Rig) -> None:
    alert = rig.ingest(over_both("canary-1", severity="Minor", sent=rig.now - timedelta(minutes=5)), origin="canary")
    assert await rig.router.decide_pending() == 1
    first = rig.decision(alert, LD)
    assert first is not None and first.decision == "canary" and rig.decision(alert, UE) is None
    assert await rig.router.decide_pending() == 0  # nothing missing: Uelzen does not decide the hub's canaries
