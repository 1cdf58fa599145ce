"""Each district's rules in a hub of several (issue 19): its templates fall back by name to the hub's shared ones; a
refused reload of one district's rules leaves its running rules in force and touches no other district's; /healthz's
rules entry keeps the single-district shape and adds each district's. Real parts: the two-district config of
tests/kits/districts.py, rule files on disk, a SQLite store (the audit entries, the drafts). A sensor belongs to the
district it lies in: that district's rules watch it."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from hub.cap.validate import Validator
from hub.config import load as config
from hub.decide import decisions
from hub.decide.router import Router, open_districts, sensor_districts
from hub.decide.rules.engine import RulesError
from hub.geo.geography import Geography, geography
from hub.intake.documents import Intake
from hub.store.db import AsyncStore, Store
from tests.kits.districts import LD, LD_SLUG, UE, UE_SLUG, write_two_districts
from tests.kits.hubproc import REPO
from tests.unit.decide.test_districts_decide import over_both

DRAFTING = """
[[rule]]
name = "Uelzen: extremes Unwetter, eigener Hinweis (Entwurf)"
when.provider = "dwd"
when.min_severity = "Extreme"
when.area = "district"
then.draft = "unwetter-hinweis"
"""


@pytest.fixture(scope="module")
def geo() -> Geography:
    return geography()


def test_a_districts_templates_fall_back_to_the_shared_ones_by_name(tmp_path: Path, geo: Geography) -> None:
    cfg = write_two_districts(tmp_path, port=1)
    shutil.copytree(REPO / "rules" / "templates", tmp_path / "rules" / "templates")  # [hub] rules: the shared ones
    ue_file = tmp_path / "rules-ue" / "uelzen.toml"
    ue_file.write_text(ue_file.read_text(encoding="utf-8") + DRAFTING, encoding="utf-8")
    loaded = config.load(cfg)
    ue = open_districts(loaded.districts, sensors=[], geo=geo)[1].live.current
    assert ue is not None and "unwetter-hinweis" in ue.templates  # Uelzen has no templates folder of its own
    assert Path(ue.templates["unwetter-hinweis"].file).parent == tmp_path / "rules" / "templates"

    own = tmp_path / "rules-ue" / "templates"
    own.mkdir()
    text = (REPO / "rules" / "templates" / "unwetter-hinweis.toml").read_text(encoding="utf-8")
    (own / "unwetter-hinweis.toml").write_text(text, encoding="utf-8")
    ue = open_districts(loaded.districts, sensors=[], geo=geo)[1].live.current
    assert ue is not None and Path(ue.templates["unwetter-hinweis"].file).parent == own  # its own first

    shutil.rmtree(own)
    shutil.rmtree(tmp_path / "rules" / "templates")
    with pytest.raises(RulesError, match="unwetter-hinweis"):  # without a shared one it names a template nobody has
        open_districts(loaded.districts, sensors=[], geo=geo)


async def test_a_refused_reload_of_one_district_leaves_the_others_alone(tmp_path: Path, geo: Geography) -> None:
    loaded = config.load(write_two_districts(tmp_path, port=1))
    rules = open_districts(loaded.districts, sensors=[], geo=geo)
    store = AsyncStore(Store(tmp_path / "hub.db"))
    router = Router(store, rules[0].live, district=LD, districts=rules)
    try:
        single = Router(store, rules[0].live, district=LD).health()
        ue_before = rules[1].live.current
        assert ue_before is not None

        ue_file = tmp_path / "rules-ue" / "uelzen.toml"
        ue_file.write_text(ue_file.read_text(encoding="utf-8").replace('"Moderate"', '"Mittel"', 1), encoding="utf-8")
        ld_file = tmp_path / "rules-ld" / "luechow-dannenberg.toml"
        ld_file.write_text(ld_file.read_text(encoding="utf-8") + '\n[[rule]]\nname = "Neu"\nwhen.provider = "lhp"\n'
                           'when.area = "district"\nthen.publish = ["web"]\n', encoding="utf-8")
        assert await router.reload(only_if_changed=True) is False
        assert rules[1].live.current is ue_before and rules[1].live.refused is not None  # Uelzen's stay in force
        ld = rules[0].live.current
        assert ld is not None and "Neu" in [r.name for r in ld.rules] and rules[0].live.refused is None

        health = router.health()
        assert set(single) <= set(health) and set(health) - set(single) == {"districts"}
        assert health["status"] == "refused" and health["refused"] is None  # the first district's own: fine
        by = health["districts"]
        assert set(by) == {LD_SLUG, UE_SLUG}
        assert (by[LD_SLUG]["status"], by[UE_SLUG]["status"]) == ("ok", "refused")
        assert "uelzen.toml" in " ".join(by[UE_SLUG]["refused"]["errors"])
        audit = await store.read(lambda s: s.conn.execute("SELECT district, action FROM audit WHERE action LIKE"
                                                          " 'rules.%'").fetchall(), store.store)
        assert sorted(tuple(a) for a in audit) == [(LD, "rules.reload"), (UE, "rules.refused")]
    finally:
        store.close()


def sensor_rule(name: str) -> str:
    return f"""
[[rule]]
name = "{name}"
when.sensor = "pegel-uelzen"
when.above = 100
when.for_minutes = 1
then.draft = "hochwasser-vorwarnung"
then.all_clear = "hochwasser-entwarnung"
then.publish = ["web"]
"""


async def test_a_sensor_is_watched_by_the_rules_of_the_district_it_lies_in(tmp_path: Path, geo: Geography) -> None:
    """Both districts' rules name the gauge; it lies in Uelzen (its ``ars``), so only Uelzen's rules watch it and the
    draft is Uelzen's (its key names the district)."""
    cfg = write_two_districts(tmp_path, port=1)
    shutil.copytree(REPO / "rules" / "templates", tmp_path / "rules" / "templates")
    for folder, name in (("rules-ue", "Uelzen: Pegel"), ("rules-ld", "Lüchow-Dannenberg: Pegel in Uelzen")):
        file = next((tmp_path / folder).glob("*.toml"))
        file.write_text(file.read_text(encoding="utf-8") + sensor_rule(name), encoding="utf-8")
    loaded = config.load(cfg)
    rules = open_districts(loaded.districts, sensors=["pegel-uelzen"], geo=geo)
    gauges = [SimpleNamespace(id="pegel-uelzen", ars="033600025025"), SimpleNamespace(id="elsewhere", ars=None)]
    store = AsyncStore(Store(tmp_path / "hub.db"))
    router = Router(store, rules[0].live, district=LD, districts=rules,
                    sensor_districts=sensor_districts(loaded.districts, gauges))
    try:
        start = 1_800_000_000_000
        events = await router.feed([("pegel-uelzen", start + i * 30_000, 120.0) for i in range(4)])
        assert [(e.rule, e.kind) for e in events] == [("Uelzen: Pegel", "fired")]
        drafts = await store.read(lambda s: s.conn.execute("SELECT key, district, rule FROM drafts").fetchall(),
                                  store.store)
        assert [tuple(d) for d in drafts] == [(decisions.sensor_key("Uelzen: Pegel", "fired", events[0].at, UE), UE,
                                               "Uelzen: Pegel")]
        assert drafts[0][0].startswith(f"sensor:{UE}:")
    finally:
        store.close()


async def test_a_district_without_rules_leaves_every_alert_unrouted_for_it(tmp_path: Path, geo: Geography,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    cfg = write_two_districts(tmp_path, port=1)
    cfg.write_text(cfg.read_text(encoding="utf-8").replace('rules = ["rules-ue"]\n', ""), encoding="utf-8")
    loaded = config.load(cfg)
    assert loaded.districts.by_ars(UE) is not None and loaded.districts.by_ars(UE).rules == ()  # type: ignore[union-attr]
    with caplog.at_level(logging.WARNING, logger="warnhub.rules"):
        rules = open_districts(loaded.districts, sensors=[], geo=geo)
    assert [r.message for r in caplog.records if "no rules folder" in r.message] == [
        f"district {UE_SLUG} ({UE}) has no rules folder: every alert is unrouted for it (nothing is sent in its name)"]
    store = Store(tmp_path / "hub.db")
    astore = AsyncStore(store)
    router = Router(astore, rules[0].live, district=LD, districts=rules)
    try:
        alert = Intake(Validator(), store).ingest(over_both("no-rules", severity="Severe"), origin="dwd").alert_id
        assert alert is not None
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="warnhub.rules"):
            assert await router.decide_pending() == 1
        ld, ue = decisions.decision_of(store, alert, LD), decisions.decision_of(store, alert, UE)
        assert ld is not None and ld.decision == "publish"
        assert ue is not None and (ue.decision, ue.rules, ue.failed) == ("unrouted", (), False)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # warned once, at start
    finally:
        astore.close()


async def test_a_districts_rules_in_two_folders_are_one_rule_set(tmp_path: Path, geo: Geography) -> None:
    """``rules = ["rules-ue", "rules-ue-2"]``: the rule files of both folders decide for Uelzen, a change in the
    second reloads them, a broken file there is refused like one in the first."""
    cfg = write_two_districts(tmp_path, port=1)
    text = cfg.read_text(encoding="utf-8")
    cfg.write_text(text.replace('rules = ["rules-ue"]', 'rules = ["rules-ue", "rules-ue-2"]'), encoding="utf-8")
    second = tmp_path / "rules-ue-2"
    second.mkdir()
    extra = second / "mowas.toml"
    extra.write_text('[district]\nname = "Landkreis Uelzen"\nars = "033600000000"\n\n[[rule]]\n'
                     'name = "Uelzen: LHP ins Web"\nwhen.provider = "lhp"\nwhen.area = "district"\n'
                     'then.publish = ["web"]\n', encoding="utf-8")
    loaded = config.load(cfg)
    rules = open_districts(loaded.districts, sensors=[], geo=geo)
    ue = rules[1].live
    assert ue.current is not None and "Uelzen: LHP ins Web" in [r.name for r in ue.current.rules]
    assert "Uelzen: DWD ab markantem Wetter (Moderate) per Push und im Web" in [r.name for r in ue.current.rules]
    store = AsyncStore(Store(tmp_path / "hub.db"))
    router = Router(store, rules[0].live, district=LD, districts=rules)
    try:
        extra.write_text(extra.read_text(encoding="utf-8").replace('["web"]', '["web", "teletext"]'),
                         encoding="utf-8")
        assert await router.reload(only_if_changed=True) is False
        assert ue.refused is not None and str(extra) in " ".join(ue.refused.as_dict()["errors"])
    finally:
        store.close()
