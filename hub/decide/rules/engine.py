"""The rule engine: which rules an alert matches, and what follows (publish, suppress, draft, unrouted).

Semantics (rules/README.md states them for operators):

1. A rule matches when every condition under ``when`` holds and the ``unless`` block (if any) does not hold as a
   whole. Lists are alternatives. Conditions on an info (event, event_code, category, severity, urgency,
   certainty, language) must hold together for one info. A rule without ``when.status`` matches only ``Actual``.
2. If any matching rule suppresses, the alert is suppressed: nothing else happens (suppress wins).
3. Otherwise the actions of all matching rules are united: channels, audiences and drafts; the severity is the
   highest that any ``set_severity``/``escalate`` yields.
4. An alert no rule routes (no publish, no draft) is **unrouted**: stored and shown, never sent anywhere.
5. The ``push`` channel notifies. A new alert pushes; an Update pushes only if something a matching rule names in
   ``push_on_update`` changed against the previous version (DWD's ``SILENT_UPDATE`` never pushes); otherwise the
   other channels update silently and ``push`` is left out. A Cancel pushes unless ``push_on_cancel = false``.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hub.cap.model import Alert, Area, MsgType, Severity
from hub.decide.rules.load import load_folder, rule_files, template_files
from hub.decide.rules.matching import Evaluation, fail_match, main_info
from hub.decide.rules.model import DEFAULT_CHANNELS, PUSH, District, Rule
from hub.decide.rules.problems import Problem, RulesError
from hub.decide.rules.template_checks import template_paths
from hub.decide.rules.templates import Draft, Template
from hub.geo.geography import geography
from hub.geo.projection import GERMANY, circle_lonlat, polygon_lonlat
from hub.geo.registry import DEFAULT_DISTRICT
from hub.geo.resolve import resolve

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

log = logging.getLogger(__name__)

_SEVERITIES: list[Severity] = [s for s in Severity if s is not Severity.UNKNOWN]  # most pressing first
_CACHE = 512


@dataclass(frozen=True, slots=True)
class Decision:
    """What the rules make of one alert."""

    decision: str
    """``publish``, ``suppress``, ``draft`` or ``unrouted``."""
    rules: tuple[str, ...]
    """Names of the matching rules (for suppress: the suppressing ones)."""
    channels: tuple[str, ...] = ()
    """Where this version goes; ``push`` only when it deserves a notification."""
    audiences: tuple[str, ...] = ()
    push: bool = False
    drafts: tuple[str, ...] = ()
    """Templates to draft (a person approves before anything leaves)."""
    severity: Severity = Severity.UNKNOWN
    """The severity to publish with (the alert's, or raised by set_severity/escalate)."""
    regions: tuple[str, ...] = ()
    """ARS of the Kreise the alert covers, plus regions inside the district."""
    inside_district: bool | None = None
    outside_share: float | None = None
    changes: tuple[str, ...] = ()
    """For an Update: what changed against the previous version (``push_on_update`` names)."""
    why: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"rules": list(self.rules), "decision": self.decision, "channels": list(self.channels),
                "push": self.push, "regions": list(self.regions), "why": self.why,
                "audiences": list(self.audiences), "drafts": list(self.drafts), "severity": self.severity.value,
                "changes": list(self.changes), "inside_district": self.inside_district,
                "outside_share": None if self.outside_share is None else round(self.outside_share, 4)}


def _raise(severity: Severity, steps: int) -> Severity:
    if severity is Severity.UNKNOWN:
        severity = Severity.MINOR
        steps -= 1
    index = _SEVERITIES.index(severity)
    return _SEVERITIES[max(0, index - steps)]


def _names(rules: Iterable[Rule]) -> str:
    return ", ".join(f"'{r.name}'" for r in rules)


class RuleSet:
    """A checked, immutable set of rules and templates from one folder. Build with :meth:`load`."""

    def __init__(self, rules: Iterable[Rule], templates: Mapping[str, Template], *, folder: Path | None = None,
                 districts: Mapping[str, District] | None = None, warnings: Iterable[Problem] = (),
                 fingerprint: tuple[tuple[str, int, int], ...] = (), geo: Any = None) -> None:
        self.rules = tuple(rules)
        self.alert_rules = tuple(r for r in self.rules if r.sensor is None)
        self.sensor_rules = tuple(r for r in self.rules if r.sensor is not None)
        self.templates = dict(templates)
        self.folder = folder
        self.districts = dict(districts or {})
        self.warnings = tuple(warnings)
        self.fingerprint = fingerprint
        self.loaded_at = datetime.now(UTC)
        self._geo = geo
        self._lock = threading.Lock()
        self._resolved: collections.OrderedDict[tuple[Any, ...], Any] = collections.OrderedDict()
        self._geoms: collections.OrderedDict[tuple[Any, ...], Any] = collections.OrderedDict()
        self._polygons: dict[tuple[tuple[float, float], ...], Any] = {}

    # -- loading ---------------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, folder: str | Path, *, channels: Collection[str] = DEFAULT_CHANNELS,
             sensors: Collection[str] | None = None, geo: Any = None, shared_templates: Path | None = None,
             more: Sequence[Path] = ()) -> RuleSet:
        """Read and check every file of ``folder`` (``*.toml`` rule files, ``templates/*.toml``, falling back by name
        to ``shared_templates``; the rule files of the folders ``more`` too: a district's rules in a hub of
        several).

        Raises :class:`RulesError` listing every error when anything is wrong; nothing half-loaded is returned.
        ``sensors``: the configured sensor ids (None: sensor names are not checked). ``geo``: a
        :class:`hub.geo.geography.Geography` with the operator's extra boundaries (default: the bundled one)."""
        folder = Path(folder)
        print_ = fingerprint(folder, shared_templates, more)
        loaded = load_folder(folder, channels=channels, sensors=sensors, shared_templates=shared_templates, more=more)
        if any(not p.warning for p in loaded.problems):
            raise RulesError(loaded.problems)
        return cls(loaded.rules, loaded.templates, folder=folder, districts=loaded.districts,
                   warnings=loaded.problems, fingerprint=print_, geo=geo)

    @staticmethod
    def check(folder: str | Path, *, channels: Collection[str] = DEFAULT_CHANNELS,
              sensors: Collection[str] | None = None, shared_templates: Path | None = None,
              more: Sequence[Path] = ()) -> list[Problem]:
        """Every problem (errors and warnings) of a rules folder, without raising."""
        return load_folder(Path(folder), channels=channels, sensors=sensors, shared_templates=shared_templates,
                           more=more).problems

    @property
    def district(self) -> str | None:
        """The district of the rule files (the first that names one)."""
        return next((d.ars for d in self.districts.values() if d.ars), None)

    @property
    def district_name(self) -> str | None:
        return next((d.name for d in self.districts.values() if d.name), None)

    # -- geography (cached by the alert's CAP key: sender, identifier, sent) ---------------------------------------

    @property
    def geo(self) -> Any:
        if self._geo is None:

            self._geo = geography()
        return self._geo

    @property
    def registry(self) -> Any:
        return self.geo.registry

    def resolution(self, alert: Alert, district: str | None) -> Any:
        """:func:`hub.geo.resolve.resolve` of the alert against ``district`` (None: the bundled default), cached;
        None if the areas cannot be resolved."""

        district = district or DEFAULT_DISTRICT
        key = (alert.sender, alert.identifier, alert.sent, district)
        with self._lock:
            if key in self._resolved:
                self._resolved.move_to_end(key)
                return self._resolved[key]
        try:
            res = resolve(alert, district, geo=self.geo)
        except Exception as err:  # noqa: BLE001 - a broken area must not stop the rules
            log.warning("area of %s/%s could not be resolved: %r", alert.sender, alert.identifier, err)
            res = None
        with self._lock:
            self._resolved[key] = res
            while len(self._resolved) > _CACHE:
                self._resolved.popitem(last=False)
        return res

    def geometry(self, alert: Alert) -> Any:
        """The alert's areas as an array of projected (equal-area) shapes, for polygon conditions."""


        key = (alert.sender, alert.identifier, alert.sent)
        with self._lock:
            if key in self._geoms:
                return self._geoms[key]
        shapes: list[BaseGeometry] = []
        seen: set[Area] = set()
        g, reg = self.geo, self.registry
        for info in alert.infos:
            for area in info.areas:
                if area in seen:
                    continue
                seen.add(area)
                own = [polygon_lonlat(r) for r in area.polygons] + \
                      [circle_lonlat(c) for c in area.circles]
                if own:
                    shapes.extend(GERMANY.project(s) for s in own if not s.is_empty)
                    continue
                for code in area.geocodes:
                    name = code.value_name.strip()
                    for value in code.value.replace(",", " ").split():
                        if name == "WARNCELLID":
                            shape = g.cell_geometry(value)
                        elif name in ("ARS", "warnVerwaltungsbereiche", "AGS"):
                            ars = reg.from_ags(value) if name == "AGS" else reg.from_ars(value)
                            shape = g.geometry(ars) if ars else None
                        else:
                            shape = None
                        if shape is not None:
                            shapes.append(shape)
        geom = np.array(shapes, dtype=object)
        with self._lock:
            self._geoms[key] = geom
            while len(self._geoms) > _CACHE:
                self._geoms.popitem(last=False)
        return geom

    def polygon(self, ring: tuple[tuple[float, float], ...]) -> Any:
        if ring not in self._polygons:

            self._polygons[ring] = GERMANY.project(polygon_lonlat(ring))
        return self._polygons[ring]

    # -- evaluation ------------------------------------------------------------------------------------------------

    def match(self, alert: Alert, *, origin: str,
              district: str | None = None) -> tuple[list[Rule], dict[str, tuple[int, str]]]:
        """The matching alert rules, and for the others why not."""
        ev = Evaluation(self, alert, origin, None, district or self.district)
        return self._match(ev)

    def _match(self, ev: Evaluation) -> tuple[list[Rule], dict[str, tuple[int, str]]]:
        matched: list[Rule] = []
        failed: dict[str, tuple[int, str]] = {}
        for rule in self.alert_rules:
            assert rule.when is not None
            why = fail_match(rule.when, ev, rule)
            if why is None and rule.unless is not None and fail_match(rule.unless, ev, rule) is None:
                why = (7, "its unless conditions hold")
            if why is None:
                matched.append(rule)
            else:
                failed[rule.name] = why
        return matched, failed

    def evaluate(self, alert: Alert, *, origin: str, previous: Alert | None = None,
                 district: str | None = None) -> Decision:
        """Decide what happens to ``alert`` (from the source named ``origin``).

        ``previous``: the version this one updates (for ``push_on_update``); None for a new alert or when the hub
        never saw it. ``district``: the hub's district ARS, for rule files without ``[district] ars``."""
        ev = Evaluation(self, alert, origin, previous, district or self.district)
        matched, failed = self._match(ev)
        res = ev.resolution(ev.district)
        regions = self._regions(res, ev.district)
        inside = res.inside_district if res is not None else None
        outside = res.outside_share if res is not None else None
        base = dict(regions=regions, inside_district=inside, outside_share=outside, severity=alert.severity)
        suppressing = [r for r in matched if r.then.suppress]
        if suppressing:
            return Decision("suppress", tuple(r.name for r in suppressing), **base,  # type: ignore[arg-type]
                            why=f"suppressed by {_names(suppressing)}"
                                + (f"; also matched {_names(r for r in matched if not r.then.suppress)}"
                                   if len(matched) > len(suppressing) else "")
                                + " (suppress wins)")
        if not matched:
            nearest = sorted(failed.items(), key=lambda item: -item[1][0])[:3]
            near = "; ".join(f"'{name}': {why}" for name, (_, why) in nearest)
            return Decision("unrouted", (), **base,  # type: ignore[arg-type]
                            why=f"no rule matched ({len(failed)} alert rules); nearest: {near}" if failed
                            else "no rules for alerts")
        channels = list(dict.fromkeys(c for r in matched for c in r.then.publish))
        audiences = tuple(dict.fromkeys(a for r in matched if r.then.publish or r.then.draft
                                        for a in r.then.audiences))
        drafts = tuple(dict.fromkeys(r.then.draft for r in matched if r.then.draft))
        severity = alert.severity
        raised = [r.then.set_severity if r.then.set_severity else _raise(alert.severity, r.then.escalate)
                  for r in matched if r.then.set_severity or r.then.escalate]
        if raised:
            severity = max(raised)
        why = [f"matched {_names(matched)}"]
        if severity != alert.severity:
            why.append(f"severity {alert.severity.value} -> {severity.value}")
        push, push_why, changes = self._push(ev, matched)
        if push_why:
            why.append(push_why)
        if PUSH in channels and not push:
            channels.remove(PUSH)
        if channels or any(r.then.publish for r in matched):
            decision = "publish"
        elif drafts:
            decision = "draft"
        else:
            decision = "unrouted"
            why.append("but none of them publishes or drafts")
        if drafts:
            why.append(f"draft {', '.join(drafts)} (needs approval)")
        return Decision(decision, tuple(r.name for r in matched), tuple(channels), audiences, push, drafts,
                        severity, regions, inside, outside, changes, "; ".join(why))

    def _push(self, ev: Evaluation, matched: list[Rule]) -> tuple[bool, str, tuple[str, ...]]:
        pushing = [r for r in matched if PUSH in r.then.publish]
        alert = ev.alert
        if not pushing:
            return False, "", ()
        if alert.silent_update:
            return False, "SILENT_UPDATE: never pushes (web and boards update silently)", ()
        if alert.msg_type is MsgType.ALERT:
            return True, "new alert: push", ()
        if alert.msg_type is MsgType.CANCEL:
            yes = [r for r in pushing if r.then.push_on_cancel]
            return (True, "cancel: push", ()) if yes else (False, "cancel: no push (push_on_cancel = false)", ())
        if alert.msg_type is not MsgType.UPDATE:
            return False, f"{alert.msg_type.value}: no push", ()
        if ev.previous is None:
            return True, "update of a version the hub never saw: push", ()
        all_changes: set[str] = set()
        notes: list[str] = []
        hits: set[str] = set()
        for rule in pushing:
            changed, why = ev.changes(ev.district_of(rule))
            all_changes |= changed
            notes.extend(n for n in why if n not in notes)
            hits |= changed & rule.then.push_on_update
        listed = ", ".join(sorted(all_changes)) or "nothing a rule watches"
        text = f"update changed {listed}" + (f" ({'; '.join(notes)})" if notes else "")
        if hits:
            return True, f"{text}: push for {', '.join(sorted(hits))}", tuple(sorted(all_changes))
        return False, f"{text}: none is in push_on_update, silent update", tuple(sorted(all_changes))

    def _regions(self, res: Any, district: str | None) -> tuple[str, ...]:
        if res is None:
            return ()
        reg = self.registry
        out = []
        for hit in res.regions:
            if hit.level == "kreis" or (district and reg.is_within(hit.ars, district)):
                out.append(hit.ars)
        return tuple(out)

    # -- drafts ----------------------------------------------------------------------------------------------------

    def render(self, template: str, values: Mapping[str, object], *, rule: str = "") -> Draft:
        """A draft from a template; ``district`` and ``time`` are filled in when not given."""
        tpl = self.templates[template]
        full: dict[str, object] = {"district": self.district_name or self.district or "",
                                   "time": _local(datetime.now(UTC))}
        full.update({k: v for k, v in values.items() if v is not None})
        return tpl.render(full, rule=rule)

    def draft_for_alert(self, alert: Alert, template: str, *, rule: str = "") -> Draft:
        """A draft made from an incoming alert (placeholders headline, event, severity, sender_name, area)."""
        info = main_info(alert)
        areas = ", ".join(dict.fromkeys(a.area_desc for a in (info.areas if info else ())))
        return self.render(template, {"headline": alert.headline(), "event": info.event if info else "",
                                      "severity": alert.severity.value,
                                      "sender_name": (info.sender_name if info else None) or alert.sender,
                                      "area": areas[:300], "time": _local(alert.sent)}, rule=rule)


def _local(when: datetime) -> str:
    try:
        from zoneinfo import ZoneInfo

        return when.astimezone(ZoneInfo("Europe/Berlin")).strftime("%d.%m.%Y %H:%M")
    except Exception:  # noqa: BLE001 - no tz database: UTC
        return when.astimezone(UTC).strftime("%d.%m.%Y %H:%M UTC")


def fingerprint(folder: Path, shared_templates: Path | None = None,
                more: Sequence[Path] = ()) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime_ns, size) of every rule and template file (and shared template it falls back to): changes when
    any file is edited, added or removed."""
    out = []
    shared = template_paths(shared_templates) if shared_templates is not None else []
    extra = [p for m in more if m.is_dir() for p in rule_files(m)]
    for path in [*rule_files(folder), *template_files(folder), *shared, *extra] if folder.is_dir() else []:
        try:
            st = path.stat()
        except OSError:
            continue
        out.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A reload that was refused: the rules in force stayed."""

    at: datetime
    problems: tuple[Problem, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "errors": [str(p) for p in self.problems if not p.warning]}


@dataclass
class LiveRules:
    """The rules in force for the daemon, replaced only by a set whose every file is valid.

    ``reload()`` on SIGHUP, ``reload_if_changed()`` on a timer (or on a file-change event): a broken edit leaves
    :attr:`current` as it was and records :attr:`refused` (for /healthz and the log) until a good edit loads."""

    folder: Path
    channels: Collection[str] = DEFAULT_CHANNELS
    sensors: Collection[str] | None = None
    geo: Any = None
    shared_templates: Path | None = None
    """Templates the folder's own fall back to by name (a district's rules in a hub of several)."""
    more: tuple[Path, ...] = ()
    """Further folders of rule files of the same rule set (a district's rules in several folders)."""
    current: RuleSet | None = None
    refused: Refusal | None = None
    reloads: int = 0
    _refused_print: tuple[tuple[str, int, int], ...] = ()

    @classmethod
    def open(cls, folder: str | Path, **kw: Any) -> LiveRules:
        """Load the initial rules; raises RulesError if they are invalid (the daemon cannot start on them)."""
        live = cls(Path(folder), **kw)
        live.current = RuleSet.load(live.folder, channels=live.channels, sensors=live.sensors, geo=live.geo,
                                    shared_templates=live.shared_templates, more=live.more)
        return live

    def changed(self) -> bool:
        """A file was edited, added or removed since the rules in force (or the last refused attempt) were read."""
        now = fingerprint(self.folder, self.shared_templates, self.more)
        known = self.current.fingerprint if self.current else ()
        return now != known and (self.refused is None or now != self._refused_print)

    def reload(self) -> bool:
        """Try the folder again; True if the new rules are now in force."""
        self.reloads += 1
        print_ = fingerprint(self.folder, self.shared_templates, self.more)
        try:
            fresh = RuleSet.load(self.folder, channels=self.channels, sensors=self.sensors, geo=self.geo,
                                 shared_templates=self.shared_templates, more=self.more)
        except RulesError as err:
            self.refused = Refusal(datetime.now(UTC), err.problems)
            self._refused_print = print_
            log.error("rules in %s NOT reloaded, the running rules stay in force: %s", self.folder, err)
            return False
        self.current = fresh
        self.refused = None
        self._refused_print = ()
        log.info("rules reloaded from %s: %d rules, %d templates", self.folder, len(fresh.rules),
                 len(fresh.templates))
        return True

    def reload_if_changed(self) -> bool | None:
        """Reload when a file changed since the last load (or last refusal); None when nothing changed."""
        return self.reload() if self.changed() else None

    def health(self) -> dict[str, Any]:
        cur = self.current
        return {"folder": str(self.folder), "rules": len(cur.rules) if cur else 0,
                "templates": len(cur.templates) if cur else 0,
                "loaded_at": cur.loaded_at.isoformat() if cur else None,
                "refused": self.refused.as_dict() if self.refused else None}
