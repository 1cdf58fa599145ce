"""Issue 19 end to end, one daemon for Lüchow-Dannenberg and Uelzen (tests/kits/districts.py) and its console API
over HTTP: a flood warning drafted in Lüchow-Dannenberg over the border covers Lüchow-Dannenberg only when sent,
its part in Uelzen arrives as an offer in Uelzen's inbox, and only Uelzen's own people make it a warning and send
it, after Uelzen's approver approved it, with Uelzen's sender. The provider sees both districts' health and no
content; nobody else sees the provider's page.

Invariants protected: nothing goes out in a district's name without that district's approver; an authority sees
only its own inbox; a provider sees no content.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from hub.access import auth
from hub.cap.parse import parse
from hub.config.load import load as load_config
from hub.geo.geography import geography
from hub.store.db import Store
from tests.kits.consoleclient import ConsoleClient
from tests.kits.districts import HITZACKER, LD, LD_SENDER, SUHLENDORF, UE, UE_SENDER, write_two_districts
from tests.kits.hubproc import HubProcess, free_port, until

pytestmark = pytest.mark.asyncio(loop_scope="session")

PASSWORD = "Hochwasser-an-der-Jeetzel-2026"
USERS = {"ld-anna": (("author",), (LD,)), "ld-bert": (("approver",), (LD,)),
         "ue-uwe": (("author",), (UE,)), "ue-uta": (("approver",), (UE,)), "ue-vera": (("viewer",), (UE,)),
         "betrieb": (("provider",), ())}
HEADLINE = "Hochwasser an Jeetzel und Ilmenau"


@dataclass
class Kit:
    proc: HubProcess
    home: Path

    @property
    def base(self) -> str:
        return self.proc.base

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(f"file:{self.home / 'hub.db'}?mode=ro", uri=True) as conn:
            return list(conn.execute(sql, args))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def kit(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Kit]:
    home = tmp_path_factory.mktemp("districts-offers")
    (home / "inbox").mkdir()
    port = free_port()
    config = write_two_districts(home, port=port)
    districts = load_config(config).districts
    with Store(home / "hub.db") as store:
        for name, (roles, scopes) in USERS.items():
            auth.add_user(store, name, roles, scopes, PASSWORD, actor="test", registry=geography().registry,
                          districts=districts)
    proc = HubProcess(config, port, home / "hub.log")
    await asyncio.to_thread(proc.start)
    try:
        yield Kit(proc, home)
    finally:
        await asyncio.to_thread(proc.close)


class Client(ConsoleClient):
    """A console session with the test's password."""

    def __init__(self, base: str) -> None:
        super().__init__(base, PASSWORD)


async def signed_in(kit: Kit, *names: str) -> list[Client]:
    return [await Client(kit.base).login(n) for n in names]


def flood() -> dict[str, Any]:
    return {"status": "Actual", "channels": ["web"], "audience": "public",
            "area": {"ars": [HITZACKER, SUHLENDORF], "features": []},
            "content": {"event": "Hochwasser", "category": ["Met"], "severity": "Severe", "urgency": "Expected",
                        "certainty": "Likely", "response_types": ["Prepare"],
                        "expires": (datetime.now(UTC) + timedelta(hours=6)).isoformat(),
                        "texts": {"de-DE": {"headline": HEADLINE, "description": "Die Pegel steigen weiter.",
                                            "instruction": "Keller räumen, Sandsäcke bereitlegen."}}}}


async def offered(kit: Kit, anna: Client, bert: Client) -> tuple[int, str]:
    """Lüchow-Dannenberg drafts, submits and approves the flood warning; its id and the offer's key in Uelzen."""
    status, made = await anna.call("POST", "/console/api/warnings", flood())
    assert status == 201, made
    wid = made["warning"]["id"]
    status, preview = await anna.call("GET", f"/console/api/warnings/{wid}/preview")
    assert status == 200, preview
    assert [o["district"] for o in preview["offers"]] == ["uelzen"]
    assert preview["offers"][0]["text"]["de"].startswith(
        "Der Teil im Landkreis Uelzen wird dem Landkreis Uelzen zur eigenen Entscheidung angeboten")
    assert preview["offers"][0]["text"]["en"].startswith("The part in Landkreis Uelzen is offered to Landkreis Uelzen")
    assert (await anna.call("POST", f"/console/api/warnings/{wid}/submit", {}))[0] == 200
    status, sent = await bert.approve(wid)
    assert status == 200, sent
    thread = kit.rows("SELECT thread FROM console_warnings WHERE id=?", wid)[0][0]
    return wid, f"offer:{thread}:1:{UE}"


async def test_the_part_over_the_border_arrives_as_an_offer_in_the_neighbours_inbox_only(kit: Kit) -> None:
    anna, bert, uwe, vera = await signed_in(kit, "ld-anna", "ld-bert", "ue-uwe", "ue-vera")
    try:
        wid, key = await offered(kit, anna, bert)
        alert_id = kit.rows("SELECT alert_id FROM console_warnings WHERE id=?", wid)[0][0]
        cap = parse(kit.rows("SELECT raw FROM alerts WHERE id=?", alert_id)[0][0]).alert
        assert {g.value for i in cap.infos for a in i.areas for g in a.geocodes} == {HITZACKER}
        regions = await until(lambda: kit.rows("SELECT regions FROM publications WHERE source_alert=?", alert_id),
                              "Lüchow-Dannenberg's publication")
        assert json.loads(regions[0][0]) == [HITZACKER]  # Suhlendorf is not warned in Lüchow-Dannenberg's name

        status, theirs = await vera.call("GET", "/console/api/offers")
        assert status == 200 and [o["key"] for o in theirs["offers"]] == [key]
        assert theirs["offers"][0]["area"]["ars"] == [SUHLENDORF]
        assert theirs["offers"][0]["from"]["name"] == "Landkreis Lüchow-Dannenberg"
        status, ours = await anna.call("GET", "/console/api/offers")
        assert status == 200 and ours["offers"] == []
        status, refused = await anna.call("POST", f"/console/api/offers/{key}/warning", {})
        assert status == 403 and refused == {"error": "Kein Zugriff / forbidden"}
        assert (await anna.call("POST", "/console/api/offers/offer:nowhere:1:x/warning", {}))[0] == 404
        assert (await vera.call("POST", f"/console/api/offers/{key}/warning", {}))[0] == 403  # a viewer composes not
        assert kit.rows("SELECT state FROM drafts WHERE key=?", key) == [("pending",)]
        actions = kit.rows("SELECT district, action FROM audit WHERE action LIKE 'console.offer%'")
        assert sorted(actions) == [(LD, "console.offer"), (UE, "console.offer_received")]
    finally:
        for c in (anna, bert, uwe, vera):
            await c.close()


async def test_only_the_neighbours_approver_sends_it_with_the_neighbours_sender(kit: Kit) -> None:
    """Needs each district's console (its config, its inbox; branch d19-console) and each district's publication
    sender (d19-decide) beside the offers."""
    anna, bert, uwe, uta = await signed_in(kit, "ld-anna", "ld-bert", "ue-uwe", "ue-uta")
    try:
        ld_wid, key = await offered(kit, anna, bert)
        ld_alert = kit.rows("SELECT alert_id FROM console_warnings WHERE id=?", ld_wid)[0][0]
        assert parse(kit.rows("SELECT raw FROM alerts WHERE id=?", ld_alert)[0][0]).alert.sender == LD_SENDER
        status, inbox = await anna.call("GET", "/console/api/inbox")
        assert status == 200 and key not in json.dumps(inbox)  # Lüchow-Dannenberg sees not Uelzen's inbox
        status, inbox = await uwe.call("GET", "/console/api/inbox")
        assert status == 200 and key in json.dumps(inbox)
        status, made = await uwe.call("POST", f"/console/api/offers/{key}/warning", {})
        assert status == 201, made
        wid = made["warning"]["id"]
        assert (await uwe.call("POST", f"/console/api/warnings/{wid}/submit", {}))[0] == 200
        status, refused = await bert.approve(wid)  # Lüchow-Dannenberg's approver cannot send in Uelzen's name
        assert status == 403, refused
        assert kit.rows("SELECT state, alert_id FROM console_warnings WHERE id=?", wid) == [("submitted", None)]
        status, sent = await uta.approve(wid)
        assert status == 200, sent
        alert_id = kit.rows("SELECT alert_id FROM console_warnings WHERE id=?", wid)[0][0]
        cap = parse(kit.rows("SELECT raw FROM alerts WHERE id=?", alert_id)[0][0]).alert
        assert cap.sender == UE_SENDER
        assert {g.value for i in cap.infos for a in i.areas for g in a.geocodes} == {SUHLENDORF}
        published = await until(lambda: kit.rows(
            "SELECT sender, regions, district FROM publications WHERE source_alert=?", alert_id),
            "Uelzen's publication")
        assert published[0][0] == UE_SENDER and json.loads(published[0][1]) == [SUHLENDORF]
        assert published[0][2] == UE
    finally:
        for c in (anna, bert, uwe, uta):
            await c.close()


async def test_the_provider_sees_both_districts_health_and_no_content(kit: Kit) -> None:
    anna, bert, provider, vera = await signed_in(kit, "ld-anna", "ld-bert", "betrieb", "ue-vera")
    try:
        await offered(kit, anna, bert)  # content the provider must not see
        status, page = await provider.call("GET", "/provider/")
        assert status == 200, page
        for seen in ("Landkreis Lüchow-Dannenberg", "Landkreis Uelzen", "ld-anna", "ue-uwe", "cap-inbox"):
            assert seen in page
        assert HEADLINE not in page and "Hochwasser" not in page
        status, health = await provider.call("GET", "/provider/api/health")
        assert status == 200
        names = {d["slug"]: sorted(u["name"] for u in d["users"]) for d in health["districts"]}
        assert names == {"luechow-dannenberg": ["ld-anna", "ld-bert"], "uelzen": ["ue-uta", "ue-uwe", "ue-vera"]}
        assert HEADLINE not in json.dumps(health)
        for path in ("/console/api/inbox", "/console/api/warnings", "/console/api/offers", "/console/"):
            status, _ = await provider.call("GET", path)
            assert status == 403, path
        status, refused = await vera.call("GET", "/provider/")
        assert status == 403 and refused == {"error": "Kein Zugriff / forbidden"}
        assert (await anna.call("GET", "/provider/api/health"))[0] == 403
        async with aiohttp.ClientSession() as anon, anon.get(f"{kit.base}/provider/", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"].startswith("/console/login")
    finally:
        for c in (anna, bert, provider, vera):
            await c.close()
