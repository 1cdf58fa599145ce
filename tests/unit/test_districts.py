"""``[[districts]]``: one hub for several Kreise (hub.config.districts), and a single-district store's rows given to
the first district (migration 8, ``Store.adopt_district``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.config import load as config_load
from hub.errors import ConfigError
from hub.store.db import Store

LD, UE = "033540000000", "033600000000"

TWO = f"""
[hub]
name = "Warnhub Nordost-Niedersachsen"
public_url = "https://warnung.example"

[[districts]]
ars = "{LD}"
slug = "luechow-dannenberg"
name = "Landkreis Lüchow-Dannenberg"
sender = "leitstelle@luechow-dannenberg.example"

[[districts]]
ars = "{UE}"
slug = "uelzen"
name = "Landkreis Uelzen"
sender = "leitstelle@uelzen.example"
rules = ["rules-uelzen"]
host = "Warnung.Uelzen.example"
four_eyes = ["Extreme"]
"""


def write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "config.toml"
    f.write_text(text, encoding="utf-8")
    return f


def test_two_districts_load_with_their_own_settings(tmp_path: Path) -> None:
    loaded = config_load.load(write(tmp_path, TWO))
    ds = loaded.districts
    assert ds.multi and [d.slug for d in ds] == ["luechow-dannenberg", "uelzen"]
    assert loaded.cfg.hub.district_ars == LD  # the first district's, for what the hub does as one
    ue = ds.by_slug("uelzen")
    assert ue is not None and ue.ars == UE and ue.sender == "leitstelle@uelzen.example"
    assert ue.rules == (tmp_path / "rules-uelzen",) and ds.first.rules == (tmp_path / "rules",)
    assert ue.public_url == "https://warnung.example/uelzen"
    assert ue.four_eyes.required_for == ("Extreme",)
    assert ds.first.four_eyes.required_for == ("Extreme", "Severe", "Moderate", "Minor")
    assert ds.by_host("warnung.uelzen.example:443") is ue
    assert ds.of_region("033605404024") is ue and ds.of_region("033545406009") is ds.first
    assert ds.of_region("031510000000") is None
    assert ds.touched(["030000000000"]) == tuple(ds)  # a Land-wide warning touches both
    assert ds.touched(["033605404024"]) == (ue,)
    assert ds.of_scopes([UE]) is ue and ds.of_scopes(["033605404024", "033605404018"]) is ue
    assert ds.of_scopes([LD, UE]) is None and ds.of_scopes([]) is None and ds.of_scopes(["031510000000"]) is None


def test_one_district_is_the_hub_section(tmp_path: Path) -> None:
    loaded = config_load.load(write(tmp_path, f'[hub]\nname = "Landkreis Lüchow-Dannenberg"\ndistrict_ars = "{LD}"\n'
                                              'sender = "a@b.example"\n'))
    ds = loaded.districts
    assert not ds.multi and ds.first.ars == LD and ds.first.slug == "luechow-dannenberg"
    assert ds.first.sender == "a@b.example" and ds.first.rules == (tmp_path / "rules",)


@pytest.mark.parametrize(("change", "where"), [
    (("slug = \"uelzen\"", "slug = \"luechow-dannenberg\""), "$.districts[1].slug"),
    ((f'ars = "{UE}"', f'ars = "{LD}"'), "$.districts[1].ars"),
    ((f'ars = "{UE}"', 'ars = "033605305001"'), "$.districts[1].ars"),
    (("slug = \"uelzen\"", "slug = \"console\""), "$.districts[1].slug"),
    (("[hub]\n", f'[hub]\ndistrict_ars = "{UE}"\n'), "$.hub.district_ars"),
    (("rules = [\"rules-uelzen\"]", "rules = [\"rules-uelzen\"]\nlogo = \"nowhere.png\""), "$.districts[1].logo"),
    (("Warnung.Uelzen.example", "https://warnung.uelzen.example/"), "$.districts[1].host"),
    (("Warnung.Uelzen.example", "warnung uelzen"), "$.districts[1].host"),
])
def test_bad_districts_are_refused_with_the_path(tmp_path: Path, change: tuple[str, str], where: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_load.load(write(tmp_path, TWO.replace(*change, 1)))
    assert where in str(err.value)


def test_a_board_names_a_district_that_exists(tmp_path: Path) -> None:
    board = '\n[[boards]]\nid = "b1"\nname = "Markt"\nars = "033605305001"\nkind = "kiosk"\ndistrict = "harz"\n'
    with pytest.raises(ConfigError) as err:
        config_load.load(write(tmp_path, TWO + board))
    assert "$.boards[0].district" in str(err.value) and "uelzen" in str(err.value)
    loaded = config_load.load(write(tmp_path, TWO + board.replace('"harz"', '"uelzen"')))
    assert loaded.cfg.boards[0].district == "uelzen"


def test_a_single_district_store_becomes_the_first_district(tmp_path: Path) -> None:
    with Store(tmp_path / "hub.db") as store:
        with store.transaction() as conn:
            conn.execute("INSERT INTO drafts (key, origin, rule, kind, template, at, channels, audiences, why, draft,"
                         " created_at) VALUES ('k', 'o', 'r', 'alert', 't', 'x', '[]', '[]', '', '{}', 'x')")
        store.audit("test", "before", "", {})
        assert store.adopt_district(LD) == 1
        assert store.conn.execute("SELECT district FROM drafts").fetchall() == [(LD,)]
        assert store.adopt_district(LD) == 0  # once
        check = store.verify_audit()
        assert check.ok and check.entries == 1
