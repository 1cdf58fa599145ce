"""Push payloads and board texts in the reader's language (hub/publish/notify.py): the language chosen, the words
taken from the notify catalogue, the warning's own text when it carries the language, and the budgets kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.cap import event_names, labels
from hub.cap.parse import parse
from hub.i18n.catalogs import translator
from hub.i18n.languages import CODES
from hub.publish import notify
from hub.publish.boardtext import fit
from hub.publish.pipeline import PUSH_PAYLOAD_MAX, push_payload
from hub.publish.publications import Notice, Publication
from hub.web import citizen_view

NOW = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)


def notice(lang: str, headline: str, instruction: str = "Fenster schließen.") -> Notice:
    return Notice(lang, "Gefahrstoffaustritt", headline, "Austritt im Gewerbegebiet.", instruction,
                  "Lüchow (Wendland)", "Landkreis Lüchow-Dannenberg", None)


def publication(*notices: Notice, status: str = "Actual", msg_type: str = "Alert",
                severity: str = "Extreme") -> Publication:
    return Publication(7, "w7", 1, None, None, "urn:x", "hub@example", NOW, msg_type, status, severity, "Immediate",
                       int((NOW + timedelta(hours=3)).timestamp() * 1000), True, ("push",), (), notices, None)


@pytest.mark.parametrize(("languages", "code"), [(["uk", "ru"], "ru"), (["uk"], "de"), (["DE-LS"], "de-x-ls"),
                                                 (["tr-TR", "en"], "tr"), ([], "de")])
def test_the_readers_language_is_the_first_the_hub_has(languages: list[str], code: str) -> None:
    assert notify.reader_language(languages) == code


def test_a_warning_carrying_the_language_is_shown_in_it_unmarked() -> None:
    pub = publication(notice("de-DE", "Gefahr im Gewerbegebiet"), notice("tr-TR", "Sanayi bölgesinde tehlike"))
    doc = json.loads(push_payload(pub, "k", ["tr"], "https://hub.example"))
    assert (doc["uiLang"], doc["lang"], doc["translated"]) == ("tr", "tr-TR", True)
    assert doc["headline"] == "Sanayi bölgesinde tehlike" and doc["word"] == "Aşırı tehlike"
    assert "untranslated" not in doc["labels"] and doc["url"] == "https://hub.example/warnungen/w7?lang=tr"


def test_a_warning_without_the_language_reads_german_marked_in_the_readers_words() -> None:
    pub = publication(notice("de-DE", "Gefahr im Gewerbegebiet"), status="Exercise", msg_type="Update")
    doc = json.loads(push_payload(pub, "k", ["ar"]))
    t = translator("ar", "notify")
    assert (doc["uiLang"], doc["lang"], doc["translated"]) == ("ar", "de-DE", False)
    assert doc["headline"] == "Gefahr im Gewerbegebiet"
    assert doc["labels"] == {"cancelled": t.gettext("Aufgehoben"), "expired": t.gettext("Abgelaufen"),
                             "allClear": t.gettext("Entwarnung"), "exercise": t.gettext("ÜBUNG"),
                             "updated": t.gettext("Aktualisiert:"), "warning": t.gettext("Warnung"),
                             "expiredSince": t.gettext("Diese Warnung ist seit %(time)s Uhr nicht mehr gültig."),
                             "untranslated": t.gettext("Diese Warnung gibt es nicht in Ihrer Sprache.")}
    assert doc["labels"]["exercise"] == "تمرين" and doc["word"] == "خطر شديد"


def test_leichte_sprache_without_its_text_says_so_in_leichte_sprache() -> None:
    pub = publication(notice("de-DE", "Gefahr im Gewerbegebiet"))
    doc = json.loads(push_payload(pub, "k", ["de-DE-x-ls"]))
    assert (doc["uiLang"], doc["translated"]) == ("de-x-ls", False)
    assert doc["labels"]["untranslated"] == "Diese Warnung gibt es nicht in Leichter Sprache."
    assert doc["word"] == "Sehr große Gefahr" and doc["url"].endswith("?lang=de-x-ls")
    both = publication(notice("de-DE", "Gefahr"), notice("de-DE-x-ls", "Gefahr im Gewerbe-Gebiet"))
    assert json.loads(push_payload(both, "k", ["de-x-ls"]))["translated"] is True


@pytest.mark.parametrize("lang", CODES)
def test_every_language_fits_one_push_record(lang: str) -> None:
    """Long texts in a two-byte script (and the labels) still fit a Web Push record: the texts are shortened."""
    long = "ا" * 3000 if lang == "ar" else "Ж" * 3000
    pub = publication(notice("de-DE", "Gefahr " * 40, long))
    raw = push_payload(pub, "k" * 40, [lang])
    assert len(raw) <= PUSH_PAYLOAD_MAX
    assert json.loads(raw)["word"] == labels.severity_word("Extreme", lang)


@pytest.mark.parametrize("lang", CODES)
@pytest.mark.parametrize(("lines", "chars"), [(1, 8), (2, 12), (3, 16), (4, 40)])
def test_a_board_keeps_its_budget_in_every_language(lang: str, lines: int, chars: int) -> None:
    """Long words (Russian, Turkish, Polish) and Arabic keep to the board's budget, exercise marker included; the
    board's lead is its language's word (or the start of it)."""
    for status in ("Actual", "Exercise"):
        pub = publication(notice("de-DE", "Stufe Extreme im Landkreis"), status=status)
        got = fit(pub, pub.notices[0], lines=lines, chars=chars, lang=lang)
        assert 1 <= len(got) <= lines and all(len(line) <= chars for line in got), got
        if status == "Actual" and lines == 4:
            assert got[0] == labels.severity_word("Extreme", lang)
            assert got[-1] == translator(lang, "notify").format("bis %(time)s", time="18:00")  # 17:00 UTC, Berlin
        if status == "Exercise" and lines == 4:
            assert got[0].startswith(translator(lang, "notify").gettext("ÜBUNG") + ":")


def test_an_all_clear_on_a_turkish_board() -> None:
    ended = publication(notice("de-DE", "Gefahr vorbei"), msg_type="Cancel")
    assert fit(ended, ended.notices[0], lines=4, chars=40, lang="tr")[0] == "Tehlike geçti"
    assert fit(ended, ended.notices[0], lines=4, chars=40)[0] == "Entwarnung"


def test_a_warning_without_the_readers_language_names_its_event_in_their_words_from_its_codes(corpus: Path) -> None:
    """DWD's Glätte warning carries German only; its II code names the event in Turkish and Arabic (from the codes
    table, hub/cap/event_names.toml) for the push and the pages, while the text stays German, marked."""
    alert = parse((corpus / "cap" / "de_dwd_wdr-unwetter_alert1_glaette.xml").read_bytes()).alert
    info = alert.infos[0]
    n = Notice.of(info, alert.sender)
    assert n.event_codes and all(c.isdigit() or c.startswith("BBK-EVC-") for c in n.event_codes)
    pub = publication(n)
    for lang in ("tr", "ar"):
        doc = json.loads(push_payload(pub, "k", [lang]))
        expected = event_names.event_name(info, lang)
        assert expected is not None and doc["eventName"] == expected[0] != info.event
        assert doc["translated"] is False and doc["headline"] == n.headline
        assert citizen_view.event_local(n, lang) == expected[0]
    assert "eventName" not in json.loads(push_payload(pub, "k", ["de"]))  # German reads the warning's own words
    assert citizen_view.event_local(n, "de") == ""
