"""Warning templates (hub/decide/rules/templates.py): the console's compose templates in rules/templates/compose/, their
review dates, their checks (file, line, field), and the rule-drafting templates in rules/templates/ unchanged."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from hub.cap.model import Reference, Severity
from hub.cap.serialize import to_xml
from hub.cap.validate import SignaturePolicy, Validator, Verdict
from hub.decide.rules.engine import RuleSet
from hub.decide.rules.problems import RulesError
from hub.decide.rules.template_checks import check_compose, check_template, compose_templates, load_templates
from hub.decide.rules.templates import (
    BIWAPP_CATEGORIES,
    COMPOSE_FOLDER,
    LANGUAGE_TAGS,
    Template,
    due_for_review,
    review_notice,
)
from tests.kits.hubproc import REPO

RULES = REPO / "rules"
LUECHOW = "033540000000"
DISTRICT = "Landkreis Lüchow-Dannenberg"
ORTE = ["Hitzacker (Elbe)", "Dannenberg (Elbe)", "Gartow"]
NOW = datetime(2026, 11, 21, 13, 5, tzinfo=UTC)  # 14:05 in Lüchow

EVENT_CODES = {"bombenfund": "BBK-EVC-079", "feuer": "BBK-EVC-030", "hochwasser": "BBK-EVC-038",
               "unwetter": "BBK-EVC-064", "verkehrsunfall": "BBK-EVC-075", "chemieunfall": None,
               "erdrutsch-lawine": None, "grossschadenslage": None, "unterrichtsausfall": None, "seuchenfall": None}
"""Only codes FACTS.md documents from observed messages; the rest stay empty until eventCodes.json confirms them."""
ISC_TEXT = {"BBK-ISC-001": "Meiden Sie das betroffene Gebiet", "BBK-ISC-009": "Informieren Sie sich in den Medien",
            "BBK-ISC-014": "Wir informieren Sie, wenn die Gefahr vorüber ist",
            "BBK-ISC-016": "Folgen Sie den Anweisungen der Einsatzkräfte",
            "BBK-ISC-022": "Bereiten Sie sich auf eine Evakuierung vor"}
"""The instruction codes FACTS.md lists with their text; a code a template names must be said in its German text."""

GOOD = """\
title = "Probe"
event = "Probe"
category = ["Other"]
severity = "Minor"
all_clear = "probe-ende"
default_hours = 2
{extra}
[text."de-DE"]
headline = "Probe in {{ort}}"
description = "Stand {{time}}, bis {{until}}."

[text."de-DE-x-ls"]
headline = "Probe in {{ort}}"
description = "Die Nachricht ist vom {{time}}. Die Probe dauert bis {{until}}."

[text.en]
headline = "Test in {{ort}}"
description = "As of {{time}}, until {{until}}."
"""
END = """\
title = "Probe beendet"
kind = "all-clear"
event = "Probe"
category = ["Other"]
severity = "Minor"
reviewed = 2026-01-10
reviewed_by = "Leitstelle"

[text."de-DE"]
headline = "Entwarnung: Probe in {ort}"
description = "Vorbei."

[text."de-DE-x-ls"]
headline = "Entwarnung für {ort}"
description = "Vorbei."

[text.en]
headline = "All clear for {ort}"
description = "Over."
"""


def compose_folder(root: Path, files: dict[str, str]) -> Path:
    """A rules folder with console templates only (``root`` is what compose_templates takes)."""
    folder = root / COMPOSE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.toml").write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def shipped() -> dict[str, Template]:
    return {t.name: t for t in compose_templates(RULES)}


# -- the shipped console templates --------------------------------------------------------------------------------


def test_shipped_templates_check_clean() -> None:
    assert check_compose(RULES) == []  # no errors and no warnings: every one reviewed, every warning has its all-clear


def test_one_warning_and_one_all_clear_per_biwapp_category(shipped: dict[str, Template]) -> None:
    warnings = [t for t in shipped.values() if t.kind == "warning"]
    assert sorted(str(t.biwapp_category) for t in warnings) == sorted(BIWAPP_CATEGORIES)
    for tpl in warnings:
        end = shipped[str(tpl.all_clear)]
        assert end.kind == "all_clear" and end.biwapp_category == tpl.biwapp_category, tpl.name
        assert end.event == tpl.event and end.categories == tpl.categories, tpl.name
        assert end.audience == tpl.audience and end.default_channels == tpl.default_channels, tpl.name
        assert end.texts["de-DE"].headline.startswith("Entwarnung: "), end.name
        assert end.event_code == "BBK-EVC-078", end.name
    assert {t.name for t in shipped.values()} == {t.name for t in warnings} | {t.all_clear for t in warnings}


def test_event_codes_are_only_the_sourced_ones(shipped: dict[str, Template]) -> None:
    assert {n: shipped[n].event_code for n in EVENT_CODES} == EVENT_CODES


def test_instruction_codes_match_the_german_text(shipped: dict[str, Template]) -> None:
    for tpl in shipped.values():
        for code in tpl.instruction_codes:
            assert code in ISC_TEXT, (tpl.name, code)
            assert ISC_TEXT[code] in tpl.texts["de-DE"].instruction, (tpl.name, code)


def test_school_closures_reach_only_the_topic(shipped: dict[str, Template]) -> None:
    for name in ("unterrichtsausfall", "entwarnung-unterrichtsausfall"):
        assert shipped[name].audience == "topic" and shipped[name].severity is Severity.MINOR
        assert shipped[name].default_channels == ("push",)
    assert {t.name for t in shipped.values() if t.audience == "topic"} == {"unterrichtsausfall",
                                                                           "entwarnung-unterrichtsausfall"}


@pytest.mark.parametrize("name", ["bombenfund", "chemieunfall", "feuer", "hochwasser", "erdrutsch-lawine",
                                  "grossschadenslage", "unwetter", "verkehrsunfall", "unterrichtsausfall",
                                  "seuchenfall"])
def test_every_template_renders_in_nine_languages_and_makes_valid_cap(shipped: dict[str, Template], name: str) -> None:
    validator = Validator()
    warning = shipped[name]
    draft = warning.compose(ort=ORTE, district=DISTRICT, time=NOW)
    end = shipped[str(warning.all_clear)].compose(ort=ORTE, district=DISTRICT, time=NOW + timedelta(hours=1))
    for made in (draft, end):
        assert list(made.texts) == list(LANGUAGE_TAGS)
        for lang, text in made.texts.items():
            for part in (text.headline, text.description, text.instruction):
                assert not re.search(r"[{}]", part), (made.template, lang, part)
            assert "Hitzacker (Elbe)" in text.headline + text.description, (made.template, lang)
            assert "Gartow" in text.headline + text.description, (made.template, lang)
    assert draft.expires == NOW + timedelta(hours=warning.default_hours or 0)
    assert draft.all_clear == warning.all_clear and draft.channels == warning.default_channels
    alert = draft.to_alert(sender="leitstelle@luechow-dannenberg.example", district_name=DISTRICT,
                           district_ars=LUECHOW, sent=NOW)
    cancel = end.to_alert(sender=alert.sender, district_name=DISTRICT, district_ars=LUECHOW,
                          sent=NOW + timedelta(hours=1),
                          references=(Reference(alert.sender, alert.identifier, alert.sent),))
    for made_alert in (alert, cancel):
        report = validator.check(to_xml(made_alert), policy=SignaturePolicy.IGNORE)
        assert report.verdict is Verdict.VALID, (made_alert.identifier, report.errors, report.warnings)
    assert all(i.expires == draft.expires for i in alert.infos)
    assert cancel.msg_type.value == "Cancel"


def test_places_and_times_in_each_language(shipped: dict[str, Template]) -> None:
    summer = datetime(2026, 7, 3, 6, 30, tzinfo=UTC)  # 08:30 in summer time
    draft = shipped["unwetter"].compose(ort=ORTE, district=DISTRICT, time=summer,
                                        until=summer + timedelta(hours=10))
    de, ls, en = draft.texts["de-DE"], draft.texts["de-DE-x-ls"], draft.texts["en"]
    assert de.description.startswith("Für Hitzacker (Elbe), Dannenberg (Elbe) und Gartow besteht bis "
                                      "voraussichtlich 03.07.2026, 18:30 Uhr Unwettergefahr.")
    assert de.description.endswith("Stand: 03.07.2026, 08:30 Uhr.")
    assert "vielleicht bis 3. Juli 2026, 18:30 Uhr." in ls.description
    assert en.description.startswith("Severe weather is expected in Hitzacker (Elbe), Dannenberg (Elbe) and Gartow "
                                     "until about 3 July 2026, 18:30.")
    assert draft.values["ort"] == "Hitzacker (Elbe), Dannenberg (Elbe) und Gartow"
    one = shipped["feuer"].compose(ort=[" ", "Lüchow (Wendland)"], district=DISTRICT, time=NOW)
    assert one.texts["de-DE"].headline == "Großbrand in Lüchow (Wendland): starke Rauchentwicklung"
    whole = shipped["seuchenfall"].compose(ort=[], district=DISTRICT, time=NOW)
    assert whole.texts["de-DE"].headline.startswith(f"Tierseuche in {DISTRICT}:")
    assert f"Veterinäramt ({DISTRICT})" in whole.texts["de-DE"].instruction


def test_compose_refuses_what_it_cannot_fill(tmp_path: Path, shipped: dict[str, Template]) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        shipped["feuer"].compose(ort=ORTE, district=DISTRICT, time=datetime(2026, 11, 21, 14, 0))
    with pytest.raises(ValueError, match="must lie after"):
        shipped["feuer"].compose(ort=ORTE, district=DISTRICT, time=NOW, until=NOW - timedelta(hours=1))
    root = compose_folder(tmp_path, {"probe": GOOD.format(extra="").replace("default_hours = 2\n", ""),
                                     "probe-ende": END})
    with pytest.raises(RulesError) as info:  # the texts say {until} and nothing supplies a default
        compose_templates(root)
    assert [(p.field, p.line, "default_hours" in p.message) for p in info.value.errors] == [("$.text.de-DE", 7, True)]


def test_as_dict_is_what_the_picker_needs(shipped: dict[str, Template]) -> None:
    row = shipped["hochwasser"].as_dict(date(2026, 12, 1))
    json.dumps(row)
    assert row["title"] == "Hochwasser" and row["biwapp_category"] == "Hochwasser"
    assert row["event_code"] == "BBK-EVC-038" and row["languages"] == list(LANGUAGE_TAGS)
    assert row["placeholders"] == ["ort", "time"] and row["all_clear"] == "entwarnung-hochwasser"
    assert row["reviewed"] == "2026-11-21" and row["days_since_review"] == 10 and row["stale"] is False
    assert row["review_due"] == "2027-11-21"


# -- review dates ---------------------------------------------------------------------------------------------------


def test_due_for_review_names_the_file_and_its_dates(tmp_path: Path) -> None:
    """What `warnhub check` and the console report: each template due on the given day, with file, review date
    and the day it fell due; one never reviewed says so. The clock is the caller's, never the calendar."""
    reviewed = 'reviewed = 2025-01-10\nreviewed_by = "Leitstelle"\n'
    root = compose_folder(tmp_path, {"probe": GOOD.format(extra=reviewed), "nie": GOOD.format(extra=""),
                                     "probe-ende": END})
    templates = compose_templates(root)
    assert due_for_review(templates, date(2026, 1, 10)) == [t for t in templates if t.name == "nie"]
    due = due_for_review(templates, date(2026, 1, 11))
    assert [t.name for t in due] == ["nie", "probe"]  # by file
    assert review_notice(due[1]) == (f"Vorlage zur Prüfung fällig / template due for review: {due[1].file} "
                                     "(geprüft / reviewed 2025-01-10, fällig seit / due since 2026-01-10)")
    assert review_notice(due[0]).endswith("nie.toml (nie geprüft / never reviewed)")
    assert [t.name for t in due_for_review(templates, datetime(2027, 1, 11, 12, tzinfo=UTC))] == \
        ["nie", "probe-ende", "probe"]  # by file: probe-ende.toml before probe.toml


def test_stale_after_review_every_days(tmp_path: Path) -> None:
    reviewed = 'reviewed = 2025-01-10\nreviewed_by = "Leitstelle"\n'
    root = compose_folder(tmp_path, {"probe": GOOD.format(extra=reviewed), "nie": GOOD.format(extra=""),
                                     "probe-ende": END.replace("reviewed_by", "review_every_days = 30\nreviewed_by")})
    templates = {t.name: t for t in compose_templates(root)}
    probe, end, never = templates["probe"], templates["probe-ende"], templates["nie"]
    assert probe.review_every_days == 365 and probe.review_due() == date(2026, 1, 10)
    assert probe.days_since_review(date(2026, 1, 10)) == 365 and not probe.stale(date(2026, 1, 10))
    assert probe.stale(date(2026, 1, 11))
    assert not end.stale(date(2026, 2, 9)) and end.stale(date(2026, 2, 10))
    # a datetime counts in German local time: 23:30 UTC on 10 January is already 11 January in Lüchow
    assert probe.stale(datetime(2026, 1, 10, 23, 30, tzinfo=UTC))
    assert not probe.stale(datetime(2026, 1, 10, 22, 59, tzinfo=UTC))
    assert never.reviewed is None and never.days_since_review(date(2026, 1, 1)) is None
    assert never.stale(date(2020, 1, 1))  # never reviewed: always due
    warnings = [p for p in check_compose(root) if p.warning]
    assert [(Path(p.file).name, p.field) for p in warnings] == [("nie.toml", "$")]
    assert "never reviewed" in warnings[0].message


def test_shipped_templates_are_fresh(shipped: dict[str, Template]) -> None:
    today = date(2026, 11, 21)
    assert all(t.reviewed and t.reviewed.year == 2026 and t.reviewed_by for t in shipped.values())
    assert not any(t.stale(today) for t in shipped.values())
    assert all(t.stale(today + timedelta(days=366)) for t in shipped.values())


# -- checking: every error with file, line and field ---------------------------------------------------------------

BROKEN = """\
title = 3                                   # ERROR $.title
biwapp_category = "Brand"                   # ERROR $.biwapp_category
reviewed = "2026-10-01"                     # ERROR $.reviewed
review_every_days = 0                       # ERROR $.review_every_days
kind = "allclear"                           # ERROR $.kind
default_hours = -1                          # ERROR $.default_hours
default_channels = ["push", "fax"]          # ERROR $.default_channels
audience = "alle"                           # ERROR $.audience
event = "Probe"
category = ["Other"]
severity = "Minor"
event_code = "EVC-79"                       # ERROR $.event_code
instruction_codes = ["BBK-ISC-001", "ISC-9"]  # ERROR $.instruction_codes
all_clear = "gibt-es-nicht"

[text."de-DE"]
headline = "Sperrung {strasse} in {ort}"    # ERROR $.text.de-DE.headline
description = "Bis {until}."

[text.en]
headline = "Closure"
description = "x"
"""


def marked(text: str) -> dict[int, str]:
    return {n: line.split("# ERROR ")[1].strip() for n, line in enumerate(text.splitlines(), 1) if "# ERROR " in line}


def test_malformed_fields_are_refused_with_file_line_and_field(tmp_path: Path) -> None:
    root = compose_folder(tmp_path, {"kaputt": BROKEN})
    with pytest.raises(RulesError) as info:
        compose_templates(root)
    errors = info.value.errors
    expected = marked(BROKEN)
    got = {(p.line, p.field) for p in errors}
    assert {(line, fld) for line, fld in expected.items()} <= got, sorted(got)
    assert all(p.file == str(root / COMPOSE_FOLDER / "kaputt.toml") for p in errors)
    by_field = {p.field: p.message for p in errors}
    assert "did you mean" in by_field["$.kind"] and "all-clear" in by_field["$.kind"]
    assert "(one of: Bombenfund, Chemieunfall, Feuer," in by_field["$.biwapp_category"]
    assert "no quotes" in by_field["$.reviewed"]
    assert "'fax'" in by_field["$.default_channels"]
    assert by_field["$.text.de-DE.headline"].startswith("unknown placeholder {strasse} (the console fills only")
    assert "BBK-EVC-nnn" in by_field["$.event_code"] and "BBK-ISC-nnn" in by_field["$.instruction_codes"]
    assert "$.all_clear" not in by_field  # a file with errors is left out before its references are checked
    warnings = [p for p in info.value.problems if p.warning]
    assert any(p.message == 'no [text."de-DE-x-ls"]' for p in warnings)
    assert str(errors[0]).startswith(f"{root / COMPOSE_FOLDER / 'kaputt.toml'}:")


def test_references_and_required_parts(tmp_path: Path) -> None:
    cases = {
        "ohne-titel": (GOOD.format(extra="").replace('title = "Probe"\n', ""), "$", "missing title"),
        "ohne-deutsch": (GOOD.format(extra="").replace('[text."de-DE"]', '[text."fr"]'), "$.text",
                         "German is required"),
        "eigenes-ende": (GOOD.format(extra="").replace("probe-ende", "eigenes-ende"), "$.all_clear",
                         "names this template itself"),
        "unbekanntes-ende": (GOOD.format(extra="").replace("probe-ende", "nie-ende"), "$.all_clear",
                             "unknown template 'nie-ende'"),
        "geprueft-von": (GOOD.format(extra='reviewed_by = "X"\n'), "$.reviewed_by", "without reviewed"),
        "thema-im-web": (GOOD.format(extra='audience = "topic"\ndefault_channels = ["push", "web"]\n'),
                         "$.default_channels", "by push to its subscribers only"),
    }
    for name, (text, fld, message) in cases.items():
        root = compose_folder(tmp_path / name, {name: text, "probe-ende": END})
        errors = [p for p in check_compose(root) if not p.warning]
        assert [(p.field, message in p.message) for p in errors] == [(fld, True)], (name, errors)
        if fld != "$":
            assert errors[0].line is not None, name
    root = compose_folder(tmp_path / "kette", {"probe": GOOD.format(extra=""), "probe-ende": GOOD.format(extra="")
                                               .replace('all_clear = "probe-ende"\n', "")})
    errors = [p for p in check_compose(root) if not p.warning]
    assert [(Path(p.file).name, p.field, p.line) for p in errors] == [("probe.toml", "$.all_clear", 5)]
    assert "is not an all-clear" in errors[0].message
    root = compose_folder(tmp_path / "doppelt", {"probe": END.replace('severity = "Minor"',
                                                                      'severity = "Minor"\nall_clear = "x"')})
    assert [p.message for p in check_compose(root) if not p.warning] == ["an all-clear has no all-clear of its own"]


def test_no_compose_folder_means_no_templates(tmp_path: Path) -> None:
    assert compose_templates(tmp_path) == [] and check_compose(tmp_path) == []


# -- the rule-drafting templates keep working -----------------------------------------------------------------------


def test_rule_templates_load_as_before_and_compose_ones_stay_out() -> None:
    rules = RuleSet.load(RULES, sensors=["pegel-hitzacker", "wind-luechow"])
    assert sorted(rules.templates) == ["entwarnung", "hochwasser-entwarnung", "hochwasser-vorwarnung", "pegel-steigt",
                                       "sensor-ausfall", "sensor-wieder-da", "unwetter-hinweis"]
    problems: list = []
    again = load_templates(RULES / "templates", problems)
    assert problems == [] and again == rules.templates  # one format: the same templates through this module
    draft = rules.render("entwarnung", {"sensor": "pegel-hitzacker", "value": 480, "unit": "cm",
                                        "since": "08.01.2025 06:00"})
    assert draft.kind == "all_clear" and draft.headline() == "Entwarnung: Messstelle pegel-hitzacker wieder im " \
                                                              "Normalbereich"
    alert = draft.to_alert(sender="x@y", district_name=DISTRICT, district_ars=LUECHOW,
                           references=(Reference("x@y", "w1", NOW),))
    assert alert.infos[0].event_codes[0].value == "BBK-EVC-078" and alert.infos[0].expires is None
    assert draft.audience == "public" and draft.channels == () and draft.expires is None


def test_rule_templates_cannot_use_the_console_placeholders(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('event = "E"\ncategory = ["Other"]\nseverity = "Minor"\n\n[text."de-DE"]\n'
                    'headline = "In {ort}"\ndescription = "bis {until}"\n', encoding="utf-8")
    problems: list = []
    assert check_template(path, problems) is None
    errors = [p for p in problems if not p.warning]
    assert [(p.line, p.field) for p in errors] == [(6, "$.text.de-DE.headline"), (7, "$.text.de-DE.description")]
    assert all("only console templates" in p.message for p in errors)
    assert check_template(path, [], compose=True) is None  # a console template still needs its title



# -- nine languages: review state per language, placeholders alike in every language, the CAP infos ------------------

TURKISH = """
[text."tr-TR"]
headline = "{ort} bölgesinde deneme"
description = "Durum: {time}."
"""


def test_a_language_that_loses_or_adds_a_placeholder_is_refused_with_file_language_and_field(tmp_path: Path) -> None:
    """The German description says until when; a Turkish one without {until} would hide the end of a closure."""
    root = compose_folder(tmp_path, {"probe": GOOD.format(extra="") + TURKISH.replace("deneme", "deneme {district}"),
                                     "probe-ende": END})
    with pytest.raises(RulesError) as info:
        compose_templates(root)
    got = [(Path(p.file).name, p.line, p.field, p.message) for p in info.value.errors]
    assert got == [("probe.toml", 21, "$.text.tr-TR.headline",
                    "adds {district}, which the German text does not have"),
                   ("probe.toml", 22, "$.text.tr-TR.description",
                    "loses {until} of the German text (every language says the same)")]
    root = compose_folder(tmp_path / "gut", {"probe": GOOD.format(extra="") + TURKISH.replace(
        "{time}.", "{time}, {until} zamanına kadar."), "probe-ende": END})
    assert [t.name for t in compose_templates(root)] == ["probe", "probe-ende"]


def test_language_tags_are_the_nine_each_once_and_reviews_complete(tmp_path: Path) -> None:
    cases = {
        "ukrainisch": (TURKISH.replace("tr-TR", "uk"), "$.text.uk", "not a tag of one of the nine languages"),
        "doppelt": (TURKISH.replace("tr-TR", "en-GB"), "$.text.en-GB", "the same language as 'en'"),
        "halb": (TURKISH + 'reviewed_by = "Ayşe Y."\n', "$.text.tr-TR.reviewed_on", "together"),
    }
    for name, (extra, fld, message) in cases.items():
        text = GOOD.format(extra="") + extra.replace("{time}.", "{time}, {until}.")
        errors = [p for p in check_compose(compose_folder(tmp_path / name, {name: text.replace(
            "probe-ende", "ende"), "ende": END})) if not p.warning]
        assert [(p.field, message in p.message) for p in errors] == [(fld, True)], (name, errors)


def test_each_language_carries_its_review_state(shipped: dict[str, Template]) -> None:
    """German, Leichte Sprache and English keep the template's review; the six added languages are unreviewed
    until a native speaker confirms them (the console shows it, and may send only reviewed ones)."""
    for tpl in shipped.values():
        reviewed = [lang for lang, text in tpl.texts.items() if text.reviewed]
        assert reviewed == ["de-DE", "de-DE-x-ls", "en"], tpl.name
        assert tpl.texts["de-DE"].reviewed_on == tpl.reviewed and tpl.texts["en"].reviewed_by == tpl.reviewed_by
    row = shipped["bombenfund"].as_dict(date(2026, 12, 1))
    assert row["review"]["tr-TR"] == {"reviewed": False, "reviewed_by": None, "reviewed_on": None}
    assert row["review"]["de-DE"]["reviewed"] is True and row["review"]["de-DE"]["reviewed_on"] == "2026-11-21"


def test_a_composed_bombenfund_goes_out_in_nine_infos_with_event_names_from_the_codes(
        shipped: dict[str, Template]) -> None:
    draft = shipped["bombenfund"].compose(ort=ORTE, district=DISTRICT, time=NOW)
    alert = draft.to_alert(sender="leitstelle@luechow-dannenberg.example", district_name=DISTRICT,
                           district_ars=LUECHOW, sent=NOW)
    assert [i.language for i in alert.infos] == ["de-DE", "de-DE-x-ls", "en", "ar", "es-ES", "fr-FR", "pl-PL",
                                                 "ru-RU", "tr-TR"]
    info = {i.language: i for i in alert.infos}
    tr = info["tr-TR"]
    assert tr.event == "Bomba bulundu" and info["de-DE"].event == "Bombenfund"
    assert info["en"].event == "Unexploded bomb found" and info["ar"].event == "العثور على قنبلة"
    assert tr.headline == ("Hitzacker (Elbe), Dannenberg (Elbe) ve Gartow bölgesinde patlamamış bomba bulundu: bölge "
                           "boşaltılıyor")
    assert tr.description and tr.description.endswith("bekleniyor: 22 Kasım 2026, 02:05. Durum: 21 Kasım 2026, 14:05.")
    assert tr.instruction and tr.instruction.startswith("Yasak bölgeyi zamanında terk edin.")
    assert info["es-ES"].description and "hasta el 22 de noviembre de 2026, 02:05" in info["es-ES"].description
    report = Validator().check(to_xml(alert), policy=SignaturePolicy.IGNORE)
    assert report.verdict is Verdict.VALID, report.errors


def test_a_template_without_a_language_invents_none(tmp_path: Path) -> None:
    """GOOD has German, Leichte Sprache and English: its warning carries those three and nothing made up."""
    root = compose_folder(tmp_path, {"probe": GOOD.format(extra=""), "probe-ende": END})
    probe = {t.name: t for t in compose_templates(root)}["probe"]
    alert = probe.compose(ort=ORTE, district=DISTRICT, time=NOW).to_alert(
        sender="x@y", district_name=DISTRICT, district_ars=LUECHOW, sent=NOW)
    assert [i.language for i in alert.infos] == ["de-DE", "de-DE-x-ls", "en"]
    assert [i.event for i in alert.infos] == ["Probe"] * 3  # no name in the codes table: the German word stays
