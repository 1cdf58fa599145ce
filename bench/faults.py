"""Crash benchmark: kill -9 the hub in the middle of a fan-out, restart it, count what arrived.

    python bench/faults.py --subscribers 20000 --json

The real daemon fans one warning out to N subscriptions at a local push service in its own process (see
bench/fanout.py). When about a third has arrived the hub is killed with SIGKILL; the outbox rows that were in
flight at that moment are counted from its SQLite file; the hub is started again and runs until every
subscription has its push (or the timeout). A row in flight at the kill may be sent twice (the receiver sees the
same idempotency key); anything else sent twice, or never, is a defect.

Prints one JSON object: {"accepted", "delivered_unique", "lost", "duplicates", "inflight_at_kill",
"arrived_before_kill", "recovery_s"}. Target: lost = 0 and duplicates <= inflight_at_kill.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.kits.fanoutkit import rig, rx_get, storm  # noqa: E402
from tests.kits.hubproc import drop  # noqa: E402


def run(n: int, *, kill_at: float = 0.33, timeout: float = 600, workers: int = 0) -> dict[str, Any]:
    with rig(n, workers, "warnhub-faults-") as r:
        rx_port, config, hub = r.rx_port, r.config, r.hub
        hub.start()
        drop(config.parent / "inbox", "storm.xml", storm("faults-storm"), settled=True)
        started = time.monotonic()
        while (arrived := rx_get(rx_port, "/count")["arrived"]) < n * kill_at:
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"only {arrived} of {n} arrived before the kill point")
            time.sleep(0.01)
        hub.kill()
        with sqlite3.connect(config.parent / "hub.db") as db:
            inflight = db.execute("SELECT count(*) FROM outbox WHERE state='inflight'").fetchone()[0]
            queued = db.execute("SELECT count(*) FROM outbox WHERE state='queued'").fetchone()[0]
        restarted = time.monotonic()
        hub.start()
        while rx_get(rx_port, "/count")["arrived"] < n + 0 and time.monotonic() - restarted < timeout:
            time.sleep(0.05)
        # let anything still in flight land before counting
        time.sleep(1.0)
        recovery = time.monotonic() - restarted
        hub.stop()
        stats = rx_get(rx_port, "/stats")
        return {"accepted": n, "delivered_unique": stats["unique_keys"], "lost": n - stats["unique_keys"],
                "duplicates": stats["duplicates"], "inflight_at_kill": inflight, "queued_at_kill": queued,
                "arrived_before_kill": arrived, "recovery_s": round(recovery, 2), "errors": stats["errors"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=20000)
    parser.add_argument("--kill-at", type=float, default=0.33, help="share arrived when the hub is killed")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.subscribers, kill_at=args.kill_at, timeout=args.timeout)
    print(json.dumps(result) if args.json else "\n".join(f"{k:20} {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
