"""Every table, index and trigger of the hub's SQLite store, in one place: the newest schema.

The store creates them when it opens a database (:mod:`hub.store.migrations`: after the migrations a database
still needed, whatever is missing is created from here), so a module that reads or writes a table never creates
it. The statements say ``IF NOT EXISTS``: running them on a database that has everything changes nothing.

A table's columns are listed in the order the database has them: a column added by a migration (``ALTER TABLE ...
ADD COLUMN`` appends it) goes at the end of its table here, so a migrated database and a new one have the same
schema (``tests/unit/store/test_migrations.py`` compares them).

Who owns which table (the module that writes it) is named above each group.
"""

from __future__ import annotations

import re
import sqlite3

from hub.store import dialect

_STORE = (
    # hub.store.alerts: every received version of every alert, the threads that link them, rejected documents,
    # and the lists of sources that name every current warning; hub.store.chain: the audit log.
    # hub.store.connection: the write probe behind /healthz's "store" (one row, rewritten).
    """CREATE TABLE IF NOT EXISTS store_probe (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        at TEXT NOT NULL,
        pad BLOB NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS threads (
        id INTEGER PRIMARY KEY,
        state TEXT,
        current_alert_id INTEGER,
        first_sent TEXT,
        last_sent TEXT,
        expires TEXT,
        updated_at TEXT)""",
    """CREATE TABLE IF NOT EXISTS alerts (
        id INTEGER PRIMARY KEY,
        sender TEXT,
        identifier TEXT,
        sent TEXT,
        sent_utc TEXT,
        status TEXT,
        msg_type TEXT,
        scope TEXT,
        severity TEXT,
        headline TEXT,
        expires TEXT,
        received_at TEXT,
        origin TEXT,
        cap_version TEXT,
        verdict TEXT,
        signature TEXT,
        flags TEXT,
        json TEXT,
        raw BLOB,
        thread_id INTEGER REFERENCES threads(id))""",
    """CREATE TABLE IF NOT EXISTS thread_keys (
        key TEXT PRIMARY KEY,
        thread_id INTEGER)""",
    """CREATE TABLE IF NOT EXISTS rejections (
        id INTEGER PRIMARY KEY,
        received_at TEXT,
        origin TEXT,
        reason TEXT,
        sha256 TEXT,
        size INTEGER)""",
    """CREATE TABLE IF NOT EXISTS audit (
        seq INTEGER PRIMARY KEY,
        ts TEXT,
        actor TEXT,
        action TEXT,
        subject TEXT,
        detail TEXT,
        prev_hash TEXT,
        hash TEXT,
        district TEXT NOT NULL DEFAULT '')""",
    # where the chain continues after archived segments (hub.store.audit): the last archived entry's seq and hash
    """CREATE TABLE IF NOT EXISTS audit_anchors (
        seq INTEGER PRIMARY KEY,
        hash TEXT,
        first_seq INTEGER,
        entries INTEGER,
        file TEXT,
        sha256 TEXT,
        archived_at TEXT,
        district TEXT NOT NULL DEFAULT '')""",
    """CREATE TABLE IF NOT EXISTS presence (
        origin TEXT,
        key TEXT,
        misses INTEGER,
        last_seen TEXT,
        PRIMARY KEY (origin, key))""",
    """CREATE TABLE IF NOT EXISTS source_health (
        name TEXT PRIMARY KEY,
        type TEXT,
        state TEXT,
        last_error TEXT,
        last_ok TEXT,
        since TEXT,
        failures INTEGER,
        detail TEXT,
        updated_at TEXT,
        node TEXT)""",
    # many nodes: the ingest nodes standing by for a source another node polls (hub.cluster.Holder)
    """CREATE TABLE IF NOT EXISTS source_standby (
        name TEXT NOT NULL,
        node TEXT NOT NULL,
        seen_at TEXT NOT NULL,
        PRIMARY KEY (name, node))""",
    "CREATE UNIQUE INDEX IF NOT EXISTS alerts_identity ON alerts(sender, identifier, sent_utc)",
    "CREATE INDEX IF NOT EXISTS alerts_thread ON alerts(thread_id)",
    "CREATE INDEX IF NOT EXISTS thread_keys_thread ON thread_keys(thread_id)",
    "CREATE INDEX IF NOT EXISTS threads_state ON threads(state, expires)",
    # hub.store.conflicts: the other copy of a CAP identity that arrived with other content
    """CREATE TABLE IF NOT EXISTS conflicts (
        id INTEGER PRIMARY KEY,
        alert_id INTEGER NOT NULL,
        sender TEXT NOT NULL,
        identifier TEXT NOT NULL,
        sent TEXT NOT NULL,
        received_at TEXT NOT NULL,
        origin TEXT NOT NULL,
        signature TEXT NOT NULL,
        verdict TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        raw BLOB NOT NULL,
        json TEXT NOT NULL,
        replaced INTEGER NOT NULL,
        published INTEGER NOT NULL,
        kept_origin TEXT NOT NULL,
        kept_signature TEXT NOT NULL)""",
)

_ACCESS = (
    # hub.access.auth: console users and their sessions
    """CREATE TABLE IF NOT EXISTS users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        roles TEXT NOT NULL,
        scopes TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        created TEXT NOT NULL,
        updated TEXT NOT NULL,
        password_changed TEXT NOT NULL,
        last_login TEXT)""",
    """CREATE TABLE IF NOT EXISTS sessions (
        token_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        csrf TEXT NOT NULL,
        remote TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_id)",
    # hub.access.login_throttle: failed logins per (name, address) and window
    """CREATE TABLE IF NOT EXISTS login_failures (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        addr TEXT NOT NULL,
        reason TEXT NOT NULL,
        opened TEXT NOT NULL,
        seen TEXT NOT NULL,
        last_failure TEXT,
        failures INTEGER NOT NULL DEFAULT 0,
        refused INTEGER NOT NULL DEFAULT 0,
        streak INTEGER NOT NULL DEFAULT 0,
        not_before TEXT,
        audited INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS login_failures_pair ON login_failures(name, addr, id)",
    "CREATE INDEX IF NOT EXISTS login_failures_addr ON login_failures(addr, last_failure)",
    "CREATE INDEX IF NOT EXISTS login_failures_open ON login_failures(audited, opened)",
    "CREATE INDEX IF NOT EXISTS login_failures_seen ON login_failures(seen)",
    # hub.access.exercise_tokens: tokens that let a staff test device subscribe to exercises
    """CREATE TABLE IF NOT EXISTS exercise_tokens (
        token_hash TEXT PRIMARY KEY,
        issued_by TEXT NOT NULL,
        issued_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        used_ms INTEGER)""",
)

_INTAKE = (
    # hub.intake.readings: sensors and their readings
    """CREATE TABLE IF NOT EXISTS sensors (
        id TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        unit TEXT NOT NULL,
        lat REAL NOT NULL,
        lon REAL NOT NULL,
        ars TEXT,
        topic TEXT NOT NULL,
        interval_s REAL NOT NULL,
        configured INTEGER NOT NULL DEFAULT 1,
        last_ts INTEGER,
        last_value REAL,
        last_received INTEGER,
        stale_since INTEGER,
        malformed INTEGER NOT NULL DEFAULT 0,
        last_malformed TEXT,
        last_malformed_at INTEGER,
        updated_at INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS readings (
        sensor_id TEXT NOT NULL,
        ts INTEGER NOT NULL,
        value REAL NOT NULL,
        unit TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (sensor_id, ts)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS sensors_source ON sensors(source)",
    # A sensor's newest reading follows every insert, in the same statement (so in the same transaction).
    """CREATE TRIGGER IF NOT EXISTS readings_newest AFTER INSERT ON readings BEGIN
        UPDATE sensors SET last_ts=NEW.ts, last_value=NEW.value, last_received=NEW.received_at, stale_since=NULL
        WHERE id=NEW.sensor_id AND (last_ts IS NULL OR last_ts <= NEW.ts);
    END""",
)

_DECIDE = (
    # hub.decide.decisions: what the rules decided (the last four columns: a version whose rules evaluation or
    # publication failed, added by migration 4), and the drafts waiting for a person
    """CREATE TABLE IF NOT EXISTS decisions (
        alert_id INTEGER NOT NULL REFERENCES alerts(id),
        thread_id INTEGER NOT NULL,
        decision TEXT NOT NULL,
        rules TEXT NOT NULL,
        channels TEXT NOT NULL,
        audiences TEXT NOT NULL,
        push INTEGER NOT NULL,
        drafts TEXT NOT NULL,
        severity TEXT NOT NULL,
        regions TEXT NOT NULL,
        inside_district INTEGER,
        outside_share REAL,
        changes TEXT NOT NULL,
        why TEXT NOT NULL,
        rules_loaded_at TEXT,
        decided_at TEXT NOT NULL,
        failed_stage TEXT,
        failure TEXT NOT NULL DEFAULT '',
        attempts INTEGER NOT NULL DEFAULT 0,
        retry_at TEXT,
        district TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (alert_id, district))""",
    "CREATE INDEX IF NOT EXISTS decisions_thread ON decisions(thread_id)",
    "CREATE INDEX IF NOT EXISTS decisions_decision ON decisions(decision)",
    "CREATE INDEX IF NOT EXISTS decisions_failed ON decisions(failed_stage, retry_at) WHERE failed_stage IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS drafts (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        origin TEXT NOT NULL,
        alert_id INTEGER,
        rule TEXT NOT NULL,
        sensor TEXT,
        kind TEXT NOT NULL,
        template TEXT NOT NULL,
        at TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        channels TEXT NOT NULL,
        audiences TEXT NOT NULL,
        why TEXT NOT NULL,
        draft TEXT NOT NULL,
        created_at TEXT NOT NULL,
        district TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX IF NOT EXISTS drafts_state ON drafts(state, id)",
    # hub.decide.decisions: which node is deciding a version (until when), so many nodes evaluate each one once
    """CREATE TABLE IF NOT EXISTS decide_claims (
        alert_id INTEGER PRIMARY KEY,
        node TEXT NOT NULL,
        until_ms INTEGER NOT NULL)""",
)

_PUBLISH = (
    # hub.publish.publications: the warnings the hub itself issues
    """CREATE TABLE IF NOT EXISTS publications (
        id INTEGER PRIMARY KEY,
        thread TEXT NOT NULL,
        version INTEGER NOT NULL,
        source_thread INTEGER,
        source_alert INTEGER,
        identifier TEXT NOT NULL UNIQUE,
        sender TEXT NOT NULL,
        sent TEXT NOT NULL,
        msg_type TEXT NOT NULL,
        status TEXT NOT NULL,
        severity TEXT NOT NULL,
        urgency TEXT NOT NULL,
        expires_ms INTEGER,
        push INTEGER NOT NULL,
        channels TEXT NOT NULL,
        regions TEXT NOT NULL,
        area_wkb BLOB,
        notices TEXT NOT NULL,
        alert_json TEXT NOT NULL,
        cap_xml BLOB NOT NULL,
        created_ms INTEGER NOT NULL,
        district TEXT NOT NULL DEFAULT '',
        UNIQUE (thread, version),
        UNIQUE (source_alert, district))""",
    "CREATE INDEX IF NOT EXISTS publications_thread ON publications(thread, version)",
    # the pipeline asks, for each pending decision, whether its thread has a publication of it or a later version
    "CREATE INDEX IF NOT EXISTS publications_source ON publications(source_thread, source_alert)",
    # hub.publish.subscriptions: citizen subscriptions without accounts
    """CREATE TABLE IF NOT EXISTS subscriptions (
        id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL,
        endpoint TEXT NOT NULL UNIQUE,
        p256dh TEXT NOT NULL,
        auth TEXT NOT NULL,
        places TEXT NOT NULL,
        topics TEXT NOT NULL,
        min_severity TEXT NOT NULL,
        languages TEXT NOT NULL,
        exercise INTEGER NOT NULL DEFAULT 0,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        sources TEXT NOT NULL DEFAULT '[]',
        quiet_hours TEXT)""",
    # hub.publish.testpush: the test notifications a subscriber sent themselves (rate limit, receipt), kept a day
    """CREATE TABLE IF NOT EXISTS push_tests (
        id TEXT PRIMARY KEY,
        subscription_id TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        received_ms INTEGER)""",
    "CREATE INDEX IF NOT EXISTS push_tests_subscription ON push_tests(subscription_id, created_ms)",
)

_DELIVER = (
    # hub.deliver.outbox: every delivery, before any channel sends it
    """CREATE TABLE IF NOT EXISTS outbox (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        publication_id INTEGER NOT NULL,
        thread TEXT NOT NULL,
        channel TEXT NOT NULL,
        recipient TEXT NOT NULL,
        host TEXT NOT NULL DEFAULT '',
        priority INTEGER NOT NULL,
        not_after_ms INTEGER,
        state TEXT NOT NULL DEFAULT 'queued',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at_ms INTEGER NOT NULL,
        lease_until_ms INTEGER,
        last_error TEXT NOT NULL DEFAULT '',
        created_ms INTEGER NOT NULL,
        finished_ms INTEGER)""",
    # Claiming is one range scan per priority; host is in the index so rows of open hosts are passed over
    # without reading the table.
    "CREATE INDEX IF NOT EXISTS outbox_ready ON outbox(channel, priority, next_at_ms, id, host) WHERE state='queued'",
    "CREATE INDEX IF NOT EXISTS outbox_leases ON outbox(channel, lease_until_ms) WHERE state='inflight'",
    "CREATE INDEX IF NOT EXISTS outbox_version ON outbox(thread, channel, recipient, publication_id)",
    "CREATE INDEX IF NOT EXISTS outbox_publication ON outbox(publication_id, channel, state)",
    "CREATE INDEX IF NOT EXISTS outbox_failed ON outbox(finished_ms) WHERE state='failed'",
    # hub.deliver.fanout: a push fan-out's recipients not yet written to the outbox, one chunk a row
    """CREATE TABLE IF NOT EXISTS fanout (
        publication_id INTEGER NOT NULL,
        channel TEXT NOT NULL,
        seq INTEGER NOT NULL,
        thread TEXT NOT NULL,
        priority INTEGER NOT NULL,
        not_after_ms INTEGER,
        key_prefix TEXT NOT NULL,
        recipients TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (publication_id, channel, seq))""",
    "CREATE INDEX IF NOT EXISTS fanout_next ON fanout(priority, publication_id, seq)",
    "CREATE INDEX IF NOT EXISTS fanout_thread ON fanout(thread, publication_id)",
    # hub.deliver.budget: each subscription's push budget, shared by every delivery node (one row a person pushed
    # in the window or with a summary pending; ``sent`` is JSON [[ms, key, extreme], ...])
    """CREATE TABLE IF NOT EXISTS push_budget (
        recipient TEXT PRIMARY KEY,
        sent TEXT NOT NULL DEFAULT '[]',
        summary TEXT,
        held INTEGER NOT NULL DEFAULT 0,
        until_ms INTEGER NOT NULL)""",
)

_CONSOLE = (
    # hub.console.tables: the warnings the control room composes, and what happened to each version
    """CREATE TABLE IF NOT EXISTS console_warnings (
        id INTEGER PRIMARY KEY,
        thread TEXT NOT NULL,
        version INTEGER NOT NULL,
        parent_id INTEGER REFERENCES console_warnings(id),
        state TEXT NOT NULL,
        status TEXT NOT NULL,
        msg_type TEXT NOT NULL,
        kind TEXT NOT NULL,
        template TEXT,
        content TEXT NOT NULL,
        area TEXT NOT NULL,
        channels TEXT NOT NULL,
        audience TEXT NOT NULL,
        topic TEXT,
        author TEXT NOT NULL,
        author_id INTEGER NOT NULL,
        editors TEXT NOT NULL,
        approver TEXT,
        approver_id INTEGER,
        single_person_reason TEXT,
        reject_reason TEXT,
        revision INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        submitted_at TEXT,
        approved_at TEXT,
        sent_at TEXT,
        cap_identifier TEXT UNIQUE,
        cap_sent TEXT,
        alert_id INTEGER REFERENCES alerts(id),
        store_thread INTEGER,
        district TEXT NOT NULL DEFAULT '',
        UNIQUE (thread, version))""",
    "CREATE INDEX IF NOT EXISTS console_warnings_state ON console_warnings(state, id)",
    """CREATE TABLE IF NOT EXISTS console_events (
        id INTEGER PRIMARY KEY,
        warning_id INTEGER NOT NULL REFERENCES console_warnings(id),
        thread TEXT NOT NULL,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS console_events_thread ON console_events(thread, id)",
)

STATEMENTS: tuple[str, ...] = _STORE + _ACCESS + _INTAKE + _DECIDE + _PUBLISH + _DELIVER + _CONSOLE
"""Every ``CREATE`` of the store, tables before the indexes and triggers on them."""


def tables() -> list[str]:
    """Every table, in the order :data:`STATEMENTS` creates them (a table after those it references)."""
    return [m[1] for s in STATEMENTS if (m := re.match(r"\s*CREATE TABLE IF NOT EXISTS (\w+)", s))]


def create(conn: sqlite3.Connection) -> None:
    """Create whatever table, index or trigger is missing (inside the caller's transaction); on PostgreSQL in its
    words (:func:`hub.store.dialect.ddl`)."""
    pg = dialect.of(conn) == dialect.POSTGRESQL
    for statement in STATEMENTS:
        for one in dialect.ddl(statement) if pg else (statement,):
            conn.execute(one)
    if pg:  # the fan-out's chunks uncompressed: compressing them held up the first push (migration 7)
        conn.execute("ALTER TABLE fanout ALTER COLUMN recipients SET STORAGE EXTERNAL")
