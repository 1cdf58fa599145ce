"""``warnhub audit verify`` and ``audit archive``: the audit hash chain and its archive files."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub.app import open_store
from hub.cli.common import load_config, read_store
from hub.errors import StoreError
from hub.store.audit import archive, verify_archive


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Each chain on its own (the hub's, then each district's; ``--district SLUG``: that district's only), each
    named with its result; exit 1 if any chain or archive file fails."""
    loaded = load_config(args, required=True)
    assert loaded is not None
    slug = getattr(args, "district", None)
    if slug and loaded.districts.by_slug(slug) is None:
        print(f"warnhub: unbekannter Kreis / unknown district: {slug!r} "
              f"({', '.join(d.slug for d in loaded.districts)})", file=sys.stderr)
        return 2
    with read_store(loaded) as store:
        found = loaded.districts.by_slug(slug) if slug else None
        chains = [found.ars] if found is not None else store.audit_chains()
        results = [(ars, store.verify_audit(ars)) for ars in chains]
        files = [(f, verify_archive(store, Path(f))) for f in args.archive or ()]
    code = 0
    for ars, result in results:
        label = _chain_label(loaded, ars)
        since = f" (from archived entry {result.anchor})" if result.anchor else ""
        if result.ok:
            print(f"{label}: audit log intact: {result.entries} entries{since}")
        else:
            print(f"{label}: audit log BROKEN at entry {result.first_bad}: {result.reason} ({result.entries} entries "
                  "verified)")
            code = 1
    for name, check in files:
        if check.ok:
            print(f"archive intact: {name}: {check.entries} entries")
        else:
            print(f"archive BROKEN: {check.reason} ({check.entries} entries verified)")
            code = 1
    return code


def _chain_label(loaded: Any, ars: str) -> str:
    """``hub`` for the hub's own chain, ``slug (name)`` for a district's, the Kreis key for one not configured."""
    if not ars:
        return "hub"
    d = loaded.districts.by_ars(ars)
    return f"{d.slug} ({d.name})" if d is not None else ars


def cmd_audit_archive(args: argparse.Namespace) -> int:
    loaded = load_config(args, required=True)
    assert loaded is not None

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
    for g in done.chains if len(done.chains) > 1 else ():
        print(f"  {_chain_label(loaded, g.district)}: entries {g.first_seq}-{g.last_seq} ({g.entries}), anchored at "
              f"hash {g.hash}")
    return 0


def _date_arg(text: str) -> datetime | None:
    """``2025-01-31`` (midnight UTC) or an ISO 8601 time (UTC if it names no offset)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
