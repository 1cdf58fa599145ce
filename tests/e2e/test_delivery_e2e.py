"""Delivery end to end, all real: the daemon as a subprocess, a CAP file dropped into its inbox, the operators' rules,
Web Push to a local push service that verifies VAPID and decrypts (tests/kits/pushkit.py), a display board on a real
Mosquitto, and a webhook receiver that checks the HMAC signature.

Invariants: exactly the subscriptions whose places the area reaches get the push (and each once); an Update pushes
only when the rules find it significant; a Cancel reaches who had the warning and clears the board; a 410 deletes
the subscription; a hanging push endpoint delays nobody else.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from tests.e2e.test_routing import dwd_cap
from tests.kits.consolekit import Operator, add_reader
from tests.kits.hubproc import REPO, HubProcess, drop, free_port, until, write_config
from tests.kits.mosquitto import Mosquitto
from tests.kits.pushkit import PushReceiver
from tests.kits.signedkit import SignedReceiver

WAIT = 30
DANNENBERG = (53.0979, 11.0938)
HAMBURG = (53.5511, 9.9937)
HITZACKER = "033545406009"
SECRET = "webhook-secret-for-tests"


def config_extra(broker: int, hook_url: str) -> str:
    return f"""
[push]
allow_http_endpoints = true
vapid_key = "var/vapid.pem"
vapid_subject = "mailto:test@warnhub.example"
timeout_s = 2
workers = 1

[[boards]]
id = "tafel-dannenberg"
name = "Marktplatz Dannenberg"
ars = "033545406004"
kind = "mqtt"
port = {broker}
topic = "boards/dannenberg"
lines = 4
chars = 32
charset = "ascii"

[[boards]]
id = "tafel-hamburg"
name = "Hamburg (outside the district)"
ars = "020000000000"
kind = "mqtt"
port = {broker}
topic = "boards/hamburg"

[[boards]]
id = "kiosk-rathaus"
name = "Rathaus Dannenberg, Foyer"
ars = "033545406004"
kind = "kiosk"

[[webhooks]]
id = "zeitung"
url = "{hook_url}"
format = "json"
secret = "{SECRET}"
"""


WEBHOOK_RULE = """
[[rule]]
name = "DWD-Unwetter auch an die Lokalzeitung"
when.provider = "dwd"
when.min_severity = "Severe"
when.area = "district"
then.publish = ["webhook"]
"""


def retained(port: int, topic: str, timeout: float = 3.0) -> bytes | None:
    """What a board subscribing now gets: the retained message (None when there is none)."""
    got: list[bytes] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, m: got.append(m.payload)
    client.connect("127.0.0.1", port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    try:
        end = time.monotonic() + timeout
        while not got and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        client.loop_stop()
        client.disconnect()
    return got[0] if got else None


def post_json(url: str, data: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(url, data=json.dumps(data).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def status_of(url: str, token: str) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code



async def test_cap_file_to_push_board_and_webhook(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker") as broker:
        async with PushReceiver() as rx, SignedReceiver(SECRET) as hooks:
            home = tmp_path / "hub"
            home.mkdir()
            (home / "inbox").mkdir()
            shutil.copytree(REPO / "rules", home / "rules")
            main = home / "rules" / "luechow-dannenberg.toml"
            text = main.read_text(encoding="utf-8")
            main.write_text(text[:text.index("# --- Eigene Sensoren")] + WEBHOOK_RULE, encoding="utf-8")
            port = free_port()
            config = write_config(home, port=port,
                                  extra=config_extra(broker.port, hooks.url))
            proc = HubProcess(config, port, home / "hub.log")
            add_reader(home / "hub.db")
            await asyncio.to_thread(proc.start)
            try:
                await run_scenario(proc, home, rx, hooks, broker.port)
            finally:
                await asyncio.to_thread(proc.close)


async def run_scenario(proc: HubProcess, home: Path, rx: PushReceiver, hooks: SignedReceiver, broker: int) -> None:
    api = f"{proc.base}/api/v1/subscriptions"
    subs = {name: rx.subscribe() for name in ("dannenberg", "hamburg", "hitzacker", "gone", "hang")}
    places = {"dannenberg": [{"lat": DANNENBERG[0], "lon": DANNENBERG[1], "radius_m": 500}],
              "hamburg": [{"lat": HAMBURG[0], "lon": HAMBURG[1], "radius_m": 5000}],
              "hitzacker": [{"ars": HITZACKER}],
              "gone": [{"lat": DANNENBERG[0], "lon": DANNENBERG[1]}],
              "hang": [{"lat": DANNENBERG[0], "lon": DANNENBERG[1]}]}
    made = {}
    for name, sub in subs.items():
        made[name] = await asyncio.to_thread(post_json, api, {"subscription": sub.as_json(), "places": places[name],
                                                               "languages": ["de"]})
    rx.behave(subs["gone"].id, status=410)
    rx.behave(subs["hang"].id, hang_s=20)
    key = await asyncio.to_thread(proc.get_json, "/api/v1/push/key")
    assert len(key["publicKey"]) == 87  # 65 bytes, base64url without padding

    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    end = sent + timedelta(hours=6)
    drop(home / "inbox", "storm-1.xml", dwd_cap("storm-1", sent=sent, expires=end))

    got = await rx.wait_for(2, timeout=WAIT)  # the hanging one is still hanging: the others are not held up
    by_sub = {r.sub_id: r for r in got}
    assert set(by_sub) == {subs["dannenberg"].id, subs["hitzacker"].id}
    push = by_sub[subs["dannenberg"].id]
    assert push.body["headline"] == "Amtliche UNWETTERWARNUNG vor STURMBÖEN"
    assert push.body["msgType"] == "Alert" and push.body["severity"] == "Severe"
    assert push.headers["Urgency"] == "high" and push.headers.get("Topic")
    assert 0 < int(push.headers["TTL"]) <= 6 * 3600
    assert rx.errors == [], rx.errors

    # 410: the subscription is deleted (its token no longer finds it)
    gone = made["gone"]
    await until(lambda: status_of(f"{api}/{gone['id']}", gone["token"]) == 404, "the 410 subscription deleted")
    assert await asyncio.to_thread(status_of, f"{api}/{made['dannenberg']['id']}", made["dannenberg"]["token"]) == 200

    board = await until(lambda: retained(broker, "boards/dannenberg"), "the board's retained state")
    state = json.loads(board)
    assert all(len(line) <= 32 and line.isascii() for line in state["lines"]) and len(state["lines"]) <= 4
    assert any("STURMBOEEN" in line.upper() or "STURMB" in line.upper() for line in state["lines"]), state
    assert await asyncio.to_thread(retained, broker, "boards/hamburg", 1.0) is None

    hook = await until(lambda: hooks.got, "the webhook")
    assert hook[0]["msgType"] == "Alert" and hook[0]["sender"] and not hooks.bad

    # the web channel: API by place, the CAP Atom feed, the kiosk page
    here = await asyncio.to_thread(proc.get_json, f"/api/v1/warnings?lat={DANNENBERG[0]}&lon={DANNENBERG[1]}")
    assert [w["infos"][0]["headline"] for w in here["warnings"]] == ["Amtliche UNWETTERWARNUNG vor STURMBÖEN"]
    there = await asyncio.to_thread(proc.get_json, f"/api/v1/warnings?lat={HAMBURG[0]}&lon={HAMBURG[1]}")
    assert there["warnings"] == []
    status, feed = await asyncio.to_thread(proc.get, "/feeds/cap.atom")
    assert status == 200 and b"UNWETTERWARNUNG" in feed and b"urn:oasis:names:tc:emergency:cap:1.2" in feed
    status, kiosk = await asyncio.to_thread(proc.get, "/boards/kiosk-rathaus")
    assert status == 200 and "UNWETTERWARNUNG vor STURMBÖEN" in kiosk.decode()

    # A silent update (only the description changes) pushes nothing; a severity rise pushes.
    drop(home / "inbox", "storm-2.xml", dwd_cap("storm-2", msg_type="Update", sent=sent + timedelta(minutes=1),
                                                 expires=end, description="Weiterhin Sturmböen.",
                                                 references=f"opendata@dwd.de,storm-1,{sent.isoformat()}"))
    await until(lambda: len(hooks.got) >= 2, "the webhook of the silent update")
    second = sent + timedelta(minutes=1)
    drop(home / "inbox", "storm-3.xml", dwd_cap("storm-3", msg_type="Update", severity="Extreme",
                                                 sent=sent + timedelta(minutes=2), expires=end,
                                                 references=f"opendata@dwd.de,storm-2,{second.isoformat()}"))
    await rx.wait_for(4, timeout=WAIT)
    mine = rx.received(subs["dannenberg"].id)
    assert [r.body["version"] for r in mine] == [1, 3], [r.body for r in mine]  # v2 was silent
    assert mine[1].body["severity"] == "Extreme" and mine[1].body["msgType"] == "Update"

    # Cancel: who had it hears it is over; the board is cleared
    third = sent + timedelta(minutes=2)
    drop(home / "inbox", "storm-4.xml", dwd_cap("storm-4", msg_type="Cancel", sent=sent + timedelta(minutes=3),
                                                 expires=end,
                                                 references=f"opendata@dwd.de,storm-3,{third.isoformat()}"))
    await rx.wait_for(6, timeout=WAIT)
    cancel = rx.received(subs["dannenberg"].id)[-1].body
    assert cancel["msgType"] == "Cancel" and cancel["version"] == 4
    assert rx.received(subs["hamburg"].id) == []
    await until(lambda: retained(broker, "boards/dannenberg", 1.0) is None, "the board cleared")
    keys = [r.body["key"] for r in rx.received()]
    assert len(keys) == len(set(keys)), "no push twice"
    assert rx.errors == [], rx.errors
    await until(lambda: len(hooks.got) >= 4, "the webhook of the Cancel")
    assert [h["msgType"] for h in hooks.got] == ["Alert", "Update", "Update", "Cancel"] and not hooks.bad
    assert len({h["key"] for h in hooks.got}) == 4
    operator = Operator(proc.base)
    status = await asyncio.to_thread(operator.get_json, f"/console/api/publications/{cancel['thread']}/status")
    assert (await asyncio.to_thread(proc.get, f"/console/api/publications/{cancel['thread']}/status"))[0] == 401
    first_push = status["versions"][0]["channels"]["push"]
    assert first_push.get("done") == 2 and first_push.get("gone") == 1, status  # dannenberg, hitzacker; 410
    assert status["versions"][3]["msgType"] == "Cancel"
