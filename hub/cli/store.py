"""``warnhub store copy --to postgresql://...``: move a hub from its SQLite file to PostgreSQL (the hub stopped)."""

from __future__ import annotations

import argparse
import os
from urllib.parse import quote

from hub.cli.common import load_config
from hub.errors import StoreError
from hub.store.copy import copy
from hub.store.db import Store


def cmd_store_copy(args: argparse.Namespace) -> int:
    loaded = load_config(args, required=True)
    assert loaded is not None
    if not loaded.db_path.exists():
        print(f"warnhub: {loaded.db_path}: kein Speicher / no store to copy")
        return 2
    url = args.to
    if args.password_env:
        scheme, _, rest = url.partition("://")
        user, _, host = rest.rpartition("@")
        url = f"{scheme}://{user}:{quote(os.environ[args.password_env], safe='')}@{host}"
    try:
        with Store(loaded.db_path) as source:
            counts = copy(source, url, progress=lambda t, n: print(f"{t}: {n}"))
    except StoreError as err:
        print(f"warnhub: {err}")
        return 1
    print(f"kopiert / copied: {sum(counts.values())} rows in {len(counts)} tables; now set [store] url")
    return 0
