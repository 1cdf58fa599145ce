"""Lock-outs can be lifted (issue 14): ``warnhub user unlock NAME`` and ``warnhub user set-password`` forget the
login throttle of that name (its waits and its share of address brakes), audited; other names keep theirs. Real
SQLite file, the real login handler over HTTP, the real command line."""

from __future__ import annotations

import datetime as dt
import getpass
import io
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.access import auth, login_throttle
from hub.cli.main import main as cli_main
from hub.store.db import Store
from tests.e2e.test_auth import KREIS, PASSWORD, T0, Clock, Hub, add, login
from tests.kits.hubproc import REPO

WRONG = "falsch-falsch-falsch"
THROTTLE = auth.Throttle(free_failures=3, first_delay_s=60, max_delay_s=600, max_failures_addr=8, window_s=900)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    with Store(tmp_path / "hub.db") as s:
        add(s, "anna", ("author",), (KREIS,))
        add(s, "vera", ("viewer",), (KREIS,))
    h = Hub(tmp_path / "hub.db", Clock(), throttle=THROTTLE)
    await h.start()
    yield h
    await h.stop()


async def test_unlock_lets_the_right_password_in_at_once(hub: Hub) -> None:
    c = hub.client
    assert c is not None
    for _ in range(4):
        await login(c, password=WRONG)
        await login(c, name="vera", password=WRONG)
    r = await login(c)
    assert r.status == 429 and int(r.headers["Retry-After"]) >= 60  # anna waits (the old code had no way out)
    assert (await login(c, name="vera")).status == 429

    user, cleared = await hub.astore.run(auth.unlock, hub.store(), "ANNA", actor="leitstelle-os", now=T0)
    assert (user.name, cleared) == ("anna", 1)
    r = await login(c)
    assert r.status == 200 and (await r.json())["name"] == "anna"
    assert (await login(c, name="vera")).status == 429  # only the named user is unlocked
    entries = hub.store().audit_entries()
    unlock = [e for e in entries if e["action"] == "user.unlock"]
    assert [(e["actor"], e["subject"], json.loads(e["detail"])) for e in unlock] == [
        ("leitstelle-os", "anna", {"throttle_cleared": 1})]
    failed = [json.loads(e["detail"]) for e in entries if e["action"] == "login.failed" and e["subject"] == "anna"]
    assert [(d["failures"], d["refused"]) for d in failed] == [(3, 2)]  # the window was audited before it went


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text((REPO / "config.toml").read_text(encoding="utf-8"), encoding="utf-8")
    return path


def _user_cli(config: Path, *args: str, stdin: str = "") -> int:
    sys.stdin = io.StringIO(stdin)
    try:
        return cli_main(["user", *args, "--config", str(config)])
    finally:
        sys.stdin = sys.__stdin__


def _throttled(store: Store, name: str, addr: str) -> login_throttle.Admission:
    for _ in range(6):
        last = login_throttle.admit(store, name, addr, "wrong password", throttle=THROTTLE, now=T0)
    return last


def test_cli_unlock_and_set_password_clear_the_throttle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "leitstelle-os")
    config = _config(tmp_path)
    assert _user_cli(config, "add", "anna", "--role", "author", "--scope", KREIS, "--password-stdin",
                     stdin=PASSWORD + "\n") == 0
    assert _user_cli(config, "add", "bert", "--role", "author", "--scope", KREIS, "--password-stdin",
                     stdin=PASSWORD + "\n") == 0
    db = tmp_path / "var" / "warnhub.db"
    with Store(db) as store:
        assert _throttled(store, "anna", "192.0.2.1").retry_after is not None
        _throttled(store, "anna", "192.0.2.2")
        assert _throttled(store, "bert", "192.0.2.1").retry_after is not None
    capsys.readouterr()
    assert _user_cli(config, "unlock", "anna") == 0
    assert "Anmeldesperre von anna aufgehoben (2 Einträge gelöscht)" in capsys.readouterr().out
    assert _user_cli(config, "unlock", "nobody") == 1
    assert "unknown user" in capsys.readouterr().err
    with Store(db) as store:
        names = [n for (n,) in store.conn.execute("SELECT name FROM login_failures")]
        assert names == ["bert"]
        later = T0 + dt.timedelta(seconds=1)
        assert login_throttle.admit(store, "anna", "192.0.2.1", "wrong password", throttle=THROTTLE,
                                    now=later).retry_after is None
        assert login_throttle.admit(store, "bert", "192.0.2.1", "wrong password", throttle=THROTTLE,
                                    now=later).retry_after is not None

    assert _user_cli(config, "set-password", "bert", "--password-stdin", stdin="Sturmflut-Warnung-7\n") == 0
    with Store(db) as store:
        assert store.conn.execute("SELECT count(*) FROM login_failures WHERE name='bert'").fetchone()[0] == 0
        result = auth.authenticate(store, "bert", "Sturmflut-Warnung-7", "192.0.2.1", throttle=THROTTLE,
                                   now=T0 + dt.timedelta(seconds=2))
        assert result.reason == "ok"
        mine = [(e["action"], e["subject"], json.loads(e["detail"]).get("throttle_cleared"))
                for e in store.audit_entries() if e["actor"] == "leitstelle-os"]
        assert store.verify_audit().ok
    assert mine[2:] == [("user.unlock", "anna", 2), ("user.set_password", "bert", 1)]
