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


@pytest.mark.parametrize(("tag", "expected"), [("de", "Information"), ("de-DE", "Information"),
                                               ("de-DE-x-ls", "Information"), ("EN", "Information"),
                                               ("en-GB", "Information"), ("fr", "Information"), (None, "Information")])
def test_language_tags_by_their_primary_subtag(tag: str | None, expected: str) -> None:
    assert labels.severity_word("Minor", tag) == expected
    assert labels.severity_word("Severe", tag) == ("Danger" if (tag or "").lower().startswith("en") else "Gefahr")


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
