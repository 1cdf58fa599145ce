"""``warnhub user ...``, ``exercise-token`` and ``cancel``: console users, and what an operator does
without the console."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime
from typing import Any

from hub.access import auth, exercise_tokens
from hub.app import open_store
from hub.cli.common import load_config
from hub.config.districts import District
from hub.config.load import LoadedConfig
from hub.console import ending
from hub.console.model import ConsoleConfig, ConsoleError
from hub.errors import AuthError
from hub.geo.registry import registry
from hub.store.db import Store


def _user_store(args: argparse.Namespace) -> Any:
    """The configured store (its tables, the access tables too, are there once it is open); the config's districts
    as ``args.districts``."""

    loaded = load_config(args, required=True)
    assert loaded is not None
    args.districts = loaded.districts
    store = open_store(loaded)
    return store


def _new_password(args: argparse.Namespace) -> str:
    """From one line of stdin (``--password-stdin``), else asked twice without echo."""

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Neues Passwort / new password: ")
    if first != getpass.getpass("Passwort wiederholen / repeat password: "):
        raise AuthError("Die Passwörter stimmen nicht überein / the passwords do not match")
    return first


def _user_command(fn: Any) -> Any:
    """Refusals (unknown user, short password ...) end the command with exit 1 and one line on stderr."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except AuthError as err:
            print(f"warnhub: {err}", file=sys.stderr)
            return 1

    return run


@_user_command
def cmd_user_add(args: argparse.Namespace) -> int:
    with _user_store(args) as store:
        name = auth.normalise_name(args.name)  # every refusal that can come before the password prompt does
        auth.check_scopes(args.scope, registry(), roles=auth.check_roles(args.role), districts=args.districts)
        if auth.get_user(store, name) is not None:
            raise AuthError(f"Benutzer {name!r} gibt es schon / user {name!r} already exists")
        password = _new_password(args)
        user = auth.add_user(store, name, args.role, args.scope, password, actor=getpass.getuser(),
                             registry=registry(), districts=args.districts)
    print(f"Benutzer {user.name} angelegt / user added: roles {', '.join(sorted(user.roles))}; "
          f"scope {', '.join(user.scopes) or '-'}")
    return 0


@_user_command
def cmd_user_set_password(args: argparse.Namespace) -> int:
    with _user_store(args) as store:
        if auth.get_user(store, args.name) is None:  # before asking for a password nobody will use
            raise AuthError(f"Unbekannter Benutzer / unknown user: {args.name!r}")
        password = _new_password(args)
        user = auth.set_password(store, args.name, password, actor=getpass.getuser(), districts=args.districts)
    print(f"Passwort von {user.name} geändert, Sitzungen beendet / password changed, sessions ended")
    return 0


@_user_command
def cmd_user_unlock(args: argparse.Namespace) -> int:
    with _user_store(args) as store:
        user, cleared = auth.unlock(store, args.name, actor=getpass.getuser(), districts=args.districts)
    print(f"Anmeldesperre von {user.name} aufgehoben ({cleared} Einträge gelöscht) / login throttle lifted "
          f"({cleared} entries cleared)")
    return 0


@_user_command
def cmd_user_disable(args: argparse.Namespace) -> int:
    with _user_store(args) as store:
        user = auth.set_disabled(store, args.name, True, actor=getpass.getuser(), districts=args.districts)
    print(f"Benutzer {user.name} gesperrt, Sitzungen beendet / user disabled, sessions ended")
    return 0


@_user_command
def cmd_user_enable(args: argparse.Namespace) -> int:
    with _user_store(args) as store:
        user = auth.set_disabled(store, args.name, False, actor=getpass.getuser(), districts=args.districts)
    print(f"Benutzer {user.name} wieder freigegeben / user enabled")
    return 0


@_user_command
def cmd_user_list(args: argparse.Namespace) -> int:
    with _user_store(args) as store:
        users = auth.list_users(store)
    slug = getattr(args, "district", None)
    if slug:
        district = args.districts.by_slug(slug)
        if district is None:
            raise AuthError(f"Unbekannter Kreis / unknown district: {slug!r} "
                            f"({', '.join(d.slug for d in args.districts)})")
        users = [u for u in users if u["scopes"] and args.districts.of_scopes(u["scopes"]) == district]
    if args.json:
        for u in users:
            print(json.dumps(u, ensure_ascii=False))
        return 0
    if not users:
        print("Keine Benutzer / no users (warnhub user add NAME --role ROLE --scope ARS)")
        return 0
    reg = registry()
    print(f"{'name':20}  {'state':8}  {'roles':24}  {'last login (UTC)':20}  scope")
    for u in users:
        scope = ", ".join(f"{a} {reg.name(a) or ''}".strip() for a in u["scopes"])
        print(f"{u['name'][:20]:20}  {'disabled' if u['disabled'] else 'active':8}  {','.join(u['roles'])[:24]:24}  "
              f"{(u['last_login'] or '-')[:19]:20}  {scope}")
    return 0


@_user_command
def cmd_exercise_token(args: argparse.Namespace) -> int:
    """Print a token (and the subscribe link) that registers one staff test device for exercises."""


    store = _user_store(args)
    try:
        user = auth.get_user(store, args.user)
        if user is None or not user.can("compose"):
            raise AuthError(f"Unbekannter, gesperrter oder nicht berechtigter Benutzer / unknown, disabled or not "
                            f"permitted user (compose): {args.user!r}")
        token, expires_ms = exercise_tokens.issue(store, user.name, via="cli")
    finally:
        store.close()
    expires = datetime.fromtimestamp(expires_ms / 1000, UTC).isoformat(timespec="seconds")
    print(token)
    print(f"/abonnieren?exercise_token={token}  (gültig bis / valid until {expires}, einmal / single use)",
          file=sys.stderr)
    return 0


def _district_of(loaded: LoadedConfig, store: Store, thread: str) -> District:
    """The district whose console warning ``thread`` names (the first for rows from before issue 19)."""
    row = store.conn.execute("SELECT district FROM console_warnings WHERE thread=? LIMIT 1",
                             (ending.console_thread(store, thread),)).fetchone()
    return (loaded.districts.by_ars(row[0]) if row and row[0] else None) or loaded.districts.first


def cmd_cancel(args: argparse.Namespace) -> int:
    """End a public console warning from the command line (hub.console.ending), as the console would."""

    loaded = load_config(args, required=True)
    assert loaded is not None
    with open_store(loaded) as store:
        try:
            district = _district_of(loaded, store, args.thread)  # the warning's district: its config, its operator
            cfg = ConsoleConfig.from_loaded(loaded, geo=loaded.geography(), district=district)
            if args.user:
                user: Any = auth.get_user(store, args.user)
                if user is None or user.disabled:
                    raise AuthError(f"Unbekannter oder gesperrter Benutzer „{args.user}“. / Unknown or disabled "
                                    f"user “{args.user}”.")
            else:
                user = ending.LocalOperator(f"cli:{getpass.getuser()}", (district.ars,))
            sent = ending.cancel(store, cfg, user, args.thread, args.reason)
        except (ConsoleError, AuthError) as err:
            print(f"warnhub: {err}", file=sys.stderr)
            return 1
    done = ending.summary(sent, cfg)
    print(f"Aufhebung gespeichert: {done['thread']} Fassung {done['version']} ({done['identifier']}); der laufende "
          f"Hub veröffentlicht sie binnen 30 s, ein gestoppter beim Start. / Cancel stored; a running hub publishes "
          f"it within 30 s, a stopped one when it starts.")
    return 0
