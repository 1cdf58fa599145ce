"""Each district's console config (issue 19): its own sender, name, address, boards, webhooks and four eyes
(:meth:`ConsoleConfig.from_loaded`), its compose templates (its own folder first, then the shared ones) and its rules'
templates (hub.web.console_districts), a console user's district, and the console's reads filtered by district."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hub.cap.validate import Validator
from hub.config import load as config_load
from hub.config.load import LoadedConfig
from hub.console import overview, tables
from hub.console.model import ConsoleConfig, FourEyes
from hub.decide import decisions
from hub.geo.geography import Geography, geography
from hub.intake.documents import Intake
from hub.store.db import Store
from hub.web import app
from hub.web.console_districts import Offered, district_of, owners, read_offered, rule_templates_of
from tests.e2e.test_routing import dwd_cap
from tests.kits.districts import LD, ROOT, UE, UELZEN_RULES

HITZACKER, UELZEN_TOWN = "033545406009", "033600025025"

CONFIG = f"""
[hub]
name = "Warnhub Nordost-Niedersachsen"
public_url = "https://warnung.example"
rules = "rules"

[console]
four_eyes = ["Extreme", "Severe", "Moderate", "Minor"]

[[districts]]
ars = "{LD}"
slug = "luechow-dannenberg"
name = "Landkreis Lüchow-Dannenberg"
sender = "leitstelle@luechow-dannenberg.example"
templates = "ld-templates"

[[districts]]
ars = "{UE}"
slug = "uelzen"
name = "Landkreis Uelzen"
sender = "leitstelle@uelzen.example"
rules = ["rules-ue"]
public_url = "https://warnung.uelzen.example/"
four_eyes = ["Extreme"]
single_person_extreme = true
four_eyes_end = true

[[boards]]
id = "tafel-hitzacker"
name = "Hitzacker"
ars = "{HITZACKER}"
kind = "kiosk"

[[boards]]
id = "tafel-uelzen"
name = "Uelzen"
ars = "{UELZEN_TOWN}"
kind = "kiosk"

[[boards]]
id = "tafel-grenze"
name = "An der Grenze, von Uelzen betrieben"
ars = "{HITZACKER}"
district = "uelzen"
kind = "kiosk"

[[webhooks]]
id = "zeitung-ld"
url = "https://zeitung.example/ld"
secret = "geheim-geheim-geheim"

[[webhooks]]
id = "zeitung-ue"
url = "https://zeitung.example/ue"
secret = "geheim-geheim-geheim"
district = "uelzen"
"""


@pytest.fixture(scope="module")
def geo() -> Geography:
    return geography()


def two(tmp_path: Path) -> LoadedConfig:
    """Both districts: the shared compose templates (the repository's) in rules/templates/compose, LD's own folder
    with a Feuer template of its own words and one only LD has; Uelzen's rules (no templates)."""
    shutil.copytree(ROOT / "rules" / "templates", tmp_path / "rules" / "templates")
    shutil.copytree(UELZEN_RULES, tmp_path / "rules-ue")
    own = tmp_path / "ld-templates"
    own.mkdir()
    compose = ROOT / "rules" / "templates" / "compose"
    feuer = (compose / "feuer.toml").read_text(encoding="utf-8")
    (own / "feuer.toml").write_text(feuer.replace('title = "Feuer: Großbrand mit Rauchentwicklung"',
                                                  'title = "Feuer (Lüchow-Dannenberg)"'), encoding="utf-8")
    (own / "deich.toml").write_text(feuer.replace('title = "Feuer: Großbrand mit Rauchentwicklung"',
                                                  'title = "Deichbruch"'), encoding="utf-8")
    shutil.copy(compose / "entwarnung-feuer.toml", own / "entwarnung-feuer.toml")
    (tmp_path / "config.toml").write_text(CONFIG, encoding="utf-8")
    return config_load.load(tmp_path / "config.toml")


def test_each_district_has_its_own_sender_address_boards_webhooks_and_four_eyes(tmp_path: Path,
                                                                                 geo: Geography) -> None:
    loaded = two(tmp_path)
    ld, ue = loaded.districts
    a = ConsoleConfig.from_loaded(loaded, geo=geo, district=ld)
    b = ConsoleConfig.from_loaded(loaded, geo=geo, district=ue)
    assert (a.district, a.sender, a.sender_name, a.base_url) == (
        LD, "leitstelle@luechow-dannenberg.example", "Landkreis Lüchow-Dannenberg",
        "https://warnung.example/luechow-dannenberg")
    assert (b.district, b.sender, b.sender_name, b.base_url) == (
        UE, "leitstelle@uelzen.example", "Landkreis Uelzen", "https://warnung.uelzen.example")
    # a board without a district is the one's it stands in; one naming a district is that one's wherever it stands
    assert [x.id for x in a.boards] == ["tafel-hitzacker"]
    assert [x.id for x in b.boards] == ["tafel-uelzen", "tafel-grenze"]
    # a webhook without a district is the first district's
    assert [x.id for x in a.webhooks] == ["zeitung-ld"] and [x.id for x in b.webhooks] == ["zeitung-ue"]
    assert a.four_eyes == FourEyes(required_for=frozenset({"Extreme", "Severe", "Moderate", "Minor"}))
    assert b.four_eyes == FourEyes(required_for=frozenset({"Extreme"}), single_person_extreme=True,
                                   end_needs_two=True)
    assert ConsoleConfig.from_loaded(loaded, geo=geo).district == LD  # without a district: the first


def test_a_single_district_hub_keeps_its_console_config(tmp_path: Path, geo: Geography) -> None:
    (tmp_path / "config.toml").write_text(f"""
[hub]
name = "Landkreis Lüchow-Dannenberg"
district_ars = "{LD}"
sender = "leitstelle@example.org"
public_url = "https://warnung.example/"

[[boards]]
id = "tafel-uelzen"
name = "Uelzen"
ars = "{UELZEN_TOWN}"
kind = "kiosk"
""", encoding="utf-8")
    loaded = config_load.load(tmp_path / "config.toml")
    cfg = ConsoleConfig.from_loaded(loaded, geo=geo)
    assert (cfg.district, cfg.sender, cfg.sender_name, cfg.base_url) == (
        LD, "leitstelle@example.org", "Landkreis Lüchow-Dannenberg", "https://warnung.example")
    assert [x.id for x in cfg.boards] == ["tafel-uelzen"]  # one district: every board, wherever it stands


def test_a_district_offers_its_own_compose_templates_first_then_the_shared_ones(tmp_path: Path) -> None:
    loaded = two(tmp_path)
    ld, ue = loaded.districts
    mine = {t.name: t for t in read_offered(ld, Offered()).templates}
    theirs = {t.name: t for t in read_offered(ue, Offered()).templates}
    assert mine["feuer"].title == "Feuer (Lüchow-Dannenberg)" and "deich" in mine
    assert theirs["feuer"].title == "Feuer: Großbrand mit Rauchentwicklung" and "deich" not in theirs
    assert "hochwasser" in mine and "hochwasser" in theirs  # the shared ones, for both
    # a broken edit of LD's own folder keeps the last good templates offered, and says why
    good = read_offered(ld, Offered())
    (tmp_path / "ld-templates" / "deich.toml").write_text("title = \"kaputt\"\n", encoding="utf-8")
    broken = read_offered(ld, good)
    assert broken.templates == good.templates and broken.error and "deich" in broken.error


def test_a_districts_rule_templates_are_those_of_its_own_rules(tmp_path: Path) -> None:
    loaded = two(tmp_path)
    ld, ue = loaded.districts
    assert "pegel-steigt" in rule_templates_of(ld)  # rules/templates of [hub] rules: the first district's
    assert "pegel-steigt" not in rule_templates_of(ue)


class User:
    def __init__(self, scopes: tuple[str, ...], roles: frozenset[str] = frozenset({"author"})) -> None:
        self.scopes, self.roles = scopes, roles


def test_a_console_users_district(tmp_path: Path) -> None:
    loaded = two(tmp_path)
    ld, ue = loaded.districts
    assert district_of(loaded.districts, User((HITZACKER,))) == ld
    assert district_of(loaded.districts, User((UE,))) == ue
    assert district_of(loaded.districts, User((HITZACKER, UELZEN_TOWN))) is None  # two authorities: neither
    assert district_of(loaded.districts, User(("030000000000",))) is None  # a Land: no district's
    assert district_of(loaded.districts, User((UE,), frozenset({"provider"}))) is None
    assert owners(ld) == (LD, "") and owners(ue) == (UE,)  # rows from before districts are the first's


def test_the_inbox_and_lists_read_only_the_districts_rows(store_url: str) -> None:
    store = Store(store_url)  # on each backend (tests/conftest.py)
    try:
        with store.transaction() as conn:
            for i, (district, state) in enumerate([(LD, "submitted"), (UE, "submitted"), ("", "draft")]):
                conn.execute(
                    "INSERT INTO console_warnings (thread, version, state, status, msg_type, kind, content, area,"
                    " channels, audience, author, author_id, editors, created_at, updated_at, district, store_thread)"
                    " VALUES (?, 1, ?, 'Actual', 'Alert', 'warning', '{}', '{}', '[]', 'public', 'a', 1, '[]',"
                    " '2026-01-01', '2026-01-01', ?, ?)", (f"c{i}", state, district, 100 + i))
            for i, district in enumerate([LD, UE]):
                conn.execute(
                    "INSERT INTO drafts (key, origin, rule, kind, template, at, state, channels, audiences, why,"
                    " draft, created_at, district) VALUES (?, 'sensor', 'r', 'fired', 't', '2026-01-01', 'pending',"
                    " '[]', '[]', '', ?, '2026-01-01', ?)", (f"k{i}", json.dumps({"texts": {}}), district))
        assert [r["thread"] for r in tables.warnings(store, district=owners_of(LD))] == ["c2", "c0"]
        assert [r["thread"] for r in tables.warnings(store, district=(UE,))] == ["c1"]
        assert len(tables.warnings(store)) == 3
        assert [d["key"] for d in decisions.drafts(store, district=UE)] == ["k1"]
        box = overview.inbox(store, district=(UE,))
        assert [r["thread"] for r in box["awaiting_approval"]] == ["c1"] and [d["key"] for d in box["drafts"]] == \
            ["k1"]
        # the stored incidents of other districts' console warnings, which a district's console never lists
        assert app._foreign(store, (UE,)) == {100, 102} and app._foreign(store, owners_of(LD)) == {101}
    finally:
        store.close()


def owners_of(ars: str) -> tuple[str, ...]:
    return (ars, "")


def test_the_inbox_shows_no_fault_or_conflict_of_another_districts_warning(store_url: str) -> None:
    store = Store(store_url)  # on each backend (tests/conftest.py)
    try:
        intake = Intake(Validator(), store)
        ids = [intake.ingest(dwd_cap(f"a-{i}"), origin="dwd").alert_id for i in range(3)]
        assert None not in ids
        with store.transaction() as conn:
            for i, district in enumerate([LD, UE]):
                conn.execute(
                    "INSERT INTO console_warnings (thread, version, state, status, msg_type, kind, content, area,"
                    " channels, audience, author, author_id, editors, created_at, updated_at, district, alert_id)"
                    " VALUES (?, 1, 'sent', 'Actual', 'Alert', 'warning', '{}', '{}', '[]', 'public', 'a', 1, '[]',"
                    " '2026-01-01', '2026-01-01', ?, ?)", (f"c{i}", district, ids[i]))
            for alert_id in ids:  # LD's warning, UE's warning, an external alert
                conn.execute(
                    "INSERT INTO conflicts (alert_id, sender, identifier, sent, received_at, origin, signature,"
                    " verdict, sha256, raw, json, replaced, published, kept_origin, kept_signature) VALUES"
                    " (?, 's', ?, '2026-01-01', '2026-01-01', 'o', '', 'valid', '', ?, '{}', 0, 0, 'o', '')",
                    (alert_id, f"id-{alert_id}", b"x"))
        seen = overview.own_conflicts(store, (UE,))
        assert seen["count"] == 2 and {i["identifier"] for i in seen["items"]} == {f"id-{ids[1]}", f"id-{ids[2]}"}
        faults = {"failed": {"rules": 3, "delivery": 1}, "items": [
            {"stage": "rules", "alert_id": a, "identifier": f"id-{a}"} for a in ids] + [
            {"stage": "delivery", "alert_id": None, "identifier": "w1:push:x"}]}
        with store.transaction() as conn:  # failed rule evaluations: LD's of two alerts, UE's of one
            for alert_id, district in ((ids[0], LD), (ids[2], LD), (ids[2], UE)):
                conn.execute(
                    "INSERT INTO decisions (alert_id, thread_id, decision, rules, channels, audiences, push, drafts,"
                    " severity, regions, changes, why, decided_at, failed_stage, failure, attempts, district)"
                    " SELECT id, thread_id, 'unrouted', '[]', '[]', '[]', 0, '[]', 'Severe', '[]', '[]', '', 't',"
                    " 'rules', 'boom', 1, ? FROM alerts WHERE id = ?", (district, alert_id))
        mine = overview.own_faults(store, faults, (UE,))
        assert [i["alert_id"] for i in mine["items"]] == ids[1:]  # not LD's warning, nor deliveries not UE's
        assert mine["failed"]["delivery"] == 0
        assert mine["failed"]["rules"] == 1 and mine["failed"]["publish"] == 0  # UE's failures alone, not LD's two
        assert overview.own_faults(store, faults, (LD,))["failed"]["rules"] == 2
    finally:
        store.close()
