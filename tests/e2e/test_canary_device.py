"""A control-room device's canary (issue 17 section 2), with the page's own service worker in Debian's Chromium.

The real daemon sends its canary push through the local push service (tests/kits/pushkit.py: verifies VAPID,
decrypts) to the subscription named in ``[canary] push_subscriptions``; what the receiver decrypted is handed to the
service worker through the DevTools protocol, as Chromium's push service would (the only fake, as in
tests/e2e/test_citizen_push.py). The worker POSTs the receipt the payload names and shows the canary silently under
one fixed tag (a userVisibleOnly subscription must show something); the hub then counts the endpoint as ok with one
measured receipt. Until the worker has it, the endpoint has no receipt.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from playwright.async_api import Page

from tests.e2e.test_citizen_push import PUSH, WAIT_S, Worker, controlled
from tests.faults.test_canary import copy_rules, store_subscription
from tests.kits.browser import PageLog, open_page
from tests.kits.hubproc import HubProcess, free_port, until, write_config
from tests.kits.pushkit import PushReceiver

pytest_plugins = ("tests.kits.browser",)


def _canary(proc: HubProcess, name: str) -> dict[str, Any]:
    return dict(json.loads(proc.get("/healthz")[1])["canaries"][name])


async def test_the_service_worker_acknowledges_a_canary_and_shows_it_silently(tmp_path: Path, page: Page,
                                                                            page_log: PageLog) -> None:
    async with PushReceiver() as rx:
        device = rx.subscribe()
        home = tmp_path / "hub"
        copy_rules(home)
        sid = store_subscription(home / "hub.db", device)
        port = free_port()
        config = write_config(home, port=port, extra=PUSH + f"""
[canary]
enabled = true
interval_s = 60
slo_s = 30
push_subscriptions = ["{sid}"]
sse = false
""")
        proc = HubProcess(config, port, home / "hub.log")
        await asyncio.to_thread(proc.start)
        try:
            base = proc.base
            await page.context.grant_permissions(["notifications"], origin=base)
            worker = await Worker(page, base).start()
            await open_page(page, base, "/")
            await controlled(page)
            [push] = await rx.wait_for(1, timeout=WAIT_S)  # the first round goes out at start
            assert push.body["canary"] is True and push.body["status"] == "Test", push.body
            before = await asyncio.to_thread(_canary, proc, f"push:{sid}")
            assert before["received"] == 0 and before["unanswered"] == 1

            await worker.cdp.send("ServiceWorker.deliverPushMessage", {
                "origin": base, "registrationId": await worker.registration_id(), "data": push.raw.decode()})
            shown = await worker.notifications(lambda n: any(x["tag"] == "warnhub-canary" for x in n), "the canary")
            [note] = [n for n in shown if n["tag"] == "warnhub-canary"]
            assert note["silent"] is True and note["title"] == "Kontrollmeldung / Canary"
            assert "keine Warnung" in note["body"] and "not a warning" in note["body"]
            after = await until(lambda: (c := _canary(proc, f"push:{sid}"))["received"] == 1 and c,
                                "the worker's receipt")
            assert after["state"] == "ok" and after["unanswered"] == 0 and after["last_delay_s"] is not None
            assert page_log.errors == [] and page_log.outside == [], (page_log.errors, page_log.outside)
        finally:
            await asyncio.to_thread(proc.close)
