"""Checking a rule's actions (``then``): channels, audiences, suppress, drafts and their templates, severity."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from typing import Any

from hub.cap.model import Severity
from hub.decide.rules.model import CHANGES, DEFAULT_PUSH_ON_UPDATE, PUBLIC, PUSH, Actions, District
from hub.decide.rules.problems import Path_, RuleFile
from hub.decide.rules.templates import ALERT_PLACEHOLDERS, SENSOR_PLACEHOLDERS, Template
from hub.decide.rules.values import boolean, choices, enum_value, one_str, str_list, whole

_THEN_KEYS = ("publish", "audiences", "suppress", "draft", "all_clear", "set_severity", "escalate", "push_on_update",
              "push_on_cancel")


def rule_actions(raw: Mapping[str, Any], path: Path_, file: RuleFile, is_sensor: bool, district: District,
                 channels: Collection[str], templates: Mapping[str, Template], *, present: bool = True) -> Actions:
    """The ``then`` table of one rule, checked against the district's audiences, the hub's channels and the
    templates; every problem goes to ``file``."""
    g = file.get
    file.unknown_keys(raw, path, _THEN_KEYS)
    publish = g(raw, path, "publish", choices(channels, "channel"), ())
    audiences = g(raw, path, "audiences", str_list, ())
    for aud in audiences:
        if aud not in district.audiences:
            file.error((*path, "audiences"), f"unknown audience {aud!r} (declared in [district] audiences: "
                                             f"{', '.join(district.audiences)})")
    suppress = g(raw, path, "suppress", boolean, False)
    draft = g(raw, path, "draft", one_str)
    all_clear = g(raw, path, "all_clear", one_str)
    set_severity = g(raw, path, "set_severity", enum_value(Severity))
    escalate = g(raw, path, "escalate", whole(1, 3), 0)
    push_on_update = g(raw, path, "push_on_update", lambda v: choices(CHANGES, "change")(v) if v != [] else (),
                       DEFAULT_PUSH_ON_UPDATE)
    push_on_cancel = g(raw, path, "push_on_cancel", boolean, True)
    _check_suppress(raw, path, file, suppress, is_sensor, present=present)
    if set_severity is not None and escalate:
        file.error((*path, "escalate"), "set_severity and escalate together: choose one")
    for key, name in (("draft", draft), ("all_clear", all_clear)):
        if name is not None and name not in templates:
            close = difflib.get_close_matches(name, list(templates), n=1)
            file.error((*path, key), f"unknown template {name!r}" + (f" (did you mean {close[0]}?)" if close else
                                                                      " (rules/templates/NAME.toml)"))
    if is_sensor:
        all_clear = _sensor_drafts(raw, path, file, templates, draft, all_clear)
    else:
        _alert_draft(path, file, templates, draft, all_clear)
    if "push_on_update" in raw and PUSH not in publish:
        file.error((*path, "push_on_update"), f"only matters when the rule publishes to {PUSH!r}")
    if audiences and "publish" not in raw and "draft" not in raw:
        file.error((*path, "audiences"), "audiences without publish or draft reach nobody")
    return Actions(publish=publish, audiences=audiences or ((PUBLIC,) if publish or draft else ()),
                   suppress=suppress, draft=draft, all_clear=all_clear, set_severity=set_severity, escalate=escalate,
                   push_on_update=frozenset(push_on_update), push_on_cancel=push_on_cancel)


def _check_suppress(raw: Mapping[str, Any], path: Path_, file: RuleFile, suppress: bool, is_sensor: bool, *,
                    present: bool) -> None:
    """An empty ``then``, and ``suppress``: alone in its rule, never false, never for a sensor."""
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


def _sensor_drafts(raw: Mapping[str, Any], path: Path_, file: RuleFile, templates: Mapping[str, Template],
                   draft: str | None, all_clear: str | None) -> str | None:
    """A sensor rule drafts a warning and, when the condition clears, an all-clear (``all_clear``, else the template
    named entwarnung), both without alert values; returns the all-clear template's name."""
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
    return all_clear


def _alert_draft(path: Path_, file: RuleFile, templates: Mapping[str, Template], draft: str | None,
                 all_clear: str | None) -> None:
    """An alert rule drafts no all-clear, and its draft uses no sensor values."""
    if all_clear is not None:
        file.error((*path, "all_clear"), "only sensor rules draft an all-clear (an alert's Cancel comes from "
                                         "its sender)")
    tpl = templates.get(draft or "")
    if tpl is not None and tpl.uses & SENSOR_PLACEHOLDERS:
        file.error((*path, "draft"), f"template {draft!r} uses sensor values "
                                     f"({', '.join(sorted(tpl.uses & SENSOR_PLACEHOLDERS))}) an alert cannot "
                                     "supply")
