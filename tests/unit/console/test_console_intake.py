"""The console's send path goes through the intake (the one way in every source uses), inside the transaction that
records the operators' decision: against a real SQLite file, the real geography, the repository's templates and
real CAP validation; a crash is a real process that dies between the stored alert and its decision.

Invariants protected: the console's CAP is written by :meth:`hub.intake.documents.Intake.record` (its log line
with origin ``console``), and an alert the console stores never exists without its decision, whatever moment the
process dies at ("store before acting" and one transaction for alert, decision, console row and audit entry).
"""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hub.console.drafts import create_draft
from hub.console.model import ConsoleConfig, FourEyes
from hub.console.release import send
from hub.console.targeting import preview_for
from hub.decide.rules.engine import RuleSet
from hub.geo.geography import geography
from hub.store.db import Store
from tests.kits.paths import REPO
from tests.unit.console.test_console import ANNA, DISTRICT, SENDER, form

ALONE = FourEyes(required_for=frozenset({"Extreme", "Severe"}))
"""A Moderate warning needs no second person: one operator sends it."""


@pytest.fixture(scope="module")
def alone() -> ConsoleConfig:
    geo = geography()
    return ConsoleConfig(geo=geo, district=DISTRICT, sender=SENDER, sender_name="Landkreis Lüchow-Dannenberg",
                         templates=RuleSet.load(REPO / "rules", geo=geo).templates, four_eyes=ALONE)


def test_console_send_stores_its_cap_through_the_intake(tmp_path: Path, alone: ConsoleConfig,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    store = Store(tmp_path / "hub.db")
    try:
        w = create_draft(store, ANNA, form(severity="Moderate"), cfg=alone)
        token = preview_for(store, alone, None, w["id"])["token"]
        with caplog.at_level(logging.INFO, logger="warnhub.intake"):
            sent = send(store, ANNA, w["id"], token=token, cfg=alone)
        stored = [r for r in caplog.records if r.name == "warnhub.intake"]
        assert len(stored) == 1, [r.getMessage() for r in stored]
        assert stored[0].getMessage().startswith(f"new alert={SENDER}/{sent.identifier} thread={sent.store_thread} ")
        assert getattr(stored[0], "origin", None) == "console"
        row = store.conn.execute("SELECT origin, identifier FROM alerts WHERE id=?", (sent.alert_id,)).fetchone()
        assert tuple(row) == ("console", sent.identifier)
    finally:
        store.close()


_CRASH = textwrap.dedent("""
    import os, sys
    from hub.console.drafts import create_draft
    from hub.console.model import ConsoleConfig, FourEyes
    from hub.console.release import send
    from hub.console.targeting import preview_for
    from hub.decide import decisions
    from hub.decide.rules.engine import RuleSet
    from hub.geo.geography import geography
    from hub.store.db import Store
    from tests.unit.console.test_console import ANNA, DISTRICT, SENDER, form

    db, repo, crash = sys.argv[1], sys.argv[2], sys.argv[3] == "crash"
    geo = geography()
    cfg = ConsoleConfig(geo=geo, district=DISTRICT, sender=SENDER, templates=RuleSet.load(repo + "/rules", geo=geo)
                        .templates, four_eyes=FourEyes(required_for=frozenset({"Extreme", "Severe"})))
    store = Store(db, synchronous="NORMAL")

    def record_then_die(store, pending, *args, **kwargs):
        seen = store.conn.execute("SELECT count(*) FROM alerts WHERE id=? AND origin='console'",
                                  (pending.alert_id,)).fetchone()[0]
        print(f"alert in the open transaction: {seen}", flush=True)
        os._exit(9)  # the process dies: no rollback, no close, no commit

    if crash:
        decisions.record = record_then_die
    w = create_draft(store, ANNA, form(severity="Moderate"), cfg=cfg)
    token = preview_for(store, cfg, None, w["id"])["token"]
    sent = send(store, ANNA, w["id"], token=token, cfg=cfg)
    print(f"sent alert {sent.alert_id}", flush=True)
""")


def _run(db: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _CRASH, str(db), str(REPO), mode], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)


def _counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(db)
    try:
        return {
            "alerts": conn.execute("SELECT count(*) FROM alerts").fetchone()[0],
            "decisions": conn.execute("SELECT count(*) FROM decisions").fetchone()[0],
            "undecided": conn.execute("SELECT count(*) FROM alerts a WHERE NOT EXISTS (SELECT 1 FROM decisions d"
                                      " WHERE d.alert_id = a.id)").fetchone()[0],
            "sent_rows": conn.execute("SELECT count(*) FROM console_warnings WHERE state='sent'").fetchone()[0],
            "drafts": conn.execute("SELECT count(*) FROM console_warnings WHERE state='draft'").fetchone()[0],
            "send_audits": conn.execute("SELECT count(*) FROM audit WHERE action='console.send'").fetchone()[0],
        }
    finally:
        conn.close()


def test_a_crash_between_the_stored_alert_and_its_decision_leaves_neither(tmp_path: Path) -> None:
    """The process dies inside the send, after the intake wrote the alert (seen in the open transaction) and
    before its decision: after restart there is no alert, no decision, no sent row and no ``console.send`` audit
    entry, only the draft. The same send without the crash stores the alert with its decision."""
    db = tmp_path / "hub.db"
    crashed = _run(db, "crash")
    assert crashed.returncode == 9, crashed.stderr
    assert "alert in the open transaction: 1" in crashed.stdout, crashed.stdout + crashed.stderr
    Store(db).close()  # reopened as after a restart: SQLite recovers from the WAL what was committed
    assert _counts(db) == {"alerts": 0, "decisions": 0, "undecided": 0, "sent_rows": 0, "drafts": 1,
                           "send_audits": 0}
    done = _run(db, "no-crash")
    assert done.returncode == 0 and "sent alert" in done.stdout, done.stderr
    assert _counts(db) == {"alerts": 1, "decisions": 1, "undecided": 0, "sent_rows": 1, "drafts": 1,
                           "send_audits": 1}
