"""The source faults' fixes in the CAP core (issue 17 §3, faults 8 and 9): a ``sent`` ahead of the hub's clock is
flagged (with an injected clock), and a DOCTYPE or ENTITY declaration is refused from the bytes before libxml2 reads
the DTD (before, a billion laughs was refused only by libxml2's amplification limit, after it had counted the
expansion)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.cap import parse as cap_parse
from hub.cap.prolog import declares
from hub.cap.validate import SENT_AHEAD, Validator, Verdict
from hub.errors import ParseError
from tests.kits.hubproc import XXE, cap_xml

SENT = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)  # cap_xml's sent (10:00+01:00)


@pytest.mark.parametrize(("now", "flagged"), [
    (SENT, False), (SENT - SENT_AHEAD, False), (SENT - SENT_AHEAD - timedelta(seconds=1), True),
    (SENT - timedelta(days=2, hours=3), True), (SENT + timedelta(days=1), False)])
def test_a_sent_ahead_of_the_hubs_clock_is_flagged_and_still_accepted(now: datetime, flagged: bool) -> None:
    report = Validator(clock=lambda: now).check(cap_xml("clock-1"))
    ahead = [w for w in report.warnings if "ahead of the hub's clock" in w]
    assert bool(ahead) is flagged, report.warnings
    assert report.verdict is (Verdict.ACCEPTED if flagged else Verdict.VALID)


def test_the_flag_says_how_far_ahead() -> None:
    report = Validator(clock=lambda: SENT - timedelta(days=2, hours=3)).check(cap_xml("clock-2"))
    assert any(w.startswith("sent 2030-01-01T10:00:00+01:00 lies 2 d 3 h ahead") for w in report.warnings)


LAUGHS = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol0 "lollollollollollollollollollol">'
          + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
          + ']>\n<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol9;</identifier></alert>')


@pytest.mark.parametrize("data", [
    LAUGHS.encode(),
    LAUGHS.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>').encode("utf-16"),
    LAUGHS.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16BE"?>').encode("utf-16-be"),
    b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- a <b> in a comment -->\n<?pi x?>\n<!DOCTYPE a SYSTEM "file:///etc/passwd"><a/>',
    b'<!ENTITY x "y"><a/>',
    XXE.read_bytes(),
], ids=["laughs", "laughs-utf16", "laughs-utf16be", "after-comments", "bare-entity", "corpus-xxe"])
def test_declarations_are_refused_before_the_parser_reads_them(data: bytes) -> None:
    assert declares(data)
    with pytest.raises(ParseError, match="DOCTYPE declaration refused"):
        cap_parse.read_xml(data)


def test_a_doctype_in_the_body_is_no_declaration() -> None:
    body = cap_xml("prolog-1").replace(b"<headline>Testwarnung</headline>",
                                       b"<headline><![CDATA[<!DOCTYPE html> im Text]]></headline>")
    assert not declares(body)
    assert cap_parse.parse(body).alert.infos[0].headline == "<!DOCTYPE html> im Text"
