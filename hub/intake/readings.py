"""Sensors and their readings, in the store's SQLite (tables ``sensors`` and ``readings``).

A reading is one value of one sensor at one time. Times are integers, milliseconds since the epoch (UTC): exact,
compact and fast to compare; the API shows them as ISO 8601. ``readings`` is keyed on (sensor, time), so a
reading delivered twice (an MQTT redelivery after a reconnect) is stored once.

A sensor's state follows from its newest reading alone: ``never`` (no reading yet), ``stale`` (the newest reading
is older than the sensor's ``interval_s``: a stale gauge is not a calm river) or ``ok``. The API computes it when
asked, so it is right even while no source runs.

Every function takes the :class:`~hub.store.db.Store` and runs on its one writer thread (``AsyncStore.run``). The
tables are in hub/store/schema.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from hub.store.db import Store

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def ms_of(value: datetime) -> int:
    """Epoch milliseconds of a timezone-aware datetime, exactly (no float rounding)."""
    return (value - _EPOCH) // _MS


def iso_ms(ms: int | None) -> str | None:
    """``2024-05-19T13:18:00.250+00:00`` for a time in epoch milliseconds."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def sensor_state(last_ts: int | None, interval_s: float, now: int) -> str:
    """``never``, ``stale`` or ``ok``: the one rule for the API, health and the stale gauge."""
    if last_ts is None:
        return "never"
    return "stale" if now - last_ts > interval_s * 1000 else "ok"


@dataclass(frozen=True, slots=True)
class SensorRow:
    """A sensor as configured (what :func:`register` writes)."""

    id: str
    kind: str
    unit: str
    lat: float
    lon: float
    ars: str | None
    topic: str
    interval_s: float


@dataclass(frozen=True, slots=True)
class Registered:
    last_ts: dict[str, int | None]
    """Newest reading time of each configured sensor (None: never)."""
    old_topics: list[str]
    """Topics of this source's sensors that are no longer configured (to unsubscribe)."""
    taken_over: list[tuple[str, str]]
    """(sensor id, other source) for sensor ids another source had registered."""


def register(store: Store, source: str, sensors: Sequence[SensorRow], now: int | None = None) -> Registered:
    """Record a source's configured sensors (keeping their readings and counts); mark its others unconfigured."""
    if not sensors:
        raise ValueError("a source registers at least one sensor")
    stamp = now_ms() if now is None else now
    ids = [s.id for s in sensors]
    with store.transaction() as conn:
        marks = ",".join("?" * len(ids))
        owners = dict(conn.execute(f"SELECT id, source FROM sensors WHERE id IN ({marks})", ids).fetchall())
        taken = [(i, owners[i]) for i in ids if i in owners and owners[i] != source]
        conn.executemany(
            "INSERT INTO sensors (id, source, kind, unit, lat, lon, ars, topic, interval_s, configured, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,1,?) ON CONFLICT(id) DO UPDATE SET source=excluded.source,"
            " kind=excluded.kind, unit=excluded.unit, lat=excluded.lat, lon=excluded.lon, ars=excluded.ars,"
            " topic=excluded.topic, interval_s=excluded.interval_s, configured=1, updated_at=excluded.updated_at",
            [(s.id, source, s.kind, s.unit, s.lat, s.lon, s.ars, s.topic, s.interval_s, stamp) for s in sensors])
        conn.execute(f"UPDATE sensors SET configured=0, updated_at=? WHERE source=? AND configured=1"
                     f" AND id NOT IN ({marks})", (stamp, source, *ids))
        old = [r[0] for r in conn.execute(
            "SELECT DISTINCT topic FROM sensors WHERE source=? AND configured=0", (source,))]
        last = {r[0]: r[1] for r in conn.execute(
            f"SELECT id, last_ts FROM sensors WHERE id IN ({marks})", ids)}
    return Registered(last_ts={i: last.get(i) for i in ids}, old_topics=old, taken_over=taken)


@dataclass(frozen=True, slots=True)
class BatchResult:
    stored: int
    """New readings written."""
    duplicates: int
    """Readings already held (same sensor and time), not written again."""
    newest: dict[str, int]
    """Newest reading time per sensor in the batch (whether or not it was new)."""


def add_batch(store: Store, readings: Sequence[tuple[str, int, float, str, int]],
              malformed: Iterable[tuple[str, str, int]] = ()) -> BatchResult:
    """Write readings ``(sensor_id, ts_ms, value, unit, received_ms)`` and count malformed payloads
    ``(sensor_id, reason, received_ms)``, all in one transaction. Readings already held are ignored.

    The readings go to SQLite as one JSON array in one INSERT (a trigger keeps each sensor's newest reading),
    which is its own transaction unless malformed counts join it. Few statements matter more than their size:
    each releases the GIL, and while paho's thread is busy, taking it back can wait for the interpreter's
    switch interval (5 ms); ``executemany`` does that for every row. JSON carries the floats exactly (shortest
    round-trip form both ways).
    """
    newest: dict[str, int] = {}
    for sensor_id, ts, _value, _unit, _received in readings:
        if ts > newest.get(sensor_id, -1):
            newest[sensor_id] = ts
    bad: dict[str, list[Any]] = {}
    for sensor_id, reason, received in malformed:
        entry = bad.setdefault(sensor_id, [0, reason, received])
        entry[0] += 1
        entry[1], entry[2] = reason, received
    stored = 0
    if not bad:
        if readings:
            stored = store.conn.execute(_INSERT, (_json(readings),)).rowcount
    else:
        with store.transaction() as conn:
            if readings:
                stored = conn.execute(_INSERT, (_json(readings),)).rowcount
            conn.execute(_MALFORMED, (_json([(k, *v) for k, v in bad.items()]),))
    return BatchResult(stored, len(readings) - stored, newest)


_json = msgspec.json.encode


_TYPES = {"ts": "BIGINT", "received_at": "BIGINT", "n": "BIGINT", "r": "BIGINT", "value": "DOUBLE PRECISION"}


def _cols(*names: str) -> str:
    """Columns from a JSON array per row; numbers cast (PostgreSQL reads JSON as text, see hub.store.dialect)."""
    return ", ".join(f"CAST(json_extract(value, '$[{i}]') AS {_TYPES[name]}) AS {name}" if name in _TYPES
                     else f"json_extract(value, '$[{i}]') AS {name}" for i, name in enumerate(names))


_INSERT = ("INSERT OR IGNORE INTO readings (sensor_id, ts, value, unit, received_at) SELECT * FROM"
           f" (SELECT {_cols('sensor_id', 'ts', 'value', 'unit', 'received_at')} FROM json_each(?1)) AS r")
_MALFORMED = ("UPDATE sensors SET malformed = malformed + n.n, last_malformed=n.reason, last_malformed_at=n.r"
              f" FROM (SELECT {_cols('id', 'n', 'reason', 'r')} FROM json_each(?1)) AS n WHERE sensors.id = n.id")


def mark_stale(store: Store, stale: Sequence[tuple[str, int]]) -> None:
    """Record when sensors went stale, ``(sensor_id, since_ms)``; their next reading clears it."""
    with store.transaction() as conn:
        conn.executemany("UPDATE sensors SET stale_since=? WHERE id=? AND stale_since IS NULL",
                         [(since, i) for i, since in stale])


def delete_older(store: Store, sensor_id: str, cutoff: int, limit: int = 5000) -> int:
    """Delete up to about ``limit`` readings of one sensor older than ``cutoff`` (ms); returns how many.

    Call again while it returns ``limit``: small transactions keep the one writer free for new readings.
    """
    with store.transaction() as conn:
        row = conn.execute("SELECT ts FROM readings WHERE sensor_id=? AND ts<? ORDER BY ts LIMIT 1 OFFSET ?",
                           (sensor_id, cutoff, limit)).fetchone()
        bound = row[0] if row else cutoff
        cur = conn.execute("DELETE FROM readings WHERE sensor_id=? AND ts<?", (sensor_id, bound))
    return cur.rowcount


def source_sensors(store: Store, source: str) -> list[str]:
    """Ids of every sensor a source has registered (configured or not)."""
    return [r[0] for r in store.conn.execute("SELECT id FROM sensors WHERE source=? ORDER BY id", (source,))]


_SENSOR_COLS = ("id", "source", "kind", "unit", "lat", "lon", "ars", "topic", "interval_s", "last_ts", "last_value",
                "last_received", "stale_since", "malformed", "last_malformed", "last_malformed_at")


def sensors(store: Store, *, now: int | None = None, sensor_id: str | None = None) -> list[dict[str, Any]]:
    """Configured sensors with their state, newest reading and malformed count (times as ISO 8601)."""
    stamp = now_ms() if now is None else now
    where, args = ("WHERE configured=1 AND id=?", (sensor_id,)) if sensor_id else ("WHERE configured=1", ())
    out = []
    for row in store.conn.execute(f"SELECT {','.join(_SENSOR_COLS)} FROM sensors {where} ORDER BY id", args):
        d = dict(zip(_SENSOR_COLS, row, strict=True))
        d["state"] = sensor_state(d["last_ts"], d["interval_s"], stamp)
        for key in ("last_ts", "last_received", "stale_since", "last_malformed_at"):
            d[key] = iso_ms(d[key])
        if d["state"] != "stale":
            d["stale_since"] = None
        out.append(d)
    return out


def readings(store: Store, sensor_id: str, *, since: int | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Readings of one sensor, oldest first: from ``since`` (ms, inclusive), else the newest ``limit``."""
    if since is not None:
        rows = store.conn.execute("SELECT ts, value, unit, received_at FROM readings WHERE sensor_id=? AND ts>=?"
                                  " ORDER BY ts LIMIT ?", (sensor_id, since, limit)).fetchall()
    else:
        rows = store.conn.execute("SELECT ts, value, unit, received_at FROM readings WHERE sensor_id=?"
                                  " ORDER BY ts DESC LIMIT ?", (sensor_id, limit)).fetchall()[::-1]
    return [{"ts": iso_ms(ts), "value": value, "unit": unit, "received_at": iso_ms(received)}
            for ts, value, unit, received in rows]


def count(store: Store, sensor_id: str | None = None) -> int:
    """Readings held (of one sensor, or all)."""
    if sensor_id is None:
        return int(store.conn.execute("SELECT count(*) FROM readings").fetchone()[0])
    return int(store.conn.execute("SELECT count(*) FROM readings WHERE sensor_id=?", (sensor_id,)).fetchone()[0])


def sensor_readings(store: Store, sensor_id: str, *, since: int | None = None,
                    limit: int = 1000) -> dict[str, Any] | None:
    """A configured sensor and its readings (see :func:`readings`) in one trip; None if there is no such sensor."""
    found = sensors(store, sensor_id=sensor_id)
    if not found:
        return None
    return {"sensor": found[0], "readings": readings(store, sensor_id, since=since, limit=limit)}
