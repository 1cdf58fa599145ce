"""The real daemon: ``warnhub run`` as a process, a real inbox folder, a real SQLite file, real HTTP."""

from __future__ import annotations

import http.cookiejar
import json
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.cap.validate import Validator, Verdict
from hub.store.db import Store
from tests.kits.consolekit import Operator, add_reader
from tests.kits.hubproc import (
    DWD_CHAIN,
    DWD_CURRENT,
    XXE,
    HubProcess,
    cap_xml,
    drop,
    free_port,
    subprocess_env,
    wait_for,
    write_config,
)

WAIT = 30.0  # seconds; a bound for every wait, never a timing assertion


class Hub:
    """A running daemon and its folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.config = write_config(folder, port=self.port)
        self.inbox = folder / "inbox"
        self.done = self.inbox / "done"
        self.rejected = self.inbox / "rejected"
        self.db = folder / "hub.db"
        self.proc = HubProcess(self.config, self.port, folder / "warnhub.log")
        add_reader(self.db)
        self.operator = Operator(self.proc.base)

    def names(self, folder: Path) -> set[str]:
        return {p.name for p in folder.iterdir()} if folder.is_dir() else set()

    def threads(self, *, all: bool = True) -> list[dict[str, object]]:
        return self.operator.threads(all=all)

    def health(self) -> dict[str, object]:
        return self.proc.get_json("/healthz")  # type: ignore[no-any-return]

    def log_messages(self) -> list[str]:
        return [str(e.get("msg", "")) for e in self.proc.log_lines()]


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(tmp_path)
    try:
        h.proc.start()
        yield h
    finally:
        h.proc.close()


def feed_dwd_and_xxe(hub: Hub) -> None:
    for f in DWD_CHAIN:
        drop(hub.inbox, f.name, f.read_bytes())
    drop(hub.inbox, XXE.name, XXE.read_bytes())
    wait_for(lambda: hub.names(hub.done) == {f.name for f in DWD_CHAIN}, timeout=WAIT, what="DWD files in done/")
    wait_for(lambda: XXE.name + ".reason.txt" in hub.names(hub.rejected), timeout=WAIT, what="XXE in rejected/")


def dwd_thread(hub: Hub) -> dict[str, object]:
    return next(t for t in hub.threads() if t["current_identifier"] == DWD_CURRENT)


def test_dropped_files_are_stored_and_moved(hub: Hub) -> None:
    """Invariant: a file dropped into the inbox is stored, then moved to done/ - and shows in the API as one thread."""
    assert hub.health()["status"] == "ok"
    feed_dwd_and_xxe(hub)
    assert hub.names(hub.inbox) == {"done", "rejected"}  # nothing left behind
    threads = wait_for(lambda: [t for t in hub.threads() if t["versions"] == 4], timeout=WAIT, what="DWD thread")
    assert len(hub.threads()) == 1
    assert threads[0]["current_identifier"] == DWD_CURRENT
    assert threads[0]["state"] == "expired"
    assert hub.threads(all=False) == []  # ended incidents are not current
    detail = hub.operator.get_json(f"/console/api/alerts/{threads[0]['id']}")
    assert len(detail["versions"]) == 4
    assert detail["current"]["identifier"] == DWD_CURRENT
    assert detail["current"]["msgType"] == "Update"
    with sqlite3.connect(hub.db) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT identifier) FROM alerts").fetchone() == (4, 4)
        assert {r[0] for r in conn.execute("SELECT origin FROM alerts")} == {"cap-inbox"}


def test_rejected_file_gets_a_reason(hub: Hub) -> None:
    """Invariant: a refused file is never silently dropped - it lies in rejected/ with <name>.reason.txt saying why,
    and the rejection is recorded in the store."""
    feed_dwd_and_xxe(hub)
    assert hub.names(hub.rejected) == {XXE.name, XXE.name + ".reason.txt"}
    assert (hub.rejected / XXE.name).read_bytes() == XXE.read_bytes()
    reason = (hub.rejected / (XXE.name + ".reason.txt")).read_text(encoding="utf-8")
    assert "rejected by cap-inbox" in reason
    assert "DOCTYPE declaration refused" in reason
    with sqlite3.connect(hub.db) as conn:
        assert conn.execute("SELECT origin, reason FROM rejections").fetchall() == [
            ("cap-inbox", reason.splitlines()[1])]


def test_redelivered_file_is_kept_and_stored_once(hub: Hub) -> None:
    """Invariant: a file delivered twice under the same name never overwrites the first in done/, and the alert is
    stored once."""
    raw = cap_xml("twice", expires="2099-01-01T00:00:00+00:00")
    drop(hub.inbox, "twice.xml", raw)
    wait_for(lambda: "twice.xml" in hub.names(hub.done), timeout=WAIT, what="first copy in done/")
    drop(hub.inbox, "twice.xml", raw)
    wait_for(lambda: "twice.1.xml" in hub.names(hub.done), timeout=WAIT, what="second copy in done/")
    assert (hub.done / "twice.xml").read_bytes() == (hub.done / "twice.1.xml").read_bytes() == raw
    with sqlite3.connect(hub.db) as conn:
        assert conn.execute("SELECT count(*) FROM alerts WHERE identifier='twice'").fetchone() == (1,)
    metrics = hub.proc.get("/metrics")[1].decode()
    assert metric(metrics, "warnhub_documents_total", source="cap-inbox", outcome="duplicate") == 1.0


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one Prometheus sample with (at least) these labels."""
    for line in text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return None


def test_metrics(hub: Hub) -> None:
    """Invariant: /metrics counts documents per source and outcome, and incidents per state."""
    feed_dwd_and_xxe(hub)
    status, body = hub.proc.get("/metrics")
    assert status == 200
    text = body.decode()
    assert "warnhub_documents_total" in text
    assert metric(text, "warnhub_documents_total", source="cap-inbox", outcome="new") == 4.0
    assert metric(text, "warnhub_documents_total", source="cap-inbox", outcome="rejected") == 1.0
    assert metric(text, "warnhub_threads", state="expired") == 1.0
    assert metric(text, "warnhub_threads", state="active") == 0.0
    assert metric(text, "warnhub_alerts_stored") == 4.0
    assert metric(text, "warnhub_source_up", source="cap-inbox") == 1.0


def console_get(hub: Hub, *paths: str) -> list[tuple[int, str]]:
    """GET console pages as a signed-in reader: a viewer added with the CLI, signed in through the JSON login."""
    added = subprocess.run([sys.executable, "-m", "hub.cli", "user", "add", "leser", "--role", "viewer", "--scope",
                            "033540000000", "--password-stdin", "--config", str(hub.config)],
                           input="lange-genug-passwort-2030\n", capture_output=True, text=True, timeout=60,
                           env=subprocess_env())
    assert added.returncode == 0, added.stderr
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    login = urllib.request.Request(f"{hub.proc.base}/console/login", method="POST",
                                   data=json.dumps({"name": "leser", "password": "lange-genug-passwort-2030"}).encode(),
                                   headers={"Content-Type": "application/json", "Origin": hub.proc.base})
    with opener.open(login, timeout=10) as resp:
        assert resp.status == 200
    out = []
    for path in paths:
        try:
            with opener.open(hub.proc.base + path, timeout=10) as resp:
                out.append((resp.status, resp.read().decode("utf-8")))
        except urllib.error.HTTPError as err:
            out.append((err.code, err.read().decode("utf-8")))
    return out


def test_status_page_names_the_district(hub: Hub) -> None:
    """Invariant: the operators' page of every stored incident (console sign-in) is HTML for this district (German
    first) and lists incidents, ended ones too; the public start page does not (it shows publications only)."""
    feed_dwd_and_xxe(hub)
    thread_id = dwd_thread(hub)["id"]
    status, body = hub.proc.get("/console/incidents")
    assert status in (303, 401) or "login" in body.decode("utf-8")  # not without signing in
    (status, html), (status_one, page), (missing, _) = console_get(
        hub, "/console/incidents", f"/console/incidents/{thread_id}", "/console/incidents/999999")
    assert status == 200
    assert "<html" in html.lower()
    assert "Lüchow-Dannenberg" in html
    assert "Aktuelle Meldungen" in html
    assert "GLÄTTE" in html  # the ended DWD incident is listed
    assert status_one == 200 and "GLÄTTE" in page
    assert missing == 404
    start = hub.proc.get("/")[1].decode("utf-8")
    assert "Keine Warnungen" in start and "GLÄTTE" not in start  # the NRW incident was never published here


def test_current_version_as_cap_xml(hub: Hub) -> None:
    """Invariant: the hub republishes the current version of an incident as valid CAP 1.2."""
    feed_dwd_and_xxe(hub)
    thread_id = dwd_thread(hub)["id"]
    status, body = hub.operator.get(f"/console/api/alerts/{thread_id}/cap.xml")
    assert status == 200
    report = Validator().check(body)
    assert report.verdict is Verdict.VALID, report.as_dict()
    assert report.cap_version == "1.2"
    assert report.alert is not None and report.alert.identifier == DWD_CURRENT
    assert hub.operator.get("/console/api/alerts/999999/cap.xml")[0] == 404
    assert hub.operator.get("/console/api/alerts/nonsense/cap.xml")[0] == 404
    assert hub.proc.get(f"/console/api/alerts/{thread_id}/cap.xml")[0] == 401  # operators only
    assert hub.proc.get(f"/api/v1/alerts/{thread_id}/cap.xml")[0] == 404  # no public copy


def test_expiry_sweep_ends_a_running_warning(hub: Hub) -> None:
    """Invariant: while the hub runs, a warning ends when its expires passes - without any new message arriving."""
    now = datetime.now(UTC).replace(microsecond=0)
    raw = cap_xml("short-lived", sent=(now - timedelta(minutes=1)).isoformat(),
                  expires=(now + timedelta(seconds=3)).isoformat())
    drop(hub.inbox, "short.xml", raw, settled=True)
    current = wait_for(lambda: hub.threads(all=False), timeout=WAIT, what="the warning to be current")
    assert current[0]["current_identifier"] == "short-lived"
    assert current[0]["state"] == "active"
    wait_for(lambda: hub.threads(all=False) == [], timeout=WAIT, what="the sweep to end the warning")
    assert hub.threads()[0]["state"] == "expired"


def test_sighup_with_broken_config_keeps_running(hub: Hub) -> None:
    """Invariant: a broken config on reload is refused and logged; the running config stays in force."""
    good = hub.config.read_text(encoding="utf-8")
    hub.config.write_text(good.replace("interval_s = 0.2", "intervall_s = 0.2"), encoding="utf-8")
    hub.proc.signal(signal.SIGHUP)
    refusal = wait_for(lambda: [m for m in hub.log_messages() if "reload refused" in m], timeout=WAIT,
                       what="the reload refusal in the log")
    assert "$.sources[0]" in refusal[0] and "intervall_s" in refusal[0]
    hub.proc.assert_alive()
    assert hub.health()["status"] == "ok"
    # and it still does its work
    drop(hub.inbox, "after-hup.xml", cap_xml("after-hup", expires="2099-01-01T00:00:00+00:00"))
    wait_for(lambda: "after-hup.xml" in hub.names(hub.done), timeout=WAIT, what="file processed after SIGHUP")


def test_sighup_with_valid_config_takes_effect(hub: Hub) -> None:
    """Invariant: a valid changed config is accepted on SIGHUP; limits take effect at once, and it is audited."""
    text = hub.config.read_text(encoding="utf-8")
    hub.config.write_text(text.replace('signature_policy = "verify"',
                                       'signature_policy = "verify"\nmax_bytes = 100000'), encoding="utf-8")
    hub.proc.signal(signal.SIGHUP)
    wait_for(lambda: "config reloaded" in hub.log_messages(), timeout=WAIT, what="'config reloaded' in the log")
    hub.proc.assert_alive()
    assert hub.health()["status"] == "ok"
    # the DWD file is ~215 kB: over the new limit, so it is now refused
    drop(hub.inbox, DWD_CHAIN[0].name, DWD_CHAIN[0].read_bytes())
    wait_for(lambda: DWD_CHAIN[0].name + ".reason.txt" in hub.names(hub.rejected), timeout=WAIT,
             what="oversized file in rejected/")
    assert "over the limit of 100000 bytes" in (hub.rejected / (DWD_CHAIN[0].name + ".reason.txt")).read_text()
    with sqlite3.connect(hub.db) as conn:
        assert conn.execute("SELECT count(*) FROM audit WHERE action='config.reload'").fetchone() == (1,)


def test_sighup_with_fixed_section_changed_needs_restart(hub: Hub) -> None:
    """Invariant: what cannot change while running ([web]) is not half-applied on SIGHUP: the hub keeps serving on
    its port and logs that a restart is needed."""
    text = hub.config.read_text(encoding="utf-8")
    hub.config.write_text(text.replace(f"port = {hub.port}", f"port = {free_port()}"), encoding="utf-8")
    hub.proc.signal(signal.SIGHUP)
    wait_for(lambda: [m for m in hub.log_messages() if "after a restart" in m and "web" in m], timeout=WAIT,
             what="'needs restart' in the log")
    assert hub.health()["status"] == "ok"  # still on the old port


def test_sigterm_stops_cleanly_and_audits(hub: Hub) -> None:
    """Invariant: SIGTERM ends the hub with exit code 0, and start and stop are in the (intact) audit log."""
    drop(hub.inbox, "before-stop.xml", cap_xml("before-stop"))
    wait_for(lambda: "before-stop.xml" in hub.names(hub.done), timeout=WAIT, what="file processed")
    assert hub.proc.stop(timeout=WAIT) == 0
    assert "stopped" in hub.log_messages()
    with Store(hub.db) as store:
        actions = [e["action"] for e in store.audit_entries()]
        assert actions == ["user.add", "hub.start", "hub.stop"]  # the fixture's console reader, then the hub
        assert store.verify_audit().ok
    # a restart opens the same store and carries on
    hub.proc.start()
    assert hub.health()["counts"]["alerts"] == 1  # type: ignore[index]
    assert hub.proc.stop(timeout=WAIT) == 0
    with Store(hub.db) as store:
        assert [e["action"] for e in store.audit_entries()] == ["user.add", "hub.start", "hub.stop", "hub.start",
                                                                  "hub.stop"]
        assert store.verify_audit().ok


def test_lost_inbox_shows_as_degraded_and_recovers(hub: Hub) -> None:
    """Invariant: "source unreachable" is never "no warnings" - a vanished inbox makes /healthz say degraded with the
    source down; once the folder is back, the source is up again and files flow."""
    shutil.rmtree(hub.inbox)
    hub.inbox.write_text("not a folder")

    def degraded() -> dict[str, object] | None:
        h = hub.health()
        return h if h["status"] == "degraded" else None

    health = wait_for(degraded, timeout=WAIT, what="/healthz to say degraded")
    source = health["sources"]["cap-inbox"]  # type: ignore[index]
    assert source["state"] == "down"
    assert source["last_error"]
    assert hub.proc.get("/healthz")[0] == 200  # the hub itself still answers
    text = hub.proc.get("/metrics")[1].decode()
    assert metric(text, "warnhub_source_up", source="cap-inbox") == 0.0
    assert "Quelle(n) gestört" in hub.proc.get("/")[1].decode("utf-8")
    hub.proc.assert_alive()

    hub.inbox.unlink()
    hub.inbox.mkdir()  # an operator recreates the folder (without done/ and rejected/)
    wait_for(lambda: hub.health()["status"] == "ok", timeout=WAIT, what="/healthz to say ok again")
    drop(hub.inbox, "after-recovery.xml", cap_xml("after-recovery", expires="2099-01-01T00:00:00+00:00"))
    wait_for(lambda: "after-recovery.xml" in hub.names(hub.done), timeout=WAIT, what="file processed after recovery")
    wait_for(lambda: hub.health()["status"] == "ok", timeout=WAIT, what="/healthz ok after processing")
    with sqlite3.connect(hub.db) as conn:
        assert conn.execute("SELECT count(*) FROM alerts WHERE identifier='after-recovery'").fetchone() == (1,)


def test_sigterm_mid_intake_leaves_nothing_half_done(tmp_path: Path) -> None:
    """Invariant: a graceful stop in the middle of a full inbox leaves every file either untouched in the inbox or
    finished (stored and moved, a rejected one with its reason); the next start takes the rest, storing each once."""
    h = Hub(tmp_path)
    h.inbox.mkdir()
    names: dict[str, bytes] = {}
    for i in range(300):
        name = f"{i:03d}.xml"
        bad = i % 10 == 9
        names[name] = b"kein XML %d" % i if bad else cap_xml(f"term-{i:03d}", expires="2099-01-01T00:00:00+00:00")
        drop(h.inbox, name, names[name], settled=True)
    try:
        h.proc.start(wait=False)
        wait_for(lambda: len(h.names(h.done)) > 20, timeout=WAIT, interval=0.01, what="some files processed")
        assert h.proc.stop(timeout=WAIT) == 0
        assert [p for p in h.inbox.iterdir() if p.is_file()], "all files were done before the stop; nothing tested"
        moved_rejected = {n for n in h.names(h.rejected) if not n.endswith(".reason.txt")}
        assert {n + ".reason.txt" for n in moved_rejected} <= h.names(h.rejected)
        with sqlite3.connect(h.db) as conn:
            stored = {r[0] for r in conn.execute("SELECT identifier FROM alerts")}
        assert {f"term-{n[:3]}" for n in h.names(h.done)} <= stored  # moved only after it was stored
        h.proc.start()
        wait_for(lambda: {p.name for p in h.inbox.iterdir() if p.is_file()} == set(), timeout=60,
                 what="the inbox to be empty after the restart")
    finally:
        h.proc.close()
    rejected = {n for n in names if n[2] == "9"}
    assert h.names(h.done) == set(names) - rejected
    assert h.names(h.rejected) == rejected | {n + ".reason.txt" for n in rejected}
    with sqlite3.connect(h.db) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT identifier) FROM alerts").fetchone() == (270, 270)


def test_a_file_renamed_into_the_inbox_is_read_without_waiting_for_the_scan(tmp_path: Path) -> None:
    """inotify: a file handed over by rename is complete, so it is read at once, although it changed a moment ago
    and the next scan is a minute away; a file written in place still waits to settle for the scan."""
    port = free_port()
    config = write_config(tmp_path, port=port, interval_s=60)
    proc = HubProcess(config, port, tmp_path / "warnhub.log")
    add_reader(tmp_path / "hub.db")
    operator = Operator(proc.base)
    try:
        proc.start()
        done = tmp_path / "inbox" / "done"
        drop(tmp_path / "inbox", DWD_CHAIN[0].name, DWD_CHAIN[0].read_bytes())  # fresh mtime, renamed in
        wait_for(lambda: (done / DWD_CHAIN[0].name).exists(), timeout=10, what="the renamed file in done/")
        (tmp_path / "inbox" / DWD_CHAIN[1].name).write_bytes(DWD_CHAIN[1].read_bytes())  # written in place
        wait_for(lambda: len(operator.threads()) == 1, timeout=10, what="a thread")
        assert (tmp_path / "inbox" / DWD_CHAIN[1].name).exists()  # not settled: left for the scan
    finally:
        proc.close()


def test_web_errors_are_logged_without_the_client_address() -> None:
    """aiohttp's "Error handling request from <IP>" keeps the error but not the address (the privacy page says so)."""
    import logging

    from hub import log as log_mod

    log_mod.setup("INFO", json_lines=True)
    record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s",
                               ("192.0.2.7",), None)
    assert logging.getLogger("aiohttp.server").filter(record)
    assert "192.0.2.7" not in record.getMessage() and record.getMessage().startswith("Error handling request")
