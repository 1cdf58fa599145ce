"""Which source files each message catalogue (gettext domain) takes its texts from.

Message ids are the German texts (German is the language every page is written in first); each of the nine languages
has one ``.po`` file per domain under ``hub/i18n/locale/<code>/LC_MESSAGES/<domain>.po`` (``de`` included, so that
Leichte Sprache and German differ where they should). ``scripts/i18n.py`` extracts the texts from these files with
Babel and updates every catalogue; ``tests/unit/i18n`` fails when a text is missing in a language or a placeholder is
lost.

Patterns are relative to the repository root (``**`` crosses folders). Extraction methods are Babel's: ``python``
(keywords ``_``, ``gettext``, ``ngettext``, ``N_``), ``jinja2`` (``{{ _("…") }}``, ``{% trans %}``) and
``javascript`` (``_('…')``).
"""

from __future__ import annotations

Method = str
DOMAINS: dict[str, tuple[tuple[str, Method], ...]] = {
    # the subscribe page (its JavaScript gets its texts from the page), the topic and source labels it shows, and
    # the test notification a subscriber sends themselves
    "subscribe": (("hub/web/templates/citizen/subscribe.html", "jinja2"), ("hub/publish/subscriptions.py", "python"),
                  ("hub/publish/sources.py", "python"), ("hub/publish/testpush.py", "python")),
    "pages": (*((f"hub/web/templates/citizen/{name}.html", "jinja2")  # not subscribe.html, widget.html: own domains
                for name in ("base", "macros", "start", "_list", "warning", "missing", "error", "privacy")),
              ("hub/web/citizen.py", "python"), ("hub/web/citizen_view.py", "python"),
              ("hub/web/citizen_texts.py", "python"), ("hub/web/site.py", "python")),
    "notify": (("hub/publish/notify.py", "python"), ("hub/web/kiosk.py", "python"),
               ("hub/web/templates/board.html", "jinja2")),
    "widget": (("hub/web/templates/citizen/widget.html", "jinja2"), ("hub/web/citizen_widget.py", "python")),
}
"""domain -> (glob, extraction method) pairs. A file belongs to one domain only."""
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
