"""``warnhub cancel`` (issue 14): the night the console is unreachable, a public warning is ended from the command
line through the same domain path as the console's "Aufheben" (audited, sent alone with a reason), and published
through the pipeline: by the running daemon, and by a stopped one when it starts. The real daemon (tests/hubproc.py)
and the real ``python -m hub.cli`` processes against one SQLite file."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from hub.access import auth
from hub.console import drafts, release, targeting
from hub.console.model import ConsoleConfig
from hub.console.release import Sent
from hub.geo.geography import geography
from hub.store.db import Store
from tests.kits.hubproc import HubProcess, free_port, subprocess_env, wait_for, write_config
from tests.unit.console.test_console import form

PASSWORD = "Deichbruch-2026-Elbe!"
REASON = "Konsole nicht erreichbar; Feuerwehr meldet: Brand gelöscht"


def _publications(db: Path, thread: str) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return [m for (m,) in conn.execute("SELECT msg_type FROM publications WHERE thread=? ORDER BY version",
                                           (thread,))]


def _sent_warning(db: Path, cfg: ConsoleConfig, headline: str) -> Sent:
    """A public web warning written by anna and approved by bert (as the console does), not yet published."""
    with Store(db) as store:
        anna, bert = auth.get_user(store, "anna"), auth.get_user(store, "bert")
        w = drafts.create_draft(store, anna, form(channels=("web",), headline=headline), cfg=cfg)  # type: ignore[arg-type]
        drafts.submit(store, anna, w["id"], cfg=cfg)  # type: ignore[arg-type]
        token = targeting.preview_for(store, cfg, None, w["id"])["token"]
        return release.approve(store, bert, w["id"], token=token, cfg=cfg)  # type: ignore[arg-type]


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hub.cli", "cancel", *args, "--config", str(config)],
                          cwd=str(config.parent), env=subprocess_env(), capture_output=True, text=True, timeout=120)


def test_cli_cancel_with_the_hub_running_and_while_it_is_down(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    port = free_port()
    config = write_config(tmp_path, port=port)
    db = tmp_path / "hub.db"
    with Store(db) as store:
        auth.add_user(store, "anna", ("author", "approver"), ("033540000000",), PASSWORD, actor="test",
                      registry=geography().registry)
        auth.add_user(store, "bert", ("approver",), ("033540000000",), PASSWORD, actor="test",
                      registry=geography().registry)
        auth.add_user(store, "carl", ("author",), ("033540000000",), PASSWORD, actor="test",
                      registry=geography().registry)
    cfg = ConsoleConfig(geo=geography(), district="033540000000", sender="leitstelle@lk-dan.example")
    first = _sent_warning(db, cfg, "Großbrand in Lüchow")
    second = _sent_warning(db, cfg, "Rauch über Lüchow")
    w1, w2 = f"w{first.store_thread}", f"w{second.store_thread}"
    c1 = first.warning["thread"]

    hub = HubProcess(config, port, tmp_path / "hub.log")
    try:
        hub.start()
        wait_for(lambda: _publications(db, w1) == ["Alert"] and _publications(db, w2) == ["Alert"],
                 timeout=30, what="both warnings published")

        refused = _cli(config, c1, "--reason", REASON, "--user", "carl")  # no approve permission
        assert refused.returncode == 1 and "Vier-Augen-Prinzip" in refused.stderr, refused.stderr
        short = _cli(config, c1, "--reason", "weil", "--user", "anna")
        assert short.returncode == 1 and "mindestens 20 Zeichen" in short.stderr
        unknown = _cli(config, "c-gibt-es-nicht", "--reason", REASON)
        assert unknown.returncode == 1 and "keine Warnung aus der Konsole" in unknown.stderr

        done = _cli(config, c1, "--reason", REASON, "--user", "anna")  # while the hub runs
        assert done.returncode == 0, done.stderr
        assert "Aufhebung gespeichert" in done.stdout
        wait_for(lambda: _publications(db, w1) == ["Alert", "Cancel"], timeout=45,
                 what="the running hub publishing the cancel")
        assert hub.stop() == 0

        down = _cli(config, w2, "--reason", REASON)  # the public thread's name, no console user: cli:<os user>
        assert down.returncode == 0, down.stderr
        assert _publications(db, w2) == ["Alert"]
        hub.start()
        wait_for(lambda: _publications(db, w2) == ["Alert", "Cancel"], timeout=30,
                 what="the restarted hub publishing the cancel")
    finally:
        hub.close()

    with Store(db) as store:
        entries = [(e["actor"], e["action"], json.loads(e["detail"])) for e in store.audit_entries()]
        assert store.verify_audit().ok
        assert store.thread(first.store_thread).state == "cancelled"  # type: ignore[union-attr]
        assert store.thread(second.store_thread).state == "cancelled"  # type: ignore[union-attr]
    ended = [(actor, d["reason"]) for actor, action, d in entries if action == "console.end_alone"]
    assert ended[0] == ("anna", REASON) and ended[1][0].startswith("cli:") and len(ended) == 2
    assert ("carl", "console.refused") in [(a, b) for a, b, _ in entries]
