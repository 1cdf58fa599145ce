"""The nine languages' catalogues: complete for every text the sources mark, placeholders kept; and the check that
says so can fail."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hub.i18n import catalogs, domains, extract
from hub.i18n.languages import CODES


@pytest.mark.parametrize("domain", sorted(domains.DOMAINS))
def test_every_catalogue_has_every_text_in_every_language(domain: str) -> None:
    problems = extract.check(domain)
    assert not problems, "\n".join(map(str, problems[:40])) + "\n(python scripts/i18n.py updates the catalogues)"


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "page.html").write_text('<p>{{ _("Guten Tag, %(name)s", name=who) }}</p>\n', encoding="utf-8")
    (tmp_path / "push.py").write_text('from hub.i18n.catalogs import N_\nTITLE = N_("Warnung")\n', encoding="utf-8")
    monkeypatch.setattr(domains, "DOMAINS", {"demo": (("page.html", "jinja2"), ("*.py", "python"))})
    monkeypatch.setattr(catalogs, "LOCALE_DIR", tmp_path / "locale")
    catalogs.translator.cache_clear()
    yield tmp_path
    catalogs.translator.cache_clear()


def _fill(code: str, strings: dict[str, str]) -> None:
    path = catalogs.po_path(code, "demo")
    text = path.read_text(encoding="utf-8")
    for msg_id, string in strings.items():
        text = re.sub(f'msgid "{re.escape(msg_id)}"\nmsgstr ".*"', f'msgid "{msg_id}"\nmsgstr "{string}"', text)
    path.write_text(text, encoding="utf-8")


def test_the_check_names_missing_texts_and_lost_placeholders(demo: Path) -> None:
    assert {p.what for p in extract.check("demo", demo)} == {"missing"}
    written = extract.update("demo", demo)
    assert len(written) == len(CODES) == 9
    problems = extract.check("demo", demo)
    assert {(p.language, p.what) for p in problems} == {(c, "empty") for c in CODES if c != "de"}
    for code in CODES:
        if code != "de":
            _fill(code, {"Guten Tag, %(name)s": "Hello", "Warnung": "Warning"})
    lost = extract.check("demo", demo)
    assert {(p.language, p.message) for p in lost} == {(c, "Guten Tag, %(name)s") for c in CODES if c != "de"}
    assert all("placeholders" in p.what for p in lost)
    for code in CODES:
        if code != "de":
            _fill(code, {"Guten Tag, %(name)s": "Merhaba, %(name)s", "Warnung": "Uyarı"})
    assert extract.check("demo", demo) == []
    assert catalogs.translator("tr-TR", "demo").format("Guten Tag, %(name)s", name="Ayşe") == "Merhaba, Ayşe"
    assert catalogs.translator("de", "demo").gettext("Warnung") == "Warnung"


def test_an_update_keeps_translations_and_drops_texts_the_sources_no_longer_have(demo: Path) -> None:
    extract.update("demo", demo)
    _fill("pl", {"Warnung": "Ostrzeżenie"})
    (demo / "push.py").write_text('from hub.i18n.catalogs import N_\nTITLE = N_("Warnung")\nX = N_("Neu")\n')
    (demo / "page.html").write_text("<p>nichts</p>\n")
    extract.update("demo", demo)
    ids = {m.id for m in catalogs.read_catalog("pl", "demo") if m.id}
    assert ids == {"Warnung", "Neu"}
    assert catalogs.translator("pl", "demo").gettext("Warnung") == "Ostrzeżenie"
