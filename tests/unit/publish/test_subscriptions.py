"""Citizen subscriptions: the API on a real aiohttp server and a real SQLite file, and targeting against the bundled
geography (DWD Kreis boundaries, Destatis ARS list).

Invariants: a subscription is reachable only with its token (a wrong token looks like an unknown id); nothing about
a person is stored beyond the documented columns; exercises reach only exercise devices and they only exercises; a
deleted subscription is never targeted again.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
import shapely
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hub import registry as adapter_registry
from hub.access import exercise_tokens
from hub.events import Bus, SubscriptionsChanged
from hub.geo.registry import registry
from hub.publish import index as targeting
from hub.publish import subscriptions as subs
from hub.store.db import AsyncStore, Store
from hub.store.migrations.tools import columns as table_columns
from hub.web.keys import HUB_KEY
from hub.web.limits import AddressRate
from hub.web.subscriptions import MAX_BODY, setup

DANNENBERG = (53.098, 11.094)
"""Dannenberg (Elbe), Landkreis Lüchow-Dannenberg (lat, lon)."""
HAMBURG = (53.551, 9.994)
AROUND_DANNENBERG = shapely.box(11.07, 53.08, 11.11, 53.11)
"""A warning polygon around Dannenberg (lon/lat); its eastern edge is 11.11° E."""
KREIS = "033540000000"
GEMEINDE_DANNENBERG = "033545406004"
GEMEINDE_LUENEBURG = "033550022022"
"""Lüneburg, Hansestadt: a Gemeinde in another Kreis (03355)."""
P256DH = "B" + "x" * 86
AUTH = "a" * 22


def check_endpoint(url: str, *, allow_http: bool) -> str | None:
    """Stand-in for adapters.channels.pushcheck.check_endpoint."""
    if url.startswith("https://") or (allow_http and url.startswith("http://")):
        return None
    return "nur https / https only"


def check_keys(p256dh: str, auth: str) -> str | None:
    """Stand-in for adapters.channels.pushcheck.check_keys."""
    return None if len(p256dh) == 87 and len(auth) == 22 else "ungültige Schlüssel / invalid keys"


def body(endpoint: str = "https://push.example.org/send/abc", **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"subscription": {"endpoint": endpoint, "keys": {"p256dh": P256DH, "auth": AUTH}},
                            "places": [{"lat": DANNENBERG[0], "lon": DANNENBERG[1], "radius_m": 2000}]}
    data.update(fields)
    return data


def point_sub(lat_lon: tuple[float, float], radius_m: int = 1000, **kw: Any) -> subs.Subscription:
    return subs.Subscription("https://push.example.org/x", P256DH, AUTH, (subs.PointPlace(*lat_lon, radius_m),), **kw)


def region_sub(ars: str, **kw: Any) -> subs.Subscription:
    return subs.Subscription("https://push.example.org/x", P256DH, AUTH, (subs.RegionPlace(ars),), **kw)


def match(index: targeting.SubscriptionIndex, geom: Any = None, keys: set[str] | None = None, *,
          severity: str = "Severe", categories: set[str] | None = None, events: set[str] | None = None,
          exercise: bool = False) -> set[str]:
    return set(index.match(geom, keys or set(), severity=severity, categories=categories or {"Met"},
                           event_topics=events or set(), exercise=exercise))


@pytest.fixture
async def api(store_url: str, tmp_path: Any) -> AsyncIterator[tuple[TestClient, targeting.SubscriptionIndex, Store]]:
    store = Store(store_url)
    async_store = AsyncStore(store)
    app = web.Application()
    app[HUB_KEY] = SimpleNamespace(store=async_store, events=Bus())  # type: ignore[assignment]
    index = setup(app, allow_http=False, check_endpoint=check_endpoint, check_keys=check_keys)
    async with TestClient(TestServer(app)) as client:
        yield client, index, store
    async_store.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- API --------------------------------------------------------------------------------------------------------------


async def test_create_read_update_delete(api: Any) -> None:
    client, index, _ = api
    heard: list[SubscriptionsChanged] = []  # what the other nodes are told (hub.cluster)
    client.server.app[HUB_KEY].events.subscribe(SubscriptionsChanged, heard.append)
    resp = await client.post("/api/v1/subscriptions", json=body(topics=["Hochwasser"], languages=["de-x-ls", "en"]))
    assert resp.status == 201, await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    created = await resp.json()
    sub_id, token = created["id"], created["token"]
    assert len(sub_id) == 22 and len(token) == 43
    assert created["subscription"]["topics"] == ["hochwasser"]
    assert created["subscription"]["min_severity"] == "Minor" and created["subscription"]["exercise"] is False
    assert match(index, AROUND_DANNENBERG) == {sub_id}

    resp = await client.get(f"/api/v1/subscriptions/{sub_id}", headers=bearer(token))
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    assert (await resp.json()) == {"id": sub_id, "subscription": created["subscription"]}

    moved = body(places=[{"lat": HAMBURG[0], "lon": HAMBURG[1]}], min_severity="Severe")
    resp = await client.put(f"/api/v1/subscriptions/{sub_id}", json=moved, headers=bearer(token))
    assert resp.status == 200, await resp.text()
    got = await (await client.get(f"/api/v1/subscriptions/{sub_id}", headers=bearer(token))).json()
    assert got["subscription"]["places"] == [{"lat": HAMBURG[0], "lon": HAMBURG[1], "radius_m": 1000}]
    assert got["subscription"]["min_severity"] == "Severe"
    assert match(index, AROUND_DANNENBERG) == set()  # the index follows the update
    assert match(index, shapely.Point(HAMBURG[1], HAMBURG[0]).buffer(0.01)) == {sub_id}

    resp = await client.delete(f"/api/v1/subscriptions/{sub_id}", headers=bearer(token))
    assert resp.status == 204 and resp.headers["Cache-Control"] == "no-store"
    assert (await client.get(f"/api/v1/subscriptions/{sub_id}", headers=bearer(token))).status == 404
    assert match(index, shapely.Point(HAMBURG[1], HAMBURG[0]).buffer(0.01)) == set()
    assert heard == [SubscriptionsChanged((sub_id,))] * 3  # created, changed, deleted


async def test_wrong_token_looks_like_unknown_id(api: Any) -> None:
    client, _, _ = api
    created = await (await client.post("/api/v1/subscriptions", json=body())).json()
    sub_id = created["id"]
    wrong = await client.get(f"/api/v1/subscriptions/{sub_id}", headers=bearer("x" * 43))
    unknown = await client.get("/api/v1/subscriptions/AAAAAAAAAAAAAAAAAAAAAA", headers=bearer(created["token"]))
    assert wrong.status == unknown.status == 404
    assert await wrong.text() == await unknown.text()
    assert "Unbekanntes Abo" in await wrong.text() and "unknown subscription" in await wrong.text()
    for method in (client.put, client.delete):
        resp = await method(f"/api/v1/subscriptions/{sub_id}", json=body(), headers=bearer("x" * 43))
        assert resp.status == 404 and await resp.text() == await unknown.text()
    missing = await client.get(f"/api/v1/subscriptions/{sub_id}")
    assert missing.status == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    # still there for the right token
    assert (await client.get(f"/api/v1/subscriptions/{sub_id}", headers=bearer(created["token"]))).status == 200


async def test_resubscribing_an_endpoint_replaces_it(api: Any) -> None:
    client, index, store = api
    first = await (await client.post("/api/v1/subscriptions", json=body())).json()
    again = body(places=[{"ars": "03354"}])
    second = await (await client.post("/api/v1/subscriptions", json=again)).json()
    assert second["id"] == first["id"] and second["token"] != first["token"]
    assert (await client.get(f"/api/v1/subscriptions/{first['id']}", headers=bearer(first["token"]))).status == 404
    got = await (await client.get(f"/api/v1/subscriptions/{first['id']}", headers=bearer(second["token"]))).json()
    assert got["subscription"]["places"] == [{"ars": KREIS}]
    assert store.conn.execute("SELECT count(*) FROM subscriptions").fetchone()[0] == 1
    assert len(index) == 1
    assert match(index, None, {KREIS}) == {first["id"]}


async def test_update_to_an_endpoint_of_another_subscription_conflicts(api: Any) -> None:
    client, _, _ = api
    one = await (await client.post("/api/v1/subscriptions", json=body("https://push.example.org/one"))).json()
    await client.post("/api/v1/subscriptions", json=body("https://push.example.org/two"))
    resp = await client.put(f"/api/v1/subscriptions/{one['id']}", json=body("https://push.example.org/two"),
                            headers=bearer(one["token"]))
    assert resp.status == 409
    assert "anderen Abo / push endpoint belongs to another" in (await resp.json())["error"]


@pytest.mark.parametrize(("fields", "german", "english"), [
    ({"places": [{"ars": "033549999999"}]}, "Ungültiger Ort", "is not a known ARS"),
    ({"places": [{"lat": 53.1, "lon": 11.1, "radius_m": 60_000}]}, "Ungültiger Ort", "is not between 100 and"),
    ({"places": [{"lat": 53.1, "lon": 11.1, "radius_m": 50}]}, "liegt nicht zwischen", "is not between"),
    ({"places": [{"lat": 48.857, "lon": 2.352}]}, "liegt nicht in Deutschland", "lies outside Germany"),
    ({"places": [{"lat": 11.1, "lon": 53.1}]}, "vertauscht", "lat and lon swapped"),
    ({"places": [{"lat": 53.1, "lon": 11.1 + i / 100} for i in range(21)]}, "Ungültige Orte", "give 1 to 20 places"),
    ({"places": []}, "Ungültige Orte", "give 1 to 20 places"),
    ({"topics": ["wetter"]}, "Unbekanntes Thema", "unknown topic"),
    ({"topics": ["event:Das Fest!"]}, "Unbekanntes Thema", "unknown topic"),
    ({"min_severity": "Unknown"}, "Ungültige Mindest-Schwere", "invalid min_severity"),
    ({"languages": ["deutsch!"]}, "Ungültige Sprache", "invalid language"),
    ({"exercise": "yes"}, "Ungültiger Wert", "invalid value"),
    ({"email": "a@b.de"}, "Unbekanntes Feld", "unknown field: email"),
    ({"subscription": {"endpoint": "http://push.example.org/x", "keys": {"p256dh": P256DH, "auth": AUTH}}},
     "Ungültiges Push-Abo", "https only"),
    ({"subscription": {"endpoint": "https://push.example.org/x", "keys": {"p256dh": "short", "auth": AUTH}}},
     "Ungültiges Push-Abo", "invalid keys"),
])
async def test_invalid_requests_say_why_in_german_and_english(api: Any, fields: dict[str, Any], german: str,
                                                              english: str) -> None:
    client, index, store = api
    resp = await client.post("/api/v1/subscriptions", json=body(**fields))
    assert resp.status == 400
    assert resp.headers["Cache-Control"] == "no-store"
    error = (await resp.json())["error"]
    assert german in error and english in error
    assert error.index(german) < error.index(english)
    assert len(index) == 0


async def test_invalid_json_and_oversized_bodies(api: Any) -> None:
    client, _, _ = api
    resp = await client.post("/api/v1/subscriptions", data=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status == 400 and "Ungültiges JSON / invalid JSON" in (await resp.json())["error"]
    resp = await client.post("/api/v1/subscriptions", json=[1, 2])
    assert resp.status == 400 and "JSON object expected" in (await resp.json())["error"]
    big = body(padding="x" * MAX_BODY)
    resp = await client.post("/api/v1/subscriptions", json=big)
    assert resp.status == 413 and "request too large" in (await resp.json())["error"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while reading
        for _ in range(20):
            yield b" " * 1024

    resp = await client.post("/api/v1/subscriptions", data=chunks())
    assert resp.status == 413


async def test_only_the_documented_columns_are_stored(api: Any) -> None:
    client, _, store = api
    places = [{"lat": 53.0975123, "lon": 11.0936456, "radius_m": 1234.4}, {"ars": "03354"}]
    resp = await client.post("/api/v1/subscriptions", json=body(places=places),
                             headers={"User-Agent": "Secret-Browser/1.0", "X-Forwarded-For": "203.0.113.7"})
    created = await resp.json()
    columns = table_columns(store.conn, "subscriptions")
    assert tuple(columns) == subs.COLUMNS
    assert all(f"``{c}``" in (subs.__doc__ or "") for c in columns)  # the privacy page quotes the docstring
    row = dict(zip(columns, store.conn.execute("SELECT * FROM subscriptions").fetchone(), strict=True))
    text = " ".join(str(v) for v in row.values())
    assert created["token"] not in text and "203.0.113.7" not in text and "Secret-Browser" not in text
    assert row["token_hash"] == hashlib.sha256(created["token"].encode()).hexdigest()
    assert row["places"] == f'[{{"lat":53.098,"lon":11.094,"radius_m":1234}},{{"ars":"{KREIS}"}}]'
    assert row["created_ms"] % 86_400_000 == 0 and row["updated_ms"] == row["created_ms"]
    assert row["exercise"] == 0 and row["languages"] == '["de"]' and row["topics"] == "[]"


async def test_index_is_loaded_from_the_store_at_startup(store_url: str, tmp_path: Any) -> None:
    store = Store(store_url)
    sub_id, _ = subs.create(store, point_sub(DANNENBERG))
    async_store = AsyncStore(store)
    app = web.Application()
    app[HUB_KEY] = SimpleNamespace(store=async_store, events=Bus())  # type: ignore[assignment]
    index = setup(app, allow_http=True, check_endpoint=check_endpoint, check_keys=check_keys)
    async with TestClient(TestServer(app)):
        assert match(index, AROUND_DANNENBERG) == {sub_id}
    async_store.close()


def test_setup_fails_loudly_without_the_push_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    import adapters.channels

    monkeypatch.setitem(sys.modules, "adapters.channels.pushcheck", None)
    monkeypatch.delattr(adapters.channels, "pushcheck", raising=False)  # imported by another test already
    adapter_registry.clear()  # loaded (and cached) by another test already
    try:
        with pytest.raises(RuntimeError, match="adapters.channels.pushcheck"):
            setup(web.Application(), allow_http=False)
    finally:
        adapter_registry.clear()  # the tests after this one load the real hooks again


# -- store ------------------------------------------------------------------------------------------------------------


def test_store_crud_and_delete_ids(store_url: str, tmp_path: Any) -> None:
    with Store(store_url) as store:
        a, token_a = subs.create(store, point_sub(DANNENBERG))
        b, token_b = subs.create(store, replace(point_sub(HAMBURG), endpoint="https://push.example.org/b"))
        assert subs.get(store, a, token_a) == point_sub(DANNENBERG)
        assert subs.get(store, a, token_b) is None and subs.get(store, "nope", token_a) is None
        assert not subs.update(store, a, token_b, point_sub(HAMBURG))
        assert subs.update(store, a, token_a, point_sub(HAMBURG, radius_m=5000))
        assert subs.get(store, a, token_a) == point_sub(HAMBURG, radius_m=5000)
        assert not subs.delete(store, b, token_a)
        assert subs.delete_ids(store, [b, "unknown"]) == 1
        assert [i for i, _ in subs.load_all(store)] == [a]
        assert subs.delete(store, a, token_a) and subs.load_all(store) == []


def test_parse_defaults_and_normalisation() -> None:
    sub = subs.parse_subscription(body(places=[{"ars": "03354"}, {"ars": "03354"}, {"lat": 53, "lon": 11}],
                                       topics=["Unwetter", "event:kulturelle-landpartie", "unwetter"],
                                       languages=["DE-x-LS"]),
                                  registry=registry(), check_endpoint=check_endpoint, check_keys=check_keys)
    assert sub.places == (subs.RegionPlace(KREIS), subs.PointPlace(53.0, 11.0, 1000))
    assert sub.topics == ("unwetter", "event:kulturelle-landpartie")
    assert sub.languages == ("de-x-ls",) and sub.min_severity == "Minor" and not sub.exercise
    assert set(subs.TOPICS) >= {"bombenfund", "chemieunfall", "feuer", "hochwasser", "erdrutsch-lawine",
                                "grossschadenslage", "unwetter", "verkehrsunfall", "unterrichtsausfall",
                                "seuchenfall", *(c.lower() for c in subs.CATEGORIES)}
    assert all(t.de and t.en and t.categories <= set(subs.CATEGORIES) for t in subs.TOPICS.values())


def test_best_language() -> None:
    assert subs.best_language(["en"], ["de-DE", "en-US"]) == "en-US"
    assert subs.best_language(["de-x-ls", "en"], ["de", "de-x-ls", "en"]) == "de-x-ls"
    assert subs.best_language(["de"], ["de-x-ls", "de-DE"]) == "de-DE"
    assert subs.best_language(["fr"], ["en", "de"]) == "de"
    assert subs.best_language(["fr"], ["en", "pl"]) == "en"
    assert subs.best_language(["tr"], []) == "tr"


# -- targeting --------------------------------------------------------------------------------------------------------


@pytest.fixture
def index() -> targeting.SubscriptionIndex:
    return targeting.SubscriptionIndex()


def test_points_match_areas_they_lie_in_or_reach(index: targeting.SubscriptionIndex) -> None:
    index.put("dannenberg", point_sub(DANNENBERG))
    index.put("hamburg", point_sub(HAMBURG, 50_000))
    index.put("reaches", point_sub((53.095, 11.185), 6_000))  # 5.0 km east of the polygon
    index.put("short", point_sub((53.095, 11.185), 4_000))
    assert match(index, AROUND_DANNENBERG) == {"dannenberg", "reaches"}
    # without a shape, the Kreis named by key stands for its area (bundled DWD boundary)
    assert match(index, None, {KREIS}) == {"dannenberg", "reaches", "short"}
    assert match(index, None, {"02000"}) == {"hamburg"}
    # a Gemeinde's bundled boundary stands for its area: the 50 km around Hamburg reach the Stadt Lüneburg
    assert match(index, None, {GEMEINDE_LUENEBURG}) == {"hamburg"}


def test_region_places_match_by_hierarchy_and_boundary(index: targeting.SubscriptionIndex) -> None:
    reg = registry()
    assert reg.kreis_of(GEMEINDE_DANNENBERG) == KREIS and reg.kreis_of(GEMEINDE_LUENEBURG) == "033550000000"
    index.put("gemeinde", region_sub(GEMEINDE_DANNENBERG))
    index.put("kreis", region_sub(KREIS))
    index.put("lueneburg", region_sub("033550000000"))
    index.put("land", region_sub("030000000000"))
    assert match(index, None, {KREIS}) == {"gemeinde", "kreis", "land"}
    assert match(index, None, {GEMEINDE_LUENEBURG}) == {"lueneburg", "land"}
    assert match(index, None, {GEMEINDE_DANNENBERG}) == {"gemeinde", "kreis", "land"}
    assert match(index, None, {"03"}) == {"gemeinde", "kreis", "lueneburg", "land"}
    assert match(index, None, {"09162"}) == set()  # München
    # by boundary: the polygon lies in the Kreis, in Niedersachsen and in the Gemeinde (its bundled boundary)
    assert match(index, AROUND_DANNENBERG) == {"gemeinde", "kreis", "land"}
    # a warning with an area reaches a Gemeinde below its keys only where the area touches the Gemeinde
    index.put("gorleben", region_sub("033545403007"))  # 13 km east of the polygon, in the same Kreis
    assert match(index, AROUND_DANNENBERG, {KREIS}) == {"gemeinde", "kreis", "land"}
    assert "gorleben" in match(index, None, {KREIS})  # no area: the Kreis key stands for every place in it


def test_severity_topic_and_exercise_filters(index: targeting.SubscriptionIndex) -> None:
    index.put("all", point_sub(DANNENBERG))
    index.put("severe", point_sub(DANNENBERG, min_severity="Severe"))
    index.put("flood", point_sub(DANNENBERG, topics=("hochwasser",)))
    index.put("fest", point_sub(DANNENBERG, topics=("event:kulturelle-landpartie",)))
    index.put("drill", point_sub(DANNENBERG, exercise=True))
    assert match(index, AROUND_DANNENBERG, severity="Moderate") == {"all", "flood"}
    assert match(index, AROUND_DANNENBERG, severity="Extreme") == {"all", "severe", "flood"}
    assert match(index, AROUND_DANNENBERG, severity="Unknown") == {"all", "severe", "flood"}
    assert match(index, AROUND_DANNENBERG, categories={"Fire"}) == {"all", "severe"}
    assert match(index, AROUND_DANNENBERG, categories={"Fire"}, events={"kulturelle-landpartie"}) == {
        "all", "severe", "fest"}
    assert match(index, AROUND_DANNENBERG, categories={"Safety"}, events={"event:kulturelle-landpartie"}) == {
        "all", "severe", "fest"}
    assert match(index, AROUND_DANNENBERG, exercise=True) == {"drill"}
    assert match(index, None, {KREIS}, exercise=True) == {"drill"}


def test_index_reflects_changes_before_and_after_a_rebuild(index: targeting.SubscriptionIndex) -> None:
    index.put("a", point_sub(DANNENBERG))
    index.put("b", region_sub(KREIS))
    assert match(index, AROUND_DANNENBERG) == {"a", "b"}
    index.remove("a")
    assert match(index, AROUND_DANNENBERG) == {"b"}
    many = {f"s{i:05d}": point_sub((50.0 + i % 50 / 10, 7.0 + i // 50 / 10)) for i in range(targeting._DELTA_MAX + 10)}
    for sub_id, sub in many.items():
        index.put(sub_id, sub)
    index.put("a", point_sub(DANNENBERG))
    assert match(index, AROUND_DANNENBERG) == {"a", "b"}  # this query rebuilt the base
    assert index._base is not None and len(index._delta) == 0 and len(index) == len(many) + 2
    index.remove_many(["a", "s00000"])
    index.put("b", point_sub(HAMBURG))  # moved away: the old version in the base is dead
    assert match(index, AROUND_DANNENBERG) == set()
    assert match(index, shapely.Point(7.0, 50.0).buffer(0.001)) == set()
    assert match(index, shapely.Point(7.0, 50.1).buffer(0.001)) == {"s00001"}
    assert len(index) == len(many)


def test_index_from_the_store(store_url: str, tmp_path: Any, index: targeting.SubscriptionIndex) -> None:
    with Store(store_url) as store:
        a, _ = subs.create(store, point_sub(DANNENBERG, topics=("hochwasser",), min_severity="Moderate"))
        b, _ = subs.create(store, replace(region_sub(GEMEINDE_DANNENBERG), endpoint="https://push.example.org/b"))
        assert targeting.load_index(store, index) == 2
    assert match(index, None, {KREIS}) == {a, b}
    assert match(index, None, {KREIS}, categories={"Fire"}) == {b}


# -- exercise subscriptions only with a token from the console or the CLI ---------------------------------------------


async def test_exercise_needs_a_valid_single_use_token(api: Any) -> None:
    client, index, store = api
    resp = await client.post("/api/v1/subscriptions", json=body(exercise=True))
    assert resp.status == 403
    error = (await resp.json())["error"]
    assert "Freischalt-Code" in error and "exercise subscriptions need a valid token" in error
    resp = await client.post("/api/v1/subscriptions", json=body(exercise=True, exercise_token="made-up"))
    assert resp.status == 403
    assert len(index) == 0 and store.conn.execute("SELECT COUNT(*) FROM subscriptions").fetchone()[0] == 0

    token, _ = exercise_tokens.issue(store, "anna")
    resp = await client.post("/api/v1/subscriptions", json=body(exercise=True, exercise_token=token))
    assert resp.status == 201, await resp.text()
    drill = await resp.json()
    assert drill["subscription"]["exercise"] is True
    assert match(index, AROUND_DANNENBERG, exercise=True) == {drill["id"]}
    # the same device may change its settings and stays an exercise device; the token is used up for any other
    resp = await client.put(f"/api/v1/subscriptions/{drill['id']}", headers=bearer(drill["token"]),
                            json=body(exercise=True, min_severity="Severe"))
    assert resp.status == 200, await resp.text()
    resp = await client.post("/api/v1/subscriptions",
                             json=body("https://push.example.org/send/other", exercise=True, exercise_token=token))
    assert resp.status == 403
    actions = [(e["actor"], e["action"], e["subject"]) for e in store.audit_entries()]
    assert ("anna", "exercise_token.issue", "") in actions and ("anna", "exercise_token.use", drill["id"]) in actions


async def test_a_citizen_subscription_cannot_turn_into_an_exercise_one_without_a_token(api: Any) -> None:
    client, index, store = api
    created = await (await client.post("/api/v1/subscriptions", json=body())).json()
    url, auth_header = f"/api/v1/subscriptions/{created['id']}", bearer(created["token"])
    resp = await client.put(url, headers=auth_header, json=body(exercise=True))
    assert resp.status == 403
    assert (await (await client.get(url, headers=auth_header)).json())["subscription"]["exercise"] is False
    assert match(index, AROUND_DANNENBERG, exercise=True) == set()
    expired, _ = exercise_tokens.issue(store, "anna", now_ms=1_000_000)  # issued in 1970: long expired
    resp = await client.put(url, headers=auth_header, json=body(exercise=True, exercise_token=expired))
    assert resp.status == 403
    token, _ = exercise_tokens.issue(store, "anna")
    resp = await client.put(url, headers=auth_header, json=body(exercise=True, exercise_token=token))
    assert resp.status == 200 and (await resp.json())["subscription"]["exercise"] is True
    resp = await client.post("/api/v1/subscriptions", json=body("https://push.example.org/send/2", exercise_token="x"))
    assert resp.status == 400  # a token without exercise: true says so


# -- limits -----------------------------------------------------------------------------------------------------------


@pytest.fixture
async def limited(store_url: str, tmp_path: Any
                  ) -> AsyncIterator[tuple[TestClient, targeting.SubscriptionIndex, Store]]:
    store = Store(store_url)
    async_store = AsyncStore(store)
    app = web.Application()
    app[HUB_KEY] = SimpleNamespace(store=async_store, events=Bus())  # type: ignore[assignment]
    index = setup(app, allow_http=False, check_endpoint=check_endpoint, check_keys=check_keys,
                  per_address_per_hour=3, max_subscriptions=2)
    async with TestClient(TestServer(app)) as client:
        yield client, index, store
    async_store.close()


async def test_subscriptions_per_address_and_in_total_are_limited(limited: Any) -> None:
    client, index, _store = limited
    first = await client.post("/api/v1/subscriptions", json=body("https://push.example.org/send/1"))
    second = await client.post("/api/v1/subscriptions", json=body("https://push.example.org/send/2"))
    assert first.status == 201 and second.status == 201 and len(index) == 2
    full = await client.post("/api/v1/subscriptions", json=body("https://push.example.org/send/3"))
    assert full.status == 503 and int(full.headers["Retry-After"]) > 0
    assert "keine neuen Abos" in (await full.json())["error"] and len(index) == 2
    # that was the third request of this address within the hour: the fourth is refused before anything else
    again = await client.post("/api/v1/subscriptions", json=body("https://push.example.org/send/1"))
    assert again.status == 429 and 0 < int(again.headers["Retry-After"]) <= 3600
    error = (await again.json())["error"]
    assert "Zu viele Abo-Anfragen" in error and "too many subscription requests" in error


async def test_at_the_cap_an_existing_endpoint_can_still_subscribe_again(limited: Any) -> None:
    client, index, _store = limited
    for n in (1, 2):
        resp = await client.post("/api/v1/subscriptions", json=body(f"https://push.example.org/send/{n}"))
        assert resp.status == 201
    again = await client.post("/api/v1/subscriptions", json=body("https://push.example.org/send/1", topics=["fire"]))
    assert again.status == 201 and len(index) == 2


def test_address_rate_window_and_ipv6_networks() -> None:
    now = [0.0]
    rate = AddressRate(2, 3600, clock=lambda: now[0])
    assert rate.hit("2001:db8::1") == 0 and rate.hit("2001:db8::ffff") == 0  # one /64
    assert rate.hit("2001:db8::2") == 3600
    assert rate.hit("2001:db8:0:1::1") == 0 and rate.hit("192.0.2.1") == 0  # another /64, an IPv4 address
    now[0] = 3600.0
    assert rate.hit("2001:db8::3") == 0  # the first two have left the window
    small = AddressRate(1, 60, max_addresses=2, clock=lambda: now[0])
    for a in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        small.hit(a)
    assert small.hit("192.0.2.1") == 0  # forgotten: at most max_addresses are kept
