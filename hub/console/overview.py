"""What the dashboard reads across tables: the inbox and the delivery status of a console thread."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from hub.console.model import ORIGIN, PREVIEW_HOURS
from hub.console.tables import versions, warnings
from hub.decide import decisions
from hub.deliver import outbox
from hub.health import pipeline_faults
from hub.intake import readings
from hub.publish import publications
from hub.store import conflicts
from hub.store.clock import now_utc
from hub.store.db import Store


def inbox(store: Store, *, now: datetime | None = None, hours: float = PREVIEW_HOURS,
          district: Sequence[str] | None = None) -> dict[str, Any]:
    """What waits for the control room: external alerts a rule published or drafted (live threads), pending
    drafts (sensor drafts with the sensor's last ``hours`` of readings as ``(time, value)`` for a chart),
    unrouted alerts with the rules' explanation, console versions awaiting approval, and what failed in the
    pipeline (rules, publishing, deliveries) with the reason and the next try (hub.health.pipeline_faults), and the
    CAP identity conflicts (hub.store.conflicts: a second copy of a message with other content).

    ``district``: the Kreis keys of one district (:func:`hub.web.console.owners`): only its decisions, drafts,
    versions and failed deliveries (None: everything, a single-district hub)."""
    found = decisions.decisions(store, decision="publish", district=district) + \
        decisions.decisions(store, decision="draft", district=district)
    origins = dict(store.conn.execute("SELECT id, origin FROM alerts WHERE id IN"
                                      " (SELECT CAST(value AS BIGINT) FROM json_each(?))",
                                      (json.dumps([d.decision.alert_id for d in found]),)).fetchall())
    matched = [d.as_dict() for d in sorted(found, key=lambda d: -d.decision.alert_id)
               if origins.get(d.decision.alert_id) != ORIGIN]
    since = readings.ms_of((now or now_utc()) - timedelta(hours=hours))
    pending = decisions.drafts(store, state="pending", district=district)
    for d in pending:
        d["readings"] = [(readings.iso_ms(ts), value) for ts, value in store.conn.execute(
            "SELECT ts, value FROM readings WHERE sensor_id=? AND ts>=? ORDER BY ts LIMIT 2000",
            (d["sensor"], since))] if d["sensor"] else []
    unrouted = [d.as_dict() for d in decisions.decisions(store, decision="unrouted", district=district)]
    faults = pipeline_faults(store, now=now)
    return {"alerts": matched, "drafts": pending, "unrouted": unrouted,
            "awaiting_approval": warnings(store, states=["submitted"], district=district),
            "failed": faults if district is None else own_faults(store, faults, district),
            "conflicts": conflicts.recent(store) if district is None else own_conflicts(store, district)}


def own_faults(store: Store, faults: dict[str, Any], district: Sequence[str]) -> dict[str, Any]:
    """The pipeline's faults as one district sees them: failed deliveries only of its own publications; a failed
    rule or publishing step only of alerts that are not another district's console warning (external alerts are
    the whole hub's)."""
    keys = json.dumps(list(district))
    mine = {r[0] for r in store.conn.execute(
        "SELECT o.key FROM outbox o JOIN publications p ON p.id = o.publication_id WHERE o.state = 'failed'"
        " AND p.district IN (SELECT value FROM json_each(?))", (keys,))}
    theirs = {r[0] for r in store.conn.execute(
        "SELECT alert_id FROM console_warnings WHERE alert_id IS NOT NULL"
        " AND district NOT IN (SELECT value FROM json_each(?))", (keys,))}
    items = [i for i in faults["items"] if (i["identifier"] in mine if i["stage"] == "delivery"
                                            else i["alert_id"] not in theirs)]
    counts = {**faults["failed"], "rules": 0, "publish": 0, **decisions.failure_counts(store, district=district),
              "delivery": sum(1 for i in items if i["stage"] == "delivery")}  # its decisions' failures alone
    return {"failed": counts, "items": items}


def own_conflicts(store: Store, district: Sequence[str]) -> dict[str, Any]:
    """The CAP identity conflicts one district sees: none about another district's console warning."""
    theirs = {r[0] for r in store.conn.execute(
        "SELECT c.id FROM conflicts c JOIN console_warnings w ON w.alert_id = c.alert_id"
        " WHERE w.district NOT IN (SELECT value FROM json_each(?))", (json.dumps(list(district)),))}
    found = conflicts.recent(store, limit=20 + len(theirs))
    items = [i for i in found["items"] if i["id"] not in theirs][:20]
    return {"count": found["count"] - len(theirs), "items": items}


def status(store: Store, thread: str) -> dict[str, Any]:
    """Per version of a console thread: its state, its CAP, its publication and the deliveries per channel and
    state (hub.deliver.outbox.status)."""
    rows = versions(store, thread)
    pubs = {v["id"]: publications.by_source_alert(store, v["alert_id"]) for v in rows if v["alert_id"]}
    counts = outbox.status(store, [p.id for p in pubs.values() if p is not None])
    out = []
    for v in rows:
        pub = pubs.get(v["id"])
        out.append({"id": v["id"], "version": v["version"], "state": v["state"], "msg_type": v["msg_type"],
                    "kind": v["kind"], "identifier": v["cap_identifier"], "alert_id": v["alert_id"],
                    "publication": {"id": pub.id, "thread": pub.thread, "version": pub.version,
                                    "identifier": pub.identifier} if pub else None,
                    "channels": counts.get(pub.id, {}) if pub else {}})
    return {"thread": thread, "versions": out}
