"""The citizen pages' languages without HTTP: templates render each language from its own catalogue (also when
languages alternate), times read as before in German and English and in Babel's words elsewhere, and a warning's
text is picked for the reader with the page saying when it is not in their language."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jinja2
from babel.dates import format_skeleton

from hub.i18n.catalogs import translator
from hub.i18n.languages import CODES
from hub.i18n.templates import install, localized
from hub.publish.publications import Notice, Publication
from hub.web import citizen_view as view
from hub.web.citizen_texts import SCRIPT_TEXTS, SW_TEXTS, script_texts, sw_body

NOW = datetime(2031, 1, 14, 9, 0, tzinfo=UTC)  # a Tuesday morning in Berlin
EVENING = datetime(2031, 1, 14, 17, 30, tzinfo=UTC)  # 18:30 in Berlin (CET)


def test_each_language_renders_its_own_catalogue_also_when_languages_alternate() -> None:
    env = install(jinja2.Environment(loader=jinja2.DictLoader(
        {"page.html": '{% from "m.html" import word %}{{ _("Aktuelle Warnungen") }}|{{ word() }}',
         "m.html": '{% macro word() %}{{ _("Keine Warnungen") }}{% endmacro %}'}), autoescape=True))
    rendered = {}
    for code in (*CODES, "tr", "de", "ar"):  # alternating: each overlay keeps its language
        rendered[code] = localized(env, code, "pages").get_template("page.html").render()
        t = translator(code, "pages")
        assert rendered[code] == f'{t.gettext("Aktuelle Warnungen")}|{t.gettext("Keine Warnungen")}', code
    assert len({rendered[c] for c in CODES}) == len(CODES)  # nine different pages
    assert env.get_template("page.html").render() == "Aktuelle Warnungen|Keine Warnungen"  # the base stays German


def test_times_in_german_and_english_as_before_and_in_babel_for_the_others() -> None:
    assert view.local(EVENING, "de", now=NOW) == "heute, 18:30 Uhr"
    assert view.local(EVENING, "de", now=NOW.replace(day=13)) == "morgen, 18:30 Uhr"
    assert view.local(EVENING, "de", now=NOW.replace(day=20)) == "Di. 14.01.2031, 18:30 Uhr"
    assert view.local(EVENING, "de", date=False) == "18:30 Uhr"
    assert view.local(EVENING, "de-x-ls", now=NOW) == "heute, 18:30 Uhr"
    assert view.local(EVENING, "en", now=NOW) == "today 18:30"
    assert view.local(EVENING, "en", now=NOW.replace(day=20)) == "Tue 14 Jan 2031, 18:30"
    assert view.local(None, "en") == "until further notice"
    tr = translator("tr", "pages")
    assert view.local(EVENING, "tr", now=NOW) == tr.format("heute, %(time)s Uhr", time="18:30") != "heute, 18:30 Uhr"
    day = format_skeleton("yMMMEd", EVENING, tzinfo=view.BERLIN, locale="ru_RU")
    assert view.local(EVENING, "ru", now=NOW.replace(day=20)).startswith(day)
    assert view.local(None, "ar") == translator("ar", "pages").gettext("bis auf Weiteres") != "bis auf Weiteres"


def _publication(*languages: str) -> Publication:
    notices = tuple(Notice(lang, "STURM", f"headline {lang}", "", "", "", "DWD", None) for lang in languages)
    return Publication(1, "w1", 1, None, None, "id-1", "opendata@dwd.de", NOW, "Alert", "Actual", "Severe",
                       "Immediate", None, True, ("web",), (), notices, None, "Public")


def test_a_warning_in_the_readers_language_else_english_else_german_and_said_so() -> None:
    pub = _publication("de-DE", "de-DE-x-ls", "en-GB", "tr-TR")
    assert view.notice_of(pub, "tr").language == "tr-TR" and view.translated("tr-TR", "tr")
    assert view.notice_of(pub, "de-x-ls").language == "de-DE-x-ls" and view.translated("de-DE-x-ls", "de-x-ls")
    assert view.notice_of(pub, "ar").language == "en-GB" and not view.translated("en-GB", "ar")
    german = _publication("de-DE")
    assert view.notice_of(german, "ar").language == "de-DE" and not view.translated("de-DE", "ar")
    assert view.notice_of(german, "de-x-ls").language == "de-DE" and not view.translated("de-DE", "de-x-ls")
    assert view.notice_of(german, "de").language == "de-DE" and view.translated("de-DE", "de")


def test_words_of_states_and_links_keep_the_language() -> None:
    pub = _publication("de-DE")
    assert view.badge(pub, "cancelled", "de")["word"] == "Beendet – aufgehoben"
    assert view.badge(pub, "cancelled", "fr")["word"] == translator("fr", "pages").gettext("Beendet – aufgehoben")
    assert view.history([pub], "pl", NOW)[0]["kind"] == translator("pl", "pages").gettext("Erstmeldung")
    assert view.url("/abonnieren", "de") == "/abonnieren"
    assert view.url("/abonnieren", "de-x-ls") == "/abonnieren?lang=de-x-ls"
    assert view.warning_url("w1", "ar", text="en-GB") == "/warnungen/w1?text=en-GB&lang=ar"


def test_script_and_service_worker_texts_come_from_the_catalogue() -> None:
    texts = script_texts("es")
    assert set(texts) == set(SCRIPT_TEXTS)
    assert texts["Vergrößern"] == translator("es", "pages").gettext("Vergrößern") != "Vergrößern"
    assert script_texts("de")["Vergrößern"] == "Vergrößern"
    doc = json.loads(sw_body("ru"))
    assert set(doc["texts"]) == set(SW_TEXTS) and doc["texts"]["Aufgehoben"] != "Aufgehoben"
