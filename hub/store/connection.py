"""The store's connection: opening the SQLite file (WAL) or a PostgreSQL database (``[store] url``, see
:mod:`hub.store.pg` and :mod:`hub.store.dialect`), one writer's transactions, and bringing the schema up to date
(:mod:`hub.store.migrations`) before anything else touches it."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Self, cast

from hub.errors import StoreError, StoreFull
from hub.store import dialect
from hub.store.migrations import run as migrations

_SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN = 10, 13, 14
PROBE_BYTES = 16384
"""What the write probe writes: about one stored alert, so a probe that succeeds means an alert would fit."""
WRITER_LOCK = "SELECT pg_advisory_xact_lock(hashtext('warnhub.store.writer'))"
"""PostgreSQL: the one "store writer" lock every write transaction takes (but the parallel ones, see
:meth:`Connection.transaction`), so writers on many nodes follow one another as SQLite's ``BEGIN IMMEDIATE`` makes
them: READ COMMITTED alone would let two nodes append to the audit chain or number a thread's versions at once."""


def write_failure(err: BaseException) -> bool:
    """Whether an error says the store's disk is full or failing (not a bug or a lock)."""
    code = getattr(err, "sqlite_errorcode", None)
    sqlstate = getattr(err.__cause__, "sqlstate", None)  # PostgreSQL (hub.store.pg keeps its error as the cause)
    if sqlstate is not None:
        return str(sqlstate) in ("53100", "58030")  # disk_full, io_error
    if code is not None:
        return code & 0xFF in (_SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN)
    return isinstance(err, OSError) and err.errno in (28, 5, 122)  # ENOSPC, EIO, EDQUOT


def store_full(err: BaseException, path: Path | str) -> StoreFull:
    return StoreFull(f"{path}: Speicher voll oder nicht beschreibbar / store cannot write: {err}")


class Connection:
    """One connection to the store (the SQLite file, or PostgreSQL when ``path`` is a ``postgresql://`` URL), its
    transactions and its migrations; use from one thread.

    The base of :class:`hub.store.db.Store` (which adds what is stored); opening a database for writing brings its
    schema up to date (:mod:`hub.store.migrations`). ``conn`` has sqlite3's surface on both (:mod:`hub.store.pg`);
    ``url`` is the PostgreSQL URL, None on SQLite."""

    url: str | None = None
    _locked = False
    """PostgreSQL: the open transaction holds the store writer's lock."""

    def __init__(self, path: Path | str, *, synchronous: str = "NORMAL",
                 max_age_without_expires: timedelta | None = timedelta(hours=48)) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise StoreError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self.max_age_without_expires = max_age_without_expires
        if dialect.is_url(path):
            self._open_pg(str(path), read_only=False)
            self._migrate()
            return
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        if str(path) != ":memory:":
            conn.execute("PRAGMA journal_mode=wal")
        self.synchronous = synchronous
        self._durable = False
        self.as_on_disk = False
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        self.conn = conn
        self._migrate()

    @classmethod
    def reader(cls, path: Path | str, *, max_age_without_expires: timedelta | None = timedelta(hours=48),
               on_full_disk: bool = False) -> Self:
        """A read-only connection to an existing store file: no migration, no writes, no file created.

        ``on_full_disk``: where even reading fails because SQLite cannot create the WAL's shared-memory file (a full
        disk, the hub not running), read the file as it is on disk (``immutable``; commits still in the WAL of a hub
        that crashed are not seen) instead of failing. For the read-only commands."""
        self = cls.__new__(cls)
        self.max_age_without_expires = max_age_without_expires
        if dialect.is_url(path):
            self._open_pg(str(path), read_only=True)
            return self
        self.path = Path(path)
        if not self.path.exists():
            raise StoreError(f"{path}: kein Speicher / no store (the hub has not run here yet)")
        conn, self.as_on_disk = _open_read_only(self.path, on_full_disk=on_full_disk)
        conn.execute("PRAGMA query_only=1")
        self.conn = conn
        self.synchronous = "NORMAL"
        self._durable = False
        return self

    def _open_pg(self, url: str, *, read_only: bool) -> None:
        """PostgreSQL: a pooled connection (a reader's refuses writes); its commits are durable (``durable`` needs
        nothing more), and ``path`` is the URL without its password, for messages."""
        from hub.store.pg import PgConn  # psycopg is loaded only by a hub that stores in PostgreSQL
        self.url = url
        self.path = _shown(url)  # type: ignore[assignment]  # a URL names the store in messages, as a path does
        self.conn = cast(sqlite3.Connection, PgConn(url, read_only=read_only))
        self.synchronous = "FULL"
        self._durable = False
        self.as_on_disk = False

    # -- lifecycle -----------------------------------------------------------------------------------------

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self, *, durable: bool = False, parallel: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``); inside another, a savepoint, so a function that writes in
        its own transaction can be part of a caller's (an operator's warning and its decision, stored together):
        an error rolls back the inner part, and the outer transaction decides what is committed.

        ``durable=True``: the commit is on disk when this returns, even when the store runs ``synchronous=NORMAL``
        (there a power cut may take the last commits): it runs under ``synchronous=FULL``, so SQLite fsyncs the
        WAL before COMMIT returns. Use it before telling a sender "stored" (moving its file to done/, the
        console's "sent"). Only an outermost transaction can be durable (SQLite cannot change the level inside
        one): a durable part inside an ordinary transaction is a StoreError.

        ``parallel=True`` (PostgreSQL; nothing changes on SQLite): the transaction does not take the store writer's
        lock (:data:`WRITER_LOCK`), so it runs beside other nodes' writes. Only for writes that lock the rows they
        change and read nothing another writer may be changing (the outbox claim with ``FOR UPDATE SKIP LOCKED``,
        recording the outcome of rows this node holds). A part that is not parallel inside one takes the lock."""
        if self.conn.in_transaction:
            if durable and not self._durable:
                raise StoreError("a durable write must be the outermost transaction (or inside a durable one)")
            if self.url is not None and not parallel and not self._locked:
                self.conn.execute(WRITER_LOCK)
                self._locked = True
            yield from self._savepoint()
            return
        if self.url is not None:
            yield from self._pg_transaction(durable, parallel)
            return
        full = durable and self.synchronous != "FULL"
        if full:
            self.conn.execute("PRAGMA synchronous=FULL")
        self._durable = durable
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            yield from self._commit_or_roll_back()
        finally:
            self._durable = False
            if full:
                self.conn.execute(f"PRAGMA synchronous={self.synchronous}")

    def _pg_transaction(self, durable: bool, parallel: bool) -> Iterator[sqlite3.Connection]:
        """PostgreSQL: READ COMMITTED, under the store writer's lock unless ``parallel``; every commit is durable
        (``synchronous_commit`` is on). The lock is the transaction's: COMMIT or ROLLBACK releases it."""
        self._durable = durable
        try:
            self.conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            self._locked = not parallel
            if self._locked:
                self.conn.execute(WRITER_LOCK)
            yield from self._commit_or_roll_back()
        finally:
            self._durable = False
            self._locked = False

    def _commit_or_roll_back(self) -> Iterator[sqlite3.Connection]:
        """The body of an outermost transaction on either backend: COMMIT when it ends, ROLLBACK when it raises."""
        try:
            yield self.conn
        except BaseException:
            if self.conn.in_transaction:  # SQLite rolls back by itself on SQLITE_FULL; a ROLLBACK then hides why
                self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def _savepoint(self) -> Iterator[sqlite3.Connection]:
        name = f"sp{id(object())}"
        self.conn.execute(f"SAVEPOINT {name}")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute(f"ROLLBACK TO {name}")
            self.conn.execute(f"RELEASE {name}")
            raise
        else:
            self.conn.execute(f"RELEASE {name}")

    def probe_write(self, at: str) -> None:
        """Write and commit (durably) about one alert's worth: the store's health is that a write succeeds, not that
        a read does. Raises :class:`StoreFull` when the disk refuses it."""
        try:
            with self.transaction(durable=True) as conn:
                conn.execute("INSERT INTO store_probe (id, at, pad) VALUES (1, ?, zeroblob(?))"
                             " ON CONFLICT(id) DO UPDATE SET at=excluded.at, pad=excluded.pad", (at, PROBE_BYTES))
        except sqlite3.OperationalError as err:
            if write_failure(err):
                raise store_full(err, self.path) from err
            raise

    def _migrate(self) -> None:
        """Bring the database to the newest schema (see :mod:`hub.store.migrations`): nothing to do and nothing
        written when it is there already; else every newer migration in one durable transaction."""
        if migrations.version_of(self.conn, self.path) == migrations.LATEST:
            return
        with self.transaction(durable=True) as conn:
            migrations.apply(conn, self.path)


def _shown(url: str) -> str:
    """A PostgreSQL URL without its password."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


def _open_read_only(path: Path, *, on_full_disk: bool) -> tuple[sqlite3.Connection, bool]:
    """A read-only connection, and whether it reads the file as it is on disk (immutable, the fallback)."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                           check_same_thread=False, timeout=30)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn, False
    except sqlite3.OperationalError as err:
        conn.close()
        if not (on_full_disk and write_failure(err)):
            raise
    return sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True, isolation_level=None,
                           check_same_thread=False), True
