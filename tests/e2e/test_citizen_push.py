"""Subscribing without an account by Web Push, the service worker's notifications, and the offline copy, in Debian's
Chromium against the real daemon (``warnhub run`` as a subprocess).

Fakes only at the seam to the world outside this machine: Chromium's push service is Google's, so the test replaces
``PushManager.prototype.subscribe`` (and ``getSubscription``, which answers what it made) with one answering the
subscription of the local push receiver (tests/kits/pushkit.py), which verifies VAPID and really decrypts what the hub
sends. The decrypted payload is then handed to the page's own service worker through the DevTools protocol
(``ServiceWorker.deliverPushMessage``), exactly as Chromium would after receiving it.

Invariants: a subscription made on /abonnieren is stored at the hub with the place chosen, id and token stay in the
browser, subscribing again changes it (same id and token); without the permission to notify nothing is subscribed and
the page says why; a warning for that place arrives as a push and is shown with its severity in words, one
notification per warning (a newer version replaces it, a late older one never does); a warning whose expiry has passed
is never shown as current, neither as a notification nor from the offline copy; the offline copy says how old it is;
deleting the subscription on the page deletes it at the hub; no request leaves the machine, no script error.
Screenshots go to tests/screenshots/citizen-push-*.png.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from playwright.async_api import Page, expect

from hub.publish import notify
from tests.e2e.test_routing import Hub, dwd_cap
from tests.kits.browser import PageLog, open_page, screenshot
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
WAIT_S = 30
HEADLINE = "Amtliche UNWETTERWARNUNG vor STURMBÖEN"
GLAZE = "Amtliche WARNUNG vor GLÄTTE"
SHORT_S = 20
DISTRICT = "033540000000"
"""The offline test's short warning expires this long after it is sent: long enough to be shown online first."""

FAKE_SUBSCRIBE = """
(() => {
  const sub = %s;
  const bytes = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')
    + '='.repeat((4 - s.length %% 4) %% 4)), (c) => c.charCodeAt(0));
  const b64url = (u8) => btoa(String.fromCharCode(...u8)).replace(/\\+/g, '-').replace(/\\//g, '_')
    .replace(/=+$/, '');
  window.__subscribeCalls = [];
  let current = null;  // the browser keeps one subscription per registration until it is unsubscribed
  PushManager.prototype.subscribe = async function (options) {
    const key = new Uint8Array(options.applicationServerKey);
    window.__subscribeCalls.push({ userVisibleOnly: options.userVisibleOnly, applicationServerKey: b64url(key) });
    current = {
      endpoint: sub.endpoint,
      expirationTime: null,
      options: { userVisibleOnly: true, applicationServerKey: key.buffer },
      getKey: (name) => bytes(sub.keys[name]).buffer,
      toJSON: () => ({ endpoint: sub.endpoint, expirationTime: null, keys: sub.keys }),
      unsubscribe: async () => { current = null; return true; },
    };
    return current;
  };
  PushManager.prototype.getSubscription = async function () { return current; };
  window.__pushes = [];  // what the service worker reports having shown
  navigator.serviceWorker.addEventListener('message', (e) => {
    if (e.data && e.data.type === 'warnhub:push') window.__pushes.push(e.data.payload);
  });
})();
"""

NOTIFICATIONS = """async () => {
  const reg = await navigator.serviceWorker.ready;
  return (await reg.getNotifications()).map((n) => ({
    title: n.title, body: n.body, tag: n.tag, data: n.data, renotify: n.renotify,
    requireInteraction: n.requireInteraction, silent: n.silent }));
}"""

FETCH_WARNINGS = f"""async () => {{
  const r = await fetch('/api/v1/warnings?ars={DISTRICT}');
  return {{ at: r.headers.get('X-Warnhub-Cached-At'), body: await r.json() }};
}}"""

BERLIN = ZoneInfo("Europe/Berlin")
STORED = "() => JSON.parse(localStorage.getItem('warnhub.subscriptions') || '[]')"


def api_status(base: str, method: str, path: str, token: str) -> tuple[int, Any]:
    req = urllib.request.Request(base + path, method=method, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
            return resp.status, json.loads(body) if body else None
    except urllib.error.HTTPError as err:
        return err.code, None


def headers_of(url: str) -> dict[str, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return dict(resp.headers)


async def start_hub(tmp_path: Path) -> Hub:
    hub = Hub(tmp_path, extra=PUSH)
    await asyncio.to_thread(hub.proc.start)
    return hub


async def controlled(page: Page) -> None:
    """Wait until the service worker controls the page (offline.js registered it; it claims open pages)."""
    for _ in range(WAIT_S * 10):  # polled from here: wait_for_function evaluates a string, which the CSP forbids
        if await page.evaluate("() => navigator.serviceWorker.controller !== null"):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no service worker controls {page.url}")


class Worker:
    """The page's service worker seen through the DevTools protocol."""

    def __init__(self, page: Page, base: str) -> None:
        self.page, self.base = page, base
        self.registrations: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, dict[str, Any]] = {}
        self.errors: list[dict[str, Any]] = []

    async def start(self) -> Worker:
        self.cdp = await self.page.context.new_cdp_session(self.page)
        self.cdp.on("ServiceWorker.workerRegistrationUpdated",
                    lambda ev: self.registrations.update({r["registrationId"]: r for r in ev["registrations"]}))
        self.cdp.on("ServiceWorker.workerVersionUpdated",
                    lambda ev: self.versions.update({v["versionId"]: v for v in ev["versions"]}))
        self.cdp.on("ServiceWorker.workerErrorReported", lambda ev: self.errors.append(ev["errorMessage"]))
        await self.cdp.send("ServiceWorker.enable")
        return self

    async def registration_id(self) -> str:
        for _ in range(100):
            live = [r for r in self.registrations.values()
                    if not r["isDeleted"] and r["scopeURL"] == self.base + "/"]
            if live:
                return str(live[0]["registrationId"])
            await asyncio.sleep(0.1)
        raise AssertionError(f"no service worker registration for {self.base}/: {self.registrations}")

    async def push(self, payload: str) -> None:
        """What Chromium does when its push service delivers a message: the worker's ``push`` event. Returns when
        the worker has shown it (its message to the page): a ``getNotifications()`` while a notification is still
        being put on screen makes Chromium forget that notification."""
        before = await self.page.evaluate("window.__pushes.length")
        await self.cdp.send("ServiceWorker.deliverPushMessage",
                            {"origin": self.base, "registrationId": await self.registration_id(), "data": payload})
        for _ in range(WAIT_S * 10):
            if await self.page.evaluate("window.__pushes.length") > before:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"the worker never reported showing {payload[:80]}; errors: {self.errors}")

    async def notifications(self, where: Any, what: str) -> list[dict[str, Any]]:
        for _ in range(100):
            shown = await self.page.evaluate(NOTIFICATIONS)
            if where(shown):
                return shown  # type: ignore[no-any-return]
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; shown: {shown}; worker errors: {self.errors}; "
                             f"registrations: {self.registrations}; versions: {self.versions}")


async def choose_place(page: Page, name: str) -> dict[str, Any]:
    """Search a Gemeinde by name on /abonnieren and add it; answers the place as push.js will send it."""
    await page.locator("#place-search").fill(name)
    add = page.locator("#place-results button.add-place").first
    await add.wait_for()
    ars = await add.get_attribute("data-ars")
    await add.click()
    item = page.locator(f"#places li[data-place='{json.dumps({'ars': ars}, separators=(',', ':'))}']")
    await expect(item).to_have_count(1)
    return {"ars": ars}


async def test_subscribe_push_notification_and_delete(tmp_path: Path, page: Page, page_log: PageLog) -> None:
    async with PushReceiver() as rx:
        sub = rx.subscribe()
        hub = await start_hub(tmp_path)
        try:
            await subscribe_push_delete(hub, rx, sub, page, page_log)
        finally:
            await asyncio.to_thread(hub.proc.close)


async def subscribe_push_delete(hub: Hub, rx: PushReceiver, sub: TestSubscription, page: Page,
                                page_log: PageLog) -> None:
    base = hub.proc.base
    headers = await asyncio.to_thread(headers_of, base + "/sw.js")  # served at the root, for the whole site
    assert headers["Content-Type"].startswith("text/javascript")
    assert headers["Service-Worker-Allowed"] == "/" and headers["Cache-Control"] == "no-cache"
    await page.context.add_init_script(FAKE_SUBSCRIBE % json.dumps(sub.as_json()))
    await page.context.grant_permissions(["notifications"], origin=base)  # the person answers "Zulassen"
    worker = await Worker(page, base).start()

    await open_page(page, base, "/abonnieren")
    await controlled(page)
    await expect(page.locator("#subscription-list")).to_contain_text("kein Abo")
    place = await choose_place(page, "Dannenberg")
    await page.locator("input[name='topic'][value='unwetter']").check()
    await page.locator("select[name='min_severity']").select_option("Severe")
    status = page.locator("#push-status")
    await page.locator("#subscribe-button").click()
    await expect(status).to_contain_text("Abonniert", timeout=WAIT_S * 1000)

    # what the page asked of the push service, and what it kept: id, token, endpoint and the choice, nothing else
    key = await asyncio.to_thread(hub.proc.get_json, "/api/v1/push/key")
    assert await page.evaluate("window.__subscribeCalls") == [
        {"userVisibleOnly": True, "applicationServerKey": key["publicKey"]}]
    [entry] = await page.evaluate(STORED)
    assert entry["endpoint"] == sub.endpoint and entry["places"] == [place]
    assert set(entry) == {"id", "token", "endpoint", "places", "labels", "topics", "min_severity", "languages",
                          "saved"}
    code, stored = await asyncio.to_thread(api_status, base, "GET", f"/api/v1/subscriptions/{entry['id']}",
                                           entry["token"])
    assert code == 200, code
    assert stored["subscription"] == {
        "subscription": sub.as_json(), "places": [place], "topics": ["unwetter"], "min_severity": "Severe",
        "languages": ["de"], "exercise": False, "sources": [], "quiet_hours": None}
    listed = page.locator(f"#subscription-list li[data-subscription='{entry['id']}']")
    await expect(listed).to_contain_text("Dannenberg")
    await expect(listed).to_contain_text("Gefahr")

    # subscribing again from this browser changes the subscription (PUT with the token), it does not add one
    await page.locator("select[name='min_severity']").select_option("Moderate")
    await page.locator("#subscribe-button").click()
    await expect(status).to_contain_text("Abo geändert")
    [again] = await page.evaluate(STORED)
    assert (again["id"], again["token"], again["min_severity"]) == (entry["id"], entry["token"], "Moderate")
    code, stored = await asyncio.to_thread(api_status, base, "GET", f"/api/v1/subscriptions/{entry['id']}",
                                           entry["token"])
    assert code == 200 and stored["subscription"]["min_severity"] == "Moderate", (code, stored)
    await expect(listed).to_contain_text("Warnung")
    await screenshot(page, "citizen-push-subscribed")

    # a DWD storm warning for the district: the hub pushes it to the receiver, encrypted for this subscription
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    drop(hub.inbox, "storm.xml", dwd_cap("storm-1", sent=sent, expires=sent + timedelta(hours=6)), settled=True)
    [push] = await rx.wait_for(1, timeout=WAIT_S)
    assert rx.errors == [], rx.errors
    assert push.sub_id == sub.id
    assert push.body["headline"] == HEADLINE and push.body["severity"] == "Severe", push.body
    thread = push.body["thread"]

    # ... and the browser's service worker shows it: severity in words, one notification per warning
    await worker.push(push.raw.decode())
    [shown] = await worker.notifications(lambda n: len(n) == 1, "the storm notification")
    assert shown["title"] == f"Gefahr: {HEADLINE}"
    assert shown["body"].startswith(push.body["body"]) and "Lüchow-Dannenberg" in shown["body"]
    assert shown["tag"] == thread and shown["renotify"] is True and shown["requireInteraction"] is False
    assert shown["data"]["url"] == f"/warnungen/{thread}" and shown["data"]["version"] == push.body["version"]

    assert push.body["word"] == "Gefahr"  # the hub's word for the level (hub/cap/labels), in the payload's language
    newer = {**push.body, "version": push.body["version"] + 1, "msgType": "Update", "severity": "Extreme",
             "word": "Extreme Gefahr"}  # as the hub sends an Extreme update
    await worker.push(json.dumps(newer))
    [shown] = await worker.notifications(lambda n: len(n) == 1 and n[0]["title"].startswith("Extreme"),
                                         "the update replacing the first notification")
    assert shown["title"] == f"Extreme Gefahr: {HEADLINE}" and shown["tag"] == thread
    assert shown["requireInteraction"] is True and shown["body"].startswith("Aktualisiert")
    # the older version arriving late does not replace the newer one: push() returns on the worker's report of
    # having handled this very push (one at a time, in order), so what is on screen now is its final word
    await worker.push(push.raw.decode())
    [shown] = await worker.notifications(lambda n: len(n) == 1, "still one notification")
    assert shown["title"] == f"Extreme Gefahr: {HEADLINE}", shown

    late = {**push.body, "thread": "late-1", "expires": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()}
    await worker.push(json.dumps(late))
    every = await worker.notifications(lambda n: any(x["tag"] == "late-1" for x in n), "the expired warning")
    [ended] = [n for n in every if n["tag"] == "late-1"]
    assert ended["title"] == f"Abgelaufen: {HEADLINE}" and "nicht mehr gültig" in ended["body"]
    assert ended["renotify"] is False and ended["requireInteraction"] is False and ended["data"]["ended"] is True
    # the words come from the payload (hub/publish/notify.py): a Turkish subscription's push reads Turkish
    turkish = {**late, "thread": "late-tr", "uiLang": "tr", "labels": notify.push_labels("tr", translated=False)}
    await worker.push(json.dumps(turkish))
    every = await worker.notifications(lambda n: any(x["tag"] == "late-tr" for x in n), "the Turkish expired one")
    [ended] = [n for n in every if n["tag"] == "late-tr"]
    words = turkish["labels"]
    assert ended["title"] == f"{words['expired']}: {HEADLINE}" and words["expired"] == "Süresi doldu"
    assert words["expiredSince"].split("%(time)s")[0] in ended["body"] and "Uhr" not in ended["body"]
    assert ended["body"].endswith(words["untranslated"])  # the German text, said to be not in Turkish

    cancel = {**push.body, "version": push.body["version"] + 2, "msgType": "Cancel"}
    await worker.push(json.dumps(cancel))
    every = await worker.notifications(
        lambda n: any(x["tag"] == thread and x["title"].startswith("Aufgehoben") for x in n), "the cancellation")
    assert [x["title"] for x in every if x["tag"] == thread] == [f"Aufgehoben: {HEADLINE}"]

    # delete it on the page: gone at the hub, gone from the browser
    await listed.get_by_role("button", name=re.compile("Abo löschen")).click()
    await expect(status).to_contain_text("Abo gelöscht")
    code, _ = await asyncio.to_thread(api_status, base, "GET", f"/api/v1/subscriptions/{entry['id']}",
                                      entry["token"])
    assert code == 404
    assert await page.evaluate(STORED) == []
    await expect(page.locator("#subscription-list")).to_contain_text("kein Abo")

    # without the permission to notify (headless Chromium answers the browser's question with "no"): said plainly,
    # nothing subscribed
    await page.context.clear_permissions()
    await page.locator("#subscribe-button").click()
    await expect(status).to_contain_text(re.compile("Erlaubnis|blockiert"))
    assert len(await page.evaluate("window.__subscribeCalls")) == 1 and await page.evaluate(STORED) == []
    assert await page.evaluate("navigator.serviceWorker.ready.then((r) => r.pushManager.getSubscription())") is None
    await screenshot(page, "citizen-push-deleted")
    assert page_log.outside == [] and page_log.errors == [], (page_log.outside, page_log.errors)


async def test_offline_copy_with_its_age_and_without_expired_warnings(tmp_path: Path, page: Page,
                                                                      page_log: PageLog) -> None:
    hub = await start_hub(tmp_path)
    try:
        await offline_copy(hub, page, page_log)
    finally:
        await asyncio.to_thread(hub.proc.close)


def offline_dates(fetched: tuple[datetime, ...], now: datetime) -> tuple[str, str]:
    """What offline.js writes before the clock of "Stand" (regex alternatives, German and English) for a copy
    fetched at one of ``fetched``, read at ``now``: nothing on the same day in Berlin, else the day it was fetched."""
    today = now.astimezone(BERLIN).date()
    days = {at.astimezone(BERLIN).date() for at in fetched}
    de = {"" if day == today else re.escape(f"{day:%d.%m.%Y}, ") for day in days}
    en = {"" if day == today else rf"{day.day} \w{{3,4}} {day.year}, " for day in days}
    return "|".join(sorted(de)), "|".join(sorted(en))


def glaze_cap(identifier: str, sent: datetime, expires: datetime) -> bytes:
    """A DWD Moderate warning (web only) with its own headline, beside the storm."""
    cap = dwd_cap(identifier, severity="Moderate", sent=sent, expires=expires).decode()
    return cap.replace(HEADLINE, GLAZE).replace("STURMBÖEN</event>", "GLÄTTE</event>").encode()


async def offline_copy(hub: Hub, page: Page, page_log: PageLog) -> None:
    base = hub.proc.base
    now = datetime.now(UTC).replace(microsecond=0)
    drop(hub.inbox, "glaze.xml", glaze_cap("glaze-1", now, now + timedelta(seconds=SHORT_S)), settled=True)
    drop(hub.inbox, "storm.xml", dwd_cap("storm-1", sent=now, expires=now + timedelta(hours=6)), settled=True)

    def both() -> list[dict[str, Any]] | None:
        found = hub.proc.get_json("/api/v1/warnings")["warnings"]
        return found if len(found) == 2 else None

    for _ in range(WAIT_S * 10):
        listed = await asyncio.to_thread(both)
        if listed:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the two warnings never reached /api/v1/warnings")
    glaze_thread = next(w["thread"] for w in listed if w["severity"] == "Moderate")
    glaze_expires = datetime.fromisoformat(next(w["expires"] for w in listed if w["severity"] == "Moderate"))

    # online: the start page (installs the worker), then once more through it, and the glaze warning's own page
    online_at = datetime.now(UTC)
    await open_page(page, base, "/")
    await controlled(page)
    await open_page(page, base, "/")
    items = page.locator("#warning-list li[data-expires]")
    glaze = items.filter(has_text=GLAZE)
    storm = items.filter(has_text=HEADLINE)
    await expect(glaze).to_be_visible()
    await expect(storm).to_be_visible()
    await expect(page.locator("#offline-status")).to_have_text("")
    await open_page(page, base, f"/warnungen/{glaze_thread}")
    await expect(page.locator("article[data-expires]")).to_contain_text(GLAZE)
    await open_page(page, base, "/")
    online = await page.evaluate(FETCH_WARNINGS)
    assert online["at"] is None and len(online["body"]["warnings"]) == 2, online  # live, both
    assert datetime.now(UTC) < glaze_expires, "too slow: the short warning expired before it was seen online"

    # offline, after the short warning expired: the last state with its age, the expired warning not as current
    await page.context.set_offline(True)
    await asyncio.sleep(max(0.0, (glaze_expires - datetime.now(UTC)).total_seconds()) + 1)
    await page.reload()
    offline = page.locator("#offline-status")
    de, _ = offline_dates((online_at, datetime.now(UTC)), datetime.now(UTC))  # fetched online, before now
    await expect(offline).to_contain_text(re.compile(rf"Offline – Stand: ({de})\d\d:\d\d Uhr \(vor .*\)"))
    await expect(storm).to_be_visible()
    await expect(glaze).to_be_hidden()
    await expect(glaze).to_have_class(re.compile(r"\bexpired\b"))
    await expect(glaze).to_contain_text("abgelaufen")
    # nor on the map, nor in the count above the list
    await expect(page.locator("#map")).to_have_attribute("data-warnings", "1")
    await expect(page.locator("#warnings .summary")).to_contain_text("1 Warnung,")
    cached = await page.evaluate(FETCH_WARNINGS)
    assert cached["at"], "the offline answer does not say when it was fetched"
    assert [w["severity"] for w in cached["body"]["warnings"]] == ["Severe"], cached["body"]
    await screenshot(page, "citizen-push-offline-start")

    # twelve minutes later (the page's clock): the age says so, with the date when those minutes crossed midnight
    later = datetime.now(UTC) + timedelta(minutes=12)
    await page.clock.set_system_time(later)
    await page.reload()
    de, en = offline_dates((online_at, datetime.fromisoformat(cached["at"])), later)
    await expect(offline).to_contain_text(re.compile(rf"Offline – Stand: ({de})\d\d:\d\d Uhr \(vor 1[12] Minuten\)"))
    await expect(offline).to_contain_text(re.compile(rf"Offline – as of ({en})\d\d:\d\d \(1[12] minutes ago\)"))

    # the expired warning's own page, visited online, is there offline and says that it has ended
    await page.goto(f"{base}/warnungen/{glaze_thread}")
    article = page.locator("article[data-expires]")
    await expect(article).to_have_class(re.compile(r"\bexpired\b"))
    await expect(page.locator(".expired-note")).to_contain_text("Diese Warnung ist seit")
    await expect(offline).to_contain_text("Offline – Stand:")
    await screenshot(page, "citizen-push-offline-warning")
    assert page_log.outside == [], page_log.outside
    unexpected = [e for e in page_log.errors if "ERR_INTERNET_DISCONNECTED" not in e
                  and "/api/v1/stream" not in e]
    assert unexpected == [], page_log.errors
