"""``warnhub validate``, ``import``, ``alerts``, ``drafts``, ``sources``, ``area``, ``check`` and ``run``."""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hub.app import build_sources, main, make_validator, open_store, source_type
from hub.cap import parse as cap_parse
from hub.cap.validate import Verdict
from hub.cli.common import files_of, load_config, policy_of, print_report, read_input, read_store, validator_of
from hub.cli.rules import review_warnings
from hub.config.load import LoadedConfig
from hub.config.sections import DwdSourceConfig
from hub.decide import canary, decisions
from hub.decide.router import DistrictRules, open_districts
from hub.errors import HubError
from hub.geo.registry import DEFAULT_DISTRICT, registry
from hub.geo.resolve import resolve
from hub.intake.documents import Intake


def cmd_validate(args: argparse.Namespace) -> int:
    loaded = load_config(args, required=False)
    validator = validator_of(loaded)
    rejected = 0
    for path in files_of(args.paths):
        try:
            data = read_input(path, validator.max_bytes)
        except OSError as err:
            report_dict = {"path": str(path), "verdict": "rejected", "cap_version": None,
                           "errors": [f"cannot read: {err.strerror}"], "warnings": [], "signature": "absent"}
            rejected += 1
            print_report(args, report_dict)
            continue
        report = validator.check(data, policy=policy_of(loaded), path=str(path))
        rejected += report.verdict is Verdict.REJECTED
        print_report(args, report.as_dict())
    return 1 if rejected else 0


def cmd_import(args: argparse.Namespace) -> int:
    loaded = load_config(args, required=True)
    assert loaded is not None

    validator = make_validator(loaded)
    counts = {"new": 0, "duplicate": 0, "conflict": 0, "rejected": 0}
    with open_store(loaded) as store:
        intake = Intake(validator, store)
        for path in files_of(args.paths):
            try:
                data = read_input(path, validator.max_bytes)
            except OSError as err:
                print(f"rejected  {path}: cannot read: {err.strerror}")
                counts["rejected"] += 1
                continue
            result = intake.ingest(data, origin="cli-import", policy=policy_of(loaded), path=str(path))
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
    loaded = load_config(args, required=True)
    assert loaded is not None

    with read_store(loaded) as store:  # read-only: what the hub's sweep would end shows as expired, unwritten
        ended = set(store.expired())
        canaries = {r[0] for r in store.conn.execute("SELECT DISTINCT thread_id FROM alerts WHERE origin = ?",
                                                     (canary.ORIGIN,))}  # --all shows them, decision "canary"
        threads = [t if t.id not in ended else dataclasses.replace(t, state="expired")
                   for t in store.threads(include_ended=True)
                   if args.all or (t.state in ("active", "updated") and t.id not in ended | canaries)]
        by_district = decisions.current_decisions(store, [t.id for t in threads], [d.ars for d in loaded.districts])
        decided = {t: next(iter(found.values()), None) for t, found in by_district.items()}  # the first district's
        if args.unrouted:
            threads = [t for t in threads if any(f.decision == "unrouted" for f in by_district[t.id].values())]
        if args.json:
            for t in threads:
                d = t.as_dict()
                d["versions_list"] = store.versions(t.id)
                found = decided[t.id]
                d["decision"] = found.as_dict() if found is not None else None
                d["decisions"] = {k: v.as_dict() for k, v in by_district[t.id].items()}  # each district's
                print(json.dumps(d, ensure_ascii=False))
            return 0
        if not threads:
            print("Keine aktuellen Meldungen / no current incidents" + ("" if args.all else " (--all shows ended)"))
            return 0
        print(f"{'id':>5}  {'state':9}  {'severity':8}  {'ver':>3}  {'last sent (UTC)':25}  {'decision':9}  headline")
        for t in threads:
            found = decided[t.id]
            what = "/".join(f.decision for f in by_district[t.id].values()) or "pending"
            print(f"{t.id:>5}  {t.state:9}  {t.severity:8}  {t.versions:>3}  {t.last_sent:25}  {what:9}  "
                  f"{t.headline[:70]}")
            if args.why and found is not None:
                print(f"{'':>7}why: {found.why}")
    return 0


def cmd_drafts(args: argparse.Namespace) -> int:
    """Drafts the rules prepared (from alerts and sensor conditions), waiting for a person to approve them."""
    loaded = load_config(args, required=True)
    assert loaded is not None

    with read_store(loaded) as store:
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


STANDBY_FRESH_S = 60.0
"""Many nodes: a node counts as standing by for a source while it tried to take it within this (or three of the
source's intervals, if longer)."""


def cmd_sources(args: argparse.Namespace) -> int:
    loaded = load_config(args, required=True)
    assert loaded is not None

    fresh = max([STANDBY_FRESH_S] + [3 * float(getattr(s, "interval_s", 0)) for s in loaded.cfg.sources])
    with read_store(loaded) as store:
        recorded = {r["name"]: r for r in store.source_health()}
        standby = store.standing_by(datetime.now(UTC) - timedelta(seconds=fresh))
    rows = []
    for settings in loaded.cfg.sources:
        rec = recorded.get(settings.name)
        rows.append((rec or {"name": settings.name, "type": source_type(settings), "state": "never run",
                             "last_error": "", "last_ok": None, "since": None, "failures": 0, "detail": {},
                             "updated_at": None, "node": None})
                    | {"standby": [n for n in standby.get(settings.name, []) if n != (rec or {}).get("node")]})
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return 0
    print(f"{'source':20}  {'type':10}  {'state':9}  {'since (UTC)':20}  {'last good (UTC)':20}  last error")
    for r in rows:
        print(f"{r['name'][:20]:20}  {r['type'][:10]:10}  {r['state']:9}  {(r['since'] or '-')[:19]:20}  "
              f"{(r['last_ok'] or '-')[:19]:20}  {r['last_error'][:80]}")
    for r in rows:  # many nodes: who polls, who stands by (German first: operators read it)
        if r["node"] or r["standby"]:
            waiting = ", ".join(r["standby"]) or "-"
            print(f"{r['name']}: abgerufen von / polled by {r['node'] or '-'}; "
                  f"in Bereitschaft / standing by: {waiting}")
    stamps = [r["updated_at"] for r in rows if r["updated_at"]]
    if stamps:
        print(f"(as recorded by the hub; last record {max(stamps)})")
    down = [r["name"] for r in rows if r["state"] == "down"]
    return 3 if down else 0


def cmd_check(args: argparse.Namespace) -> int:
    loaded = load_config(args, required=True)
    assert loaded is not None

    make_validator(loaded)
    sources = build_sources(loaded)
    geo = loaded.geography()
    sensors = [s.id for s in loaded.sensors]
    districts = open_districts(loaded.districts, sensors=sensors, geo=geo)
    live = districts[0].live
    rules = live.current.rules if live.current else ()
    extra = f", {len(geo.extra)} extra boundar{'y' if len(geo.extra) == 1 else 'ies'}" if geo.extra else ""
    print(f"{loaded.file}: ok ({loaded.cfg.hub.name}, {len(sources)} source(s), {len(rules)} rule(s) in "
          f"{live.folder}{extra}, store {loaded.db_path})")
    if loaded.districts.multi:
        _check_districts(loaded, districts, geo.registry)
    for folder in dict.fromkeys(d.live.folder for d in districts):
        if folder.is_dir():
            review_warnings(folder, datetime.now(UTC))
    return 0


def _check_districts(loaded: LoadedConfig, districts: list[DistrictRules], reg: Any) -> None:
    """One line per district (its Kreis, sender, rules), and a warning for a district without a DWD warncell of its
    own in any ``dwd`` source (DWD's warnings for it then come only where another district's cell reaches it)."""
    cells = [c for s in loaded.cfg.sources if isinstance(s, DwdSourceConfig) for c in s.warncells]
    for d, rules in zip(loaded.districts, districts, strict=True):
        current = rules.live.current
        print(f"  district {d.slug} ({d.ars}, {d.name}): sender {d.sender}, "
              f"{len(current.rules) if current else 0} rule(s) in {rules.live.folder}")
        if any(isinstance(s, DwdSourceConfig) for s in loaded.cfg.sources) and not any(
                (w := reg.warncell(c)) is not None and d.ars in w.kreise for c in cells):
            print(f"warning: district {d.slug} ({d.ars}) has no warncell of its own in any dwd source: DWD's "
                  "warnings for it are not fetched / Bezirk ohne eigene DWD-Warnzelle")


def cmd_run(args: argparse.Namespace) -> int:
    loaded = load_config(args, required=True)
    assert loaded is not None

    return main(loaded, getattr(args, "role", None))


def cmd_area(args: argparse.Namespace) -> int:
    """What a CAP file's areas cover, seen from the district (config hub.district_ars, else Lüchow-Dannenberg)."""

    loaded = load_config(args, required=False)
    district = loaded.cfg.hub.district_ars if loaded else DEFAULT_DISTRICT
    max_bytes = loaded.cfg.validation.max_bytes if loaded else cap_parse.DEFAULT_MAX_BYTES
    try:
        alert = cap_parse.parse(read_input(Path(args.path), max_bytes), max_bytes=max_bytes).alert
    except (HubError, OSError) as err:
        print(f"warnhub: {args.path}: {err}", file=sys.stderr)
        return 1
    try:
        res = resolve(alert, district, geo=loaded.geography() if loaded else None)
    except ValueError as err:
        print(f"warnhub: {err}", file=sys.stderr)
        return 2
    summary = res.summary(f"{alert.sender}/{alert.identifier}")
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
        return 0
    reg = registry()
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
