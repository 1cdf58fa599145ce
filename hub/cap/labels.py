"""Severity, urgency and certainty: how they rank and the one table of their words, German first, then English.

Rank comes from :class:`hub.cap.model.Severity` (and its siblings) itself: the enum order, most pressing first, read
through its ``rank`` property (Extreme 4 … Minor 1, Unknown 0). Every page, board, feed and push payload takes its
words from here, so one warning reads the same wherever a person meets it.

The words are the generic levels of the federal warning systems, not the DWD's weather words: the hub warns of
fires, floods and ordnance as much as of storms, and "Unwetterwarnung" on a chemical fire would mislead. Extreme is
MoWaS' Warnstufe 1 (acute danger, a "Gefahrendurchsage"): "Extreme Gefahr"; Severe, a "Gefahrenmitteilung":
"Gefahr". Minor is MoWaS' "Gefahreninformation" and KATWARN's blue "info" level: "Information" in both languages
(not "Hinweis", which no system names as a level, and not the US weather service's "Advisory").

Languages are matched by their primary subtag (``de-DE``, ``de-DE-x-ls`` and ``de`` read German); a language the
table has no words for reads German, the language every warning of the hub carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, TypeVar

from hub.cap.model import Certainty, Severity, Urgency

Lang = Literal["de", "en"]
LANGUAGES: tuple[Lang, ...] = ("de", "en")
"""Every language the table has words for; German first, the fallback."""

SEVERITY: Mapping[Severity, Mapping[Lang, str]] = {
    Severity.EXTREME: {"de": "Extreme Gefahr", "en": "Extreme danger"},
    Severity.SEVERE: {"de": "Gefahr", "en": "Danger"},
    Severity.MODERATE: {"de": "Warnung", "en": "Warning"},
    Severity.MINOR: {"de": "Information", "en": "Information"},
    Severity.UNKNOWN: {"de": "Warnung", "en": "Warning"},
}
SEVERITY_SHORT: Mapping[Severity, Mapping[Lang, str]] = {
    Severity.EXTREME: {"de": "GEFAHR", "en": "DANGER"},
}
"""A shorter word where a display board has no room for the word and the exercise marker; else the word itself."""
URGENCY: Mapping[Urgency, Mapping[Lang, str]] = {
    Urgency.IMMEDIATE: {"de": "sofort", "en": "immediate"},
    Urgency.EXPECTED: {"de": "erwartet", "en": "expected"},
    Urgency.FUTURE: {"de": "zukünftig", "en": "future"},
    Urgency.PAST: {"de": "vorbei", "en": "past"},
    Urgency.UNKNOWN: {"de": "unbekannt", "en": "unknown"},
}
CERTAINTY: Mapping[Certainty, Mapping[Lang, str]] = {
    Certainty.OBSERVED: {"de": "beobachtet", "en": "observed"},
    Certainty.LIKELY: {"de": "wahrscheinlich", "en": "likely"},
    Certainty.POSSIBLE: {"de": "möglich", "en": "possible"},
    Certainty.UNLIKELY: {"de": "unwahrscheinlich", "en": "unlikely"},
    Certainty.UNKNOWN: {"de": "unbekannt", "en": "unknown"},
}

_SEVERITY_RANK = {s.value: s.rank for s in Severity}
Level = TypeVar("Level", Severity, Urgency, Certainty)


def lang_of(lang: str | None) -> Lang:
    """The table's language for a language tag: its primary subtag if the table has it, else German."""
    primary = (lang or "").split("-", 1)[0].lower()
    return "en" if primary == "en" else "de"


def _severity(sev: Severity | str | None) -> Severity:
    if isinstance(sev, Severity):
        return sev
    try:
        return Severity(sev)
    except ValueError:
        return Severity.UNKNOWN


def severity_word(sev: Severity | str | None, lang: str | None = "de") -> str:
    """``Gefahr`` / ``Danger``: the word for a severity (an unknown value reads as ``Unknown``)."""
    return SEVERITY[_severity(sev)][lang_of(lang)]


def severity_short(sev: Severity | str | None, lang: str | None = "de") -> str:
    """The shortest word a board may lead with (see :data:`SEVERITY_SHORT`)."""
    level = _severity(sev)
    return SEVERITY_SHORT.get(level, SEVERITY[level])[lang_of(lang)]


def urgency_word(urgency: Urgency | str | None, lang: str | None = "de") -> str:
    try:
        level = urgency if isinstance(urgency, Urgency) else Urgency(urgency)
    except ValueError:
        level = Urgency.UNKNOWN
    return URGENCY[level][lang_of(lang)]


def certainty_word(certainty: Certainty | str | None, lang: str | None = "de") -> str:
    try:
        level = certainty if isinstance(certainty, Certainty) else Certainty(certainty)
    except ValueError:
        level = Certainty.UNKNOWN
    return CERTAINTY[level][lang_of(lang)]


def rank(sev: Severity | str | None) -> int:
    """Higher is more pressing: Extreme 4, Severe 3, Moderate 2, Minor 1; Unknown (and anything else) 0."""
    if isinstance(sev, Severity):
        return sev.rank
    return _SEVERITY_RANK.get(sev or "", 0)


def pairs(table: Mapping[Level, Mapping[Lang, str]]) -> dict[str, tuple[str, str]]:
    """A table as ``{CAP value: (German, English)}``, in enum order (most pressing first), for pages that show both."""
    return {level.value: (words["de"], words["en"]) for level, words in table.items()}


def severity_words() -> dict[str, dict[str, str | int]]:
    """Every severity's rank and words by CAP value, for pages that hand them to their scripts (JSON-safe)."""
    out: dict[str, dict[str, str | int]] = {}
    for level, words in SEVERITY.items():
        entry: dict[str, str | int] = {"rank": level.rank}
        entry.update({lang: words[lang] for lang in LANGUAGES})
        out[level.value] = entry
    return out
