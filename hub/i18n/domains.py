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
    "notify": (("hub/publish/notify.py", "python"), ("hub/web/kiosk.py", "python"),
               ("hub/web/templates/board.html", "jinja2")),
    "widget": (("hub/web/templates/citizen/widget.html", "jinja2"), ("hub/web/citizen_widget.py", "python")),
}
"""domain -> (glob, extraction method) pairs. A file belongs to one domain only."""
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
