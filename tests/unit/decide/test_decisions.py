"""Decisions are read back as they were recorded: a typed, frozen :class:`StoredDecision` for every column of the
``decisions`` table, whose JSON form (``warnhub alerts --json``, the console inbox) is byte for byte what the dict
reader before it printed. Real parts: a SQLite file, the intake and :func:`hub.decide.decisions.record`."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

from hub.cap.model import Severity
from hub.cap.parse import parse
from hub.cap.validate import Validator
from hub.decide import decisions
from hub.decide.decisions import ListedDecision, Pending, StoredDecision
from hub.decide.rules.engine import Decision
from hub.intake.documents import Intake
from hub.store.db import Store
from hub.store.migrations.tools import columns as table_columns
from tests.e2e.test_routing import dwd_cap

NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
DECISION = Decision("publish", ("sturm", "kreis"), channels=("push", "web"), audiences=("public",), push=True,
                    drafts=("info",), severity=Severity.SEVERE, regions=("03354", "033540005"),
                    inside_district=True, outside_share=0.123456, changes=("severity",), why="Sturm im Kreis")
JSON = ('{{"alert_id": {a}, "thread_id": {t}, "decision": "publish", "rules": ["sturm", "kreis"], "channels": ["push",'
        ' "web"], "audiences": ["public"], "push": true, "drafts": ["info"], "severity": "Severe", "regions":'
        ' ["03354", "033540005"], "inside_district": true, "outside_share": 0.1235, "changes": ["severity"], "why":'
        ' "Sturm im Kreis", "rules_loaded_at": null, "decided_at": "2026-12-07T01:00:00+00:00", "failed_stage": null,'
        ' "failure": "", "attempts": 0, "retry_at": null, "district": "", "failed": false}}')
"""``json.dumps`` of the decision as ``warnhub alerts --json`` printed it with the dict reader (same keys, order,
types)."""


def test_a_decision_reads_back_typed_and_prints_as_before(store_url: str, tmp_path: Path) -> None:
    store = Store(store_url)
    raw = dwd_cap("read-back-1")
    stored = Intake(Validator(), store).ingest(raw, origin="dwd")
    pending = Pending(stored.alert_id, stored.thread_id, "dwd", parse(raw).alert, None)
    assert decisions.record(store, pending, DECISION, rules_loaded_at=None, now=NOW)

    d = decisions.decision_of(store, stored.alert_id)
    assert d == StoredDecision(stored.alert_id, stored.thread_id, "publish", ("sturm", "kreis"), ("push", "web"),
                               ("public",), True, ("info",), Severity.SEVERE, ("03354", "033540005"), True, 0.1235,
                               ("severity",), "Sturm im Kreis", None, "2026-12-07T01:00:00+00:00", None, "", 0, None)
    assert json.dumps(d.as_dict(), ensure_ascii=False) == JSON.format(a=stored.alert_id, t=stored.thread_id)
    assert decisions.current_decisions(store, [stored.thread_id, 999]) == {stored.thread_id: {"": d}, 999: {}}

    listed = decisions.decisions(store, decision="publish")
    headline = "Amtliche UNWETTERWARNUNG vor STURMBÖEN"
    assert listed == [ListedDecision(d, headline, "opendata@dwd.de", "read-back-1", "active")]
    assert list(listed[0].as_dict())[-5:] == ["failed", "headline", "sender", "identifier", "state"]

    decisions.record_failure(store, stored.alert_id, "publish", "boom", now=NOW)
    failed = decisions.decision_of(store, stored.alert_id)
    assert failed is not None and failed.failed and failed.as_dict()["failed"] is True and failed.attempts == 1
    assert [f.decision for f in decisions.failures(store, now=NOW)] == [failed]
    store.close()


def test_the_record_has_every_column_of_the_table(store_url: str, tmp_path: Path) -> None:
    """A column added to ``decisions`` must be read back too (else the CLI's JSON silently loses it)."""
    store = Store(store_url)
    columns = table_columns(store.conn, "decisions")
    assert [f.name for f in dataclasses.fields(StoredDecision)] == columns
    store.close()
