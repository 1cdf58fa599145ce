"""A public warning can always be ended (issue 14), in hub.console against a real SQLite file, the real geography,
real CAP validation and the repository's templates: whatever happened to follow-up drafts (withdrawn, rejected,
left standing), Update, Cancel and All-clear start from the newest sent version; a withdrawn follow-up leaves the
warning as it was; sending one version withdraws the thread's other open ones; a Cancel or all-clear never waits
for a second person (``[console] four_eyes_end``, default off: an approver ends alone with a reason, audited)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.cap.model import MsgType
from hub.cap.parse import parse
from hub.console import drafts, release, tables, targeting
from hub.console.model import ConsoleConfig, ConsoleError, ConsoleForbidden, FourEyes
from hub.console.release import Sent
from hub.decide.rules.engine import RuleSet
from hub.geo.geography import geography
from hub.store.db import Store
from tests.unit.console.test_console import (
    ANNA,
    BERT,
    CARL,
    DISTRICT,
    REPO,
    SENDER,
    User,
    audit_actions,
    form,
    raw_cap,
    sent_via_approval,
    state_of,
)


@pytest.fixture(scope="module")
def base_cfg() -> ConsoleConfig:
    geo = geography()
    return ConsoleConfig(geo=geo, district=DISTRICT, sender=SENDER, sender_name="Landkreis Lüchow-Dannenberg",
                                 templates=RuleSet.load(REPO / "rules", geo=geo).templates)


@pytest.fixture
def cfg(base_cfg: ConsoleConfig) -> ConsoleConfig:
    return base_cfg


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store(store_url)  # on each backend (tests/conftest.py)
    yield s
    s.close()


DORA = User(4, "dora", frozenset({"author", "approver"}))
REASON = "Fehlalarm: das Feuer ist gelöscht, Entwarnung der Feuerwehr"


def _token(store: Store, cfg: ConsoleConfig, wid: int) -> str:
    return str(targeting.preview_for(store, cfg, None, wid)["token"])


def _sent_public(store: Store, cfg: ConsoleConfig) -> tuple[dict[str, Any], Sent]:
    w = drafts.create_draft(store, ANNA, form(), cfg=cfg)
    return w, sent_via_approval(store, cfg, w["id"])


@pytest.mark.parametrize("path", ["withdraw", "reject", "stale"])
def test_a_public_warning_can_be_cancelled_whatever_happened_to_follow_ups(store: Store, cfg: ConsoleConfig,
                                                                           path: str) -> None:
    w, v1 = _sent_public(store, cfg)
    if path == "withdraw":  # the path: Aufheben, zur Freigabe geben, zurückziehen
        first = drafts.follow_up(store, ANNA, w["id"], "cancel", cfg=cfg)
        drafts.submit(store, ANNA, first["id"], cfg=cfg)
        drafts.withdraw(store, ANNA, first["id"], cfg=cfg)
    elif path == "reject":
        first = drafts.follow_up(store, ANNA, w["id"], "cancel", cfg=cfg)
        drafts.submit(store, ANNA, first["id"], cfg=cfg)
        drafts.reject(store, BERT, first["id"], "Bitte erst mit der Feuerwehr abstimmen", cfg=cfg)
    else:  # an update submitted and left standing, its preview long out of date
        first = drafts.follow_up(store, CARL, w["id"], "update", cfg=cfg,
                                  form={"content": {"texts": {"de-DE": {"instruction": "Fenster schließen."}}}})
        drafts.submit(store, CARL, first["id"], cfg=cfg)
    # the warning is as it was: still public, v1 its newest sent version
    assert store.thread(v1.store_thread).state != "cancelled"  # type: ignore[union-attr]
    assert state_of(store, w["id"]) == "sent"

    # from the page of the warning (v1) or of the follow-up: a cancel starts from v1 (old code: "neuere Fassung")
    cancel = drafts.follow_up(store, ANNA, first["id"] if path == "withdraw" else w["id"], "cancel", cfg=cfg)
    assert (cancel["version"], cancel["parent_id"], cancel["msg_type"]) == (3, w["id"], "Cancel")
    sent = release.send(store, ANNA, cancel["id"], token=_token(store, cfg, cancel["id"]), cfg=cfg, reason=REASON)
    alert = parse(raw_cap(store, sent.alert_id)).alert
    assert alert.msg_type is MsgType.CANCEL and [r.identifier for r in alert.references] == [v1.identifier]
    assert store.thread(v1.store_thread).state == "cancelled"  # type: ignore[union-attr]
    assert state_of(store, first["id"]) == "withdrawn"  # nothing left open that could be sent over the cancel
    with pytest.raises(ConsoleError, match=r"Fassung 2 ist zurückgezogen; dafür muss sie .*\. / Version 2"):
        drafts.submit(store, CARL, first["id"], cfg=cfg)
    with pytest.raises(ConsoleError, match="bereits aufgehoben"):
        drafts.follow_up(store, ANNA, w["id"], "update", cfg=cfg)


def test_ending_alone_by_default_needs_approve_permission_and_a_reason(store: Store,
                                                                       cfg: ConsoleConfig) -> None:
    """The only approver on duty starts a cancel herself: four eyes would trap it; ending alone does not."""
    w, v1 = _sent_public(store, cfg)
    by_carl = drafts.follow_up(store, CARL, w["id"], "cancel", cfg=cfg)  # an author without approve permission
    with pytest.raises(ConsoleForbidden, match="Vier-Augen-Prinzip: .*zweite Person"):
        release.send(store, CARL, by_carl["id"], token=_token(store, cfg, by_carl["id"]), cfg=cfg, reason=REASON)

    cancel = drafts.follow_up(store, ANNA, w["id"], "cancel", cfg=cfg)
    drafts.submit(store, ANNA, cancel["id"], cfg=cfg)
    token = _token(store, cfg, cancel["id"])
    with pytest.raises(ConsoleForbidden, match="Vier-Augen"):
        release.approve(store, ANNA, cancel["id"], token=token, cfg=cfg)  # her own: never approved by herself
    with pytest.raises(ConsoleError, match="mindestens 20 Zeichen"):
        release.send(store, ANNA, cancel["id"], token=token, cfg=cfg, reason="weil")
    sent = release.send(store, ANNA, cancel["id"], token=token, cfg=cfg, reason=REASON)
    assert sent.warning["single_person_reason"] == REASON and sent.warning["approver"] == "anna"
    entry = next(e for e in store.audit_entries() if e["action"] == "console.end_alone")
    assert (entry["actor"], json.loads(entry["detail"])["reason"], json.loads(entry["detail"])["msg_type"]) == (
        "anna", REASON, "Cancel")
    assert [e["action"] for e in tables.history(store, w["thread"])][-3:] == ["end_alone", "send", "withdraw"]
    assert state_of(store, by_carl["id"]) == "withdrawn"
    assert store.verify_audit().ok


def test_all_clear_alone_and_four_eyes_end_makes_ending_wait_for_a_second_person(
        store: Store, cfg: ConsoleConfig) -> None:
    w, _ = _sent_public(store, cfg)
    strict = ConsoleConfig(**{**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__},
                                      "four_eyes": FourEyes(end_needs_two=True)})
    clear = drafts.follow_up(store, ANNA, w["id"], "all-clear", cfg=strict)
    with pytest.raises(ConsoleForbidden, match="Vier-Augen"):
        release.send(store, ANNA, clear["id"], token=_token(store, strict, clear["id"]), cfg=strict, reason=REASON)
    update = drafts.follow_up(store, ANNA, w["id"], "update", cfg=cfg)  # not an ending: four eyes as ever
    with pytest.raises(ConsoleForbidden, match="Vier-Augen"):
        release.send(store, ANNA, update["id"], token=_token(store, cfg, update["id"]), cfg=cfg, reason=REASON)

    sent = release.send(store, ANNA, clear["id"], token=_token(store, cfg, clear["id"]), cfg=cfg, reason=REASON)
    assert sent.warning["kind"] == "all-clear" and sent.warning["state"] == "sent"
    assert state_of(store, update["id"]) == "withdrawn"
    assert ("anna", "console.end_alone") in audit_actions(store)
    # after an all-clear the warning is still a thread in force: it can still be updated or cancelled
    again = drafts.follow_up(store, DORA, update["id"], "cancel", cfg=cfg)
    assert (again["version"], again["parent_id"]) == (4, clear["id"])


def test_an_older_version_is_never_sent_over_a_newer_one(store: Store, cfg: ConsoleConfig) -> None:
    w, _ = _sent_public(store, cfg)
    a = drafts.follow_up(store, ANNA, w["id"], "update", cfg=cfg)
    b = drafts.follow_up(store, DORA, w["id"], "update", cfg=cfg)
    token_a = _token(store, cfg, a["id"])
    sent_via_approval(store, cfg, b["id"], author=DORA, approver=ANNA)
    assert state_of(store, a["id"]) == "withdrawn"
    with pytest.raises(ConsoleError, match="zurückgezogen"):
        release.send(store, ANNA, a["id"], token=token_a, cfg=cfg, reason=REASON)
    # even if it were open again (a race), a version below a sent one is refused
    store.conn.execute("UPDATE console_warnings SET state='submitted' WHERE id=?", (a["id"],))
    store.conn.execute("UPDATE console_warnings SET editors='[1]' WHERE id=?", (a["id"],))
    with pytest.raises(ConsoleError, match="Fassung 3 dieser Warnung wurde schon gesendet"):
        release.approve(store, BERT, a["id"], token=_token(store, cfg, a["id"]), cfg=cfg)


def test_four_eyes_end_setting(tmp_path: Path) -> None:
    from hub.config.load import load
    from hub.errors import ConfigError

    text = (REPO / "config.toml").read_text(encoding="utf-8")
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    assert load(path).cfg.console.four_eyes_end is False  # the default: an approver may end a warning alone
    path.write_text(text.replace("[console]", "[console]\nfour_eyes_end = true", 1) if "[console]" in text
                    else text + "\n[console]\nfour_eyes_end = true\n", encoding="utf-8")
    assert load(path).cfg.console.four_eyes_end is True
    path.write_text(text + "\n[console]\nfour_eyes_end = \"ja\"\n" if "[console]" not in text
                    else text.replace("[console]", "[console]\nfour_eyes_end = \"ja\"", 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"console\.four_eyes_end"):
        load(path)
