#!/usr/bin/env python3
"""MQTT benchmark: readings through the MQTT source into the store vs a bare paho subscriber, same broker, same run.

Prints JSON: {"readings_per_s", "bare_paho_per_s", "ratio", "lost", ...}. The script starts its own Mosquitto
(broker defaults, except that it queues without limit for offline sessions, so nothing is dropped before a
consumer connects). Each round, for each consumer in turn: its persistent session subscribes and goes offline,
one publisher sends N QoS-1 JSON readings (``bench/s<k>/level``, ``{"value", "ts"}``) that the broker queues,
then the consumer connects and drains the queue; the time from starting the consumer to the last reading
received (bare: counted in ``on_message``, auto-acknowledged) or committed (ours: the source as the daemon builds
it, a real Store on a temp file, manual PUBACK after commit) is measured. ``lost`` is published minus stored,
summed over rounds. Rates are medians over rounds. Target: ratio >= 0.5 and lost == 0.

``--broker-kill``: fault 3 of issue 17 instead (tests/kits/brokerkill.py): the real daemon and a bare paho
subscriber on one broker, a sensor publishing 200 QoS-1 readings/s for 55 s, the broker killed with SIGKILL in
the middle and restarted after 5 s; per round with Mosquitto's defaults and with docs/mosquitto.conf. Prints JSON
{"default": [...], "example": [...]}, each run {"lost_hub", "lost_bare", "acked_not_stored", "down_s",
"up_after_restart_s", ...}. Target: example lost_hub 0, default lost_hub <= lost_bare, acked_not_stored 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.sources.mqtt import MqttSource  # noqa: E402
from hub.app import build_sources  # noqa: E402
from hub.intake import readings  # noqa: E402
from tests.kits import brokerkill  # noqa: E402
from tests.kits.mosquitto import Mosquitto  # noqa: E402
from tests.kits.sourcekit import HubKit  # noqa: E402

TARGET = 0.5
TOPIC = "bench/#"


def messages(n: int, sensors: int) -> list[tuple[str, bytes]]:
    base = readings.now_ms() - n - 60_000
    return [(f"bench/s{i % sensors}/level", json.dumps({"value": i * 0.5, "ts": base + i}).encode())
            for i in range(n)]


def publish_all(port: int, msgs: list[tuple[str, bytes]]) -> None:
    """Publish at QoS 1 and return once the broker has acknowledged every message."""
    done = threading.Event()
    acked = 0

    def on_publish(client: mqtt.Client, userdata: object, mid: int, reason: object, props: object) -> None:
        nonlocal acked
        acked += 1
        if acked == len(msgs):
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}")
    client.max_inflight_messages_set(1000)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    for topic, payload in msgs:
        client.publish(topic, payload, qos=1)
    if not done.wait(120):
        raise SystemExit(f"publisher: only {acked} of {len(msgs)} acknowledged")
    client.disconnect()
    client.loop_stop()


def forget_session(port: int, client_id: str) -> None:
    """Connect once with a clean session, so the broker drops the old one (and its subscription)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.connect("127.0.0.1", port)
    client.loop_start()
    time.sleep(0.05)
    client.disconnect()
    client.loop_stop()


def bare_paho(port: int, msgs: list[tuple[str, bytes]]) -> float:
    """Seconds for a bare paho subscriber (persistent session, auto-ack) to receive the queued messages."""
    client_id = f"bench-bare-{uuid.uuid4().hex[:6]}"
    subscribed = threading.Event()
    received = threading.Event()
    count = 0

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal count
        count += 1
        if count == len(msgs):
            received.set()

    def client() -> mqtt.Client:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        c.on_subscribe = lambda *a: subscribed.set()
        c.on_connect = lambda c_, *a: c_.subscribe(TOPIC, qos=1)
        c.on_message = on_message
        return c

    prime = client()
    prime.connect("127.0.0.1", port)
    prime.loop_start()
    if not subscribed.wait(10):
        raise SystemExit("bare subscriber: no SUBACK")
    prime.disconnect()
    prime.loop_stop()
    publish_all(port, msgs)
    consumer = client()
    started = time.perf_counter()
    consumer.connect("127.0.0.1", port)
    consumer.loop_start()
    if not received.wait(300):
        raise SystemExit(f"bare subscriber: only {count} of {len(msgs)} received")
    elapsed = time.perf_counter() - started
    consumer.disconnect()
    consumer.loop_stop()
    forget_session(port, client_id)
    return elapsed


CONFIG = """
[[sources]]
type = "mqtt"
name = "bench"
port = {port}
client_id = "{client_id}"
{sensors}
"""


def sensors_toml(n: int) -> str:
    return "".join(f'[[sources.sensors]]\nid = "s{k}"\ntopic = "bench/s{k}/+"\nkind = "water_level"\nunit = "cm"\n'
                   f"lat = 53.0\nlon = 11.0\ninterval_s = 3600\n" for k in range(n))


async def through_source(port: int, msgs: list[tuple[str, bytes]], sensors: int, tmp: Path) -> tuple[float, int]:
    """Seconds for the MQTT source to commit the queued messages to a real store; and how many it stored."""
    client_id = f"warnhub-bench-{uuid.uuid4().hex[:6]}"
    extra = CONFIG.format(port=port, client_id=client_id, sensors=sensors_toml(sensors))
    tmp.mkdir(parents=True, exist_ok=True)
    async with HubKit(tmp, extra) as kit:
        ctx = kit.context("bench", "mqtt")

        async def run_until(src: MqttSource, done: object) -> float:
            started = time.perf_counter()
            task = asyncio.create_task(src.run(ctx))
            try:
                while not done():  # type: ignore[operator]
                    if task.done():
                        task.result()
                        raise SystemExit("the source stopped")
                    await asyncio.sleep(0.002)
                return time.perf_counter() - started
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

        prime = build_sources(kit.loaded)[0]
        assert isinstance(prime, MqttSource)
        await run_until(prime, lambda: prime.connects >= 1)
        await asyncio.sleep(0.2)  # let the SUBACK arrive before the session goes offline
        await asyncio.to_thread(publish_all, port, msgs)
        src = build_sources(kit.loaded)[0]
        assert isinstance(src, MqttSource)
        elapsed = await run_until(src, lambda: src.stored >= len(msgs))
        await asyncio.sleep(0.3)  # anything beyond N (there should be nothing) would show up in the count
        stored = await kit.astore.run(readings.count, kit.store)
    forget_session(port, client_id)
    return elapsed, stored


def broker_kill(rounds: int) -> dict[str, list[dict[str, object]]]:
    example = (ROOT / "docs" / "mosquitto.conf").read_text(encoding="utf-8")
    out: dict[str, list[dict[str, object]]] = {"default": [], "example": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for label, extra in (("default", ""), ("example", example)):
                res = brokerkill.run(Path(tmp) / f"{label}{r}", broker_extra=extra)
                ups = [t for t, state in res["health"] if state == "up" and t >= res["restarted_s"]]
                out[label].append({
                    **{k: res[k] for k in ("published", "lost_hub", "lost_bare", "acked_by_hub",
                                           "acked_not_stored", "dropped_log")},
                    "down_s": round(res["restarted_s"] - res["killed_s"], 2),
                    "up_after_restart_s": round(ups[0] - res["restarted_s"], 2) if ups else None})
                print(f"{label} round {r + 1}: {out[label][-1]}", file=sys.stderr)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    ap.add_argument("-n", "--messages", type=int, default=20000)
    ap.add_argument("--sensors", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--broker-config", default="", help="extra mosquitto.conf lines (e.g. max_inflight_messages 100)")
    ap.add_argument("--broker-kill", action="store_true", help="fault 3: kill -9 the broker under 200 readings/s")
    args = ap.parse_args()
    if args.broker_kill:
        print(json.dumps(broker_kill(args.rounds)))
        return 0
    msgs = messages(args.messages, args.sensors)
    ours: list[float] = []
    bare: list[float] = []
    lost = 0
    with tempfile.TemporaryDirectory() as tmp:
        extra = "max_queued_messages 0\n" + args.broker_config.replace("\\n", "\n")
        with Mosquitto(Path(tmp) / "broker", extra=extra) as broker:
            for r in range(args.rounds):  # alternate, so drift in machine speed hits both alike
                bare.append(args.messages / bare_paho(broker.port, msgs))
                elapsed, stored = asyncio.run(through_source(broker.port, msgs, args.sensors, Path(tmp) / f"r{r}"))
                ours.append(args.messages / elapsed)
                lost += args.messages - stored
                if not args.json:
                    print(f"round {r + 1}: source {ours[-1]:.0f}/s, bare paho {bare[-1]:.0f}/s, "
                          f"stored {stored} of {args.messages}", file=sys.stderr)
    result = {
        "readings_per_s": round(statistics.median(ours), 1),
        "bare_paho_per_s": round(statistics.median(bare), 1),
        "ratio": round(statistics.median(ours) / statistics.median(bare), 3),
        "lost": lost,
        "messages": args.messages,
        "sensors": args.sensors,
        "rounds": args.rounds,
        "per_round": [{"readings_per_s": round(o, 1), "bare_paho_per_s": round(b, 1)}
                      for o, b in zip(ours, bare, strict=True)],
        "broker_config": extra.strip().splitlines(),
        "target_ratio": TARGET,
    }
    result["meets_target"] = result["ratio"] >= TARGET and lost == 0
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
