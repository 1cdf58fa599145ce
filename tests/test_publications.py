"""The hub's own CAP messages: Alert, then Update and Cancel referencing the hub's previous version; a severity the
rules raised is in the message; stored publications read back as issued."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hub import publications
from hub.cap.model import MsgType, Severity
from hub.cap.parse import parse
from hub.cap.validate import Validator, Verdict
from hub.store import Store
from tests.test_routing import dwd_cap


def test_issue_chain_and_raised_severity(tmp_path: Path) -> None:
    now = datetime(2030, 1, 1, 12, tzinfo=UTC)
    source = parse(dwd_cap("s-1", sent=now)).alert
    assert source is not None and source.severity is Severity.SEVERE
    store = Store(tmp_path / "hub.db")
    publications.ensure_schema(store)
    first = publications.issue(source, sender="leitstelle@kreis.example", district="033540000000", thread="w1",
                               version=1, previous=None, severity=Severity.EXTREME, now=now)
    assert first.msg_type is MsgType.ALERT and first.severity is Severity.EXTREME and first.references == ()
    assert first.sender == "leitstelle@kreis.example" and "s-1" in (first.note or "")
    with store.transaction() as conn:
        p1 = publications.insert(conn, first, thread="w1", version=1, source_thread=1, source_alert=1, push=True,
                                 channels=("push", "web"), regions=("033540000000",), area=None,
                                 now_ms=publications.ms(now))
    assert p1.severity == "Extreme" and p1.notice(["de"]).headline == "Amtliche UNWETTERWARNUNG vor STURMBÖEN"
    cancel_src = parse(dwd_cap("s-2", msg_type="Cancel", sent=now + timedelta(minutes=5),
                               references=f"opendata@dwd.de,s-1,{now.isoformat()}")).alert
    assert cancel_src is not None
    # the same second as the previous version: sent still increases along the chain
    cancel = publications.issue(cancel_src, sender="leitstelle@kreis.example", district="033540000000", thread="w1",
                                version=2, previous=p1, severity=cancel_src.severity, now=now)
    assert cancel.msg_type is MsgType.CANCEL and cancel.sent > p1.sent
    assert [(r.sender, r.identifier, r.sent) for r in cancel.references] == [(p1.sender, p1.identifier, p1.sent)]
    with store.transaction() as conn:
        p2 = publications.insert(conn, cancel, thread="w1", version=2, source_thread=1, source_alert=2, push=True,
                                 channels=p1.channels, regions=p1.regions, area=None, now_ms=publications.ms(now))
    assert not p2.live(now) and p1.live(now)
    xml = publications.cap_xml(store, p2.identifier)
    assert xml is not None
    report = Validator().check(xml)
    assert report.verdict in (Verdict.VALID, Verdict.ACCEPTED), report.errors
    assert publications.latest(store, "w1") == p2
    assert publications.current(store, now=now, channel=None) == []
    store.close()
