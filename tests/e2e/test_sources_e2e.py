"""End to end: the real ``warnhub run`` daemon with a CAP feed, DWD, NINA and MQTT sensors, all local (a replay
server and a real Mosquitto). Alerts and readings must appear in the store and at the API; health must show
every source up; when the servers go away the sources are down (not "no warnings"), `warnhub sources` says so
and exits 3, and nothing stored is lost."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from tests.kits import paths
from tests.kits.consolekit import Operator, add_reader
from tests.kits.hubproc import REPO, HubProcess, free_port, subprocess_env, until, write_config
from tests.kits.mosquitto import Mosquitto
from tests.kits.sourcekit import ReplayServer

DATA = paths.DATA
DWD_GLAETTE = DATA / "cap" / "de_dwd_wdr-unwetter_alert1_glaette.xml"
DWD_UPDATE1 = DATA / "cap" / "de_dwd_wdr-unwetter_alert1_update1.xml"
FEED = DATA / "feeds" / "google_weather.atom"
NINA = DATA / "nina"
FPAS = "mow.DE-HE-KS-SE106-20250313-106-001"
STAT = "/dwd/COMMUNEUNION_DWD_STAT/Z_CAP_C_EDZW_LATEST_PVW_STATUS_PREMIUMDWD_COMMUNEUNION_MUL.zip"


def dwd_zip(*files: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            zf.writestr(f.name, f.read_bytes())
    return buf.getvalue()


def nina_map(*ids: str) -> bytes:
    return json.dumps([{"id": i, "version": 1, "startDate": "2025-03-13T10:50:25+01:00", "severity": "Extreme",
                        "type": "Cancel", "i18nTitle": {"de": "Probealarm"}} for i in ids]).encode()


def serve(srv: ReplayServer) -> None:
    srv.set("/feed.atom", FEED.read_bytes(), content_type="application/atom+xml")
    srv.set(STAT, dwd_zip(DWD_GLAETTE, DWD_UPDATE1), content_type="application/zip")
    srv.set("/api31/mowas/mapData.json", nina_map(FPAS), content_type="application/json")
    srv.set(f"/api31/warnings/{FPAS}.json", (NINA / f"fpas_{FPAS}.json").read_bytes(), content_type="application/json")
    srv.set(f"/api31/warnings/{FPAS}.geojson", (NINA / f"fpas_{FPAS}.geojson").read_bytes(),
            content_type="application/json")


def sources_config(srv: ReplayServer, broker_port: int) -> str:
    # the Hessen MoWaS sample is kept by ARS: the hub here is for Landkreis Kassel (066330000000 is in its list)
    return f"""
[[sources]]
type = "cap-feed"
name = "feed"
url = "{srv.url('/feed.atom')}"
interval_s = 0.5
timeout_s = 2

[[sources]]
type = "dwd"
name = "dwd"
base_url = "{srv.url('/dwd')}"
warncells = ["805566028"]
interval_s = 0.5
timeout_s = 2

[[sources]]
type = "nina"
name = "nina"
base_url = "{srv.url('/api31')}"
feeds = ["mowas"]
dashboard_ars = []
interval_s = 0.5
timeout_s = 2

[[sources]]
type = "mqtt"
name = "sensors"
host = "127.0.0.1"
port = {broker_port}

[[sources.sensors]]
id = "pegel-hitzacker"
topic = "warnhub/sensors/pegel/hitzacker"
kind = "water_level"
unit = "cm"
lat = 53.1522
lon = 11.0436
ars = "033545406009"
interval_s = 600
"""


def warnhub(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], capture_output=True, text=True, timeout=60,
                          env=subprocess_env(), cwd=REPO)


def publish(port: int, topic: str, payload: str) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-publisher")
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(topic, payload, qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


async def test_daemon_with_every_source_kind(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker") as broker:
        async with ReplayServer() as srv:
            serve(srv)
            port = free_port()
            config = write_config(tmp_path, port=port, extra=sources_config(srv, broker.port))
            text = config.read_text(encoding="utf-8").replace('district_ars = "033540000000"',
                                                              'district_ars = "066330000000"')
            text = text.replace("max_age_without_expires_h = 48", "max_age_without_expires_h = 0")
            config.write_text(text, encoding="utf-8")
            proc = HubProcess(config, port, tmp_path / "warnhub.log")
            add_reader(tmp_path / "hub.db", district="066330000000")
            operator = Operator(proc.base)
            await asyncio.to_thread(proc.start)
            try:
                seen: list[Any] = []

                def all_up() -> dict[str, Any] | None:
                    health = proc.get_json("/healthz")
                    seen[:] = [health]
                    states = {n: s["state"] for n, s in health["sources"].items()}
                    return health if set(states) >= {"feed", "dwd", "nina", "sensors"} and \
                        all(states[n] == "up" for n in ("feed", "dwd", "nina", "sensors")) else None

                try:
                    health = await until(all_up, "every source up")
                except AssertionError as err:
                    raise AssertionError(f"{err}: {seen}\n{proc.log()[-3000:]}") from None
                assert health["status"] == "ok"

                def origins() -> set[str]:
                    rows = operator.threads()
                    return {operator.get_json(f"/console/api/alerts/{t['id']}")["versions"][0]["origin"]
                            for t in rows}

                assert await until(lambda: origins() >= {"feed", "dwd", "nina"} and origins(), "alerts of all") \
                    >= {"feed", "dwd", "nina"}
                threads = operator.threads()
                glaette = [t for t in threads if "GLÄTTE" in t["headline"].upper()]
                assert len(glaette) == 1 and glaette[0]["versions"] == 2  # DWD alert + update: one incident

                await asyncio.to_thread(publish, broker.port, "warnhub/sensors/pegel/hitzacker",
                                        json.dumps({"value": 412, "unit": "cm"}))

                def reading() -> dict[str, Any] | None:
                    sensors = {s["id"]: s for s in proc.get_json("/api/v1/sensors")["sensors"]}
                    s = sensors.get("pegel-hitzacker")
                    return s if s and s.get("last_value") == 412 else None

                sensor = await until(reading, "the gauge reading at the API")
                assert sensor["state"] == "ok"
                code, body = await asyncio.to_thread(proc.get, "/api/v1/sensors/pegel-hitzacker/readings")
                assert code == 200 and [r["value"] for r in json.loads(body)["readings"]] == [412]

                listed = await asyncio.to_thread(warnhub, "sources", "--json", "--config", str(config))
                assert listed.returncode == 0, listed.stdout + listed.stderr
                rows = {json.loads(line)["name"]: json.loads(line) for line in listed.stdout.splitlines()}
                assert {r["state"] for n, r in rows.items() if n != "cap-inbox"} == {"up"}

                stored = len(threads)
                # the servers go away: every HTTP source is down, with the reason; nothing is ended or lost
                for path in list(srv.routes):
                    srv.set(path, status=503)

                def http_down() -> dict[str, Any] | None:
                    health = proc.get_json("/healthz")
                    return health if all(health["sources"][n]["state"] == "down" for n in ("feed", "dwd", "nina")) \
                        else None

                health = await until(http_down, "HTTP sources down")
                assert health["status"] == "degraded"
                assert "HTTP 503" in health["sources"]["nina"]["last_error"]
                assert len(operator.threads()) == stored
                code, page = await asyncio.to_thread(proc.get, "/")
                assert code == 200 and "Quelle(n) gestört" in page.decode()
                await asyncio.to_thread(broker.stop)

                def sensors_down() -> bool:
                    return proc.get_json("/healthz")["sources"]["sensors"]["state"] == "down"

                await until(sensors_down, "MQTT source down")
                listed = await asyncio.to_thread(warnhub, "sources", "--config", str(config))
                assert listed.returncode == 3, listed.stdout + listed.stderr
                assert "down" in listed.stdout and "HTTP 503" in listed.stdout
                metrics = (await asyncio.to_thread(proc.get, "/metrics"))[1].decode()
                assert 'warnhub_source_up{source="nina"} 0.0' in metrics
            finally:
                await asyncio.to_thread(proc.close)
