"""Event names from codes (hub/cap/event_names.py): every code FACTS.md names has a name in all nine languages,
DWD's own MUL words are the ones in the real MUL file, and the review state is what the table says."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.cap.event_names import Name, event_name, lookup, table
from hub.cap.parse import parse
from hub.decide.rules.templates import BIWAPP_CATEGORIES
from hub.i18n.languages import CODES

DATA = Path(__file__).parents[2] / "data"
MUL = DATA / "cap" / "de_dwd_brightsky_MUL_1687511640000_0d1a4fb5.xml"
BBK_CODES = [f"BBK-EVC-{n}" for n in ("001", "023", "030", "038", "040", "064", "065", "075", "077", "078", "079",
                                      "081", "086")]
"""The BBK event codes FACTS.md 5.1 saw in use."""
DWD_II = ["22", "24", "31", "33", "34", "36", "38", *map(str, range(40, 50)), *map(str, range(51, 60)),
          *map(str, range(61, 67)), *map(str, range(70, 77)), "82", "84", "85", "87", "88", "89", "98", "99",
          "246", "247", "248"]
"""The II codes FACTS.md 5.2 lists for warnings over land (the coastal and sea ones 11-16 and the thunderstorm
classes 90-96 are not named there)."""


@pytest.mark.parametrize("code", [*BIWAPP_CATEGORIES, *BBK_CODES, *DWD_II])
def test_every_code_has_a_name_in_every_language(code: str) -> None:
    names = {lang: event_name(code, lang) for lang in CODES}
    missing = [lang for lang, name in names.items() if name is None or not name[0].strip()]
    assert not missing, f"{code}: no name in {missing}"
    texts = [name[0] for name in names.values() if name]
    # a name is in its language: at most German and Leichte Sprache may share words with the others by chance
    assert len(set(texts)) >= 5, f"{code}: {texts} look copied, not translated"


def test_the_table_holds_nothing_outside_the_nine_languages_and_every_entry_is_complete() -> None:
    for key, names in table().items():
        assert set(names) == set(CODES), key


def test_dwd_mul_words_are_dwd_s_own_as_they_came() -> None:
    """Every language of the real MUL file for II 61 gives exactly the table's name, marked as DWD's and reviewed
    (DWD published it); the German and Leichte Sprache names are ours and unreviewed."""
    alert = parse(MUL.read_bytes()).alert
    foreign = [i for i in alert.infos if not i.lang.startswith("de")]
    assert len(foreign) == 7
    for info in foreign:
        name = lookup(info, info.lang)
        assert name is not None and name.origin == "DWD MUL", info.lang
        assert name.text == info.event.strip(), info.lang
        assert event_name(info, info.lang) == (info.event.strip(), True)
    assert lookup("61", "de") == Name("Starkregen")
    assert event_name("61", "de-DE-x-ls") == ("Viel Regen", False)


def test_an_info_is_looked_up_by_ii_then_category_then_bbk_code() -> None:
    alert = parse((DATA / "cap" / "de_dwd_kweathercore_update-MUL.xml").read_bytes()).alert
    assert event_name(alert.infos[0], "tr") == event_name("34", "tr")  # II 34 "STARKES GEWITTER"
    assert event_name("BBK-EVC-079", "tr") == ("Patlamamış mühimmat bulundu", False)
    assert event_name("bombenfund", "TR") == ("Bomba bulundu", False)  # NINA's upper-case language codes too
    assert event_name("Bombenfund", "uk") is None  # a language the hub does not have
    assert event_name("BBK-EVC-999", "de") is None  # nothing invented for an unknown code
