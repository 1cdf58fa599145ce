"""The console never misleads (issue 14): every refusal an operator reads is a whole sentence in German, then in
English ("Deutsch. / English."), never "Meldung ist withdrawn, erwartet: sent". Checked at run time through the
domain (real SQLite file, real geography) and over the source of every console module for messages written
outside the shared ``_msg``."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from typing import Any

import pytest

from hub.console import drafts
from hub.console.model import ConsoleConfig, ConsoleError, ConsoleForbidden
from hub.geo.geography import geography
from hub.store.db import Store
from tests.unit.console.test_console import ANNA, BERT, CARL, DISTRICT, REPO, SENDER, form

SENTENCE = re.compile(r"^[A-ZÄÖÜ„\"][^\n]*[.!?] / [A-Z\"][^\n]*[.!?]( .*)?$", re.S)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store(store_url)  # on each backend (tests/conftest.py)
    yield s
    s.close()


@pytest.fixture(scope="module")
def cfg() -> ConsoleConfig:
    return ConsoleConfig(geo=geography(), district=DISTRICT, sender=SENDER)


def _refusal(fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises((ConsoleError, ConsoleForbidden)) as caught:
        fn(*args, **kwargs)
    return str(caught.value)


def _bad(**content: Any) -> dict[str, Any]:
    f = form()
    f["content"] = {**f["content"], **content}
    return f


def test_refusals_are_sentences_in_german_and_english(store: Store, cfg: ConsoleConfig) -> None:
    w = drafts.create_draft(store, ANNA, form(), cfg=cfg)
    drafts.withdraw(store, ANNA, w["id"], cfg=cfg)
    messages = {
        "state": _refusal(drafts.submit, store, ANNA, w["id"], cfg=cfg),
        "follow-up": _refusal(drafts.follow_up, store, ANNA, w["id"], "cancel", cfg=cfg),
        "event": _refusal(drafts.create_draft, store, ANNA, _bad(event=""), cfg=cfg),
        "event_code": _refusal(drafts.create_draft, store, ANNA, _bad(event_code="EVC"), cfg=cfg),
        "expires": _refusal(drafts.create_draft, store, ANNA, _bad(expires="2001-01-01T00:00:00+00:00"), cfg=cfg),
        "template": _refusal(drafts.create_draft, store, ANNA, {**form(), "template": "gibt-es-nicht"}, cfg=cfg),
        "channels": _refusal(drafts.create_draft, store, ANNA, {**form(), "channels": ["fax"]}, cfg=cfg),
        "permission": _refusal(drafts.create_draft, store, BERT.__class__(9, "vera", frozenset({"viewer"})),
                               form(), cfg=cfg),
        "missing": _refusal(drafts.submit, store, CARL, 999, cfg=cfg),
    }
    for what, text in messages.items():
        assert SENTENCE.match(text), f"{what}: {text!r}"
    assert messages["state"] == ("Fassung 1 ist zurückgezogen; dafür muss sie ein Entwurf sein. / "
                                 "Version 1 is withdrawn; this needs it to be a draft.")
    assert messages["follow-up"].startswith("Diese Meldung wurde noch nicht gesendet")
    assert messages["event"].startswith("Feld event: ") and " / Field event: " in messages["event"]


def _pieces(node: ast.AST) -> list[str | None]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return [v.value if isinstance(v, ast.Constant) else None for v in node.values]  # type: ignore[misc]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _pieces(node.left) + _pieces(node.right)
    return [None]


def test_messages_written_outside_msg_are_sentences() -> None:
    """Raw "Deutsch / English" texts handed to errors and HTTP answers in the console's modules."""
    files = sorted([*(REPO / "hub" / "console").glob("*.py"), *(REPO / "hub" / "web").glob("console*.py")])
    found, bad = 0, []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", "")
            if not (re.search(r"(Error|Forbidden|Preview|^HTTP\w+)$", name) or name == "error"):
                continue
            for arg in [*node.args, *(k.value for k in node.keywords if k.arg in ("text", "message"))]:
                text = "".join(p if p is not None else "X" for p in _pieces(arg))
                if " / " in text:
                    found += 1
                    if not SENTENCE.match(text):
                        bad.append(f"{path.name}:{node.lineno}: {text}")
    assert found >= 10 and bad == []
