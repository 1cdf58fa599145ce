"""Test helpers: hand-made CAP 1.2 documents, and the real ``warnhub run`` daemon as a subprocess.

The daemon runs exactly as an operator starts it (``python -m hub.cli run --config ...``) with a config written into
a temporary folder, a web port chosen free beforehand, and its log captured to a file the test can read.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tests.kits import paths

REPO = paths.REPO
DATA = paths.DATA
CAP_DIR = DATA / "cap"
CAP_INVALID_DIR = DATA / "cap_invalid"

DWD_CHAIN = [
    CAP_DIR / "de_dwd_wdr-unwetter_alert1_glaette.xml",
    CAP_DIR / "de_dwd_wdr-unwetter_alert1_update1.xml",
    CAP_DIR / "de_dwd_wdr-unwetter_alert1_update2.xml",
    CAP_DIR / "de_dwd_wdr-unwetter_alert1_update3.xml",
]
DWD_CURRENT = "2.49.0.1.276.0.DWD.PVW.1548227760000.37675b39-40cd-441f-a5ce-f1f3b7df81a1.DEU"
XXE = CAP_INVALID_DIR / "google_xxe_attack.xml"

T = TypeVar("T")


# -- hand-made CAP ----------------------------------------------------------------------------------------------


def cap_xml(identifier: str, *, sender: str = "test@warnhub.example", sent: str = "2030-01-01T10:00:00+01:00",
            msg_type: str = "Alert", references: str | None = None, expires: str | None = "2030-01-01T18:00:00+01:00",
            headline: str = "Testwarnung", status: str = "Actual") -> bytes:
    """A small CAP 1.2 alert that validates as ``valid``; ``expires=None`` leaves the info without an end."""
    refs = f"  <references>{references}</references>\n" if references else ""
    exp = f"    <expires>{expires}</expires>\n" if expires else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">\n'
        f"  <identifier>{identifier}</identifier>\n"
        f"  <sender>{sender}</sender>\n"
        f"  <sent>{sent}</sent>\n"
        f"  <status>{status}</status>\n"
        f"  <msgType>{msg_type}</msgType>\n"
        "  <scope>Public</scope>\n"
        f"{refs}"
        "  <info>\n"
        "    <language>de-DE</language>\n"
        "    <category>Safety</category>\n"
        "    <event>Test</event>\n"
        "    <urgency>Immediate</urgency>\n"
        "    <severity>Moderate</severity>\n"
        "    <certainty>Observed</certainty>\n"
        f"{exp}"
        f"    <headline>{headline}</headline>\n"
        "    <area>\n"
        "      <areaDesc>Landkreis Lüchow-Dannenberg</areaDesc>\n"
        "    </area>\n"
        "  </info>\n"
        "</alert>\n"
    ).encode()


def ref(identifier: str, sent: str, sender: str = "test@warnhub.example") -> str:
    return f"{sender},{identifier},{sent}"


# -- waiting ----------------------------------------------------------------------------------------------------


def wait_for(check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except (OSError, ValueError) as err:  # not up yet, file half moved, JSON of a dying server...
            last = err
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


async def until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """:func:`wait_for` for async tests: ``check`` (blocking, e.g. a sqlite read or an HTTP GET) runs in a thread,
    every 0.2 s, until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def drop(inbox: Path, name: str, data: bytes, *, settled: bool = False) -> Path:
    """Deliver a file the way a real receiver does: write under a hidden temporary name, then rename.

    ``settled=True`` back-dates the file's mtime so the source does not wait for it to settle."""
    tmp = inbox / f".{name}.part"
    tmp.write_bytes(data)
    if settled:
        past = time.time() - 10
        os.utime(tmp, (past, past))
    target = inbox / name
    os.rename(tmp, target)
    return target


# -- config -----------------------------------------------------------------------------------------------------


def write_config(folder: Path, *, port: int, inbox: str = "inbox", db: str = "hub.db", sweep_interval_s: float = 1,
                 interval_s: float = 0.2, name: str = "Landkreis Lüchow-Dannenberg", extra: str = "",
                 store_url: str | None = None) -> Path:
    """A daemon config in ``folder``; relative paths resolve against it. ``store_url``: the store in that
    PostgreSQL database (``[store] url``) instead of the SQLite file ``db``."""
    text = f"""\
[hub]
name = "{name}"
district_ars = "033540000000"
db = "{db}"
log_level = "INFO"

[store]
{f'url = "{store_url}"' if store_url else ""}
synchronous = "NORMAL"
max_age_without_expires_h = 48
sweep_interval_s = {sweep_interval_s}

[validation]
signature_policy = "verify"

[web]
host = "127.0.0.1"
port = {port}

[[sources]]
type = "directory"
name = "cap-inbox"
path = "{inbox}"
interval_s = {interval_s}
{extra}"""
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


# -- the daemon -------------------------------------------------------------------------------------------------


def subprocess_env() -> dict[str, str]:
    """The environment for ``python -m hub.cli``: this checkout first on the path, so the process (and the workers
    it spawns) run the code under test even when ``pip install -e`` points at another clone."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, PYTHONUNBUFFERED="1")


class HubProcess:
    """``warnhub run`` as a child process; stdout+stderr go to ``log_path``. Always :meth:`close` it at the end."""

    def __init__(self, config: Path, port: int, log_path: Path, *, roles: Sequence[str] = ()) -> None:
        self.config = config
        self.port = port
        self.log_path = log_path
        self.roles = tuple(roles)
        """``warnhub run --role`` for each (none: all roles)."""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True) -> HubProcess:
        log = self.log_path.open("ab")
        env = subprocess_env()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "run", "--config", str(self.config),
             *(a for role in self.roles for a in ("--role", role))],
            cwd=str(self.config.parent), stdout=log, stderr=subprocess.STDOUT, env=env,
        )
        log.close()
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 30) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            self.assert_alive()
            status, body = self.get("/healthz")
            return json.loads(body) if status == 200 else None

        return wait_for(ready, timeout=timeout, what=f"/healthz of warnhub on port {self.port}")

    def assert_alive(self) -> None:
        assert self.proc is not None
        code = self.proc.poll()
        if code is not None:
            raise AssertionError(f"warnhub exited with {code}; log:\n{self.log()[-4000:]}")

    def get(self, path: str, timeout: float = 10) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def get_json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, (path, status, body[:500])
        return json.loads(body)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait (bounded) for the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        """Teardown: SIGTERM (so worker processes are shut down too), SIGKILL if that does not end it in time."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL if still running (teardown; also the crash under test)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_lines(self) -> list[dict[str, Any]]:
        """The daemon's JSON log lines (stderr is not a terminal, so it logs JSON)."""
        out = []
        for line in self.log().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                out.append(entry)
        return out
