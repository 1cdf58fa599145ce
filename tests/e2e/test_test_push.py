"""A test push on demand and the filters on /abonnieren (issue 18, sections 2 and 3), against the real daemon
(``warnhub run`` as a subprocess), the real push receiver (tests/kits/pushkit.py: verifies VAPID, decrypts) and, for
the page, Debian's Chromium with the page's own service worker.

As in tests/e2e/test_citizen_push.py, the only fake is at the seam to the world outside this machine: Chromium's
push service is Google's, so ``PushManager.subscribe`` answers the local receiver's subscription, and what the
receiver decrypted is handed to the service worker through the DevTools protocol, as Chromium would.

Invariants: a test push goes through the push channel's outbox to that subscription alone, marked as a test (title
"Test: …", ``test: true``), and is never a warning (no entry in /api/v1/warnings or the feeds, a real warning after it
is the only one); at most 3 per subscription and hour (then 429 with Retry-After); only with the subscription's token.
On the page: the button sends it, the service worker shows it and reports receipt, the page says "angekommen"; one
that never reaches the worker makes the page say, after 30 s, what to check. The page fills the form from the stored
subscription and saves changed filters (sources, quiet hours) with the same id and token.
Screenshots: tests/screenshots/subscribe-test-push-*.png.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from tests.e2e.test_citizen_push import FAKE_SUBSCRIBE, STORED, WAIT_S, Worker, choose_place, controlled, start_hub
from tests.e2e.test_routing import dwd_cap
from tests.kits.browser import PageLog, open_page, screenshot
from tests.kits.hubproc import drop
from tests.kits.pushkit import PushReceiver

pytest_plugins = ("tests.kits.browser",)

DISTRICT = "033540000000"


def call(base: str, method: str, path: str, token: str | None = None,
         body: dict[str, Any] | None = None) -> tuple[int, dict[str, str], Any]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, method=method, headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, dict(resp.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, dict(err.headers), json.loads(raw) if raw else None


async def test_a_test_push_reaches_its_subscription_only_and_is_never_a_warning(tmp_path: Path) -> None:
    async with PushReceiver() as rx:
        hub = await start_hub(tmp_path)
        try:
            await api_scenario(hub.proc.base, hub.inbox, rx)
        finally:
            await asyncio.to_thread(hub.proc.close)


async def api_scenario(base: str, inbox: Path, rx: PushReceiver) -> None:
    subs = {name: rx.subscribe() for name in ("anna", "bert")}
    made = {}
    for name, sub in subs.items():
        status, _, made[name] = await asyncio.to_thread(
            call, base, "POST", "/api/v1/subscriptions", None,
            {"subscription": sub.as_json(), "places": [{"ars": DISTRICT}], "languages": ["tr", "de"]})
        assert status == 201, made[name]
    anna, bert = made["anna"], made["bert"]
    test_url = f"/api/v1/subscriptions/{anna['id']}/test"

    # only with the subscription's own token
    assert (await asyncio.to_thread(call, base, "POST", test_url))[0] == 401
    assert (await asyncio.to_thread(call, base, "POST", test_url, bert["token"]))[0] == 404
    assert (await asyncio.to_thread(call, base, "POST", test_url, "x" * 43))[0] == 404

    status, _, started = await asyncio.to_thread(call, base, "POST", test_url, anna["token"])
    assert status == 202 and started["state"] == "sending" and started["wait_s"] == 30, started
    [push] = await rx.wait_for(1, timeout=WAIT_S)
    assert rx.errors == [], rx.errors
    assert push.sub_id == subs["anna"].id
    assert push.body["test"] is True and push.body["thread"] == f"test:{started['id']}", push.body
    assert push.body["lang"] == "tr" and push.body["title"].startswith("Test"), push.body
    assert "severity" not in push.body and "headline" not in push.body
    assert push.headers["Urgency"] == "high" and 0 < int(push.headers["TTL"]) <= 120

    # Bert's own test arrives next, and to Bert alone: Anna's receiver got nothing more, Bert's nothing of Anna's
    status, _, bert_test = await asyncio.to_thread(call, base, "POST", f"/api/v1/subscriptions/{bert['id']}/test",
                                                   bert["token"])
    assert status == 202
    await rx.wait_for(2, timeout=WAIT_S)
    assert [p.body["thread"] for p in rx.received(subs["anna"].id)] == [f"test:{started['id']}"]
    assert [p.body["thread"] for p in rx.received(subs["bert"].id)] == [f"test:{bert_test['id']}"]

    # the state: sent, then received once the service worker posts the receipt the payload names
    state_url = f"{test_url}/{started['id']}"
    status, _, state = await asyncio.to_thread(call, base, "GET", state_url, anna["token"])
    assert status == 200 and state["state"] in ("sending", "sent"), state
    assert (await asyncio.to_thread(call, base, "GET", state_url, bert["token"]))[0] == 404
    assert push.body["receipt"] == f"{state_url}/received"
    assert (await asyncio.to_thread(call, base, "POST", push.body["receipt"]))[0] == 204
    assert (await asyncio.to_thread(call, base, "GET", state_url, anna["token"]))[2]["state"] == "received"

    # three per hour and subscription: the fourth is refused, saying when to try again
    for _ in range(2):
        assert (await asyncio.to_thread(call, base, "POST", test_url, anna["token"]))[0] == 202
    status, headers, refused = await asyncio.to_thread(call, base, "POST", test_url, anna["token"])
    assert status == 429 and 3000 < int(headers["Retry-After"]) <= 3600, (status, headers)
    assert "Höchstens 3 Test-Benachrichtigungen pro Stunde" in refused["error"] and "per hour" in refused["error"]
    await rx.wait_for(4, timeout=WAIT_S)

    # never a warning: no entry on the API or in the feeds; a real warning afterwards is the only one there
    assert (await asyncio.to_thread(call, base, "GET", "/api/v1/warnings"))[2]["warnings"] == []
    for feed in (f"/feeds/{DISTRICT}.atom", "/feeds/cap.atom"):
        status, body = await asyncio.to_thread(_get, base + feed)
        assert status == 200 and b"<entry" not in body and b"test:" not in body, body[:400]
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    drop(inbox, "storm.xml", dwd_cap("storm-1", sent=sent, expires=sent + timedelta(hours=6)), settled=True)
    got = await rx.wait_for(6, timeout=WAIT_S)
    storms = [p for p in got if not p.body.get("test")]
    assert sorted(p.sub_id for p in storms) == sorted(s.id for s in subs.values())
    listed = (await asyncio.to_thread(call, base, "GET", "/api/v1/warnings"))[2]["warnings"]
    assert [w["thread"] for w in listed] == [storms[0].body["thread"]]
    assert rx.errors == [], rx.errors


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.read()


async def test_the_page_edits_filters_and_a_test_push_says_it_arrived(tmp_path: Path, page: Page,
                                                                      page_log: PageLog) -> None:
    async with PushReceiver() as rx:
        sub = rx.subscribe()
        hub = await start_hub(tmp_path)
        try:
            base = hub.proc.base
            await page.context.add_init_script(FAKE_SUBSCRIBE % json.dumps(sub.as_json()))
            await page.context.grant_permissions(["notifications"], origin=base)
            worker = await Worker(page, base).start()
            await filters_on_the_page(page, base)
            await push_on_the_page(page, worker, rx)
            assert page_log.outside == [] and page_log.errors == [], (page_log.outside, page_log.errors)
        finally:
            await asyncio.to_thread(hub.proc.close)


async def filters_on_the_page(page: Page, base: str) -> None:
    await open_page(page, base, "/abonnieren")
    await controlled(page)
    await expect(page.locator("#test-button")).to_be_enabled()
    await page.locator("#test-button").click()  # nothing subscribed yet: says so
    await expect(page.locator("#test-status")).to_contain_text("Erst abonnieren")
    place = await choose_place(page, "Dannenberg")
    await page.locator("input[name='source'][value='amtlich']").check()
    await page.locator("#quiet-on").check()
    await page.locator("#quiet-from").fill("21:30")
    await page.locator("#quiet-to").fill("06:45")
    await page.locator("#subscribe-button").click()
    await expect(page.locator("#push-status")).to_contain_text("Abonniert", timeout=WAIT_S * 1000)
    [entry] = await page.evaluate(STORED)
    status, _, stored = await asyncio.to_thread(call, base, "GET", f"/api/v1/subscriptions/{entry['id']}",
                                                entry["token"])
    assert status == 200
    assert stored["subscription"]["places"] == [place]
    assert stored["subscription"]["sources"] == ["amtlich"]
    assert stored["subscription"]["quiet_hours"] == {"from": "21:30", "to": "06:45"}

    # later, the same browser: the form shows what the hub has, and a change is saved under the same id and token
    await page.reload()
    await expect(page.locator("#places li[data-place]")).to_have_count(1)
    await expect(page.locator("input[name='source'][value='amtlich']")).to_be_checked()
    await expect(page.locator("#quiet-on")).to_be_checked()
    await expect(page.locator("#quiet-from")).to_have_value("21:30")
    await page.locator("input[name='source'][value='amtlich']").uncheck()
    await page.locator("input[name='source'][value='wetter']").check()
    await page.locator("#quiet-on").uncheck()
    await page.locator("#subscribe-button").click()
    await expect(page.locator("#push-status")).to_contain_text("Abo geändert", timeout=WAIT_S * 1000)
    [again] = await page.evaluate(STORED)
    assert (again["id"], again["token"]) == (entry["id"], entry["token"])
    status, _, stored = await asyncio.to_thread(call, base, "GET", f"/api/v1/subscriptions/{entry['id']}",
                                                entry["token"])
    assert (stored["subscription"]["sources"], stored["subscription"]["quiet_hours"]) == (["wetter"], None)
    await screenshot(page, "subscribe-test-push-filters")


async def push_on_the_page(page: Page, worker: Worker, rx: PushReceiver) -> None:
    status = page.locator("#test-status")
    await page.locator("#test-button").click()
    [push] = await rx.wait_for(1, timeout=WAIT_S)
    assert push.body["test"] is True, push.body
    await worker.push(push.raw.decode())  # the browser's push service delivers it to the page's service worker
    shown = await worker.notifications(lambda n: any(x["tag"] == push.body["thread"] for x in n), "the test")
    [test] = [n for n in shown if n["tag"] == push.body["thread"]]
    assert test["title"] == push.body["title"] and test["title"].startswith("Test")
    await expect(status).to_contain_text("angekommen", timeout=WAIT_S * 1000)
    await expect(page.locator("#test-help")).to_be_hidden()
    await screenshot(page, "subscribe-test-push-arrived")

    # a test that the push service takes but the device never shows: after 30 s the page says what to check
    await page.locator("#test-button").click()
    await rx.wait_for(2, timeout=WAIT_S)  # sent, and not handed to the service worker
    await expect(status).to_contain_text("nicht angekommen", timeout=(WAIT_S + 15) * 1000)
    help_ = page.locator("#test-help")
    await expect(help_).to_be_visible()
    await expect(help_).to_contain_text("Benachrichtigungen")
    await expect(help_).to_contain_text("Energiesparmodus")
    await expect(help_).to_contain_text("Push-Dienst")
    await expect(help_).to_contain_text("Home-Bildschirm")
    await screenshot(page, "subscribe-test-push-missing")
