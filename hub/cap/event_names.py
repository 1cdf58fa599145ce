"""Event names in the nine languages, from codes rather than machine translation.

``event_names.toml`` beside this module holds them: the ten BIWAPP categories, the BBK event codes (BBK-EVC-nnn)
FACTS.md saw in use and the DWD event types by II code, each in every language of :mod:`hub.i18n.languages`, each
language with where its words come from (written by warnhub, or DWD's own from a MUL file) and who confirmed it
(``reviewed_by``/``reviewed_on``; empty: unreviewed). :func:`event_name` answers one name and whether it is reviewed.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from hub.cap.model import Info
from hub.i18n.languages import CODES, code_of

TABLE = Path(__file__).with_name("event_names.toml")
KINDS = ("biwapp", "bbk", "dwd")
_EVC = re.compile(r"BBK-EVC-\d{3}")


@dataclass(frozen=True, slots=True)
class Name:
    text: str
    origin: str = "warnhub"
    """``warnhub`` (written by us) or ``DWD MUL`` (DWD's own words, as they came)."""
    reviewed_by: str = ""
    reviewed_on: date | None = None

    @property
    def reviewed(self) -> bool:
        """Someone confirmed it (both who and when are given)."""
        return bool(self.reviewed_by.strip()) and self.reviewed_on is not None


def _name(raw: Any, where: str) -> Name:
    if not isinstance(raw, dict) or not isinstance(raw.get("text"), str) or not raw["text"].strip():
        raise ValueError(f"{TABLE.name}: {where}: expected {{ text = \"…\", reviewed_by = …, reviewed_on = … }}")
    on = raw.get("reviewed_on") or None
    if on is not None and not isinstance(on, date):
        raise ValueError(f"{TABLE.name}: {where}: reviewed_on must be a date such as 2026-12-01, or \"\"")
    return Name(raw["text"].strip(), str(raw.get("origin") or "warnhub"), str(raw.get("reviewed_by") or ""), on)


@functools.cache
def table() -> dict[tuple[str, str], dict[str, Name]]:
    """``(kind, key)`` -> language code -> :class:`Name`; a DWD entry also under each II code of its ``also``."""
    with TABLE.open("rb") as f:
        data = tomllib.load(f)
    out: dict[tuple[str, str], dict[str, Name]] = {}
    for kind in KINDS:
        for key, entry in data.get(kind, {}).items():
            names = {lang: _name(entry[lang], f"{kind}.{key}.{lang}") for lang in CODES if lang in entry}
            for k in (key, *entry.get("also", ())):
                out[(kind, k.casefold() if kind == "biwapp" else k)] = names
    return out


def _keys(code_or_info: str | Info) -> list[tuple[str, str]]:
    """Where to look, most specific first: DWD II, the BIWAPP category named by the event, the BBK event code."""
    if isinstance(code_or_info, str):
        code = code_or_info.strip()
        if _EVC.fullmatch(code):
            return [("bbk", code)]
        if code.isdigit():
            return [("dwd", code)]
        return [("biwapp", code.casefold())]
    info = code_or_info
    keys = [("dwd", v.value.strip()) for v in info.event_codes if v.value_name == "II"]
    keys.append(("biwapp", info.event.strip().casefold()))
    keys += [("bbk", v.value.strip()) for v in info.event_codes if _EVC.fullmatch(v.value.strip())]
    return keys


def of_event(event: str, codes: Sequence[str], lang: str) -> tuple[str, bool] | None:
    """An event's name in ``lang`` from what a publication keeps of an info: its event word and its codes (DWD II
    code first, then the event as a BIWAPP category, then a BBK event code), or None."""
    code = code_of(lang)
    names = table()
    keys = [("dwd", c) for c in codes if c.isdigit()] + [("biwapp", event.strip().casefold())]
    keys += [("bbk", c) for c in codes if _EVC.fullmatch(c)]
    for key in keys:
        if code is not None and key in names and code in names[key]:
            return names[key][code].text, names[key][code].reviewed
    return None


def lookup(code_or_info: str | Info, lang: str) -> Name | None:
    """The :class:`Name` of an event in language ``lang`` (a hub code or a language tag), or None."""
    code = code_of(lang)
    if code is None:
        return None
    names = table()
    for key in _keys(code_or_info):
        if key in names and code in names[key]:
            return names[key][code]
    return None


def event_name(code_or_info: str | Info, lang: str) -> tuple[str, bool] | None:
    """An event's name in ``lang`` and whether a person confirmed it, or None when the table has none.

    ``code_or_info``: a BIWAPP category (``Bombenfund``), a BBK event code (``BBK-EVC-079``), a DWD II code
    (``61``), or a CAP info (its II code, then its event as a BIWAPP category, then its BBK event code)."""
    name = lookup(code_or_info, lang)
    return None if name is None else (name.text, name.reviewed)
