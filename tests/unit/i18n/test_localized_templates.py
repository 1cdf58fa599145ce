"""Templates render in the language asked for, however the languages' requests interleave (hub/i18n/templates.py):
a Jinja overlay shares its parent's globals, so one language's ``_`` must not replace another's."""

from __future__ import annotations

import jinja2

from hub.i18n.catalogs import translator
from hub.i18n.templates import install, localized


def test_each_language_keeps_its_own_gettext_whatever_rendered_before() -> None:
    env = install(jinja2.Environment(loader=jinja2.DictLoader({"t.html": '{{ _("Keine Warnungen") }}'}),
                                     autoescape=True))
    want = {lang: translator(lang, "notify").gettext("Keine Warnungen") for lang in ("fr", "tr", "de", "ar")}
    assert len(set(want.values())) == 4  # the catalogue has the text in each
    for lang in ("fr", "tr", "de", "ar", "fr", "de", "tr", "ar"):  # every language again after the others
        assert localized(env, lang, "notify").get_template("t.html").render() == want[lang], lang
    assert env.get_template("t.html").render() == "Keine Warnungen"  # the base environment stays German
