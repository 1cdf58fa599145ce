"""A fan-out rig shared by bench/fanout.py, bench/faults.py and tests/test_delivery_faults.py: a local push
service in its own process (tests/kits/pushkit.py, deferred decryption) with N subscriptions, and a hub home (config,
the repository's rules, a SQLite store already holding those subscriptions with places inside the district)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.kits.hubproc import REPO, HubProcess, free_port, subprocess_env, write_config

DISTRICT = "033540000000"


def start_receiver(folder: Path, n: int) -> tuple[subprocess.Popen[str], int, list[dict[str, Any]]]:
    out = folder / "subs.json"
    proc = subprocess.Popen([sys.executable, "-m", "tests.kits.pushkit", "serve", "--subscriptions", str(n), "--out",
                             str(out), "--deferred", "--lean"], stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env=subprocess_env())
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, port, json.loads(out.read_text(encoding="utf-8"))


def rx_get(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=600) as resp:
        return json.loads(resp.read())


def points_in_district(n: int, seed: int = 20) -> list[tuple[float, float]]:
    import numpy as np
    import shapely

    from hub.geo.geography import geography
    from hub.geo.projection import GERMANY

    area = GERMANY.unproject(geography().geometry(DISTRICT)).buffer(-0.01)
    minx, miny, maxx, maxy = area.bounds
    rng = np.random.default_rng(seed)
    out: list[tuple[float, float]] = []
    while len(out) < n:
        xs, ys = rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)
        inside = shapely.contains_xy(area, xs, ys)
        out.extend((float(y), float(x)) for x, y in zip(xs[inside], ys[inside], strict=True))
    return out[:n]


HISTORY = "history.jsonl"
"""The hub's history log in its home (``[debug] history``), for tests/kits/invariants.py."""


def make_home(folder: Path, port: int, n_subs: list[dict[str, Any]], workers: int, *, history: bool = False,
              store_url: str | None = None, push: str = "", extra: str = "") -> Path:
    from hub.store.db import Store

    home = folder / "hub"
    (home / "inbox").mkdir(parents=True)
    shutil.copytree(REPO / "rules", home / "rules")
    main = home / "rules" / "luechow-dannenberg.toml"
    text = main.read_text(encoding="utf-8")
    main.write_text(text[:text.index("# --- Eigene Sensoren")], encoding="utf-8")
    config = write_config(home, port=port, extra=f"""
[push]
allow_http_endpoints = true
vapid_subject = "mailto:bench@warnhub.example"
workers = {workers}
concurrency = 128
timeout_s = 30
{push}
""" + (f'\n[debug]\nhistory = "{HISTORY}"\n' if history else "") + extra, store_url=store_url)
    store = Store(store_url or home / "hub.db")
    points = points_in_district(len(n_subs))
    try:
        for start in range(0, len(n_subs), 5_000):  # 5,000 per statement: a million one by one takes long
            part = zip(n_subs[start:start + 5_000], points[start:start + 5_000], strict=True)
            with store.transaction() as conn:
                _insert(conn, [_subscription(sub, lat, lon) for sub, (lat, lon) in part])
    finally:
        store.close()
    return config


def _subscription(sub: dict[str, Any], lat: float, lon: float) -> Any:
    from hub.publish import subscriptions

    keys = sub["keys"] if "keys" in sub else {"p256dh": sub["p256dh"], "auth": sub["auth"]}
    return subscriptions.Subscription(endpoint=sub["endpoint"], p256dh=keys["p256dh"], auth=keys["auth"],
                                      places=(subscriptions.PointPlace(round(lat, 3), round(lon, 3), 1000),))


def _insert(conn: Any, subs: list[Any]) -> None:
    """What :func:`hub.publish.subscriptions.create` stores for each (new endpoints, no exercise), as one
    statement: the rig's subscriptions are the storm's audience, not what is measured."""
    import secrets

    from hub.publish.subscriptions import _SETTINGS, _today_ms, _token_hash, _values

    day = _today_ms()
    conn.executemany(
        f"INSERT INTO subscriptions (id, token_hash, {', '.join(_SETTINGS)}, created_ms, updated_ms)"
        f" VALUES ({', '.join('?' * (len(_SETTINGS) + 4))})",
        [(secrets.token_urlsafe(16), _token_hash(secrets.token_urlsafe(32)), *_values(s), day, day) for s in subs])


def storm(identifier: str) -> bytes:
    from tests.e2e.test_routing import dwd_cap

    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    return dwd_cap(identifier, sent=sent, expires=sent + timedelta(hours=6))




@dataclass
class Rig:
    """A receiver with N subscriptions and a hub home holding them; ``hub`` is made, not started."""

    folder: Path
    rx: subprocess.Popen[str]
    rx_port: int
    subs: list[dict[str, Any]]
    config: Path
    hub: HubProcess


@contextlib.contextmanager
def rig(n: int, workers: int, prefix: str, *, history: bool = False, store_url: str | None = None, push: str = "",
        extra: str = "") -> Iterator[Rig]:
    """Receiver, home and hub for a fan-out of ``n``; on leaving, the hub is closed, the receiver ended and the
    folder removed (kept, and named on stderr, with ``WARNHUB_BENCH_KEEP=1``). ``store_url``: the hub's store in
    that PostgreSQL database (else the SQLite file hub.db in its home). ``push``: more lines of ``[push]``;
    ``extra``: more config after it (sections of its own)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    rx, rx_port, subs = start_receiver(folder, n)
    hub: HubProcess | None = None
    try:
        port = free_port()
        config = make_home(folder, port, subs, workers, history=history, store_url=store_url, push=push,
                           extra=extra)
        hub = HubProcess(config, port, folder / "hub.log")
        yield Rig(folder, rx, rx_port, subs, config, hub)
    finally:
        if hub is not None:
            hub.close()
        rx.terminate()
        rx.wait(timeout=30)
        if not os.environ.get("WARNHUB_BENCH_KEEP"):
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"kept {folder}", file=sys.stderr)
