"""The operators' rules (hub/rules): checking, semantics on real corpus alerts, sensor conditions, reload, CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from adapters.sources.nina_convert import convert_payload as nina_convert
from hub.cap.model import Alert, Severity, Status
from hub.cap.parse import parse
from hub.decide.rules.engine import LiveRules, RuleSet
from hub.decide.rules.matching import provider
from hub.decide.rules.problems import Locator, RulesError
from hub.decide.rules.sensors import SensorWatch
from tests.kits.hubproc import REPO, subprocess_env

DATA = REPO / "tests" / "data"
RULES = REPO / "rules"
CAP = DATA / "cap"
NINA = DATA / "nina"
TDATA = DATA / "rules"
CHAIN = [CAP / f"de_dwd_wdr-unwetter_alert1_{n}.xml" for n in ("glaette", "update1", "update2", "update3")]
SENSORS = ["pegel-hitzacker", "wind-luechow"]
LUECHOW = "033540000000"


def cap(path: Path) -> Alert:
    return parse(path.read_bytes()).alert


def nina(name: str) -> list[Alert]:
    path = NINA / name
    geojson = path.with_suffix(".geojson")
    return [c.alert for c in nina_convert(path.read_bytes(),
                                          geojson=geojson.read_bytes() if geojson.is_file() else None)]


def variant(alert: Alert, suffix: str, **changes: object) -> Alert:
    """A derived alert with its own CAP key (identifier) and changed fields; ``info_*`` change every info."""
    info_changes = {k[5:]: v for k, v in changes.items() if k.startswith("info_")}
    top = {k: v for k, v in changes.items() if not k.startswith("info_")}
    infos = tuple(msgspec.structs.replace(i, **info_changes) for i in alert.infos)
    return msgspec.structs.replace(alert, identifier=alert.identifier + suffix, infos=infos, **top)


@pytest.fixture(scope="module")
def luechow() -> RuleSet:
    return RuleSet.load(RULES, sensors=SENSORS)


@pytest.fixture(scope="module")
def warendorf() -> RuleSet:
    return RuleSet.load(TDATA / "dwd-chain")


def write_rules(folder: Path, rules: str, templates: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rules.toml").write_text(rules, encoding="utf-8")
    if templates:
        (folder / "templates").mkdir(exist_ok=True)
        for name, text in templates.items():
            (folder / "templates" / f"{name}.toml").write_text(text, encoding="utf-8")
    return folder


# -- the bundled rule set ----------------------------------------------------------------------------------------


def test_bundled_rules_are_valid_and_complete(luechow: RuleSet) -> None:
    assert RuleSet.check(RULES, sensors=SENSORS) == []
    assert luechow.district == LUECHOW
    assert len(luechow.sensor_rules) == 3
    for tpl in luechow.templates.values():
        assert {"de-DE", "de-DE-x-ls", "en"} <= set(tpl.texts), tpl.name
        assert all(t.headline and t.description for t in tpl.texts.values())


# -- semantics on real alerts (table-driven) ---------------------------------------------------------------------


def _test_status(alert: Alert) -> Alert:
    return variant(alert, ".test", status=Status.TEST)


CASES = [
    # (id, alert factory, origin, rules fixture, decision, channels, push, rule substring)
    ("nina-mowas-corona-in-district", lambda: nina("ha_nina_sample_warning_details.json")[0], "nina", "luechow",
     "publish", ["web", "boards"], False, "MoWaS: Gefahreninformation"),
    ("nina-biwapp-elsewhere", lambda: nina("ha_nina_sample_warning_details.json")[2], "nina", "luechow",
     "unrouted", [], False, None),
    ("mowas-cancel-hessen-not-here", lambda: nina("fpas_mow.DE-HE-KS-SE106-20250313-106-001.json")[0], "nina",
     "luechow", "unrouted", [], False, None),
    ("mowas-test-status-suppressed", lambda: _test_status(nina("ha_nina_sample_warning_details.json")[0]), "nina",
     "luechow", "suppress", [], False, "Test- und Übungsmeldungen"),
    ("dwd-ii98-suppressed", lambda: cap(DATA / "dwd" / "de_dwd_kweathercore_update-MUL_II98.xml"), "dwd",
     "luechow", "suppress", [], False, "II 98/99"),
    ("dwd-glaette-not-in-luechow", lambda: cap(CHAIN[0]), "dwd", "luechow", "unrouted", [], False, None),
    ("dwd-glaette-warendorf", lambda: cap(CHAIN[0]), "dwd", "warendorf", "publish", ["push", "web", "boards"],
     True, "DWD im Kreis"),
    ("dwd-silent-update-never-pushes", lambda: cap(DATA / "dwd" / "de_dwd_kweathercore_update-MUL_silent-update.xml"),
     "dwd", "anywhere", "publish", ["web", "boards"], False, "alles"),
]


@pytest.fixture(scope="module")
def anywhere(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    folder = write_rules(tmp_path_factory.mktemp("anywhere"), """
[[rule]]
name = "alles"
when.provider = ["dwd", "mowas"]
then.publish = ["push", "web", "boards"]
""")
    return RuleSet.load(folder)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_decisions_on_corpus_alerts(case: tuple, request: pytest.FixtureRequest) -> None:
    _, make, origin, which, decision, channels, push, rule = case
    rules: RuleSet = request.getfixturevalue(which)
    d = rules.evaluate(make(), origin=origin, district=LUECHOW)
    assert d.decision == decision, d.why
    assert list(d.channels) == channels
    assert d.push is push
    if rule:
        assert any(rule in name for name in d.rules), d.rules
    else:
        assert d.rules == ()
    assert d.why


def test_unrouted_explains_nearest_rule(luechow: RuleSet) -> None:
    d = luechow.evaluate(cap(CHAIN[0]), origin="dwd")
    assert d.decision == "unrouted"
    assert "DWD: Wetterwarnungen (Minor) nur im Web': area does not touch the district" in d.why
    assert d.regions and not d.inside_district


def test_suppress_wins_over_publish(tmp_path: Path) -> None:
    rules = RuleSet.load(write_rules(tmp_path, """
[[rule]]
name = "alles ins Web"
when.status = ["Actual", "Test"]
then.publish = ["web", "push"]

[[rule]]
name = "Tests nie"
when.status = "Test"
then.suppress = true
"""))
    alert = nina("ha_nina_sample_warning_details.json")[0]
    assert rules.evaluate(alert, origin="nina").decision == "publish"
    d = rules.evaluate(_test_status(alert), origin="nina")
    assert (d.decision, d.rules, d.channels, d.push) == ("suppress", ("Tests nie",), (), False)
    assert "also matched 'alles ins Web'" in d.why


def test_union_of_actions_and_escalation(tmp_path: Path) -> None:
    rules = RuleSet.load(write_rules(tmp_path, """
[district]
ars = "033540000000"
audiences = ["einsatzkraefte"]

[[rule]]
name = "Web"
when.provider = "mowas"
then.publish = ["web"]

[[rule]]
name = "Tafeln für Einsatzkräfte, eine Stufe höher"
when.category = "Health"
when.area = "district"
then.publish = ["boards", "web"]
then.audiences = ["einsatzkraefte"]
then.escalate = 1

[[rule]]
name = "nur Dienst"
when.event = "gefahreninfo*"
then.set_severity = "Moderate"
"""))
    d = rules.evaluate(nina("ha_nina_sample_warning_details.json")[0], origin="nina")
    assert d.decision == "publish"
    assert d.channels == ("web", "boards")
    assert d.audiences == ("public", "einsatzkraefte")
    assert len(d.rules) == 3 and d.severity is Severity.MODERATE
    assert "severity Minor -> Moderate" in d.why


def test_status_defaults_to_actual_and_no_match_is_never_everywhere(tmp_path: Path) -> None:
    rules = RuleSet.load(write_rules(tmp_path, """
[[rule]]
name = "alle DWD"
when.provider = "dwd"
then.publish = ["web"]
"""))
    alert = cap(CHAIN[0])
    assert rules.evaluate(alert, origin="dwd").decision == "publish"
    d = rules.evaluate(variant(alert, ".x", status=Status.EXERCISE), origin="dwd")
    assert (d.decision, d.channels) == ("unrouted", ())
    assert "status Exercise" in d.why


@pytest.mark.parametrize(("when", "matches"), [
    ('when.event_code = "II=84"', True),
    ('when.event_code = "II=80..89"', True),
    ('when.event_code = ["II=61", "II=62"]', False),
    ('when.event = "glätte"', True),
    ('when.event = "VORAB*"', False),
    ('when.category = "Met"', True),
    ('when.min_severity = "Minor"', True),
    ('when.min_severity = "Moderate"', False),
    ('when.max_severity = "Minor"', True),
    ('when.min_urgency = "Expected"', True),
    ('when.min_certainty = "Observed"', False),
    ('when.language = "de*"', True),
    ('when.language = "en"', False),
    ('when.msg_type = "Update"', False),
    ('when.source = "dwd*"', True),
    ('when.source = "nina"', False),
    ('when.sender = "*@dwd.de"', True),
    ('when.area = ["055700000000"]', True),            # Kreis Warendorf
    ('when.area = ["055700004004"]', True),            # a Gemeinde in it
    ('when.area = ["050000000000"]', True),            # Land NRW
    ('when.area = ["033540000000"]', False),           # Lüchow-Dannenberg
    ('when.area = { polygon = [[51.9, 7.9], [51.9, 8.1], [52.0, 8.1], [52.0, 7.9]] }', True),   # near Warendorf
    ('when.area = { polygon = [[53.0, 11.0], [53.0, 11.2], [53.1, 11.2], [53.1, 11.0]] }', False),  # Wendland
    ('when.max_outside_share = 0.5', False),
])
def test_each_condition_on_the_dwd_glaette_alert(tmp_path: Path, when: str, matches: bool) -> None:
    rules = RuleSet.load(write_rules(tmp_path, f"""
[[rule]]
name = "r"
{when}
then.publish = ["web"]
"""))
    d = rules.evaluate(cap(CHAIN[0]), origin="dwd-harz", district="055700000000")
    assert (d.decision == "publish") is matches, d.why


def test_unless_excludes(tmp_path: Path) -> None:
    rules = RuleSet.load(write_rules(tmp_path, """
[[rule]]
name = "DWD ohne Glätte"
when.provider = "dwd"
unless.event = "GLÄTTE"
then.publish = ["web"]
"""))
    d = rules.evaluate(cap(CHAIN[0]), origin="dwd")
    assert d.decision == "unrouted" and "unless" in d.why
    assert rules.evaluate(cap(CAP / "de_dwd_kweathercore_update-MUL.xml"), origin="dwd").decision == "publish"


def test_provider_by_sender() -> None:
    assert provider(cap(CHAIN[0])) == "dwd"
    details = nina("ha_nina_sample_warning_details.json")
    assert [provider(a) for a in details] == ["mowas", "dwd", "biwapp"]


# -- update significance: the DWD chain ---------------------------------------------------------------------------


def test_dwd_chain_pushes_only_news(warendorf: RuleSet) -> None:
    alerts = [cap(p) for p in CHAIN]
    decisions = [warendorf.evaluate(a, origin="dwd", previous=prev)
                 for prev, a in zip([None, *alerts[:-1]], alerts, strict=True)]
    assert [d.push for d in decisions] == [True, False, False, False]
    assert all(d.decision == "publish" for d in decisions)
    assert decisions[0].channels == ("push", "web", "boards")
    assert all(d.channels == ("web", "boards") for d in decisions[1:])
    assert "onset moved while the warning was already in force" in decisions[1].why
    assert "area_shrinks" in decisions[2].changes


def test_update_that_raises_severity_pushes_and_silent_update_never(warendorf: RuleSet) -> None:
    first, second = cap(CHAIN[0]), cap(CHAIN[1])
    worse = variant(second, ".worse", info_severity=Severity.SEVERE)
    d = warendorf.evaluate(worse, origin="dwd", previous=first)
    assert d.push and "severity" in d.changes and d.channels[0] == "push"
    silent = variant(worse, ".silent", codes=(*worse.codes, "SILENT_UPDATE"))
    d = warendorf.evaluate(silent, origin="dwd", previous=first)
    assert not d.push and "SILENT_UPDATE" in d.why and "push" not in d.channels
    unseen = warendorf.evaluate(second, origin="dwd", previous=None)
    assert unseen.push and "never saw" in unseen.why


def test_onset_moved_before_the_warning_is_in_force_pushes(warendorf: RuleSet) -> None:
    first = cap(CHAIN[0])
    later = variant(cap(CHAIN[1]), ".early", sent=first.sent + timedelta(minutes=30),
                    info_onset=first.infos[0].onset + timedelta(hours=2))
    d = warendorf.evaluate(later, origin="dwd", previous=first)
    assert d.push and "onset" in d.changes


# -- checking: every error, with file, line and field -------------------------------------------------------------


def test_check_reports_every_marked_error_with_line_and_field() -> None:
    problems = RuleSet.check(TDATA / "broken", sensors=SENSORS)
    errors = [p for p in problems if not p.warning]
    for name in ("rules.toml", "templates/kaputt.toml"):
        path = TDATA / "broken" / name
        marked = [n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                  if "ERROR" in line and not line.startswith("#")]
        reported = {p.line for p in errors if p.file.endswith(name)}
        assert marked and set(marked) - {39} <= reported, (name, sorted(set(marked) - reported))
    by_field = {p.field: p for p in errors}
    assert by_field["$.rule[1].when.msgType"].message.startswith("unknown key (did you mean msg_type?)")
    assert "Sever" in by_field["$.rule[1].when.min_severity"].message
    assert "'fax'" in by_field["$.rule[1].then.publish"].message
    assert "pegel-nirgendwo" in by_field["$.rule[3].when.sensor"].message
    assert "gibt-es-nicht" in by_field["$.rule[3].then.draft"].message
    assert "used twice" in by_field["$.rule[4].name"].message
    assert by_field["$.rule[5]"].line == 38
    assert by_field["$.text.de-DE.headline"].message.startswith("unknown placeholder {wert}")
    with pytest.raises(RulesError) as info:
        RuleSet.load(TDATA / "broken", sensors=SENSORS)
    assert len(info.value.errors) == len(errors)
    assert "rules.toml:14: $.rule[1].when.min_severity" in str(info.value)


def test_check_reports_toml_syntax_line() -> None:
    (problem,) = RuleSet.check(TDATA / "broken-syntax")
    assert problem.line == 7 and "not valid TOML" in problem.message


@pytest.mark.parametrize(("snippet", "field", "text"), [
    ('when.sensor = "pegel-hitzacker"\nwhen.above = 5\nwhen.rises_by = 3\nthen.draft = "t"', "$.rule[0].when",
     "exactly one of"),
    ('when.sensor = "pegel-hitzacker"\nwhen.rises_by = 3\nthen.draft = "t"', "$.rule[0].when", "within_minutes"),
    ('when.sensor = "pegel-hitzacker"\nwhen.above = 5\nthen.publish = ["web"]', "$.rule[0].then", "then.draft"),
    ('when.above = 5\nthen.publish = ["web"]', "$.rule[0].when.above", "needs when.sensor"),
    ('when.status = "Test"\nthen.suppress = false', "$.rule[0].then.suppress", "does nothing"),
    ('when.status = "Test"\nthen.push_on_update = ["onset"]\nthen.publish = ["web"]', "$.rule[0].then.push_on_update",
     "only matters"),
    ('when.status = "Test"\nthen.publish = ["web"]\nthen.push_on_update = ["wetter"]', "$.rule[0].then.push_on_update",
     "unknown change"),
    ('when.area = { polygon = [[53, 11]] }\nthen.publish = ["web"]', "$.rule[0].when.area.polygon", "at least 3"),
    ('when.event_code = "II=9..1"\nthen.publish = ["web"]', "$.rule[0].when.event_code", "backwards"),
    ('when.status = "Test"\nthen.draft = "t"\nthen.all_clear = "t"', "$.rule[0].then.all_clear", "only sensor rules"),
    ('when.sensor = "pegel-hitzacker"\nwhen.above = 5\nthen.draft = "a"', "$.rule[0].then.draft", "alert values"),
    ('when.status = "Test"\nthen.draft = "t"', "$.rule[0].then.draft", "sensor values"),
])
def test_check_messages(tmp_path: Path, snippet: str, field: str, text: str) -> None:
    sensor_tpl = 'event = "E"\ncategory = ["Met"]\nseverity = "Minor"\n[text."de-DE"]\nheadline = "{value}"\n' \
                 'description = "d"\n'
    alert_tpl = 'event = "E"\ncategory = ["Met"]\nseverity = "Minor"\n[text."de-DE"]\nheadline = "{headline}"\n' \
                'description = "d"\n'
    folder = write_rules(tmp_path, f'[[rule]]\nname = "r"\n{snippet}\n',
                         {"t": sensor_tpl, "a": alert_tpl,
                          "entwarnung": 'kind = "all_clear"\n' + sensor_tpl})
    problems = [p for p in RuleSet.check(folder, sensors=SENSORS) if not p.warning]
    assert any(p.field == field and text in p.message for p in problems), [str(p) for p in problems]
    assert all(p.line for p in problems)


def test_locator_finds_tables_keys_and_skips_multiline_strings() -> None:
    text = '[district]\nname = "x"\n\n[[rule]]\nname = "a"\ndescription = """\nwhen.fake = 1\n"""\n' \
           'when.status = "Test"\n\n[[rule]]\n[rule.then]\npublish = ["web"]\n[text."de-DE"]\nheadline = "h"\n'
    loc = Locator(text)
    assert loc.line(("district", "name")) == 2
    assert loc.line(("rule", 0)) == 4
    assert loc.line(("rule", 0, "when", "status")) == 9
    assert loc.line(("rule", 0, "when", "fake")) == 9
    assert loc.line(("rule", 1, "then", "publish")) == 13
    assert loc.line(("rule", 1, "then", "nothing")) == 12
    assert loc.line(("text", "de-DE", "headline")) == 15


# -- a broken file never replaces working rules -------------------------------------------------------------------


def test_broken_edit_never_replaces_the_rules_in_force(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    live = LiveRules.open(folder, sensors=SENSORS)
    good = live.current
    assert good is not None and live.health()["refused"] is None
    assert live.reload_if_changed() is None
    rule_file = folder / "luechow-dannenberg.toml"
    text = rule_file.read_text(encoding="utf-8")
    rule_file.write_text(text.replace('when.min_severity = "Severe"', 'when.min_severity = "Sehr schlimm"', 1),
                         encoding="utf-8")
    assert live.changed()
    assert live.reload_if_changed() is False
    assert live.current is good
    health = live.health()
    assert health["refused"] and "Sehr schlimm" in health["refused"]["errors"][0]
    assert live.reload_if_changed() is None  # the same broken state is not retried on every tick
    assert not live.reload()  # SIGHUP: tried again, still refused
    assert live.current is good
    (folder / "templates" / "kaputt.toml").write_text("event = 1\n", encoding="utf-8")
    rule_file.write_text(text, encoding="utf-8")
    assert live.reload_if_changed() is False and live.current is good  # a broken template blocks the swap too
    (folder / "templates" / "kaputt.toml").unlink()
    assert live.reload_if_changed() is True
    assert live.current is not good and live.health()["refused"] is None
    with pytest.raises(RulesError):
        LiveRules.open(TDATA / "broken")


# -- sensor conditions --------------------------------------------------------------------------------------------

T0 = datetime(2025, 1, 8, 6, 0, tzinfo=UTC)
TEMPLATES = {
    "warn": 'event = "Hochwasser"\ncategory = ["Met"]\nseverity = "Moderate"\n[text."de-DE"]\n'
            'headline = "{sensor} {value} {unit} seit {since}"\ndescription = "Schwelle {threshold}, Anstieg {rate}"\n',
    "entwarnung": 'kind = "all_clear"\nevent = "Hochwasser"\ncategory = ["Met"]\nseverity = "Minor"\n'
                  '[text."de-DE"]\nheadline = "Entwarnung {sensor}: {value} (Spitze {peak})"\ndescription = "d"\n',
}


def sensor_rules(tmp_path: Path, when: str) -> RuleSet:
    return RuleSet.load(write_rules(tmp_path, f'[[rule]]\nname = "s"\nwhen.sensor = "p"\n{when}\n'
                                              'then.draft = "warn"\n', TEMPLATES), sensors=["p"])


def run(rules: RuleSet, values: list[float | None], step_min: float = 5) -> list[tuple[int, str]]:
    """Feed readings every ``step_min`` minutes (None: no reading, but a tick); (index, fired|cleared) out."""
    watch = SensorWatch(rules, units={"p": "cm"})
    out = []
    for i, v in enumerate(values):
        t = T0 + timedelta(minutes=step_min * i)
        events = watch.tick(t) if v is None else watch.feed("p", t, v)
        out.extend((i, e.kind) for e in events)
    return out


@pytest.mark.parametrize(("when", "values", "expected"), [
    ("when.above = 250", [240, 251, 260, 249], [(1, "fired"), (3, "cleared")]),
    ("when.above = 250\nwhen.for_minutes = 10", [251, 255, 240, 251, 252, 253, 240],
     [(5, "fired"), (6, "cleared")]),
    ("when.above = 250\nwhen.clear_below = 230", [260, 240, 235, 250, 229, 231], [(0, "fired"), (4, "cleared")]),
    ("when.above = 250\nwhen.clear_below = 230", [260, 240, 260, 229, 260], [(0, "fired"), (3, "cleared"),
                                                                            (4, "fired")]),
    ("when.below = 50\nwhen.clear_above = 60", [70, 49, 55, 61], [(1, "fired"), (3, "cleared")]),
    ("when.rises_by = 30\nwhen.within_minutes = 15", [100, 110, 120, 131, 140, 145, 146, 147],
     [(3, "fired"), (6, "cleared")]),
    ("when.rises_by = 30\nwhen.within_minutes = 15", [100, 110, 120, 125, 130, 135, 140], []),
    ("when.rises_by = 30\nwhen.within_minutes = 15\nwhen.clear_rate = 0", [100, 131, 131, 131, 131, 130],
     [(1, "fired"), (4, "cleared")]),
    ("when.falls_by = 20\nwhen.within_minutes = 10", [100, 90, 79, 79, 79], [(2, "fired"), (4, "cleared")]),
    ("when.stale_minutes = 20", [100, None, None, None, None, 101], [(4, "fired"), (5, "cleared")]),
    ("when.stale_minutes = 20", [100, None, None, None, None, None, None], [(4, "fired")]),
    ("when.above = 250", [260, None, None, None, None, None], [(0, "fired")]),  # silence is no all-clear
])
def test_sensor_conditions(tmp_path: Path, when: str, values: list[float | None],
                           expected: list[tuple[int, str]]) -> None:
    assert run(sensor_rules(tmp_path, when), values) == expected


def test_sensor_gap_fires_stale_at_its_own_time_and_old_readings_are_ignored(tmp_path: Path) -> None:
    rules = sensor_rules(tmp_path, "when.stale_minutes = 30")
    watch = SensorWatch(rules)
    assert watch.feed("p", T0, 1) == []
    events = watch.feed("p", T0 + timedelta(hours=2), 2)
    assert [(e.kind, e.at) for e in events] == [("fired", T0 + timedelta(minutes=30)),
                                                ("cleared", T0 + timedelta(hours=2))]
    assert watch.feed("p", T0 + timedelta(hours=1), 3) == []
    ms = int((T0 + timedelta(hours=3)).timestamp() * 1000)
    assert [e.kind for e in watch.feed("p", ms + 3_600_000, 4)] == ["fired", "cleared"]  # epoch ms accepted


def test_sensor_drafts_carry_values_and_all_clear(tmp_path: Path) -> None:
    rules = sensor_rules(tmp_path, "when.above = 250\nwhen.clear_below = 230")
    watch = SensorWatch(rules, units={"p": "cm"})
    fired = watch.feed("p", T0, 262.0)[0]
    assert fired.draft.kind == "warning" and fired.template == "warn"
    assert fired.draft.headline().startswith("p 262 cm seit 08.01.2025 07:00")
    assert watch.active()[0]["rule"] == "s"
    watch.feed("p", T0 + timedelta(minutes=5), 270)
    cleared = watch.feed("p", T0 + timedelta(minutes=10), 229.5)[0]
    assert cleared.draft.kind == "all_clear" and cleared.template == "entwarnung"
    assert cleared.draft.headline() == "Entwarnung p: 229.5 (Spitze 270)"
    alert = cleared.draft.to_alert(sender="warnhub@luechow-dannenberg.de", district_name="LK", district_ars=LUECHOW)
    assert alert.msg_type.value == "Cancel" and alert.infos[0].response_types[0].value == "AllClear"
    assert watch.active() == []


def test_sensor_state_survives_a_reload_of_unchanged_rules(tmp_path: Path) -> None:
    rules = sensor_rules(tmp_path / "a", "when.above = 250")
    watch = SensorWatch(rules)
    assert [e.kind for e in watch.feed("p", T0, 260)] == ["fired"]
    watch.swap(sensor_rules(tmp_path / "b", "when.above = 250"))
    assert watch.feed("p", T0 + timedelta(minutes=1), 261) == []  # no second draft
    watch.swap(sensor_rules(tmp_path / "c", "when.above = 255"))
    assert [e.kind for e in watch.feed("p", T0 + timedelta(minutes=2), 262)] == ["fired"]  # changed rule: new state


def test_bundled_templates_render_for_the_hitzacker_sequence(luechow: RuleSet) -> None:
    from hub.decide.rules.replay import replay

    lines = list(replay(luechow, [TDATA / "readings" / "pegel-hitzacker.jsonl"], units={"pegel-hitzacker": "cm"}))
    got = [(line["input"].rsplit(":", 1)[1], line["event"], line["draft"]) for line in lines]
    assert got == [("3", "fired", "pegel-steigt"), ("5", "fired", "hochwasser-vorwarnung"),
                   ("9", "cleared", "entwarnung"), ("13", "fired", "sensor-ausfall"),
                   ("13", "cleared", "hochwasser-entwarnung"), ("13", "cleared", "sensor-wieder-da")]
    assert all(line["decision"] == "draft" and line["push"] is False for line in lines)
    assert "?" not in lines[1]["headline"] and "550 cm" in lines[1]["headline"]
    assert lines[4]["all_clear"] is True


def test_alert_draft_from_template(luechow: RuleSet) -> None:
    alert = variant(nina("ha_nina_sample_warning_details.json")[1], ".x")
    draft = luechow.draft_for_alert(alert, "unwetter-hinweis", rule="r")
    assert draft.headline().startswith("Landkreis Lüchow-Dannenberg: ")
    assert set(draft.texts) == {"de-DE", "de-DE-x-ls", "en"}
    made = draft.to_alert(sender="x@y", district_name="LK", district_ars=LUECHOW)
    assert made.infos[0].parameters[0].value == "BBK-ISC-009 BBK-ISC-016"


# -- the command line ---------------------------------------------------------------------------------------------


def warnhub(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], cwd=str(cwd), env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)


def test_cli_rules_check(tmp_path: Path) -> None:
    shutil.copy(REPO / "config.toml", tmp_path / "config.toml")
    shutil.copytree(RULES, tmp_path / "rules")
    ok = warnhub("rules", "check", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "ok (10 alert rules, 3 sensor rules, 7 templates" in ok.stdout
    bad = warnhub("rules", "check", "--json", str(TDATA / "broken"), cwd=tmp_path)
    assert bad.returncode == 1
    rows = [json.loads(line) for line in bad.stdout.splitlines()]
    assert any(r["field"] == "$.rule[3].when.sensor" and r["line"] == 27 for r in rows)  # sensors from config
    assert "error(s)" in bad.stderr


def test_cli_rules_replay_dwd_chain(tmp_path: Path) -> None:
    out = warnhub("rules", "replay", "--rules", str(TDATA / "dwd-chain"), "--json", *map(str, CHAIN), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["push"] for line in lines] == [True, False, False, False]
    for line in lines:
        assert {"input", "alert", "rules", "decision", "channels", "push", "regions", "why"} <= set(line)
        assert "055700000000" in line["regions"]
    assert [line["previous"] is None for line in lines] == [True, False, False, False]


def test_cli_rules_replay_mixed_inputs(tmp_path: Path) -> None:
    shutil.copy(REPO / "config.toml", tmp_path / "config.toml")
    shutil.copytree(RULES, tmp_path / "rules")
    out = warnhub("rules", "replay", "--json", str(NINA / "ha_nina_sample_warning_details.json"),
                  str(TDATA / "readings" / "pegel-hitzacker.jsonl"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["decision"] for line in lines[:3]] == ["publish", "unrouted", "unrouted"]
    sensor = lines[3:]
    assert len(sensor) == 6 and sensor[1]["regions"] == ["033545406009"]  # the gauge's ARS from config
    assert "cm" in sensor[1]["headline"]
    text = warnhub("rules", "replay", str(CHAIN[0]), cwd=tmp_path)
    assert text.returncode == 0 and text.stdout.startswith("unrouted") and "why: no rule matched" in text.stdout
    broken = warnhub("rules", "replay", "--rules", str(TDATA / "broken"), str(CHAIN[0]), cwd=tmp_path)
    assert broken.returncode == 2 and "error(s) in the rules" in broken.stderr
