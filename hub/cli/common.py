"""What every ``warnhub`` command shares: the config file, the validator and signature policy it implies,
input files."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from hub.app import make_validator, open_store
from hub.cap.sign import SignaturePolicy
from hub.cap.validate import Validator
from hub.config import load as config_mod
from hub.config.load import LoadedConfig
from hub.store.db import Store

DEFAULT_CONFIG = "config.toml"


def load_config(args: argparse.Namespace, *, required: bool) -> LoadedConfig | None:
    """The config; for commands that can do without one, the default file may be absent."""
    path = Path(args.config)
    if not required and not args.config_given and not path.exists():
        return None
    return config_mod.load(path)


def validator_of(loaded: LoadedConfig | None) -> Validator:
    if loaded is None:
        return Validator()

    return make_validator(loaded)


def policy_of(loaded: LoadedConfig | None) -> SignaturePolicy:
    return SignaturePolicy(loaded.cfg.validation.signature_policy) if loaded else SignaturePolicy.VERIFY


def files_of(paths: list[str]) -> Iterator[Path]:
    for name in paths:
        path = Path(name)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        else:
            yield path


def read_input(path: Path, limit: int) -> bytes:
    with path.open("rb") as fh:
        return fh.read(limit + 1)


def print_report(args: argparse.Namespace, d: Mapping[str, object]) -> None:
    if args.json:
        print(json.dumps(d, ensure_ascii=False), flush=True)
        return
    line = f"{d['verdict']:8} {d['path']}  CAP {d['cap_version'] or '-'}  signature {d['signature']}"
    print(line)
    for kind in ("errors", "warnings"):
        items = d[kind]
        for item in items if isinstance(items, list) else ():
            print(f"    {kind[:-1]}: {item}")


def read_store(loaded: LoadedConfig) -> Store:
    """The store for a command that only looks: read-only, so it works on a full disk and while the hub runs, and
    never creates or changes the file (where there is none yet, they see an empty store in memory). Says so when
    the disk is full and the file is read as it is on disk."""
    if loaded.cfg.store.url is None and not loaded.db_path.exists():
        return Store(":memory:")
    store = open_store(loaded, read_only=True)
    if store.as_on_disk:
        print(f"warnhub: Datenträger voll, {loaded.db_path} wird gelesen, wie er auf der Platte steht (ohne "
              "Write-Ahead-Log) / disk full: the store is read as it is on disk (without its write-ahead log)",
              file=sys.stderr)
    return store
