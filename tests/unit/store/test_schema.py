"""One schema: a new database has exactly the tables, indexes and triggers of hub/store/schema.py, and no other
module of the hub or its adapters creates or alters one."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from hub.store import schema
from hub.store.db import Store
from hub.store.migrations.run import LATEST
from tests.kits import paths
from tests.unit.store.sqlschema import normalise, schema_of

ALLOWED = ("hub/store/schema.py", "hub/store/migrations/", "hub/store/dialect.py")
"""Where a table may be created or changed: the schema, the migrations that bring an older database to it, and the
dialect layer that writes the schema's statements in PostgreSQL's words."""
_DDL = re.compile(r"\b(?:CREATE\s+(?:UNIQUE\s+|TEMP\s+|TEMPORARY\s+)?(?:TABLE|INDEX|TRIGGER|VIEW)|ALTER\s+TABLE)\b",
                  re.IGNORECASE)


def ddl_outside_the_schema(root: Path) -> list[str]:
    """``file:line`` of every CREATE TABLE/INDEX/TRIGGER/VIEW or ALTER TABLE under root/hub and root/adapters,
    outside :data:`ALLOWED`."""
    found = []
    for top in ("hub", "adapters"):
        for path in sorted((root / top).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel.startswith(ALLOWED):
                continue
            text = path.read_text(encoding="utf-8")
            found += [f"{rel}:{text.count(chr(10), 0, m.start()) + 1}" for m in _DDL.finditer(text)]
    return found


def test_a_new_database_has_exactly_the_schema_of_schema_py(tmp_path: Path) -> None:
    with Store(tmp_path / "hub.db") as store:
        made = schema_of(store.conn)
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
    plain = sqlite3.connect(tmp_path / "plain.db")  # schema.py's statements alone, on a bare connection
    schema.create(plain)
    assert made == schema_of(plain)
    plain.close()
    named = {m.group(1) for m in re.finditer(r"CREATE (?:UNIQUE )?(?:TABLE|INDEX|TRIGGER) IF NOT EXISTS (\w+)",
                                             "\n".join(schema.STATEMENTS))}
    assert named == {n for n in made if not n.startswith("sqlite_autoindex_")}
    tables = {n for n, (kind, _, _) in made.items() if kind == "table"}
    assert {"alerts", "threads", "audit", "decisions", "publications", "subscriptions", "outbox", "users",
            "sessions", "login_failures", "exercise_tokens", "sensors", "readings", "conflicts", "console_warnings",
            "console_events", "drafts"} <= tables


def test_no_module_outside_the_schema_creates_or_alters_a_table() -> None:
    assert ddl_outside_the_schema(paths.REPO) == []


def test_the_source_scan_finds_a_table_created_anywhere_else(tmp_path: Path) -> None:
    """The scan above can fail: a module that creates a table in any of the ways the hub used to is found, in
    hub/ and in adapters/, and only the schema and the migrations may."""
    (tmp_path / "hub" / "store" / "migrations").mkdir(parents=True)
    (tmp_path / "hub" / "intake").mkdir()
    (tmp_path / "adapters" / "sources").mkdir(parents=True)
    (tmp_path / "hub" / "store" / "schema.py").write_text('X = "CREATE TABLE IF NOT EXISTS a (x)"\n')
    (tmp_path / "hub" / "store" / "migrations" / "m0005_b.py").write_text('Y = "ALTER TABLE a ADD COLUMN y"\n')
    (tmp_path / "hub" / "intake" / "lazy.py").write_text(
        '"""Doc."""\n_SCHEMA = (\n    """create table if not exists b (\n        x TEXT)""",\n'
        '    "CREATE UNIQUE INDEX IF NOT EXISTS b_x ON b(x)",\n)\n')
    (tmp_path / "adapters" / "sources" / "own.py").write_text('conn.execute(f"ALTER  TABLE c ADD COLUMN {n}")\n')
    assert ddl_outside_the_schema(tmp_path) == ["hub/intake/lazy.py:3", "hub/intake/lazy.py:5",
                                                "adapters/sources/own.py:1"]
    # and it recognises every statement as schema.py writes them
    assert [len(_DDL.findall(statement)) for statement in schema.STATEMENTS] == [1] * len(schema.STATEMENTS)


def test_normalising_keeps_what_differs_and_drops_only_layout() -> None:
    assert normalise('CREATE TABLE "t" (\n   "a" TEXT,\n   PRIMARY KEY ("a")\n)') == \
        normalise("CREATE TABLE IF NOT EXISTS t (a TEXT, PRIMARY KEY (a))")
    assert normalise("CREATE TABLE t (a TEXT, b TEXT)") != normalise("CREATE TABLE t (b TEXT, a TEXT)")
    assert normalise("CREATE TABLE t (a TEXT NOT NULL)") != normalise("CREATE TABLE t (a TEXT)")


def test_postgresql_gets_the_same_tables_columns_indexes_and_trigger(tmp_path: Path, pg_url: str) -> None:
    """One schema for both: a new PostgreSQL database has every table of schema.py with the columns in SQLite's
    order, every index, the readings trigger (working), and the newest version."""
    from hub.store.migrations.tools import columns

    with Store(tmp_path / "hub.db") as lite, Store(pg_url) as pg:
        tables = [n for n, (kind, _, _) in schema_of(lite.conn).items() if kind == "table"]
        assert {t: columns(pg.conn, t) for t in tables} == {t: columns(lite.conn, t) for t in tables}
        indexes = {r[0] for r in pg.conn.execute("SELECT indexname FROM pg_indexes"
                                                 " WHERE schemaname = current_schema()")}
        named = {m.group(1) for m in re.finditer(r"CREATE (?:UNIQUE )?INDEX IF NOT EXISTS (\w+)",
                                                 "\n".join(schema.STATEMENTS))}
        assert named <= indexes
        assert pg.conn.execute("SELECT version FROM store_version").fetchone()[0] == LATEST
        assert pg.conn.execute("SELECT data_type FROM information_schema.columns WHERE table_name = 'outbox'"
                               " AND column_name = 'created_ms'").fetchone()[0] == "bigint"
        for store in (lite, pg):
            store.conn.execute("INSERT INTO sensors (id, source, kind, unit, lat, lon, topic, interval_s, updated_at)"
                               " VALUES ('p1', 'mqtt', 'level', 'cm', 53.1, 11.1, 't', 60, 0)")
            store.conn.execute("INSERT INTO readings (sensor_id, ts, value, unit, received_at)"
                               " VALUES ('p1', 1700000000000, 412.5, 'cm', 1700000000100)")
            assert store.conn.execute("SELECT last_ts, last_value FROM sensors").fetchone() == (1700000000000, 412.5)
