"""The kiosk board page (``/boards/{id}``, routed in :mod:`hub.web.warnings`) in the board's ``language``.

A kiosk shows its fixed words (``Keine Warnungen``, ``gültig bis 18:30 Uhr``, ``Warnung 2 von 3``, the severity word)
in the board's language, any of the hub's nine, and English beside them in small type, as it always did for German;
an English board shows English alone. The warning's text is the board's language's when the warning carries it,
else German (and its English text beside, when it carries one). The words are the ``notify`` catalogue's, as a
display board's (:mod:`hub.publish.notify`); ``/static/board.js`` gets the ones it composes itself (validity,
position) from the page (``#board-texts``), never a text of its own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup

from hub.cap import labels
from hub.i18n.catalogs import N_, translator
from hub.i18n.languages import Language, code_of, language, reading_order
from hub.i18n.templates import install, localized
from hub.publish import notify
from hub.publish.publications import Notice, Publication

BERLIN = ZoneInfo("Europe/Berlin")
SECOND = "en"
"""The language shown beside the board's own in small type (not on an English board)."""

VALID_UNTIL = N_("gültig bis %(time)s Uhr")
FURTHER_NOTICE = N_("bis auf Weiteres")
POSITION = N_("Warnung %(n)s von %(total)s")

_ENV = install(jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                                  autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True,
                                  lstrip_blocks=True))


def _notice(p: Publication, lang: str) -> Notice:
    """The best text for ``lang``; an empty one for a publication without infos (a bare Cancel)."""
    if p.notices:
        return p.notice(reading_order(lang))
    return Notice(lang, "", "", "", "", "", p.sender, None)


def until(expires: datetime | None, now: datetime | None = None, lang: str = "de") -> str:
    """``gültig bis 18:30 Uhr / valid until 18:30`` today, else with the date (Europe/Berlin); ``bis auf Weiteres``
    without an end; in the board's language with English beside it (English alone on an English board)."""
    code = language(lang).code
    when = ""
    if expires is not None:
        at = expires.astimezone(BERLIN)
        today = (now or datetime.now(UTC)).astimezone(BERLIN).date()
        when = at.strftime("%H:%M") if at.date() == today else at.strftime("%d.%m.%Y, %H:%M")
    texts = [translator(c, notify.DOMAIN).format(VALID_UNTIL, time=when) if when
             else translator(c, notify.DOMAIN).gettext(FURTHER_NOTICE) for c in _languages(code)]
    return " / ".join(texts)


def _languages(code: str) -> tuple[str, ...]:
    return (code,) if code == SECOND else (code, SECOND)


def shown(p: Publication, now: datetime, lang: str = "de") -> dict[str, Any]:
    """What the page shows of one warning: words and text in the board's language, English beside."""
    code = language(lang).code
    main = _notice(p, code)
    english = _notice(p, SECOND) if code != SECOND else None
    if english is not None and (code_of(english.language) != SECOND or english == main):
        english = None
    return {"severity": p.severity if labels.rank(p.severity) else "Unknown",
            "word": labels.severity_word(p.severity, code),
            "word_en": labels.severity_word(p.severity, SECOND) if code != SECOND else "",
            "exercise": p.status == "Exercise", "headline": main.headline,
            "headline_en": english.headline if english else "", "instruction": main.instruction,
            "area": main.area_desc, "lang": main.language, "translated": code_of(main.language) == code,
            "until": until(p.expires, now, code)}


def texts(lang: Language) -> dict[str, Any]:
    """What ``board.js`` composes itself, in the board's language and English (``#board-texts``)."""
    here, en = translator(lang.code, notify.DOMAIN), translator(SECOND, notify.DOMAIN)
    second = lang.code != SECOND
    out: dict[str, Any] = {"lang": lang.code, "tag": lang.cap.lower(), "second": second}
    for key, message in (("until", VALID_UNTIL), ("further", FURTHER_NOTICE), ("position", POSITION)):
        out[key] = here.gettext(message)
        out[f"{key}En"] = en.gettext(message) if second else ""
    return out


def english(message: str, **values: Any) -> Markup:
    """A text of the catalogue in English for the small line beside (values escaped unless they are markup)."""
    return Markup.escape(translator(SECOND, notify.DOMAIN).gettext(message)) % values


def render(lang: str, **ctx: Any) -> str:
    """``board.html`` in the board's language."""
    lang_ = language(lang)
    return localized(_ENV, lang_.code, notify.DOMAIN).get_template("board.html").render(
        lang=lang_.code, dir=lang_.dir, second=lang_.code != SECOND, en=english, texts=texts(lang_), **ctx)
