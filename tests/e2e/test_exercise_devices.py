"""Staff test devices for exercises, end to end: the real daemon, the console's sign-in, the CLI, and Web Push to
the local push receiver that verifies VAPID and decrypts (tests/kits/pushkit.py).

Invariant: exercises never reach the public. Anyone can subscribe, but ``"exercise": true`` only with a token a
signed-in console user (or ``warnhub exercise-token``) issued; such a device receives the exercise and a citizen's
subscription for the same place does not (checked once the real warning sent after the exercise has arrived).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import Page, expect

from hub.access import auth
from hub.geo.geography import geography
from hub.store.db import Store
from tests.e2e.test_citizen_push import FAKE_SUBSCRIBE, STORED, api_status, choose_place, controlled
from tests.e2e.test_routing import Hub, dwd_cap
from tests.kits.browser import PageLog, open_page
from tests.kits.hubproc import drop
from tests.kits.pushkit import PushReceiver, TestSubscription

pytest_plugins = ("tests.kits.browser",)

PUSH = """
[push]
allow_http_endpoints = true
vapid_key = "var/vapid.pem"
vapid_subject = "mailto:test@warnhub.example"
timeout_s = 2
workers = 1
"""
EXERCISE_RULE = """
[[rule]]
name = "Übung: DWD-Übungsmeldungen an die Testgeräte"
when.provider = "dwd"
when.status = ["Exercise"]
then.publish = ["push"]
"""
PASSWORD = "ein-langes-testpasswort"
DANNENBERG = (53.0979, 11.0938)
WAIT = 30


def prepare(tmp: Path) -> Hub:
    hub = Hub(tmp, extra=PUSH)
    main = hub.rules / "luechow-dannenberg.toml"
    text = main.read_text(encoding="utf-8")
    old, new = 'when.status = ["Test", "Exercise", "System", "Draft"]', 'when.status = ["Test", "System", "Draft"]'
    assert old in text
    text = text.replace(old, new)
    main.write_text(text + EXERCISE_RULE, encoding="utf-8")
    store = Store(tmp / "hub.db")
    try:
        auth.add_user(store, "anna", ["author"], ["033540000000"], PASSWORD, actor="test",
                      registry=geography().registry)
    finally:
        store.close()
    return hub


async def subscribe(http: aiohttp.ClientSession, base: str, sub: TestSubscription, **extra: Any) -> tuple[int, Any]:
    body = {"subscription": sub.as_json(), "places": [{"lat": DANNENBERG[0], "lon": DANNENBERG[1], "radius_m": 500}],
            "languages": ["de"], **extra}
    async with http.post(f"{base}/api/v1/subscriptions", json=body) as r:
        return r.status, await r.json()


async def console_token(base: str) -> str:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(f"{base}/console/login", json={"name": "anna", "password": PASSWORD}) as r:
            assert r.status == 200, await r.text()
            csrf = (await r.json())["csrf"]
        async with http.post(f"{base}/console/api/exercise-token") as r:
            assert r.status == 403  # no change without the session's CSRF token
        async with http.post(f"{base}/console/api/exercise-token", headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 201, await r.text()
            issued = await r.json()
    assert issued["link"] == f"/abonnieren?exercise_token={issued['token']}"
    return str(issued["token"])


async def test_only_console_or_cli_tokens_make_exercise_devices_and_only_they_get_exercises(tmp_path: Path) -> None:
    hub = prepare(tmp_path)
    async with PushReceiver() as rx, aiohttp.ClientSession() as http:
        await asyncio.to_thread(hub.proc.start)
        try:
            base = hub.proc.base
            public, drill, phone = rx.subscribe(), rx.subscribe(), rx.subscribe()
            status, body = await subscribe(http, base, public, exercise=True)  # anyone asking for exercises
            assert status == 403 and "exercise subscriptions need a valid token" in body["error"], body
            assert (await subscribe(http, base, public))[0] == 201

            token = await console_token(base)
            status, body = await subscribe(http, base, drill, exercise=True, exercise_token=token)
            assert status == 201 and body["subscription"]["exercise"] is True, body
            assert (await subscribe(http, base, phone, exercise=True, exercise_token=token))[0] == 403  # used up

            out = await asyncio.to_thread(hub.cli, "exercise-token", "--user", "anna")
            assert out.returncode == 0, out.stderr
            status, body = await subscribe(http, base, phone, exercise=True, exercise_token=out.stdout.strip())
            assert status == 201, body
            refused = await asyncio.to_thread(hub.cli, "exercise-token", "--user", "nobody")
            assert refused.returncode == 1 and "unknown" in refused.stderr

            sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
            drop(hub.inbox, "drill.xml", dwd_cap("drill-1", status="Exercise", sent=sent))
            await rx.wait_for(2, timeout=WAIT)
            drop(hub.inbox, "storm.xml", dwd_cap("storm-1", sent=sent + timedelta(minutes=1)))
            await rx.wait_for(3, timeout=WAIT)  # the real warning, sent after the exercise, has arrived
            assert [r.body["status"] for r in rx.received(public.id)] == ["Actual"]
            assert [r.body["status"] for r in rx.received(drill.id)] == ["Exercise"]
            assert [r.body["status"] for r in rx.received(phone.id)] == ["Exercise"]
            assert rx.errors == [], rx.errors
        finally:
            await asyncio.to_thread(hub.proc.close)


async def test_the_console_dashboard_issues_a_test_device_link(tmp_path: Path, page: Page, page_log: PageLog) -> None:
    hub = prepare(tmp_path)
    async with PushReceiver() as rx, aiohttp.ClientSession() as http:
        await asyncio.to_thread(hub.proc.start)
        try:
            base = hub.proc.base
            await page.goto(f"{base}/console/login")
            await page.fill("#name", "anna")
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{base}/console/")
            await expect(page.locator("#test-device h2")).to_contain_text("Testgerät für Übungen registrieren")
            await page.click("#test-device-issue")
            link = page.locator("#test-device-link a")
            await expect(link).to_be_visible()
            href = await link.get_attribute("href")
            assert href is not None and href.startswith(f"{base}/abonnieren?exercise_token="), href
            token = href.split("exercise_token=", 1)[1]

            # the staff phone opens the link: the subscribe page sends the token, the hub makes an exercise device
            phone = rx.subscribe()
            await page.context.add_init_script(FAKE_SUBSCRIBE % json.dumps(phone.as_json()))
            await page.context.grant_permissions(["notifications"], origin=base)
            await open_page(page, base, href.removeprefix(base))
            await controlled(page)
            status_line = page.locator("#push-status")
            await expect(status_line).to_contain_text("nur Übungen")
            await choose_place(page, "Dannenberg")
            await page.locator("#subscribe-button").click()
            await expect(status_line).to_contain_text("Abonniert", timeout=WAIT * 1000)
            [entry] = await page.evaluate(STORED)
            code, stored = await asyncio.to_thread(api_status, base, "GET", f"/api/v1/subscriptions/{entry['id']}",
                                                   entry["token"])
            assert code == 200 and stored["subscription"]["exercise"] is True, (code, stored)
            assert (await subscribe(http, base, rx.subscribe(), exercise=True, exercise_token=token))[0] == 403
            assert page_log.errors == [] and page_log.outside == []
        finally:
            await asyncio.to_thread(hub.proc.close)
