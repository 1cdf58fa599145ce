"""The subscribe page (``/abonnieren``) in the reader's language: its choices and its own texts (domain ``subscribe``).

The page extends the citizen site's base template, whose texts are the ``pages`` domain's. Its own texts are in the
``subscribe`` domain: each block of hub/web/templates/citizen/subscribe.html starts with
``{% set _ = subscribe_gettext %}``, so ``_("…")`` there reads this domain's catalogue (and is extracted into it),
while the base template's ``_`` stays the page's. :func:`gettext_for` behaves as jinja2's new-style gettext:
``_("Noch %(n)s", n=3)`` formats, and the values are escaped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from markupsafe import Markup

from hub.cap.labels import severity_word
from hub.i18n.catalogs import translator
from hub.i18n.languages import LANGUAGES, language
from hub.publish.sources import SOURCES
from hub.publish.subscriptions import SEVERITIES, TOPICS

DOMAIN = "subscribe"
BIWAPP = ("unwetter", "hochwasser", "feuer", "bombenfund", "chemieunfall", "grossschadenslage", "seuchenfall",
          "verkehrsunfall", "erdrutsch-lawine", "unterrichtsausfall")
"""The ten BIWAPP categories, shown first; the CAP categories follow under "more topics"."""
QUIET_DEFAULT = {"from": "22:00", "to": "07:00"}


def gettext_for(lang: str | None) -> Callable[..., Markup]:
    """The ``subscribe`` domain's gettext for templates (new-style: formats ``%(name)s``, escapes the values)."""
    t = translator(language(lang).code, DOMAIN)

    def gettext(message: str, **values: Any) -> Markup:
        text = Markup(t.gettext(message))  # noqa: S704 - the catalogue is part of the release, like the template
        return text % values if values else text

    return gettext


def context(lang: str | None) -> dict[str, Any]:
    """What subscribe.html shows besides the base context: topics, severities, sources, languages, its gettext."""
    t = translator(language(lang).code, DOMAIN)
    code = language(lang).code
    topics = [{"value": k, "label": t.gettext(TOPICS[k].de)} for k in BIWAPP if k in TOPICS]
    extra = [{"value": k, "label": t.gettext(TOPICS[k].de)} for k in TOPICS if k not in BIWAPP]
    severities = [{"value": s, "label": severity_word(s, code)} for s in SEVERITIES]
    sources = [{"value": k, "label": t.gettext(label)} for k, label in SOURCES.items()]
    languages = [{"value": lang_.code, "label": lang_.own_name, "tag": lang_.cap, "dir": lang_.dir,
                  "checked": lang_.code == code} for lang_ in LANGUAGES]
    return {"topics": topics, "extra_topics": extra, "severities": severities, "sources": sources,
            "languages": languages, "quiet_default": QUIET_DEFAULT, "subscribe_gettext": gettext_for(code)}
