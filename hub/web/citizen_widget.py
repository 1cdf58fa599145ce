"""The widget's language and texts (``/widget/{ars}`` and its script; the routes are in :mod:`hub.web.citizen`).

A municipal website frames the widget for its readers, so it speaks the reader's language: ``?lang=`` (any of the
hub's nine; the embedding site may set it), else the browser's ``Accept-Language``, else German. Its fixed texts are
the ``widget`` catalogue's (``hub/i18n/locale/<code>/LC_MESSAGES/widget.po``); the warnings' own texts are in the
reader's language when a warning carries it (:func:`hub.web.citizen_view.card`), marked with their language when
not. The template renders through its own environment (the i18n extension installed, one overlay per language), so
the widget depends on nothing but its own catalogue and the macros' icons.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from hub.i18n.catalogs import N_, translator
from hub.i18n.languages import language, negotiate
from hub.i18n.templates import install, localized

DOMAIN = "widget"
TITLE = N_("Aktuelle Warnungen für %(region)s")
"""The iframe's title (the script's) and the page's: what a screen reader announces."""

_ENV = install(jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                                  autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True,
                                  lstrip_blocks=True, undefined=jinja2.StrictUndefined))


def widget_language(query_lang: str | None, accept_language: str | None) -> str:
    """The widget's language: ``?lang=``, then ``Accept-Language``, else German (a hub code)."""
    return negotiate(query_lang, (), accept_language)


def title(lang: str, region: str) -> str:
    return translator(lang, DOMAIN).format(TITLE, region=region)


def render(lang: str, **ctx: Any) -> str:
    """``citizen/widget.html`` in ``lang`` (``lang`` and ``dir`` of the page set from it; a warning shown in another
    language is marked with that language's own name)."""
    lang_ = language(lang)
    return localized(_ENV, lang_.code, DOMAIN).get_template("citizen/widget.html").render(
        lang=lang_.code, dir=lang_.dir, own_name=lambda tag: language(tag).own_name, **ctx)
