"""What a board channel sends is resolved by the core: for each board, the most urgent live publication published to
it, in the board's language, fitted to the board's budget and charset (``hub.ports.BoardText``); a board with nothing
live gets no text. Real SQLite store, a real bilingual publication and real outbox rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hub.cap.model import Severity
from hub.cap.parse import parse
from hub.config import load as config
from hub.deliver import outbox
from hub.deliver.setup import Resolvers
from hub.ports import Delivery
from hub.publish import publications
from hub.publish.boardtext import fit
from hub.store.db import AsyncStore, Store
from tests.e2e.test_routing import dwd_cap
from tests.kits.hubproc import write_config

BOARDS = """
[[boards]]
id = "markt"
name = "Marktplatz"
ars = "033540011011"
kind = "mqtt"
topic = "boards/markt"
lines = 2
chars = 20
charset = "ascii"

[[boards]]
id = "bahnhof"
name = "Bahnhof"
ars = "033540011011"
kind = "mqtt"
topic = "boards/bahnhof"
lines = 4
chars = 40
language = "en-GB"

[[boards]]
id = "leer"
name = "Ohne Warnung"
ars = "033540011011"
kind = "mqtt"
topic = "boards/leer"
"""


def bilingual(now: datetime) -> bytes:
    """A DWD warning with a German and an English info."""
    raw = dwd_cap("s-1", sent=now, expires=now + timedelta(hours=3)).decode()
    info = raw[raw.index("<info>"):raw.index("</info>") + len("</info>")]
    english = info.replace("<language>de-DE</language>", "<language>en-GB</language>")
    english = english.replace("Amtliche UNWETTERWARNUNG vor STURMBÖEN", "Official severe weather warning of gusts")
    return raw.replace(info, info + english).encode()


def test_boards_get_their_language_fitted_to_their_budget(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    source = parse(bilingual(now)).alert
    assert source is not None
    store = Store(tmp_path / "hub.db")
    issued = publications.issue(source, sender="leitstelle@kreis.example", district="033540000000", thread="w1",
                                version=1, previous=None, severity=Severity.SEVERE, now=now)
    with store.transaction() as conn:
        pub = publications.insert(conn, issued, thread="w1", version=1, source_thread=1, source_alert=1, push=False,
                                  channels=("boards",), regions=("033540000000",), area=None,
                                  now_ms=publications.ms(now))
    outbox.enqueue(store, [outbox.NewDelivery(f"{pub.identifier}/boards-mqtt/{b}", pub.id, "w1", "boards-mqtt", b,
                                              "", 3, None) for b in ("markt", "bahnhof")])
    loaded = config.load(write_config(tmp_path, port=1, extra=BOARDS))
    resolvers = Resolvers(AsyncStore(store), loaded)
    batch = [Delivery(i + 1, f"k-{b}", pub.id, "w1", "boards-mqtt", b, 3, 0, None, "")
             for i, b in enumerate(("markt", "bahnhof", "leer", "nirgends"))]
    markt, bahnhof, leer, nirgends = resolvers._boards(store, batch)
    store.close()

    assert markt is not None and markt.board_id == "markt" and markt.text is not None
    text = markt.text
    assert (text.thread, text.version, text.msg_type, text.status, text.severity) == \
        ("w1", 1, "Alert", "Actual", "Severe")
    assert text.expires == pub.expires and text.expires is not None and text.expires > now
    assert text.lines == tuple(fit(pub, pub.notice(["de"]), lines=2, chars=20, charset="ascii"))
    assert 1 <= len(text.lines) <= 2 and all(len(line) <= 20 and line.isascii() for line in text.lines)
    # the severity word leads; the DWD headline's short form (its event) in ASCII: the whole text is the core's
    assert text.lines[0] == "Gefahr STURMBOEEN" and text.lines[1].startswith("bis "), text.lines
    assert text.headline == "Amtliche UNWETTERWARNUNG vor STURMBOEEN"  # whole, in the board's charset

    assert bahnhof is not None and bahnhof.text is not None
    assert bahnhof.text.headline == "Official severe weather warning of gusts"  # the board's language
    assert bahnhof.text.lines == tuple(fit(pub, pub.notice(["en-GB"]), lines=4, chars=40, lang="en-GB"))
    assert bahnhof.text.lines[0] == "Danger" and bahnhof.text.lines[-1].startswith("until "), bahnhof.text.lines
    assert "Official severe weather warning of gusts" in " ".join(bahnhof.text.lines)

    assert leer is not None and leer.board_id == "leer" and leer.text is None  # nothing published to it: clear
    assert nirgends is None  # not a configured board
