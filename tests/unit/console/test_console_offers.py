"""A warning over the border (issue 19, hub.console.offers) against a real store (both backends), the real
geography and the two districts of tests/kits/districts.py: what Lüchow-Dannenberg sends covers its own part only,
the part in Uelzen becomes an offer in Uelzen's inbox, and only Uelzen's own people make and send a warning of it,
with Uelzen's sender.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import shapely
from shapely.geometry import box, shape

from hub.cap.parse import parse
from hub.config.districts import Districts
from hub.config.load import load as load_config
from hub.console import drafts, offers, release, tables, targeting
from hub.console.model import ConsoleConfig, ConsoleError, ConsoleForbidden
from hub.console.release import Sent
from hub.decide import decisions
from hub.geo.geography import Geography, geography
from hub.geo.projection import GERMANY
from hub.store.db import Store
from tests.kits.districts import HITZACKER, LD, LD_SENDER, SUHLENDORF, UE, UE_SENDER, write_two_districts
from tests.unit.console.test_console import User

BORDER_BOX = (10.82, 52.95, 10.92, 53.0)
"""lon/lat: about 60 % in Lüchow-Dannenberg (Clenze), 40 % in Uelzen (Samtgemeinde Rosche)."""

ANNA = User(1, "anna", frozenset({"author"}), (LD,))
BERT = User(2, "bert", frozenset({"author", "approver"}), (LD,))
UWE = User(11, "uwe", frozenset({"author"}), (UE,))
UTA = User(12, "uta", frozenset({"author", "approver"}), (UE,))


@pytest.fixture(scope="module")
def geo() -> Geography:
    return geography()


@pytest.fixture(scope="module")
def districts(tmp_path_factory: pytest.TempPathFactory) -> Districts:
    return load_config(write_two_districts(tmp_path_factory.mktemp("two"), port=1)).districts


@pytest.fixture
def ld(geo: Geography, districts: Districts) -> ConsoleConfig:
    return ConsoleConfig(geo=geo, district=LD, sender=LD_SENDER, sender_name="Landkreis Lüchow-Dannenberg",
                         districts=districts)


@pytest.fixture
def ue(geo: Geography, districts: Districts) -> ConsoleConfig:
    return ConsoleConfig(geo=geo, district=UE, sender=UE_SENDER, sender_name="Landkreis Uelzen", districts=districts)


@pytest.fixture
def store(store_url: str) -> Any:
    s = Store(store_url)
    yield s
    s.close()


def flood(*, ars: tuple[str, ...] = (HITZACKER, SUHLENDORF), ring: bool = False) -> dict[str, Any]:
    features = [{"type": "Feature", "properties": {},
                 "geometry": json.loads(json.dumps(shapely.geometry.mapping(box(*BORDER_BOX))))}] if ring else []
    return {"status": "Actual", "channels": ["push", "web"], "audience": "public",
            "area": {"ars": list(ars), "features": features, "desc": None},
            "content": {"event": "Hochwasser", "category": ["Met"], "severity": "Severe", "urgency": "Expected",
                        "certainty": "Likely", "response_types": ["Prepare"],
                        "expires": (datetime.now(UTC) + timedelta(hours=6)).isoformat(),
                        "texts": {"de-DE": {"headline": "Hochwasser an Jeetzel und Elbe",
                                            "description": "Die Pegel steigen weiter.",
                                            "instruction": "Keller räumen."}}}}


def approved(store: Store, cfg: ConsoleConfig, wid: int, author: User, approver: User) -> Sent:
    drafts.submit(store, author, wid, cfg=cfg)
    token = targeting.preview_for(store, cfg, None, wid)["token"]
    return release.approve(store, approver, wid, token=token, cfg=cfg)


def cap_of(store: Store, alert_id: int) -> Any:
    return parse(bytes(store.conn.execute("SELECT raw FROM alerts WHERE id=?", (alert_id,)).fetchone()[0])).alert


def geocodes(alert: Any) -> set[str]:
    return {g.value for i in alert.infos for a in i.areas for g in a.geocodes}


def actions(store: Store, district: str) -> list[str]:
    return [e["action"] for e in store.audit_entries(district)]


def test_the_part_over_the_border_is_offered_and_only_the_neighbours_approver_sends_it(
        store: Store, ld: ConsoleConfig, ue: ConsoleConfig) -> None:
    w = drafts.create_draft(store, ANNA, flood(), cfg=ld)  # Suhlendorf is Uelzen's: offered, so not out of scope
    view = targeting.preview_for(store, ld, None, w["id"])
    assert [(o["district"], o["regions"]) for o in view["offers"]] == [("uelzen", [SUHLENDORF])]
    assert "Der Teil im Landkreis Uelzen wird dem Landkreis Uelzen zur eigenen Entscheidung angeboten" in \
        " ".join(view["notes"])
    assert view["overspill"]["regions"] == [HITZACKER]

    sent = approved(store, ld, w["id"], ANNA, BERT)
    ours = cap_of(store, sent.alert_id)
    assert ours.sender == LD_SENDER and geocodes(ours) == {HITZACKER}  # Lüchow-Dannenberg's part only
    decided = decisions.decision_of(store, sent.alert_id)
    assert decided is not None and SUHLENDORF not in decided.regions
    [offer] = offers.pending(store, UE)
    assert offers.pending(store, LD) == []
    assert offer["key"] == offers.key_of(w["thread"], 1, UE)
    assert offer["draft"]["area"]["ars"] == [SUHLENDORF] and offer["draft"]["event"] == "Hochwasser"
    assert offer["draft"]["offer"]["from"] == {"district": LD, "name": "Landkreis Lüchow-Dannenberg",
                                               "slug": "luechow-dannenberg"}
    assert "console.offer" in actions(store, LD) and "console.offer_received" not in actions(store, LD)
    assert "console.offer_received" in actions(store, UE) and "console.offer" not in actions(store, UE)

    with pytest.raises(ConsoleForbidden):  # not Lüchow-Dannenberg's to take
        drafts.from_offer(store, ANNA, offer["key"], cfg=ld)
    theirs = drafts.from_offer(store, UWE, offer["key"], cfg=ue)
    assert theirs["area"]["ars"] == [SUHLENDORF] and theirs["author"] == "uwe" and theirs["state"] == "draft"
    assert offers.pending(store, UE) == []
    with pytest.raises(ConsoleError):
        drafts.from_offer(store, UWE, offer["key"], cfg=ue)  # taken already
    drafts.submit(store, UWE, theirs["id"], cfg=ue)
    token = targeting.preview_for(store, ue, None, theirs["id"])["token"]
    with pytest.raises(ConsoleForbidden):  # Lüchow-Dannenberg's approver cannot send in Uelzen's name
        release.approve(store, BERT, theirs["id"], token=token, cfg=ld)
    assert tables.get(store, theirs["id"])["state"] == "submitted"  # type: ignore[index]
    done = release.approve(store, UTA, theirs["id"], token=token, cfg=ue)
    cap = cap_of(store, done.alert_id)
    assert cap.sender == UE_SENDER and geocodes(cap) == {SUHLENDORF}
    assert "console.from_offer" in actions(store, UE)
    assert store.verify_audit(LD).ok and store.verify_audit(UE).ok and store.verify_audit().ok


def test_a_drawn_area_over_the_border_is_clipped_and_its_other_part_offered(
        store: Store, ld: ConsoleConfig, geo: Geography) -> None:
    w = drafts.create_draft(store, ANNA, flood(ars=(), ring=True), cfg=ld)
    sent = approved(store, ld, w["id"], ANNA, BERT)
    polys = [shapely.Polygon([(lon, lat) for lat, lon in p]) for i in cap_of(store, sent.alert_id).infos[:1]
             for a in i.areas for p in a.polygons]
    ours = GERMANY.project(shapely.union_all(polys))
    whole = GERMANY.project(box(*BORDER_BOX))
    assert ours.intersection(geo.geometry(UE)).area < 0.01 * whole.area  # nothing of Uelzen in LD's warning
    assert ours.area == pytest.approx(whole.intersection(geo.geometry(LD)).area, rel=0.02)
    [offer] = offers.pending(store, UE)
    theirs = GERMANY.project(shape(offer["draft"]["area"]["features"][0]["geometry"]))
    assert theirs.area == pytest.approx(whole.intersection(geo.geometry(UE)).area, rel=0.02)


def test_an_area_wholly_in_the_other_district_is_refused(store: Store, ld: ConsoleConfig) -> None:
    with pytest.raises(ConsoleForbidden):
        drafts.create_draft(store, ANNA, flood(ars=(SUHLENDORF,)), cfg=ld)
    assert store.conn.execute("SELECT count(*) FROM console_warnings").fetchone()[0] == 0


def test_a_cancel_of_the_offering_warning_is_offered_and_cancels_the_neighbours_own(
        store: Store, ld: ConsoleConfig, ue: ConsoleConfig) -> None:
    w = drafts.create_draft(store, ANNA, flood(), cfg=ld)
    approved(store, ld, w["id"], ANNA, BERT)
    [first] = offers.pending(store, UE)
    theirs = drafts.from_offer(store, UWE, first["key"], cfg=ue)
    approved(store, ue, theirs["id"], UWE, UTA)

    cancel = drafts.follow_up(store, BERT, w["id"], "cancel", cfg=ld)
    token = targeting.preview_for(store, ld, None, cancel["id"])["token"]
    release.send(store, BERT, cancel["id"], token=token, cfg=ld, reason="Die Pegel fallen, Gefahr vorbei.")
    [second] = offers.pending(store, UE)
    assert second["draft"]["offer"]["msg_type"] == "Cancel" and second["draft"]["offer"]["earlier"] == [first["key"]]
    follow = drafts.from_offer(store, UWE, second["key"], cfg=ue)  # Uelzen's own warning, cancelled by Uelzen
    assert follow["thread"] == theirs["thread"] and follow["msg_type"] == "Cancel" and follow["version"] == 2
    token = targeting.preview_for(store, ue, None, follow["id"])["token"]
    with pytest.raises(ConsoleForbidden):
        release.send(store, BERT, follow["id"], token=token, cfg=ld, reason="Die Pegel fallen, Gefahr vorbei.")
    done = release.send(store, UTA, follow["id"], token=token, cfg=ue, reason="Die Pegel fallen, Gefahr vorbei.")
    assert cap_of(store, done.alert_id).sender == UE_SENDER


def test_one_district_offers_nothing(store: Store, geo: Geography, tmp_path: Path) -> None:
    one = ConsoleConfig(geo=geo, district=LD, sender=LD_SENDER)
    area = flood(ring=True)["area"]
    assert offers.split(one, area) == (area, ())


def test_an_update_is_offered_and_updates_the_neighbours_own_warning(
        store: Store, ld: ConsoleConfig, ue: ConsoleConfig) -> None:
    w = drafts.create_draft(store, ANNA, flood(), cfg=ld)
    approved(store, ld, w["id"], ANNA, BERT)
    [first] = offers.pending(store, UE)
    theirs = drafts.from_offer(store, UWE, first["key"], cfg=ue)
    approved(store, ue, theirs["id"], UWE, UTA)

    texts = {"de-DE": {"headline": "Hochwasser: Deich bei Suhlendorf gefährdet", "description": "Die Pegel steigen.",
                       "instruction": "Gebiet verlassen."}}
    update = drafts.follow_up(store, ANNA, w["id"], "update", cfg=ld, form={"content": {"texts": texts}})
    approved(store, ld, update["id"], ANNA, BERT)
    [second] = offers.pending(store, UE)
    assert second["key"] == offers.key_of(w["thread"], 2, UE) and second["draft"]["offer"]["msg_type"] == "Update"
    follow = drafts.from_offer(store, UWE, second["key"], cfg=ue)
    assert (follow["thread"], follow["msg_type"], follow["version"]) == (theirs["thread"], "Update", 2)
    assert follow["content"]["texts"]["de-DE"]["headline"] == "Hochwasser: Deich bei Suhlendorf gefährdet"
    assert follow["area"]["ars"] == [SUHLENDORF] and follow["state"] == "draft"  # Uelzen's four eyes again


def test_declining_an_offer_takes_it_out_of_the_inbox_only_in_its_district(
        store: Store, ld: ConsoleConfig, ue: ConsoleConfig) -> None:
    w = drafts.create_draft(store, ANNA, flood(), cfg=ld)
    approved(store, ld, w["id"], ANNA, BERT)
    [offer] = offers.pending(store, UE)
    with pytest.raises(ConsoleForbidden):
        drafts.decline_offer(store, ANNA, offer["key"], "nicht unseres", cfg=ld)
    assert len(offers.pending(store, UE)) == 1
    drafts.decline_offer(store, UWE, offer["key"], "Eigene Warnung läuft schon", cfg=ue)
    assert offers.pending(store, UE) == [] and offers.load(store, offer["key"])["state"] == "declined"  # type: ignore[index]
    assert store.audit_entries(UE)[-1]["action"] == "console.offer_declined"
    with pytest.raises(ConsoleError):
        drafts.from_offer(store, UWE, offer["key"], cfg=ue)
    with pytest.raises(LookupError):
        drafts.from_offer(store, UWE, "offer:nowhere:1:x", cfg=ue)
