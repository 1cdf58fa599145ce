"""A channel whose destination fails is named in /healthz and in the console (issue 17, fault 11).

Measured before: during a push service's 5xx outage /healthz stayed "ok" and the queue gauge lagged 15 s. Here the
real daemon pushes to the local push service (tests/kits/pushkit.py), which answers 500 for every subscription:
the push channel's circuit for that host opens, /healthz says degraded and names the channel and host, the console's
health section shows it, and both return to ok once the service answers again.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.e2e.test_delivery_e2e import DANNENBERG, config_extra, post_json
from tests.e2e.test_routing import dwd_cap
from tests.kits.consolekit import Operator, add_reader
from tests.kits.hubproc import REPO, HubProcess, drop, free_port, until, write_config
from tests.kits.mosquitto import Mosquitto
from tests.kits.pushkit import PushReceiver
from tests.kits.signedkit import SignedReceiver


def health(proc: HubProcess) -> dict[str, Any]:
    return json.loads(proc.get("/healthz")[1])


async def test_a_failing_push_service_makes_the_channel_degraded_and_named(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker") as broker:
        async with PushReceiver() as rx, SignedReceiver("secret") as hooks:
            home = tmp_path / "hub"
            (home / "inbox").mkdir(parents=True)
            shutil.copytree(REPO / "rules", home / "rules")
            main = home / "rules" / "luechow-dannenberg.toml"  # without the sensor rules (no sensors here)
            text = main.read_text(encoding="utf-8")
            main.write_text(text[:text.index("# --- Eigene Sensoren")], encoding="utf-8")
            port = free_port()
            proc = HubProcess(write_config(home, port=port, extra=config_extra(broker.port, hooks.url)), port,
                              home / "hub.log")
            add_reader(home / "hub.db")
            await asyncio.to_thread(proc.start)
            try:
                await _outage(proc, home, rx)
            finally:
                await asyncio.to_thread(proc.close)


async def _outage(proc: HubProcess, home: Path, rx: PushReceiver) -> None:
    api = f"{proc.base}/api/v1/subscriptions"
    subs = [rx.subscribe() for _ in range(6)]
    for sub in subs:
        await asyncio.to_thread(post_json, api, {"subscription": sub.as_json(), "languages": ["de"],
                                                 "places": [{"lat": DANNENBERG[0], "lon": DANNENBERG[1]}]})
        rx.behave(sub.id, status=500)
    before = await asyncio.to_thread(health, proc)
    assert before["channels"]["push"]["state"] == "ok", before

    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    drop(home / "inbox", "storm-1.xml", dwd_cap("storm-1", sent=sent, expires=sent + timedelta(hours=6)))
    down = await until(lambda: (h := health(proc))["channels"]["push"]["open_circuits"] and h, "push circuit open")
    push = down["channels"]["push"]
    assert down["status"] == "degraded" and push["state"] == "degraded"
    host = f"127.0.0.1:{rx.port}"
    assert push["open_circuits"] == [host] and any(f"circuit open for {host}" in p for p in push["problems"])
    assert push["queued"] == 6  # waiting to be retried, none lost

    operator = await asyncio.to_thread(lambda: Operator(proc.base).login())
    status, page = await asyncio.to_thread(operator.get, "/console/")
    shown = re.search(r'<li class="src src-down" data-channel="push">.*?</li>', page.decode(), re.S)
    assert status == 200 and shown and "GESTÖRT" in shown.group(0) and "127.0.0.1" in shown.group(0)

    for sub in subs:
        rx.behave(sub.id)  # accept again
    await rx.wait_for(6, timeout=90)  # the probe after the cooldown, then the rest
    healed = await until(lambda: (h := health(proc))["channels"]["push"]["state"] == "ok" and h, "push ok again",
                         timeout=30)
    assert healed["channels"]["push"]["queued"] == 0 and healed["channels"]["push"]["open_circuits"] == []
