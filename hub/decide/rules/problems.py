"""Problems in rule and template files, with their file, line and field.

tomllib gives values but no positions, so :class:`Locator` scans the file's text for table headers
(``[district]``, ``[[rule]]``, ``[rule.when]``, ``[text."de-DE"]``) and keys (``when.min_severity = ...``) and
maps each path (``("rule", 2, "when", "min_severity")``) to its line. :class:`RuleFile` collects the problems of
one file; values are checked by hand (:mod:`hub.decide.rules.values`) rather than by msgspec so that one pass
reports every problem, not the first.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.errors import ConfigError

Path_ = tuple[str | int, ...]


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


class Bad(Exception):
    """A value is wrong; the message says how."""


class RuleFile:
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
        except Bad as err:
            self.error((*path, key), str(err))
            return default


def read_toml(path: Path, problems: list[Problem]) -> tuple[dict[str, Any], RuleFile] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        problems.append(Problem(str(path), None, "$", f"not UTF-8: {err}"))
        return None
    except OSError as err:
        problems.append(Problem(str(path), None, "$", f"cannot read: {err.strerror}"))
        return None
    file = RuleFile(path, text, problems)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        m = re.search(r"\(at line (\d+), column \d+\)", str(err))
        problems.append(Problem(str(path), int(m.group(1)) if m else None, "$", f"not valid TOML: {err}"))
        return None
    return data, file
