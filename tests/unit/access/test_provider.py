"""The provider role and each authority's users (issue 19): a provider manages districts' users and sees health, no
content (no console permission, no scope); with several districts every other user's scopes lie in exactly one of
them, their audit entries go to that district's chain, and ``warnhub user list --district`` lists one district's.
Real config (tests/kits/districts.py), real SQLite file, the real command line."""

from __future__ import annotations

import getpass
import io
import json
import sys
from pathlib import Path

import pytest

from hub.access import auth
from hub.cli.main import main as cli_main
from hub.config.load import load as load_config
from hub.errors import AuthError
from hub.geo.geography import geography
from hub.store.db import Store
from tests.kits.districts import HITZACKER, LD, SUHLENDORF, UE, write_two_districts

PASSWORD = "Betrieb-fuer-zwei-Kreise-2026"


def _cli(config: Path, *args: str) -> int:
    sys.stdin = io.StringIO(PASSWORD + "\n")
    try:
        return cli_main(["user", *args, "--config", str(config)])
    finally:
        sys.stdin = sys.__stdin__


def test_a_provider_has_no_scope_no_other_role_and_no_console_permission(tmp_path: Path) -> None:
    districts = load_config(write_two_districts(tmp_path, port=1)).districts
    reg = geography().registry
    assert auth.check_scopes([], reg, roles={"provider"}, districts=districts) == ()
    with pytest.raises(AuthError, match="provider"):
        auth.check_scopes([LD], reg, roles={"provider"}, districts=districts)
    with pytest.raises(AuthError, match="provider"):
        auth.check_scopes([], reg, roles={"provider", "admin"}, districts=districts)
    provider = auth.User(1, "betrieb", frozenset({"provider"}), (), False)
    assert provider.permissions() == ["health"]
    assert not any(provider.can(p) for p in ("read", "compose", "approve", "admin"))
    assert districts.of_scopes(provider.scopes) is None  # no district: no console content


def test_with_several_districts_a_users_scopes_lie_in_exactly_one(tmp_path: Path) -> None:
    districts = load_config(write_two_districts(tmp_path, port=1)).districts
    reg = geography().registry
    assert auth.check_scopes([HITZACKER, LD], reg, districts=districts) == (HITZACKER, LD)
    with pytest.raises(AuthError, match="genau einem Kreis"):
        auth.check_scopes([HITZACKER, SUHLENDORF], reg, districts=districts)
    with pytest.raises(AuthError, match="genau einem Kreis"):
        auth.check_scopes(["03355"], reg, districts=districts)  # Lüneburg: in none of the hub's districts
    assert auth.check_scopes([HITZACKER, SUHLENDORF], reg) == (HITZACKER, SUHLENDORF)  # one district: as before


def test_cli_adds_a_provider_refuses_users_of_two_districts_and_lists_one_district(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "betrieb-os")
    config = write_two_districts(tmp_path, port=1)
    assert _cli(config, "add", "betrieb", "--role", "provider", "--password-stdin") == 0
    assert _cli(config, "add", "anna", "--role", "author", "--scope", LD, "--password-stdin") == 0
    assert _cli(config, "add", "uwe", "--role", "approver", "--scope", SUHLENDORF, "--password-stdin") == 0
    assert _cli(config, "add", "zwei", "--role", "author", "--scope", LD, "--scope", UE, "--password-stdin") == 1
    assert _cli(config, "add", "keiner", "--role", "author", "--password-stdin") == 1  # no scope
    assert _cli(config, "add", "mehr", "--role", "provider", "--scope", UE, "--password-stdin") == 1
    err = capsys.readouterr().err
    assert "genau einem Kreis" in err and "provider" in err
    with Store(tmp_path / "hub.db") as store:
        assert sorted(u["name"] for u in auth.list_users(store)) == ["anna", "betrieb", "uwe"]
        assert [e["subject"] for e in store.audit_entries(UE) if e["action"] == "user.add"] == ["uwe"]
        assert [e["subject"] for e in store.audit_entries(LD) if e["action"] == "user.add"] == ["anna"]
        assert [e["subject"] for e in store.audit_entries("") if e["action"] == "user.add"] == ["betrieb"]
    assert _cli(config, "disable", "uwe") == 0
    with Store(tmp_path / "hub.db") as store:
        assert store.audit_entries(UE)[-1]["action"] == "user.disable"
    capsys.readouterr()
    assert _cli(config, "list", "--district", "uelzen", "--json") == 0
    assert [json.loads(line)["name"] for line in capsys.readouterr().out.splitlines()] == ["uwe"]
    assert _cli(config, "list", "--district", "luechow-dannenberg") == 0
    out = capsys.readouterr().out
    assert "anna" in out and "uwe" not in out and "betrieb" not in out
    assert _cli(config, "list", "--district", "hamburg") == 1


def test_sign_ins_and_outs_are_audited_in_the_users_district_chain(tmp_path: Path) -> None:
    """A district's audit holds its own people's sign-ins, sign-outs and expired sessions; a provider's (no
    district) are the hub's own."""
    reg = geography().registry
    password = "Zwei-Kreise-eine-Leitstelle-2026!"
    with Store(tmp_path / "hub.db") as store:
        auth.add_user(store, "udo", ["approver"], [SUHLENDORF], password, actor="test", registry=reg)
        auth.add_user(store, "pia", ["provider"], [], password, actor="test", registry=reg)
        for name in ("udo", "pia"):
            found = auth.authenticate(store, name, password, "192.0.2.1")
            assert found.user is not None
            token, _ = auth.start_session(store, found.user, "192.0.2.1")
            assert auth.end_session(store, token)
        chains = {(e["actor"], e["action"]): e["district"] for e in store.audit_entries()
                  if e["action"] in ("login.ok", "logout")}
        assert chains == {("udo", "login.ok"): UE, ("udo", "logout"): UE, ("pia", "login.ok"): "",
                          ("pia", "logout"): ""}
        assert store.verify_audit(UE).ok and store.verify_audit().ok
    assert auth.session_chain([HITZACKER, LD]) == LD and auth.session_chain([LD, UE]) == ""
    assert auth.session_chain(["030000000000"]) == ""  # a Land is no district
