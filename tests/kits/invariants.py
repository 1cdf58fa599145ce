"""The invariant checker of the fault suite (issue 17 §3): reads the hub's history log (``[debug] history``,
hub/history.py), its store and what the receivers got, and says which of I1-I5 do not hold, with examples.

- I1 every accepted Actual alert reaches every matching subscriber/channel at least once, or is recorded failed
  with a reason: every outbox row of an Actual publication ended done, gone, expired, superseded, withdrawn, or
  failed with a reason (none left queued or in flight), and every push row done has a receipt at the receiver.
- I2 no subscriber gets the same (thread, version) twice, except the rows in flight at a kill (``allowed``).
- I3 Exercise and Test never reach a public channel: their rows and receipts are exercise subscriptions' only; the
  canaries' rows (thread ``canary:``, status Test) and receipts only the canary endpoints' (``canary``: the push
  subscription and webhook ids of ``[canary]``).
- I4 an Update or Cancel supersedes what it replaces: no subscriber receives an older version of a thread after a
  newer one (by the receiver's arrival order, and by the hub's send order).
- I5 p99 accept -> first push under ``p99_limit_s`` at the design load: from a publication's source alert's
  ``ingest`` line to its first ``send`` done.

Which rows "match" (the right subscriptions) is the targeting tests' business; the checker holds the hub to the
rows it committed, which is what "nothing accepted is lost" means.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.kits import storekit

CANARY = "canary:"
"""Thread prefix of the canaries' outbox rows (hub/publish/canary.py): status Test, no publication."""
TERMINAL = frozenset({"done", "gone", "expired", "superseded", "withdrawn", "failed", "coalesced"})


@dataclass(frozen=True)
class Receipt:
    """One push as the receiver got it (the decrypted payload's fields)."""

    recipient: str
    key: str
    thread: str
    version: int
    status: str
    at: float

    @classmethod
    def from_payload(cls, recipient: str, payload: dict[str, Any], at: float) -> Receipt:
        return cls(recipient, str(payload.get("key", "")), str(payload.get("thread", "")),
                   int(payload.get("version", 0)), str(payload.get("status", "")), at)


@dataclass
class Verdict:
    violations: dict[str, list[str]] = field(default_factory=lambda: {f"I{i}": [] for i in range(1, 6)})
    figures: dict[str, Any] = field(default_factory=dict)

    def holds(self, *which: str) -> bool:
        return not any(self.violations[w] for w in (which or tuple(self.violations)))

    def assert_holds(self, *which: str) -> None:
        broken = {w: v[:5] for w in (which or tuple(self.violations)) if (v := self.violations[w])}
        assert not broken, f"invariants broken: {json.dumps(broken, ensure_ascii=False)}; figures {self.figures}"


def receipts_of(rows: Iterable[dict[str, Any]]) -> list[Receipt]:
    """Receipts from the push receiver's ``receipts()`` or ``GET /receipts`` rows."""
    return [Receipt.from_payload(r["sub"], r["payload"], r["at"]) for r in rows]


def read_history(path: Path) -> list[dict[str, Any]]:
    """The history's lines (a line cut short by a kill -9 at the end is skipped)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


@contextlib.contextmanager
def _read(db: Path | str) -> Iterator[sqlite3.Connection]:
    """The store, read only: the SQLite file, or the PostgreSQL database at a ``postgresql://`` URL."""
    if isinstance(db, str) and db.startswith("postgresql://"):
        with storekit.other(db) as conn:
            yield conn
        return
    with sqlite3.connect(f"{Path(db).resolve().as_uri()}?mode=ro", uri=True) as conn:
        yield conn


def check(history: Path | Sequence[Path], db: Path | str, receipts: Sequence[Receipt] | None = None, *,
          allowed: Collection[str] = (), p99_limit_s: float | None = 1.0, canary: Collection[str] = ()) -> Verdict:
    """Check I1-I5 over one run. ``history``: the history log, or one per hub node (many nodes on one store: their
    events merged by time); ``receipts``: what the push receiver got (None: push receipts not checked);
    ``allowed``: idempotency keys that may arrive twice (rows in flight at a kill); ``canary``: the canary endpoints
    (push subscription and webhook ids), the only recipients the canaries' Test rows may have."""
    files = [history] if isinstance(history, Path) else list(history)
    events = sorted((e for f in files for e in read_history(f)), key=lambda e: float(e["t"]))
    verdict = Verdict()
    with _read(db) as conn:
        pubs = {r[0]: (r[1], r[2], r[3]) for r in conn.execute("SELECT id, thread, version, status FROM publications")}
        rows = conn.execute("SELECT key, publication_id, channel, recipient, state, last_error, thread FROM outbox"
                            ).fetchall()
        exercise = {r[0] for r in conn.execute("SELECT id FROM subscriptions WHERE exercise=1")}
    _rows_end(verdict, pubs, rows, receipts)
    _no_exercise_in_public(verdict, pubs, rows, receipts, exercise)
    _canaries_only_to_canaries(verdict, rows, receipts, frozenset(canary))
    if receipts is not None:
        _once_each(verdict, receipts, allowed)
        _in_order(verdict, ((r.recipient, r.thread, r.version, r.at) for r in receipts), "received")
    sends = [e for e in events if e["ev"] == "send" and e["outcome"] == "done"]
    _in_order(verdict, ((e["recipient"], e["thread"], pubs.get(e["pub"], ("", 0, ""))[1], e["t"]) for e in sends),
              "sent")
    _first_push(verdict, events, p99_limit_s)
    verdict.figures.update(rows=len(rows), publications=len(pubs), receipts=None if receipts is None else
                           len(receipts), history_lines=len(events))
    return verdict


def _rows_end(verdict: Verdict, pubs: dict[int, tuple[str, int, str]], rows: list[tuple[Any, ...]],
              receipts: Sequence[Receipt] | None) -> None:
    got = None if receipts is None else {r.key for r in receipts}
    states: dict[str, int] = defaultdict(int)
    states_by_key = {key: state for key, _pub, _channel, _recipient, state, _error, _thread in rows}
    for key, pub, channel, recipient, state, error, thread in rows:
        states[state] += 1
        if pubs.get(pub, ("", 0, "Actual"))[2] != "Actual" or thread.startswith(CANARY):
            continue
        if state not in TERMINAL:
            verdict.violations["I1"].append(f"{key}: still {state} at the end")
        elif state == "failed" and not error:
            verdict.violations["I1"].append(f"{key}: failed without a reason")
        elif state == "done" and channel == "push" and got is not None and key not in got:
            verdict.violations["I1"].append(f"{key}: done at the hub, never received by {recipient}")
        elif state == "coalesced" and (states_by_key.get(error) != "done" or (got is not None and error not in got)):
            verdict.violations["I1"].append(f"{key}: coalesced into {error!r}, which is "
                                            f"{states_by_key.get(error, 'missing')}"
                                            + ("" if got is None or error in got else ", never received"))
    verdict.figures["row_states"] = dict(states)


def _no_exercise_in_public(verdict: Verdict, pubs: dict[int, tuple[str, int, str]], rows: list[tuple[Any, ...]],
                           receipts: Sequence[Receipt] | None, exercise: set[str]) -> None:
    for key, pub, channel, recipient, _state, _error, thread in rows:
        status = pubs.get(pub, ("", 0, "Actual"))[2]
        if status != "Actual" and not thread.startswith(CANARY) and not (channel == "push" and recipient in exercise):
            verdict.violations["I3"].append(f"{key}: {status} queued for {channel}/{recipient}")
    by_key = {key: recipient for key, _pub, _channel, recipient, _state, _error, _thread in rows}
    for r in receipts or ():  # the receiver's ids are its own: the hub's subscription comes from the row's key
        if r.status != "Actual" and not r.thread.startswith(CANARY) and by_key.get(r.key) not in exercise:
            verdict.violations["I3"].append(f"{r.key}: {r.status} received by a public subscription ({r.recipient})")


def _canaries_only_to_canaries(verdict: Verdict, rows: list[tuple[Any, ...]], receipts: Sequence[Receipt] | None,
                               canary: frozenset[str]) -> None:
    by_key = {key: recipient for key, _pub, _channel, recipient, _state, _error, _thread in rows}
    for key, _pub, channel, recipient, _state, _error, thread in rows:
        if thread.startswith(CANARY) and recipient not in canary:
            verdict.violations["I3"].append(f"{key}: canary (Test) queued for {channel}/{recipient}")
    for r in receipts or ():
        if (r.thread.startswith(CANARY) or r.status == "Test") and by_key.get(r.key) not in canary:
            verdict.violations["I3"].append(f"{r.key}: canary (Test) received by {r.recipient}")


def _once_each(verdict: Verdict, receipts: Sequence[Receipt], allowed: Collection[str]) -> None:
    seen: dict[tuple[str, str, int], int] = defaultdict(int)
    for r in receipts:
        seen[(r.recipient, r.thread, r.version)] += 1
    keys = {(r.recipient, r.thread, r.version): r.key for r in receipts}
    twice = [k for k, n in seen.items() if n > 1 and keys[k] not in allowed]
    verdict.violations["I2"] += [f"{who} got {thread} v{version} twice or more" for who, thread, version in twice]
    verdict.figures["duplicates"] = sum(n - 1 for n in seen.values())


def _in_order(verdict: Verdict, items: Iterable[tuple[str, str, int, float]], how: str) -> None:
    newest: dict[tuple[str, str], int] = {}
    for recipient, thread, version, _at in sorted(items, key=lambda x: x[3]):
        before = newest.get((recipient, thread), 0)
        if version < before:
            verdict.violations["I4"].append(f"{recipient} {how} {thread} v{version} after v{before}")
        newest[(recipient, thread)] = max(before, version)


def _first_push(verdict: Verdict, events: list[dict[str, Any]], limit: float | None) -> None:
    ingest = {e["alert"]: e["t"] for e in events if e["ev"] == "ingest"}
    source = {e["pub"]: e.get("source_alert") for e in events if e["ev"] == "publish" and e["status"] == "Actual"}
    first: dict[int, float] = {}
    for e in events:
        if e["ev"] == "send" and e["outcome"] == "done" and e["channel"] == "push" and e["pub"] not in first:
            first[e["pub"]] = e["t"]
    delays = sorted(first[p] - ingest[a] for p, a in source.items() if p in first and a in ingest)
    if not delays:
        return
    p99 = delays[min(len(delays) - 1, int(round(0.99 * (len(delays) - 1))))]
    verdict.figures.update(accept_to_first_push_p99_s=round(p99, 3), publications_pushed=len(delays))
    if limit is not None and p99 > limit:
        verdict.violations["I5"].append(f"p99 accept -> first push {p99:.3f} s > {limit} s over {len(delays)}")
