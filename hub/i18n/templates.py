"""Jinja templates in the nine languages: ``{{ _("Text") }}`` and ``{% trans %}`` read the page's catalogue.

One overlay of the base environment per (language, domain), made once: the overlay has the catalogue's ``gettext``
and ``ngettext`` installed new-style (``_("Noch %(n)s Warnungen", n=3)`` formats and autoescapes its values).
"""

from __future__ import annotations

from functools import cache
from typing import cast

from jinja2 import Environment
from jinja2.ext import InternationalizationExtension

from hub.i18n.catalogs import translator
from hub.i18n.languages import language


def install(env: Environment) -> Environment:
    """Adds the i18n extension to a base environment (its own templates then render German)."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(  # type: ignore[attr-defined]  # added by the extension
        lambda s: s, lambda s, p, n: s if n == 1 else p, newstyle=True)
    return env


@cache
def localized(env: Environment, lang: str | None, domain: str) -> Environment:
    """The environment whose templates render in ``lang`` (a hub code or tag; German when the hub lacks it)."""
    t = translator(language(lang).code, domain)
    overlay = env.overlay(cache_size=400)  # its own template cache, compiled in its language
    # An overlay shares its parent's globals dict, and its install_gettext_callables is the parent's extension's
    # (it installs into the parent): each language gets its own globals, filled by the overlay's own extension.
    overlay.globals = dict(env.globals)
    ext = cast(InternationalizationExtension, overlay.extensions[InternationalizationExtension.identifier])
    ext._install_callables(t.gettext, t.ngettext, newstyle=True)
    return overlay
