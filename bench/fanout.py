"""Fan-out benchmark: one warning to N push subscriptions, through the whole hub, against bare encryption.

    python bench/fanout.py --subscribers 20000 --store sqlite|postgresql --json

The real daemon (``warnhub run`` as a subprocess, SQLite store or, with ``--store postgresql``, a database in a
private PostgreSQL cluster started for the run (tests/kits/postgres.py), the repository's rules) gets a DWD warning for
Landkreis Lüchow-Dannenberg dropped into its inbox; N subscriptions with places inside the district wait for it at
a local Web Push service in its own process (tests/kits/pushkit.py in its lean mode: a minimal HTTP/1.1 server that
checks VAPID, Content-Encoding, TTL and size on each request as the aiohttp one does, at about half its CPU cost,
and decrypts every message after the clock stops; the push service would run on another machine, so the less of the
two cores it takes from the hub, the closer the number is to the hub's own). ``seconds`` runs from the drop to the
last push arriving, so it includes intake, rules, publication, targeting, the outbox, encryption and HTTP.

The baseline, in the same run: bare pywebpush encryption (``WebPusher.encode``, aes128gcm) of the same payloads
for the same subscriptions on all cores, nothing else. ``ratio`` = deliveries_per_s / encrypt_only_per_s; the
target is >= 0.6 at N = 20,000 with lost = 0 and duplicates = 0.

Prints one JSON object: {"subscribers", "delivered", "lost", "duplicates", "seconds", "deliveries_per_s",
"encrypt_only_per_s", "ratio", "accept_to_first_s"} (plus "store", "errors", "payload_bytes", "load_1m" (the
machine's load average when the drop happened: it is shared) and "cpu_s": CPU seconds used from the drop to the last
arrival by the hub's main process, its worker processes and the receiver). ``accept_to_first_s`` runs from the drop
to the first push arriving; the target is <= 1.0 s at N = 1,000,000 on both stores (hub/deliver/fanout.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.kits.fanoutkit import rig, rx_get, storm  # noqa: E402
from tests.kits.hubproc import drop  # noqa: E402


def _encode(items: list[tuple[dict[str, Any], bytes]]) -> int:
    from pywebpush import WebPusher

    for info, payload in items:
        WebPusher(info).encode(payload, content_encoding="aes128gcm")
    return len(items)


def encrypt_only_per_s(subs: list[dict[str, Any]], payload: bytes, workers: int) -> float:
    """Bare pywebpush encryption of one payload per subscription on ``workers`` processes (pool started first)."""
    infos = [{"endpoint": s["endpoint"], "keys": s.get("keys") or {"p256dh": s["p256dh"], "auth": s["auth"]}}
             for s in subs]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_encode, [[(infos[0], payload)]] * workers))  # warm the workers
        chunks = [[(i, payload) for i in infos[k::workers]] for k in range(workers)]
        started = time.perf_counter()
        done = sum(pool.map(_encode, chunks))
        return done / (time.perf_counter() - started)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cpu_snapshot(hub_pid: int, rx_pid: int) -> dict[str, float]:
    """CPU seconds so far of the hub's main process, its worker processes together, and the receiver."""
    return {"hub": _cpu_s(hub_pid), "hub_workers": sum(_cpu_s(c) for c in _children(hub_pid)),
            "receiver": _cpu_s(rx_pid)}


def run(n: int, workers: int, timeout: float, store: str = "sqlite") -> dict[str, Any]:
    if store == "sqlite":
        return _run(n, workers, timeout, None)
    from tests.kits.postgres import Cluster

    cluster = Cluster()
    try:
        return _run(n, workers, timeout, cluster.database())
    finally:
        cluster.stop()


def _run(n: int, workers: int, timeout: float, store_url: str | None) -> dict[str, Any]:
    with rig(n, workers, "warnhub-fanout-", store_url=store_url) as r:
        rx, rx_port, subs, config, hub = r.rx, r.rx_port, r.subs, r.config, r.hub
        hub.start()
        hub.wait_healthy(timeout=120)
        assert hub.proc is not None
        cpu_before = cpu_snapshot(hub.proc.pid, rx.pid)
        load = os.getloadavg()[0]
        started = time.perf_counter()
        drop(config.parent / "inbox", "storm.xml", storm("bench-storm"), settled=True)
        first = None
        while True:
            count = rx_get(rx_port, "/count")["arrived"]
            if count and first is None:
                first = time.perf_counter() - started
            if count >= n:
                break
            if time.perf_counter() - started > timeout:
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        cpu = {k: round(v - cpu_before[k], 2) for k, v in cpu_snapshot(hub.proc.pid, rx.pid).items()}
        hub.stop()
        stats = rx_get(rx_port, "/stats")
        sample = rx_get(rx_port, "/sample")
        payload = json.dumps(sample["payload"], ensure_ascii=False, separators=(",", ":")).encode() \
            if sample.get("payload") else b"x" * 600
        base = encrypt_only_per_s(subs, payload, os.cpu_count() or 1)
        unique = stats["unique_keys"]
        rate = unique / seconds if seconds else 0.0
        return {"subscribers": n, "store": "postgresql" if store_url else "sqlite",
                "delivered": unique, "lost": n - unique, "duplicates": stats["duplicates"],
                "seconds": round(seconds, 3), "deliveries_per_s": round(rate, 1),
                "encrypt_only_per_s": round(base, 1), "ratio": round(rate / base, 3) if base else None,
                "accept_to_first_s": round(first, 3) if first is not None else None, "errors": stats["errors"],
                "payload_bytes": len(payload), "load_1m": round(load, 2), "cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=0, help="the hub's encryption processes (0: one per CPU)")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.subscribers, args.workers, args.timeout, args.store)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:20} {v}")


if __name__ == "__main__":
    main()
