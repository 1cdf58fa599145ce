"""The fixed words of push notifications and display boards, in the reader's language (the ``notify`` catalogue).

Besides the severity word (:mod:`hub.cap.labels`) a push or a board shows a few words of its own: the state of a
warning (``Aufgehoben``, ``Abgelaufen``, ``Entwarnung``), the exercise marker (``ÜBUNG``), the validity (``bis
18:30``) and, in a push, the note that a warning is not available in the reader's language. Their German texts are
the message ids; every language's text is in ``hub/i18n/locale/<code>/LC_MESSAGES/notify.po``.

The reader's language is one of the hub's nine (:data:`hub.i18n.languages.CODES`): a subscription's first language
the hub has (``["uk", "ru"]`` reads Russian, ``["uk"]`` German), a board's configured ``language``.
"""

from __future__ import annotations

from collections.abc import Iterable

from hub.i18n.catalogs import N_, Translator, translator
from hub.i18n.languages import SOURCE, code_of

DOMAIN = "notify"

CANCELLED = N_("Aufgehoben")
"""A Cancel: the authority withdrew the warning."""
EXPIRED = N_("Abgelaufen")
ALL_CLEAR = N_("Entwarnung")
EXERCISE = N_("ÜBUNG")
UPDATED = N_("Aktualisiert:")
"""Leads the body of an Update (not an all-clear)."""
EXPIRED_SINCE = N_("Diese Warnung ist seit %(time)s Uhr nicht mehr gültig.")
"""The service worker fills ``%(time)s`` (the local clock time) when a push arrives after the warning expired."""
WARNING = N_("Warnung")
"""The title's text when a warning has neither headline nor event."""
UNTRANSLATED = N_("Diese Warnung gibt es nicht in Ihrer Sprache.")
"""Beside a warning's text in another language than the reader's (German, or the subscription's next language)."""
UNTIL = N_("bis %(time)s")
FROM_UNTIL = N_("ab %(start)s bis %(end)s")
SUMMARY = N_("%(n)s neue Warnungen für Ihre Orte")
"""The summary push of what went over a subscription's push budget (hub.deliver.budget); it opens the start page."""


def reader_language(languages: Iterable[str]) -> str:
    """The first of ``languages`` (tags or codes, best first) the hub has, as its code; else German."""
    return next((code for code in map(code_of, languages) if code), SOURCE.code)


def texts(lang: str | None) -> Translator:
    """The ``notify`` texts of a hub code or tag (German when the hub lacks the language)."""
    return translator(code_of(lang) or SOURCE.code, DOMAIN)


def push_labels(lang: str, *, translated: bool) -> dict[str, str]:
    """The words the service worker needs to show a push in ``lang`` whatever has happened by the time it arrives
    (cancelled, expired, all clear, exercise, updated); ``untranslated`` only when the text is in another language."""
    t = texts(lang)
    out = {"cancelled": t.gettext(CANCELLED), "expired": t.gettext(EXPIRED), "allClear": t.gettext(ALL_CLEAR),
           "exercise": t.gettext(EXERCISE), "updated": t.gettext(UPDATED), "expiredSince": t.gettext(EXPIRED_SINCE),
           "warning": t.gettext(WARNING)}
    if not translated:
        out["untranslated"] = t.gettext(UNTRANSLATED)
    return out
