"""The control room's own warnings (hub.console) against a real SQLite file, the real geography and ARS registry,
the repository's templates, real CAP validation (CAP 1.2 XSD), the real subscription index, pipeline and router.

Invariants protected: four eyes (nobody approves what they wrote or edited; sending alone only where the admin
allows it, with a reason, audited); nobody warns outside their scope; exercise never becomes actual (and is never
public); a topic message never reaches a public subscription; update/cancel supersede (they reference the version
before); nothing is sent that differs from what the preview showed; the hub's own warning passes the same checks
as any other and is decided once, by the operators, and published once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import shapely
from lxml import etree

from hub.access import exercise_tokens
from hub.cap.model import Category, Certainty, MsgType, Severity, Status, Urgency
from hub.cap.parse import parse
from hub.cap.validate import Validator, Verdict
from hub.config.load import load as load_config
from hub.console import drafts, overview, release, tables, targeting
from hub.console.model import ConsoleConfig, ConsoleError, ConsoleForbidden, FourEyes, StalePreview
from hub.console.release import Sent
from hub.decide import decisions
from hub.decide.router import Router, empty_rules
from hub.decide.rules.engine import RuleSet
from hub.decide.rules.templates import Template, Text
from hub.deliver import outbox
from hub.geo.geography import Geography, geography
from hub.geo.projection import GERMANY
from hub.geo.resolve import resolve
from hub.intake import readings
from hub.intake.documents import Intake
from hub.publish import publications, subscriptions
from hub.publish.boardtext import fit
from hub.publish.index import SubscriptionIndex, load_index
from hub.publish.pipeline import Pipeline, push_payload
from hub.publish.subscriptions import PointPlace, RegionPlace, Subscription
from hub.store.db import AsyncStore, Store
from tests.e2e.test_routing import dwd_cap
from tests.kits import paths

REPO = paths.REPO
DISTRICT = "033540000000"  # Landkreis Lüchow-Dannenberg
HITZACKER = "033545406009"  # Hitzacker (Elbe), Stadt
DANNENBERG = "033545406004"  # Dannenberg (Elbe), Stadt: Hitzacker's neighbour in the Samtgemeinde Elbtalaue
LUECHOW_BOX = [[11.1, 52.93], [11.2, 52.93], [11.2, 52.99], [11.1, 52.99], [11.1, 52.93]]  # lon, lat: Lüchow
IN_BOX = (52.97, 11.15)  # lat, lon inside LUECHOW_BOX
HAMBURG = (53.55, 10.0)
NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
CAP_NS = "{urn:oasis:names:tc:emergency:cap:1.2}"
SENDER = "leitstelle@lk-dan.example"
PERMISSIONS = {"read": {"viewer", "author", "approver", "admin"}, "compose": {"author", "admin"},
               "approve": {"approver", "admin"}, "admin": {"admin"}}


@dataclass(frozen=True)
class User:
    """Stands in for hub.auth's user (written in parallel): what hub.console.model.ConsoleUser asks for."""

    id: int
    name: str
    roles: frozenset[str]
    scopes: tuple[str, ...] = (DISTRICT,)

    def can(self, permission: str) -> bool:
        return bool(self.roles & PERMISSIONS[permission])


ANNA = User(1, "anna", frozenset({"author", "approver"}))
BERT = User(2, "bert", frozenset({"approver"}))
CARL = User(3, "carl", frozenset({"author"}))


@pytest.fixture(scope="module")
def geo() -> Geography:
    return geography()


@pytest.fixture(scope="module")
def templates(geo: Geography) -> dict[str, Template]:
    return RuleSet.load(REPO / "rules", geo=geo).templates


@pytest.fixture
def cfg(geo: Geography, templates: dict[str, Template]) -> ConsoleConfig:
    return ConsoleConfig(geo=geo, district=DISTRICT, sender=SENDER,
                                 sender_name="Landkreis Lüchow-Dannenberg", templates=templates)


@pytest.fixture
def store(store_url: str) -> Any:
    s = Store(store_url)  # on each backend (tests/conftest.py)
    yield s
    s.close()


def form(*, severity: str = "Severe", urgency: str = "Expected", status: str = "Actual",
         channels: tuple[str, ...] = ("push", "web", "boards"), audience: str = "public", topic: str | None = None,
         ars: tuple[str, ...] = (), ring: list[list[float]] | None = None,
         circle: tuple[float, float, float] | None = None, headline: str = "Großbrand in Lüchow") -> dict[str, Any]:
    """A console form: a fire in Lüchow, drawn as a box (and optionally a circle: lon, lat, radius_m)."""
    features: list[dict[str, Any]] = []
    if ring is not None or not ars:
        features.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring or LUECHOW_BOX]},
                         "properties": {}})
    if circle is not None:
        features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": list(circle[:2])},
                         "properties": {"radius_m": circle[2]}})
    out: dict[str, Any] = {
        "status": status, "channels": list(channels), "audience": audience,
        "area": {"ars": list(ars), "features": features, "desc": "Lüchow (Wendland), Innenstadt"},
        "content": {
            "event": "Großbrand", "category": ["Fire"], "severity": severity, "urgency": urgency,
            "certainty": "Observed", "response_types": ["Shelter"], "event_code": "BBK-EVC-030",
            "instruction_codes": ["BBK-ISC-009", "BBK-ISC-016"],
            "expires": (datetime.now(UTC) + timedelta(hours=4)).isoformat(),
            "texts": {"de-DE": {"headline": headline, "description": "Starke Rauchentwicklung.",
                                "instruction": "Fenster und Türen schließen."},
                      "de-DE-x-ls": {"headline": "Es brennt in Lüchow.", "description": "Es gibt viel Rauch.",
                                     "instruction": "Machen Sie die Fenster zu."},
                      "en": {"headline": "Major fire in Lüchow", "description": "Heavy smoke.",
                             "instruction": "Close windows and doors."}}}}
    if topic is not None:
        out["topic"] = topic
    return out


def sent_via_approval(store: Store, cfg: ConsoleConfig, wid: int, *, author: User = ANNA,
                      approver: User = BERT, widen: bool = False) -> Sent:
    drafts.submit(store, author, wid, cfg=cfg)
    token = targeting.preview_for(store, cfg, None, wid)["token"]
    return release.approve(store, approver, wid, token=token, cfg=cfg, widen=widen)


def state_of(store: Store, warning_id: int) -> str:
    row = tables.get(store, warning_id)
    assert row is not None
    return str(row["state"])


def raw_cap(store: Store, alert_id: int) -> bytes:
    return bytes(store.conn.execute("SELECT raw FROM alerts WHERE id=?", (alert_id,)).fetchone()[0])


def audit_actions(store: Store) -> list[tuple[str, str]]:
    return [(e["actor"], e["action"]) for e in store.audit_entries()]


def subscribe(store: Store, n: int, place: Any, *, topics: tuple[str, ...] = (), exercise: bool = False) -> str:
    token = exercise_tokens.issue(store, "test")[0] if exercise else None  # a staff test device needs one
    return subscriptions.create(store, Subscription(f"https://push.example/{n}", "p256dh", "auth", (place,),
                                                    topics=topics, exercise=exercise), exercise_token=token)[0]


def index_of(store: Store, geo: Geography) -> SubscriptionIndex:
    index = SubscriptionIndex(geo=geo)
    load_index(store, index)
    return index


# -- four eyes ---------------------------------------------------------------------------------------------------


def test_author_cannot_approve_own_warning_another_approver_can(store: Store, cfg: ConsoleConfig) -> None:
    w = drafts.create_draft(store, ANNA, form(), cfg=cfg)
    drafts.submit(store, ANNA, w["id"], cfg=cfg)
    token = targeting.preview_for(store, cfg, None, w["id"])["token"]
    with pytest.raises(ConsoleForbidden, match="Vier-Augen"):
        release.approve(store, ANNA, w["id"], token=token, cfg=cfg)  # she may approve, but not her own
    with pytest.raises(ConsoleForbidden):
        release.approve(store, CARL, w["id"], token=token, cfg=cfg)  # no approve permission
    with pytest.raises(ConsoleForbidden, match="Vier-Augen"):
        release.send(store, ANNA, w["id"], token=token, cfg=cfg, reason="x" * 40)  # no single-person path
    assert state_of(store, w["id"]) == "submitted"
    assert store.conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 0
    assert ("anna", "console.refused") in audit_actions(store) and ("carl", "console.refused") in audit_actions(store)

    sent = release.approve(store, BERT, w["id"], token=token, cfg=cfg)
    row = sent.warning
    assert row["state"] == "sent" and row["approver"] == "bert" and row["author"] == "anna"
    assert row["cap_identifier"] == sent.identifier and row["alert_id"] == sent.alert_id
    actions = audit_actions(store)
    assert actions[-2:] == [("bert", "console.approve"), ("bert", "console.send")]
    assert store.verify_audit().ok
    assert [e["action"] for e in tables.history(store, row["thread"])] == ["create", "submit", "approve", "send"]


def test_whoever_edited_a_version_cannot_approve_it(store: Store, cfg: ConsoleConfig) -> None:
    editor = User(4, "dora", frozenset({"author", "approver"}))
    w = drafts.create_draft(store, CARL, form(), cfg=cfg)
    drafts.edit_draft(store, editor, w["id"], {"content": {"texts": {"en": {"headline": "Big fire"}}}}, cfg=cfg)
    drafts.submit(store, CARL, w["id"], cfg=cfg)
    token = targeting.preview_for(store, cfg, None, w["id"])["token"]
    with pytest.raises(ConsoleForbidden, match="Vier-Augen"):
        release.approve(store, editor, w["id"], token=token, cfg=cfg)
    assert release.approve(store, BERT, w["id"], token=token, cfg=cfg).warning["state"] == "sent"


def test_single_person_extreme_needs_admin_config_permission_and_reason(store: Store, geo: Geography,
                                                                        cfg: ConsoleConfig) -> None:
    w = drafts.create_draft(store, ANNA, form(severity="Extreme", urgency="Immediate"), cfg=cfg)
    token = targeting.preview_for(store, cfg, None, w["id"])["token"]
    reason = "Gaswolke zieht auf die Innenstadt, zweite Person nicht erreichbar"
    with pytest.raises(ConsoleForbidden, match="Vier-Augen"):  # not allowed by the admin
        release.send(store, ANNA, w["id"], token=token, cfg=cfg, reason=reason)

    alone = ConsoleConfig(geo=geo, district=DISTRICT, sender=SENDER, templates=cfg.templates,
                                  four_eyes=FourEyes(single_person_extreme=True))
    with pytest.raises(ConsoleForbidden):  # allowed, but only to someone who may approve
        release.send(store, CARL, w["id"], token=token, cfg=alone, reason=reason)
    with pytest.raises(ConsoleError, match="Begründung"):
        release.send(store, ANNA, w["id"], token=token, cfg=alone)
    with pytest.raises(ConsoleError, match="Begründung"):
        release.send(store, ANNA, w["id"], token=token, cfg=alone, reason="eilt")
    assert store.conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 0

    sent = release.send(store, ANNA, w["id"], token=token, cfg=alone, reason=reason)
    assert sent.warning["state"] == "sent" and sent.warning["single_person_reason"] == reason
    entry = next(e for e in store.audit_entries() if e["action"] == "console.single_person")
    assert entry["actor"] == "anna" and reason in entry["detail"] and '"severity":"Extreme"' in entry["detail"]
    decided = decisions.decision_of(store, sent.alert_id)
    assert decided is not None and decided.why.endswith(f"sent alone: {reason}")

    severe = drafts.create_draft(store, ANNA, form(severity="Severe", urgency="Expected"), cfg=alone)
    token = targeting.preview_for(store, alone, None, severe["id"])["token"]
    with pytest.raises(ConsoleForbidden, match="Vier-Augen"):  # neither Extreme nor Immediate
        release.send(store, ANNA, severe["id"], token=token, cfg=alone, reason=reason)


def test_severity_the_policy_does_not_guard_is_sent_by_its_author(store: Store, geo: Geography,
                                                                    cfg: ConsoleConfig) -> None:
    relaxed = ConsoleConfig(geo=geo, district=DISTRICT, sender=SENDER, templates=cfg.templates,
                                    four_eyes=FourEyes(required_for=frozenset({"Extreme", "Severe"})))
    w = drafts.create_draft(store, CARL, form(severity="Minor"), cfg=relaxed)
    token = targeting.preview_for(store, relaxed, None, w["id"])["token"]
    sent = release.send(store, CARL, w["id"], token=token, cfg=relaxed)
    assert sent.warning["state"] == "sent" and sent.warning["approver"] is None


# -- scope ---------------------------------------------------------------------------------------------------------


def across_border(geo: Geography, metres: float) -> list[list[float]]:
    """A drawn area (lon/lat ring) mostly in Hitzacker that reaches ``metres`` into Dannenberg (Elbe) across their
    real shared border (the bundled VG250 boundaries): half a 400 m disc on Hitzacker's side of the border's
    midpoint, half a ``metres`` disc on Dannenberg's."""
    hitz, dann = geo.geometry(HITZACKER), geo.geometry(DANNENBERG)
    border = shapely.line_merge(hitz.boundary.intersection(dann.boundary))
    lines = list(getattr(border, "geoms", [border]))
    mid = max(lines, key=lambda g: g.length).interpolate(0.5, normalized=True)
    shape = shapely.union_all([mid.buffer(400).intersection(hitz), mid.buffer(metres).intersection(dann)])
    if shape.geom_type != "Polygon":
        shape = max(shape.geoms, key=lambda g: g.area)
    return [list(c) for c in GERMANY.unproject(shape.buffer(1).buffer(-1)).exterior.coords]


def square(lon: float, lat: float, half: float = 0.004) -> list[list[float]]:
    return [[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half], [lon - half, lat + half],
            [lon - half, lat - half]]


def test_scope_refuses_a_neighbouring_gemeinde(store: Store, geo: Geography, cfg: ConsoleConfig) -> None:
    """A user scoped to Hitzacker, against the real bundled boundaries of Hitzacker and its neighbour Dannenberg."""
    hitzacker_only = User(5, "erik", frozenset({"author"}), (HITZACKER,))
    hitz = GERMANY.unproject(geo.geometry(HITZACKER)).representative_point()
    dann = GERMANY.unproject(geo.geometry(DANNENBERG)).representative_point()

    ok = drafts.create_draft(store, hitzacker_only, form(ring=square(hitz.x, hitz.y)), cfg=cfg)
    assert ok["state"] == "draft"
    with pytest.raises(ConsoleForbidden, match="außerhalb Ihres Zuständigkeitsbereichs"):
        drafts.create_draft(store, hitzacker_only, form(ring=square(dann.x, dann.y)), cfg=cfg)
    with pytest.raises(ConsoleForbidden, match="außerhalb"):  # by key: the neighbour
        drafts.create_draft(store, hitzacker_only, form(ars=(DANNENBERG,)), cfg=cfg)
    with pytest.raises(ConsoleForbidden, match="außerhalb"):  # by key: the whole Kreis is more than his
        drafts.create_draft(store, hitzacker_only, form(ars=(DISTRICT,)), cfg=cfg)
    assert drafts.create_draft(store, hitzacker_only, form(ars=(HITZACKER,)), cfg=cfg)["state"] == "draft"
    with pytest.raises(ConsoleForbidden):  # an edit is checked like a new draft
        drafts.edit_draft(store, hitzacker_only, ok["id"], {"area": {"ars": [DANNENBERG]}}, cfg=cfg)

    # the real border between Hitzacker and Dannenberg: 50 m of drawing tolerance, not more
    assert drafts.create_draft(store, hitzacker_only, form(ring=across_border(geo, 20)), cfg=cfg)["state"] == "draft"
    with pytest.raises(ConsoleForbidden, match="km²"):
        drafts.create_draft(store, hitzacker_only, form(ring=across_border(geo, 300)), cfg=cfg)
    refused = [e for e in store.audit_entries() if e["action"] == "console.refused"]
    assert len(refused) == 5 and all(e["actor"] == "erik" for e in refused)


def test_scope_without_a_known_boundary_refuses_drawn_areas(store: Store, geo: Geography,
                                                             cfg: ConsoleConfig) -> None:
    """Fails closed where the hub knows no boundary of the scope: a geography with the Kreis cells only (as the hub
    was before Gemeinde boundaries were bundled)."""
    kreise_only = Geography(geo.registry, geo._kreis_cells, geo._lake_cells)
    assert kreise_only.geometry(HITZACKER) is None
    cfg = ConsoleConfig(geo=kreise_only, district=DISTRICT, sender=SENDER, templates=cfg.templates)
    hitzacker_only = User(5, "erik", frozenset({"author"}), (HITZACKER,))
    with pytest.raises(ConsoleForbidden, match="keine Grenze"):
        drafts.create_draft(store, hitzacker_only, form(ring=square(11.04, 53.15)), cfg=cfg)
    assert drafts.create_draft(store, hitzacker_only, form(ars=(HITZACKER,)), cfg=cfg)["state"] == "draft"
    with pytest.raises(ConsoleForbidden, match="Dannenberg"):  # no boundary: the ARS hierarchy decides
        drafts.create_draft(store, hitzacker_only, form(ars=(DANNENBERG,)), cfg=cfg)


def test_a_custom_check_area_decides(store: Store, geo: Geography, cfg: ConsoleConfig) -> None:
    seen: list[float] = []

    def nobody_north_of_53(user: Any, area: Any) -> str | None:
        seen.append(area.area)
        return "nördlich von 53° / north of 53°" if GERMANY.unproject(area).bounds[3] > 53 else None

    custom = ConsoleConfig(geo=geo, district=DISTRICT, sender=SENDER, check_area=nobody_north_of_53)
    drafts.create_draft(store, ANNA, form(), cfg=custom)
    with pytest.raises(ConsoleForbidden, match="nördlich"):
        drafts.create_draft(store, ANNA, form(ring=square(11.04, 53.15)), cfg=custom)
    assert len(seen) == 2 and seen[0] > 30e6  # the projected area in m²: LUECHOW_BOX is ~45 km²


# -- exercise --------------------------------------------------------------------------------------------------------


def test_exercise_never_becomes_actual_and_is_marked_everywhere(store: Store, geo: Geography,
                                                                cfg: ConsoleConfig) -> None:
    public = subscribe(store, 1, PointPlace(*IN_BOX, 1000))
    drill = subscribe(store, 2, PointPlace(*IN_BOX, 1000), exercise=True)
    w = drafts.create_draft(store, ANNA, form(status="Exercise"), cfg=cfg)
    with pytest.raises(ConsoleError, match="Übung bleibt eine Übung"):
        drafts.edit_draft(store, ANNA, w["id"], {"status": "Actual"}, cfg=cfg)
    index = index_of(store, geo)
    view = targeting.preview_for(store, cfg, index, w["id"])
    assert view["audience"]["push"] == 1 and view["cap"]["status"] == "Exercise"
    assert all(t["title"].startswith(("ÜBUNG – ", "EXERCISE – ")) for t in view["texts"]["push"].values())
    assert set(index.match(shapely.box(11.1, 52.93, 11.2, 52.99), [DISTRICT], severity="Severe", categories=["Fire"],
                           event_topics=[], exercise=True)) == {drill} != {public}

    sent = sent_via_approval(store, cfg, w["id"])
    alert = parse(raw_cap(store, sent.alert_id)).alert
    assert alert.status is Status.EXERCISE
    for info in alert.infos:
        mark = "EXERCISE – " if info.language == "en" else "ÜBUNG – "
        assert info.headline.startswith(mark) and info.description.startswith(mark)  # type: ignore[union-attr]
        assert info.instruction.startswith(mark)  # type: ignore[union-attr]

    with pytest.raises(ConsoleError, match="Übung bleibt eine Übung"):
        drafts.follow_up(store, ANNA, w["id"], "update", cfg=cfg, form={"status": "Actual"})
    update = drafts.follow_up(store, ANNA, w["id"], "update", cfg=cfg)
    assert update["status"] == "Exercise"
    with pytest.raises(ConsoleError, match="Übung"):
        drafts.edit_draft(store, ANNA, update["id"], {"status": "Actual"}, cfg=cfg)
    v2 = sent_via_approval(store, cfg, update["id"])
    assert parse(raw_cap(store, v2.alert_id)).alert.status is Status.EXERCISE


# -- topic audience ------------------------------------------------------------------------------------------------


async def test_topic_message_never_reaches_a_public_subscription(store: Store, geo: Geography,
                                                           cfg: ConsoleConfig, tmp_path: Path) -> None:
    public = subscribe(store, 1, PointPlace(*IN_BOX, 1000))
    region = subscribe(store, 2, RegionPlace(DISTRICT))
    fans = subscribe(store, 3, PointPlace(*IN_BOX, 1000), topics=("event:heimatfest",))
    other = subscribe(store, 4, PointPlace(*IN_BOX, 1000), topics=("event:kirmes",))
    topic_form = form(severity="Minor", channels=("push",), audience="topic", topic="heimatfest",
                      headline="Heimatfest: Umzug beginnt")
    with pytest.raises(ConsoleError, match="nur per Push"):
        drafts.create_draft(store, ANNA, {**topic_form, "channels": ["push", "web"]}, cfg=cfg)
    with pytest.raises(ConsoleError, match="topic"):
        drafts.create_draft(store, ANNA, {**topic_form, "topic": None}, cfg=cfg)
    w = drafts.create_draft(store, ANNA, topic_form, cfg=cfg)
    with pytest.raises(ConsoleError, match="Zielgruppe"):
        drafts.edit_draft(store, ANNA, w["id"], {"audience": "public", "channels": ["push", "web"]}, cfg=cfg)

    index = index_of(store, geo)
    view = targeting.preview_for(store, cfg, index, w["id"])
    assert view["audience"]["push"] == 1 and view["audience"]["web"] is False
    assert view["audience"]["boards"] == view["audience"]["kiosks"] == view["audience"]["webhooks"] == []
    assert targeting.topic_subscribers(store, "heimatfest") == {fans}
    # what a public match answers: every public subscription too (hence topic_only in the pipeline)
    naive = set(index.match(shapely.box(11.1, 52.93, 11.2, 52.99), [DISTRICT], severity="Minor",
                            categories=["Fire"], event_topics=["heimatfest"], exercise=False))
    assert {public, region, fans} <= naive and other not in naive

    drafts.submit(store, ANNA, w["id"], cfg=cfg)
    # the pipeline restricts a topic decision to the topic's subscribers: not the public, not the other topic
    sent = release.approve(store, BERT, w["id"], token=view["token"], cfg=cfg)
    loaded = load_config(write_hub_config(tmp_path))
    pipe = Pipeline(AsyncStore(store), loaded, empty_rules(tmp_path / "rules", geo), index=index)
    assert await pipe.publish_pending() == 1
    pub = publications.by_source_alert(store, sent.alert_id)
    assert pub is not None and "web" not in pub.channels
    pushed = {r[0] for r in store.conn.execute("SELECT recipient FROM outbox WHERE channel='push'")}
    assert pushed == {fans}
    # its Cancel goes where the message went: the fans' phones, never the web or the feeds
    store.conn.execute("UPDATE outbox SET state='done'")
    cancel = drafts.follow_up(store, ANNA, w["id"], "cancel", cfg=cfg)
    sent_via_approval(store, cfg, cancel["id"])
    assert await pipe.publish_pending() == 1
    latest = publications.latest(store, pub.thread)
    assert latest is not None and latest.msg_type == "Cancel" and latest.channels == ("push",)
    assert publications.recent(store) == []
    assert {r[0] for r in store.conn.execute(
        "SELECT recipient FROM outbox WHERE channel='push' AND publication_id=?", (latest.id,))} == {fans}


# -- the CAP ---------------------------------------------------------------------------------------------------------


def test_sent_cap_is_valid_cap12_with_lat_lon_order(store: Store, cfg: ConsoleConfig) -> None:
    w = drafts.create_draft(store, ANNA, form(ars=(HITZACKER,), ring=LUECHOW_BOX, circle=(11.15, 52.97, 1500)),
                             cfg=cfg)
    sent = sent_via_approval(store, cfg, w["id"])  # every region has its bundled boundary: nothing widens
    raw = raw_cap(store, sent.alert_id)
    report = Validator().check(raw)
    assert report.verdict is Verdict.VALID and report.cap_version == "1.2", report.errors + report.warnings
    assert store.conn.execute("SELECT origin, verdict FROM alerts WHERE id=?", (sent.alert_id,)).fetchone() == \
        ("console", "valid")

    root = etree.fromstring(raw)
    assert root.findtext("cap:sender", namespaces=NS) == SENDER
    assert [i.findtext("cap:language", namespaces=NS) for i in root.findall("cap:info", NS)] == \
        ["de-DE", "de-DE-x-ls", "en"]
    info = root.find("cap:info", NS)
    assert info is not None
    polygon = info.findtext("cap:area/cap:polygon", namespaces=NS)
    assert polygon is not None
    first = [float(v) for v in polygon.split()[0].split(",")]
    assert first == [52.93, 11.1]  # CAP: lat,lon (the form was GeoJSON lon,lat)
    assert info.findtext("cap:area/cap:circle", namespaces=NS) == "52.97,11.15 1.5"
    geocode = info.find("cap:area/cap:geocode", NS)
    assert geocode is not None and [c.text for c in geocode] == ["ARS", HITZACKER]
    code = info.find("cap:eventCode", NS)
    assert code is not None and [c.text for c in code] == ["profile:DE-BBK-EVENTCODE", "BBK-EVC-030"]
    params = {p.findtext("cap:valueName", namespaces=NS): p.findtext("cap:value", namespaces=NS)
              for p in info.findall("cap:parameter", NS)}
    assert params == {"instructionCode": "BBK-ISC-009 BBK-ISC-016"}

    res = resolve(parse(raw).alert, DISTRICT)
    assert res.inside_district and res.outside_share == 0.0  # swapped coordinates would lie in Somalia
    d = decisions.decision_of(store, sent.alert_id)
    assert d is not None and d.decision == "publish" and d.rules == ("console",)
    assert d.channels == ("push", "web", "boards") and d.push is True and d.audiences == ("public",)
    assert HITZACKER in d.regions and DISTRICT not in d.regions  # Gemeinden, never the whole Kreis


def test_invalid_coordinates_are_refused_with_the_reason(store: Store, cfg: ConsoleConfig) -> None:
    swapped = [[lat, lon] for lon, lat in LUECHOW_BOX]
    with pytest.raises(ConsoleError, match=r"\[lat, lon\]"):
        drafts.create_draft(store, ANNA, form(ring=swapped), cfg=cfg)
    bow = [[11.1, 52.93], [11.2, 52.99], [11.2, 52.93], [11.1, 52.99], [11.1, 52.93]]
    with pytest.raises(ConsoleError, match="überschneidet"):
        drafts.create_draft(store, ANNA, form(ring=bow), cfg=cfg)
    with pytest.raises(ConsoleError, match="radius_m"):
        drafts.create_draft(store, ANNA, form(circle=(11.15, 52.97, 0)), cfg=cfg)


# -- update, cancel, all-clear -------------------------------------------------------------------------------------


def test_update_and_cancel_reference_the_previous_version(store: Store, cfg: ConsoleConfig) -> None:
    w = drafts.create_draft(store, ANNA, form(), cfg=cfg)
    v1 = sent_via_approval(store, cfg, w["id"])
    with pytest.raises(ConsoleError):
        drafts.follow_up(store, ANNA, w["id"], "resend", cfg=cfg)

    up = drafts.follow_up(store, ANNA, w["id"], "update", cfg=cfg,
                           form={"content": {"texts": {"de-DE": {"instruction": "Gebiet weiträumig meiden."}}}})
    assert (up["version"], up["parent_id"], up["msg_type"], up["state"]) == (2, w["id"], "Update", "draft")
    early = drafts.follow_up(store, ANNA, w["id"], "cancel", cfg=cfg)  # an open draft never blocks ending it
    assert (early["version"], early["parent_id"]) == (3, w["id"])
    v2 = sent_via_approval(store, cfg, up["id"])
    assert tables.get(store, early["id"])["state"] == "withdrawn"  # type: ignore[index]  # superseded by v2
    a1, a2 = parse(raw_cap(store, v1.alert_id)).alert, parse(raw_cap(store, v2.alert_id)).alert
    assert a2.msg_type is MsgType.UPDATE and [r.key() for r in a2.references] == [(a1.sender, a1.identifier)]
    assert a2.references[0].sent == a1.sent < a2.sent
    assert a2.infos[0].instruction == "Gebiet weiträumig meiden."
    assert v2.store_thread == v1.store_thread  # one incident in the store

    cancel = drafts.follow_up(store, ANNA, up["id"], "cancel", cfg=cfg)
    assert cancel["msg_type"] == "Cancel" and cancel["content"]["texts"]["de-DE"]["headline"].startswith("Aufgehoben")
    v3 = sent_via_approval(store, cfg, cancel["id"])
    a3 = parse(raw_cap(store, v3.alert_id)).alert
    assert a3.msg_type is MsgType.CANCEL and [r.identifier for r in a3.references] == [a2.identifier]
    assert store.thread(v3.store_thread).state == "cancelled"  # type: ignore[union-attr]
    with pytest.raises(ConsoleError, match="aufgehoben"):
        drafts.follow_up(store, ANNA, cancel["id"], "update", cfg=cfg)


def test_all_clear_is_a_minor_update_with_response_allclear(store: Store, geo: Geography,
                                                            cfg: ConsoleConfig) -> None:
    w = drafts.create_draft(store, ANNA, form(severity="Extreme", urgency="Immediate"), cfg=cfg)
    v1 = sent_via_approval(store, cfg, w["id"])
    # the repository's "entwarnung" is for sensors ({value} {unit}): the built-in words stand in
    clear = drafts.follow_up(store, ANNA, w["id"], "all-clear", cfg=cfg)
    assert clear["kind"] == "all-clear" and clear["msg_type"] == "Update"
    assert clear["content"]["texts"]["de-DE"]["headline"] == "Entwarnung: Großbrand in Lüchow"
    v2 = sent_via_approval(store, cfg, clear["id"])
    alert = parse(raw_cap(store, v2.alert_id)).alert
    assert alert.msg_type is MsgType.UPDATE and alert.references[0].identifier == v1.identifier
    for info in alert.infos:
        assert info.severity is Severity.MINOR and [r.value for r in info.response_types] == ["AllClear"]
        assert info.categories == (Category.FIRE,)  # whoever chose the topic of the warning gets its end too

    # a template for operator warnings (alert placeholders) is used as written
    own = Template(name="entwarnung", file="test", event="Entwarnung", categories=(Category.OTHER,),
                   severity=Severity.MINOR, urgency=Urgency.PAST, certainty=Certainty.OBSERVED, kind="all_clear",
                   texts={"de-DE": Text("Entwarnung: {headline}", "Die Gefahr ({event}) ist vorüber. {district}"),
                          "en": Text("All clear", "The danger is over.")},
                   event_code="BBK-EVC-078", uses=frozenset({"headline", "event"}))
    with_own = ConsoleConfig(geo=geo, district=DISTRICT, sender=SENDER, sender_name="Landkreis L-D",
                                     templates={"entwarnung": own})
    w2 = drafts.create_draft(store, ANNA, form(headline="Gasaustritt"), cfg=with_own)
    sent_via_approval(store, with_own, w2["id"])
    clear2 = drafts.follow_up(store, ANNA, w2["id"], "all-clear", cfg=with_own)
    texts = clear2["content"]["texts"]
    assert texts["de-DE"]["headline"] == "Entwarnung: Gasaustritt"
    assert texts["de-DE"]["description"] == "Die Gefahr (Großbrand) ist vorüber. Landkreis L-D"
    assert clear2["content"]["event_code"] == "BBK-EVC-078" and "de-DE-x-ls" not in texts


def test_a_failed_decision_leaves_no_stored_warning_for_the_router(store: Store, cfg: ConsoleConfig,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """CAP, decision, state and audit are one transaction: a version stored without its decision would be decided
    by the rules (and perhaps sent where the operators did not want it)."""
    w = drafts.create_draft(store, ANNA, form(), cfg=cfg)
    drafts.submit(store, ANNA, w["id"], cfg=cfg)
    token = targeting.preview_for(store, cfg, None, w["id"])["token"]
    before = table_counts(store)

    def broken(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("disk full")

    monkeypatch.setattr(decisions, "record", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        release.approve(store, BERT, w["id"], token=token, cfg=cfg)
    assert table_counts(store) == before and state_of(store, w["id"]) == "submitted"
    assert decisions.undecided(store) == []
    monkeypatch.undo()
    assert release.approve(store, BERT, w["id"], token=token, cfg=cfg).warning["state"] == "sent"
    assert decisions.undecided(store) == [] and store.verify_audit().ok


def test_a_template_fills_the_places_and_the_end_and_unfilled_placeholders_block(
        store: Store, geo: Geography) -> None:
    brand = Template(name="brand", file="test", event="Großbrand", categories=(Category.FIRE,),
                     severity=Severity.SEVERE, urgency=Urgency.IMMEDIATE, certainty=Certainty.OBSERVED,
                     texts={"de-DE": Text("Großbrand in {ort}", "Gilt bis {until}. {district}, {time}.",
                                          "Fenster schließen."),
                            "en": Text("Major fire in {ort}", "Until {until}: {gemeldet_von}.")},
                     event_code="BBK-EVC-030", instruction_codes=("BBK-ISC-009",),
                     uses=frozenset({"ort", "until", "gemeldet_von"}))
    clear = Template(name="entwarnung", file="test", event="Entwarnung", categories=(Category.OTHER,),
                     severity=Severity.MINOR, urgency=Urgency.PAST, certainty=Certainty.OBSERVED, kind="all_clear",
                     texts={"de-DE": Text("Entwarnung für {ort}", "Die Gefahr ist vorüber.")},
                     uses=frozenset({"ort"}))
    cfg = ConsoleConfig(geo=geo, district=DISTRICT, sender=SENDER, sender_name="Landkreis L-D",
                                templates={"brand": brand, "entwarnung": clear})
    expires = datetime(2031, 5, 1, 16, 30, tzinfo=UTC)
    given = {"template": "brand", "channels": ["push", "web"], "area": {"ars": [HITZACKER]},
             "content": {"expires": expires.isoformat()}}
    w = drafts.create_draft(store, ANNA, given, cfg=cfg, now=expires - timedelta(hours=3))
    texts = w["content"]["texts"]
    assert texts["de-DE"]["headline"] == "Großbrand in Hitzacker (Elbe), Stadt"
    assert texts["de-DE"]["description"].startswith("Gilt bis 01.05.2031 18:30. Landkreis L-D, 01.05.2031 15:30")
    assert w["content"]["event_code"] == "BBK-EVC-030" and w["content"]["severity"] == "Severe"
    assert texts["en"]["description"] == "Until 01.05.2031 18:30: {gemeldet_von}."  # left for the operator
    with pytest.raises(ConsoleError, match="gemeldet_von"):
        drafts.submit(store, ANNA, w["id"], cfg=cfg)
    drafts.edit_draft(store, ANNA, w["id"], {"content": {"texts": {"en": {"description": "Until 18:30."}}}},
                       cfg=cfg, now=expires - timedelta(hours=3))
    assert drafts.submit(store, ANNA, w["id"], cfg=cfg)["state"] == "submitted"


# -- preview and its token -----------------------------------------------------------------------------------------


def table_counts(store: Store) -> dict[str, int]:
    return {t: store.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("alerts", "decisions", "audit", "console_events", "publications", "outbox")}


def test_preview_has_no_side_effects_and_a_changed_warning_needs_a_new_one(store: Store, geo: Geography,
                                                                          cfg: ConsoleConfig) -> None:
    subscribe(store, 1, PointPlace(*IN_BOX, 1000))
    w = drafts.create_draft(store, ANNA, form(), cfg=cfg)
    drafts.submit(store, ANNA, w["id"], cfg=cfg)
    before, state = table_counts(store), tables.get(store, w["id"])
    view = targeting.preview(store, geo, index_of(store, geo), cfg.boards, cfg.webhooks, w["id"], district=DISTRICT,
                           sender=SENDER)
    assert table_counts(store) == before and tables.get(store, w["id"]) == state
    assert view["audience"]["push"] == 1 and view["cap"]["verdict"] == "valid"
    assert view["texts"]["push"]["de-DE"] == {**view["texts"]["push"]["de-DE"], "title": "Großbrand in Lüchow",
                                              "body": "Fenster und Türen schließen."}
    assert view["overspill"]["outside_share"] == 0.0 and view["overspill"]["neighbours"] == []

    with pytest.raises(StalePreview):
        release.approve(store, BERT, w["id"], token="0" * 64, cfg=cfg)
    # the author changes the text after the approver looked: the approver's token no longer fits
    drafts.edit_draft(store, ANNA, w["id"], {"content": {"texts": {"de-DE": {"headline": "Großbrand: Lüchow"}}}},
                       cfg=cfg)
    drafts.submit(store, ANNA, w["id"], cfg=cfg)
    with pytest.raises(StalePreview):
        release.approve(store, BERT, w["id"], token=view["token"], cfg=cfg)
    assert state_of(store, w["id"]) == "submitted"
    assert store.conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 0
    fresh = targeting.preview_for(store, cfg, None, w["id"])
    assert fresh["token"] != view["token"]
    assert release.approve(store, BERT, w["id"], token=fresh["token"], cfg=cfg).warning["state"] == "sent"


def test_preview_shows_overspill_into_neighbouring_kreise(store: Store, cfg: ConsoleConfig) -> None:
    # someone responsible for all of Niedersachsen draws from the district's west into Kreis Uelzen
    land = User(6, "fritz", frozenset({"author"}), ("030000000000",))
    ring = [[10.65, 52.95], [10.9, 52.95], [10.9, 53.05], [10.65, 53.05], [10.65, 52.95]]
    w = drafts.create_draft(store, land, form(ring=ring), cfg=cfg)
    view = targeting.preview_for(store, cfg, None, w["id"])
    spill = view["overspill"]
    assert spill["neighbours"] == [{"ars": "033600000000", "name": "Kreis Uelzen"}]
    assert 0.7 < spill["outside_share"] < 0.95 and spill["area_km2"] > spill["inside_km2"] > 0
    assert any("außerhalb des Kreises (Kreis Uelzen)" in n for n in view["notes"])
    with pytest.raises(ConsoleForbidden):  # the district's own staff may not warn Uelzen
        drafts.create_draft(store, ANNA, form(ring=ring), cfg=cfg)


# -- pipeline and router -------------------------------------------------------------------------------------------


def write_hub_config(tmp: Path) -> Path:
    path = tmp / "config.toml"
    path.write_text(f"""
[hub]
name = "Landkreis Lüchow-Dannenberg"
district_ars = "{DISTRICT}"
db = "hub.db"
sender = "{SENDER}"

[[boards]]
id = "tafel-luechow"
name = "Marktplatz Lüchow"
ars = "{DISTRICT}"
kind = "mqtt"
topic = "boards/luechow"
lines = 3
chars = 24
charset = "ascii"

[[boards]]
id = "tafel-hamburg"
name = "Hamburg"
ars = "020000000000"
kind = "mqtt"
topic = "boards/hamburg"

[[webhooks]]
id = "zeitung"
url = "https://zeitung.example/hook"
secret = "test-secret"
""", encoding="utf-8")
    return path


async def test_pipeline_publishes_a_sent_warning_once_and_the_router_leaves_it(
        tmp_path: Path, geo: Geography, templates: dict[str, Template]) -> None:
    loaded = load_config(write_hub_config(tmp_path))
    store = Store(loaded.db_path)
    astore = AsyncStore(store)
    try:
        cfg = ConsoleConfig.from_loaded(loaded, geo=geo, templates=templates)
        near = subscribe(store, 1, PointPlace(*IN_BOX, 1000))
        far = subscribe(store, 2, PointPlace(*HAMBURG, 1000))
        index = index_of(store, geo)
        live = empty_rules(tmp_path / "rules", geo)
        router = Router(astore, live, district=DISTRICT)
        pipe = Pipeline(astore, loaded, live, index=index)

        w = drafts.create_draft(store, ANNA, form(channels=("push", "web", "boards", "webhook")), cfg=cfg)
        drafts.submit(store, ANNA, w["id"], cfg=cfg)
        view = targeting.preview_for(store, cfg, index, w["id"])
        sent = release.approve(store, BERT, w["id"], token=view["token"], cfg=cfg)

        assert await router.decide_pending() == 0  # the operators decided it
        external = Intake(Validator(), store).ingest(dwd_cap("2.49.0.0.276.0.DWD.PVW.console-test"), origin="dwd")
        assert await router.decide_pending() == 1  # ... while an external alert is decided by the rules
        assert external.alert_id is not None
        assert decisions.decision_of(store, external.alert_id).decision == "unrouted"  # type: ignore[union-attr]
        assert store.conn.execute("SELECT count(*) FROM decisions WHERE alert_id=?", (sent.alert_id,)).fetchone()[0] \
            == 1 and decisions.decision_of(store, sent.alert_id).rules == ("console",)  # type: ignore[union-attr]

        assert await pipe.publish_pending() == 1
        assert await pipe.publish_pending() == 0
        pub = publications.by_source_alert(store, sent.alert_id)
        assert pub is not None and pub.version == 1 and pub.msg_type == "Alert" and pub.sender == SENDER
        rows = store.conn.execute("SELECT channel, recipient FROM outbox WHERE publication_id=?", (pub.id,)).fetchall()
        pushed = {r for c, r in rows if c == "push"}
        assert pushed == {near} and far not in pushed
        assert {r for c, r in rows if c == "boards-mqtt"} == {"tafel-luechow"}
        assert {r for c, r in rows if c == "webhooks"} == {"zeitung"}
        # the preview showed what the pipeline did
        assert view["audience"]["push"] == len(pushed)
        assert [b["id"] for b in view["audience"]["boards"]] == ["tafel-luechow"]
        assert [h["id"] for h in view["audience"]["webhooks"]] == ["zeitung"]
        lines = view["texts"]["boards"]["tafel-luechow"]
        assert 0 < len(lines) <= 3 and all(len(line) <= 24 and line.isascii() for line in lines)
        assert lines[0].startswith("Gefahr")

        state = overview.status(store, w["thread"])
        assert state["versions"][0]["publication"]["id"] == pub.id
        assert state["versions"][0]["channels"] == {"push": {"queued": 1}, "boards-mqtt": {"queued": 1},
                                                    "webhooks": {"queued": 1}}

        # an update: one more publication in the same hub thread, the router still leaves it alone
        up = drafts.follow_up(store, ANNA, w["id"], "update", cfg=cfg)
        v2 = sent_via_approval(store, cfg, up["id"])
        assert await router.decide_pending() == 0
        assert await pipe.publish_pending() == 1
        pub2 = publications.by_source_alert(store, v2.alert_id)
        assert pub2 is not None and (pub2.thread, pub2.version, pub2.msg_type) == (pub.thread, 2, "Update")
        assert [v["publication"]["version"] for v in overview.status(store, w["thread"])["versions"]] == [1, 2]
        assert outbox.status(store, [pub.id])[pub.id]["push"] == {"superseded": 1}
    finally:
        astore.close()


# -- inbox -----------------------------------------------------------------------------------------------------------


async def test_inbox_lists_rule_matches_sensor_drafts_with_readings_and_unrouted(
        tmp_path: Path, geo: Geography, cfg: ConsoleConfig) -> None:
    store = Store(tmp_path / "hub.db")
    astore = AsyncStore(store)
    try:
        router = Router(astore, empty_rules(tmp_path / "rules", geo), district=DISTRICT)
        Intake(Validator(), store).ingest(dwd_cap("2.49.0.0.276.0.DWD.PVW.inbox-test"), origin="dwd")
        assert await router.decide_pending() == 1

        now = datetime.now(UTC)
        now_ms = readings.ms_of(now)
        readings.register(store, "pegel", [readings.SensorRow("hitzacker", "water_level", "cm", 53.15, 11.04,
                                                              HITZACKER, "pegel/hitzacker", 900)])
        old = now_ms - 8 * 3600_000
        readings.add_batch(store, [("hitzacker", old, 480.0, "cm", old)] +
                           [("hitzacker", now_ms - i * 900_000, 560.0 - i, "cm", now_ms) for i in range(4)])
        ruleset = RuleSet.load(REPO / "rules", geo=geo)
        draft = ruleset.render("hochwasser-vorwarnung", {"sensor": "hitzacker", "value": 560.0, "unit": "cm",
                                                         "threshold": 550})
        decisions.add_sensor_drafts(store, [decisions.SensorDraft("Pegel Hitzacker", "hitzacker", "fired", now,
                                                                  ("web",), ("public",), "über 550 cm", draft)])
        w = drafts.create_draft(store, ANNA, form(), cfg=cfg)
        drafts.submit(store, ANNA, w["id"], cfg=cfg)

        box = overview.inbox(store, now=now)
        assert [d["why"] for d in box["unrouted"]] and box["unrouted"][0]["identifier"].endswith("inbox-test")
        assert box["alerts"] == []
        (pending,) = box["drafts"]
        assert pending["sensor"] == "hitzacker" and pending["draft"]["template"] == "hochwasser-vorwarnung"
        assert [v for _, v in pending["readings"]] == [557.0, 558.0, 559.0, 560.0]  # the 8 h old one is left out
        assert [a["id"] for a in box["awaiting_approval"]] == [w["id"]]
    finally:
        astore.close()


async def test_all_clear_reaches_everyone_who_was_warned(store: Store, geo: Geography, cfg: ConsoleConfig,
                                                         tmp_path: Path) -> None:
    """An all-clear is Minor; a subscriber who takes only Severe and worse got the Extreme warning and must hear
    that it is over. Boards and the push payload say Entwarnung."""
    strict = subscriptions.create(store, Subscription("https://push.example/strict", "p256dh", "auth",
                                                      (PointPlace(*IN_BOX, 1000),), min_severity="Severe"))[0]
    everyone = subscribe(store, 2, PointPlace(*IN_BOX, 1000))
    index = index_of(store, geo)
    loaded = load_config(write_hub_config(tmp_path))
    pipe = Pipeline(AsyncStore(store), loaded, empty_rules(tmp_path / "rules", geo), index=index)
    w = drafts.create_draft(store, ANNA, form(severity="Extreme", urgency="Immediate"), cfg=cfg)
    sent_via_approval(store, cfg, w["id"])
    assert await pipe.publish_pending() == 1
    store.conn.execute("UPDATE outbox SET state='done'")
    clear = drafts.follow_up(store, ANNA, w["id"], "all-clear", cfg=cfg)
    sent_via_approval(store, cfg, clear["id"])
    assert await pipe.publish_pending() == 1
    pub = publications.latest(store, publications.thread_name(store.conn.execute(
        "SELECT store_thread FROM console_warnings WHERE id=?", (clear["id"],)).fetchone()[0]))
    assert pub is not None and pub.all_clear and pub.severity == "Minor"
    got = {r[0] for r in store.conn.execute("SELECT recipient FROM outbox WHERE channel='push' AND publication_id=?",
                                            (pub.id,))}
    assert got == {strict, everyone}
    assert json.loads(push_payload(pub, "k", ["de"]))["allClear"] is True
    assert pub.notice(["de"]).all_clear and fit(pub, pub.notice(["de"]), lines=4, chars=40)[0] == "Entwarnung"
