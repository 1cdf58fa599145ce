"""Many hub nodes on one PostgreSQL (issue 16 item 2): real ``warnhub run --role`` processes on a database of the
session's private cluster (tests/kits/postgres.py), a push service in its own process (tests/kits/pushkit.py) with
a few thousand subscriptions in the district, and the invariant checker over the store, the receiver and every
node's own history log.

- Three nodes (ingest+decide, deliver, deliver+web): a CAP file dropped is pushed to every subscription exactly
  once, an SSE client on the web node sees the publication (made on another node), and a delivery node killed with
  -9 in the middle of the fan-out loses nothing: duplicates only for rows in flight at the kill.
- Two nodes with the ingest role: the directory source is polled by one of them; kill -9 it, and the other takes
  the source over within an interval and ingests the next file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.store.db import Store
from tests.kits.fanoutkit import DISTRICT, HISTORY, make_home, rx_get, start_receiver, storm
from tests.kits.hubproc import HubProcess, cap_xml, drop, free_port, wait_for
from tests.kits.invariants import check, receipts_of

N = 3000


def node_config(home: Path, name: str, *, port: int, interval_s: float | None = None) -> Path:
    """The home's config for one node: the same file but for its web port and its own history log (one machine
    here; on several machines only the roles on the command line differ). The inbox is the home's, shared."""
    text = (home / "config.toml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^port = \d+$", f"port = {port}", text)
    text = text.replace(f'history = "{HISTORY}"', f'history = "{name}-{HISTORY}"')
    text = text.replace('path = "inbox"', f'path = "{home / "inbox"}"')
    if interval_s is not None:
        text = re.sub(r"(?m)^interval_s = .*$", f"interval_s = {interval_s}", text)
    path = home / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


class Nodes:
    """The receiver, the home (subscriptions already in the store) and the nodes started in it."""

    def __init__(self, folder: Path, url: str, n: int) -> None:
        self.folder, self.url = folder, url
        self.rx, self.rx_port, subs = start_receiver(folder, n)
        port = free_port()
        self.home = make_home(folder, port, subs, 0, history=True, store_url=url).parent
        self.nodes: dict[str, HubProcess] = {}

    def start(self, name: str, roles: tuple[str, ...], *, interval_s: float | None = None) -> HubProcess:
        port = free_port()
        proc = HubProcess(node_config(self.home, name, port=port, interval_s=interval_s), port,
                          self.folder / f"{name}.log", roles=roles)
        self.nodes[name] = proc
        return proc.start()

    def histories(self) -> list[Path]:
        return [p for name in self.nodes if (p := self.home / f"{name}-{HISTORY}").exists()]

    def close(self) -> None:
        for proc in self.nodes.values():
            proc.close()
        self.rx.terminate()
        self.rx.wait(timeout=30)


@pytest.fixture
def nodes(pg_url: str) -> Iterator[Nodes]:
    folder = Path(tempfile.mkdtemp(prefix="warnhub-nodes-"))
    rig = Nodes(folder, pg_url, N)
    try:
        yield rig
    finally:
        rig.close()
        if not os.environ.get("WARNHUB_NODES_KEEP"):
            shutil.rmtree(folder, ignore_errors=True)


class SseClient:
    """Reads ``/api/v1/stream`` of a node in a thread; ``events`` are the (event, data) pairs seen so far."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.sendall(f"GET /api/v1/stream?ars={DISTRICT} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          "Accept: text/event-stream\r\n\r\n".encode())
        self.events: list[tuple[str, Any]] = []
        self.at: list[float] = []
        """When each event arrived (wall clock, as the hub stamps ``created_ms``)."""
        self.opened = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        buf = b""
        try:
            while chunk := self.sock.recv(65536):
                buf += chunk
                self.opened.set()
                for event, data in re.findall(rb"event: (\S+)\ndata: (.*)\n\n", buf):
                    self.events.append((event.decode(), json.loads(data)))
                    self.at.append(time.time())
                buf = buf[buf.rfind(b"\n\n") + 2:] if b"\n\n" in buf else buf
        except OSError:
            return

    def close(self) -> None:
        self.sock.close()


def _store_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with Store.reader(url) as store:
        return list(store.conn.execute(sql).fetchall())


def test_three_nodes_push_once_stream_on_the_web_node_and_survive_a_killed_delivery_node(nodes: Nodes) -> None:
    first = nodes.start("ingest-decide", ("ingest", "decide"))
    doomed = nodes.start("deliver", ("deliver",))
    web = nodes.start("deliver-web", ("deliver", "web"))
    assert first.get("/")[0] == 404 and doomed.get("/")[0] == 404  # no web role: /healthz only
    assert web.get("/")[0] == 200
    client = SseClient(web.port)
    try:
        assert client.opened.wait(20)
        drop(nodes.home / "inbox", "storm.xml", storm("nodes-storm"), settled=True)
        deadline = time.monotonic() + 120
        while (arrived := rx_get(nodes.rx_port, "/count")["arrived"]) < N * 0.3:
            assert time.monotonic() < deadline, f"only {arrived} of {N} arrived before the kill point"
            time.sleep(0.01)
        doomed.kill()  # SIGKILL in the middle of the fan-out
        inflight = {k for (k,) in _store_rows(nodes.url, "SELECT key FROM outbox WHERE state='inflight'")}
        published = _store_rows(nodes.url, "SELECT thread, version, created_ms FROM publications")
        assert len(published) == 1
        thread, _, created_ms = published[0]
        seen = wait_for(lambda: next((at for (e, d), at in zip(client.events, client.at, strict=False)
                                      if e == "publication" and d.get("thread") == thread), None),
                        timeout=10, what="the web node's SSE client to see the publication made on another node")
        assert seen - created_ms / 1000 <= 1.0, seen - created_ms / 1000  # within a second of being written
        # the killed node's leases run out ([push] lease_s, 30 s) and the other delivery node sends its rows
        wait_for(lambda: not _store_rows(nodes.url, "SELECT 1 FROM outbox WHERE state IN ('queued', 'inflight')"),
                 timeout=300, interval=0.5, what="every outbox row finished")
    finally:
        client.close()
    receipts = receipts_of(rx_get(nodes.rx_port, "/receipts")["receipts"])
    for proc in (first, web):
        assert proc.stop(timeout=60) == 0
    verdict = check(nodes.histories(), nodes.url, receipts, allowed=inflight, p99_limit_s=None)
    assert arrived < N  # the kill really came in the middle
    verdict.assert_holds()
    assert len({r.key for r in receipts}) == N and verdict.figures["row_states"] == {"done": N}
    assert verdict.figures["duplicates"] <= len(inflight), (verdict.figures, len(inflight))
    assert 0 < len(inflight)


def _holder(nodes: Nodes, names: tuple[str, ...]) -> str | None:
    """Which node logged last that it holds the directory source's lock (None: none yet)."""
    held = [(line.get("ts", ""), name) for name in names for line in nodes.nodes[name].log_lines()
            if "holds source.cap-inbox" in str(line.get("msg", ""))]
    return max(held)[1] if held else None


def test_the_source_moves_to_another_ingest_node_within_an_interval_when_its_poller_dies(nodes: Nodes) -> None:
    interval = 1.0
    names = ("one", "two")
    for name in names:
        nodes.start(name, ("ingest", "decide"), interval_s=interval)
    holder = wait_for(lambda: _holder(nodes, names), timeout=30, what="a node to hold the source")
    drop(nodes.home / "inbox", "a.xml", cap_xml("nodes-a"), settled=True)
    wait_for(lambda: _store_rows(nodes.url, "SELECT 1 FROM alerts WHERE identifier='nodes-a'"), timeout=30,
             what="the first file ingested")
    other = next(n for n in names if n != holder)
    killed_at = time.monotonic()
    nodes.nodes[holder].proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    wait_for(lambda: _holder(nodes, (other,)), timeout=30, interval=0.02, what="the other node to take the source")
    took_s = time.monotonic() - killed_at
    assert took_s <= interval + 1.0, took_s  # one interval, and a second for the server to see the socket close
    drop(nodes.home / "inbox", "b.xml", cap_xml("nodes-b"), settled=True)
    wait_for(lambda: _store_rows(nodes.url, "SELECT 1 FROM alerts WHERE identifier='nodes-b'"), timeout=30,
             what="the next file ingested by the other node")
    assert _store_rows(nodes.url, "SELECT count(*) FROM alerts") == [(2,)]
