"""Drafts the rules store for a person to approve (table ``drafts``): a template rendered for an incoming alert
(:func:`hub.decide.decisions.record`) or for a sensor condition that fired or cleared (:func:`add_sensor_drafts`).
Each draft has a key, so deciding twice, or replaying readings after a restart, never drafts the same thing twice, and
the district whose rules drafted it (its Kreis key). :mod:`hub.decide.decisions` names these too (callers read them
there).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.decide.rules.templates import Draft
from hub.store.clock import now_utc, utc_iso
from hub.store.db import Store


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class SensorDraft:
    """A sensor event as the store keeps it (see :class:`hub.decide.rules.SensorEvent`)."""

    rule: str
    sensor: str
    kind: str
    at: datetime
    channels: tuple[str, ...]
    audiences: tuple[str, ...]
    why: str
    draft: Draft


def sensor_key(rule: str, kind: str, at: datetime, district: str = "") -> str:
    """The draft key of a sensor event: the same event replayed after a restart has the same key. ``district``:
    named when the hub has several (two districts' rules may share a name)."""
    return f"sensor:{district + ':' if district else ''}{rule}:{kind}:{utc_iso(at)}"


def add_sensor_drafts(store: Store, events: Sequence[SensorDraft], *, now: datetime | None = None,
                      district: str = "", keyed: bool = False) -> list[str]:
    """Store the drafts of sensor events of ``district`` (the one the sensor lies in; ``keyed``: the hub has several,
    the key names it); returns the keys that were new (an event seen before is ignored)."""
    now = now or now_utc()
    new = []
    with store.transaction() as conn:
        for e in events:
            key = sensor_key(e.rule, e.kind, e.at, district if keyed else "")
            if insert_draft(conn, key=key, origin="sensor", alert_id=None, rule=e.rule, sensor=e.sensor,
                             kind=e.kind, at=e.at, channels=e.channels, audiences=e.audiences, why=e.why,
                             draft=e.draft, now=now, district=district):
                new.append(key)
    return new


def insert_draft(conn: Any, *, key: str, origin: str, alert_id: int | None, rule: str, sensor: str | None,
                  kind: str, at: datetime, channels: Sequence[str], audiences: Sequence[str], why: str, draft: Draft,
                  now: datetime, district: str = "") -> bool:
    cur = conn.execute(
        "INSERT OR IGNORE INTO drafts (key, origin, alert_id, rule, sensor, kind, template, at, channels, audiences,"
        " why, draft, created_at, district) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (key, origin, alert_id, rule, sensor, kind, draft.template, utc_iso(at), _dumps(list(channels)),
         _dumps(list(audiences)), why, _dumps(draft_dict(draft)), utc_iso(now), district))
    return cur.rowcount > 0


def draft_dict(draft: Draft) -> dict[str, Any]:
    """A draft as JSON: what the console shows and turns into a warning on approval."""
    return {"template": draft.template, "kind": draft.kind, "rule": draft.rule, "event": draft.event,
            "categories": [c.value for c in draft.categories], "severity": draft.severity.value,
            "urgency": draft.urgency.value, "certainty": draft.certainty.value,
            "response_types": [r.value for r in draft.response_types], "event_code": draft.event_code,
            "instruction_codes": list(draft.instruction_codes),
            "texts": {lang: {"headline": t.headline, "description": t.description, "instruction": t.instruction}
                      for lang, t in draft.texts.items()},
            "web": draft.web, "contact": draft.contact,
            "values": {k: (v if isinstance(v, (int, float, str)) or v is None else str(v))
                       for k, v in draft.values.items()}}
