"""The NINA source in a hub of several districts (issue 19): fetched once for the whole hub, a warning is ours if it
touches ANY district, and the dashboards read by default are every district's. Real parts: a local replay server with
the NINA samples of tests/data/nina (see its README), the hub's store and intake (tests/kits/sourcekit.py)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from tests.e2e.test_nina import CORONA, STORE, enc, ha, nina, poll, serve_detail
from tests.kits.districts import LD, UE, districts_toml
from tests.kits.sourcekit import HubKit, ReplayServer

UELZEN_ONLY = "mow.DE-NI-UE-SE001-20240102-1-000"


def uelzen_warning() -> dict[str, Any]:
    """DERIVED from the HA MoWaS detail (as tests.e2e.test_nina.local_warning): a MoWaS warning for Kreis Uelzen
    alone, no references."""
    obj = copy.deepcopy(ha()[CORONA])
    obj.update(identifier=UELZEN_ONLY, sender="DE-NI-UE-SE001", msgType="Alert", sent="2024-01-02T08:00:00+01:00")
    del obj["references"]
    for p in obj["info"][0]["parameter"]:
        if p["valueName"] == "warnVerwaltungsbereiche":
            p["value"] = UE
    return obj


def map_of(*ids: str) -> bytes:
    return enc([{"id": wid, "version": 1, "startDate": "2024-01-02T08:00:00+01:00", "severity": "Severe",
                 "type": "ALERT", "i18nTitle": {"de": wid}} for wid in ids])


async def stored_identifiers(tmp: Path, extra: str) -> tuple[list[str], list[str]]:
    """Poll the map list naming the Uelzen warning into a hub configured with ``extra``; the stored identifiers and
    the list URLs the source reads."""
    async with ReplayServer() as srv, HubKit(tmp, STORE + extra) as kit:
        srv.set("/api31/mowas/mapData.json", map_of(UELZEN_ONLY))
        serve_detail(srv, UELZEN_ONLY, uelzen_warning())
        src = nina(kit, srv)
        assert await poll(src, kit) == []
        urls = [u for u, _ in nina(kit, srv, dashboard_ars=None).list_urls()]
        return [t.current_identifier for t in kit.store.threads(include_ended=True)], urls


async def test_a_warning_for_any_district_is_ours(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    alone, alone_urls = await stored_identifiers(tmp_path / "one", "")
    assert alone == []  # a hub for Lüchow-Dannenberg alone: Uelzen's warning is not its business
    assert [u for u in alone_urls if "/dashboard/" in u] == [u for u in alone_urls if u.endswith(f"/{LD}.json")]

    both, urls = await stored_identifiers(tmp_path / "two", districts_toml())
    assert both == [UELZEN_ONLY.removeprefix("mow.")]  # NINA's prefix stripped
    dashboards = sorted(u.rsplit("/", 1)[-1] for u in urls if "/dashboard/" in u)
    assert dashboards == [f"{LD}.json", f"{UE}.json"]
