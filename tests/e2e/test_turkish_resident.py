"""Issue 18's "done means", end to end: a Turkish-speaking resident of a Gemeinde subscribes to their village on the
Turkish subscribe page, sends themselves a test push and sees it arrive, and then gets the warnings for their
village and not those for another Gemeinde of the Kreis, in Turkish words (the DWD warning carries German only: the
event's name comes from its code, the text stays German and is marked as such).

Real parts: the daemon, Debian's Chromium with the page's own service worker, the local push receiver that verifies
VAPID and decrypts (the only fake is Chromium's push service, see tests/e2e/test_citizen_push.py).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from playwright.async_api import Page, expect

from hub.cap import event_names, labels
from hub.i18n.catalogs import translator
from tests.e2e.test_citizen_push import FAKE_SUBSCRIBE, STORED, WAIT_S, Worker, choose_place, controlled, start_hub
from tests.e2e.test_routing import dwd_cap
from tests.e2e.test_test_push import call
from tests.kits.browser import PageLog, open_page, screenshot
from tests.kits.hubproc import drop, until
from tests.kits.pushkit import PushReceiver

pytest_plugins = ("tests.kits.browser",)

HITZACKER = ("803354009", "Gemeinde Hitzacker (Elbe)")  # DWD warn cell: "8" + the Gemeinde's AGS
GORLEBEN = ("803354008", "Gemeinde Gorleben")
ARRIVED = "Die Test-Benachrichtigung ist angekommen. Warnungen erreichen dieses Gerät."


def gemeinde_cap(identifier: str, cell: tuple[str, str]) -> bytes:
    """The DWD warning of tests/e2e/test_routing.py for one Gemeinde's warn cell instead of the Kreis."""
    raw = dwd_cap(identifier).decode()
    raw = raw.replace("<areaDesc>Kreis Lüchow-Dannenberg</areaDesc>", f"<areaDesc>{cell[1]}</areaDesc>")
    return raw.replace("<value>103354000</value>", f"<value>{cell[0]}</value>").encode()


async def test_a_turkish_resident_subscribes_tests_and_gets_their_villages_warning_in_turkish(
        tmp_path: Path, page: Page, page_log: PageLog) -> None:
    tr_subscribe, tr_notify = translator("tr", "subscribe"), translator("tr", "notify")
    async with PushReceiver() as rx:
        sub = rx.subscribe()
        hub = await start_hub(tmp_path)
        try:
            base = hub.proc.base
            await page.context.add_init_script(FAKE_SUBSCRIBE % json.dumps(sub.as_json()))
            await page.context.grant_permissions(["notifications"], origin=base)
            worker = await Worker(page, base).start()
            await open_page(page, base, "/abonnieren?lang=tr")
            await expect(page.locator("html")).to_have_attribute("lang", "tr")
            await controlled(page)
            place = await choose_place(page, "Hitzacker")
            for box in await page.locator("input[name='language']").all():
                await box.set_checked(await box.get_attribute("value") == "tr")
            await page.locator("#subscribe-button").click()
            for _ in range(WAIT_S * 10):
                if await page.evaluate(STORED):
                    break
                await asyncio.sleep(0.1)
            [entry] = await page.evaluate(STORED)
            status, _, stored = await asyncio.to_thread(call, base, "GET", f"/api/v1/subscriptions/{entry['id']}",
                                                        entry["token"])
            assert status == 200 and stored["subscription"]["places"] == [place], stored
            assert stored["subscription"]["languages"] == ["tr"], stored

            # the test push, in Turkish, and the page says it arrived
            await page.locator("#test-button").click()
            [test] = await rx.wait_for(1, timeout=WAIT_S)
            assert test.body["test"] is True, test.body
            await worker.push(test.raw.decode())
            arrived = tr_subscribe.gettext(ARRIVED)
            assert arrived != ARRIVED
            await expect(page.locator("#test-status")).to_contain_text(arrived, timeout=WAIT_S * 1000)
            await screenshot(page, "subscribe-tr-test-push-arrived")

            # another village's warning first (published: a positive event), then the resident's own
            drop(hub.inbox, "gorleben.xml", gemeinde_cap("tr-gorleben", GORLEBEN), settled=True)
            await until(lambda: hub.proc.get_json("/api/v1/warnings?ars=033545406008")["warnings"], "Gorleben's")
            drop(hub.inbox, "hitzacker.xml", gemeinde_cap("tr-hitzacker", HITZACKER), settled=True)
            got = await rx.wait_for(2, timeout=WAIT_S)
            warnings = [r.body for r in got if not r.body.get("test")]
            assert len(warnings) == 1, warnings  # the village's warning only, not Gorleben's
            [doc] = warnings
            assert "Hitzacker" in doc["area"], doc
            assert doc["uiLang"] == "tr" and doc["word"] == labels.severity_word("Severe", "tr") != "Gefahr"
            assert doc["labels"]["untranslated"] == tr_notify.gettext("Diese Warnung gibt es nicht in Ihrer Sprache.")
            named = event_names.event_name("52", "tr")
            assert named is not None and doc["eventName"] == named[0]  # Sturmböen, from the DWD code
            assert doc["url"].endswith("?lang=tr") and doc["lang"] == "de-DE" and doc["translated"] is False
            await worker.push(json.dumps(doc))
            shown = await worker.notifications(lambda n: any(x["tag"] == doc["thread"] for x in n), "the warning")
            [note] = [n for n in shown if n["tag"] == doc["thread"]]
            assert note["title"] == f"{doc['word']}: {named[0]}", note
            assert page_log.errors == [], page_log.errors
        finally:
            await asyncio.to_thread(hub.proc.close)
