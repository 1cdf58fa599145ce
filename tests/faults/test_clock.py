"""Fault 8 (issue 17 §3): clock skew. Messages whose ``sent`` and ``expires`` lie in the past and in the future, and
the hub's machine clock jumping forward an hour while it runs.

The clock is injected into the daemon alone with Debian's libfaketime (``LD_PRELOAD``; the offset is read from a
file the test rewrites), so every clock of the hub jumps at once as on a real machine, the system clock is left
alone, and the monotonic clock (timeouts, intervals) keeps running as it does when the wall clock is set.

What the hub does, and what the test holds it to:
- ``sent`` 3 h ago, still valid: pushed like any warning (a late message is still a warning);
- ``expires`` already past on arrival (sent 3 h ago, ended 1 h ago): stored and decided, never published or pushed;
- ``sent`` a day in the future (a sender's clock is wrong): flagged (verdict ``accepted`` with "ahead of the hub's
  clock") and still pushed: a warning is never dropped for its sender's clock;
- the hub's clock jumps forward an hour: a warning that ended within that hour is ended at once (no longer current
  at the API); a message sent with the right time after the jump whose ``expires`` lies before the hub's (wrong)
  now counts as ended and is not pushed, one still valid by the hub's clock is pushed; a push waiting for a retry
  when the clock jumps past its warning's end is never delivered (its row ends ``expired``); nothing is pushed twice
  and I1-I4 hold over the run.
"""

from __future__ import annotations

import email.utils
import sqlite3
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.test_routing import dwd_cap
from tests.kits.faultkit import SourceHub
from tests.kits.hubproc import drop, until

LIBFAKETIME = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))), None)
"""Debian's libfaketime (scripts/system-deps.sh installs it)."""


def hub_clock(hub: SourceHub) -> datetime:
    """The hub's wall clock, from the Date header of its answer."""
    assert hub.proc is not None
    with urllib.request.urlopen(hub.proc.base + "/healthz", timeout=10) as resp:
        return email.utils.parsedate_to_datetime(resp.headers["Date"])


def current_threads(hub: SourceHub) -> set[str]:
    assert hub.proc is not None
    return {w["thread"] for w in hub.proc.get_json("/api/v1/warnings")["warnings"]}


def flags_of(hub: SourceHub, identifier: str) -> tuple[str, str]:
    with sqlite3.connect(f"{(hub.home / 'hub.db').as_uri()}?mode=ro", uri=True) as db:
        row = db.execute("SELECT verdict, flags FROM alerts WHERE identifier = ?", (identifier,)).fetchone()
    return (str(row[0]), str(row[1])) if row else ("", "")


async def test_skewed_times_and_a_clock_jump_push_only_what_is_valid(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert LIBFAKETIME is not None, "libfaketime is missing: sh scripts/system-deps.sh installs it"
    rc = tmp_path / "faketime.rc"
    rc.write_text("+0\n", encoding="utf-8")
    monkeypatch.setenv("LD_PRELOAD", str(LIBFAKETIME))
    monkeypatch.setenv("FAKETIME_TIMESTAMP_FILE", str(rc))
    monkeypatch.setenv("FAKETIME_CACHE_DURATION", "1")
    monkeypatch.setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1")
    now = datetime.now(UTC).replace(microsecond=0)
    before = {  # identifier -> CAP, in the order they arrive before the jump
        "skew-late": dwd_cap("skew-late", sent=now - timedelta(hours=3), expires=now + timedelta(hours=3)),
        "skew-ended": dwd_cap("skew-ended", sent=now - timedelta(hours=3), expires=now - timedelta(hours=1)),
        "skew-future": dwd_cap("skew-future", sent=now + timedelta(days=1), expires=now + timedelta(days=1, hours=6)),
        "skew-short": dwd_cap("skew-short", sent=now - timedelta(minutes=5), expires=now + timedelta(minutes=30)),
    }
    async with SourceHub(tmp_path, sources="") as hub:
        for identifier, data in before.items():
            drop(hub.inbox, f"{identifier}.xml", data)
        n = len(hub.subs)
        for identifier in ("skew-late", "skew-future", "skew-short"):
            await until(lambda i=identifier: len(hub.pushes_of(i)) == n, f"{identifier} pushed", 60)
        await until(lambda: sum(e["ev"] == "decide" for e in hub.history()) == len(before), "all decided", 30)
        short_thread = hub.publications_of("skew-short")[0][1]
        assert short_thread in current_threads(hub)
        # one subscriber's push service fails: its push of a warning that ends within the hour waits for a retry
        hub.rx.behave(hub.subs[0].id, status=500)
        drop(hub.inbox, "skew-stuck.xml", dwd_cap("skew-stuck", sent=now - timedelta(minutes=5),
                                                  expires=now + timedelta(minutes=30)))
        await until(lambda: len(hub.pushes_of("skew-stuck")) == n - 1 and any(
            e["ev"] == "send" and e["outcome"] == "retry" for e in hub.history()), "skew-stuck waiting to retry", 60)

        rc.write_text("+1h\n", encoding="utf-8")  # the machine clock jumps forward an hour
        await until(lambda: hub_clock(hub) > datetime.now(UTC) + timedelta(minutes=55), "the hub's clock jumped", 30)
        await until(lambda: short_thread not in current_threads(hub), "the short warning ended", 30)
        hub.rx.behave(hub.subs[0].id)  # the push service answers again: the retry must not deliver what has ended
        real = datetime.now(UTC).replace(microsecond=0)
        after = {
            "skew-after-ended": dwd_cap("skew-after-ended", sent=real, expires=real + timedelta(minutes=30)),
            "skew-after-valid": dwd_cap("skew-after-valid", sent=real, expires=real + timedelta(hours=3)),
        }
        for identifier, data in after.items():
            drop(hub.inbox, f"{identifier}.xml", data)
        await until(lambda: len(hub.pushes_of("skew-after-valid")) == n, "the valid one pushed after the jump", 60)
        await until(lambda: sum(e["ev"] == "decide" for e in hub.history()) == len(before) + len(after) + 1,
                    "all decided", 30)
        await until(lambda: hub.verdict().figures["row_states"].keys() <= {"done", "expired"}, "every row ended", 60)
        verdict = hub.verdict()
        pushed = {i: len(hub.pushes_of(i)) for i in [*before, "skew-stuck", *after]}
        published = {i: hub.publications_of(i) for i in ("skew-ended", "skew-after-ended")}
        future = flags_of(hub, "skew-future")
        late = flags_of(hub, "skew-late")
        still = current_threads(hub)
        late_thread = hub.publications_of("skew-late")[0][1]
    print(f"\nfault 8: pushes per message {pushed}; skew-future {future}; figures {verdict.figures}")
    verdict.assert_holds("I1", "I2", "I3", "I4")
    assert pushed == {"skew-late": n, "skew-ended": 0, "skew-future": n, "skew-short": n, "skew-stuck": n - 1,
                      "skew-after-ended": 0, "skew-after-valid": n}, pushed
    assert verdict.figures["row_states"] == {"done": 5 * n - 1, "expired": 1}, verdict.figures  # never delivered late
    assert published == {"skew-ended": [], "skew-after-ended": []}, published
    assert future[0] == "accepted" and "ahead of the hub's clock" in future[1], future
    assert late[0] == "valid", late  # sent in the past is no fault
    assert late_thread in still and short_thread not in still
