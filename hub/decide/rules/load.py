"""Reading and checking rule files and templates: every problem with its file, line and field.

tomllib gives values but no positions, so :class:`Locator` scans the file's text for table headers
(``[district]``, ``[[rule]]``, ``[rule.when]``, ``[text."de-DE"]``) and keys (``when.min_severity = ...``) and
maps each path (``("rule", 2, "when", "min_severity")``) to its line. Values are checked by hand rather than by
msgspec so that one pass reports every problem, not the first.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from hub.cap.model import Category, Certainty, MsgType, Severity, Status, Urgency
from hub.decide.rules.templates import (
    ALERT_PLACEHOLDERS,
    COMPOSE_FOLDER,
    SENSOR_PLACEHOLDERS,
    Template,
    load_templates,
    template_paths,
)
from hub.errors import ConfigError

Path_ = tuple[str | int, ...]

DEFAULT_CHANNELS = ("push", "web", "boards", "webhook", "mqtt")
"""Channel names a rule may publish to unless the hub says otherwise (``push`` is the one that notifies)."""
PUSH = "push"
PUBLIC = "public"
CHANGES = ("severity", "urgency", "certainty", "event", "onset", "expires", "area_grows", "area_shrinks",
           "headline", "description", "instruction")
"""What ``push_on_update`` may name."""
DEFAULT_PUSH_ON_UPDATE = ("severity", "certainty", "event", "onset", "expires", "area_grows")
PROVIDERS = ("dwd", "mowas", "katwarn", "biwapp", "lhp", "police", "other")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_ARS = re.compile(r"^[0-9]{12}$")
_EVC = re.compile(r"^BBK-EVC-[0-9]{3}$")
_ISC = re.compile(r"^BBK-ISC-[0-9]{3}$")
_LANG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


# -- problems ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong (or, with ``warning``, worth a look) in one file."""

    file: str
    line: int | None
    field: str
    """``$.rule[2].when.min_severity`` (rule index from 0, as written in the file)."""
    message: str
    warning: bool = False

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {'warning: ' if self.warning else ''}{self.field}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message,
                "warning": self.warning}


class RulesError(ConfigError):
    """The rules folder is unusable; ``problems`` holds every error (and warning) found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        errors = [p for p in self.problems if not p.warning]
        head = f"{len(errors)} error(s) in the rules"
        super().__init__(head + ("\n" + "\n".join(str(p) for p in errors) if errors else ""))

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if not p.warning)


# -- positions -----------------------------------------------------------------------------------------------------

_KEY_PART = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|([A-Za-z0-9_-]+))\s*')
_HEADER = re.compile(r"^\s*(\[\[?)\s*(.+?)\s*\]\]?\s*(?:#.*)?$")
_KEY_LINE = re.compile(r'^\s*((?:"(?:[^"\\]|\\.)*"|\'[^\']*\'|[A-Za-z0-9_-]+)'
                       r'(?:\s*\.\s*(?:"(?:[^"\\]|\\.)*"|\'[^\']*\'|[A-Za-z0-9_-]+))*)\s*=')


def _split_key(text: str) -> tuple[str, ...] | None:
    parts: list[str] = []
    pos = 0
    while pos <= len(text):
        m = _KEY_PART.match(text, pos)
        if not m:
            return None
        parts.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
        if pos == len(text):
            return tuple(parts)
        if text[pos] != ".":
            return None
        pos += 1
    return tuple(parts)


class Locator:
    """Line numbers of tables and keys in a TOML text (1-based)."""

    def __init__(self, text: str) -> None:
        self.lines: dict[Path_, int] = {}
        table: Path_ = ()
        counts: dict[Path_, int] = defaultdict(int)
        current: dict[Path_, int] = {}
        in_string: str | None = None
        for number, raw in enumerate(text.splitlines(), 1):
            if in_string:
                if raw.count(in_string) % 2 == 1:
                    in_string = None
                continue
            stripped = raw.strip()
            if not stripped or stripped.startswith("#"):
                continue
            header = _HEADER.match(raw) if stripped.startswith("[") else None
            if header:
                parts = _split_key(header.group(2))
                if parts is None:
                    continue
                resolved = self._resolve(parts, current)
                if header.group(1) == "[[":
                    index = counts[resolved]
                    counts[resolved] += 1
                    current[resolved] = index
                    resolved = (*resolved, index)
                table = resolved
                self.lines.setdefault(table, number)
                continue
            key = _KEY_LINE.match(raw)
            if key:
                parts = _split_key(key.group(1))
                if parts is None:
                    continue
                for depth in range(1, len(parts) + 1):
                    self.lines.setdefault((*table, *parts[:depth]), number)
                rest = raw[key.end():]
                for quote in ('"""', "'''"):
                    if rest.count(quote) % 2 == 1:
                        in_string = quote

    @staticmethod
    def _resolve(parts: tuple[str, ...], current: Mapping[Path_, int]) -> Path_:
        out: list[str | int] = []
        for part in parts:
            out.append(part)
            if tuple(out) in current and part != parts[-1]:
                out.append(current[tuple(out)])
        return tuple(out)

    def line(self, path: Path_) -> int | None:
        for depth in range(len(path), 0, -1):
            if path[:depth] in self.lines:
                return self.lines[path[:depth]]
        return None


def _field(path: Path_) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


class _Bad(Exception):
    """A value is wrong; the message says how."""


class _File:
    """Problems of one file, with positions."""

    def __init__(self, path: Path, text: str, problems: list[Problem]) -> None:
        self.name = str(path)
        self.loc = Locator(text)
        self.problems = problems

    def error(self, path: Path_, message: str, *, warning: bool = False) -> None:
        self.problems.append(Problem(self.name, self.loc.line(path), _field(path), message, warning))

    def unknown_keys(self, table: Mapping[str, Any], path: Path_, known: Collection[str]) -> None:
        for key in table:
            if key not in known:
                close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]}?)" if close else f" (known: {', '.join(sorted(known))})"
                self.error((*path, key), f"unknown key{hint}")

    def get(self, table: Mapping[str, Any], path: Path_, key: str, conv: Callable[[Any], Any],
            default: Any = None) -> Any:
        if key not in table:
            return default
        try:
            return conv(table[key])
        except _Bad as err:
            self.error((*path, key), str(err))
            return default


def _read(path: Path, problems: list[Problem]) -> tuple[dict[str, Any], _File] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        problems.append(Problem(str(path), None, "$", f"not UTF-8: {err}"))
        return None
    except OSError as err:
        problems.append(Problem(str(path), None, "$", f"cannot read: {err.strerror}"))
        return None
    file = _File(path, text, problems)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        m = re.search(r"\(at line (\d+), column \d+\)", str(err))
        problems.append(Problem(str(path), int(m.group(1)) if m else None, "$", f"not valid TOML: {err}"))
        return None
    return data, file


# -- value converters ----------------------------------------------------------------------------------------------

E = TypeVar("E", bound=Enum)


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad(f"expected a non-empty string, got {_show(value)}")
    return value.strip()


def _strs(value: Any) -> tuple[str, ...]:
    """A string or a non-empty list of strings."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _Bad(f"expected a string or a non-empty list of strings, got {_show(value)}")
    bad = [v for v in value if not isinstance(v, str) or not v.strip()]
    if bad:
        raise _Bad(f"expected strings, got {_show(bad[0])}")
    return tuple(v.strip() for v in value)


def _show(value: Any) -> str:
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


def _enum(cls: type[E]) -> Callable[[Any], E]:
    names = {m.value.lower(): m for m in cls}

    def conv(value: Any) -> E:
        if not isinstance(value, str) or value.strip().lower() not in names:
            raise _Bad(f"{_show(value)} is not a {cls.__name__.lower()} (one of {', '.join(m.value for m in cls)})")
        return names[value.strip().lower()]

    return conv


def _enums(cls: type[E]) -> Callable[[Any], tuple[E, ...]]:
    one = _enum(cls)

    def conv(value: Any) -> tuple[E, ...]:
        return tuple(one(v) for v in _strs(value))

    return conv


def _choices(allowed: Collection[str], what: str) -> Callable[[Any], tuple[str, ...]]:
    def conv(value: Any) -> tuple[str, ...]:
        items = _strs(value)
        for item in items:
            if item not in allowed:
                raise _Bad(f"unknown {what} {item!r} (known: {', '.join(sorted(allowed))})")
        return items

    return conv


def _number(*, gt: float | None = None, ge: float | None = None, le: float | None = None) -> Callable[[Any], float]:
    def conv(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Bad(f"expected a number, got {_show(value)}")
        if gt is not None and not value > gt:
            raise _Bad(f"must be greater than {gt:g}, got {value}")
        if ge is not None and not value >= ge:
            raise _Bad(f"must be at least {ge:g}, got {value}")
        if le is not None and not value <= le:
            raise _Bad(f"must be at most {le:g}, got {value}")
        return float(value)

    return conv


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad(f"expected true or false, got {_show(value)}")
    return value


def _int(lo: int, hi: int) -> Callable[[Any], int]:
    def conv(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise _Bad(f"expected a whole number from {lo} to {hi}, got {_show(value)}")
        return value

    return conv


def _pattern(regex: re.Pattern[str], what: str) -> Callable[[Any], tuple[str, ...]]:
    def conv(value: Any) -> tuple[str, ...]:
        items = _strs(value)
        for item in items:
            if not regex.match(item):
                raise _Bad(f"{item!r} is not {what}")
        return items

    return conv


def _globs(value: Any) -> tuple[re.Pattern[str], ...]:
    """Case-insensitive shell patterns (``VORABINFORMATION*``, ``nina*``)."""
    out = []
    for item in _strs(value):
        regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in item)
        out.append(re.compile(f"^{regex}$", re.IGNORECASE | re.DOTALL))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class CodeMatch:
    """One ``event_code`` entry: ``II=61``, ``II=40..49`` or a bare value (``BBK-EVC-038``) under any name."""

    text: str
    name: str | None
    value: str | None = None
    lo: float | None = None
    hi: float | None = None

    def matches(self, value_name: str, value: str) -> bool:
        if self.name is not None and value_name.strip().lower() != self.name.lower():
            return False
        if self.lo is not None and self.hi is not None:
            try:
                number = float(value.strip())
            except ValueError:
                return False
            return self.lo <= number <= self.hi
        return value.strip().lower() == (self.value or "").lower()


def _codes(value: Any) -> tuple[CodeMatch, ...]:
    out = []
    for item in _strs(value):
        name, sep, rest = item.partition("=")
        if not sep:
            out.append(CodeMatch(item, None, item))
            continue
        name, rest = name.strip(), rest.strip()
        if not name or not rest:
            raise _Bad(f"{item!r}: write NAME=VALUE, NAME=LOW..HIGH or a bare code such as BBK-EVC-038")
        lo, dots, hi = rest.partition("..")
        if dots:
            try:
                low, high = float(lo), float(hi)
            except ValueError as err:
                raise _Bad(f"{item!r}: a range needs numbers (II=40..49)") from err
            if low > high:
                raise _Bad(f"{item!r}: range runs backwards")
            out.append(CodeMatch(item, name, None, low, high))
        else:
            out.append(CodeMatch(item, name, rest))
    return tuple(out)


# -- the rule model ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AreaMatch:
    """``area = "district"``, a list of ARS, or ``{ polygon = [[lat, lon], ...] }`` (CAP order)."""

    district: bool = False
    ars: tuple[str, ...] = ()
    polygon: tuple[tuple[float, float], ...] = ()
    """(lat, lon) points, closed."""

    def describe(self) -> str:
        if self.district:
            return "district"
        if self.ars:
            return "ARS " + ", ".join(self.ars)
        return f"polygon of {len(self.polygon) - 1} points"


@dataclass(frozen=True, slots=True)
class AlertMatch:
    """Conditions on an alert. Each list is alternatives; all given conditions must hold; info conditions must
    hold together for one info (one language) of the alert."""

    sources: tuple[re.Pattern[str], ...] = ()
    providers: tuple[str, ...] = ()
    senders: tuple[re.Pattern[str], ...] = ()
    statuses: frozenset[Status] | None = None
    msg_types: frozenset[MsgType] | None = None
    codes: frozenset[str] | None = None
    events: tuple[re.Pattern[str], ...] = ()
    event_codes: tuple[CodeMatch, ...] = ()
    categories: frozenset[Category] | None = None
    min_severity: Severity | None = None
    max_severity: Severity | None = None
    min_urgency: Urgency | None = None
    min_certainty: Certainty | None = None
    languages: tuple[re.Pattern[str], ...] = ()
    area: AreaMatch | None = None
    max_outside_share: float | None = None

    @property
    def info_level(self) -> bool:
        return bool(self.events or self.event_codes or self.categories or self.min_severity or self.max_severity
                    or self.min_urgency or self.min_certainty or self.languages)


@dataclass(frozen=True, slots=True)
class SensorCondition:
    sensor: str
    kind: str
    """``above``, ``below``, ``rise``, ``fall`` or ``stale``."""
    threshold: float = 0.0
    """Level (above/below), amount within the window (rise/fall) or minutes of silence (stale)."""
    clear: float | None = None
    """Hysteresis: level (clear_below/clear_above) or amount (clear_rate) at which the condition clears."""
    for_s: float = 0.0
    window_s: float = 0.0

    def describe(self) -> str:
        if self.kind == "stale":
            return f"{self.sensor} silent for {self.threshold:g} min"
        if self.kind in ("rise", "fall"):
            verb = "rises" if self.kind == "rise" else "falls"
            return f"{self.sensor} {verb} by {self.threshold:g} within {self.window_s / 60:g} min"
        text = f"{self.sensor} {self.kind} {self.threshold:g}"
        if self.for_s:
            text += f" for {self.for_s / 60:g} min"
        return text


@dataclass(frozen=True, slots=True)
class Actions:
    publish: tuple[str, ...] = ()
    audiences: tuple[str, ...] = ()
    suppress: bool = False
    draft: str | None = None
    all_clear: str | None = None
    set_severity: Severity | None = None
    escalate: int = 0
    push_on_update: frozenset[str] = frozenset(DEFAULT_PUSH_ON_UPDATE)
    push_on_cancel: bool = True


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    file: str
    line: int | None
    index: int
    when: AlertMatch | None
    unless: AlertMatch | None
    sensor: SensorCondition | None
    then: Actions
    district: str | None = None
    """The ``[district]`` ARS of the rule's file (what ``area = "district"`` means), if the file names one."""
    description: str = ""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True, slots=True)
class District:
    name: str | None = None
    ars: str | None = None
    audiences: tuple[str, ...] = (PUBLIC,)


@dataclass(slots=True)
class Loaded:
    rules: list[Rule] = field(default_factory=list)
    templates: dict[str, Template] = field(default_factory=dict)
    districts: dict[str, District] = field(default_factory=dict)
    """Per rule file."""
    files: list[Path] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


# -- reading a folder ----------------------------------------------------------------------------------------------

_ALERT_KEYS = ("source", "provider", "sender", "status", "msg_type", "code", "event", "event_code", "category",
               "min_severity", "max_severity", "min_urgency", "min_certainty", "language", "area",
               "max_outside_share")
_SENSOR_KEYS = ("sensor", "above", "below", "clear_below", "clear_above", "for_minutes", "rises_by", "falls_by",
                "within_minutes", "clear_rate", "stale_minutes")
_THEN_KEYS = ("publish", "audiences", "suppress", "draft", "all_clear", "set_severity", "escalate", "push_on_update",
              "push_on_cancel")
_RULE_KEYS = ("name", "description", "enabled", "when", "unless", "then")
_TOP_KEYS = ("district", "rule")
_DISTRICT_KEYS = ("name", "ars", "audiences")


def rule_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.toml") if p.is_file() and not p.name.startswith("."))


def template_files(folder: Path) -> list[Path]:
    tdir = folder / "templates"
    return sorted(p for p in tdir.glob("*.toml") if p.is_file() and not p.name.startswith(".")) \
        if tdir.is_dir() else []


def load_folder(folder: Path, *, channels: Collection[str] = DEFAULT_CHANNELS,
                sensors: Collection[str] | None = None) -> Loaded:
    """Read and check every rule file and template of ``folder``; problems are collected, never raised."""
    out = Loaded()
    if not folder.is_dir():
        out.problems.append(Problem(str(folder), None, "$", "no such rules folder"))
        return out
    out.files.extend(template_files(folder))
    out.templates.update(load_templates(folder / "templates", out.problems))
    # the console's templates (never drafted by rules): a broken one refuses the rule set like any other file
    out.files.extend(template_paths(folder / COMPOSE_FOLDER))
    load_templates(folder / COMPOSE_FOLDER, out.problems, compose=True)
    files = rule_files(folder)
    if not files:
        out.problems.append(Problem(str(folder), None, "$", "no rule files (*.toml) in the rules folder"))
    names: dict[str, str] = {}
    for path in files:
        out.files.append(path)
        read = _read(path, out.problems)
        if read is None:
            continue
        data, file = read
        file.unknown_keys(data, (), _TOP_KEYS)
        district = _district(data.get("district"), file)
        out.districts[str(path)] = district
        raw_rules = data.get("rule", [])
        if not isinstance(raw_rules, list):
            file.error(("rule",), "write each rule as [[rule]]")
            continue
        if not raw_rules:
            file.error(("rule",), "no [[rule]] in this file", warning=True)
        for index, raw in enumerate(raw_rules):
            name = raw.get("name") if isinstance(raw, dict) else None
            if isinstance(name, str) and name.strip() in names:
                file.error(("rule", index, "name"), f"the name {name.strip()!r} is used twice (first at "
                                                    f"{names[name.strip()]}); names identify rules in logs")
            elif isinstance(name, str) and name.strip():
                names[name.strip()] = f"{file.name}:{file.loc.line(('rule', index))}"
            rule = _rule(raw, index, file, district, channels, sensors, out.templates)
            if rule is not None:
                out.rules.append(rule)
    order = {str(p): i for i, p in enumerate(out.files)}
    out.problems.sort(key=lambda p: (order.get(p.file, -1), p.line or 0))
    if any(not p.warning for p in out.problems):
        out.rules = []
    return out


def _district(raw: Any, file: _File) -> District:
    if raw is None:
        return District()
    path: Path_ = ("district",)
    if not isinstance(raw, dict):
        file.error(path, "expected a table [district]")
        return District()
    file.unknown_keys(raw, path, _DISTRICT_KEYS)
    name = file.get(raw, path, "name", _str)
    ars = file.get(raw, path, "ars", _str)
    if ars is not None:
        from hub.geo.registry import Level, registry

        reg = registry()
        if not _ARS.match(ars) or ars not in reg:
            file.error((*path, "ars"), f"{ars!r} is not a known 12-digit ARS")
            ars = None
        elif not ars.endswith("0000000") and reg[ars].level is not Level.GEMEINDE:
            file.error((*path, "ars"), f"{ars} is not a Kreis or Gemeinde key", warning=True)
    audiences = file.get(raw, path, "audiences", _pattern(_NAME, "a name (lower case, digits, . _ -)"), ())
    return District(name=name, ars=ars, audiences=tuple(dict.fromkeys((PUBLIC, *audiences))))


def _table(raw: Any, path: Path_, file: _File, what: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        file.error(path, f"expected a table ({what}.KEY = ...), got {_show(raw)}")
        return None
    return raw


def _rule(raw: Any, index: int, file: _File, district: District, channels: Collection[str],
          sensors: Collection[str] | None, templates: Mapping[str, Template]) -> Rule | None:
    path: Path_ = ("rule", index)
    if not isinstance(raw, dict):
        file.error(path, "expected a table")
        return None
    before = len(file.problems)
    file.unknown_keys(raw, path, _RULE_KEYS)
    name = file.get(raw, path, "name", _str)
    if "name" not in raw:
        file.error(path, "every rule needs a name (it appears in logs, audit and replay)")
    description = file.get(raw, path, "description", _str, "")
    enabled = file.get(raw, path, "enabled", _bool, True)
    when_raw = _table(raw.get("when"), (*path, "when"), file, "when")
    unless_raw = _table(raw.get("unless"), (*path, "unless"), file, "unless")
    then_raw = _table(raw.get("then"), (*path, "then"), file, "then")
    if when_raw is None and "when" not in raw:
        file.error(path, "a rule needs conditions (when.KEY = ...)")
    if then_raw is None and "then" not in raw:
        file.error(path, "a rule needs actions (then.KEY = ...)")
    when_raw, then_raw = when_raw or {}, then_raw or {}
    is_sensor = "sensor" in when_raw
    when = sensor = unless = None
    if is_sensor:
        file.unknown_keys(when_raw, (*path, "when"), _SENSOR_KEYS)
        sensor = _sensor(when_raw, (*path, "when"), file, sensors)
        if unless_raw is not None:
            file.error((*path, "unless"), "a sensor rule has no unless")
    else:
        mixed = [k for k in when_raw if k in _SENSOR_KEYS]
        for key in mixed:
            file.error((*path, "when", key), "a sensor condition needs when.sensor (a rule watches either alerts "
                                             "or one sensor)")
        file.unknown_keys(when_raw, (*path, "when"), (*_ALERT_KEYS, *mixed))
        when = _alert_match(when_raw, (*path, "when"), file)
        if unless_raw is not None:
            file.unknown_keys(unless_raw, (*path, "unless"), _ALERT_KEYS)
            unless = _alert_match(unless_raw, (*path, "unless"), file, default_status=False)
    then = _actions(then_raw, (*path, "then"), file, is_sensor, district, channels, templates,
                    present="then" in raw)
    if len(file.problems) > before and any(not p.warning for p in file.problems[before:]):
        return None
    if not enabled or name is None:
        return None
    return Rule(name=name, file=file.name, line=file.loc.line(path), index=index, when=when, unless=unless,
                sensor=sensor, then=then, district=district.ars, description=description)


def _alert_match(raw: Mapping[str, Any], path: Path_, file: _File, *, default_status: bool = True) -> AlertMatch:
    g = file.get
    statuses = g(raw, path, "status", _enums(Status))
    area = _area(raw, path, file)
    return AlertMatch(
        sources=g(raw, path, "source", _globs, ()),
        providers=g(raw, path, "provider", _choices(PROVIDERS, "provider"), ()),
        senders=g(raw, path, "sender", _globs, ()),
        statuses=frozenset(statuses) if statuses else (frozenset({Status.ACTUAL}) if default_status else None),
        msg_types=frozenset(m) if (m := g(raw, path, "msg_type", _enums(MsgType))) else None,
        codes=frozenset(c) if (c := g(raw, path, "code", _strs)) else None,
        events=g(raw, path, "event", _globs, ()),
        event_codes=g(raw, path, "event_code", _codes, ()),
        categories=frozenset(c) if (c := g(raw, path, "category", _enums(Category))) else None,
        min_severity=g(raw, path, "min_severity", _enum(Severity)),
        max_severity=g(raw, path, "max_severity", _enum(Severity)),
        min_urgency=g(raw, path, "min_urgency", _enum(Urgency)),
        min_certainty=g(raw, path, "min_certainty", _enum(Certainty)),
        languages=g(raw, path, "language", _globs, ()),
        area=area,
        max_outside_share=g(raw, path, "max_outside_share", _number(ge=0, le=1)),
    )


def _area(raw: Mapping[str, Any], path: Path_, file: _File) -> AreaMatch | None:
    if "area" not in raw:
        return None
    value, where = raw["area"], (*path, "area")
    if value == "district":
        return AreaMatch(district=True)
    if isinstance(value, str | list) and not isinstance(value, dict):
        try:
            items = _strs(value)
        except _Bad as err:
            file.error(where, f'{err}; write "district", a list of ARS or {{ polygon = [[lat, lon], ...] }}')
            return None
        from hub.geo.registry import registry

        reg = registry()
        bad = [a for a in items if not _ARS.match(a) or a not in reg]
        if bad:
            file.error(where, f"{bad[0]!r} is not a known 12-digit ARS" + (' (or "district")' if len(items) == 1
                                                                             else ""))
            return None
        return AreaMatch(ars=items)
    if isinstance(value, dict):
        unknown = [k for k in value if k != "polygon"]
        if unknown:
            file.error((*where, unknown[0]), "unknown key (an area table has only polygon)")
            return None
        points = value.get("polygon")
        ok = isinstance(points, list) and len(points) >= 3 and all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, int | float) and not isinstance(x, bool)
                                                        for x in p) for p in points)
        if not ok:
            file.error((*where, "polygon"), "expected at least 3 points [lat, lon] (numbers, CAP order)")
            return None
        ring = tuple((float(a), float(b)) for a, b in points)
        if not all(-90 <= lat <= 90 and -180 <= lon <= 180 for lat, lon in ring):
            file.error((*where, "polygon"), "latitude must lie within ±90 and longitude within ±180")
            return None
        if not all(47 <= lat <= 56 and 5 <= lon <= 16 for lat, lon in ring):
            file.error((*where, "polygon"), "points lie outside Germany: CAP order is [lat, lon]", warning=True)
        if ring[0] != ring[-1]:
            ring = (*ring, ring[0])
        return AreaMatch(polygon=ring)
    file.error(where, f'expected "district", a list of ARS or {{ polygon = [[lat, lon], ...] }}, got {_show(value)}')
    return None


def _sensor(raw: Mapping[str, Any], path: Path_, file: _File, sensors: Collection[str] | None) -> SensorCondition:
    g = file.get
    name = g(raw, path, "sensor", _str, "")
    if name and sensors is not None and name not in sensors:
        close = difflib.get_close_matches(name, list(sensors), n=1)
        known = ", ".join(sorted(sensors)) or "none"
        hint = f" (did you mean {close[0]}?)" if close else f" (configured: {known})"
        file.error((*path, "sensor"), f"unknown sensor {name!r}{hint}")
    num = _number()
    minutes = _number(gt=0, le=7 * 24 * 60)
    above, below = g(raw, path, "above", num), g(raw, path, "below", num)
    rises, falls = g(raw, path, "rises_by", _number(gt=0)), g(raw, path, "falls_by", _number(gt=0))
    stale = g(raw, path, "stale_minutes", minutes)
    kinds = [k for k, v in (("above", above), ("below", below), ("rises_by", rises), ("falls_by", falls),
                            ("stale_minutes", stale)) if k in raw]
    if len(kinds) != 1:
        file.error(path, "a sensor rule needs exactly one of above, below, rises_by, falls_by, stale_minutes"
                         + (f" (has {', '.join(kinds)}; write one rule for each)" if kinds else ""))
        return SensorCondition(name, "above")
    for_s = g(raw, path, "for_minutes", _number(ge=0, le=7 * 24 * 60), 0.0) * 60
    clear_below, clear_above = g(raw, path, "clear_below", num), g(raw, path, "clear_above", num)
    within = g(raw, path, "within_minutes", minutes)
    clear_rate = g(raw, path, "clear_rate", _number(ge=0))
    allowed = {"above": {"clear_below", "for_minutes"}, "below": {"clear_above", "for_minutes"},
               "rises_by": {"within_minutes", "clear_rate", "for_minutes"},
               "falls_by": {"within_minutes", "clear_rate", "for_minutes"}, "stale_minutes": set()}[kinds[0]]
    for key in ("clear_below", "clear_above", "for_minutes", "within_minutes", "clear_rate"):
        if key in raw and key not in allowed:
            file.error((*path, key), f"does not go with {kinds[0]}")
    if kinds[0] == "above":
        if clear_below is not None and above is not None and clear_below > above:
            file.error((*path, "clear_below"), f"must not be above the threshold {above:g} (hysteresis)")
        return SensorCondition(name, "above", above or 0.0, clear_below, for_s)
    if kinds[0] == "below":
        if clear_above is not None and below is not None and clear_above < below:
            file.error((*path, "clear_above"), f"must not be below the threshold {below:g} (hysteresis)")
        return SensorCondition(name, "below", below or 0.0, clear_above, for_s)
    if kinds[0] in ("rises_by", "falls_by"):
        amount = rises if kinds[0] == "rises_by" else falls
        if "within_minutes" not in raw:
            file.error(path, f"{kinds[0]} needs within_minutes (e.g. rises_by = 30, within_minutes = 15)")
        if clear_rate is not None and amount is not None and clear_rate > amount:
            file.error((*path, "clear_rate"), f"must not exceed {kinds[0]} ({amount:g})")
        amount = amount or 0.0
        return SensorCondition(name, "rise" if kinds[0] == "rises_by" else "fall", amount,
                               amount / 2 if clear_rate is None else clear_rate, for_s, (within or 0.0) * 60)
    return SensorCondition(name, "stale", stale or 0.0)


def _actions(raw: Mapping[str, Any], path: Path_, file: _File, is_sensor: bool, district: District,
             channels: Collection[str], templates: Mapping[str, Template], *, present: bool = True) -> Actions:
    g = file.get
    file.unknown_keys(raw, path, _THEN_KEYS)
    publish = g(raw, path, "publish", _choices(channels, "channel"), ())
    audiences = g(raw, path, "audiences", _strs, ())
    for aud in audiences:
        if aud not in district.audiences:
            file.error((*path, "audiences"), f"unknown audience {aud!r} (declared in [district] audiences: "
                                             f"{', '.join(district.audiences)})")
    suppress = g(raw, path, "suppress", _bool, False)
    draft = g(raw, path, "draft", _str)
    all_clear = g(raw, path, "all_clear", _str)
    set_severity = g(raw, path, "set_severity", _enum(Severity))
    escalate = g(raw, path, "escalate", _int(1, 3), 0)
    push_on_update = g(raw, path, "push_on_update", lambda v: _choices(CHANGES, "change")(v) if v != [] else (),
                       DEFAULT_PUSH_ON_UPDATE)
    push_on_cancel = g(raw, path, "push_on_cancel", _bool, True)
    if not raw and present:
        file.error(path, "a rule needs at least one action (publish, suppress, draft, set_severity, escalate)")
    if "suppress" in raw and not suppress:
        file.error((*path, "suppress"), "suppress = false does nothing; remove it")
    if suppress:
        others = [k for k in raw if k != "suppress"]
        if others:
            file.error((*path, others[0]), "a rule that suppresses does nothing else (suppress wins over every "
                                           "other rule); move this action into its own rule")
        if is_sensor:
            file.error((*path, "suppress"), "a sensor rule cannot suppress; it drafts")
    if set_severity is not None and escalate:
        file.error((*path, "escalate"), "set_severity and escalate together: choose one")
    for key, name in (("draft", draft), ("all_clear", all_clear)):
        if name is not None and name not in templates:
            close = difflib.get_close_matches(name, list(templates), n=1)
            file.error((*path, key), f"unknown template {name!r}" + (f" (did you mean {close[0]}?)" if close else
                                                                      " (rules/templates/NAME.toml)"))
    if is_sensor:
        if draft is None:
            file.error(path, "a sensor rule needs then.draft (the template a person approves)")
        for key in ("set_severity", "escalate", "push_on_update", "push_on_cancel"):
            if key in raw:
                file.error((*path, key), "does not apply to a sensor rule")
        clear_name = all_clear or ("entwarnung" if "entwarnung" in templates else None)
        if draft is not None and clear_name is None:
            file.error(path, "a sensor rule needs then.all_clear (or a template named entwarnung): when the "
                             "condition clears the hub drafts the all-clear")
        all_clear = clear_name
        for key, name in (("draft", draft), ("all_clear", all_clear)):
            tpl = templates.get(name or "")
            if tpl is not None and tpl.uses & ALERT_PLACEHOLDERS:
                file.error((*path, key), f"template {name!r} uses alert values "
                                         f"({', '.join(sorted(tpl.uses & ALERT_PLACEHOLDERS))}) a sensor cannot "
                                         "supply")
        if all_clear and all_clear in templates and templates[all_clear].kind != "all_clear":
            file.error((*path, "all_clear"), f"template {all_clear!r} is not an all-clear (kind = \"all_clear\")")
    else:
        if all_clear is not None:
            file.error((*path, "all_clear"), "only sensor rules draft an all-clear (an alert's Cancel comes from "
                                             "its sender)")
        tpl = templates.get(draft or "")
        if tpl is not None and tpl.uses & SENSOR_PLACEHOLDERS:
            file.error((*path, "draft"), f"template {draft!r} uses sensor values "
                                         f"({', '.join(sorted(tpl.uses & SENSOR_PLACEHOLDERS))}) an alert cannot "
                                         "supply")
    if "push_on_update" in raw and PUSH not in publish:
        file.error((*path, "push_on_update"), f"only matters when the rule publishes to {PUSH!r}")
    if audiences and "publish" not in raw and "draft" not in raw:
        file.error((*path, "audiences"), "audiences without publish or draft reach nobody")
    return Actions(publish=publish, audiences=audiences or ((PUBLIC,) if publish or draft else ()),
                   suppress=suppress, draft=draft, all_clear=all_clear, set_severity=set_severity, escalate=escalate,
                   push_on_update=frozenset(push_on_update), push_on_cancel=push_on_cancel)
