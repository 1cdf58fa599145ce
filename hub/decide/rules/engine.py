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
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub.cap.model import Alert, Info, MsgType, Severity
from hub.decide.rules.load import (
    DEFAULT_CHANNELS,
    PUSH,
    AlertMatch,
    District,
    Problem,
    Rule,
    RulesError,
    load_folder,
    rule_files,
    template_files,
)
from hub.decide.rules.templates import Draft, Template

log = logging.getLogger(__name__)

_SEVERITIES = [s for s in Severity if s is not Severity.UNKNOWN]  # most pressing first
_CACHE = 512


def provider(alert: Alert) -> str:
    """Which warning system an alert comes from, by its sender: dwd, mowas, katwarn, biwapp, lhp, police, other."""
    sender = alert.sender.strip().lower()
    if sender.endswith("@dwd.de"):
        return "dwd"
    if sender.endswith("@katwarn.de"):
        return "katwarn"
    if sender.endswith("@biwapp.de"):
        return "biwapp"
    if sender.endswith("@hochwasserzentralen.de"):
        return "lhp"
    if "polizei" in sender or alert.identifier.lower().startswith("pol."):
        return "police"
    if sender.startswith("de-") and len(sender.split("-")) >= 3:
        return "mowas"  # MoWaS station codes: DE-<Land>-<district>-<station>
    return "other"


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


class _Eval:
    """One evaluation: the alert and what is computed about it at most once."""

    __slots__ = ("rs", "alert", "origin", "previous", "district", "_provider", "_changes", "_codes", "_geom", "_keys")

    def __init__(self, rs: RuleSet, alert: Alert, origin: str, previous: Alert | None, district: str | None):
        self.rs, self.alert, self.origin, self.previous, self.district = rs, alert, origin, previous, district
        self._provider: str | None = None
        self._changes: dict[str | None, tuple[frozenset[str], tuple[str, ...]]] = {}
        self._codes: frozenset[str] | None = None
        self._geom: Any = None
        self._keys: tuple[frozenset[str], frozenset[str]] | None = None

    def region_keys(self) -> tuple[frozenset[str], frozenset[str]]:
        """The ARS of the regions the alert covers, and those plus all their ancestors (Kreis, Bezirk, Land)."""
        if self._keys is None:
            res = self.resolution(self.district)
            own = frozenset(h.ars for h in res.regions) if res is not None else frozenset()
            reg = self.rs.registry
            up = set(own)
            for ars in own:
                up.update(reg._ancestor_keys(ars))
            self._keys = (own, frozenset(up))
        return self._keys

    @property
    def provider(self) -> str:
        if self._provider is None:
            self._provider = provider(self.alert)
        return self._provider

    @property
    def codes(self) -> frozenset[str]:
        if self._codes is None:
            self._codes = frozenset(self.alert.codes)
        return self._codes

    def district_of(self, rule: Rule) -> str | None:
        return rule.district or self.district

    def resolution(self, district: str | None) -> Any:
        return self.rs.resolution(self.alert, district)

    def geometry(self) -> Any:
        if self._geom is None:
            self._geom = self.rs.geometry(self.alert)
        return self._geom

    def changes(self, district: str | None) -> tuple[frozenset[str], tuple[str, ...]]:
        if district not in self._changes:
            assert self.previous is not None
            self._changes[district] = _changes(self.rs, self.previous, self.alert, district)
        return self._changes[district]


def _fail_match(m: AlertMatch, ev: _Eval, rule: Rule) -> tuple[int, str] | None:
    """None if the conditions hold, else how far the rule got (a higher stage is nearer a match) and why not."""
    a = ev.alert
    if m.statuses is not None and a.status not in m.statuses:
        return 0, f"status {a.status.value} (rule wants {', '.join(sorted(s.value for s in m.statuses))})"
    if m.msg_types is not None and a.msg_type not in m.msg_types:
        return 1, f"msgType {a.msg_type.value} (rule wants {', '.join(sorted(t.value for t in m.msg_types))})"
    if m.sources and not any(p.match(ev.origin) for p in m.sources):
        return 2, f"source {ev.origin!r} not listed"
    if m.providers and ev.provider not in m.providers:
        return 2, f"provider {ev.provider} not listed"
    if m.senders and not any(p.match(a.sender) for p in m.senders):
        return 2, f"sender {a.sender!r} not listed"
    if m.codes is not None and not (m.codes & ev.codes):
        return 3, "no listed code"
    if m.info_level:
        first: str | None = None
        for info in a.infos:
            why = _fail_info(m, info)
            if why is None:
                break
            first = first or why
        else:
            return 4, first or "the alert has no info"
    if m.area is not None:
        why = _fail_area(m, ev, rule)
        if why:
            return 5, why
    if m.max_outside_share is not None:
        res = ev.resolution(ev.district_of(rule))
        if res is None:
            return 5, "area could not be resolved"
        if res.outside_share > m.max_outside_share:
            return 6, f"{res.outside_share:.0%} of the area lies outside the district (max {m.max_outside_share:.0%})"
    return None


def _fail_info(m: AlertMatch, info: Info) -> str | None:
    if m.languages and not any(p.match(info.lang) for p in m.languages):
        return f"language {info.lang}"
    if m.events and not any(p.match(info.event) for p in m.events):
        return f"event {info.event!r}"
    if m.event_codes and not any(c.matches(v.value_name, v.value) for c in m.event_codes for v in info.event_codes):
        return "event code " + (", ".join(f"{v.value_name}={v.value}" for v in info.event_codes
                                          if len(v.value) < 20) or "none")
    if m.categories is not None and not (m.categories.intersection(info.categories)):
        return "category " + (", ".join(c.value for c in info.categories) or "none")
    if m.min_severity is not None and info.severity < m.min_severity:
        return f"severity {info.severity.value} < {m.min_severity.value}"
    if m.max_severity is not None and info.severity > m.max_severity:
        return f"severity {info.severity.value} > {m.max_severity.value}"
    if m.min_urgency is not None and info.urgency < m.min_urgency:
        return f"urgency {info.urgency.value} < {m.min_urgency.value}"
    if m.min_certainty is not None and info.certainty < m.min_certainty:
        return f"certainty {info.certainty.value} < {m.min_certainty.value}"
    return None


def _fail_area(m: AlertMatch, ev: _Eval, rule: Rule) -> str | None:
    area = m.area
    assert area is not None
    if area.district:
        district = ev.district_of(rule)
        if district is None:
            return "no district known ([district] ars)"
        res = ev.resolution(district)
        if res is None:
            return "area could not be resolved"
        return None if res.inside_district else "area does not touch the district"
    if area.ars:
        if ev.resolution(ev.district) is None:
            return "area could not be resolved"
        own, up = ev.region_keys()
        reg = ev.rs.registry
        for ars in area.ars:
            if ars in up or ars in own or any(a in own for a in reg._ancestor_keys(ars)):
                return None  # a covered region lies in the listed one, or the listed one in a covered region
        return f"area does not touch {', '.join(area.ars)}"
    polygon = ev.rs.polygon(area.polygon)
    shapes = ev.geometry()
    if shapes is None or len(shapes) == 0:
        return "the alert has no geometry to compare with the polygon"
    import shapely

    hits = shapes[shapely.intersects(shapes, polygon)]
    if len(hits) == 0:
        return "area does not touch the rule's polygon"
    areas = shapely.area(hits)
    if (areas == 0).any() or shapely.area(shapely.intersection(hits[areas > 0], polygon)).sum() > 0:
        return None
    return "area only borders the rule's polygon"


def _main_info(alert: Alert) -> Info | None:
    for info in alert.infos:
        if info.lang.lower().startswith("de"):
            return info
    return alert.infos[0] if alert.infos else None


def _changes(rs: RuleSet, prev: Alert, cur: Alert, district: str | None) -> tuple[frozenset[str], tuple[str, ...]]:
    """What changed from ``prev`` to ``cur``, as ``push_on_update`` names, and notes on changes not counted."""
    changed: set[str] = set()
    notes: list[str] = []
    if prev.severity != cur.severity:
        changed.add("severity")
    for name in ("urgency", "certainty"):
        before = max((getattr(i, name) for i in prev.infos), default=None)
        after = max((getattr(i, name) for i in cur.infos), default=None)
        if before != after:
            changed.add(name)
    if {i.event.casefold() for i in prev.infos} != {i.event.casefold() for i in cur.infos}:
        changed.add("event")
    onset_before = min((i.onset for i in prev.infos if i.onset), default=None)
    onset_after = min((i.onset for i in cur.infos if i.onset), default=None)
    if onset_before != onset_after:
        if onset_before is None or onset_before > cur.sent:
            changed.add("onset")
        else:
            notes.append("onset moved while the warning was already in force (not counted)")
    if prev.expires != cur.expires:
        changed.add("expires")
    res_before, res_after = rs.resolution(prev, district), rs.resolution(cur, district)
    if res_before is not None and res_after is not None and district is not None:
        reg = rs.registry
        rank = {"partial": 1, "full": 2}
        inside_before = {h.ars: rank.get(h.coverage, 1) for h in res_before.regions if reg.is_within(h.ars, district)}
        inside_after = {h.ars: rank.get(h.coverage, 1) for h in res_after.regions if reg.is_within(h.ars, district)}
        if (res_after.inside_district and not res_before.inside_district) or any(
                inside_before.get(a, 0) < r for a, r in inside_after.items()):
            changed.add("area_grows")
        if (res_before.inside_district and not res_after.inside_district) or any(
                inside_after.get(a, 0) < r for a, r in inside_before.items()):
            changed.add("area_shrinks")
        added = {h.ars for h in res_after.regions} - {h.ars for h in res_before.regions}
        removed = {h.ars for h in res_before.regions} - {h.ars for h in res_after.regions}
        if added or removed:
            notes.append(f"regions +{len(added)} -{len(removed)} in all"
                         + ("" if changed & {"area_grows", "area_shrinks"} else " (none in the district)"))
    before, after = _main_info(prev), _main_info(cur)
    for name in ("headline", "description", "instruction"):
        if (getattr(before, name, None) or "") != (getattr(after, name, None) or ""):
            changed.add(name)
    return frozenset(changed), tuple(notes)


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
             sensors: Collection[str] | None = None, geo: Any = None) -> RuleSet:
        """Read and check every file of ``folder`` (``*.toml`` rule files, ``templates/*.toml``).

        Raises :class:`RulesError` listing every error when anything is wrong; nothing half-loaded is returned.
        ``sensors``: the configured sensor ids (None: sensor names are not checked). ``geo``: a
        :class:`hub.geo.geography.Geography` with the operator's extra boundaries (default: the bundled one)."""
        folder = Path(folder)
        print_ = fingerprint(folder)
        loaded = load_folder(folder, channels=channels, sensors=sensors)
        if any(not p.warning for p in loaded.problems):
            raise RulesError(loaded.problems)
        return cls(loaded.rules, loaded.templates, folder=folder, districts=loaded.districts,
                   warnings=loaded.problems, fingerprint=print_, geo=geo)

    @staticmethod
    def check(folder: str | Path, *, channels: Collection[str] = DEFAULT_CHANNELS,
              sensors: Collection[str] | None = None) -> list[Problem]:
        """Every problem (errors and warnings) of a rules folder, without raising."""
        return load_folder(Path(folder), channels=channels, sensors=sensors).problems

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
            from hub.geo.geography import geography

            self._geo = geography()
        return self._geo

    @property
    def registry(self) -> Any:
        return self.geo.registry

    def resolution(self, alert: Alert, district: str | None) -> Any:
        """:func:`hub.geo.resolve.resolve` of the alert against ``district`` (None: the bundled default), cached;
        None if the areas cannot be resolved."""
        from hub.geo.registry import DEFAULT_DISTRICT
        from hub.geo.resolve import resolve

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
        import numpy as np

        from hub.geo.projection import GERMANY, circle_lonlat, polygon_lonlat

        key = (alert.sender, alert.identifier, alert.sent)
        with self._lock:
            if key in self._geoms:
                return self._geoms[key]
        shapes = []
        seen = set()
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
            from hub.geo.projection import GERMANY, polygon_lonlat

            self._polygons[ring] = GERMANY.project(polygon_lonlat(ring))
        return self._polygons[ring]

    # -- evaluation ------------------------------------------------------------------------------------------------

    def match(self, alert: Alert, *, origin: str,
              district: str | None = None) -> tuple[list[Rule], dict[str, tuple[int, str]]]:
        """The matching alert rules, and for the others why not."""
        ev = _Eval(self, alert, origin, None, district or self.district)
        return self._match(ev)

    def _match(self, ev: _Eval) -> tuple[list[Rule], dict[str, tuple[int, str]]]:
        matched: list[Rule] = []
        failed: dict[str, tuple[int, str]] = {}
        for rule in self.alert_rules:
            assert rule.when is not None
            why = _fail_match(rule.when, ev, rule)
            if why is None and rule.unless is not None and _fail_match(rule.unless, ev, rule) is None:
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
        ev = _Eval(self, alert, origin, previous, district or self.district)
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

    def _push(self, ev: _Eval, matched: list[Rule]) -> tuple[bool, str, tuple[str, ...]]:
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
        full = {"district": self.district_name or self.district or "", "time": _local(datetime.now(UTC))}
        full.update({k: v for k, v in values.items() if v is not None})
        return tpl.render(full, rule=rule)

    def draft_for_alert(self, alert: Alert, template: str, *, rule: str = "") -> Draft:
        """A draft made from an incoming alert (placeholders headline, event, severity, sender_name, area)."""
        info = _main_info(alert)
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


def fingerprint(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime_ns, size) of every rule and template file: changes when any file is edited, added or removed."""
    out = []
    for path in [*rule_files(folder), *template_files(folder)] if folder.is_dir() else []:
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
    current: RuleSet | None = None
    refused: Refusal | None = None
    reloads: int = 0
    _refused_print: tuple[tuple[str, int, int], ...] = ()

    @classmethod
    def open(cls, folder: str | Path, **kw: Any) -> LiveRules:
        """Load the initial rules; raises RulesError if they are invalid (the daemon cannot start on them)."""
        live = cls(Path(folder), **kw)
        live.current = RuleSet.load(live.folder, channels=live.channels, sensors=live.sensors, geo=live.geo)
        return live

    def changed(self) -> bool:
        """A file was edited, added or removed since the rules in force (or the last refused attempt) were read."""
        now = fingerprint(self.folder)
        known = self.current.fingerprint if self.current else ()
        return now != known and (self.refused is None or now != self._refused_print)

    def reload(self) -> bool:
        """Try the folder again; True if the new rules are now in force."""
        self.reloads += 1
        print_ = fingerprint(self.folder)
        try:
            fresh = RuleSet.load(self.folder, channels=self.channels, sensors=self.sensors, geo=self.geo)
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
