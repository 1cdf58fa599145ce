"""One hub for two neighbouring Kreise (issue 19): Lüchow-Dannenberg (the first district, the repository's rules) and
Uelzen (tests/data/districts/uelzen: rules of its own, deliberately unlike Lüchow-Dannenberg's). They share a border
along Samtgemeinde Rosche (Uelzen) and Samtgemeinden Lüchow and Clenze (Lüchow-Dannenberg).

    cfg = write_two_districts(folder, port=port)        # tests.kits.hubproc.write_config + [[districts]]
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.kits.hubproc import write_config

ROOT = Path(__file__).resolve().parents[2]
LD, UE = "033540000000", "033600000000"
LD_SLUG, UE_SLUG = "luechow-dannenberg", "uelzen"
LD_SENDER, UE_SENDER = "leitstelle@luechow-dannenberg.example", "leitstelle@uelzen.example"
UELZEN_RULES = ROOT / "tests" / "data" / "districts" / "uelzen"

UELZEN_TOWN = "033600025025"
"""Uelzen, Hansestadt (a Gemeinde of Kreis Uelzen)."""
SUHLENDORF = "033605404024"
"""Suhlendorf (Samtgemeinde Rosche, Kreis Uelzen), on the border with Lüchow-Dannenberg."""
HITZACKER = "033545406009"
"""Hitzacker (Elbe), in Lüchow-Dannenberg."""


def districts_toml(*, ld_rules: str = "rules-ld", ue_rules: str = "rules-ue", extra_ld: str = "",
                   extra_ue: str = "") -> str:
    return f"""
[[districts]]
ars = "{LD}"
slug = "{LD_SLUG}"
name = "Landkreis Lüchow-Dannenberg"
sender = "{LD_SENDER}"
rules = ["{ld_rules}"]
colour = "#005ca9"
{extra_ld}
[[districts]]
ars = "{UE}"
slug = "{UE_SLUG}"
name = "Landkreis Uelzen"
sender = "{UE_SENDER}"
rules = ["{ue_rules}"]
colour = "#00643c"
{extra_ue}
"""


def write_two_districts(folder: Path, *, port: int, extra: str = "", store_url: str | None = None,
                        extra_ld: str = "", extra_ue: str = "", **kw: object) -> Path:
    """A daemon config for both districts in ``folder``, with each district's rules copied beside it
    (``rules-ld``: the repository's rules/ without its sensor rules, templates included; ``rules-ue``: Uelzen's).
    ``extra`` goes after ``[[districts]]`` (sources, boards, webhooks with ``district = "uelzen"``)."""
    ld = folder / "rules-ld"
    shutil.copytree(ROOT / "rules" / "templates", ld / "templates", dirs_exist_ok=True)
    text = (ROOT / "rules" / "luechow-dannenberg.toml").read_text(encoding="utf-8")
    cut = text.index('[[rule]]\nname = "Hochwasser Elbe: Pegel')  # the sensor rules need the MQTT sensors
    (ld / "luechow-dannenberg.toml").write_text(text[:cut], encoding="utf-8")
    shutil.copytree(UELZEN_RULES, folder / "rules-ue", dirs_exist_ok=True)
    return write_config(folder, port=port, name="Warnhub Nordost-Niedersachsen", store_url=store_url,
                        extra=districts_toml(extra_ld=extra_ld, extra_ue=extra_ue) + extra, **kw)  # type: ignore[arg-type]
