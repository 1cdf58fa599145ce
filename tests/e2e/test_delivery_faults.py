"""Fault test: kill -9 during a fan-out of 20,000 pushes, restart, and nothing is lost; nothing arrives twice
except rows that were in flight at the kill (the receiver sees their idempotency key twice)."""

from __future__ import annotations

import sys

from tests.kits import paths

sys.path.insert(0, str(paths.REPO / "bench"))

import faults  # noqa: E402


def test_kill_nine_during_fanout_loses_nothing() -> None:
    result = faults.run(20000, kill_at=0.3, timeout=300)
    assert result["arrived_before_kill"] < 20000, result  # the kill really came in the middle
    assert result["lost"] == 0, result
    assert result["errors"] == 0, result
    assert result["duplicates"] <= result["inflight_at_kill"], result
