"""The daemon on PostgreSQL (``[store] url``), end to end: a CAP file dropped into its inbox reaches every one of the
subscriptions its area covers through the real push receiver (tests/kits/pushkit.py), each once, and the invariant
checker (tests/kits/invariants.py) holds over the run, reading the PostgreSQL database. No SQLite file is made."""

from __future__ import annotations

import time

from tests.kits.fanoutkit import HISTORY, rig, rx_get, storm
from tests.kits.hubproc import drop
from tests.kits.invariants import check, receipts_of
from tests.kits.postgres import Cluster
from tests.kits.storekit import other

N = 300


def test_the_daemon_on_postgresql_delivers_a_dropped_cap_file_to_every_subscriber_once(pg_cluster: Cluster) -> None:
    url = pg_cluster.database()
    try:
        with rig(N, 0, "warnhub-pg-e2e-", history=True, store_url=url) as r:
            home = r.config.parent
            r.hub.start()
            drop(home / "inbox", "storm.xml", storm("pg-e2e-storm"), settled=True)
            deadline = time.monotonic() + 120
            while (arrived := rx_get(r.rx_port, "/count")["arrived"]) < N:
                assert time.monotonic() < deadline, f"only {arrived} of {N} pushes arrived"
                time.sleep(0.05)
            r.hub.stop()
            receipts = receipts_of(rx_get(r.rx_port, "/receipts")["receipts"])
            verdict = check(home / HISTORY, url, receipts, p99_limit_s=None)
            assert not (home / "hub.db").exists()  # the store was PostgreSQL, not a file beside the config
        verdict.assert_holds()
        assert len(receipts) == N and len({x.key for x in receipts}) == N
        assert verdict.figures["row_states"] == {"done": N}
        with other(url) as conn:
            assert conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 1
            assert conn.execute("SELECT count(*) FROM subscriptions").fetchone()[0] == N
    finally:
        pg_cluster.drop(url)
