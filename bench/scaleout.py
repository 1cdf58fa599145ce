"""Scale-out benchmark: delivery nodes sharing one PostgreSQL, 1 and then 2, each pinned to one core, plus a kill.

    python bench/scaleout.py --subscribers 200000 --json

A private PostgreSQL cluster (tests/kits/postgres.py) holds N push subscriptions with places in the district; the
push receiver runs in its own process (tests/kits/pushkit.py, lean, deferred decryption). One node
(``warnhub run --role ingest --role decide --role web``) takes the warnings from its inbox and publishes them; the
delivery nodes (``warnhub run --role deliver``, each under ``taskset -c K``) send. Three warnings, each to all N:

1. one delivery node: ``nodes_1.deliveries_per_s`` = N / (drop -> N-th arrival);
2. a second delivery node started beside it: ``nodes_2.deliveries_per_s`` likewise; ``scaling`` = 2-node / 1-node;
3. both again, and one is killed (SIGKILL) when a third of the warning has arrived: ``killed_node.lost``
   (subscriptions without that warning), ``duplicates`` (second arrivals of a key), ``inflight_at_kill`` (outbox
   rows in flight just after the kill: the killed node's and the survivor's; an upper bound of what may arrive
   twice), ``recovered_s`` (kill -> last arrival: the survivor takes the lapsed leases over).

Prints one JSON object: {"subscribers", "nodes_1": {"deliveries_per_s", "seconds"}, "nodes_2": {...}, "scaling",
"killed_node": {"lost", "duplicates", "inflight_at_kill", "recovered_s"}, "cpu_s": {"receiver", "nodes"},
"load_1m"}; each phase also has "cpu_s": CPU seconds of the receiver, the front node, PostgreSQL and the delivery
nodes (with their encryption workers) during it, and "machine_busy" (their sum over all cores' time). On a 2-core
machine the receiver, PostgreSQL and the publishing node share the cores with the delivery nodes: with
``machine_busy`` near 1 in the 2-node phase the machine, not the hub, is what limits ``scaling``.

Needs node roles (``warnhub run --role``, issue 16 item 2).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.fanout import _children, _cpu_s  # noqa: E402
from tests.kits.fanoutkit import rig, rx_get, storm  # noqa: E402
from tests.kits.hubproc import HubProcess, drop, free_port, subprocess_env, wait_for  # noqa: E402


def node_config(config: Path, name: str) -> tuple[Path, int]:
    """The same config with its own web port (nodes on one machine; on several, the file is the same)."""
    port = free_port()
    text = config.read_text(encoding="utf-8")
    start = text.index("port = ", text.index("[web]"))
    end = text.index("\n", start)
    path = config.with_name(f"{name}.toml")
    path.write_text(text[:start] + f"port = {port}" + text[end:], encoding="utf-8")
    return path, port


def start_deliverer(config: Path, core: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(["taskset", "-c", str(core), sys.executable, "-m", "hub.cli", "run", "--config",
                                 str(config), "--role", "deliver"], cwd=str(config.parent), stdout=out,
                                stderr=subprocess.STDOUT, env=subprocess_env())


def fan_out(inbox: Path, rx_port: int, name: str, until: int, timeout: float,
            on_count: tuple[int, Any] | None = None) -> float:
    """Drop a warning; seconds until the receiver has ``until`` arrivals (``on_count``: call at that count)."""
    started = time.perf_counter()
    drop(inbox, f"{name}.xml", storm(name), settled=True)
    while (count := rx_get(rx_port, "/count")["arrived"]) < until:
        if on_count is not None and count >= on_count[0]:
            on_count[1]()
            on_count = None
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{name}: {count} of {until} arrived after {timeout} s")
        time.sleep(0.05)
    return time.perf_counter() - started


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (a node's encryption workers)."""
    return _cpu_s(pid) + sum(_cpu_s(c) for c in _children(pid))


def _postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL server process on the machine (the test kit's cluster is the only one)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip().startswith("postgres"):
                    total += _cpu_s(int(entry.name))
            except OSError:
                continue
    return total


class Cpu:
    """CPU seconds per part of the rig over one phase: is the machine (2 cores) what limits?"""

    def __init__(self, rx: int, front: int, nodes: list[subprocess.Popen[bytes]]) -> None:
        self.rx, self.front, self.nodes = rx, front, nodes
        self.before = self.now()

    def now(self) -> dict[str, float]:
        return {"receiver": _cpu_s(self.rx), "front_node": _tree_cpu(self.front), "postgresql": _postgres_cpu(),
                "delivery_nodes": sum(_tree_cpu(p.pid) for p in self.nodes if p.poll() is None)}

    def since(self, seconds: float) -> dict[str, float]:
        after = self.now()
        used = {k: round(after[k] - self.before[k], 2) for k in after}
        cores = len(os.sched_getaffinity(0))
        return {**used, "machine_busy": round(sum(used.values()) / (cores * seconds), 3)}


def inflight(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM outbox WHERE state='inflight'").fetchone()
        return int(row[0]) if row else 0


def run(n: int, workers: int, timeout: float) -> dict[str, Any]:
    from tests.kits.postgres import Cluster

    cluster = Cluster()
    url = cluster.database()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # three warnings to every subscriber within minutes: the push budget per person (bench/storm.py measures it)
        # would coalesce the third
        with rig(n, workers, "warnhub-scaleout-", store_url=url, push="budget_pushes = 100") as r:
            inbox = r.config.parent / "inbox"
            front_cfg, front_port = node_config(r.config, "front")
            front = HubProcess(front_cfg, front_port, r.folder / "front.log")
            with (r.folder / "front.log").open("ab") as out:
                front.proc = subprocess.Popen(
                    [sys.executable, "-m", "hub.cli", "run", "--config", str(front_cfg), "--role", "ingest", "--role",
                     "decide", "--role", "web"], cwd=str(front_cfg.parent), stdout=out, stderr=subprocess.STDOUT,
                    env=subprocess_env())
            procs.append(front.proc)
            front.wait_healthy(timeout=120)
            configs = [node_config(r.config, f"deliver{k}") for k in (1, 2)]
            procs.append(start_deliverer(configs[0][0], 0, r.folder / "deliver1.log"))
            wait_for(lambda: HubProcess(configs[0][0], configs[0][1], r.folder / "x").get("/healthz")[0] == 200,
                     timeout=120, what="delivery node 1")
            load = os.getloadavg()[0]
            rx_cpu = _cpu_s(r.rx.pid)
            cpu = Cpu(r.rx.pid, front.proc.pid, procs[1:])
            one = fan_out(inbox, r.rx_port, "scale-1", n, timeout)
            cpu_1 = cpu.since(one)
            procs.append(start_deliverer(configs[1][0], 1, r.folder / "deliver2.log"))
            wait_for(lambda: HubProcess(configs[1][0], configs[1][1], r.folder / "x").get("/healthz")[0] == 200,
                     timeout=120, what="delivery node 2")
            cpu = Cpu(r.rx.pid, front.proc.pid, procs[1:])
            two = fan_out(inbox, r.rx_port, "scale-2", 2 * n, timeout)
            cpu_2 = cpu.since(two)
            killed: dict[str, float] = {}

            def kill() -> None:
                procs[2].send_signal(signal.SIGKILL)
                procs[2].wait(timeout=30)
                killed["at"] = time.perf_counter()
                killed["inflight"] = inflight(url)

            fan_out(inbox, r.rx_port, "scale-3", 3 * n, timeout, on_count=(2 * n + n // 3, kill))
            recovered = time.perf_counter() - killed["at"]
            nodes_cpu = sum(_cpu_s(p.pid) for p in procs if p.poll() is None)
            rx_cpu = _cpu_s(r.rx.pid) - rx_cpu
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    p.wait(timeout=60)
            stats = rx_get(r.rx_port, "/stats")
            rate1, rate2 = n / one, n / two
            return {"subscribers": n,
                    "nodes_1": {"deliveries_per_s": round(rate1, 1), "seconds": round(one, 3), "cpu_s": cpu_1},
                    "nodes_2": {"deliveries_per_s": round(rate2, 1), "seconds": round(two, 3), "cpu_s": cpu_2},
                    "scaling": round(rate2 / rate1, 3),
                    "killed_node": {"lost": 3 * n - stats["unique_keys"], "duplicates": stats["duplicates"],
                                    "inflight_at_kill": int(killed["inflight"]), "recovered_s": round(recovered, 3)},
                    "cpu_s": {"receiver": round(rx_cpu, 2), "nodes": round(nodes_cpu, 2)}, "load_1m": round(load, 2)}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=1, help="encryption processes per node")
    parser.add_argument("--timeout", type=float, default=1200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.subscribers, args.workers, args.timeout)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:20} {v}")


if __name__ == "__main__":
    main()
