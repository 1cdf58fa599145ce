"""The fault suite's invariant checker (tests/kits/invariants.py) finds each broken invariant, on a real store file
and a history log written by hub.history; and holds where nothing is broken."""

from __future__ import annotations

import json
from pathlib import Path

from hub.store.db import Store
from tests.kits.invariants import Receipt, check


def _home(tmp_path: Path, rows: list[tuple[str, int, str, str, str]], pubs: list[tuple[int, int, str]],
          events: list[dict[str, object]]) -> tuple[Path, Path]:
    db = tmp_path / "hub.db"
    with Store(db) as store, store.transaction() as conn:
        for pub, version, status in pubs:
            conn.execute("INSERT INTO publications (id, thread, version, identifier, sender, sent, msg_type, status,"
                         " severity, urgency, push, channels, regions, notices, alert_json, cap_xml, created_ms)"
                         " VALUES (?, 'w1', ?, ?, 's', '2030-01-01T10:00:00+00:00', 'Alert', ?, 'Severe',"
                         " 'Immediate', 1, '[]', '[]', '[]', '{}', x'00', 0)", (pub, version, f"id{pub}", status))
        conn.execute("INSERT INTO subscriptions (id, token_hash, endpoint, p256dh, auth, places, topics, min_severity,"
                     " languages, exercise, created_ms, updated_ms) VALUES ('ex', '', 'e', '', '', '[]', '[]',"
                     " 'Minor', '[]', 1, 0, 0)")
        for key, pub, recipient, state, error in rows:
            conn.execute("INSERT INTO outbox (key, publication_id, thread, channel, recipient, priority, state,"
                         " next_at_ms, last_error, created_ms) VALUES (?, ?, 'w1', 'push', ?, 0, ?, 0, ?, 0)",
                         (key, pub, recipient, state, error))
    history = tmp_path / "history.jsonl"
    history.write_text("".join(json.dumps(e) + "\n" for e in events) + '{"t": 9, "ev": "se', encoding="utf-8")
    return history, db


def _sent(t: float, key: str, pub: int, recipient: str) -> dict[str, object]:
    return {"t": t, "ev": "send", "key": key, "pub": pub, "thread": "w1", "channel": "push", "recipient": recipient,
            "outcome": "done", "reason": ""}


GOOD = [{"t": 1.0, "ev": "ingest", "alert": 7, "thread": 1, "origin": "x"},
        {"t": 1.1, "ev": "publish", "pub": 1, "thread": "w1", "version": 1, "status": "Actual", "source_alert": 7},
        {"t": 1.2, "ev": "publish", "pub": 2, "thread": "w1", "version": 2, "status": "Actual", "source_alert": 8},
        _sent(1.3, "1/a", 1, "a"), _sent(1.4, "2/a", 2, "a")]


def test_a_clean_run_holds_every_invariant(tmp_path: Path) -> None:
    history, db = _home(tmp_path, [("1/a", 1, "a", "done", ""), ("2/a", 2, "a", "done", "")],
                        [(1, 1, "Actual"), (2, 2, "Actual")], GOOD)
    receipts = [Receipt("rx-a", "1/a", "w1", 1, "Actual", 1.35), Receipt("rx-a", "2/a", "w1", 2, "Actual", 1.45)]
    verdict = check(history, db, receipts, p99_limit_s=1.0)
    verdict.assert_holds()
    assert verdict.figures["accept_to_first_push_p99_s"] == 0.3 and verdict.figures["duplicates"] == 0


def test_each_broken_invariant_is_named(tmp_path: Path) -> None:
    rows = [("1/a", 1, "a", "done", ""), ("1/b", 1, "b", "queued", ""), ("1/c", 1, "c", "failed", ""),
            ("1/d", 1, "d", "done", ""), ("2/a", 2, "a", "done", ""), ("3/p", 3, "p", "done", ""),
            ("3/ex", 3, "ex", "done", "")]
    events = [*GOOD[:3], _sent(3.4, "2/a", 2, "a"), _sent(3.5, "1/a", 1, "a")]
    history, db = _home(tmp_path, rows, [(1, 1, "Actual"), (2, 2, "Actual"), (3, 3, "Exercise")], events)
    receipts = [Receipt("rx-a", "2/a", "w1", 2, "Actual", 2.0), Receipt("rx-a", "1/a", "w1", 1, "Actual", 3.0),
                Receipt("rx-a", "1/a", "w1", 1, "Actual", 3.1), Receipt("rx-p", "3/p", "w1", 3, "Exercise", 3.2),
                Receipt("rx-x", "3/ex", "w1", 3, "Exercise", 3.3)]
    verdict = check(history, db, receipts, p99_limit_s=1.0)
    v = verdict.violations
    assert v["I1"] == ["1/b: still queued at the end", "1/c: failed without a reason",
                       "1/d: done at the hub, never received by d"]
    assert v["I2"] == ["rx-a got w1 v1 twice or more"]
    assert v["I3"] == ["3/p: Exercise queued for push/p", "3/p: Exercise received by a public subscription (rx-p)"]
    assert v["I4"] == ["rx-a received w1 v1 after v2", "rx-a received w1 v1 after v2", "a sent w1 v1 after v2"]
    assert v["I5"] == ["p99 accept -> first push 2.500 s > 1.0 s over 1"]
    assert check(history, db, receipts, allowed={"1/a"}, p99_limit_s=None).violations["I2"] == []


def test_a_canary_anywhere_but_a_canary_endpoint_breaks_i3(tmp_path: Path) -> None:
    """Canary rows (thread canary:, no publication, status Test) may go to the canary endpoints only; they are not
    Actual warnings, so I1 does not ask for their receipts."""
    history, db = _home(tmp_path, [], [], [])
    with Store(db) as store, store.transaction() as conn:
        for key, channel, recipient in (("canary:a/push/room", "push", "room"), ("canary:a/webhooks/ls", "webhooks",
                                        "ls"), ("canary:a/push/citizen", "push", "citizen")):
            conn.execute("INSERT INTO outbox (key, publication_id, thread, channel, recipient, priority, state,"
                         " next_at_ms, last_error, created_ms) VALUES (?, 0, 'canary:a', ?, ?, 9, 'done', 0, '', 0)",
                         (key, channel, recipient))
    receipts = [Receipt("rx-room", "canary:a/push/room", "canary:a", 0, "Test", 1.0),
                Receipt("rx-citizen", "canary:a/push/citizen", "canary:a", 0, "Test", 1.1)]
    verdict = check(history, db, receipts, p99_limit_s=None, canary={"room", "ls"})
    assert verdict.violations["I3"] == ["canary:a/push/citizen: canary (Test) queued for push/citizen",
                                        "canary:a/push/citizen: canary (Test) received by rx-citizen"]
    assert verdict.holds("I1", "I2", "I4")
    assert check(history, db, receipts[:1], p99_limit_s=None, canary={"room", "ls", "citizen"}).holds()


def test_a_coalesced_row_is_reached_only_when_its_summary_was_delivered(tmp_path: Path) -> None:
    rows = [("1/a", 1, "a", "coalesced", "summary:a/9"), ("summary:a/9", 0, "a", "done", ""),
            ("1/b", 1, "b", "coalesced", "summary:b/9"), ("summary:b/9", 0, "b", "queued", ""),
            ("1/c", 1, "c", "coalesced", "summary:c/9"), ("summary:c/9", 0, "c", "done", "")]
    history, db = _home(tmp_path, rows, [(1, 1, "Actual")], GOOD[:2])
    receipts = [Receipt("rx-a", "summary:a/9", "summary:a/9", 0, "Actual", 2.0)]
    v = check(history, db, receipts, p99_limit_s=None).violations
    assert sorted(v["I1"]) == ["1/b: coalesced into 'summary:b/9', which is queued, never received",
                               "1/c: coalesced into 'summary:c/9', which is done, never received",
                               "summary:b/9: still queued at the end",
                               "summary:c/9: done at the hub, never received by c"]
    assert not any(x.startswith("1/a") for x in v["I1"])
