"""Value checks for rule and template files: each converter returns the value in the form the model keeps, or
raises :class:`~hub.decide.rules.problems.Bad` saying what is wrong (:meth:`RuleFile.get
<hub.decide.rules.problems.RuleFile.get>` turns that into a problem with file, line and field)."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from enum import Enum
from typing import Any, TypeVar

from hub.decide.rules.model import CodeMatch
from hub.decide.rules.problems import Bad

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
ARS_RE = re.compile(r"^[0-9]{12}$")
EVC_RE = re.compile(r"^BBK-EVC-[0-9]{3}$")
ISC_RE = re.compile(r"^BBK-ISC-[0-9]{3}$")
LANG_RE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")

E = TypeVar("E", bound=Enum)


def one_str(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Bad(f"expected a non-empty string, got {show(value)}")
    return value.strip()


def str_list(value: Any) -> tuple[str, ...]:
    """A string or a non-empty list of strings."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise Bad(f"expected a string or a non-empty list of strings, got {show(value)}")
    bad = [v for v in value if not isinstance(v, str) or not v.strip()]
    if bad:
        raise Bad(f"expected strings, got {show(bad[0])}")
    return tuple(v.strip() for v in value)


def show(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def enum_value(cls: type[E]) -> Callable[[Any], E]:
    names = {m.value.lower(): m for m in cls}

    def conv(value: Any) -> E:
        if not isinstance(value, str) or value.strip().lower() not in names:
            raise Bad(f"{show(value)} is not a {cls.__name__.lower()} (one of {', '.join(m.value for m in cls)})")
        return names[value.strip().lower()]

    return conv


def enum_values(cls: type[E]) -> Callable[[Any], tuple[E, ...]]:
    one = enum_value(cls)

    def conv(value: Any) -> tuple[E, ...]:
        return tuple(one(v) for v in str_list(value))

    return conv


def choices(allowed: Collection[str], what: str) -> Callable[[Any], tuple[str, ...]]:
    def conv(value: Any) -> tuple[str, ...]:
        items = str_list(value)
        for item in items:
            if item not in allowed:
                raise Bad(f"unknown {what} {item!r} (known: {', '.join(sorted(allowed))})")
        return items

    return conv


def number(*, gt: float | None = None, ge: float | None = None, le: float | None = None) -> Callable[[Any], float]:
    def conv(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Bad(f"expected a number, got {show(value)}")
        if gt is not None and not value > gt:
            raise Bad(f"must be greater than {gt:g}, got {value}")
        if ge is not None and not value >= ge:
            raise Bad(f"must be at least {ge:g}, got {value}")
        if le is not None and not value <= le:
            raise Bad(f"must be at most {le:g}, got {value}")
        return float(value)

    return conv


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Bad(f"expected true or false, got {show(value)}")
    return value


def whole(lo: int, hi: int) -> Callable[[Any], int]:
    def conv(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise Bad(f"expected a whole number from {lo} to {hi}, got {show(value)}")
        return value

    return conv


def matching(regex: re.Pattern[str], what: str) -> Callable[[Any], tuple[str, ...]]:
    def conv(value: Any) -> tuple[str, ...]:
        items = str_list(value)
        for item in items:
            if not regex.match(item):
                raise Bad(f"{item!r} is not {what}")
        return items

    return conv


def globs(value: Any) -> tuple[re.Pattern[str], ...]:
    """Case-insensitive shell patterns (``VORABINFORMATION*``, ``nina*``)."""
    out = []
    for item in str_list(value):
        regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in item)
        out.append(re.compile(f"^{regex}$", re.IGNORECASE | re.DOTALL))
    return tuple(out)


def code_matches(value: Any) -> tuple[CodeMatch, ...]:
    out = []
    for item in str_list(value):
        name, sep, rest = item.partition("=")
        if not sep:
            out.append(CodeMatch(item, None, item))
            continue
        name, rest = name.strip(), rest.strip()
        if not name or not rest:
            raise Bad(f"{item!r}: write NAME=VALUE, NAME=LOW..HIGH or a bare code such as BBK-EVC-038")
        lo, dots, hi = rest.partition("..")
        if dots:
            try:
                low, high = float(lo), float(hi)
            except ValueError as err:
                raise Bad(f"{item!r}: a range needs numbers (II=40..49)") from err
            if low > high:
                raise Bad(f"{item!r}: range runs backwards")
            out.append(CodeMatch(item, name, None, low, high))
        else:
            out.append(CodeMatch(item, name, rest))
    return tuple(out)
