"""A real Mosquitto for tests and benchmarks: a free port, a temp config and persistence folder, stop and restart
on the same port (the persistent sessions survive, as on a real broker that is restarted).

No pytest here (bench/ uses it too). A missing binary is an error that says how to install it, never a skip.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/bin/mosquitto")


class MosquittoMissing(RuntimeError):
    pass


def find_binary() -> str:
    found = shutil.which("mosquitto") or next((p for p in CANDIDATES if os.access(p, os.X_OK)), None)
    if found is None:
        raise MosquittoMissing("mosquitto is not installed: run scripts/system-deps.sh (as root) to install it")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Mosquitto:
    """``start()`` / ``stop()`` / ``restart()``; ``port`` stays the same for the broker's lifetime."""

    def __init__(self, folder: Path, *, extra: str = "", port: int | None = None) -> None:
        self.binary = find_binary()
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.folder / "mosquitto.log"
        self.config = self.folder / "mosquitto.conf"

    def _write_config(self) -> None:
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.folder}/\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            f"user {getpass.getuser()}\n"  # as root, stay root: the temp folder is ours
            f"{self.extra}\n", encoding="utf-8")

    def start(self, timeout: float = 10.0) -> float:
        """Start and wait until the port accepts connections; returns that moment (time.monotonic())."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("mosquitto is already running")
        self._write_config()
        self.proc = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err.strip()} {self.tail()}")
            if accepts(self.port):
                return time.monotonic()
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not accept connections on port {self.port} within {timeout} s")

    def stop(self, *, kill: bool = False) -> None:
        """Terminate (SIGTERM: it saves its persistence file; ``kill``: SIGKILL) and wait until the port is free."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()
        deadline = time.monotonic() + 5
        while accepts(self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def restart(self) -> float:
        """Stop and start again on the same port; returns when the port accepts again (time.monotonic())."""
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
