"""The preview tells the truth: what the console's preview says a warning reaches (push subscriptions, boards,
kiosks, webhooks, area, share outside the district) is what the publish pipeline then delivers, for a drawn
polygon, a circle, a Gemeinde, the Kreis and a region without a boundary of its own (which widens to the Kreis
only when the sender confirms it, audited).

Real parts: a SQLite file, the console functions, the pipeline writing its outbox rows, the subscription index, the
real Gemeinde boundaries of Lüchow-Dannenberg (tests/data/geo, BKG VG250-EW, dl-de/by-2.0) with Küsten's left out
so that one region has no boundary of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hub.cap.model import Scope
from hub.cap.serialize import to_xml
from hub.cap.validate import Validator
from hub.config.load import load as load_config
from hub.console import drafts, release, tables, targeting
from hub.console.alert import build_alert
from hub.console.model import ConsoleConfig, ConsoleError
from hub.decide import decisions
from hub.decide.decisions import Pending
from hub.decide.router import empty_rules
from hub.decide.rules.engine import RuleSet
from hub.geo.boundaries import load_extra_boundaries
from hub.geo.geography import Geography, geography
from hub.geo.projection import GERMANY, geodesic_area_m2
from hub.intake.documents import Intake
from hub.publish import publications, subscriptions
from hub.publish.index import SubscriptionIndex, load_index
from hub.publish.pipeline import Pipeline
from hub.publish.places import concerns_region
from hub.publish.subscriptions import PointPlace, RegionPlace, Subscription
from hub.store.db import AsyncStore, Store
from tests.kits.gemeindekit import (
    DANNENBERG,
    DISTRICT,
    ELBTALAUE,
    GARTOW,
    HITZACKER,
    IN_DANNENBERG,
    IN_HITZACKER,
    IN_LUECHOW,
    KUESTEN,
    LUECHOW,
    shapes,
    write_boundaries,
)
from tests.kits.hubproc import REPO
from tests.unit.console.test_console import ANNA, BERT, form

pytestmark = pytest.mark.asyncio


def config(tmp: Path) -> Path:
    path = tmp / "config.toml"
    path.write_text(f"""
[hub]
name = "Landkreis Lüchow-Dannenberg"
district_ars = "{DISTRICT}"
db = "hub.db"
sender = "leitstelle@lk-dan.example"

[[boards]]
id = "tafel-hitzacker"
name = "Hitzacker, Marktplatz"
ars = "{HITZACKER}"
kind = "mqtt"
topic = "boards/hitzacker"

[[boards]]
id = "tafel-luechow"
name = "Lüchow, Marktplatz"
ars = "{LUECHOW}"
kind = "mqtt"
topic = "boards/luechow"

[[boards]]
id = "kiosk-dannenberg"
name = "Dannenberg, Rathaus"
ars = "{DANNENBERG}"
kind = "kiosk"

[[boards]]
id = "kiosk-luechow"
name = "Lüchow, Kreishaus"
ars = "{LUECHOW}"
kind = "kiosk"

[[webhooks]]
id = "zeitung"
url = "https://zeitung.example/hook"
secret = "test-secret"

[[webhooks]]
id = "taxi-luechow"
url = "https://taxi.example/hook"
secret = "test-secret"
regions = ["{LUECHOW}"]
""", encoding="utf-8")
    return path


@dataclass
class World:
    store: Store
    cfg: ConsoleConfig
    geo: Geography
    index: SubscriptionIndex
    pipe: Pipeline
    subs: dict[str, str]
    """Name -> subscription id."""


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    extra = load_extra_boundaries(write_boundaries(tmp_path / "gemeinden.geojson", without=(KUESTEN,)))
    world = geography()  # without the bundled Gemeinden (as [geo] bundled_gemeinden = false): Küsten has no boundary
    geo = Geography(world.registry, world._kreis_cells, world._lake_cells).with_boundaries(extra)
    loaded = load_config(config(tmp_path))
    store = Store(loaded.db_path)
    places: dict[str, Any] = {
        "point-hitzacker": PointPlace(*IN_HITZACKER, 200), "point-luechow": PointPlace(*IN_LUECHOW, 200),
        "point-dannenberg": PointPlace(*IN_DANNENBERG, 200), "point-gartow": PointPlace(*GARTOW, 200),
        "region-hitzacker": RegionPlace(HITZACKER), "region-luechow": RegionPlace(LUECHOW),
        "region-elbtalaue": RegionPlace(ELBTALAUE), "region-kreis": RegionPlace(DISTRICT)}
    subs = {name: subscriptions.create(store, Subscription(f"https://push.example/{n}", "p256dh", "auth", (place,)))[0]
            for n, (name, place) in enumerate(places.items())}
    index = SubscriptionIndex(geo=geo)
    load_index(store, index)
    cfg = ConsoleConfig.from_loaded(loaded, geo=geo, templates=RuleSet.load(REPO / "rules", geo=geo).templates)
    pipe = Pipeline(AsyncStore(store), loaded, empty_rules(tmp_path / "rules", geo), index=index)
    try:
        yield World(store, cfg, geo, index, pipe, subs)
    finally:
        store.close()


def square(lat: float, lon: float, half: float = 0.01) -> list[list[float]]:
    return [[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half], [lon - half, lat + half],
            [lon - half, lat - half]]


def area_form(name: str, *, ars: tuple[str, ...] = (), ring: list[list[float]] | None = None,
              circle: tuple[float, float, float] | None = None) -> dict[str, Any]:
    f = form(ars=ars, ring=ring, circle=circle, channels=("push", "web", "boards", "webhook"), headline=f"Test {name}")
    if circle is not None and ring is None:  # form() adds the Lüchow box without regions: a circle alone here
        f["area"]["features"] = [x for x in f["area"]["features"] if x["geometry"]["type"] == "Point"]
    return f


async def preview_then_deliver(w: World, f: dict[str, Any], *, widen: bool = False) -> tuple[dict[str, Any], Any]:
    """Draft, preview (with the pipeline's index), approve, publish: the preview and the publication."""
    row = drafts.create_draft(w.store, ANNA, f, cfg=w.cfg)
    drafts.submit(w.store, ANNA, row["id"], cfg=w.cfg)
    view = targeting.preview_for(w.store, w.cfg, w.index, row["id"])
    sent = release.approve(w.store, BERT, row["id"], token=view["token"], cfg=w.cfg, widen=widen)
    assert await w.pipe.publish_pending() == 1
    pub = publications.by_source_alert(w.store, sent.alert_id)
    assert pub is not None
    return view, pub


def delivered(w: World, pub: Any) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for channel, recipient in w.store.conn.execute("SELECT channel, recipient FROM outbox WHERE publication_id=?",
                                                   (pub.id,)):
        out.setdefault(channel, set()).add(recipient)
    return out


def names(w: World, ids: set[str]) -> set[str]:
    by_id = {v: k for k, v in w.subs.items()}
    return {by_id[i] for i in ids}


CASES = {
    "polygon in Lüchow": (dict(ring=square(*IN_LUECHOW)), {"point-luechow", "region-luechow", "region-kreis"}),
    "circle in Dannenberg": (dict(circle=(IN_DANNENBERG[1], IN_DANNENBERG[0], 1500)),
                             {"point-dannenberg", "region-elbtalaue", "region-kreis"}),
    "Gemeinde Hitzacker": (dict(ars=(HITZACKER,)),
                           {"point-hitzacker", "region-hitzacker", "region-elbtalaue", "region-kreis"}),
    "Kreis": (dict(ars=(DISTRICT,)), {"point-hitzacker", "point-luechow", "point-dannenberg", "point-gartow",
                                      "region-hitzacker", "region-luechow", "region-elbtalaue", "region-kreis"}),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_the_preview_shows_whom_the_pipeline_delivers_to(world: World, case: str) -> None:
    area, expected = CASES[case]
    view, pub = await preview_then_deliver(world, area_form(case, **area))
    got = delivered(world, pub)
    pushed = names(world, got.get("push", set()))
    assert pushed == expected  # the true audience on the real boundaries ...
    assert view["audience"]["push"] == len(pushed)  # ... and the preview said exactly that many
    assert {b["id"] for b in view["audience"]["boards"]} == got.get("boards-mqtt", set())
    assert {h["id"] for h in view["audience"]["webhooks"]} == got.get("webhooks", set())
    kiosks = {b.id for b in world.cfg.boards if b.kind == "kiosk" and concerns_region(pub, b.ars, world.geo)}
    assert {b["id"] for b in view["audience"]["kiosks"]} == kiosks  # what the kiosk pages will show
    assert view["overspill"]["regions"] == list(pub.regions)
    assert view["widening"] is None
    # nothing of it outside the district, and the area the pipeline stored is the area the preview measured
    assert view["overspill"]["outside_share"] == 0.0
    assert view["overspill"]["area_km2"] == pytest.approx(geodesic_area_m2(pub.area) / 1e6, rel=0.01)


async def test_a_gemeinde_warning_names_no_kreis_and_stays_off_other_gemeinden(world: World) -> None:
    view, pub = await preview_then_deliver(world, area_form("Hitzacker", ars=(HITZACKER,)))
    assert pub.regions == (HITZACKER,)  # not the Kreis: that would reach every Gemeinde's widget and region
    assert view["overspill"]["area_km2"] == pytest.approx(geodesic_area_m2(shapes()[HITZACKER]) / 1e6, rel=0.01)
    assert concerns_region(pub, HITZACKER, world.geo) and concerns_region(pub, DISTRICT, world.geo)
    assert not concerns_region(pub, LUECHOW, world.geo) and not concerns_region(pub, DANNENBERG, world.geo)
    assert {b["id"] for b in view["audience"]["boards"]} == {"tafel-hitzacker"}
    assert {h["id"] for h in view["audience"]["webhooks"]} == {"zeitung"}  # the district's, not Lüchow's taxis


async def test_a_region_without_a_boundary_widens_to_the_kreis_only_when_confirmed(world: World) -> None:
    f = area_form("Küsten", ars=(KUESTEN,))
    row = drafts.create_draft(world.store, ANNA, f, cfg=world.cfg)
    drafts.submit(world.store, ANNA, row["id"], cfg=world.cfg)
    view = targeting.preview_for(world.store, world.cfg, world.index, row["id"])
    n = view["audience"]["push"]
    assert n == len(world.subs)  # everyone in the Kreis: said, not hidden
    assert view["widening"]["text"]["de"] == \
        f"Küsten ohne eigene Grenze – die Warnung gilt für den ganzen Landkreis Lüchow-Dannenberg ({n} Abos)"
    assert view["widening"]["text"]["en"].startswith("Küsten has no boundary of its own – the warning covers the "
                                                     "whole district Lüchow-Dannenberg")
    kreis = GERMANY.unproject(world.geo.geometry(DISTRICT))
    assert view["overspill"]["area_km2"] == pytest.approx(geodesic_area_m2(kreis) / 1e6, rel=0.01)
    with pytest.raises(ConsoleError, match="Ausweitung ausdrücklich bestätigen"):
        release.approve(world.store, BERT, row["id"], token=view["token"], cfg=world.cfg)
    assert tables.get(world.store, row["id"])["state"] == "submitted"  # type: ignore[index]
    assert not [e for e in world.store.audit_entries() if e["action"] == "console.widening_confirmed"]

    sent = release.approve(world.store, BERT, row["id"], token=view["token"], cfg=world.cfg, widen=True)
    assert await world.pipe.publish_pending() == 1
    pub = publications.by_source_alert(world.store, sent.alert_id)
    assert pub is not None and DISTRICT in pub.regions
    assert len(delivered(world, pub)["push"]) == n
    confirmed = [e for e in world.store.audit_entries() if e["action"] == "console.widening_confirmed"]
    assert len(confirmed) == 1 and confirmed[0]["actor"] == "bert"
    assert json.loads(confirmed[0]["detail"]) == {"warning": row["id"], "regions": [KUESTEN], "kreise": [DISTRICT]}

    # ending it never waits for that tick: the Cancel goes through without it
    world.store.conn.execute("UPDATE outbox SET state='done'")
    cancel = drafts.follow_up(world.store, ANNA, row["id"], "cancel", cfg=world.cfg)
    drafts.submit(world.store, ANNA, cancel["id"], cfg=world.cfg)
    view = targeting.preview_for(world.store, world.cfg, world.index, cancel["id"])
    assert view["widening"] is None
    release.approve(world.store, BERT, cancel["id"], token=view["token"], cfg=world.cfg)
    assert await world.pipe.publish_pending() == 1
    latest = publications.latest(world.store, pub.thread)
    assert latest is not None and latest.msg_type == "Cancel" and DISTRICT in latest.regions


CHANNELS_CASES = {  # row changes, CAP scope, the channels the warning is published on
    "public": ({}, "Public", ("push", "web", "boards", "webhook")),
    "topic": ({"audience": "topic", "topic": "heimatfest"}, "Public", ("push",)),
    "exercise": ({"status": "Exercise"}, "Public", ("push", "web", "boards", "webhook")),
    "Restricted": ({}, "Restricted", ("push", "webhook")),
}


@pytest.mark.parametrize("case", list(CHANNELS_CASES))
async def test_the_preview_shows_the_channels_the_pipeline_publishes_on(world: World, case: str) -> None:
    """One audience -> channels rule (hub.publish.audience.effective_channels): the channels the console's preview
    shows and its decision stores are those the pipeline publishes on, and nothing is queued beyond them. A topic
    message goes by push alone, even with web, boards and webhooks among its channels (the console's promise; the
    pipeline used to keep the webhooks)."""
    changes, scope, expected = CHANNELS_CASES[case]
    draft = drafts.create_draft(world.store, ANNA, area_form(case, ars=(HITZACKER,)), cfg=world.cfg)
    row = {**draft, **changes}  # a topic row with every channel: the form refuses it, the rule must not need that
    alert = build_alert(world.cfg, row, previous=None, sent=datetime.now(UTC).replace(microsecond=0))
    if scope != "Public":
        alert = msgspec.structs.replace(alert, scope=Scope(scope), restriction="Einsatzkräfte")
    plan = targeting._plan(world.cfg, row, alert, world.index)
    if scope == "Public":  # what the sender sees (the preview builds the same alert)
        assert targeting.preview_for(world.store, world.cfg, world.index, row)["audience"]["channels"] == list(expected)
    assert plan.channels == expected

    stored = Intake(Validator(), world.store).ingest(to_xml(alert), origin="console")
    assert stored.alert_id is not None and stored.thread_id is not None
    pending = Pending(stored.alert_id, stored.thread_id, "console", alert, None)
    assert decisions.record(world.store, pending, targeting._decision(row, plan, case), rules_loaded_at=None)
    assert await world.pipe.publish_pending() == 1
    pub = publications.by_source_alert(world.store, stored.alert_id)
    assert pub is not None and pub.channels == plan.channels == expected
    got = delivered(world, pub)
    assert set(got) <= {"push", "boards-mqtt", "webhooks"}
    assert got.get("boards-mqtt", set()) == {b.id for b in plan.boards}
    assert got.get("webhooks", set()) == {h.id for h in plan.webhooks}
    assert got.get("push", set()) == set(plan.push)
    if "boards" in expected and case != "exercise":  # the area reaches a board and a webhook: they are sent
        assert got["boards-mqtt"] == {"tafel-hitzacker"} and got["webhooks"] == {"zeitung"}
    if case == "topic":  # nobody chose the topic: no push, and nothing else either
        assert got == {}
