"""The way in for sensor readings (hub/intake/sensors.py), as a source sees it through ``ctx.readings``: a batch is
on disk when ``after_commit`` runs (the MQTT source acknowledges there), and purging touches only the source's own
sensors, chunk by chunk."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.intake import readings, sensors
from hub.intake.sensors import SensorIntake
from hub.store.db import AsyncStore, Store
from tests.kits import storekit

T0 = 1_900_000_000_000


def row(sensor: str) -> readings.SensorRow:
    return readings.SensorRow(sensor, "water_level", "cm", 53.1, 11.0, None, f"pegel/{sensor}", 60.0)


async def test_a_batch_is_committed_before_after_commit_runs(store_url: str, tmp_path: Path) -> None:
    astore = AsyncStore(Store(store_url))
    intake = SensorIntake(astore)
    try:
        reg = await intake.register("mqtt-a", [row("a"), row("b")])
        assert reg.last_ts == {"a": None, "b": None}
        seen: list[int] = []

        def after_commit() -> None:  # another connection sees the batch: it is committed, not just written
            with storekit.other(store_url) as other:
                seen.append(other.execute("SELECT count(*) FROM readings").fetchone()[0])

        result = await intake.record([("a", T0, 1.5, "cm", T0), ("b", T0, 2.5, "cm", T0), ("a", T0, 1.5, "cm", T0)],
                                     [("b", "not a number", T0)], after_commit=after_commit)
        assert (result.stored, result.duplicates, result.newest) == (2, 1, {"a": T0, "b": T0})
        assert seen == [2]
        again = await intake.record([("a", T0, 1.5, "cm", T0)])  # a redelivered message: stored once
        assert (again.stored, again.duplicates) == (0, 1)
    finally:
        astore.close()


async def test_purge_deletes_only_the_sources_old_readings_in_chunks(store_url: str, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    astore = AsyncStore(Store(store_url))
    intake = SensorIntake(astore)
    monkeypatch.setattr(sensors, "PURGE_CHUNK", 3)
    calls: list[tuple[str, int]] = []
    delete_older = readings.delete_older

    def counted(store: Store, sensor_id: str, cutoff: int, limit: int = 5000) -> int:
        calls.append((sensor_id, limit))
        return delete_older(store, sensor_id, cutoff, limit)

    monkeypatch.setattr(readings, "delete_older", counted)
    try:
        await intake.register("mqtt-a", [row("a"), row("b")])
        await intake.register("mqtt-b", [row("c")])
        old = [(s, T0 + i, float(i), "cm", T0) for s in ("a", "b", "c") for i in range(7)]
        await intake.record(old + [("a", T0 + 100, 9.0, "cm", T0)])
        assert await intake.purge("mqtt-a", T0 + 50) == 14  # a and b: 7 each; c belongs to another source
        assert await astore.run(readings.count, astore.store, "c") == 7
        assert await astore.run(readings.count, astore.store, "a") == 1  # the newer one stays
        assert all(limit == 3 for _, limit in calls) and [s for s, _ in calls].count("a") == 3  # 3, 3, 1
    finally:
        astore.close()
