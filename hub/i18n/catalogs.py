"""The message catalogues at run time: ``.po`` files read through Babel, one translator per (language, domain).

Read once per process and kept: the catalogues are part of the release, not data that changes while the hub runs.
A text a catalogue lacks (or leaves empty) reads German, its message id; the catalogue tests keep that from
happening in a release.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from gettext import c2py
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from hub.i18n.languages import BY_CODE, SOURCE, code_of

LOCALE_DIR = Path(__file__).parent / "locale"


def po_path(code: str, domain: str) -> Path:
    return LOCALE_DIR / code / "LC_MESSAGES" / f"{domain}.po"


def read_catalog(code: str, domain: str) -> Catalog:
    """The catalogue of one language and domain as Babel reads it (an empty one when the file does not exist)."""
    path = po_path(code, domain)
    if not path.exists():
        return Catalog(locale=BY_CODE[code].babel, domain=domain)
    with path.open("rb") as fh:
        return read_po(fh, locale=BY_CODE[code].babel, domain=domain)


@dataclass(frozen=True, slots=True)
class Translator:
    """``gettext``/``ngettext`` of one language and domain; the call signatures of :mod:`gettext`."""

    code: str
    messages: Mapping[str, str]
    plurals: Mapping[str, tuple[str, ...]]
    plural: Callable[[int], int]

    def gettext(self, message: str) -> str:
        return self.messages.get(message) or message

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        forms = self.plurals.get(singular)
        index = self.plural(n)
        if forms and index < len(forms) and forms[index]:
            return forms[index]
        return singular if n == 1 else plural

    def format(self, message: str, **values: Any) -> str:
        """A text with its ``%(name)s`` placeholders filled."""
        return self.gettext(message) % values if values else self.gettext(message)


@cache
def translator(lang: str | None, domain: str) -> Translator:
    """The translator of a language (a hub code or a tag; German when the hub has none of it) and domain."""
    code = code_of(lang) or SOURCE.code
    catalog = read_catalog(code, domain)
    messages: dict[str, str] = {}
    plurals: dict[str, tuple[str, ...]] = {}
    for msg in catalog:
        if not msg.id or msg.fuzzy:
            continue
        if isinstance(msg.id, (tuple, list)):
            plurals[msg.id[0]] = tuple(msg.string or ())
        elif isinstance(msg.string, str) and msg.string:
            messages[str(msg.id)] = msg.string
    return Translator(code, messages, plurals, c2py(catalog.plural_expr))


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark for extraction, translate later"
    """Marks a text for the catalogues where it is defined (a table); it is translated where it is shown."""
    return message
