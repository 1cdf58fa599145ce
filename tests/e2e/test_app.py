"""The composition root in the running daemon: a long-running task that dies is restarted with backoff, /healthz
shows it (``degraded`` and the task ``restarting`` while it waits, then ``running`` with its restarts and last
error), and the restarted pipeline still hears the events that wake it: a CAP file dropped during the outage is
published once it runs again, and one dropped afterwards is published at once, not at the 30 s idle check.

The crash is injected with the supervisor's documented test hook ``WARNHUB_TEST_CRASH=pipeline:3`` (off unless set;
see hub/supervise.py): the pipeline's own loop catches store failures and retries them itself, so no outside fault
can kill it on cue, while every other part here — daemon, store, rules, directory source — is the real one.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.kits.hubproc import REPO, HubProcess, drop, free_port, wait_for, write_config

WAIT = 30
PROMPT_S = 12.0
"""A publication woken by its decision comes within this; the pipeline's idle check is 30 s."""


def storm(identifier: str) -> bytes:
    """A DWD severe-weather warning for the district: the repository's rules publish it."""
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>opendata@dwd.de</sender><sent>{sent.isoformat()}</sent>
  <status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
  <info>
    <language>de-DE</language><category>Met</category><event>STURMBÖEN</event>
    <urgency>Immediate</urgency><severity>Severe</severity><certainty>Likely</certainty>
    <eventCode><valueName>II</valueName><value>52</value></eventCode>
    <expires>{(sent + timedelta(hours=6)).isoformat()}</expires>
    <headline>Amtliche UNWETTERWARNUNG vor STURMBÖEN</headline>
    <description>Es treten Sturmböen auf.</description>
    <area><areaDesc>Kreis Lüchow-Dannenberg</areaDesc>
      <geocode><valueName>WARNCELLID</valueName><value>103354000</value></geocode></area>
  </info>
</alert>""".encode()


def query(db: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(sql, args).fetchall()


def published(db: Path, identifier: str) -> bool:
    return bool(query(db, "SELECT 1 FROM publications p JOIN alerts a ON a.id = p.source_alert"
                          " WHERE a.identifier=?", identifier))


def decided(db: Path, identifier: str) -> bool:
    return bool(query(db, "SELECT 1 FROM decisions d JOIN alerts a ON a.id = d.alert_id WHERE a.identifier=?",
                      identifier))


@pytest.fixture
def crashing_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubProcess]:
    """The daemon with the repository's rules (sensor rules cut: no sensor here), its pipeline crashing 3 times."""
    (tmp_path / "inbox").mkdir()
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    main = rules / "luechow-dannenberg.toml"
    text = main.read_text(encoding="utf-8")
    main.write_text(text[:text.index("# --- Eigene Sensoren")], encoding="utf-8")
    port = free_port()
    monkeypatch.setenv("WARNHUB_TEST_CRASH", "pipeline:3")  # the child inherits it (hubproc.subprocess_env)
    proc = HubProcess(write_config(tmp_path, port=port), port, tmp_path / "hub.log")
    try:
        proc.start(wait=False)
        yield proc
    finally:
        proc.close()


def test_a_crashed_pipeline_is_restarted_shown_in_healthz_and_publishes_again(crashing_hub: HubProcess,
                                                                              tmp_path: Path) -> None:
    proc, db, inbox = crashing_hub, tmp_path / "hub.db", tmp_path / "inbox"

    def health_when(check: Any) -> dict[str, Any] | None:
        proc.assert_alive()
        status, body = proc.get("/healthz")
        if status != 200:
            return None
        h: dict[str, Any] = json.loads(body)
        return h if check(h) else None

    down = wait_for(lambda: health_when(lambda h: h["tasks"].get("pipeline", {}).get("state") == "restarting"),
                    timeout=WAIT, what="the pipeline restarting in /healthz", interval=0.05)
    assert down["status"] == "degraded"
    assert "injected crash" in down["tasks"]["pipeline"]["last_error"]
    assert down["tasks"]["router"]["state"] == "running"  # one task's crash takes no other down
    assert down["tasks"]["source:cap-inbox"]["state"] == "running"
    assert down["tasks"]["outbox:push"]["state"] == "running"  # each channel's worker is supervised as well

    drop(inbox, "during.xml", storm("storm-during-outage"))  # stored and decided, published once it runs again
    wait_for(lambda: decided(db, "storm-during-outage"), timeout=WAIT, what="the decision during the outage")

    up = wait_for(lambda: health_when(lambda h: h["tasks"]["pipeline"]["state"] == "running"
                                      and h["tasks"]["pipeline"]["restarts"] == 3),
                  timeout=WAIT, what="the pipeline running again after 3 restarts")
    assert up["status"] == "ok"
    assert "injected crash" in up["tasks"]["pipeline"]["last_error"]  # what happened stays visible
    wait_for(lambda: published(db, "storm-during-outage"), timeout=WAIT, what="the backlog published")

    dropped = time.monotonic()
    drop(inbox, "after.xml", storm("storm-after-restart"))
    wait_for(lambda: published(db, "storm-after-restart"), timeout=PROMPT_S,
             what="a new warning published promptly by the restarted pipeline")
    assert time.monotonic() - dropped < PROMPT_S
    crashes = [line for line in proc.log_lines() if "task pipeline crashed" in line.get("msg", "")]
    assert len(crashes) == 3, proc.log()[-3000:]
