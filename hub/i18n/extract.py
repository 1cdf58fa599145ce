"""Extracting the texts of each domain from the sources and checking the nine catalogues against them (Babel).

Used by ``scripts/i18n.py`` (update the ``.po`` files after a text changed) and by the catalogue tests (fail when
a catalogue lacks a text, keeps one the sources no longer have, leaves one empty or loses a placeholder).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import write_po

from hub.i18n import domains
from hub.i18n.catalogs import po_path, read_catalog
from hub.i18n.domains import KEYWORDS
from hub.i18n.languages import BY_CODE, CODES, SOURCE

ROOT = Path(__file__).resolve().parents[2]
METHODS = {"jinja2": "jinja2.ext:babel_extract", "python": "python", "javascript": "javascript"}
_PLACEHOLDER = re.compile(r"%\((\w+)\)[sdif]|%[sdif]|\{(\w*)\}")


def files_of(domain: str, root: Path = ROOT) -> Iterator[tuple[Path, str]]:
    for pattern, method in domains.DOMAINS[domain]:
        for path in sorted(root.glob(pattern)):
            if path.is_file():
                yield path, method


def extract(domain: str, root: Path = ROOT) -> Catalog:
    """Every text the domain's sources mark, with where it stands (the template of the domain's catalogues)."""
    template = Catalog(domain=domain, project="warnhub", msgid_bugs_address="", charset="utf-8")
    for path, method in files_of(domain, root):
        options = {"extensions": "jinja2.ext.i18n", "trimmed": "true"} if method == "jinja2" else {}
        for lineno, message, comments, context in extract_from_file(METHODS[method], str(path), keywords=KEYWORDS,
                                                                   comment_tags=("TRANSLATORS:",), options=options):
            template.add(message, None, [(str(path.relative_to(root)), lineno)], auto_comments=comments,
                         context=context)
    return template


def update(domain: str, root: Path = ROOT) -> list[Path]:
    """Brings every language's catalogue of the domain up to the sources: new texts added empty (German: the text
    itself), texts the sources dropped removed. Returns the files written."""
    template = extract(domain, root)
    written = []
    for code in CODES:
        catalog = read_catalog(code, domain)
        catalog.update(copy.deepcopy(template), no_fuzzy_matching=True)
        catalog.project, catalog.version, catalog.fuzzy = "warnhub", "", False
        catalog.copyright_holder = "the warnhub authors"
        catalog.header_comment = f"# {BY_CODE[code].own_name}: warnhub's {domain} texts (German message ids).\n#"
        if catalog.last_translator.startswith("FULL NAME"):
            catalog.last_translator = "warnhub team, not yet reviewed by a native speaker"
        catalog.obsolete.clear()
        if code == SOURCE.code:
            for msg in catalog:
                if msg.id and not msg.string:
                    msg.string = msg.id
        path = po_path(code, domain)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            write_po(fh, catalog, width=120, sort_output=False, include_previous=False)
        written.append(path)
    return written


def placeholders(text: str) -> list[str]:
    return sorted(m.group(0) for m in _PLACEHOLDER.finditer(text))


@dataclass(frozen=True)
class Problem:
    domain: str
    language: str
    message: str
    what: str

    def __str__(self) -> str:
        return f"{self.domain}/{self.language}: {self.what}: {self.message!r}"


def check(domain: str, root: Path = ROOT) -> list[Problem]:
    """What keeps the domain's catalogues from being complete: texts missing, obsolete or empty, placeholders lost."""
    wanted = {m.id for m in extract(domain, root) if m.id}
    problems: list[Problem] = []
    for code in CODES:
        catalog = read_catalog(code, domain)
        have = {m.id: m for m in catalog if m.id}
        problems += [Problem(domain, code, _key(i), "missing") for i in wanted - set(have)]
        problems += [Problem(domain, code, _key(i), "not in the sources") for i in set(have) - wanted]
        for msg_id, msg in have.items():
            problems += _message_problems(domain, code, msg_id, msg.string, msg.fuzzy)
    return problems


def _message_problems(domain: str, code: str, msg_id: object, string: object, fuzzy: bool) -> list[Problem]:
    ids = msg_id if isinstance(msg_id, tuple) else (msg_id,)
    strings = tuple(string) if isinstance(string, (tuple, list)) else (string,)
    key = _key(msg_id)
    if fuzzy:
        return [Problem(domain, code, key, "fuzzy")]
    if not strings or any(not s for s in strings):
        return [Problem(domain, code, key, "empty")]
    if isinstance(msg_id, tuple) and len(strings) != Catalog(locale=BY_CODE[code].babel).num_plurals:
        return [Problem(domain, code, key, "wrong number of plural forms")]
    want = placeholders(str(ids[-1]))
    return [Problem(domain, code, key, f"placeholders {placeholders(str(s))} instead of {want}")
            for s in strings if not _keeps(placeholders(str(s)), want, plural=len(ids) > 1)]


def _keeps(have: list[str], want: list[str], *, plural: bool) -> bool:
    """A translation keeps the placeholders of its text; a plural form may leave out the count (``Eine Warnung``)."""
    return set(have) <= set(want) if plural else have == want


def _key(msg_id: object) -> str:
    return str(msg_id[0] if isinstance(msg_id, tuple) else msg_id)
