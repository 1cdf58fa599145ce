"""No one outside can lock the control room out (issue 13, point 3): login throttling per (name, client address)
with growing delays, a brake per address, attempts counted before hashing, Argon2 in a pool of its own, failed
logins audited in aggregate without what was typed, and addresses deleted after the retention. Against a real
SQLite file and a real aiohttp server; other client addresses are real connections from 127.0.0.x."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.access import auth
from hub.config import load as config
from hub.config import sections
from hub.errors import ConfigError
from hub.store.db import Store
from tests.e2e.test_auth import CHEAP, KREIS, PASSWORD, T0, Clock, Hub, add, login
from tests.kits.hubproc import REPO

WRONG = "falsch-falsch-falsch"
TYPED = "Mein-Passwort-im-Namensfeld"
"""What a user types into the name field by mistake: never stored, not even as a hash."""
THROTTLE = auth.Throttle(free_failures=3, first_delay_s=2, max_delay_s=30, max_failures_addr=8, window_s=900,
                         retention_s=7 * 86400)
DAY = dt.timedelta(days=1)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def prepare(path: Path | str) -> None:
    with Store(path) as s:
        add(s, "anna", ("author",), (KREIS,))
        add(s, "vera", ("viewer",), (KREIS,))


@pytest.fixture
async def hub(store_url: str, clock: Clock) -> AsyncIterator[Hub]:
    prepare(store_url)
    h = Hub(store_url, clock, throttle=THROTTLE)  # type: ignore[arg-type]  # a path or a PostgreSQL URL
    await h.start()
    yield h
    await h.stop()


NAMES = ("anna", "vera", "bert", "carl")


async def more_users(h: Hub) -> None:
    for name in NAMES[2:]:
        await h.astore.run(add, h.store(), name, ("viewer",), (KREIS,), CHEAP)


def rows(store: Store) -> list[dict[str, Any]]:
    cur = store.conn.execute("SELECT * FROM login_failures ORDER BY id")
    return [dict(zip([d[0] for d in cur.description], r, strict=True)) for r in cur.fetchall()]


def failed_entries(store: Store) -> list[dict[str, Any]]:
    return [{**e, "detail": json.loads(e["detail"])} for e in store.audit_entries() if e["action"] == "login.failed"]


async def purge(h: Hub, now: dt.datetime) -> None:
    """What the daemon's session purge does every 5 minutes."""
    await h.astore.run(auth.purge, h.store(), idle=dt.timedelta(hours=1), max_age=dt.timedelta(hours=12),
                       throttle=THROTTLE, now=now)


def whole_db(store: Store) -> str:
    """Everything the store holds, as text (SQLite's dump; on PostgreSQL every row of every table)."""
    if store.url is None:
        return "\n".join(store.conn.iterdump())
    tables = [t for (t,) in store.conn.execute("SELECT table_name FROM information_schema.tables"
                                                " WHERE table_schema = current_schema()")]
    return "\n".join(repr(row) for t in tables for row in store.conn.execute(f"SELECT * FROM {t}"))


# -- per (name, address), never a lock -----------------------------------------------------------------------------


async def test_wrong_passwords_from_one_address_do_not_stop_another(hub: Hub) -> None:
    """An attacker at 127.0.0.2 hammers anna's account; anna at 127.0.0.3 (the control room) signs in at once."""
    attacker, control_room = await hub.client_from("127.0.0.2"), await hub.client_from("127.0.0.3")
    statuses = [(await login(attacker, password=WRONG)).status for _ in range(12)]
    assert statuses == [401] * 3 + [429] * 9
    r = await login(control_room)
    assert r.status == 200 and (await r.json())["name"] == "anna"
    assert (await login(attacker)).status == 429  # the attacker's own pair waits, even with the right password
    assert {(r["name"], r["addr"]) for r in rows(hub.store())} == {("anna", "127.0.0.2")}


async def test_the_delay_grows_and_is_a_wait_not_a_lock(hub: Hub, clock: Clock) -> None:
    c = hub.client
    assert c is not None
    waits = []
    for _ in range(7):  # the address brake (8) is not reached
        r = await login(c, password=WRONG)
        assert r.status == 401 and (await r.json())["message"].startswith("Anmeldung fehlgeschlagen")
        waits.append(int(r.headers.get("Retry-After", 0)))
        if waits[-1]:
            r = await login(c)  # within the wait even the right password is not checked
            assert r.status == 429 and int(r.headers["Retry-After"]) == waits[-1]
        clock.advance(seconds=waits[-1])
    assert waits == [0, 0, 2, 4, 8, 16, 30]  # after 3 failures: 2 s, doubling, at most 30 s
    assert (await login(c)).status == 200  # after the wait the right password passes
    r = await login(c, password=WRONG)
    assert r.status == 401 and "Retry-After" not in r.headers  # a success forgets the pair's failures


async def test_quiet_forgets_the_failures(hub: Hub, clock: Clock) -> None:
    c = hub.client
    assert c is not None
    for _ in range(5):
        r = await login(c, password=WRONG)
        clock.advance(seconds=int(r.headers.get("Retry-After", 0)))
    assert r.headers["Retry-After"] == "8"
    clock.advance(minutes=14)
    r = await login(c, password=WRONG)  # not quiet long enough: the wait goes on growing
    assert r.headers["Retry-After"] == "16"
    clock.advance(seconds=16, minutes=15)
    r = await login(c, password=WRONG)  # a whole window of quiet after the wait: forgotten
    assert r.status == 401 and "Retry-After" not in r.headers


async def test_address_brake_over_all_names(hub: Hub, clock: Clock) -> None:
    """8 failures from one address within the window, whatever the names: that address waits; others do not."""
    c = hub.client
    assert c is not None
    await more_users(hub)
    for n in range(8):  # two per name: no pair reaches its own delay
        r = await login(c, NAMES[n % 4], WRONG)
        assert r.status == 401 and "Retry-After" not in r.headers, n
        clock.advance(seconds=10)
    r = await login(c, "vera")  # the right password of another user, from the braked address
    assert r.status == 429 and (await r.json())["error"] == "throttled"
    # a pair's failures count until its last one lies a window back: anna's (last at +40 s) go first
    assert int(r.headers["Retry-After"]) == 900 + 40 - 80
    other = await hub.client_from("127.0.0.2")
    assert (await login(other, "vera")).status == 200
    clock.advance(seconds=859)
    assert (await login(c, "vera")).status == 429
    clock.advance(seconds=1)
    assert (await login(c, "vera")).status == 200


# -- counted before hashing, in a pool of its own ------------------------------------------------------------------


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The thread of every password check the web runs."""
    threads: list[str] = []
    check = auth.check_password

    def counting(*args: Any) -> tuple[bool, str | None]:
        threads.append(threading.current_thread().name)
        return check(*args)

    monkeypatch.setattr(auth, "check_password", counting)
    return threads


async def test_concurrent_attempts_are_counted_before_hashing(hub: Hub, hashed: list[str]) -> None:
    c = hub.client
    assert c is not None
    answers = await asyncio.gather(*(login(c, password=WRONG) for _ in range(20)))
    assert len(hashed) == 3  # only the admitted ones cost an Argon2 check
    assert {name.split("_")[0] for name in hashed} == {"argon2"}  # in the auth pool, not the default executor
    assert len(set(hashed)) <= 2  # of two threads
    assert sorted(r.status for r in answers) == [401] * 3 + [429] * 17
    (row,) = rows(hub.store())
    assert (row["failures"], row["refused"]) == (3, 17)

    hashed.clear()
    other = await hub.client_from("127.0.0.2")
    await more_users(hub)
    answers = await asyncio.gather(*(login(other, NAMES[n % 4], WRONG) for n in range(20)))
    assert len(hashed) == 8  # the address brake holds too
    assert sorted(r.status for r in answers) == [401] * 8 + [429] * 12


# -- aggregate audit, no typed text, retention ---------------------------------------------------------------------


async def test_failed_logins_are_audited_in_aggregate_without_what_was_typed(hub: Hub, clock: Clock) -> None:
    a, b = await hub.client_from("127.0.0.2"), await hub.client_from("127.0.0.3")
    for _ in range(3):
        await login(a, password=WRONG)
    for _ in range(4):
        await login(a, TYPED, PASSWORD)
    await login(b, password=WRONG)
    store = hub.store()
    assert failed_entries(store) == []  # counted, audited when the window ends
    clock.advance(minutes=15)
    await purge(hub, clock.now)
    entries = failed_entries(store)
    summary = sorted((e["subject"], e["detail"]["reason"], e["detail"]["failures"], e["detail"]["refused"])
                     for e in entries)
    assert summary == [("", "unknown name", 3, 1), ("anna", "wrong password", 1, 0), ("anna", "wrong password", 3, 0)]
    assert {e["actor"] for e in entries} == {"anonymous"}
    assert store.verify_audit().ok
    await purge(hub, clock.now + dt.timedelta(minutes=5))
    assert len(failed_entries(store)) == 3  # one entry per (name, address) and window, once
    db = whole_db(store)
    digest = hashlib.sha256(TYPED.lower().encode()).hexdigest()
    for secret in (TYPED, TYPED.lower(), digest[:16], PASSWORD):
        assert secret not in db  # not in the audit log, not in the throttle table, nowhere
    chain = json.dumps(store.audit_entries())
    assert "127.0.0" not in chain  # addresses stay out of the hash chain


async def test_addresses_are_deleted_after_the_retention(hub: Hub, clock: Clock) -> None:
    a = await hub.client_from("127.0.0.2")
    await login(a, password=WRONG)
    await login(a, TYPED, WRONG)
    store = hub.store()
    await purge(hub, T0 + 7 * DAY - dt.timedelta(seconds=1))
    assert "127.0.0.2" in whole_db(store)  # kept for the retention ...
    await purge(hub, T0 + 7 * DAY + dt.timedelta(seconds=1))
    assert "127.0.0.2" not in whole_db(store)  # ... then deleted, everywhere
    assert rows(store) == []
    assert len(failed_entries(store)) == 2 and store.verify_audit().ok  # the audit entries stay


def test_migration_drops_the_old_lock_table_and_its_addresses(tmp_path: Path) -> None:
    with Store(tmp_path / "hub.db") as store:
        store.conn.execute("CREATE TABLE login_throttle (kind TEXT NOT NULL, key TEXT NOT NULL, failures INTEGER NOT"
                           " NULL, window_start TEXT NOT NULL, locked_until TEXT, PRIMARY KEY (kind, key))")
        store.conn.execute("INSERT INTO login_throttle VALUES ('addr', '198.51.100.7', 3, '2025-03-13T08:00:00+00:00',"
                           " NULL)")
        store.conn.execute("PRAGMA user_version=3")  # a database of the first release
    with Store(tmp_path / "hub.db") as store:  # opening it migrates it
        assert "198.51.100.7" not in whole_db(store)
        assert rows(store) == []


# -- behind a reverse proxy ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("trusted", [("127.0.0.0/8",), ()])
async def test_forwarded_for_counts_only_from_a_trusted_proxy(store_url: str, clock: Clock,
                                                              trusted: tuple[str, ...]) -> None:
    prepare(store_url)
    h = Hub(store_url, clock, throttle=THROTTLE, trusted_proxies=trusted)  # type: ignore[arg-type]
    c = await h.start()
    try:
        for _ in range(4):
            await c.post("/console/login", json={"name": "anna", "password": WRONG},
                         headers={"X-Forwarded-For": "203.0.113.5"})
        r = await c.post("/console/login", json={"name": "anna", "password": PASSWORD},
                         headers={"X-Forwarded-For": "198.51.100.7"})
        if trusted:  # the proxy names the clients: the attacker waits, the control room signs in
            assert r.status == 200
            assert {row["addr"] for row in rows(h.store())} == {"203.0.113.5"}
        else:  # anyone can send the header: without trusted proxies it is ignored
            assert r.status == 429
            assert {row["addr"] for row in rows(h.store())} == {"127.0.0.1"}
    finally:
        await h.stop()


# -- configuration -------------------------------------------------------------------------------------------------


def write_config(tmp_path: Path, console: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text((REPO / "config.toml").read_text(encoding="utf-8") + f"\n[console]\n{console}\n",
                    encoding="utf-8")
    return path


def test_config_settings_and_removed_keys(tmp_path: Path) -> None:
    loaded = config.load(write_config(tmp_path, "login_free_failures = 4\nlogin_first_delay_s = 3\n"
                                                "login_max_delay_s = 120\nmax_failures_per_address = 50\n"
                                                "failure_window_min = 20\nfailed_login_retention_days = 3"))
    assert auth.throttle_of(loaded.cfg.console) == auth.Throttle(
        free_failures=4, first_delay_s=3, max_delay_s=120, max_failures_addr=50, window_s=1200,
        retention_s=3 * 86400)
    assert auth.throttle_of(sections.ConsoleSection()).retention_s == 7 * 86400  # the default: 7 days
    for old, new in (("lockout_min = 15", "login_max_delay_s"), ("max_failures_per_name = 5", "login_free_failures")):
        with pytest.raises(ConfigError, match=rf"\$\.console: {old.split()[0]} gibt es nicht mehr.*use {new}"):
            config.load(write_config(tmp_path, old))
