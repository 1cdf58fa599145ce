"""Fault 3 of issue 17: the MQTT broker killed with -9 under load and restarted, the hub beside a bare subscriber.

One run: a real Mosquitto (persistence on, ``broker_extra`` lines added to its config), the real daemon with an
``mqtt`` source, and in the same run a bare paho subscriber with a persistent session (auto-acknowledged: the
baseline). A sensor publisher sends QoS-1 readings at ``rate`` per second for ``seconds``; in the middle the broker
is killed with SIGKILL and started again after ``down_s`` on the same port. Then a marker reading is published and,
once the hub has stored it and the bare subscriber has received it, everything before it has arrived (one
publisher, one subscriber: the broker keeps the order), so the counts are final without waiting for silence.

Each reading has its own topic (``fault/s<k>/<seq>``, the sensors subscribe ``fault/s<k>/+``) and the broker logs
at debug level, so its log tells which readings the hub acknowledged (``Sending PUBLISH to <hub> (.. m<mid>,
'<topic>' ..)`` then ``Received PUBACK from <hub> (Mid: <mid> ..)``): :func:`acked_seqs`. The killed broker's
unwritten log buffer is lost with it, so an acknowledgement may be missed (counted as not acknowledged), never
invented.

Both subscribers' sessions exist in the broker's persistence file before the load starts (the broker is restarted
cleanly once after they subscribed), as on a broker that has run longer than its autosave interval.

No pytest here (bench/mqtt.py uses it too).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from tests.kits.hubproc import HubProcess, free_port, wait_for, write_config
from tests.kits.mosquitto import Mosquitto

HUB_ID = "warnhub-fault"
BARE_ID = "bare-fault"
SOURCE = "fault-sensors"
SENSORS = 10
MARKER = "fault/end/0"


def sensors_toml() -> str:
    blocks = [(f"s{k}", f"fault/s{k}/+") for k in range(SENSORS)] + [("end", "fault/end/+")]
    return "".join(f'[[sources.sensors]]\nid = "{i}"\ntopic = "{t}"\nkind = "water_level"\nunit = "cm"\n'
                   f"lat = 53.0\nlon = 11.0\ninterval_s = 3600\n" for i, t in blocks)


def hub_config(folder: Path, web_port: int, broker_port: int) -> Path:
    extra = (f'\n[[sources]]\ntype = "mqtt"\nname = "{SOURCE}"\nport = {broker_port}\nclient_id = "{HUB_ID}"\n'
             f"keepalive_s = 10\n{sensors_toml()}")
    return write_config(folder, port=web_port, extra=extra)


class Bare:
    """The baseline: paho with a persistent session (MQTT 3.1.1, clean_session False), acknowledging on receipt."""

    def __init__(self, port: int) -> None:
        self.seqs: set[int] = set()
        self.marker = threading.Event()
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=BARE_ID, clean_session=False)
        self.client.reconnect_delay_set(0.25, 1)  # as the hub's source: a returning broker is used within ~1 s
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        client.subscribe("fault/#", qos=1)
        self.connected.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == MARKER:
            self.marker.set()
        elif msg.topic.startswith("fault/s"):
            self.seqs.add(int(msg.topic.rsplit("/", 1)[1]))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Publisher:
    """A sensor gateway: QoS 1 at a fixed rate from its own thread; paho keeps what the broker has not acknowledged
    and sends it again after reconnecting."""

    def __init__(self, port: int, base_ms: int) -> None:
        self.base_ms = base_ms
        self.acked = 0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fault-sensor-gateway",
                                  clean_session=False)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_publish(self, *args: Any) -> None:
        self.acked += 1

    def send(self, seq: int) -> None:
        topic = MARKER if seq < 0 else f"fault/s{seq % SENSORS}/{seq}"
        ts = self.base_ms + (seq if seq >= 0 else 200_000)  # still before now: a reading from the future is malformed
        self.client.publish(topic, json.dumps({"value": seq % 500, "ts": ts}), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class HealthWatch:
    """Polls the daemon's /healthz for the source's state; keeps each change with its time (time.monotonic())."""

    port: int
    changes: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> HealthWatch:
        threading.Thread(target=self._run, name="healthwatch", daemon=True).start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as resp:
                    state = json.loads(resp.read())["sources"][SOURCE]["state"]
            except Exception:  # noqa: BLE001 - 503 while starting, or a slow answer: try again
                state = None
            if state is not None and (not self.changes or self.changes[-1][1] != state):
                self.changes.append((time.monotonic(), state))
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()


_SEND = re.compile(r"Sending PUBLISH to (\S+) \(d\d, q1, r\d, m(\d+), '([^']*)'")
_ACK = re.compile(r"Received PUBACK from (\S+) \(Mid: (\d+), RC:(\d+)\)")


def acked_seqs(log_lines: Iterable[str], client_id: str) -> set[int]:
    """Readings ``client_id`` acknowledged, from a Mosquitto debug log: a PUBACK acknowledges the PUBLISH sent last
    with its message id (a reconnect starts over; the broker resends what is unacknowledged with the same id)."""
    sent: dict[int, str] = {}
    acked: set[int] = set()
    for line in log_lines:
        if (m := _SEND.search(line)) and m[1] == client_id:
            sent[int(m[2])] = m[3]
        elif (m := _ACK.search(line)) and m[1] == client_id and m[3] == "0":
            topic = sent.pop(int(m[2]), "")
            if topic.startswith("fault/s"):
                acked.add(int(topic.rsplit("/", 1)[1]))
        elif f" as {client_id} " in line:  # "New client connected from ... as <id> (p5, c0, k10)."
            sent.clear()
    return acked


def stored_seqs(db: Path, base_ms: int) -> set[int]:
    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT ts FROM readings WHERE sensor_id LIKE 's%'").fetchall()
    return {ts - base_ms for (ts,) in rows}


def publish_at_rate(pub: Publisher, n: int, rate: float, kill_at: int, on_kill: Any) -> None:
    started = time.monotonic()
    for seq in range(n):
        due = started + seq / rate
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)
        if seq == kill_at:
            on_kill()
        pub.send(seq)


def run(folder: Path, *, broker_extra: str = "", rate: float = 200, seconds: float = 55, down_s: float = 5.0,
        timeout: float = 60) -> dict[str, Any]:
    """One run; returns the counts (``lost_hub``, ``lost_bare``, ``acked_not_stored`` ...) and the health changes."""
    folder.mkdir(parents=True, exist_ok=True)
    n = round(rate * seconds)
    broker = Mosquitto(folder / "broker", extra=f"log_type debug\n{broker_extra}")
    broker.start()
    hub = bare = pub = watch = None
    try:
        web_port = free_port()
        hub = HubProcess(hub_config(folder, web_port, broker.port), web_port, folder / "hub.log")
        hub.start()
        watch = HealthWatch(hub.port).start()
        bare = Bare(broker.port)
        wait_for(lambda: bare.connected.is_set() and watch.changes and watch.changes[-1][1] == "up" or None,
                 timeout=30, what="hub and bare subscriber connected")
        time.sleep(0.3)  # the SUBACKs; then a clean restart writes both sessions to the persistence file
        broker.restart()
        wait_for(lambda: bare.connected.is_set() and watch.changes[-1][1] == "up" or None, timeout=30,
                 what="both back after the clean restart")
        pub = Publisher(broker.port, base_ms=int(time.time() * 1000) - 300_000)  # ts base + seq (ms): unique
        times: dict[str, float] = {}

        def kill_and_restart() -> None:
            def later() -> None:
                times["killed"] = time.monotonic()
                broker.stop(kill=True)
                time.sleep(down_s)
                times["starting"] = time.monotonic()
                times["restarted"] = broker.start()
            threading.Thread(target=later, name="broker-kill", daemon=True).start()

        publish_at_rate(pub, n, rate, n // 2, kill_and_restart)
        wait_for(lambda: "restarted" in times or None, timeout=30, what="the broker restarted")
        pub.send(-1)
        wait_for(lambda: pub.acked >= n + 1 or None, timeout=timeout, what=f"the broker acknowledging all {n}")
        db = folder / "hub.db"

        def marker_stored() -> bool | None:
            with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as conn:
                return conn.execute("SELECT 1 FROM readings WHERE sensor_id='end'").fetchone() is not None or None
        wait_for(marker_stored, timeout=timeout, what="the hub storing the marker reading")
        wait_for(lambda: bare.marker.is_set() or None, timeout=timeout, what="the bare subscriber's marker")
        watch.stop()
        hub.assert_alive()
        stored = stored_seqs(db, pub.base_ms)
        broker.stop()  # Mosquitto buffers its log: a clean exit writes it out
        acked = acked_seqs(broker.log.read_text(errors="replace").splitlines(), HUB_ID)
        return {"published": n, "lost_hub": n - len(stored & set(range(n))), "lost_bare": n - len(bare.seqs),
                "acked_by_hub": len(acked), "acked_not_stored": len(acked - stored),
                "stored_not_acked": len(stored - acked),
                "killed_s": times["killed"], "starting_s": times["starting"], "restarted_s": times["restarted"],
                "health": watch.changes, "dropped_log": broker_drops(broker.log)}
    finally:
        for part in (watch, pub, bare):
            if part is not None:
                part.stop() if isinstance(part, HealthWatch) else part.close()
        if hub is not None:
            hub.close()
        broker.stop()


def broker_drops(log: Path) -> int:
    """Lines where Mosquitto says it drops messages for a client (its queue limit reached)."""
    return sum("dropped" in line.lower() for line in log.read_text(errors="replace").splitlines())
