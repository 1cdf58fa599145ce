"""Public endpoints cannot starve the hub of file descriptors: the real daemon (``warnhub run``) under
``prlimit --nofile=256:256`` with 300 stream clients that never read, and the stream limits per address and in
total.

Invariants: while web clients hold every connection they can get, intake stores a dropped CAP file, ``/healthz``
answers, a publication appears on a fresh request, and asyncio's accept-error line is not logged thousands of times;
a stream over a limit is refused with 503 and ``Retry-After``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.web.fdlimit import ACCEPT_ERROR, AcceptErrorFilter, FdBudget
from tests.e2e.test_routing import Hub, dwd_cap
from tests.kits.hubproc import HubProcess, drop, subprocess_env, wait_for

DISTRICT = "033540000000"
CLIENTS = 300
FIRST = 5
STREAM_GET = f"GET /api/v1/stream?ars={DISTRICT} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"


class LimitedProcess(HubProcess):
    """The daemon under ``prlimit --nofile=N:N`` (soft and hard limit, so it cannot raise it)."""

    nofile = 256

    def start(self, *, wait: bool = True) -> HubProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            ["prlimit", f"--nofile={self.nofile}:{self.nofile}", "--",
             sys.executable, "-m", "hub.cli", "run", "--config", str(self.config)],
            cwd=str(self.config.parent), stdout=log, stderr=subprocess.STDOUT, env=subprocess_env())
        log.close()
        if wait:
            self.wait_healthy()
        return self


def hub_with(tmp: Path, web: str, *, limited: bool) -> Hub:
    hub = Hub(tmp)
    text = hub.config.read_text(encoding="utf-8")
    hub.config.write_text(text.replace(f"port = {hub.port}\n", f"port = {hub.port}\n{web}", 1), encoding="utf-8")
    if limited:
        hub.proc = LimitedProcess(hub.config, hub.port, tmp / "hub.log")
    return hub


@contextlib.contextmanager
def clients() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for s in opened:
            s.close()


def open_stream(port: int, source: str = "127.0.0.1") -> socket.socket:
    """A client that asks for the stream and never reads (a small receive buffer fills at once)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    try:
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(STREAM_GET.encode())
    except OSError:
        s.close()
        raise
    return s


def status_line(s: socket.socket, timeout: float = 10) -> str:
    s.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode("latin-1")


def test_accept_error_line_is_rate_limited() -> None:
    now = [0.0]
    flt = AcceptErrorFilter(10.0, clock=lambda: now[0])
    record = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, ACCEPT_ERROR, None, None)
    passed = sum(flt.filter(logging.makeLogRecord(record.__dict__)) for _ in range(5000))
    assert passed == 1 and flt.suppressed == 4999
    now[0] = 10.0
    later = logging.makeLogRecord(record.__dict__)
    assert flt.filter(later) and "4999 more" in later.getMessage()
    other = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "Task exception was never retrieved", None, None)
    assert flt.filter(other)  # every other line passes


def test_fd_budget_counts_and_reserve() -> None:
    budget = FdBudget(10, count=lambda: budget.limit - 25, clock=lambda: 0.0)
    assert budget.free() == 25 and not budget.low() and budget.low(3)
    budget.took(20)  # connections since the count
    assert budget.free() == 5 and budget.low()


def test_streams_are_limited_per_address_and_in_total(tmp_path: Path) -> None:
    hub = hub_with(tmp_path, "max_streams = 3\nmax_streams_per_address = 2\n", limited=False)
    try:
        hub.proc.start()
        with clients() as opened:
            for _ in range(2):
                opened.append(open_stream(hub.port))
                assert " 200 " in status_line(opened[-1]).splitlines()[0]
            opened.append(open_stream(hub.port))
            refused = status_line(opened[-1])
            assert " 503 " in refused.splitlines()[0] and "Retry-After: 30" in refused, refused
            opened.append(open_stream(hub.port, "127.0.0.2"))  # another address: its own share, up to the total
            assert " 200 " in status_line(opened[-1]).splitlines()[0]
            opened.append(open_stream(hub.port, "127.0.0.2"))
            refused = status_line(opened[-1])
            assert " 503 " in refused.splitlines()[0] and "Retry-After:" in refused, refused
            opened.pop(0).close()  # a stream ends: its place is free again

            def admitted() -> bool:
                s = open_stream(hub.port)
                opened.append(s)
                return " 200 " in status_line(s).splitlines()[0]

            wait_for(admitted, timeout=20, what="a stream admitted after another ended")
            assert hub.health()["status"] == "ok"
            # both refusals are counted for the operators, by route
            metrics = hub.proc.get("/metrics")[1].decode()
            found = re.search(r'warnhub_web_refused_total\{route="/api/v1/stream",status="503"\} (\d+)', metrics)
            assert found and int(found[1]) >= 2, metrics  # the two above, and those while waiting for a place
    finally:
        hub.proc.close()


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit (util-linux) is part of the test environment")
def test_intake_health_and_publishing_survive_300_never_reading_streams_at_256_files(tmp_path: Path) -> None:
    hub = hub_with(tmp_path, "max_streams = 100000\nmax_streams_per_address = 100000\n", limited=True)
    try:
        hub.proc.start()
        assert hub.proc.get_json(f"/api/v1/warnings?ars={DISTRICT}")["warnings"] == []
        with clients() as opened:
            first = []  # a few streams one after the other, each answered before the next: served while fds are free
            for _ in range(FIRST):
                opened.append(open_stream(hub.port))
                first.append(status_line(opened[-1]))
            for _ in range(CLIENTS - FIRST):  # then the flood, never read
                with contextlib.suppress(OSError):  # a full listen backlog may time a connect out
                    opened.append(open_stream(hub.port))
            assert len(opened) >= CLIENTS * 0.9
            time.sleep(0)  # the hub has them now (or refuses them); nothing below waits on a fixed time

            sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
            drop(hub.inbox, "during-flood.xml", dwd_cap("during-flood-1", severity="Moderate", sent=sent))

            def published() -> bool:  # a fresh request; before the flood there was no warning at all
                status, body = hub.proc.get(f"/api/v1/warnings?ars={DISTRICT}")
                return status == 200 and "STURMBÖEN" in json.dumps(json.loads(body)["warnings"], ensure_ascii=False)

            wait_for(published, timeout=60, what="the warning dropped during the flood, published")
            assert hub.proc.get_json("/healthz")["status"] in ("ok", "degraded")
            assert hub.decided("during-flood-1") is not None  # stored and decided

            assert all(" 200 " in a.split("\r\n", 1)[0] for a in first), first  # served before the flood
            answers = [status_line(s, timeout=2) for s in opened[FIRST:CLIENTS]]
            refused = sum(" 503 " in a.split("\r\n", 1)[0] for a in answers)
            assert refused > 0, refused  # the flood reached the reserve (how many were served first depends on timing)
        log = hub.proc.log()
        assert log.count(ACCEPT_ERROR) < 5, log.count(ACCEPT_ERROR)
        assert "Too many open files" not in log
    finally:
        hub.proc.close()


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit (util-linux) is part of the test environment")
def test_clients_that_only_connect_are_let_go_and_intake_never_stops(tmp_path: Path) -> None:
    hub = hub_with(tmp_path, "", limited=True)
    try:
        hub.proc.start()
        with clients() as opened:
            for _ in range(CLIENTS):
                with contextlib.suppress(OSError):
                    s = socket.create_connection(("127.0.0.1", hub.port), timeout=5)
                    opened.append(s)  # and never sends a byte
            sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
            drop(hub.inbox, "while-idle.xml", dwd_cap("while-idle-1", severity="Moderate", sent=sent))
            wait_for(lambda: hub.decided("while-idle-1"), timeout=60, what="the alert dropped while clients idle")

            def healthy() -> bool:  # the silent ones are closed after a while: the web answers again
                status, body = hub.proc.get("/healthz", timeout=5)
                return status == 200 and json.loads(body)["status"] == "ok"

            wait_for(healthy, timeout=60, what="/healthz after the silent connections were closed")
            opened[0].settimeout(10)
            with contextlib.suppress(ConnectionResetError):
                assert opened[0].recv(100) == b""  # the hub hung up on the first silent client
        log = hub.proc.log()
        assert log.count(ACCEPT_ERROR) < 5 and "Too many open files" not in log
    finally:
        hub.proc.close()
