"""The subscribe page's own texts come from the ``subscribe`` catalogues (issue 18, section 1): German unchanged,
English as before, and the other languages from their catalogue, the filters and the test button included; the base
template's texts are left to the page's own domain.

The template is rendered by the citizen site's Jinja environment with the base context the site gives every page
(built here by hand, without a server) and :func:`hub.web.subscribe_view.context`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from hub.i18n.catalogs import translator
from hub.i18n.languages import CODES, language
from hub.web import citizen, subscribe_view
from hub.web.citizen_texts import script_texts


def render(lang: str) -> str:
    base: dict[str, Any] = {
        "lang": lang, "dir": language(lang).dir, "own_name": language(lang).own_name,
        "t": lambda de, en: en if lang == "en" else de, "url": lambda p, **q: p,
        "district": "Landkreis Lüchow-Dannenberg", "district_ars": "033540000000", "version": "0",
        "path": "/abonnieren", "origin": "http://127.0.0.1",
        "switch_languages": citizen.switcher("/abonnieren", {}, lang), "script_texts": script_texts(lang, push=True),
        "feeds": [], "boundary_attribution": "©"}
    return citizen.env(lang).get_template("citizen/subscribe.html").render(  # the site's environment for lang
        **base, **subscribe_view.context(lang), radii=[500, 1000], page_data={})


def texts(html: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="subscribe-text">(.*?)</script>', html, re.S)
    assert found
    return dict(json.loads(found.group(1)))


def test_german_is_the_message_id_and_unchanged() -> None:
    html = render("de")
    assert "<h1>Warnungen abonnieren</h1>" in html
    assert "Wählen Sie bis zu 20 Orte: eine Gemeinde suchen" in html
    assert "Nur Orte in Landkreis Lüchow-Dannenberg." in html
    assert "Test-Benachrichtigung senden" in html and "Ruhezeit einschalten" in html
    assert texts(html)["testArrived"].startswith("Die Test-Benachrichtigung ist angekommen")


def test_english_reads_as_before() -> None:
    html = render("en")
    assert "<h1>Subscribe to warnings</h1>" in html and "Places in Landkreis Lüchow-Dannenberg only." in html
    assert "Choose up to 20 places: search a municipality, tap the map or use your location." in html
    assert texts(html)["levels"] == {"kreis": "district", "verband": "joint municipality", "gemeinde": "municipality"}
    assert ">Unexploded ordnance</label>" in html
    assert ">Official warnings (MoWaS, KATWARN, BIWAPP, control room)<" in html


@pytest.mark.parametrize("lang", [c for c in CODES if c != "de"])
def test_every_language_reads_its_catalogue(lang: str) -> None:
    t = translator(lang, "subscribe")
    html = render(lang)
    for german in ("Warnungen abonnieren", "Test-Benachrichtigung senden", "Ruhezeit einschalten", "Bombenfund"):
        word = t.gettext(german)
        assert word in html, (lang, german, word)
        if lang != "de-x-ls" or german == "Warnungen abonnieren":
            assert word != german, (lang, german)  # translated, not German left over
    assert texts(html)["testMissing"] == t.gettext("Die Test-Benachrichtigung ist nach 30 Sekunden nicht angekommen.")
    assert t.gettext("Nur Orte in %(district)s.") % {"district": "Landkreis Lüchow-Dannenberg"} in html


def test_values_are_escaped_and_languages_listed_by_their_own_names() -> None:
    gettext = subscribe_view.gettext_for("de")
    assert str(gettext("Nur Orte in %(district)s.", district="<b>X</b>")) == "Nur Orte in &lt;b&gt;X&lt;/b&gt;."
    html = render("ar")
    assert 'lang="ar" dir="rtl">العربية</label>' in html and 'lang="tr-TR" dir="ltr">Türkçe</label>' in html
    assert re.search(r'id="language-ar" value="ar" checked', html)
