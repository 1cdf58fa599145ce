"""The way in for sensor readings (:class:`hub.ports.Readings`): what a sensor source may do with the store.

Backed by :mod:`hub.intake.readings`, run on the store's writer thread. A source gets this through its
:class:`~hub.ports.SourceContext` and never touches the store itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hub.intake import readings
from hub.store.db import AsyncStore, Store

PURGE_CHUNK = 5000
"""Readings deleted per transaction by :meth:`SensorIntake.purge`: small transactions keep the writer free."""


def _record(store: Store, rows: Sequence[tuple[str, int, float, str, int]], bad: Sequence[tuple[str, str, int]],
            after_commit: Callable[[], None] | None) -> readings.BatchResult:
    result = readings.add_batch(store, rows, bad)
    if after_commit is not None:
        after_commit()
    return result


class SensorIntake:
    def __init__(self, astore: AsyncStore) -> None:
        self._astore = astore

    async def register(self, source: str, sensors: Sequence[readings.SensorRow]) -> readings.Registered:
        return await self._astore.run(readings.register, self._astore.store, source, sensors)

    async def record(self, rows: Sequence[tuple[str, int, float, str, int]],
                     bad: Sequence[tuple[str, str, int]] = (), *,
                     after_commit: Callable[[], None] | None = None) -> readings.BatchResult:
        return await self._astore.run(_record, self._astore.store, rows, bad, after_commit)

    async def mark_stale(self, stale: Sequence[tuple[str, int]]) -> None:
        await self._astore.run(readings.mark_stale, self._astore.store, stale)

    async def purge(self, source: str, cutoff_ms: int) -> int:
        deleted = 0
        for sensor_id in await self._astore.run_bulk(readings.source_sensors, self._astore.store, source):
            while True:
                n = await self._astore.run_bulk(readings.delete_older, self._astore.store, sensor_id, cutoff_ms,
                                           PURGE_CHUNK)
                deleted += n
                if n < PURGE_CHUNK:
                    break
        return deleted
