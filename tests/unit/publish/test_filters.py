"""Subscription filters (issue 18, section 3): sources, categories (the topics), quiet hours; and the test push's
store side (section 2).

Real parts: the audience resolution the pipeline publishes by (:func:`hub.publish.audience.recipients`) over a real
:class:`~hub.publish.index.SubscriptionIndex`, the intake, rules, router and pipeline writing outbox rows on one
injected clock, real CAP samples (a DWD warning from tests/data/cap, a MoWaS and a
BIWAPP warning from the Home Assistant NINA sample in tests/data/nina, converted by warnhub's NINA source), the API
on a real aiohttp server and a real SQLite file. Times are injected (aware datetimes), never the wall clock: the quiet
hours are checked at 23:30 and 23:50 Berlin, at noon, and on both DST nights of 2026.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from adapters.sources.nina_convert import convert_payload
from hub.cap.model import Alert, Category, Severity
from hub.cap.parse import parse
from hub.cap.validate import Validator
from hub.config import load as config
from hub.decide.router import Router
from hub.decide.rules.engine import LiveRules
from hub.events import Bus
from hub.geo.geography import geography
from hub.intake.documents import Intake
from hub.metrics import Metrics
from hub.publish import index as targeting
from hub.publish import subscriptions as subs
from hub.publish import testpush
from hub.publish.audience import recipients
from hub.publish.index import LOCAL, local_minute
from hub.publish.pipeline import Pipeline
from hub.publish.sources import source_of
from hub.store.db import AsyncStore, Store
from hub.web.keys import HUB_KEY
from hub.web.subscriptions import setup
from tests.e2e.test_routing import dwd_cap
from tests.kits.hubproc import REPO, write_config
from tests.kits.paths import DATA
from tests.unit.publish.test_subscriptions import KREIS, bearer, body, check_endpoint, check_keys, region_sub

BERLIN_2330 = datetime(2026, 12, 7, 22, 30, tzinfo=UTC)
"""23:30 in Berlin (CET, UTC+1)."""
BERLIN_2350 = datetime(2026, 12, 7, 22, 50, tzinfo=UTC)
BERLIN_NOON = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)
QUIET = (22 * 60, 7 * 60)


def dwd_alert() -> Alert:
    return parse((DATA / "cap" / "de_dwd_wdr-unwetter_alert1_glaette.xml").read_bytes()).alert


def nina_alerts() -> dict[str, Alert]:
    """The NINA sample's warnings by provider (MoWaS Update, DWD, BIWAPP), as warnhub's NINA source reads them."""
    found = convert_payload((DATA / "nina" / "ha_nina_sample_warning_details.json").read_bytes())
    return {c.alert.sender: c.alert for c in found}


def decision(severity: str) -> SimpleNamespace:
    """A public push decision for the Kreis (what the rules store)."""
    return SimpleNamespace(channels=("push", "web"), audiences=("public",), push=True, severity=Severity(severity),
                           regions=(KREIS,), inside_district=True)


def reached(index: targeting.SubscriptionIndex, alert: Alert, severity: str, now: datetime) -> set[str]:
    aud = recipients(None, index, (), (), alert, decision(severity), district=KREIS, measure=False, now=now)
    return set(aud.push)


@pytest.fixture(scope="module")
def index() -> targeting.SubscriptionIndex:
    idx = targeting.SubscriptionIndex()
    idx.put("plain", region_sub(KREIS))
    idx.put("quiet", region_sub(KREIS, quiet_hours=QUIET))
    idx.put("official", region_sub(KREIS, sources=("amtlich",)))
    idx.put("weather", region_sub(KREIS, sources=("wetter",)))
    idx.put("fire-only", region_sub(KREIS, topics=("feuer",)))
    idx.put("night-owl", region_sub(KREIS, quiet_hours=(1 * 60, 5 * 60)))
    return idx


def test_sources_are_read_from_real_samples() -> None:
    nina = nina_alerts()
    assert source_of(dwd_alert()) == "wetter"
    assert source_of(nina["opendata@dwd.de"]) == "wetter"  # DWD through NINA: the same kind
    assert source_of(nina["DE-NW-BN-SE030"]) == "amtlich"  # MoWaS
    assert source_of(nina["CAP@biwapp.de"]) == "amtlich"


def test_official_only_gets_mowas_not_dwd(index: targeting.SubscriptionIndex) -> None:
    mowas = nina_alerts()["DE-NW-BN-SE030"]
    by_dwd = reached(index, dwd_alert(), "Severe", BERLIN_NOON)
    by_mowas = reached(index, mowas, "Severe", BERLIN_NOON)
    assert "official" not in by_dwd and "weather" in by_dwd and "plain" in by_dwd
    assert "official" in by_mowas and "weather" not in by_mowas and "plain" in by_mowas


def test_categories_filter_by_topic(index: targeting.SubscriptionIndex) -> None:
    """The topics are the category filter: "feuer" (BIWAPP Feuer = CAP Fire) takes no storm, but a fire."""
    assert "fire-only" not in reached(index, dwd_alert(), "Severe", BERLIN_NOON)  # CAP category Met
    biwapp = nina_alerts()["CAP@biwapp.de"]
    assert "fire-only" not in reached(index, biwapp, "Severe", BERLIN_NOON)  # its categories: no Fire
    fire = msgspec.structs.replace(biwapp, infos=tuple(msgspec.structs.replace(i, categories=(Category.FIRE,))
                                                       for i in biwapp.infos))
    assert "fire-only" in reached(index, fire, "Severe", BERLIN_NOON)


@pytest.mark.parametrize("now", [BERLIN_2330, BERLIN_2350])
def test_quiet_hours_hold_back_minor_but_not_extreme_or_severe(index: targeting.SubscriptionIndex,
                                                               now: datetime) -> None:
    alert = dwd_alert()
    assert "quiet" not in reached(index, alert, "Minor", now)
    assert "quiet" not in reached(index, alert, "Moderate", now)
    assert "quiet" in reached(index, alert, "Severe", now)
    assert "quiet" in reached(index, alert, "Extreme", now)
    assert "plain" in reached(index, alert, "Minor", now)  # only the subscription with quiet hours is held back
    assert "quiet" in reached(index, alert, "Minor", BERLIN_NOON)  # outside them: everything


def test_quiet_hours_follow_berlin_time_on_the_dst_nights(index: targeting.SubscriptionIndex) -> None:
    """Quiet 01:00-05:00 local: on 29 March 2026 clocks jump 02:00 -> 03:00 (UTC+1 -> UTC+2), on 25 October they
    fall 03:00 -> 02:00. A fixed offset would get one side of each night wrong."""
    alert = dwd_alert()
    spring_before = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)  # 00:30 CET: not yet quiet
    spring_after = datetime(2026, 3, 29, 3, 10, tzinfo=UTC)  # 05:10 CEST: quiet hours over (UTC+1: 04:10)
    spring_inside = datetime(2026, 3, 29, 2, 50, tzinfo=UTC)  # 04:50 CEST: quiet (03:50 CET too)
    assert (local_minute(spring_before), local_minute(spring_after)) == (30, 5 * 60 + 10)
    assert "night-owl" in reached(index, alert, "Minor", spring_before)
    assert "night-owl" not in reached(index, alert, "Minor", spring_inside)
    assert "night-owl" in reached(index, alert, "Minor", spring_after)  # UTC+1 would say 04:10: quiet
    autumn_inside = datetime(2026, 10, 25, 3, 50, tzinfo=UTC)  # 04:50 CET (UTC+2 would say 05:50: not quiet)
    autumn_before = datetime(2026, 10, 24, 22, 50, tzinfo=UTC)  # 00:50 CEST (UTC+1 would say 23:50)
    assert "night-owl" not in reached(index, alert, "Minor", autumn_inside)
    assert "night-owl" in reached(index, alert, "Minor", autumn_before)
    assert "night-owl" in reached(index, alert, "Extreme", autumn_inside)


def test_filters_survive_the_store_and_the_index_rebuild(tmp_path: Path) -> None:
    store = Store(tmp_path / "hub.db")
    sub = region_sub(KREIS, sources=("amtlich", "pegel"), quiet_hours=(22 * 60 + 30, 6 * 60))
    sub_id, token = subs.create(store, sub)
    assert subs.get(store, sub_id, token) == sub
    assert subs.get(store, sub_id, token).as_dict()["quiet_hours"] == {"from": "22:30", "to": "06:00"}  # type: ignore[union-attr]
    idx = targeting.SubscriptionIndex()
    assert targeting.load_index(store, idx) == 1
    assert reached(idx, dwd_alert(), "Minor", BERLIN_NOON) == set()  # weather: not among its sources
    assert reached(idx, nina_alerts()["DE-NW-BN-SE030"], "Minor", BERLIN_NOON) == {sub_id}
    assert reached(idx, nina_alerts()["DE-NW-BN-SE030"], "Minor", BERLIN_2330) == set()
    store.close()


# -- the API ----------------------------------------------------------------------------------------------------------


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], Store]]:
    store = Store(tmp_path / "hub.db")
    async_store = AsyncStore(store)
    app = web.Application()
    app[HUB_KEY] = SimpleNamespace(store=async_store, events=Bus())  # type: ignore[assignment]
    setup(app, allow_http=False, check_endpoint=check_endpoint, check_keys=check_keys)
    async with TestClient(TestServer(app)) as client:
        yield client, store
    async_store.close()


@pytest.mark.parametrize(("fields", "named"), [
    ({"sources": ["amtlich", "radio"]}, "sources[1]: 'radio'"),
    ({"sources": "amtlich"}, "invalid sources"),
    ({"topics": ["feuer", "wetter"]}, "topics[1]: 'wetter'"),
    ({"quiet_hours": {"from": "22:00", "to": "7:00"}}, "quiet_hours.to: '7:00'"),
    ({"quiet_hours": {"from": "24:00", "to": "07:00"}}, "quiet_hours.from: '24:00'"),
    ({"quiet_hours": {"from": "22:00"}}, "invalid quiet_hours"),
    ({"quiet_hours": {"from": "22:00", "to": "22:00"}}, "from equals to"),
])
async def test_the_api_refuses_bad_filters_naming_the_field(api: Any, fields: dict[str, Any], named: str) -> None:
    client, store = api
    resp = await client.post("/api/v1/subscriptions", json=body(**fields))
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert named in error and " / " in error, error
    assert store.conn.execute("SELECT count(*) FROM subscriptions").fetchone()[0] == 0


async def test_filters_are_stored_read_and_changed(api: Any) -> None:
    client, _ = api
    resp = await client.post("/api/v1/subscriptions", json=body(sources=["wetter"], topics=["hochwasser"],
                                                                 quiet_hours={"from": "22:00", "to": "07:00"}))
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    read = await (await client.get(f"/api/v1/subscriptions/{created['id']}", headers=bearer(created["token"]))).json()
    assert read["subscription"]["sources"] == ["wetter"]
    assert read["subscription"]["quiet_hours"] == {"from": "22:00", "to": "07:00"}
    changed = body(sources=[], topics=[], quiet_hours=None)
    resp = await client.put(f"/api/v1/subscriptions/{created['id']}", json=changed, headers=bearer(created["token"]))
    assert resp.status == 200
    read = await (await client.get(f"/api/v1/subscriptions/{created['id']}", headers=bearer(created["token"]))).json()
    assert (read["subscription"]["sources"], read["subscription"]["quiet_hours"]) == ([], None)


async def test_test_push_is_an_outbox_row_of_its_own_limited_per_hour(api: Any) -> None:
    client, store = api
    created = await (await client.post("/api/v1/subscriptions", json=body())).json()
    other = await (await client.post("/api/v1/subscriptions",
                                     json=body(endpoint="https://push.example.org/send/other"))).json()
    url = f"/api/v1/subscriptions/{created['id']}/test"
    assert (await client.post(url)).status == 401
    assert (await client.post(url, headers=bearer(other["token"]))).status == 404  # another's token: not found
    ids = []
    for _ in range(testpush.PER_HOUR):
        resp = await client.post(url, headers=bearer(created["token"]))
        assert resp.status == 202, await resp.text()
        ids.append((await resp.json())["id"])
    refused = await client.post(url, headers=bearer(created["token"]))
    assert refused.status == 429 and 3000 < int(refused.headers["Retry-After"]) <= 3600
    assert "pro Stunde" in (await refused.json())["error"] and "per hour" in (await refused.json())["error"]
    assert (await client.post(f"/api/v1/subscriptions/{other['id']}/test", headers=bearer(other["token"]))).status \
        == 202  # the limit is per subscription
    rows = store.conn.execute("SELECT thread, channel, recipient, publication_id, priority FROM outbox"
                              " WHERE recipient=? ORDER BY id", (created["id"],)).fetchall()
    assert rows == [(f"test:{i}", "push", created["id"], 0, testpush.PRIORITY) for i in ids]
    assert store.conn.execute("SELECT count(*) FROM publications").fetchone()[0] == 0
    state = f"{url}/{ids[0]}"
    assert (await (await client.get(state, headers=bearer(created["token"]))).json())["state"] == "sending"
    assert (await client.get(state, headers=bearer(other["token"]))).status == 404
    assert (await client.post(f"/api/v1/subscriptions/{other['id']}/test/{ids[0]}/received")).status == 404
    assert (await client.post(f"{state}/received")).status == 204
    assert (await (await client.get(state, headers=bearer(created["token"]))).json())["state"] == "received"
    assert (await client.delete(f"/api/v1/subscriptions/{created['id']}", headers=bearer(created["token"]))).status \
        == 204
    assert store.conn.execute("SELECT count(*) FROM push_tests WHERE subscription_id=?",
                              (created["id"],)).fetchone()[0] == 0  # nothing kept of a deleted subscription


def test_test_push_payload_is_marked_and_in_the_subscribers_language() -> None:
    raw = json.loads(testpush.payload("sub", "abc", "test:abc/push/sub", ["en", "de"]))
    assert raw["test"] is True and raw["thread"] == "test:abc" and raw["lang"] == "en"
    assert raw["receipt"] == "/api/v1/subscriptions/sub/test/abc/received"
    assert raw["title"].startswith("Test")
    assert "severity" not in raw and "headline" not in raw


# -- through the pipeline, on its injected clock ----------------------------------------------------------------------

ANY_DWD_PUSH = """[[rule]]
name = "Test: DWD-Warnungen jeder Stufe auch als Push"
when.provider = "dwd"
when.area = "district"
then.publish = ["push", "web"]

"""


def last_berlin(hour: int, minute: int, before: datetime) -> datetime:
    """The latest ``hour:minute`` Berlin time before ``before`` (UTC): a real recent day, so that warnings stored
    then are still valid by the wall clock the intake reads, and the quiet hours see exactly that local time."""
    local = before.astimezone(LOCAL).replace(hour=hour, minute=minute, second=0, microsecond=0)
    if local >= before:
        local -= timedelta(days=1)
    return local.replace(tzinfo=None).replace(tzinfo=LOCAL).astimezone(UTC)


async def test_the_pipeline_applies_quiet_hours_at_its_own_clock(tmp_path: Path) -> None:
    """The pipeline's injected clock decides, not the wall clock: at 23:30 Berlin a Minor warning gets no outbox
    row for the quiet subscription, a Severe one does, and at noon the Minor one does too. (Whatever the hour this
    runs at, a pipeline reading the wall clock fails one of the two.)"""
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    main = rules / "luechow-dannenberg.toml"
    text = main.read_text(encoding="utf-8")
    text = text[:text.index("# --- Eigene Sensoren")]  # no sensors configured here
    main.write_text(text.replace("# --- Deutscher Wetterdienst", ANY_DWD_PUSH + "# --- Deutscher Wetterdienst", 1),
                    encoding="utf-8")
    loaded = config.load(write_config(tmp_path, port=1))
    store = Store(loaded.db_path)
    astore = AsyncStore(store)
    clock = {"now": last_berlin(23, 30, datetime.now(UTC))}
    live = LiveRules.open(rules, sensors=[], geo=geography())
    router = Router(astore, live, district=KREIS, metrics=Metrics())
    router.clock = lambda: clock["now"]
    index = targeting.SubscriptionIndex()
    ids = {}
    for name, sub in (("quiet", region_sub(KREIS, quiet_hours=QUIET)), ("plain", region_sub(KREIS))):
        sub = subs.Subscription(f"https://push.example.org/{name}", sub.p256dh, sub.auth, sub.places,
                                quiet_hours=sub.quiet_hours)
        ids[name], _ = subs.create(store, sub)
        index.put(ids[name], sub)
    pipeline = Pipeline(astore, loaded, live, index=index, clock=lambda: clock["now"])
    intake = Intake(Validator(), store)

    async def publish(identifier: str, severity: str) -> set[str]:
        sent = clock["now"] - timedelta(minutes=5)
        doc = dwd_cap(identifier, severity=severity, sent=sent, expires=datetime.now(UTC) + timedelta(days=2))
        assert intake.ingest(doc, origin="dwd").alert_id is not None
        await router.decide_pending()
        await pipeline.publish_pending()
        rows = store.conn.execute("SELECT o.recipient FROM outbox o JOIN publications p ON p.id = o.publication_id"
                                  " WHERE o.channel='push' AND p.source_alert = (SELECT max(id) FROM alerts)")
        return {ids_by[r[0]] for r in rows}

    ids_by = {v: k for k, v in ids.items()}
    try:
        assert await publish("minor-night", "Minor") == {"plain"}
        assert await publish("severe-night", "Severe") == {"plain", "quiet"}
        clock["now"] = last_berlin(12, 0, clock["now"])
        assert await publish("minor-noon", "Minor") == {"plain", "quiet"}
    finally:
        astore.close()
