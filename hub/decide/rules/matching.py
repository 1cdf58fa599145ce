"""Matching one alert against the rules' conditions: which warning system it comes from (:func:`provider`), why a
rule does not match (:func:`fail_match`, a stage and a reason), and what an Update changed (``push_on_update``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import shapely

from hub.cap.model import Alert, Info
from hub.decide.rules.model import AlertMatch, Rule

if TYPE_CHECKING:
    from hub.decide.rules.engine import RuleSet


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


class Evaluation:
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


def fail_match(m: AlertMatch, ev: Evaluation, rule: Rule) -> tuple[int, str] | None:
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


def _fail_area(m: AlertMatch, ev: Evaluation, rule: Rule) -> str | None:
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

    hits = shapes[shapely.intersects(shapes, polygon)]
    if len(hits) == 0:
        return "area does not touch the rule's polygon"
    areas = shapely.area(hits)
    if (areas == 0).any() or shapely.area(shapely.intersection(hits[areas > 0], polygon)).sum() > 0:
        return None
    return "area only borders the rule's polygon"


def main_info(alert: Alert) -> Info | None:
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
    before, after = main_info(prev), main_info(cur)
    for name in ("headline", "description", "instruction"):
        if (getattr(before, name, None) or "") != (getattr(after, name, None) or ""):
            changed.add(name)
    return frozenset(changed), tuple(notes)
