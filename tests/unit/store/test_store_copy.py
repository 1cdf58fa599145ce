"""``warnhub store copy``: a SQLite hub's store lands in PostgreSQL whole (every row of every table, ids kept), the
audit chain still verifies there, new rows continue the ids, and a database that holds anything is refused."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.cap.validate import Validator
from hub.errors import StoreError
from hub.intake.documents import Intake
from hub.store.copy import copy, tables
from hub.store.db import Store
from tests.kits.hubproc import DWD_CHAIN, cap_xml
from tests.kits.storekit import other

NOW = datetime(2030, 1, 1, 9, 30, tzinfo=UTC)


def rows(conn: object, table: str) -> list[tuple[object, ...]]:
    return [tuple(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY 1")]  # type: ignore[attr-defined]


def test_copy_keeps_every_row_and_id_and_new_rows_continue(tmp_path: Path, pg_url: str) -> None:
    with Store(tmp_path / "hub.db") as lite:
        intake = Intake(Validator(), lite)
        for doc in DWD_CHAIN:
            intake.ingest(doc.read_bytes(), origin="dwd", now=NOW)
        intake.ingest(b"not xml", origin="dwd", now=NOW)
        for i in range(3):
            lite.audit("tester", "test.step", f"s{i}", {"i": i}, now=NOW)
        lite.conn.execute("INSERT INTO sensors (id, source, kind, unit, lat, lon, topic, interval_s, updated_at,"
                          " last_ts, last_value) VALUES ('p1', 'mqtt', 'level', 'cm', 53.1, 11.1, 't', 60, 0, 5, 7.5)")
        lite.conn.execute("INSERT INTO readings (sensor_id, ts, value, unit, received_at) VALUES ('p1', 4, 3.5, 'cm',"
                          " 4)")
        lite.conn.execute("UPDATE readings SET ts = 9")  # newer than the sensor says (the trigger runs on inserts
        # only): the copy must keep the sensor's row as it is, not let the trigger rewrite it
        counts = copy(lite, pg_url)
        expected = {t: rows(lite.conn, t) for t in tables()}
    assert counts["alerts"] == len(DWD_CHAIN) and counts["rejections"] == 1 and counts["audit"] == 3
    with other(pg_url) as conn:
        assert {t: rows(conn, t) for t in tables()} == expected
    with Store(pg_url) as pg:
        assert pg.verify_audit().ok and pg.verify_audit().entries == 3
        added = Intake(Validator(), pg).ingest(cap_xml("after-copy"), origin="test", now=NOW)
        assert added.outcome == "new" and added.alert_id == len(DWD_CHAIN) + 1  # the identity continues
        assert pg.audit("tester", "after") == 4
    with Store(tmp_path / "hub.db") as lite, pytest.raises(StoreError, match="not empty"):
        copy(lite, pg_url)
