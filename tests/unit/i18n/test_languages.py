"""How a page picks its language: ?lang=, then the subscription, then Accept-Language, else German."""

from __future__ import annotations

from hub.i18n.languages import CODES, LANGUAGES, accepted, code_of, language, negotiate


def test_the_nine_languages_of_the_federal_systems_german_first() -> None:
    assert CODES == ("de", "de-x-ls", "en", "ar", "es", "fr", "pl", "ru", "tr")
    assert [lang.code for lang in LANGUAGES if lang.dir == "rtl"] == ["ar"]
    assert len({lang.own_name for lang in LANGUAGES}) == 9


def test_tags_map_onto_the_hubs_languages() -> None:
    assert [code_of(t) for t in ("de-DE", "DE", "de-DE-x-ls", "DE-LS", "en-US", "AR", "tr_TR", "uk", "", None)] == [
        "de", "de", "de-x-ls", "de-x-ls", "en", "ar", "tr", None, None, None]
    assert language("uk").code == "de" and language("ar-SA").dir == "rtl"


def test_accept_language_by_weight_then_order_without_refused_or_unknown_ones() -> None:
    assert accepted("uk, tr-TR;q=0.9, en;q=0.95, de;q=0, ar;q=bad, *;q=0.1") == ["en", "tr"]
    assert accepted(None) == [] and accepted(";;,") == []


def test_query_beats_subscription_beats_browser_beats_german() -> None:
    assert negotiate("tr", ["ar"], "pl") == "tr"
    assert negotiate("xx", ["uk", "ar"], "pl") == "ar"
    assert negotiate(None, [], "ru-RU,ru;q=0.9") == "ru"
    assert negotiate(None, [], "uk") == "de"
