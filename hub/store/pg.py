"""The store on PostgreSQL: a connection with the surface the hub uses of :class:`sqlite3.Connection`.

:class:`PgConn` takes one connection from a :class:`psycopg_pool.ConnectionPool` (one pool per URL in the process,
shared by the writer and the readers of :class:`hub.store.db.AsyncStore`) and offers ``execute``/``executemany``
returning cursors with ``fetchone``/``fetchall``/``rowcount``/``lastrowid`` and tuples back, ``in_transaction`` and
``close``; every statement goes through :func:`hub.store.dialect.translate`. The connection is in autocommit, as the
SQLite one (``isolation_level=None``): :class:`hub.store.connection.Connection` opens transactions itself.

Errors keep sqlite3's classes (an integrity error is :class:`sqlite3.IntegrityError`, a failing server
:class:`sqlite3.OperationalError`), so the hub catches one set of errors whatever the store is; the psycopg error is
the ``__cause__``.
"""

from __future__ import annotations

import decimal
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import Loader
from psycopg_pool import ConnectionPool

from hub.store import dialect

_pools: dict[str, tuple[ConnectionPool, int]] = {}
_pools_lock = threading.Lock()


class _Cursor(psycopg.Cursor[Any]):
    lastrowid: int | None = None


class _NumericLoader(Loader):
    """``numeric`` (what ``sum`` of integers gives) as int when whole, else float: what SQLite gives back."""

    def load(self, data: Any) -> int | float:
        value = decimal.Decimal(bytes(data).decode())
        return int(value) if value == value.to_integral_value() else float(value)


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.autocommit = True
    conn.adapters.register_loader("numeric", _NumericLoader)


def _reset(conn: psycopg.Connection[Any]) -> None:
    conn.execute("RESET ALL")


def _pool(url: str, size: int) -> ConnectionPool:
    with _pools_lock:
        pool, users = _pools.get(url, (None, 0))
        if pool is None:
            pool = ConnectionPool(url, min_size=1, max_size=size, configure=_configure, reset=_reset, open=True,
                                  kwargs={"cursor_factory": _Cursor}, name="warnhub-store")
        _pools[url] = (pool, users + 1)
        return pool


def _release(url: str, pool: ConnectionPool, conn: psycopg.Connection[Any]) -> None:
    pool.putconn(conn)
    with _pools_lock:
        _, users = _pools[url]
        if users > 1:
            _pools[url] = (pool, users - 1)
            return
        del _pools[url]
    pool.close()


def _mapped(err: psycopg.Error) -> sqlite3.Error:
    if isinstance(err, psycopg.errors.IntegrityError):
        return sqlite3.IntegrityError(str(err))
    if isinstance(err, psycopg.OperationalError | psycopg.errors.InternalError):
        return sqlite3.OperationalError(str(err))
    return sqlite3.DatabaseError(str(err))


class PgConn:
    """One pooled PostgreSQL connection with sqlite3's surface (see the module's docstring); one thread at a time."""

    dialect = dialect.POSTGRESQL

    def __init__(self, url: str, *, read_only: bool = False, pool_size: int = 10) -> None:
        self.url = url
        self._pool = _pool(url, pool_size)
        self._read_only = read_only
        self._conn: psycopg.Connection[Any] | None = self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        conn = self._pool.getconn()
        if self._read_only:
            conn.execute("SET default_transaction_read_only = on")
        return conn

    @property
    def raw(self) -> psycopg.Connection[Any]:
        """The connection; one the server dropped (a restart, a fail-over) is replaced by a new one from the pool
        before the next statement: the statement that met the loss failed, the hub's next try works."""
        if self._conn is None:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        if self._conn.broken:
            self._pool.putconn(self._conn)  # the pool discards a broken connection
            self._conn = None
            self._conn = self._connect()
        return self._conn

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> _Cursor:
        st = dialect.translate(sql)
        cur = self.raw.cursor()
        assert isinstance(cur, _Cursor)
        try:
            cur.execute(st.sql, _args(st, params))
        except psycopg.Error as err:
            raise _mapped(err) from err
        if st.returns_id:
            rows = cur.fetchall()
            cur.lastrowid = int(rows[-1][0]) if rows else None
        return cur

    def executemany(self, sql: str, seq: Iterable[Sequence[Any] | Mapping[str, Any]]) -> _Cursor:
        st = dialect.translate(sql)
        cur = self.raw.cursor()
        assert isinstance(cur, _Cursor)
        try:
            cur.executemany(st.sql, [_args(st, params) for params in seq])
        except psycopg.Error as err:
            raise _mapped(err) from err
        return cur

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if conn.info.transaction_status != pq.TransactionStatus.IDLE:
            conn.rollback()
        _release(self.url, self._pool, conn)


def _args(st: dialect.Statement, params: Sequence[Any] | Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
    if isinstance(params, Mapping):
        return params
    args = list(params) if st.order is None else [params[i] for i in st.order]
    if st.text_params:
        indexes = st.order if st.order is not None else range(len(args))
        args = [a.decode() if isinstance(a, bytes | bytearray) and i in st.text_params else a
                for i, a in zip(indexes, args, strict=True)]
    return args
