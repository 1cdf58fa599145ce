"""The ``warnhub`` command line: the parser (each command module adds its subcommands) and ``main``.
Every command takes ``--config`` (default ``./config.toml``)."""

from __future__ import annotations

import argparse
import sys
from typing import TypeAlias

from hub import __version__
from hub.cli.audit import cmd_audit_archive, cmd_audit_verify
from hub.cli.common import DEFAULT_CONFIG
from hub.cli.convert import cmd_convert
from hub.cli.documents import (
    cmd_alerts,
    cmd_area,
    cmd_check,
    cmd_drafts,
    cmd_import,
    cmd_run,
    cmd_sources,
    cmd_validate,
)
from hub.cli.rules import cmd_rules_check, cmd_rules_replay
from hub.cli.store import cmd_store_copy
from hub.cli.users import (
    cmd_cancel,
    cmd_exercise_token,
    cmd_user_add,
    cmd_user_disable,
    cmd_user_enable,
    cmd_user_list,
    cmd_user_set_password,
    cmd_user_unlock,
)
from hub.errors import ConfigError, StoreError

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"  # the type add_subparsers() returns


def parser() -> argparse.ArgumentParser:
    """The whole command line: each group of commands adds its subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help=f"config file (default ./{DEFAULT_CONFIG})")
    p = argparse.ArgumentParser(prog="warnhub", description="Civil-protection warning hub", parents=[common])
    p.add_argument("--version", action="version", version=f"warnhub {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    for add in (_document_commands, _rules_commands, _audit_commands, _store_commands, _user_commands):
        add(sub, common)
    return p


def _document_commands(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    """validate, import, alerts, drafts, convert, sources, area, check, run."""
    v = sub.add_parser("validate", parents=[common], help="validate CAP files (valid / accepted / rejected)")
    v.add_argument("--json", action="store_true", help="one JSON object per line per file")
    v.add_argument("paths", nargs="+")
    v.set_defaults(fn=cmd_validate)

    i = sub.add_parser("import", parents=[common], help="import CAP files into the store")
    i.add_argument("paths", nargs="+")
    i.set_defaults(fn=cmd_import)

    a = sub.add_parser("alerts", parents=[common], help="list incidents (threads) with their current state")
    a.add_argument("--all", action="store_true", help="include cancelled and expired")
    a.add_argument("--json", action="store_true", help="one JSON object per line per thread")
    a.add_argument("--unrouted", action="store_true", help="only those no rule routes (stored, sent nowhere)")
    a.add_argument("--why", action="store_true", help="print the rules' explanation under each")
    a.set_defaults(fn=cmd_alerts)

    dr = sub.add_parser("drafts", parents=[common], help="drafts from rules and sensor conditions awaiting approval")
    dr.add_argument("--all", action="store_true", help="include approved and rejected ones")
    dr.add_argument("--json", action="store_true", help="one JSON object per line per draft")
    dr.set_defaults(fn=cmd_drafts)

    c = sub.add_parser("convert", parents=[common],
                       help="print what the hub makes of a saved source payload, as CAP 1.2 or JSON")
    c.add_argument("--from", dest="source", choices=("cap", "atom", "dwd-zip", "nina"), default="cap",
                   help="payload kind: CAP XML, a CAP Atom/RSS feed, a DWD CAP zip, NINA JSON (default cap)")
    c.add_argument("--to", choices=("cap", "json"), required=True)
    c.add_argument("--geojson", help="NINA: the warning's .geojson (default: the .geojson beside PATH)")
    c.add_argument("path")
    c.set_defaults(fn=cmd_convert)

    so = sub.add_parser("sources", parents=[common], help="health of each configured source (exit 3 if one is down)")
    so.add_argument("--json", action="store_true", help="one JSON object per line per source")
    so.set_defaults(fn=cmd_sources)

    ar = sub.add_parser("area", parents=[common],
                        help="which regions a CAP file's areas cover and how much lies outside the district")
    ar.add_argument("--json", action="store_true", help="one JSON object")
    ar.add_argument("path")
    ar.set_defaults(fn=cmd_area)

    sub.add_parser("check", parents=[common], help="validate the config as run would").set_defaults(fn=cmd_check)
    rn = sub.add_parser("run", parents=[common], help="run the hub")
    rn.add_argument("--role", action="append", choices=("all", "ingest", "decide", "deliver", "web"),
                    help="what this node does (repeatable; default all): ingest = sources and intake, decide = "
                         "rules and publishing, deliver = outbox workers, web = HTTP server; roles other than all "
                         "need PostgreSQL ([store] url). A node without web answers /healthz only")
    rn.set_defaults(fn=cmd_run)

def _rules_commands(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    """rules check, rules replay."""
    ru = sub.add_parser("rules", parents=[common], help="check the operators' rules and replay inputs against them")
    ru_sub = ru.add_subparsers(dest="rules_command", required=True)
    rc = ru_sub.add_parser("check", parents=[common],
                           help="report every error with file, line and field (exit 1 on errors)")
    rc.add_argument("--json", action="store_true", help="one JSON object per line per problem")
    rc.add_argument("dir", nargs="?", help="rules folder (default: rules/ beside the config file)")
    rc.set_defaults(fn=cmd_rules_check)
    rr = ru_sub.add_parser("replay", parents=[common],
                           help="what the rules would do with CAP files, saved payloads or sensor readings")
    rr.add_argument("--rules", help="rules folder (default: rules/ beside the config file)")
    rr.add_argument("--origin", help="evaluate as if from this source (default: the alert's provider, e.g. dwd)")
    rr.add_argument("--json", action="store_true", help="one JSON object per line per decision")
    rr.add_argument("paths", nargs="+")
    rr.set_defaults(fn=cmd_rules_replay)

def _audit_commands(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    """audit verify, audit archive."""
    au = sub.add_parser("audit", parents=[common], help="audit log")
    au_sub = au.add_subparsers(dest="audit_command", required=True)
    av = au_sub.add_parser("verify", parents=[common], help="verify the hash chain (and archive files)")
    av.add_argument("--archive", action="append", metavar="FILE", help="also verify this archive file against its "
                    "anchor; repeat for several")
    av.add_argument("--district", metavar="SLUG", help="only this district's chain")
    av.set_defaults(fn=cmd_audit_verify)
    aa = au_sub.add_parser("archive", parents=[common],
                           help="move the entries before a date to a file, verified, and anchor the chain after them")
    aa.add_argument("--before", required=True, metavar="DATE", help="2025-01-31 (UTC midnight) or an ISO time")
    aa.add_argument("--out", required=True, metavar="FILE", help="the archive (JSON lines); must not exist")
    aa.set_defaults(fn=cmd_audit_archive)

def _store_commands(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    """store copy."""
    st = sub.add_parser("store", parents=[common], help="the store")
    st_sub = st.add_subparsers(dest="store_command", required=True)
    sc = st_sub.add_parser("copy", parents=[common],
                           help="copy the SQLite store into an empty PostgreSQL database (ids kept; hub stopped)")
    sc.add_argument("--to", required=True, metavar="URL", help="postgresql://user@host:port/db")
    sc.add_argument("--password-env", metavar="NAME", help="the environment variable holding the password")
    sc.set_defaults(fn=cmd_store_copy)


def _user_commands(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    """cancel, user ..., exercise-token."""
    ca = sub.add_parser("cancel", parents=[common],
                        help="cancel a public console warning now (when the console is unreachable; audited)")
    ca.add_argument("thread", help="the warning: console thread c…, public thread w… or the incident number")
    ca.add_argument("--reason", required=True, help="why it ends (at least [console] min reason, 20 characters)")
    ca.add_argument("--user", help="the console user who ends it (approve permission); default: cli:<os user>")
    ca.set_defaults(fn=cmd_cancel)

    us = sub.add_parser("user", parents=[common],
                        help="console users: add, set-password, unlock, disable, enable, list")
    us_sub = us.add_subparsers(dest="user_command", required=True)
    ua = us_sub.add_parser("add", parents=[common], help="add a user (asks for the password twice)")
    ua.add_argument("name")
    ua.add_argument("--role", action="append", required=True,
                    choices=("viewer", "author", "approver", "admin", "provider"),
                    help="repeat for several roles (provider: alone and without a scope)")
    ua.add_argument("--scope", action="append", default=[], metavar="ARS",
                    help="region the user may warn (12-digit ARS, or a 5-digit Kreis key); repeat for several; "
                         "required except for a provider; with several districts all in one of them")
    ua.add_argument("--password-stdin", action="store_true", help="read the password from one line of stdin")
    ua.set_defaults(fn=cmd_user_add)
    up = us_sub.add_parser("set-password", parents=[common],
                           help="set a new password (ends the user's sessions, lifts its login throttle)")
    up.add_argument("name")
    up.add_argument("--password-stdin", action="store_true", help="read the password from one line of stdin")
    up.set_defaults(fn=cmd_user_set_password)
    uu = us_sub.add_parser("unlock", parents=[common],
                           help="lift the login throttle of a user (its waits and failures are forgotten, audited)")
    uu.add_argument("name")
    uu.set_defaults(fn=cmd_user_unlock)
    ud = us_sub.add_parser("disable", parents=[common], help="disable a user (ends the user's sessions)")
    ud.add_argument("name")
    ud.set_defaults(fn=cmd_user_disable)
    ue = us_sub.add_parser("enable", parents=[common], help="enable a disabled user again")
    ue.add_argument("name")
    ue.set_defaults(fn=cmd_user_enable)
    ul = us_sub.add_parser("list", parents=[common], help="list users")
    ul.add_argument("--json", action="store_true", help="one JSON object per line per user")
    ul.add_argument("--district", metavar="SLUG", help="only the users of this district")
    ul.set_defaults(fn=cmd_user_list)
    et = sub.add_parser("exercise-token", parents=[common],
                        help="print a single-use token (24 h) that registers a staff test device for exercises")
    et.add_argument("--user", required=True, help="the console user (permission compose) it is issued for")
    et.set_defaults(fn=cmd_exercise_token)

def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.config_given = getattr(args, "config", None) is not None
    if not args.config_given:
        args.config = DEFAULT_CONFIG
    try:
        return int(args.fn(args))
    except ConfigError as err:
        print(f"warnhub: config error: {err}", file=sys.stderr)
        return 2
    except StoreError as err:  # a full disk, no store yet: one line, the operator knows what to do
        print(f"warnhub: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
