"""``warnhub rules check`` and ``rules replay``: the operators' rules checked and tried out."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from hub.cli.common import files_of, load_config
from hub.config import sections as config_mod
from hub.config.load import LoadedConfig
from hub.decide.rules.engine import RuleSet
from hub.decide.rules.replay import replay
from hub.decide.rules.template_checks import load_templates
from hub.decide.rules.templates import COMPOSE_FOLDER, due_for_review, review_notice


def review_warnings(rules_dir: Path, now: datetime) -> None:
    """A warning line per console template due for review (file and dates): for people to act on, not a failure."""

    templates = load_templates(rules_dir / COMPOSE_FOLDER, [], compose=True)  # their errors: `warnhub rules check`
    for template in due_for_review(list(templates.values()), now):
        print(f"warning: {review_notice(template)}")


def _rules_folder(args: argparse.Namespace, loaded: LoadedConfig | None, given: str | None) -> Path:
    """The rules folder: as given, else ``rules/`` beside the config file, else ./rules."""
    if given:
        return Path(given)
    return loaded.rules_dir if loaded else Path("rules")


def _sensors(loaded: LoadedConfig | None) -> list[config_mod.SensorConfig] | None:
    return loaded.sensors if loaded is not None else None


def cmd_rules_check(args: argparse.Namespace) -> int:
    """The rules folder given, or each district's (a hub of several: every district's rules, each on its own)."""
    loaded = load_config(args, required=False)
    sensors = _sensors(loaded)
    ids = [s.id for s in sensors] if sensors is not None else None
    if args.dir or loaded is None or not loaded.districts.multi:
        return _check_folder(args, loaded, _rules_folder(args, loaded, args.dir), ids)
    failed = 0
    for d in loaded.districts:
        if not d.rules:
            print(f"warning: district {d.slug} ({d.ars}): no rules folder; every alert is unrouted for it",
                  file=sys.stderr if args.json else sys.stdout)
            continue
        print(f"district {d.slug} ({d.ars}):", file=sys.stderr if args.json else sys.stdout)
        failed += _check_folder(args, loaded, d.rules[0], ids, shared=d.shared_templates, more=d.rules[1:])
    return 1 if failed else 0


def _check_folder(args: argparse.Namespace, loaded: LoadedConfig | None, folder: Path, ids: list[str] | None, *,
                  shared: Path | None = None, more: tuple[Path, ...] = ()) -> int:
    problems = RuleSet.check(folder, sensors=ids, shared_templates=shared, more=more)
    errors = [p for p in problems if not p.warning]
    for problem in problems:
        print(json.dumps(problem.as_dict(), ensure_ascii=False) if args.json else str(problem))
    if errors:
        print(f"warnhub: {folder}: {len(errors)} error(s); these rules would not be loaded", file=sys.stderr)
        return 1
    rules = RuleSet.load(folder, sensors=ids, geo=loaded.geography() if loaded else None, shared_templates=shared,
                         more=more)
    note = "" if ids is not None else "; sensor names not checked (no config)"
    print(f"{folder}: ok ({len(rules.alert_rules)} alert rules, {len(rules.sensor_rules)} sensor rules, "
          f"{len(rules.templates)} templates, {len(problems)} warning(s){note})", file=sys.stderr if args.json
          else sys.stdout)
    return 0


def cmd_rules_replay(args: argparse.Namespace) -> int:
    """Inputs replayed against the rules given, or each district's in turn (a hub of several districts; the JSON
    lines then name the district)."""
    loaded = load_config(args, required=False)
    if args.rules or loaded is None or not loaded.districts.multi:
        return _replay(args, loaded, _rules_folder(args, loaded, args.rules),
                       loaded.cfg.hub.district_ars if loaded else None)
    failed = 0
    for d in loaded.districts:
        if d.rules:
            if not args.json:
                print(f"district {d.slug} ({d.ars}):")
            failed += _replay(args, loaded, d.rules[0], d.ars, named=True, shared=d.shared_templates,
                              more=d.rules[1:])
    return 1 if failed else 0


def _replay(args: argparse.Namespace, loaded: LoadedConfig | None, folder: Path, district: str | None, *,
            named: bool = False, shared: Path | None = None, more: tuple[Path, ...] = ()) -> int:
    sensors = _sensors(loaded)
    rules = RuleSet.load(folder, sensors=[s.id for s in sensors] if sensors is not None else None,
                         geo=loaded.geography() if loaded else None, shared_templates=shared, more=more)
    failed = 0
    for d in replay(rules, list(files_of(args.paths)), district=district,
                    origin=args.origin, units={s.id: s.unit for s in sensors or []},
                    sensor_ars={s.id: s.ars for s in sensors or [] if s.ars}):
        if "error" in d:
            failed += 1
        if args.json:
            print(json.dumps({**d, "district": district} if named else d, ensure_ascii=False), flush=True)
        elif "error" in d:
            print(f"error     {d['input']}: {d['error']}")
        else:
            what = d["alert"] or f"sensor {d.get('sensor', '-')}"
            print(f"{d['decision']:9} {'PUSH' if d['push'] else '    '} {','.join(d['channels']) or '-':20} "
                  f"{d['input']}  {what}  {d.get('headline', '')[:60]}")
            print(f"          why: {d['why']}")
    return 1 if failed else 0
