"""Fault 4 (issue 17 §3): broken feeds. One CAP feed hangs (answers nothing), one trickles its body a byte every
half second (slowloris: every single read gets a byte in time, only the whole fetch is slow), one answers 500, one
sends a body cut short. Only those four sources are down, each with its own reason; a working feed beside them
goes on polling at its interval (measured from the replay server's own request log) and its warning is pushed to
every subscriber meanwhile (I1-I4 checked over the run).

The broken feeds get a longer request timeout (6 s) than the working one's interval (0.5 s): were one source's
fetch able to hold up another's poll, the working feed's request log would show gaps of 6 s and more.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.e2e.test_routing import dwd_cap
from tests.kits.faultkit import SourceHub, feed_with
from tests.kits.hubproc import until
from tests.kits.sourcekit import ReplayServer

BROKEN_TIMEOUT_S = 6
GOOD_INTERVAL_S = 0.5


def feed_source(name: str, url: str, *, interval_s: float, timeout_s: float) -> str:
    return f"""
[[sources]]
type = "cap-feed"
name = "{name}"
url = "{url}"
interval_s = {interval_s}
timeout_s = {timeout_s}
backoff_max_s = 2
"""


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


async def test_broken_feeds_are_down_alone_and_a_working_feed_is_delivered(tmp_path: Path) -> None:
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    good = dwd_cap("fault4-good", sent=sent, expires=sent + timedelta(hours=6))
    other = feed_with(dwd_cap("fault4-never", sent=sent, expires=sent + timedelta(hours=6)))
    async with ReplayServer() as srv:
        srv.set("/good.atom", feed_with(), content_type="application/atom+xml")  # the warning comes below
        srv.set("/hang.atom", other, delay_s=3600)
        srv.set("/trickle.atom", other, trickle_s=0.5)
        srv.set("/error.atom", other, status=500)
        srv.set("/cut.atom", other, truncate_to=200, content_type="application/atom+xml")
        broken = {"hang": "/hang.atom", "trickle": "/trickle.atom", "error": "/error.atom", "cut": "/cut.atom"}
        sources = feed_source("good", srv.url("/good.atom"), interval_s=GOOD_INTERVAL_S, timeout_s=2) + "".join(
            feed_source(name, srv.url(path), interval_s=1, timeout_s=BROKEN_TIMEOUT_S) for name, path in broken.items())
        async with SourceHub(tmp_path, sources=sources) as hub:
            srv.set("/good.atom", feed_with(good), content_type="application/atom+xml")  # after subscribing
            downs = {name: await hub.source_state(name, "down", timeout=60) for name in broken}
            await hub.rx.wait_for(len(hub.subs), timeout=60)
            # let every broken source fail at least twice more while the good one polls on
            start = len([p for p, _ in srv.times if p == "/trickle.atom"])
            await until(lambda: len([p for p, _ in srv.times if p == "/trickle.atom"]) >= start + 2,
                        "two more trickled fetches", timeout=60)
            health = hub.health()
            verdict = hub.verdict()
            first_push = hub.accept_to_first_push("fault4-good")
    good_times = [t for p, t in srv.times if p == "/good.atom"]
    good_gaps = gaps(good_times)
    print(f"\nfault 4: good feed polled {len(good_times)} times over {good_times[-1] - good_times[0]:.1f} s, gaps "
          f"median {statistics.median(good_gaps):.2f} s max {max(good_gaps):.2f} s (interval {GOOD_INTERVAL_S} s); "
          f"broken feeds hit {dict((n, srv.hits[p]) for n, p in broken.items())}; accept->first push "
          f"{first_push} s; figures {verdict.figures}")

    assert "no complete answer within 6 s" in downs["hang"]["last_error"], downs["hang"]
    assert "no complete answer within 6 s" in downs["trickle"]["last_error"], downs["trickle"]
    assert "HTTP 500" in downs["error"]["last_error"], downs["error"]
    assert "truncated" in downs["cut"]["last_error"], downs["cut"]
    assert health["sources"]["good"]["state"] == "up", health["sources"]["good"]
    assert {n for n, s in health["sources"].items() if s["state"] != "up"} == set(broken), health["sources"]
    # the working feed was never held up by a broken one's fetch (6 s): it kept its interval throughout
    assert max(good_gaps) < BROKEN_TIMEOUT_S - 1, good_gaps
    verdict.assert_holds("I1", "I2", "I3", "I4")
    assert verdict.figures["row_states"] == {"done": len(hub.subs)}, verdict.figures
