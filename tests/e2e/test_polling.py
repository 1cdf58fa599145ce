"""The polling framework against a local HTTP server: conditional GET, size limits, timeouts, truncation,
backoff, health (up / degraded / down) and the rule that a failed fetch ends nothing."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from adapters.sources.polling import Http, PollingSource, backoff_delay
from hub.errors import FetchError, SourceError
from tests.kits import paths
from tests.kits.sourcekit import HubKit, ReplayServer

DWD = paths.DATA / "cap" / "de_dwd_kweathercore_update-MUL.xml"


class OneDocument(PollingSource):
    """The smallest real source: one URL that holds one CAP document."""

    def __init__(self, kit: HubKit, url: str, **settings: object) -> None:
        from hub.config.sections import HttpSourceConfig
        cfg = HttpSourceConfig(name="one", **settings)  # type: ignore[arg-type]
        super().__init__(cfg, kit.loaded)
        self.url = url
        self.stored: list[str] = []

    async def poll(self, ctx, http: Http) -> list[str]:  # type: ignore[no-untyped-def]
        fetched = await http.get(self.url)
        if fetched is None:
            return []
        result = await ctx.ingest(fetched.body, origin=self.name, policy=self.policy)
        if result.outcome == "rejected":
            return [f"rejected: {result.reason}"]
        self.stored.append(result.outcome)
        return []


async def _poll(source: OneDocument, kit: HubKit) -> list[str] | None:
    ctx = kit.context("one", "test")
    assert kit.session is not None
    if source.http is None:
        source.http = Http(kit.session, timeout_s=source.settings.timeout_s, max_bytes=source.settings.max_bytes)
    return await source.poll_once(ctx)


async def test_conditional_get_costs_nothing_when_unchanged(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        srv.set("/a.xml", DWD.read_bytes(), content_type="application/xml")
        src = OneDocument(kit, srv.url("/a.xml"))
        assert await _poll(src, kit) == []
        assert await _poll(src, kit) == []
        assert await _poll(src, kit) == []
        assert srv.hits["/a.xml"] == 3
        assert srv.not_modified["/a.xml"] == 2
        assert src.stored == ["new"]
        sent = [h for p, h in srv.requests if p == "/a.xml"]
        assert "If-None-Match" not in sent[0] and sent[1]["If-None-Match"].startswith('"')
        assert kit.hub.health.state("one") == "up"


async def test_last_modified_is_used_without_etag(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        srv.set("/a.xml", DWD.read_bytes(), etag=False, last_modified="Wed, 21 Oct 2026 07:28:00 GMT")
        src = OneDocument(kit, srv.url("/a.xml"))
        await _poll(src, kit)
        await _poll(src, kit)
        assert srv.not_modified["/a.xml"] == 1


@pytest.mark.parametrize("case", ["500", "timeout", "truncated", "too_big", "refused", "404"])
async def test_failures_mark_the_source_down_with_the_reason(tmp_path: Path, case: str) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        body = DWD.read_bytes()
        url = srv.url("/a.xml")
        settings: dict[str, object] = {"timeout_s": 0.5}
        if case == "500":
            srv.set("/a.xml", status=500)
        elif case == "404":
            pass
        elif case == "timeout":
            srv.set("/a.xml", body, delay_s=3)
        elif case == "truncated":
            srv.set("/a.xml", body, truncate_to=len(body) // 2)
        elif case == "too_big":
            srv.set("/a.xml", body)
            settings["max_bytes"] = 2048
        elif case == "refused":
            url = "http://127.0.0.1:9/a.xml"  # discard port: nothing listens
        src = OneDocument(kit, url, **settings)
        assert await _poll(src, kit) is None
        h = kit.hub.health.sources["one"]
        assert h.state == "down"
        expect = {"500": "HTTP 500", "404": "HTTP 404", "timeout": "within 0.5 s", "truncated": "truncated",
                  "too_big": "exceeds the limit", "refused": "Connect"}[case]
        assert expect in h.last_error, h.last_error
        assert src.stored == []
        assert kit.store.counts()["alerts"] == 0
        # the state is persisted for `warnhub sources`
        await kit.hub.recorder.drain()
        rows = {r["name"]: r for r in kit.store.source_health()}
        assert rows["one"]["state"] == "down" and expect in rows["one"]["last_error"]


async def test_recovery_after_failure_and_no_validators_kept_from_a_failed_poll(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        srv.set("/a.xml", b"<not-cap/>", content_type="application/xml")
        src = OneDocument(kit, srv.url("/a.xml"))
        assert await _poll(src, kit) == ["rejected: " + kit.store.conn.execute(
            "SELECT reason FROM rejections").fetchone()[0]]
        assert kit.hub.health.state("one") == "degraded"
        # the same body again: a degraded poll kept no ETag, so it is fetched in full, not answered with 304
        await _poll(src, kit)
        assert srv.not_modified["/a.xml"] == 0
        srv.set("/a.xml", DWD.read_bytes())
        assert await _poll(src, kit) == []
        assert kit.hub.health.state("one") == "up"
        assert kit.hub.health.sources["one"].last_ok is not None


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    assert backoff_delay(60, 0, 600) == 60
    delays = [backoff_delay(60, n, 600, rng=rng) for n in range(1, 8)]
    assert 30 <= delays[0] <= 60
    assert 60 <= delays[1] <= 120
    assert all(d <= 600 for d in delays) and delays[-1] >= 300
    jittered = {round(backoff_delay(60, 3, 600, rng=rng), 3) for _ in range(20)}
    assert len(jittered) > 10


async def test_run_loop_backs_off_while_failing_and_recovers(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        srv.set("/a.xml", status=503)
        src = OneDocument(kit, srv.url("/a.xml"), interval_s=0.05, backoff_max_s=0.4, timeout_s=1)
        task = asyncio.create_task(src.run(kit.context("one", "test")))
        try:
            async with asyncio.timeout(10):
                while srv.hits["/a.xml"] < 4:
                    await asyncio.sleep(0.01)
            assert src.failures >= 3 and kit.hub.health.state("one") == "down"
            srv.set("/a.xml", DWD.read_bytes())
            async with asyncio.timeout(10):
                while kit.hub.health.state("one") != "up":
                    await asyncio.sleep(0.01)
            assert src.failures == 0 and src.stored == ["new"]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_http_errors_are_fetch_errors(tmp_path: Path) -> None:
    async with ReplayServer() as srv, HubKit(tmp_path) as kit:
        assert kit.session is not None
        http = Http(kit.session, timeout_s=2, max_bytes=10_000)
        srv.set("/x", status=502)
        with pytest.raises(FetchError, match="HTTP 502"):
            await http.get(srv.url("/x"))
        assert issubclass(FetchError, SourceError)
