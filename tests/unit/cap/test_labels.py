"""The one table of severity, urgency and certainty words (hub/cap/labels.py): complete, ranked by the enum order,
and the only place in hub/ and adapters/ that spells a severity word."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from hub.cap import labels
from hub.cap.model import Certainty, Severity, Urgency
from hub.i18n.languages import CODES

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(("table", "levels"), [(labels.SEVERITY, Severity), (labels.URGENCY, Urgency),
                                             (labels.CERTAINTY, Certainty)])
def test_every_member_has_a_word_in_every_language(table: Mapping[enum.Enum, Mapping[str, str]],
                                                   levels: type[enum.Enum]) -> None:
    assert list(table) == list(levels)  # every member, in the enum's order
    for member, words in table.items():
        assert set(words) == set(labels.LANGUAGES), member
        assert all(w.strip() == w and w for w in words.values()), member


def test_ranks_follow_the_enum_order() -> None:
    order = list(Severity)  # most pressing first
    ranks = [labels.rank(s) for s in order]
    assert ranks == sorted(ranks, reverse=True) and len(set(ranks)) == len(ranks)
    assert [labels.rank(s.value) for s in order] == ranks  # the CAP value ranks as its member
    assert labels.rank("Unknown") == labels.rank("no such level") == labels.rank(None) == 0
    assert labels.rank("Minor") > labels.rank("Unknown")


@pytest.mark.parametrize(("tag", "code"), [("de", "de"), ("de-DE", "de"), ("de-DE-x-ls", "de-x-ls"),
                                           ("DE-LS", "de-x-ls"), ("EN", "en"), ("en-GB", "en"), ("tr-TR", "tr"),
                                           ("ar", "ar"), ("fr", "fr"), ("uk", "de"), ("", "de"), (None, "de")])
def test_language_tags_through_the_hubs_codes(tag: str | None, code: str) -> None:
    """Any tag reads through hub.i18n (de-DE-x-ls and NINA's DE-LS are Leichte Sprache); one the hub lacks, German."""
    assert labels.lang_of(tag) == code
    assert labels.severity_word("Extreme", tag) == labels.SEVERITY[Severity.EXTREME][code]


def test_the_table_speaks_the_hubs_nine_languages() -> None:
    assert labels.LANGUAGES == CODES


@pytest.mark.parametrize("lang", [c for c in CODES if c not in ("de", "de-x-ls")])
def test_every_level_reads_in_its_own_language(lang: str) -> None:
    """The words are the language's own, not German left standing: every severity above Minor, every urgency and
    certainty but the unknowns differs from German (Minor may be "Information" in German, English and French), and
    a reader can tell the ranked levels apart."""
    german_like = {(Severity.MINOR, "en"), (Severity.MINOR, "fr")}  # "Information"
    for table in (labels.SEVERITY, labels.URGENCY, labels.CERTAINTY):
        for level, words in table.items():
            if (level, lang) not in german_like:
                assert words[lang] != words["de"], (level, lang)
    ranked = [labels.severity_word(s, lang) for s in Severity if s.rank]
    assert len(set(ranked)) == len(ranked) == 4, ranked
    assert labels.severity_short("Extreme", lang) != labels.severity_short("Extreme", "de")


def test_leichte_sprache_says_it_plainly() -> None:
    assert labels.severity_word("Extreme", "de-DE-x-ls") == "Sehr große Gefahr"
    assert labels.urgency_word("Immediate", "DE-LS") == "jetzt"
    assert labels.severity_word("Severe", "de-x-ls") == labels.severity_word("Severe", "de") == "Gefahr"


def test_turkish_and_arabic_words() -> None:
    assert [labels.severity_word(s, "tr") for s in ("Extreme", "Severe", "Moderate", "Minor")] == [
        "Aşırı tehlike", "Tehlike", "Uyarı", "Bilgi"]
    assert labels.severity_word("Severe", "ar") == "خطر" and labels.severity_short("Extreme", "tr") == "TEHLİKE"


def test_words_a_citizen_expects() -> None:
    """The generic levels (MoWaS, KATWARN), not weather words, and never the US "Advisory"."""
    assert {s.value: labels.severity_word(s, "de") for s in Severity} == {
        "Extreme": "Extreme Gefahr", "Severe": "Gefahr", "Moderate": "Warnung", "Minor": "Information",
        "Unknown": "Warnung"}
    assert {s.value: labels.severity_word(s, "en") for s in Severity} == {
        "Extreme": "Extreme danger", "Severe": "Danger", "Moderate": "Warning", "Minor": "Information",
        "Unknown": "Warning"}
    assert labels.severity_short("Extreme") == "GEFAHR" and labels.severity_short("Minor") == "Information"
    assert labels.severity_word("Bogus", "en") == "Warning"
    assert labels.urgency_word("Immediate", "de") == "sofort" and labels.certainty_word("Likely", "en") == "likely"


_WORD_TABLE = re.compile(r"""(?<![\w-])["']?(?:Minor|Moderate|Severe|Extreme)["']?\s*:\s*"""
                         r"""(?:["'][A-ZÄÖÜ]|\d|[\[(]\s*["'][A-ZÄÖÜ])""")
"""A severity keyed to a word, words or a number: ``"Minor": "Hinweis"``, ``Minor: ["Hinweis", …]``, ``"Extreme": 0``
(``SHAPE``'s lower-case shape names are no words)."""
_ENUM_RANK = re.compile(r"enumerate\((?:Severity|SEVERITIES)\b")
"""A rank counted again from the enum or the list of levels."""


def second_tables(repo: Path) -> list[str]:
    """The files under hub/ and adapters/ (Python, scripts, templates) that keep their own severity words or ranks."""
    found = []
    for root in ("hub", "adapters"):
        for path in sorted((repo / root).rglob("*")):
            if path.suffix not in (".py", ".js", ".html") or path.name == "labels.py" or "vendor" in path.parts:
                continue
            text = path.read_text(encoding="utf-8")
            if _WORD_TABLE.search(text) or _ENUM_RANK.search(text):
                found.append(path.relative_to(repo).as_posix())
    return found


def test_no_second_table_of_words_or_ranks() -> None:
    """Every word and rank comes from hub/cap/labels.py: no module, script or template keeps its own table."""
    assert second_tables(REPO) == []
