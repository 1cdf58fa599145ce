"""A private PostgreSQL cluster for the tests: ``initdb`` in a temporary folder, run as the unprivileged ``postgres``
system user when the tests run as root (PostgreSQL refuses to run as root), on a free port of 127.0.0.1 only, and a
fresh database per test (``CREATE DATABASE ... TEMPLATE template0``, dropped after).

Debian's ``postgresql`` package brings the binaries and the user (``scripts/system-deps.sh`` installs it when missing);
a missing binary is an error that says so, never a skip. The cluster trades durability for speed (``fsync=off``):
it is thrown away at the end of the session.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg

_HINT = "PostgreSQL's server binaries are missing: run scripts/system-deps.sh (as root) first"


def _bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)),
                                       None)
    if found is None:
        raise RuntimeError(f"{name}: {_HINT}")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One running cluster; :meth:`database` makes a fresh database, :meth:`stop` ends it all."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="warnhub-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise RuntimeError(f"runuser: {_HINT}")
            shutil.chown(self.root, "postgres", "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._run(_bin("initdb"), "-D", str(self.data), "--auth=trust", "--username=postgres", "--encoding=UTF8",
                  "--no-locale", "--no-sync")
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60",
                  "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
                        " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", "start")

    def _run(self, *argv: str) -> None:
        try:
            subprocess.run([*self._as_user, *argv], check=True, capture_output=True, timeout=120)
        except subprocess.CalledProcessError as err:
            raise RuntimeError(f"{argv[0]} failed: {err.stderr.decode(errors='replace')}") from err

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new, empty database; its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
