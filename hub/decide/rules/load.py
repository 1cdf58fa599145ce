"""Reading a rules folder: every rule file (``rules/*.toml``) and template, checked, with every problem found.

:func:`load_folder` never raises: a :class:`Loaded` holds the rules, templates, districts and problems. Positions
and problems are in :mod:`hub.decide.rules.problems`, value checks in :mod:`hub.decide.rules.values`, conditions in
:mod:`hub.decide.rules.conditions` and actions in :mod:`hub.decide.rules.actions`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hub.decide.rules.actions import rule_actions
from hub.decide.rules.conditions import alert_match, sensor_condition
from hub.decide.rules.model import DEFAULT_CHANNELS, PUBLIC, District, Rule
from hub.decide.rules.problems import Path_, Problem, RuleFile, read_toml
from hub.decide.rules.template_checks import load_templates, template_paths
from hub.decide.rules.templates import COMPOSE_FOLDER, Template
from hub.decide.rules.values import ARS_RE, NAME_RE, boolean, matching, one_str, show
from hub.geo.registry import Level, registry


@dataclass(slots=True)
class Loaded:
    rules: list[Rule] = field(default_factory=list)
    templates: dict[str, Template] = field(default_factory=dict)
    districts: dict[str, District] = field(default_factory=dict)
    """Per rule file."""
    files: list[Path] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


_ALERT_KEYS = ("source", "provider", "sender", "status", "msg_type", "code", "event", "event_code", "category",
               "min_severity", "max_severity", "min_urgency", "min_certainty", "language", "area",
               "max_outside_share")
_SENSOR_KEYS = ("sensor", "above", "below", "clear_below", "clear_above", "for_minutes", "rises_by", "falls_by",
                "within_minutes", "clear_rate", "stale_minutes")
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
                sensors: Collection[str] | None = None, shared_templates: Path | None = None,
                more: Sequence[Path] = ()) -> Loaded:
    """Read and check every rule file and template of ``folder``; problems are collected, never raised.
    ``shared_templates``: a templates folder the folder's own ``templates/`` falls back to by name (a hub of several
    districts: the hub's shared templates); a broken shared template is left out, with a warning. ``more``: further
    folders whose rule files belong to the same rule set (a district's rules in several folders; templates come from
    the first)."""
    out = Loaded()
    if not folder.is_dir():
        out.problems.append(Problem(str(folder), None, "$", "no such rules folder"))
        return out
    out.files.extend(template_files(folder))
    if shared_templates is not None:
        _fall_back(out, shared_templates, folder)
    out.templates.update(load_templates(folder / "templates", out.problems))
    # the console's templates (never drafted by rules): a broken one refuses the rule set like any other file
    out.files.extend(template_paths(folder / COMPOSE_FOLDER))
    load_templates(folder / COMPOSE_FOLDER, out.problems, compose=True)
    files = rule_files(folder)
    for extra in more:
        if not extra.is_dir():
            out.problems.append(Problem(str(extra), None, "$", "no such rules folder"))
        files.extend(rule_files(extra) if extra.is_dir() else [])
    if not files:
        out.problems.append(Problem(str(folder), None, "$", "no rule files (*.toml) in the rules folder"))
    names: dict[str, str] = {}
    for path in files:
        out.files.append(path)
        read = read_toml(path, out.problems)
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


def _fall_back(out: Loaded, shared_templates: Path, folder: Path) -> None:
    """The shared templates a folder's own fall back to (loaded first, so its own replace them by name); a broken
    one is left out with a warning: it is the shared folder's to fix, not this rule set's."""
    if not shared_templates.is_dir() or shared_templates.resolve() == (folder / "templates").resolve():
        return
    shared: list[Problem] = []
    out.templates.update(load_templates(shared_templates, shared))
    out.problems.extend(replace(p, warning=True) for p in shared)
    out.files.extend(template_paths(shared_templates))


def _district(raw: Any, file: RuleFile) -> District:
    if raw is None:
        return District()
    path: Path_ = ("district",)
    if not isinstance(raw, dict):
        file.error(path, "expected a table [district]")
        return District()
    file.unknown_keys(raw, path, _DISTRICT_KEYS)
    name = file.get(raw, path, "name", one_str)
    ars = file.get(raw, path, "ars", one_str)
    if ars is not None:

        reg = registry()
        if not ARS_RE.match(ars) or ars not in reg:
            file.error((*path, "ars"), f"{ars!r} is not a known 12-digit ARS")
            ars = None
        elif not ars.endswith("0000000") and reg[ars].level is not Level.GEMEINDE:
            file.error((*path, "ars"), f"{ars} is not a Kreis or Gemeinde key", warning=True)
    audiences = file.get(raw, path, "audiences", matching(NAME_RE, "a name (lower case, digits, . _ -)"), ())
    return District(name=name, ars=ars, audiences=tuple(dict.fromkeys((PUBLIC, *audiences))))


def _table(raw: Any, path: Path_, file: RuleFile, what: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        file.error(path, f"expected a table ({what}.KEY = ...), got {show(raw)}")
        return None
    return raw


def _rule(raw: Any, index: int, file: RuleFile, district: District, channels: Collection[str],
          sensors: Collection[str] | None, templates: Mapping[str, Template]) -> Rule | None:
    path: Path_ = ("rule", index)
    if not isinstance(raw, dict):
        file.error(path, "expected a table")
        return None
    before = len(file.problems)
    file.unknown_keys(raw, path, _RULE_KEYS)
    name = file.get(raw, path, "name", one_str)
    if "name" not in raw:
        file.error(path, "every rule needs a name (it appears in logs, audit and replay)")
    description = file.get(raw, path, "description", one_str, "")
    enabled = file.get(raw, path, "enabled", boolean, True)
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
        sensor = sensor_condition(when_raw, (*path, "when"), file, sensors)
        if unless_raw is not None:
            file.error((*path, "unless"), "a sensor rule has no unless")
    else:
        mixed = [k for k in when_raw if k in _SENSOR_KEYS]
        for key in mixed:
            file.error((*path, "when", key), "a sensor condition needs when.sensor (a rule watches either alerts "
                                             "or one sensor)")
        file.unknown_keys(when_raw, (*path, "when"), (*_ALERT_KEYS, *mixed))
        when = alert_match(when_raw, (*path, "when"), file)
        if unless_raw is not None:
            file.unknown_keys(unless_raw, (*path, "unless"), _ALERT_KEYS)
            unless = alert_match(unless_raw, (*path, "unless"), file, default_status=False)
    then = rule_actions(then_raw, (*path, "then"), file, is_sensor, district, channels, templates,
                        present="then" in raw)
    if len(file.problems) > before and any(not p.warning for p in file.problems[before:]):
        return None
    if not enabled or name is None:
        return None
    return Rule(name=name, file=file.name, line=file.loc.line(path), index=index, when=when, unless=unless,
                sensor=sensor, then=then, district=district.ars, description=description)
