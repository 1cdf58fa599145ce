"""MQTT sensors against a real Mosquitto and a real hub on SQLite.

Invariants: no accepted reading is lost (acknowledged only after commit; a persistent session delivers what was
published while the hub was away); no reading is stored twice (redelivery after a reconnect); a stale sensor is
never shown as fine; the broker being away is ``down``, never "no readings"; a bad payload never stops the source;
reconnect is bounded (within ~2 s of the broker accepting connections again).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as mqtt
import pytest

from adapters.sources.mqtt import MqttSource
from adapters.sources.mqtt_payload import Malformed, TopicMap, parse_payload, timestamp_ms
from hub.app import build_sources
from hub.config.sections import SensorConfig
from hub.errors import ConfigError
from hub.intake import readings, sensors
from hub.store.db import Store
from hub.web.app import WebServer
from tests.kits.mosquitto import Mosquitto, MosquittoMissing, free_port
from tests.kits.sourcekit import HubKit

NAME = "sensors"


# -- helpers ----------------------------------------------------------------------------------------------------


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    try:
        b = Mosquitto(tmp_path / "broker")
    except MosquittoMissing as err:
        pytest.fail(str(err))
    b.start()
    yield b
    b.stop()


def sensor_toml(id: str, topic: str, *, kind: str = "water_level", unit: str = "cm", interval_s: float = 3600,
                **extra: str) -> str:
    more = "".join(f'{k} = "{v}"\n' for k, v in extra.items())
    return (f'[[sources.sensors]]\nid = "{id}"\ntopic = "{topic}"\nkind = "{kind}"\nunit = "{unit}"\n'
            f'lat = 53.15\nlon = 11.04\nars = "033540011011"\ninterval_s = {interval_s}\n{more}')


def config(port: int, *sensors: str, retention_days: float = 30) -> str:
    return (f'\n[[sources]]\ntype = "mqtt"\nname = "{NAME}"\nport = {port}\nkeepalive_s = 10\n'
            f'retention_days = {retention_days}\n' + "".join(sensors))


@asynccontextmanager
async def running(kit: HubKit, source: MqttSource | None = None) -> AsyncIterator[MqttSource]:
    """Run the source as the daemon builds it; cancel it on exit (and check that it stopped)."""
    src = source or build_sources(kit.loaded)[0]
    assert isinstance(src, MqttSource)
    task = asyncio.create_task(src.run(kit.context(NAME, "mqtt")), name="mqtt-under-test")
    try:
        yield src
    finally:
        task.cancel()
        await asyncio.wait([task], timeout=10)
        assert task.done(), "the source did not stop within 10 s of being cancelled"
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def until(pred: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 5.0) -> float:
    """Wait (bounded) until ``pred`` holds; returns when it did (time.monotonic())."""
    deadline = time.monotonic() + timeout
    while True:
        result = pred()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


@contextmanager
def publisher(port: int) -> Iterator[Callable[..., None]]:
    """``pub(topic, payload, qos=1, retain=False)``: returns once the broker has acknowledged it."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.connect("127.0.0.1", port)
    client.loop_start()

    def pub(topic: str, payload: Any, qos: int = 1, retain: bool = False) -> None:
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        info = client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout=5)
        assert info.is_published(), f"publishing to {topic} was not acknowledged"

    try:
        yield pub
    finally:
        client.disconnect()
        client.loop_stop()


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


async def rows(kit: HubKit, sensor_id: str) -> list[dict[str, Any]]:
    return await kit.astore.run(readings.readings, kit.store, sensor_id)


async def sensor(kit: HubKit, sensor_id: str) -> dict[str, Any]:
    return (await kit.astore.run(readings.sensors, kit.store, sensor_id=sensor_id))[0]


def health(kit: HubKit) -> dict[str, Any]:
    return kit.hub.health.as_dict()[NAME]


# -- payloads and topics (no broker) ----------------------------------------------------------------------------


def _sensor(**kw: Any) -> SensorConfig:
    base: dict[str, Any] = {"id": "p", "topic": "t", "kind": "water_level", "unit": "cm", "lat": 53.0, "lon": 11.0}
    return SensorConfig(**{**base, **kw})


RECV = readings.ms_of(datetime(2024, 5, 19, 13, 0, tzinfo=UTC))


@pytest.mark.parametrize(("payload", "expected"), [
    (b'{"value": 312, "unit": "cm", "ts": "2024-05-19T12:58:00Z"}', (RECV - 120_000, 312.0)),
    (b'{"value": "312.5", "ts": "2024-05-19T14:58:00+02:00"}', (RECV - 120_000, 312.5)),
    (b'{"value": 1, "ts": 1716123480}', (1716123480_000, 1.0)),
    (b'{"value": 1, "ts": 1716123480123}', (1716123480123, 1.0)),
    (b'{"value": 1, "ts": "1716123480.5"}', (1716123480500, 1.0)),
    (b'{"value": 1}', (RECV, 1.0)),
    (b"  42.5\n", (RECV, 42.5)),
    (b"+7", (RECV, 7.0)),
    (b"-3", (RECV, -3.0)),
])
def test_payloads_that_are_readings(payload: bytes, expected: tuple[int, float]) -> None:
    assert parse_payload(payload, _sensor(), RECV) == expected


def test_custom_json_paths() -> None:
    s = _sensor(value_path="data.levels.0", time_path="meta.time", unit_path="meta.unit")
    doc = {"data": {"levels": [301, 299]}, "meta": {"time": "2024-05-19T12:00:00Z", "unit": "cm"}}
    assert parse_payload(json.dumps(doc).encode(), s, RECV) == (RECV - 3_600_000, 301.0)


@pytest.mark.parametrize(("payload", "why"), [
    (b"not json{", "neither JSON nor a number"),
    (b"\xff\xfe", "not UTF-8"),
    (b"12,5", "neither JSON nor a number"),
    (b"nan", "not finite"),
    (b"inf", "not finite"),
    (b'{"value": NaN}', "neither JSON nor a number"),
    (b'{"level": 3}', "no value at 'value'"),
    (b'{"value": null}', "null"),
    (b'{"value": "hoch"}', "not a number"),
    (b'{"value": true}', "bool"),
    (b'{"value": [1]}', "list"),
    (b'{"value": 1e999}', "neither JSON nor a number"),
    (b'{"value": 1, "unit": "m"}', "not the configured 'cm'"),
    (b'{"value": 1, "ts": "2024-05-19T13:00:00"}', "no time zone"),
    (b'{"value": 1, "ts": "gestern"}', "neither ISO 8601 nor epoch"),
    (b'{"value": 1, "ts": 12}', "before 2000"),
    (b'{"value": 1, "ts": "2024-05-19T13:06:00Z"}', "more than 5 min ahead"),
    (b"[1, 2]", "list"),
])
def test_malformed_payloads(payload: bytes, why: str) -> None:
    with pytest.raises(Malformed, match=why.replace("(", r"\(")):
        parse_payload(payload, _sensor(), RECV)


def test_timestamps_ms_vs_seconds_and_ahead_within_limit() -> None:
    assert timestamp_ms(1716123480) == 1716123480_000
    assert timestamp_ms(1716123480000) == 1716123480000
    ok = RECV + 4 * 60_000
    assert parse_payload(json.dumps({"value": 1, "ts": ok}).encode(), _sensor(), RECV) == (ok, 1.0)


def test_topic_map_prefers_the_most_specific_filter() -> None:
    exact = _sensor(id="exact", topic="pegel/hitzacker/level")
    plus = _sensor(id="plus", topic="pegel/+/level")
    hash_ = _sensor(id="hash", topic="pegel/#")
    m = TopicMap([hash_, plus, exact])
    assert m.resolve("pegel/hitzacker/level") is exact
    assert m.resolve("pegel/lenzen/level") is plus
    assert m.resolve("pegel/lenzen/temp") is hash_
    assert m.resolve("pegel") is hash_  # "#" also matches the parent level
    assert m.resolve("luft/x") is None
    assert TopicMap([_sensor(topic="#")]).resolve("$SYS/broker/uptime") is None
    assert m.filters == ["pegel/#", "pegel/+/level", "pegel/hitzacker/level"]


@pytest.mark.parametrize("bad", ["pegel/#/level", "pegel/a+", "", "pegel/#x"])
def test_invalid_topic_filters_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError, match="not a valid MQTT topic filter"):
        TopicMap([_sensor(topic=bad)])
    with pytest.raises(ConfigError, match="sensors a and b have the same topic"):
        TopicMap([_sensor(id="a", topic="x/+"), _sensor(id="b", topic="x/+")])


def test_retention_deletes_in_small_transactions(tmp_path: Path) -> None:
    with Store(tmp_path / "r.db") as store:
        readings.register(store, "s", [readings.SensorRow("a", "wind", "m/s", 53.0, 11.0, None, "w", 60)])
        readings.add_batch(store, [("a", EARLY + i, float(i), "m/s", EARLY) for i in range(12)])
        assert [readings.delete_older(store, "a", EARLY + 10, limit=4) for _ in range(4)] == [4, 4, 2, 0]
        assert readings.count(store, "a") == 2


EARLY = readings.ms_of(datetime(2024, 1, 1, tzinfo=UTC))


def test_batches_keep_values_exact_newest_and_counts(tmp_path: Path) -> None:
    awkward = [0.1 + 0.2, 1e-310, -0.0, 123456789.123456789, 2.0 ** 53 + 2, 7.2]
    with Store(tmp_path / "b.db") as store:
        readings.register(store, "s", [readings.SensorRow("a", "wind", "m/s", 53.0, 11.0, None, "w", 60),
                                       readings.SensorRow("b", "wind", "m/s", 53.0, 11.0, None, "v", 60)])
        rows = [("a", EARLY + i, v, "m/s", EARLY) for i, v in enumerate(awkward)]
        first = readings.add_batch(store, rows[::-1], [("b", "not a number", EARLY), ("b", "no value", EARLY + 1)])
        assert (first.stored, first.duplicates, first.newest) == (6, 0, {"a": EARLY + 5})
        again = readings.add_batch(store, rows[:2])
        assert (again.stored, again.duplicates) == (0, 2)
        held = [r[0] for r in store.conn.execute("SELECT value FROM readings WHERE sensor_id='a' ORDER BY ts")]
        assert held == awkward
        a, b = readings.sensors(store, now=EARLY + 1000)
        assert (a["last_value"], a["last_ts"], a["state"]) == (7.2, readings.iso_ms(EARLY + 5), "ok")
        assert (b["malformed"], b["last_malformed"], b["state"]) == (2, "no value", "never")


# -- against Mosquitto --------------------------------------------------------------------------------------------


async def test_wildcards_paths_and_bare_numbers_are_stored_and_served(tmp_path: Path, broker: Mosquitto) -> None:
    cfg = config(
        broker.port,
        sensor_toml("pegel-lenzen", "pegel/+/level"),
        sensor_toml("pegel-hitzacker", "pegel/hitzacker/level"),
        sensor_toml("luft-dannenberg", "luft/dannenberg/#", kind="air_quality", unit="µg/m³",
                    value_path="data.pm10", time_path="data.time", unit_path="data.unit"),
        sensor_toml("wind-gartow", "wind/gartow", kind="wind", unit="m/s"),
    )
    now = datetime.now(UTC).replace(microsecond=0)
    async with HubKit(tmp_path, cfg) as kit, running(kit) as src:
        await until(lambda: health(kit)["state"] == "up", "connected")
        with publisher(broker.port) as pub:
            pub("pegel/hitzacker/level", {"value": 312, "unit": "cm", "ts": iso(now - timedelta(minutes=2))})
            pub("pegel/lenzen/level", {"value": 401.5, "ts": int((now - timedelta(minutes=1)).timestamp())})
            pub("luft/dannenberg/station-1/pm", {"data": {"pm10": 17.5, "unit": "µg/m³",
                                                          "time": readings.ms_of(now)}})
            before = readings.now_ms()
            pub("wind/gartow", "7.2")
        await until(lambda: src.stored == 4, "4 readings stored")

        assert [(r["ts"], r["value"]) for r in await rows(kit, "pegel-hitzacker")] == \
            [(readings.iso_ms(readings.ms_of(now - timedelta(minutes=2))), 312.0)]
        assert [r["value"] for r in await rows(kit, "pegel-lenzen")] == [401.5]
        assert [r["ts"] for r in await rows(kit, "luft-dannenberg")] == [readings.iso_ms(readings.ms_of(now))]
        wind = await rows(kit, "wind-gartow")
        assert wind[0]["value"] == 7.2 and wind[0]["unit"] == "m/s"
        assert readings.ms_of(datetime.fromisoformat(wind[0]["ts"])) >= before  # bare number: receive time

        async with WebServer(kit.hub, "127.0.0.1", 0) as web, aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{web.port}/api/v1/sensors"
            async with http.get(base) as resp:
                assert resp.status == 200
                listed = {s["id"]: s for s in (await resp.json())["sensors"]}
            assert set(listed) == {"pegel-lenzen", "pegel-hitzacker", "luft-dannenberg", "wind-gartow"}
            hz = listed["pegel-hitzacker"]
            assert (hz["kind"], hz["unit"], hz["lat"], hz["lon"], hz["ars"]) == \
                ("water_level", "cm", 53.15, 11.04, "033540011011")
            assert (hz["state"], hz["last_value"], hz["malformed"]) == ("ok", 312.0, 0)
            assert hz["last_ts"] == readings.iso_ms(readings.ms_of(now - timedelta(minutes=2)))
            since = iso(now - timedelta(minutes=5))
            async with http.get(f"{base}/pegel-hitzacker/readings", params={"since": since, "limit": "10"}) as resp:
                body = await resp.json()
            assert [r["value"] for r in body["readings"]] == [312.0] and body["sensor"]["id"] == "pegel-hitzacker"
            async with http.get(f"{base}/pegel-hitzacker/readings?since={iso(now)}") as resp:  # '+' as a space
                assert resp.status == 200 and (await resp.json())["readings"] == []
            async with http.get(f"{base}/nope/readings") as resp:
                assert resp.status == 404
            async with http.get(f"{base}/pegel-hitzacker/readings", params={"since": "gestern"}) as resp:
                assert resp.status == 400
            async with http.get(f"{base}/pegel-hitzacker/readings", params={"limit": "0"}) as resp:
                assert resp.status == 400


async def test_malformed_payloads_are_counted_and_logged_once_per_sensor(
        tmp_path: Path, broker: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    cfg = config(broker.port, sensor_toml("pegel-a", "pegel/a"), sensor_toml("wind-b", "wind/b", unit="m/s"))
    caplog.set_level(logging.INFO, logger="warnhub")
    async with HubKit(tmp_path, cfg) as kit, running(kit) as src:
        await until(lambda: health(kit)["state"] == "up", "connected")
        with publisher(broker.port) as pub:
            for bad in ("not json{", {"value": "hoch"}, {"level": 3}, {"value": 1, "unit": "m"},
                        {"value": 1, "ts": iso(datetime.now(UTC) + timedelta(hours=1))}):
                pub("pegel/a", bad)
            for bad in ("nan", "inf", "12,5"):
                pub("wind/b", bad)
            pub("pegel/a", {"value": 300})
            pub("wind/b", "4.5")
        await until(lambda: src.stored == 2, "the good readings after the bad ones")
        assert src.malformed == 8
        a, b = await sensor(kit, "pegel-a"), await sensor(kit, "wind-b")
        assert (a["malformed"], b["malformed"]) == (5, 3)
        assert "more than 5 min ahead" in a["last_malformed"]  # the last one published
        logged = [r.getMessage() for r in caplog.records if "malformed payload" in r.getMessage()]
        assert len([m for m in logged if "pegel-a" in m]) == 1, logged
        assert len([m for m in logged if "wind-b" in m]) == 1, logged
        assert health(kit)["state"] == "up"
        metric = kit.hub.metrics.registry.get_sample_value("warnhub_readings_malformed_total",
                                                           {"source": NAME, "sensor": "pegel-a"})
        assert metric == 5


async def test_stale_sensor_degrades_health_then_recovers(tmp_path: Path, broker: Mosquitto) -> None:
    cfg = config(broker.port, sensor_toml("pegel-x", "pegel/x", interval_s=1.0), sensor_toml("wind-y", "wind/y"))
    async with HubKit(tmp_path, cfg) as kit, running(kit):
        await until(lambda: health(kit)["state"] == "up", "connected")
        with publisher(broker.port) as pub:
            pub("pegel/x", {"value": 280})
            await until(lambda: health(kit)["state"] == "degraded", "stale after 1 s of silence")
            h = health(kit)
            assert "pegel-x" in h["last_error"] and "stale" in h["last_error"] and "wind-y" not in h["last_error"]
            s = await sensor(kit, "pegel-x")
            assert s["state"] == "stale" and s["stale_since"] is not None and s["last_value"] == 280.0
            assert kit.hub.metrics.registry.get_sample_value(
                "warnhub_sensor_stale", {"source": NAME, "sensor": "pegel-x"}) == 1
            assert (await sensor(kit, "wind-y"))["state"] == "never"
            pub("pegel/x", {"value": 281})
            await until(lambda: health(kit)["state"] == "up", "up again after a reading")
        s = await sensor(kit, "pegel-x")
        assert s["last_value"] == 281.0 and s["state"] in ("ok", "stale")  # 1 s interval: may be stale again


async def test_broker_away_is_down_and_reconnect_is_bounded(tmp_path: Path, broker: Mosquitto) -> None:
    cfg = config(broker.port, sensor_toml("pegel-r", "pegel/r"))
    async with HubKit(tmp_path, cfg) as kit, running(kit) as src:
        await until(lambda: health(kit)["state"] == "up", "connected")
        with publisher(broker.port) as pub:
            pub("pegel/r", {"value": 1})
        await until(lambda: src.stored == 1, "first reading")

        broker.stop()
        await until(lambda: health(kit)["state"] == "down", "down while the broker is away")
        assert f"127.0.0.1:{broker.port}" in health(kit)["last_error"]
        await asyncio.sleep(1.5)  # let paho's retries back off to their cap
        assert health(kit)["state"] == "down"

        accepting = broker.start()
        connected = await until(lambda: src.connects == 2, "reconnected", timeout=10)
        assert connected - accepting < 2.5, f"reconnected {connected - accepting:.2f} s after the broker was back"
        await until(lambda: health(kit)["state"] == "up", "up after reconnect")
        with publisher(broker.port) as pub:
            pub("pegel/r", {"value": 2})
        await until(lambda: src.stored == 2, "readings flow after reconnect")


async def test_a_broker_killed_twice_is_down_each_time_not_a_session_takeover(tmp_path: Path,
                                                                              broker: Mosquitto) -> None:
    """Two short connections in a row look like a takeover by another client, but a broker whose port is closed
    was killed or is restarting: the source is down and reconnects at once (not degraded, waiting 5 s while the
    broker's queue for it overflows)."""
    cfg = config(broker.port, sensor_toml("pegel-k", "pegel/k"))
    async with HubKit(tmp_path, cfg) as kit, running(kit) as src:
        await until(lambda: health(kit)["state"] == "up", "connected")
        for connects in (2, 3):
            broker.stop(kill=True)
            await until(lambda: health(kit)["state"] == "down", f"down after kill {connects - 1}")
            accepting = broker.start()
            connected = await until(lambda n=connects: src.connects == n, "reconnected", timeout=10)
            assert connected - accepting < 2.5, f"reconnected {connected - accepting:.2f} s after the broker was back"
            await until(lambda: health(kit)["state"] == "up", "up after reconnect")
        assert src.takeovers == 0


async def test_unreachable_broker_at_start_is_down_with_the_reason(tmp_path: Path) -> None:
    port = free_port()
    async with HubKit(tmp_path, config(port, sensor_toml("pegel-u", "pegel/u"))) as kit, running(kit):
        await until(lambda: health(kit)["state"] == "down", "down")
        assert health(kit)["last_error"] == f"cannot connect to 127.0.0.1:{port}: Connection refused"


async def test_refused_connection_is_down_with_the_brokers_reason(tmp_path: Path) -> None:
    try:
        b = Mosquitto(tmp_path / "broker", extra="allow_anonymous false")
    except MosquittoMissing as err:
        pytest.fail(str(err))
    with b:
        cfg = config(b.port, sensor_toml("pegel-n", "pegel/n")).replace("keepalive_s", 'username = "hub"\nkeepalive_s')
        async with HubKit(tmp_path, cfg) as kit, running(kit):
            await until(lambda: health(kit)["state"] == "down", "down")
            await asyncio.sleep(1.5)  # a few retries: the reason stays the broker's
            assert health(kit)["last_error"] == f"broker 127.0.0.1:{b.port} refused the connection: Not authorized"


async def test_persistent_session_delivers_what_came_while_away(tmp_path: Path, broker: Mosquitto) -> None:
    cfg = config(broker.port, sensor_toml("pegel-p", "pegel/p"))
    async with HubKit(tmp_path, cfg) as kit:
        async with running(kit):
            await until(lambda: health(kit)["state"] == "up", "connected and subscribed")
            await asyncio.sleep(0.2)  # the SUBACK
        start = datetime.now(UTC) - timedelta(minutes=3)
        with publisher(broker.port) as pub:  # the hub is away; the broker queues for its session
            for i in range(3):
                pub("pegel/p", {"value": 100 + i, "ts": iso(start + timedelta(minutes=i))})
        broker.restart()  # and the broker itself restarts (its persistence keeps the session)
        async with running(kit) as src:
            await until(lambda: src.stored == 3, "3 readings queued while away")
        assert [r["value"] for r in await rows(kit, "pegel-p")] == [100.0, 101.0, 102.0]


async def test_redelivered_readings_are_stored_once(tmp_path: Path, broker: Mosquitto,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(broker.port, sensor_toml("pegel-d", "pegel/d"))
    ts = iso(datetime.now(UTC) - timedelta(minutes=1))
    async with HubKit(tmp_path, cfg) as kit:
        first = build_sources(kit.loaded)[0]
        assert isinstance(first, MqttSource)
        monkeypatch.setattr(first, "_ack", lambda client, entries: None)  # the PUBACK is lost: a crash after commit
        async with running(kit, first):
            await until(lambda: health(kit)["state"] == "up", "connected")
            with publisher(broker.port) as pub:
                pub("pegel/d", {"value": 5, "ts": ts})
                await until(lambda: first.stored == 1, "stored, not acknowledged")
        async with running(kit) as second:  # the broker redelivers the unacknowledged message
            await until(lambda: second.duplicates == 1, "the redelivery, recognised")
            with publisher(broker.port) as pub:  # and a publisher that sends the same reading again
                pub("pegel/d", {"value": 5, "ts": ts})
            await until(lambda: second.duplicates == 2, "the repeat, recognised")
            assert second.stored == 0
        assert await kit.astore.run(readings.count, kit.store, "pegel-d") == 1
        assert kit.hub.metrics.registry.get_sample_value("warnhub_readings_total",
                                                         {"source": NAME, "outcome": "duplicate"}) == 2


async def test_the_broker_hands_over_a_backlog_before_the_first_commit(tmp_path: Path, broker: Mosquitto,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Acks wait for the commit, so the window of unacknowledged messages sets how a backlog drains: with
    Mosquitto's default (20) the broker sent 20, waited for a transaction, sent 20 more, the rest waiting in its
    queue (cut at 1,000 by default). The hub asks for a larger window (MQTT 5 Receive Maximum): while the store is
    held, the broker still hands over the whole backlog."""
    cfg = config(broker.port, sensor_toml("pegel-w", "pegel/w/+"))
    gate = threading.Event()
    record = sensors._record

    def held(*args: Any) -> readings.BatchResult:
        gate.wait(30)
        return record(*args)
    base = readings.now_ms() - 60_000
    async with HubKit(tmp_path, cfg) as kit, running(kit) as src:
        await until(lambda: health(kit)["state"] == "up", "connected")
        monkeypatch.setattr(sensors, "_record", held)
        try:
            with publisher(broker.port) as pub:
                for i in range(200):
                    pub(f"pegel/w/{i}", {"value": i, "ts": base + i})
            await until(lambda: len(src._buf) >= 150, "most of 200 readings in hand while nothing is stored")
            assert src.stored == 0
        finally:
            gate.set()
        await until(lambda: src.stored == 200, "all 200 stored once the store is free")


async def test_retention_removes_old_readings(tmp_path: Path, broker: Mosquitto) -> None:
    cfg = config(broker.port, sensor_toml("pegel-old", "pegel/old"), retention_days=30)
    async with HubKit(tmp_path, cfg) as kit:
        src = build_sources(kit.loaded)[0]
        assert isinstance(src, MqttSource)
        src.retention_every_s = src.tick_s = 0.3
        async with running(kit, src):
            await until(lambda: health(kit)["state"] == "up", "connected")
            with publisher(broker.port) as pub:
                pub("pegel/old", {"value": 1, "ts": iso(datetime.now(UTC) - timedelta(days=40))})
                pub("pegel/old", {"value": 2, "ts": iso(datetime.now(UTC) - timedelta(days=29))})
                pub("pegel/old", {"value": 3})
            await until(lambda: src.stored == 3, "3 stored")

            async def only_recent() -> bool:
                return [r["value"] for r in await rows(kit, "pegel-old")] == [2.0, 3.0]
            await until(only_recent, "the 40-day-old reading deleted")


async def test_cancel_stops_cleanly(tmp_path: Path, broker: Mosquitto) -> None:
    cfg = config(broker.port, sensor_toml("pegel-c", "pegel/c"))
    async with HubKit(tmp_path, cfg) as kit:
        src = build_sources(kit.loaded)[0]
        assert isinstance(src, MqttSource)
        task = asyncio.create_task(src.run(kit.context(NAME, "mqtt")))
        await until(lambda: health(kit)["state"] == "up", "connected")
        with publisher(broker.port) as pub:
            pub("pegel/c", {"value": 9})
        await until(lambda: src.stored == 1, "stored")
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
        assert done and task.cancelled()
        assert not [t for t in threading.enumerate() if t.name.startswith(f"paho-mqtt-client-{src.client_id}")]
        assert health(kit)["state"] == "up"  # stopping on purpose is not a broker failure


# -- client ids and session takeovers ---------------------------------------------------------------------------


def broker_lines(broker: Mosquitto, needle: str) -> list[str]:
    try:
        return [line for line in broker.log.read_text(errors="replace").splitlines() if needle in line]
    except OSError:
        return []


async def test_two_sources_with_one_client_id_back_off_and_say_so_once(
        tmp_path: Path, broker: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    """Two clients with the same explicit id take the session from each other; each waits longer every time."""
    block = config(broker.port, sensor_toml("pegel-a", "pegel/a")).replace("keepalive_s", 'client_id = "shared"\n'
                                                                                           "keepalive_s")
    cfg = block + block.replace(f'name = "{NAME}"', 'name = "sensors2"').replace("pegel-a", "pegel-b")
    caplog.set_level(logging.INFO)
    async with HubKit(tmp_path, cfg) as kit:
        a, b = build_sources(kit.loaded)
        assert isinstance(a, MqttSource) and isinstance(b, MqttSource) and a.client_id == b.client_id == "shared"
        for src in (a, b):
            src.takeover_min_s, src.takeover_max_s = 0.1, 0.8
        tasks = [asyncio.create_task(s.run(kit.context(s.name, "mqtt"))) for s in (a, b)]
        seen: set[str] = set()

        def both_at_the_cap() -> bool:  # the window ends with events: each has been taken over 5 times
            seen.update(str(h.get("last_error")) for h in kit.hub.health.as_dict().values())
            return a.takeovers >= 5 and b.takeovers >= 5
        try:
            await until(both_at_the_cap, "five takeovers each", timeout=30)
            broker_connects = len(broker_lines(broker, " as shared "))
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.wait(tasks, timeout=10)
        for src in (a, b):
            delays = [d for _, d in src.takeover_waits]
            assert delays[:5] == [0.1, 0.2, 0.4, 0.8, 0.8], (src.name, delays)
            # every reconnect after a takeover came no sooner than the wait the source announced
            for kicked, delay in src.takeover_waits[:5]:
                after = [t for t in src.connect_times if t > kicked]
                if after:
                    assert after[0] - kicked >= delay * 0.9, (src.name, after[0] - kicked, delay)
        # connects on the broker: the two first ones plus one per takeover (one more may be under way)
        assert broker_connects <= a.takeovers + b.takeovers + 3, broker_connects
        takeover_logs = [r for r in caplog.records if "took over the session" in r.getMessage()
                         and r.name.startswith("warnhub.source.")]
        assert sorted(r.name for r in takeover_logs) == ["warnhub.source.sensors", "warnhub.source.sensors2"]
        assert any("took over the session of client id 'shared'" in e for e in seen)
        # health says so too, once per source: it stays degraded through the tug of war instead of flapping
        health_logs = [r.getMessage() for r in caplog.records if r.name == "warnhub.health"
                       and "took over the session" in r.getMessage()]
        assert len(health_logs) == 2, health_logs
        assert not [r for r in caplog.records if r.name == "warnhub.health" and "recovered (was degraded" in
                    r.getMessage()]


async def test_two_hubs_without_client_id_get_their_own_ids_and_both_stay_connected(
        tmp_path: Path, broker: Mosquitto) -> None:
    cfg = config(broker.port, sensor_toml("pegel-h", "pegel/h"))
    for sub in ("one", "two"):
        (tmp_path / sub).mkdir()
    async with HubKit(tmp_path / "one", cfg) as one, HubKit(tmp_path / "two", cfg) as two:
        async with running(one) as a:
            await until(lambda: health(one)["state"] == "up", "hub one connected")
            async with running(two) as b:
                await until(lambda: health(two)["state"] == "up", "hub two connected")
                assert a.client_id != b.client_id
                for src, kit in ((a, one), (b, two)):
                    assert src.client_id.startswith("warnhub-landkreis-luchow-dannenb-")
                    assert src.client_id.endswith(f"-{NAME}")
                    suffix = (kit.loaded.db_path.parent / "mqtt-client-id").read_text().strip()
                    assert suffix in src.client_id
                with publisher(broker.port) as pub:
                    pub("pegel/h", {"value": 7})
                await until(lambda: a.stored == 1 and b.stored == 1, "both hubs store the reading")
                assert a.connects == 1 and b.connects == 1 and a.takeovers == b.takeovers == 0
                assert health(one)["state"] == health(two)["state"] == "up"
        assert not broker_lines(broker, "already connected")
        async with running(one) as again:  # the id is kept: the persistent session is found again
            await until(lambda: again.connects == 1, "hub one reconnected")
            assert again.client_id == a.client_id


class TakeoverBroker:
    """A minimal MQTT 5 broker for the one case Mosquitto 2.0.11 does not produce: it accepts CONNECT and SUBSCRIBE,
    then sends DISCONNECT with reason code 0x8E ("session taken over"), as a broker does when another client
    connects with the same id. Counts connections."""

    def __init__(self) -> None:
        self.connections: list[float] = []
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def __aenter__(self) -> TakeoverBroker:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @staticmethod
    async def _packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
        kind = (await reader.readexactly(1))[0]
        length, shift = 0, 0
        while True:
            byte = (await reader.readexactly(1))[0]
            length += (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return kind, await reader.readexactly(length)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.append(time.monotonic())
        try:
            kind, _ = await self._packet(reader)
            assert kind >> 4 == 1  # CONNECT
            writer.write(b"\x20\x03\x00\x00\x00")  # CONNACK: no session, success, no properties
            kind, body = await self._packet(reader)
            assert kind >> 4 == 8  # SUBSCRIBE (one filter)
            writer.write(b"\x90\x04" + body[:2] + b"\x00\x01")  # SUBACK: granted QoS 1
            writer.write(b"\xe0\x02\x8e\x00")  # DISCONNECT: session taken over
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_the_brokers_session_taken_over_reason_backs_off_from_the_first_time(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with TakeoverBroker() as fake:
        cfg = config(fake.port, sensor_toml("pegel-t", "pegel/t")).replace("keepalive_s", 'client_id = "taken"\n'
                                                                                         "keepalive_s")
        async with HubKit(tmp_path, cfg) as kit:
            src = build_sources(kit.loaded)[0]
            assert isinstance(src, MqttSource)
            src.takeover_min_s, src.takeover_max_s = 0.1, 0.4
            async with running(kit, src):
                await until(lambda: src.takeovers >= 4, "four takeovers", timeout=20)
                assert "the broker says another client took over" in health(kit)["last_error"]
    assert [d for _, d in src.takeover_waits[:4]] == [0.1, 0.2, 0.4, 0.4]
    for (kicked, delay), nxt in zip(src.takeover_waits[:3], fake.connections[1:4], strict=True):
        assert nxt - kicked >= delay * 0.9, (nxt - kicked, delay)
    said = [r for r in caplog.records if "took over the session" in r.getMessage()
            and r.name == f"warnhub.source.{NAME}"]
    assert len(said) == 1 and "the broker says" in said[0].getMessage()
