"""Severity, urgency and certainty: how they rank and the one table of their words, in the nine languages.

Rank comes from :class:`hub.cap.model.Severity` (and its siblings) itself: the enum order, most pressing first, read
through its ``rank`` property (Extreme 4 … Minor 1, Unknown 0). Every page, board, feed and push payload takes its
words from here, so one warning reads the same wherever a person meets it.

The words are the generic levels of the federal warning systems, not the DWD's weather words: the hub warns of
fires, floods and ordnance as much as of storms, and "Unwetterwarnung" on a chemical fire would mislead. Extreme is
MoWaS' Warnstufe 1 (acute danger, a "Gefahrendurchsage"): "Extreme Gefahr"; Severe, a "Gefahrenmitteilung":
"Gefahr". Minor is MoWaS' "Gefahreninformation" and KATWARN's blue "info" level: "Information" in both languages
(not "Hinweis", which no system names as a level, and not the US weather service's "Advisory"). The other languages
say the same with their common words (danger, warning, information; Turkish "Aşırı tehlike", "Tehlike", "Uyarı",
"Bilgi"); Leichte Sprache says "Sehr große Gefahr" and "jetzt" where German says "Extreme Gefahr" and "sofort".

The words stay in this table rather than in a message catalogue: a level is data keyed by its CAP value (the table
is complete for every member in every language, which a test checks structurally), German words repeat across
levels and tables ("Warnung" for Moderate and Unknown, "unbekannt" for urgency and certainty) where other languages
may not, and the console and pages read the table as a whole. The translations are the warnhub team's, not yet
reviewed by a native speaker (as the catalogues say in their headers).

Languages are the hub's nine (:data:`hub.i18n.languages.CODES`); a tag reads through
:func:`hub.i18n.languages.code_of` (``de-DE`` -> de, ``de-DE-x-ls`` and NINA's ``DE-LS`` -> de-x-ls, ``tr-TR`` ->
tr), and a language the hub does not have reads German, the language every warning of the hub carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, TypeVar, cast, get_args

from hub.cap.model import Certainty, Severity, Urgency
from hub.i18n.languages import code_of

Lang = Literal["de", "de-x-ls", "en", "ar", "es", "fr", "pl", "ru", "tr"]
LANGUAGES: tuple[Lang, ...] = get_args(Lang)
"""Every language the table has words for: the hub's nine, in :data:`hub.i18n.languages.CODES` order (a test
checks that they are the same)."""


def _words(de: str, ls: str, en: str, ar: str, es: str, fr: str, pl: str, ru: str, tr: str) -> Mapping[Lang, str]:
    return dict(zip(LANGUAGES, (de, ls, en, ar, es, fr, pl, ru, tr), strict=True))


SEVERITY: Mapping[Severity, Mapping[Lang, str]] = {
    Severity.EXTREME: _words("Extreme Gefahr", "Sehr große Gefahr", "Extreme danger", "خطر شديد", "Peligro extremo",
                             "Danger extrême", "Skrajne zagrożenie", "Чрезвычайная опасность", "Aşırı tehlike"),
    Severity.SEVERE: _words("Gefahr", "Gefahr", "Danger", "خطر", "Peligro", "Danger", "Zagrożenie", "Опасность",
                            "Tehlike"),
    Severity.MODERATE: _words("Warnung", "Warnung", "Warning", "تحذير", "Aviso", "Avertissement", "Ostrzeżenie",
                              "Предупреждение", "Uyarı"),
    Severity.MINOR: _words("Information", "Information", "Information", "معلومات", "Información", "Information",
                           "Informacja", "Информация", "Bilgi"),
    Severity.UNKNOWN: _words("Warnung", "Warnung", "Warning", "تحذير", "Aviso", "Avertissement", "Ostrzeżenie",
                             "Предупреждение", "Uyarı"),
}
SEVERITY_SHORT: Mapping[Severity, Mapping[Lang, str]] = {
    Severity.EXTREME: _words("GEFAHR", "GEFAHR", "DANGER", "خطر", "PELIGRO", "DANGER", "ZAGROŻENIE", "ОПАСНОСТЬ",
                             "TEHLİKE"),
}
"""A shorter word where a display board has no room for the word and the exercise marker; else the word itself."""
URGENCY: Mapping[Urgency, Mapping[Lang, str]] = {
    Urgency.IMMEDIATE: _words("sofort", "jetzt", "immediate", "فوري", "inmediato", "immédiat", "natychmiast",
                              "немедленно", "hemen"),
    Urgency.EXPECTED: _words("erwartet", "bald", "expected", "متوقع", "esperado", "attendu", "oczekiwane",
                             "ожидается", "bekleniyor"),
    Urgency.FUTURE: _words("zukünftig", "später", "future", "مستقبلي", "futuro", "à venir", "w przyszłości",
                           "в будущем", "ileride"),
    Urgency.PAST: _words("vorbei", "vorbei", "past", "انتهى", "pasado", "passé", "minione", "в прошлом", "geçti"),
    Urgency.UNKNOWN: _words("unbekannt", "nicht bekannt", "unknown", "غير معروف", "desconocido", "inconnu",
                            "nieznane", "неизвестно", "bilinmiyor"),
}
CERTAINTY: Mapping[Certainty, Mapping[Lang, str]] = {
    Certainty.OBSERVED: _words("beobachtet", "sicher", "observed", "مرصود", "observado", "observé",
                               "zaobserwowane", "наблюдается", "gözlendi"),
    Certainty.LIKELY: _words("wahrscheinlich", "wahrscheinlich", "likely", "مرجّح", "probable", "probable",
                             "prawdopodobne", "вероятно", "muhtemel"),
    Certainty.POSSIBLE: _words("möglich", "vielleicht", "possible", "ممكن", "posible", "possible", "możliwe",
                               "возможно", "olası"),
    Certainty.UNLIKELY: _words("unwahrscheinlich", "eher nicht", "unlikely", "غير مرجّح", "improbable", "improbable",
                               "mało prawdopodobne", "маловероятно", "olası değil"),
    Certainty.UNKNOWN: _words("unbekannt", "nicht bekannt", "unknown", "غير معروف", "desconocido", "inconnu",
                              "nieznane", "неизвестно", "bilinmiyor"),
}

_SEVERITY_RANK = {s.value: s.rank for s in Severity}
Level = TypeVar("Level", Severity, Urgency, Certainty)


def lang_of(lang: str | None) -> Lang:
    """The table's language for a hub code or language tag (:func:`hub.i18n.languages.code_of`), else German."""
    return cast(Lang, code_of(lang) or "de")


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
