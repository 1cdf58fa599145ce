"""The ``warnhub`` command line. Every command takes ``--config`` (default ``./config.toml``)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub import __version__, registry
from hub import config as config_mod
from hub.cap import parse as cap_parse
from hub.cap.model import to_json
from hub.cap.repair import repair
from hub.cap.serialize import to_xml
from hub.cap.sign import SignaturePolicy
from hub.cap.validate import Validator, Verdict
from hub.config import LoadedConfig
from hub.errors import ConfigError, HubError, ParseError, StoreError
from hub.ports import Converted

DEFAULT_CONFIG = "config.toml"


def _config(args: argparse.Namespace, *, required: bool) -> LoadedConfig | None:
    """The config; for commands that can do without one, the default file may be absent."""
    path = Path(args.config)
    if not required and not args.config_given and not path.exists():
        return None
    return config_mod.load(path)


def _validator(loaded: LoadedConfig | None) -> Validator:
    if loaded is None:
        return Validator()
    from hub.app import make_validator

    return make_validator(loaded)


def _policy(loaded: LoadedConfig | None) -> SignaturePolicy:
    return SignaturePolicy(loaded.cfg.validation.signature_policy) if loaded else SignaturePolicy.VERIFY


def _files(paths: list[str]) -> Iterator[Path]:
    for name in paths:
        path = Path(name)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        else:
            yield path


def _read(path: Path, limit: int) -> bytes:
    with path.open("rb") as fh:
        return fh.read(limit + 1)


def cmd_validate(args: argparse.Namespace) -> int:
    loaded = _config(args, required=False)
    validator = _validator(loaded)
    rejected = 0
    for path in _files(args.paths):
        try:
            data = _read(path, validator.max_bytes)
        except OSError as err:
            report_dict = {"path": str(path), "verdict": "rejected", "cap_version": None,
                           "errors": [f"cannot read: {err.strerror}"], "warnings": [], "signature": "absent"}
            rejected += 1
            _print_report(args, report_dict)
            continue
        report = validator.check(data, policy=_policy(loaded), path=str(path))
        rejected += report.verdict is Verdict.REJECTED
        _print_report(args, report.as_dict())
    return 1 if rejected else 0


def _print_report(args: argparse.Namespace, d: dict[str, object]) -> None:
    if args.json:
        print(json.dumps(d, ensure_ascii=False), flush=True)
        return
    line = f"{d['verdict']:8} {d['path']}  CAP {d['cap_version'] or '-'}  signature {d['signature']}"
    print(line)
    for err in d["errors"]:  # type: ignore[attr-defined]
        print(f"    error: {err}")
    for warn in d["warnings"]:  # type: ignore[attr-defined]
        print(f"    warning: {warn}")


def cmd_import(args: argparse.Namespace) -> int:
    loaded = _config(args, required=True)
    assert loaded is not None
    from hub.app import make_validator, open_store
    from hub.intake.documents import Intake

    validator = make_validator(loaded)
    counts = {"new": 0, "duplicate": 0, "conflict": 0, "rejected": 0}
    with open_store(loaded) as store:
        intake = Intake(validator, store)
        for path in _files(args.paths):
            try:
                data = _read(path, validator.max_bytes)
            except OSError as err:
                print(f"rejected  {path}: cannot read: {err.strerror}")
                counts["rejected"] += 1
                continue
            result = intake.ingest(data, origin="cli-import", policy=_policy(loaded), path=str(path))
            counts[result.outcome] += 1
            if result.outcome == "rejected":
                print(f"rejected  {path}: {result.reason}")
            else:
                print(f"{result.outcome:9} {path}  thread {result.thread_id} ({result.state})")
        store.sweep_expired()
        store.audit(getpass.getuser(), "cli.import", ", ".join(args.paths)[:500], counts)
    conflict = f", {counts['conflict']} conflict" if counts["conflict"] else ""
    print(f"{counts['new']} new, {counts['duplicate']} duplicate{conflict}, {counts['rejected']} rejected",
          file=sys.stderr)
    return 1 if counts["rejected"] else 0


def cmd_alerts(args: argparse.Namespace) -> int:
    loaded = _config(args, required=True)
    assert loaded is not None
    from hub.app import open_store
    from hub.decide import decisions

    with open_store(loaded) as store:
        store.sweep_expired()
        threads = store.threads(include_ended=args.all)
        decided = decisions.current_decisions(store, [t.id for t in threads])
        if args.unrouted:
            threads = [t for t in threads if (decided[t.id] or {}).get("decision") == "unrouted"]
        if args.json:
            for t in threads:
                d = t.as_dict()
                d["versions_list"] = store.versions(t.id)
                d["decision"] = decided[t.id]
                print(json.dumps(d, ensure_ascii=False))
            return 0
        if not threads:
            print("Keine aktuellen Meldungen / no current incidents" + ("" if args.all else " (--all shows ended)"))
            return 0
        print(f"{'id':>5}  {'state':9}  {'severity':8}  {'ver':>3}  {'last sent (UTC)':25}  {'decision':9}  headline")
        for t in threads:
            what = (decided[t.id] or {}).get("decision", "pending")
            print(f"{t.id:>5}  {t.state:9}  {t.severity:8}  {t.versions:>3}  {t.last_sent:25}  {what:9}  "
                  f"{t.headline[:70]}")
            if args.why and decided[t.id]:
                print(f"{'':>7}why: {decided[t.id]['why']}")
    return 0


def cmd_drafts(args: argparse.Namespace) -> int:
    """Drafts the rules prepared (from alerts and sensor conditions), waiting for a person to approve them."""
    loaded = _config(args, required=True)
    assert loaded is not None
    from hub.app import open_store
    from hub.decide import decisions

    with open_store(loaded) as store:
        found = decisions.drafts(store, state=None if args.all else "pending")
    if args.json:
        for d in found:
            print(json.dumps(d, ensure_ascii=False))
        return 0
    if not found:
        print("Keine Entwürfe / no drafts waiting")
        return 0
    for d in found:
        texts = d["draft"]["texts"]
        headline = next(iter(texts.values()))["headline"] if texts else ""
        print(f"{d['id']:>5}  {d['state']:8}  {d['kind']:7}  {d['at']}  {d['template']}  {headline[:60]}")
        print(f"{'':>7}rule: {d['rule']}; why: {d['why']}")
    return 0


def convert_file(kind: str, path: Path, max_bytes: int, geojson: Path | None = None) -> list[Converted]:
    """What the hub makes of a saved source payload: the alerts (as the core model) and the adapter's notes."""
    data = _read(path, max_bytes)
    if len(data) > max_bytes:
        raise ParseError(f"larger than {max_bytes} bytes")
    if kind == "cap":
        return [Converted(cap_parse.parse(data, max_bytes=max_bytes).alert)]
    if kind in ("atom", "dwd-zip"):
        return registry.converters()[kind](data)
    if geojson is None and path.suffix == ".json" and path.with_suffix(".geojson").is_file():
        geojson = path.with_suffix(".geojson")  # warnings/{id}.json with its {id}.geojson beside it
    return registry.converters()["nina"](data, geojson=_read(geojson, max_bytes) if geojson else None)


def cmd_convert(args: argparse.Namespace) -> int:
    """Print the alerts as CAP 1.2 or JSON. Certain repairs are made and said on stderr; every alert is validated
    (XSD and semantic checks, the same Validator as ``validate``) before it is written, and refused when it fails."""
    loaded = _config(args, required=False)
    max_bytes = loaded.cfg.validation.max_bytes if loaded else cap_parse.DEFAULT_MAX_BYTES
    try:
        results = convert_file(args.source, Path(args.path), max_bytes * 4 if args.source == "dwd-zip" else max_bytes,
                               Path(args.geojson) if args.geojson else None)
    except (HubError, OSError, ValueError) as err:
        print(f"warnhub: {args.path}: {err}", file=sys.stderr)
        return 1
    if not results:
        print(f"warnhub: {args.path}: no alerts in it", file=sys.stderr)
        return 1
    validator = _validator(loaded)
    out = sys.stdout.buffer
    written = refused = 0
    for conv in results:
        alert, repairs = repair(conv.alert)
        who = f"{alert.sender}/{alert.identifier}"
        for note in conv.notes:
            print(f"note: {who}: {note}", file=sys.stderr)
        for note in repairs:
            print(f"repaired: {who}: {note}", file=sys.stderr)
        xml = to_xml(alert)
        errors = _output_errors(validator, xml)
        if errors:
            refused += 1
            print(f"warnhub: {args.path}: {who}: nicht geschrieben, kein gültiges CAP / refused, not valid CAP: "
                  + "; ".join(errors), file=sys.stderr)
            continue
        if args.to == "cap":
            out.write((b"\n" if written else b"") + xml + (b"" if xml.endswith(b"\n") else b"\n"))
        else:
            out.write(to_json(alert) + b"\n")
        written += 1
    return 1 if refused else 0


def _output_errors(validator: Validator, xml: bytes) -> list[str]:
    """What ``validate`` would flag as an error in the CAP convert is about to write (the input's signature does not
    travel into the output, so signatures are not checked)."""
    report = validator.check(xml, policy=SignaturePolicy.IGNORE)
    return list(report.errors) if report.errors or report.verdict is Verdict.REJECTED else []


def cmd_sources(args: argparse.Namespace) -> int:
    loaded = _config(args, required=True)
    assert loaded is not None
    from hub.app import open_store, source_type

    with open_store(loaded) as store:
        recorded = {r["name"]: r for r in store.source_health()}
    rows = []
    for settings in loaded.cfg.sources:
        rec = recorded.get(settings.name)
        rows.append(rec or {"name": settings.name, "type": source_type(settings), "state": "never run",
                            "last_error": "", "last_ok": None, "since": None, "failures": 0, "detail": {},
                            "updated_at": None})
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return 0
    print(f"{'source':20}  {'type':10}  {'state':9}  {'since (UTC)':20}  {'last good (UTC)':20}  last error")
    for r in rows:
        print(f"{r['name'][:20]:20}  {r['type'][:10]:10}  {r['state']:9}  {(r['since'] or '-')[:19]:20}  "
              f"{(r['last_ok'] or '-')[:19]:20}  {r['last_error'][:80]}")
    stamps = [r["updated_at"] for r in rows if r["updated_at"]]
    if stamps:
        print(f"(as recorded by the hub; last record {max(stamps)})")
    down = [r["name"] for r in rows if r["state"] == "down"]
    return 3 if down else 0


def cmd_check(args: argparse.Namespace) -> int:
    loaded = _config(args, required=True)
    assert loaded is not None
    from hub.app import build_sources, make_validator
    from hub.decide.router import open_rules

    make_validator(loaded)
    sources = build_sources(loaded)
    geo = loaded.geography()
    live = open_rules(loaded.rules_dir, sensors=[s.id for s in loaded.sensors], geo=geo)
    rules = live.current.rules if live.current else ()
    extra = f", {len(geo.extra)} extra boundar{'y' if len(geo.extra) == 1 else 'ies'}" if geo.extra else ""
    print(f"{loaded.file}: ok ({loaded.cfg.hub.name}, {len(sources)} source(s), {len(rules)} rule(s) in "
          f"{loaded.rules_dir}{extra}, store {loaded.db_path})")
    _review_warnings(Path(loaded.rules_dir), datetime.now(UTC))
    return 0


def _review_warnings(rules_dir: Path, now: datetime) -> None:
    """A warning line per console template due for review (file and dates): for people to act on, not a failure."""
    from hub.decide.rules.templates import COMPOSE_FOLDER, due_for_review, load_templates, review_notice

    templates = load_templates(rules_dir / COMPOSE_FOLDER, [], compose=True)  # their errors: `warnhub rules check`
    for template in due_for_review(list(templates.values()), now):
        print(f"warning: {review_notice(template)}")


def cmd_run(args: argparse.Namespace) -> int:
    loaded = _config(args, required=True)
    assert loaded is not None
    from hub.app import main

    return main(loaded)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    loaded = _config(args, required=True)
    assert loaded is not None
    from hub.app import open_store
    from hub.store.audit import verify_archive

    with open_store(loaded) as store:
        result = store.verify_audit()
        files = [(f, verify_archive(store, Path(f))) for f in args.archive or ()]
    code = 0
    since = f" (from archived entry {result.anchor})" if result.anchor else ""
    if result.ok:
        print(f"audit log intact: {result.entries} entries{since}")
    else:
        print(f"audit log BROKEN at entry {result.first_bad}: {result.reason} ({result.entries} entries verified)")
        code = 1
    for name, check in files:
        if check.ok:
            print(f"archive intact: {name}: {check.entries} entries")
        else:
            print(f"archive BROKEN: {check.reason} ({check.entries} entries verified)")
            code = 1
    return code


def cmd_audit_archive(args: argparse.Namespace) -> int:
    loaded = _config(args, required=True)
    assert loaded is not None
    from hub.app import open_store
    from hub.store.audit import archive

    before = _date_arg(args.before)
    if before is None:
        print(f"warnhub: --before {args.before!r}: kein Datum / not a date (2025-01-31 or 2025-01-31T12:00+01:00)",
              file=sys.stderr)
        return 2
    try:
        with open_store(loaded) as store:
            done = archive(store, before, Path(args.out).resolve(), actor=getpass.getuser())
    except StoreError as err:
        print(f"warnhub: nichts archiviert / nothing archived: {err}", file=sys.stderr)
        return 1
    if not done.entries:
        print(f"nothing to archive: no audit entry before {before.isoformat()}")
        return 0
    print(f"archived entries {done.first_seq}-{done.last_seq} ({done.entries}) to {done.file}; "
          f"sha256 {done.sha256}; the chain continues from hash {done.hash}")
    return 0


def _date_arg(text: str) -> datetime | None:
    """``2025-01-31`` (midnight UTC) or an ISO 8601 time (UTC if it names no offset)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def cmd_area(args: argparse.Namespace) -> int:
    """What a CAP file's areas cover, seen from the district (config hub.district_ars, else Lüchow-Dannenberg)."""
    from hub import geo

    loaded = _config(args, required=False)
    district = loaded.cfg.hub.district_ars if loaded else geo.DEFAULT_DISTRICT
    max_bytes = loaded.cfg.validation.max_bytes if loaded else cap_parse.DEFAULT_MAX_BYTES
    try:
        alert = cap_parse.parse(_read(Path(args.path), max_bytes), max_bytes=max_bytes).alert
    except (HubError, OSError) as err:
        print(f"warnhub: {args.path}: {err}", file=sys.stderr)
        return 1
    try:
        res = geo.resolve(alert, district, geo=loaded.geography() if loaded else None)
    except ValueError as err:
        print(f"warnhub: {err}", file=sys.stderr)
        return 2
    summary = res.summary(f"{alert.sender}/{alert.identifier}")
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
        return 0
    reg = geo.registry()
    print(f"alert     {summary['alert']}")
    print(f"district  {district} {reg.name(district) or ''}: {'touched' if res.inside_district else 'not touched'}")
    basis = {"area": "by area", "count": "by number of geocodes", "none": "nothing to measure"}[res.basis]
    print(f"outside   {res.outside_share:.1%} of the area ({basis}; {res.area_km2:.1f} km², "
          f"{res.inside_km2:.1f} km² inside)")
    print(f"regions   {len(res.regions)}")
    for r in res.regions:
        share = f"{r.share:6.1%}" if r.share is not None else "     -"
        print(f"  {r.ars}  {r.level:8}  {r.coverage:7}  {share}  {r.name or ''}")
    for code in res.unresolved:
        print(f"unresolved  {code}")
    for note in res.notes:
        print(f"note      {note}")
    return 0


def _rules_folder(args: argparse.Namespace, loaded: LoadedConfig | None, given: str | None) -> Path:
    """The rules folder: as given, else ``rules/`` beside the config file, else ./rules."""
    if given:
        return Path(given)
    return loaded.rules_dir if loaded else Path("rules")


def _sensors(loaded: LoadedConfig | None) -> list[config_mod.SensorConfig] | None:
    return loaded.sensors if loaded is not None else None


def cmd_rules_check(args: argparse.Namespace) -> int:
    from hub.decide.rules import RuleSet

    loaded = _config(args, required=False)
    folder = _rules_folder(args, loaded, args.dir)
    sensors = _sensors(loaded)
    ids = [s.id for s in sensors] if sensors is not None else None
    problems = RuleSet.check(folder, sensors=ids)
    errors = [p for p in problems if not p.warning]
    for problem in problems:
        print(json.dumps(problem.as_dict(), ensure_ascii=False) if args.json else str(problem))
    if errors:
        print(f"warnhub: {folder}: {len(errors)} error(s); these rules would not be loaded", file=sys.stderr)
        return 1
    rules = RuleSet.load(folder, sensors=ids, geo=loaded.geography() if loaded else None)
    note = "" if ids is not None else "; sensor names not checked (no config)"
    print(f"{folder}: ok ({len(rules.alert_rules)} alert rules, {len(rules.sensor_rules)} sensor rules, "
          f"{len(rules.templates)} templates, {len(problems)} warning(s){note})", file=sys.stderr if args.json
          else sys.stdout)
    return 0


def cmd_rules_replay(args: argparse.Namespace) -> int:
    from hub.decide.rules import RuleSet
    from hub.decide.rules.replay import replay

    loaded = _config(args, required=False)
    folder = _rules_folder(args, loaded, args.rules)
    sensors = _sensors(loaded)
    rules = RuleSet.load(folder, sensors=[s.id for s in sensors] if sensors is not None else None,
                         geo=loaded.geography() if loaded else None)
    failed = 0
    for d in replay(rules, list(_files(args.paths)), district=loaded.cfg.hub.district_ars if loaded else None,
                    origin=args.origin, units={s.id: s.unit for s in sensors or []},
                    sensor_ars={s.id: s.ars for s in sensors or [] if s.ars}):
        if "error" in d:
            failed += 1
        if args.json:
            print(json.dumps(d, ensure_ascii=False), flush=True)
        elif "error" in d:
            print(f"error     {d['input']}: {d['error']}")
        else:
            what = d["alert"] or f"sensor {d.get('sensor', '-')}"
            print(f"{d['decision']:9} {'PUSH' if d['push'] else '    '} {','.join(d['channels']) or '-':20} "
                  f"{d['input']}  {what}  {d.get('headline', '')[:60]}")
            print(f"          why: {d['why']}")
    return 1 if failed else 0


def _user_store(args: argparse.Namespace) -> Any:
    """The configured store with the access tables in place."""
    from hub.access import auth
    from hub.app import open_store

    loaded = _config(args, required=True)
    assert loaded is not None
    store = open_store(loaded)
    auth.migrate(store)
    return store


def _new_password(args: argparse.Namespace) -> str:
    """From one line of stdin (``--password-stdin``), else asked twice without echo."""
    from hub.errors import AuthError

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Neues Passwort / new password: ")
    if first != getpass.getpass("Passwort wiederholen / repeat password: "):
        raise AuthError("Die Passwörter stimmen nicht überein / the passwords do not match")
    return first


def _user_command(fn: Any) -> Any:
    """Refusals (unknown user, short password ...) end the command with exit 1 and one line on stderr."""
    from hub.errors import AuthError

    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except AuthError as err:
            print(f"warnhub: {err}", file=sys.stderr)
            return 1

    return run


@_user_command
def cmd_user_add(args: argparse.Namespace) -> int:
    from hub.access import auth
    from hub.errors import AuthError
    from hub.geo import registry

    with _user_store(args) as store:
        name = auth.normalise_name(args.name)  # every refusal that can come before the password prompt does
        auth.check_roles(args.role)
        auth.check_scopes(args.scope, registry())
        if auth.get_user(store, name) is not None:
            raise AuthError(f"Benutzer {name!r} gibt es schon / user {name!r} already exists")
        password = _new_password(args)
        user = auth.add_user(store, name, args.role, args.scope, password, actor=getpass.getuser(),
                             registry=registry())
    print(f"Benutzer {user.name} angelegt / user added: roles {', '.join(sorted(user.roles))}; "
          f"scope {', '.join(user.scopes)}")
    return 0


@_user_command
def cmd_user_set_password(args: argparse.Namespace) -> int:
    from hub.access import auth
    from hub.errors import AuthError

    with _user_store(args) as store:
        if auth.get_user(store, args.name) is None:  # before asking for a password nobody will use
            raise AuthError(f"Unbekannter Benutzer / unknown user: {args.name!r}")
        password = _new_password(args)
        user = auth.set_password(store, args.name, password, actor=getpass.getuser())
    print(f"Passwort von {user.name} geändert, Sitzungen beendet / password changed, sessions ended")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """End a public console warning from the command line (hub.console.ending), as the console would."""
    from hub import console
    from hub.access import auth
    from hub.app import open_store
    from hub.console import ending
    from hub.errors import AuthError

    loaded = _config(args, required=True)
    assert loaded is not None
    c = loaded.cfg.console
    cfg = console.ConsoleConfig.from_loaded(loaded, geo=loaded.geography(), four_eyes=console.FourEyes(
        required_for=frozenset(c.four_eyes), single_person_extreme=c.single_person_extreme,
        end_needs_two=c.four_eyes_end))
    with open_store(loaded) as store:
        auth.migrate(store)
        try:
            if args.user:
                user: Any = auth.get_user(store, args.user)
                if user is None or user.disabled:
                    raise AuthError(f"Unbekannter oder gesperrter Benutzer „{args.user}“. / Unknown or disabled "
                                    f"user “{args.user}”.")
            else:
                user = ending.LocalOperator(f"cli:{getpass.getuser()}", (loaded.cfg.hub.district_ars,))
            sent = ending.cancel(store, cfg, user, args.thread, args.reason)
        except (console.ConsoleError, AuthError) as err:
            print(f"warnhub: {err}", file=sys.stderr)
            return 1
    done = ending.summary(sent)
    print(f"Aufhebung gespeichert: {done['thread']} Fassung {done['version']} ({done['identifier']}); der laufende "
          f"Hub veröffentlicht sie binnen 30 s, ein gestoppter beim Start. / Cancel stored; a running hub publishes "
          f"it within 30 s, a stopped one when it starts.")
    return 0


@_user_command
def cmd_user_unlock(args: argparse.Namespace) -> int:
    from hub.access import auth

    with _user_store(args) as store:
        user, cleared = auth.unlock(store, args.name, actor=getpass.getuser())
    print(f"Anmeldesperre von {user.name} aufgehoben ({cleared} Einträge gelöscht) / login throttle lifted "
          f"({cleared} entries cleared)")
    return 0


@_user_command
def cmd_user_disable(args: argparse.Namespace) -> int:
    from hub.access import auth

    with _user_store(args) as store:
        user = auth.set_disabled(store, args.name, True, actor=getpass.getuser())
    print(f"Benutzer {user.name} gesperrt, Sitzungen beendet / user disabled, sessions ended")
    return 0


@_user_command
def cmd_user_enable(args: argparse.Namespace) -> int:
    from hub.access import auth

    with _user_store(args) as store:
        user = auth.set_disabled(store, args.name, False, actor=getpass.getuser())
    print(f"Benutzer {user.name} wieder freigegeben / user enabled")
    return 0


@_user_command
def cmd_user_list(args: argparse.Namespace) -> int:
    from hub.access import auth
    from hub.geo import registry

    with _user_store(args) as store:
        users = auth.list_users(store)
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
    from datetime import UTC, datetime

    from hub.access import auth, exercise_tokens
    from hub.errors import AuthError

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


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help=f"config file (default ./{DEFAULT_CONFIG})")
    p = argparse.ArgumentParser(prog="warnhub", description="Civil-protection warning hub", parents=[common])
    p.add_argument("--version", action="version", version=f"warnhub {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

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
    sub.add_parser("run", parents=[common], help="run the hub").set_defaults(fn=cmd_run)

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

    au = sub.add_parser("audit", parents=[common], help="audit log")
    au_sub = au.add_subparsers(dest="audit_command", required=True)
    av = au_sub.add_parser("verify", parents=[common], help="verify the hash chain (and archive files)")
    av.add_argument("--archive", action="append", metavar="FILE", help="also verify this archive file against its "
                    "anchor; repeat for several")
    av.set_defaults(fn=cmd_audit_verify)
    aa = au_sub.add_parser("archive", parents=[common],
                           help="move the entries before a date to a file, verified, and anchor the chain after them")
    aa.add_argument("--before", required=True, metavar="DATE", help="2025-01-31 (UTC midnight) or an ISO time")
    aa.add_argument("--out", required=True, metavar="FILE", help="the archive (JSON lines); must not exist")
    aa.set_defaults(fn=cmd_audit_archive)

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
    ua.add_argument("--role", action="append", required=True, choices=("viewer", "author", "approver", "admin"),
                    help="repeat for several roles")
    ua.add_argument("--scope", action="append", required=True, metavar="ARS",
                    help="region the user may warn (12-digit ARS, or a 5-digit Kreis key); repeat for several")
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
    ul.set_defaults(fn=cmd_user_list)
    et = sub.add_parser("exercise-token", parents=[common],
                        help="print a single-use token (24 h) that registers a staff test device for exercises")
    et.add_argument("--user", required=True, help="the console user (permission compose) it is issued for")
    et.set_defaults(fn=cmd_exercise_token)
    return p


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
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
