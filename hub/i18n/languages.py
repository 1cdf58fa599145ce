"""The nine languages of the federal warning systems and how a page picks one.

MoWaS sends these as ``info`` blocks since 2025 and NINA shows them: German, Leichte Sprache (easy German, the
private-use tag ``de-DE-x-ls``), English, Arabic, Spanish, French, Polish, Russian and Turkish. German comes first:
every warning of the hub carries it, and it is what a page falls back to.

A page's language comes from, in this order: ``?lang=`` (a person chose it on the page), the subscription's languages
(what a person chose when subscribing), then the browser's ``Accept-Language``; else German.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Language:
    code: str
    """The hub's key for the language: ``de``, ``de-x-ls``, ``en``, ``ar`` …; the folder of its catalogues."""
    cap: str
    """The tag a CAP ``info`` block of the hub carries (``de-DE``, ``de-DE-x-ls``, ``en-GB`` …)."""
    own_name: str
    """The language's name in itself, as a language switcher lists it."""
    babel: str
    """Babel's locale for dates, numbers and plural rules (Leichte Sprache formats as German)."""
    dir: Literal["ltr", "rtl"] = "ltr"


LANGUAGES: tuple[Language, ...] = (
    Language("de", "de-DE", "Deutsch", "de_DE"),
    Language("de-x-ls", "de-DE-x-ls", "Leichte Sprache", "de_DE"),
    Language("en", "en-GB", "English", "en_GB"),
    Language("ar", "ar", "العربية", "ar", "rtl"),
    Language("es", "es-ES", "Español", "es_ES"),
    Language("fr", "fr-FR", "Français", "fr_FR"),
    Language("pl", "pl-PL", "Polski", "pl_PL"),
    Language("ru", "ru-RU", "Русский", "ru_RU"),
    Language("tr", "tr-TR", "Türkçe", "tr_TR"),
)
BY_CODE: dict[str, Language] = {lang.code: lang for lang in LANGUAGES}
CODES: tuple[str, ...] = tuple(BY_CODE)
SOURCE = BY_CODE["de"]
"""The language the catalogues' message ids are written in, and every fallback."""


def code_of(tag: str | None) -> str | None:
    """The hub's language for a language tag, or None: ``de-DE`` -> ``de``; ``de-DE-x-ls`` and ``de-x-ls`` ->
    ``de-x-ls``, and so does NINA's ``DE-LS``; ``EN``, ``en-US`` -> ``en``; ``ar-SA`` -> ``ar``; ``uk`` -> None."""
    low = (tag or "").strip().lower().replace("_", "-")
    if low == "de-ls":
        return "de-x-ls"
    head, sep, private = low.partition("-x-")
    primary = head.split("-")[0]
    key = f"{primary}-x-{private}" if sep else primary
    return key if key in BY_CODE else None


def language(code: str | None) -> Language:
    """The language for a hub code or tag; German when the hub has none of it."""
    return BY_CODE.get(code_of(code) or "", SOURCE)


def accepted(header: str | None) -> list[str]:
    """The hub's languages an ``Accept-Language`` header names, best first (q=0 excluded; malformed parts skipped)."""
    ranked: list[tuple[float, int, str]] = []
    for n, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        code = code_of(tag) if tag and tag != "*" else None
        if code and q > 0:
            ranked.append((-q, n, code))
    return list(dict.fromkeys(code for _, _, code in sorted(ranked)))


def reading_order(code: str | None) -> tuple[str, ...]:
    """The languages a reader of ``code`` reads a warning's own text in, best first: their own; then, for readers of
    the seven other languages, English before German (the second language most of them share with the district);
    German readers (and Leichte Sprache readers) German. The one rule for pages, pushes, boards and the widget."""
    own = language(code).code
    return (own,) if own in ("de", "de-x-ls") else tuple(dict.fromkeys((own, "en", "de")))


def negotiate(query: str | None, subscription: Iterable[str] = (), accept_language: str | None = None) -> str:
    """A page's language: ``?lang=``, then the subscription's languages (best first), then ``Accept-Language``,
    else German. Every answer is one of :data:`CODES`."""
    for candidate in (query, *subscription):
        code = code_of(candidate)
        if code:
            return code
    return next(iter(accepted(accept_language)), SOURCE.code)
