"""Lists that name every current warning without an end (NINA, feed indexes): a warning ends only after it was
missing from N complete fetches; a failed fetch (no snapshot) ends nothing; the age rule waits while listed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.cap.validate import Validator
from hub.intake.documents import Intake
from hub.store.db import Store
from tests.kits.hubproc import cap_xml

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
SENDER = "test@warnhub.example"


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Iterator[Store]:
    with Store(store_url, max_age_without_expires=timedelta(hours=48)) as s:
        yield s


def _add(store: Store, ident: str, *, expires: str | None = None, now: datetime = T0) -> int:
    result = Intake(Validator(), store).ingest(cap_xml(ident, expires=expires), origin="nina", now=now)
    assert result.thread_id is not None
    return result.thread_id


def _state(store: Store, thread_id: int) -> str:
    thread = store.thread(thread_id)
    assert thread is not None
    return thread.state


def test_vanished_warning_ends_after_n_complete_fetches(store: Store) -> None:
    a, b = _add(store, "A"), _add(store, "B")
    assert store.snapshot("nina", [(SENDER, "A"), (SENDER, "B")], misses_to_end=3, now=T0) == []
    # B vanishes: two complete fetches without it change nothing yet
    for n in (1, 2):
        assert store.snapshot("nina", [(SENDER, "A")], misses_to_end=3, now=T0 + timedelta(minutes=n)) == []
        assert _state(store, b) == "active"
        assert store.presence("nina")[f"{SENDER}/B"] == n
    # the third ends it
    assert store.snapshot("nina", [(SENDER, "A")], misses_to_end=3, now=T0 + timedelta(minutes=3)) == [b]
    assert _state(store, b) == "ended"
    assert _state(store, a) == "active"
    assert f"{SENDER}/B" not in store.presence("nina")
    assert [t.id for t in store.threads()] == [a]


def test_failed_fetches_between_complete_ones_end_nothing(store: Store) -> None:
    """A failed fetch calls no snapshot: however many fail, the miss count only grows on complete fetches."""
    b = _add(store, "B")
    store.snapshot("nina", [(SENDER, "B")], misses_to_end=2, now=T0)
    store.snapshot("nina", [], misses_to_end=2, now=T0 + timedelta(minutes=1))
    # ... ten failed polls happen here: no snapshot ...
    assert _state(store, b) == "active"
    assert store.presence("nina")[f"{SENDER}/B"] == 1


def test_reappearing_warning_resets_its_count_and_comes_back(store: Store) -> None:
    b = _add(store, "B")
    store.snapshot("nina", [(SENDER, "B")], misses_to_end=2, now=T0)
    store.snapshot("nina", [], misses_to_end=2, now=T0)
    store.snapshot("nina", [(SENDER, "B")], misses_to_end=2, now=T0)  # back before the second miss
    assert store.presence("nina")[f"{SENDER}/B"] == 0
    store.snapshot("nina", [], misses_to_end=2, now=T0)
    assert store.snapshot("nina", [], misses_to_end=2, now=T0) == [b]
    assert _state(store, b) == "ended"
    store.snapshot("nina", [(SENDER, "B")], misses_to_end=2, now=T0)
    assert _state(store, b) == "active"


def test_warning_with_expires_is_not_ended_by_vanishing(store: Store) -> None:
    """Such a warning ends by its own time (or a Cancel): the list rule is for warnings that state no end."""
    c = _add(store, "C", expires="2030-01-01T18:00:00+01:00")
    store.snapshot("nina", [(SENDER, "C")], misses_to_end=1, now=T0)
    assert store.snapshot("nina", [], misses_to_end=1, now=T0) == []
    assert _state(store, c) == "active"


def test_still_listed_warning_outlives_the_age_rule(store: Store) -> None:
    """An open-ended warning the list still names stays current past max_age_without_expires."""
    d = _add(store, "D")
    store.snapshot("nina", [(SENDER, "D")], misses_to_end=3, now=T0)
    assert store.sweep_expired(T0 + timedelta(days=5)) == []
    assert _state(store, d) == "active"
    for n in range(3):
        store.snapshot("nina", [], misses_to_end=3, now=T0 + timedelta(days=5, minutes=n))
    assert _state(store, d) == "ended"


def test_old_warning_first_seen_in_a_list_is_current_while_listed(store: Store) -> None:
    """Received after the age limit it is ended at once; the list naming it makes it current again."""
    e = _add(store, "E", now=T0 + timedelta(days=3))
    assert _state(store, e) == "expired"
    store.snapshot("nina", [(SENDER, "E")], misses_to_end=3, now=T0 + timedelta(days=3))
    assert _state(store, e) == "active"


def test_two_lists_keep_a_warning_until_both_dropped_it(store: Store) -> None:
    f = _add(store, "F")
    store.snapshot("nina", [(SENDER, "F")], misses_to_end=1, now=T0)
    store.snapshot("feed", [(SENDER, "F")], misses_to_end=1, now=T0)
    assert store.snapshot("nina", [], misses_to_end=1, now=T0) == []
    assert _state(store, f) == "active"
    assert store.snapshot("feed", [], misses_to_end=1, now=T0) == [f]


def test_presence_survives_a_restart(store_url: str, tmp_path: Path) -> None:
    with Store(store_url) as store:
        g = _add(store, "G")
        store.snapshot("nina", [(SENDER, "G")], misses_to_end=2, now=T0)
        store.snapshot("nina", [], misses_to_end=2, now=T0)
    with Store(store_url) as store:
        assert store.presence("nina") == {f"{SENDER}/G": 1}
        assert store.snapshot("nina", [], misses_to_end=2, now=T0) == [g]
