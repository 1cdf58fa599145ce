"""Display boards: text fitted to real budgets, a real Mosquitto for retained MQTT boards, a local aiohttp controller
for signed HTTP boards.

Invariants: a board never shows more than its budget or a character it cannot display; the severity word (and the
exercise marker) always survive the fitting; exercise never public; a cancel clears (and never blanks another
warning); no accepted delivery lost when the broker is away (retry, then done once it is back); a board that shows
the retained state also gets it when it connects after the publish.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as mqtt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.channels.boardmqtt import MqttBoards
from adapters.channels.boards import (
    HttpBoards,
    board_state,
    clear_state,
    retry_after,
    sign,
    verify_signature,
)
from hub.cap import labels
from hub.config.sections import BoardConfig
from hub.ports import BoardText, BoardUpdate, Delivery, Outcome
from hub.publish.boardtext import board_text, fit, plain, transliterate, validity
from hub.publish.publications import Notice, Publication, ms
from tests.kits.mosquitto import Mosquitto, MosquittoMissing


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Case:
    """A publication version with one language, as the pipeline stores it (:attr:`pub` and its :attr:`notice`),
    and the info's onset (publications keep none: only :func:`fit` takes it)."""

    thread: str
    version: int
    msg_type: str
    status: str
    severity: str
    urgency: str = "Unknown"
    event: str = ""
    headline: str = ""
    description: str = ""
    instruction: str = ""
    sent: datetime = datetime(2020, 1, 1, tzinfo=UTC)
    onset: datetime | None = None
    expires: datetime | None = None
    sender_name: str = ""
    all_clear: bool = False

    @property
    def notice(self) -> Notice:
        return Notice("de-DE", self.event, self.headline, self.description, self.instruction, "", self.sender_name,
                      None, self.all_clear)

    @property
    def pub(self) -> Publication:
        return Publication(1, self.thread, self.version, None, None, f"test.{self.thread}.{self.version}", "test",
                           self.sent, self.msg_type, self.status, self.severity, self.urgency,
                           ms(self.expires) if self.expires is not None else None, False, ("boards",), (),
                           (self.notice,), None, "Public")


def fitted(case: Case, **budget: Any) -> list[str]:
    """The case's board text, its onset included."""
    return fit(case.pub, case.notice, onset=case.onset, **budget)


# Real German warning texts. Each comment names the file in /work/shared/corpus the text was taken from.

# cap/de_dwd_kweathercore_update-MUL.xml (DWD Update, KDE/kweathercore, CC0-1.0)
GEWITTER = Case(
    thread="dwd/gewitter", version=2, msg_type="Update", status="Actual", severity="Moderate", urgency="Immediate",
    event="STARKES GEWITTER", headline="Amtliche WARNUNG vor STARKEM GEWITTER",
    description="Es treten einzelne Gewitter auf. Dabei gibt es Starkregen mit Niederschlagsmengen bis 25 l/m² pro "
                "Stunde sowie Windböen mit Geschwindigkeiten bis 60 km/h (17m/s, 33kn, Bft 7) und kleinkörnigen Hagel.",
    instruction="ACHTUNG! Hinweis auf mögliche Gefahren: Örtlich kann es Blitzschlag geben. Bei Blitzschlag besteht "
                "Lebensgefahr! Während des Platzregens sind kurzzeitig Verkehrsbehinderungen möglich.",
    sent=at("2022-08-26T22:03:00+02:00"), onset=at("2022-08-26T22:03:00+02:00"),
    expires=at("2022-08-26T23:00:00+02:00"), sender_name="Deutscher Wetterdienst")
# cap/de_dwd_brightsky_MUL_1687511640000_0d1a4fb5.xml (DWD, jdemaeyer/brightsky, MIT)
STARKREGEN = Case(
    thread="dwd/starkregen", version=1, msg_type="Update", status="Actual", severity="Moderate", urgency="Immediate",
    event="STARKREGEN", headline="Amtliche WARNUNG vor STARKREGEN",
    instruction="ACHTUNG! Hinweis auf mögliche Gefahren: Während des Platzregens sind kurzzeitig "
                "Verkehrsbehinderungen möglich.",
    sent=at("2023-06-23T11:14:00+02:00"), onset=at("2023-06-23T11:14:00+02:00"),
    expires=at("2023-06-23T15:00:00+02:00"))
# cap/de_dwd_wdr-unwetter_alert1_glaette.xml (DWD 2019, wdr-data/unwetter, MIT)
GLAETTE = Case(
    thread="dwd/glaette", version=1, msg_type="Alert", status="Actual", severity="Minor", urgency="Immediate",
    event="GLÄTTE", headline="Amtliche WARNUNG vor GLÄTTE",
    description="Es muss mit Glätte durch geringfügigen Schneefall gerechnet werden.", instruction="",
    sent=at("2019-01-22T20:26:00+01:00"), onset=at("2019-01-23T00:00:00+01:00"),
    expires=at("2019-01-23T12:00:00+01:00"))
# nina/fpas_mow.DE-HE-KS-SE106-20250313-106-001.json (MoWaS Cancel, KDE/foss-public-alert-server, CC0-1.0)
PROBEALARM = Case(
    thread="mow/probealarm-he", version=2, msg_type="Cancel", status="Actual", severity="Extreme",
    urgency="Immediate", event="Gefahrendurchsage", headline="Entwarnung: Probealarm - Land Hessen",
    instruction="Informieren Sie sich in den Medien, zum Beispiel im Lokalradio.<br/>Es besteht keine Gefahr.",
    sent=at("2025-03-13T10:50:25+01:00"), expires=at("2025-03-13T16:50:25+01:00"), all_clear=True)
# nina/ha_nina_sample_warning_details.json, mow.DE-BW-S-SE018-20211102-18-001 (MoWaS Update, home-assistant/core)
CORONA = Case(
    thread="mow/corona-bw", version=3, msg_type="Update", status="Actual", severity="Minor", urgency="Immediate",
    event="Gefahreninformation",
    headline="Corona-Verordnung des Landes: Warnstufe durch Landesgesundheitsamt ausgerufen",
    instruction="Waschen Sie sich regelmäßig und gründlich die Hände.<br/>- Beachten Sie die AHA + A + L - Regeln:"
                "<br/>Abstand halten - 1,5 m Mindestabstand beachten, Körperkontakt vermeiden!<br/>Hygiene - "
                "regelmäßiges Händewaschen, Husten- und Nieshygiene beachten!<br/>Alltagsmaske (Mund-Nase-Bedeckung) "
                "tragen!<br/>- Bleiben Sie bei Erkältungssymptomen nach Möglichkeit zu Hause.",
    sent=at("2021-11-02T20:07:16+01:00"))
# nina/ha_nina_sample_warning_details.json, biw.BIWAPP-69634 (BIWAPP, home-assistant/core)
GEFLUEGELPEST = Case(
    thread="biw/69634", version=1, msg_type="Alert", status="Actual", severity="Minor", urgency="Unknown",
    event="4", headline="Geflügelpest im Landkreis Cuxhaven - Teile des Landkreises Osterholz zur "
                        "Überwachungszone erklärt")
# Derived from GEWITTER: an exercise at the top severity, and typographic characters an ASCII board cannot show.
UEBUNG = dataclasses.replace(GEWITTER, thread="ex/gewitter", status="Exercise", severity="Extreme",
                             instruction="„Übung“ – Blitzschlag möglich… Bußgeld 50 €. " + GEWITTER.instruction)

NOTICES = {"gewitter": GEWITTER, "starkregen": STARKREGEN, "glaette": GLAETTE, "probealarm": PROBEALARM,
           "corona": CORONA, "gefluegelpest": GEFLUEGELPEST, "uebung": UEBUNG}
BUDGETS = [(1, 16), (2, 20), (4, 40), (8, 60)]
CHARSETS = ["utf-8", "latin-1", "ascii"]


def lead_words(notice: Case, charset: str) -> set[str]:
    if notice.all_clear or notice.msg_type == "Cancel":
        return {"Entwarnung"}
    words = (labels.severity_word(notice.severity), labels.severity_short(notice.severity))
    return {transliterate(w, charset) for w in words}  # type: ignore[arg-type]


# -- fitting ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("charset", CHARSETS)
@pytest.mark.parametrize(("lines", "chars"), BUDGETS)
@pytest.mark.parametrize("name", list(NOTICES))
def test_fit_stays_within_budget_and_charset(name: str, lines: int, chars: int, charset: str) -> None:
    notice = NOTICES[name]
    out = fitted(notice, lines=lines, chars=chars, charset=charset)
    assert 1 <= len(out) <= lines
    for line in out:
        assert 0 < len(line) <= chars, line
        assert line == line.strip() and "  " not in line
        line.encode(charset)  # raises if a character does not fit the board
    text = " ".join(out)
    assert any(w in text for w in lead_words(notice, charset)), out
    if notice.status == "Exercise":
        assert out[0].startswith(transliterate("ÜBUNG", charset))  # type: ignore[arg-type]
    ellipsis = "…" if charset == "utf-8" else "..."
    own = transliterate(notice.headline + notice.instruction, charset).count(ellipsis)  # type: ignore[arg-type]
    assert text.count(ellipsis) <= own + 1, "only the one part cut mid-sentence ends in an ellipsis"
    for part in text.split(ellipsis)[1:]:
        assert part == "" or part.startswith(" "), "an ellipsis closes a cut word, never splits one"


@pytest.mark.parametrize("charset", CHARSETS)
@pytest.mark.parametrize("name", list(NOTICES))
def test_fit_keeps_the_issuers_text_when_everything_fits(name: str, charset: str) -> None:
    notice = NOTICES[name]
    lead = ("ÜBUNG: " if notice.status == "Exercise" else "") + (
        "Entwarnung" if notice.all_clear else labels.severity_word(notice.severity))
    valid = validity(notice.pub, notice.notice, onset=notice.onset)
    whole = " ".join(p for p in (lead, plain(notice.headline), plain(notice.instruction), valid) if p)
    out = fitted(notice, lines=40, chars=400, charset=charset)
    assert " ".join(out) == " ".join(transliterate(whole, charset).split())  # type: ignore[arg-type]


@pytest.mark.parametrize(("notice", "lines", "chars", "charset", "expected"), [
    (GLAETTE, 8, 60, "utf-8", ["Information", "Amtliche WARNUNG vor GLÄTTE", "ab 23.01. 00:00 bis 12:00"]),
    (GLAETTE, 8, 60, "ascii", ["Information", "Amtliche WARNUNG vor GLAETTE", "ab 23.01. 00:00 bis 12:00"]),
    (STARKREGEN, 8, 60, "latin-1", ["Warnung", "Amtliche WARNUNG vor STARKREGEN",
                                     "ACHTUNG! Hinweis auf mögliche Gefahren: Während des",
                                     "Platzregens sind kurzzeitig Verkehrsbehinderungen möglich.", "bis 15:00"]),
    # too small for all: the DWD boilerplate goes first, the headline's short form is the event, no ellipsis
    (GEWITTER, 2, 20, "utf-8", ["Warnung STARKES", "GEWITTER bis 23:00"]),
    (GEWITTER, 4, 40, "ascii", ["Warnung Amtliche WARNUNG vor STARKEM", "GEWITTER Oertlich kann es Blitzschlag",
                                "geben. Bei Blitzschlag besteht", "Lebensgefahr! Waehrend des... bis 23:00"]),
    (PROBEALARM, 1, 16, "ascii", ["Entwarnung"]),
    (UEBUNG, 1, 16, "ascii", ["UEBUNG: GEFAHR"]),
    # a cut mid-sentence ends in an ellipsis
    (CORONA, 2, 40, "utf-8", ["Information Corona-Verordnung des", "Landes: Warnstufe durch…"]),
])
def test_fit_examples(notice: Case, lines: int, chars: int, charset: str, expected: list[str]) -> None:
    assert fitted(notice, lines=lines, chars=chars, charset=charset) == expected


def test_fit_hyphen_splits_only_words_longer_than_a_line() -> None:
    notice = dataclasses.replace(STARKREGEN, headline="Verkehrsbehinderungen", instruction="", expires=None)
    assert fitted(notice, lines=4, chars=12) == ["Warnung", "Verkehrsbeh-", "inderungen"]


@pytest.mark.parametrize(("text", "charset", "expected"), [
    ("Glätte, Straße, Öl, Übung", "ascii", "Glaette, Strasse, Oel, Uebung"),
    ("GLÄTTE ÜBUNG STRAẞE", "ascii", "GLAETTE UEBUNG STRASSE"),
    ("„Probealarm“ – ‚bitte‘ … 5 €", "ascii", '"Probealarm" - \'bitte\' ... 5 EUR'),
    ("„Probealarm“ – Glätte … 5 €", "latin-1", '"Probealarm" - Glätte ... 5 EUR'),
    ("25 l/m² – Łódź", "ascii", "25 l/m2 - Lodz"),  # Ł has no decomposition: its base letter, not "?"
    ("25 l/m² – Łódź", "latin-1", "25 l/m² - Lódz"),
    ("Aşırı tehlike, ZAGROŻENIE", "ascii", "Asiri tehlike, ZAGROZENIE"),  # Turkish dotless ı, Polish Ż
    ("Опасность", "latin-1", "?????????"),  # Cyrillic needs utf-8 (the configuration refuses a Russian ascii board)
    ("Glätte „5 €“", "utf-8", "Glätte „5 €“"),
    ("暴雨警报", "ascii", "????"),
])
def test_transliterate(text: str, charset: str, expected: str) -> None:
    assert transliterate(text, charset) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("charset", ["latin-1", "ascii"])
def test_transliterate_never_raises(charset: str) -> None:
    every = "".join(chr(c) for c in range(0x0, 0x3400)) + "\ud800\U0001f600"
    transliterate(every, charset).encode(charset)  # type: ignore[arg-type]


def test_board_state_json() -> None:
    board = BoardConfig(id="b1", name="Marktplatz", ars="033540011011", kind="http", lines=2, chars=20,
                        charset="ascii", url="http://x", secret="s")
    now = datetime(2022, 8, 26, 20, 5, tzinfo=UTC)
    doc = json.loads(board_state(board, board_text(board, GEWITTER.pub, GEWITTER.notice), "k1", now=now).to_json())
    assert doc == {"board": "b1", "thread": "dwd/gewitter", "version": 2, "key": "k1", "severity": "Moderate",
                   "status": "Actual", "lines": ["Warnung STARKES", "GEWITTER bis 23:00"],
                   "headline": "Amtliche WARNUNG vor STARKEM GEWITTER",
                   "instruction": transliterate(GEWITTER.instruction, "ascii"),
                   "expires": "2022-08-26T21:00:00+00:00", "updated": "2022-08-26T20:05:00Z"}
    assert json.loads(clear_state("b1", now=now).to_json())["lines"] == []


# -- signatures -------------------------------------------------------------------------------------------------


def test_verify_signature() -> None:
    body, ts = b'{"a":1}', "1700000000"
    header = sign("geheim", ts, body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature("geheim", ts, body, header, now=1700000100)
    assert not verify_signature("anders", ts, body, header, now=1700000100)
    assert not verify_signature("geheim", ts, body + b" ", header, now=1700000100)
    assert not verify_signature("geheim", "1700000001", body, header, now=1700000100)
    assert not verify_signature("geheim", ts, body, header, now=1700000000 + 301)  # replayed too late
    assert not verify_signature("geheim", "nan", body, header)
    assert not verify_signature("geheim", ts, body, header.removeprefix("sha256="), now=1700000000)


def test_retry_after() -> None:
    assert retry_after("120") == 120
    assert retry_after(None) is None and retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=datetime(2015, 10, 21, 7, 27, tzinfo=UTC).timestamp()) \
        == 60


# -- MQTT boards against a real Mosquitto -----------------------------------------------------------------------


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    try:
        b = Mosquitto(tmp_path / "broker")
    except MosquittoMissing as err:
        pytest.fail(str(err))
    b.start()
    yield b
    b.stop()


def delivery(board: str, key: str = "", thread: str = "dwd/gewitter", channel: str = "boards-mqtt") -> Delivery:
    return Delivery(id=1, key=key or f"pub1/v1/{channel}/{board}", publication_id=1, thread=thread, channel=channel,
                    recipient=board, priority=5, attempts=0, not_after_ms=None, host="")


class Pipeline:
    """The resolve callable the pipeline passes in: what each of ``boards`` should show, settable by the test, its
    text fitted as the core fits it."""

    def __init__(self, *boards: BoardConfig) -> None:
        self.boards = {b.id: b for b in boards}
        self.show: dict[str, Case | None] = {}

    async def __call__(self, batch: Sequence[Delivery]) -> list[BoardUpdate | None]:
        return [BoardUpdate(d.recipient, self._text(d.recipient)) if d.recipient in self.show else None
                for d in batch]

    def _text(self, board: str) -> BoardText | None:
        case = self.show[board]
        return board_text(self.boards[board], case.pub, case.notice) if case is not None else None


def live(notice: Case, version: int = 1, **changes: Any) -> Case:
    """The notice, still valid for an hour (board channels clear what has expired)."""
    now = datetime.now(UTC)
    return dataclasses.replace(notice, version=version, sent=now, onset=now, expires=now + timedelta(hours=1),
                               **changes)


def mqtt_board(port: int, id: str = "markt", **extra: Any) -> BoardConfig:
    fields: dict[str, Any] = {"lines": 4, "chars": 40, "timeout_s": 5, **extra}
    return BoardConfig(id=id, name="Marktplatz", ars="033540011011", kind="mqtt", port=port, topic=f"boards/{id}",
                       **fields)


def read_retained(port: int, topic: str) -> tuple[bytes, Any] | None:
    """What a board connecting now gets on ``topic``: the retained payload and its properties, or None.

    Order of events, not a timeout: after the SUBACK the reader publishes a marker to itself; the broker sends the
    retained messages of a subscription before it routes anything published after it."""
    got: list[tuple[bytes, Any]] = []
    done = threading.Event()
    marker = f"test/marker/{uuid.uuid4().hex}"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe([(topic, 1), (marker, 1)])
    client.on_subscribe = lambda c, u, mid, codes, p: c.publish(marker, b"m", qos=1)

    def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == marker:
            done.set()
        else:
            got.append((bytes(msg.payload), msg.properties))

    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert done.wait(10), "the marker did not come back"
    finally:
        client.disconnect()
        client.loop_stop()
    assert len(got) <= 1
    return got[0] if got else None


async def retained(port: int, topic: str) -> tuple[bytes, Any] | None:
    return await asyncio.to_thread(read_retained, port, topic)


async def test_late_subscriber_gets_the_retained_state(broker: Mosquitto) -> None:
    board = mqtt_board(broker.port)
    pipeline = Pipeline(board)
    notice = live(GEWITTER)
    pipeline.show["markt"] = notice
    async with MqttBoards([board], pipeline) as channel:
        assert await channel.deliver([delivery("markt", key="k-v1")]) == [Outcome.done()]
    got = await retained(broker.port, "boards/markt")  # the channel is gone; the board connects only now
    assert got is not None
    payload, props = got
    state = json.loads(payload)
    assert state["board"] == "markt" and state["thread"] == "dwd/gewitter" and state["key"] == "k-v1"
    assert state["lines"] == fit(notice.pub, notice.notice, lines=4, chars=40) and state["status"] == "Actual"
    assert 3500 <= props.MessageExpiryInterval <= 3600, "the broker drops the state when the warning expires"


async def test_cancel_and_clear_remove_the_retained_state(broker: Mosquitto) -> None:
    board = mqtt_board(broker.port)
    pipeline = Pipeline(board)
    async with MqttBoards([board], pipeline) as channel:
        pipeline.show["markt"] = live(GEWITTER)
        assert (await channel.deliver([delivery("markt")]))[0].kind == "done"
        assert await retained(broker.port, "boards/markt") is not None
        pipeline.show["markt"] = live(GEWITTER, 2, msg_type="Cancel")
        assert (await channel.deliver([delivery("markt")]))[0].kind == "done"
        assert await retained(broker.port, "boards/markt") is None
        pipeline.show["markt"] = live(STARKREGEN)
        assert (await channel.deliver([delivery("markt", thread="dwd/starkregen")]))[0].kind == "done"
        pipeline.show["markt"] = None  # the pipeline: nothing to show
        assert (await channel.deliver([delivery("markt")]))[0].kind == "done"
        assert await retained(broker.port, "boards/markt") is None


async def test_expired_notice_clears(broker: Mosquitto) -> None:
    board = mqtt_board(broker.port)
    pipeline = Pipeline(board)
    async with MqttBoards([board], pipeline) as channel:
        pipeline.show["markt"] = live(GEWITTER)
        assert (await channel.deliver([delivery("markt")]))[0].kind == "done"
        pipeline.show["markt"] = GEWITTER  # expired in 2022
        assert (await channel.deliver([delivery("markt")]))[0].kind == "done"
        assert await retained(broker.port, "boards/markt") is None


async def test_cancel_of_another_warning_keeps_the_board(broker: Mosquitto) -> None:
    board = mqtt_board(broker.port)
    pipeline = Pipeline(board)
    async with MqttBoards([board], pipeline) as channel:
        pipeline.show["markt"] = live(GEWITTER)
        assert (await channel.deliver([delivery("markt")]))[0].kind == "done"
        pipeline.show["markt"] = live(STARKREGEN, msg_type="Cancel")
        assert (await channel.deliver([delivery("markt", thread="dwd/starkregen")]))[0].kind == "done"
    got = await retained(broker.port, "boards/markt")
    assert got is not None and json.loads(got[0])["thread"] == "dwd/gewitter"


async def test_exercise_never_on_a_public_board(broker: Mosquitto) -> None:
    public, training = mqtt_board(broker.port), mqtt_board(broker.port, "schulung", exercise=True)
    pipeline = Pipeline(public, training)
    pipeline.show = {"markt": live(UEBUNG), "schulung": live(UEBUNG)}
    async with MqttBoards([public, training], pipeline) as channel:
        out = await channel.deliver([delivery("markt"), delivery("schulung")])
    assert [o.kind for o in out] == ["failed", "done"]
    assert await retained(broker.port, "boards/markt") is None
    got = await retained(broker.port, "boards/schulung")
    assert got is not None and json.loads(got[0])["lines"][0].startswith("ÜBUNG: Extreme Gefahr")


async def test_ascii_board_payload_is_ascii(broker: Mosquitto) -> None:
    board = mqtt_board(broker.port, charset="ascii", lines=2, chars=20)
    pipeline = Pipeline(board)
    pipeline.show["markt"] = live(UEBUNG, status="Actual")
    async with MqttBoards([board], pipeline) as channel:
        assert (await channel.deliver([delivery("markt")]))[0].kind == "done"
    got = await retained(broker.port, "boards/markt")
    assert got is not None
    assert all(b < 128 for b in got[0]), got[0]
    state = json.loads(got[0])
    assert len(state["lines"]) <= 2 and all(len(line) <= 20 for line in state["lines"])
    assert "Uebung" in state["instruction"] and "EUR" in state["instruction"]


async def test_unknown_board_and_missing_update_fail(broker: Mosquitto) -> None:
    pipeline = Pipeline()
    async with MqttBoards([mqtt_board(broker.port)], pipeline) as channel:
        out = await channel.deliver([delivery("nirgends"), delivery("markt")])
    assert [o.kind for o in out] == ["failed", "failed"]


async def test_broker_down_is_retry_and_back_is_done(broker: Mosquitto) -> None:
    """No accepted delivery lost: while the broker is away every delivery is retried, none is dropped."""
    board = mqtt_board(broker.port)
    pipeline = Pipeline(board)
    async with MqttBoards([board], pipeline) as channel:
        pipeline.show["markt"] = live(GEWITTER, 1)
        assert (await channel.deliver([delivery("markt")]))[0].kind == "done"
        broker.stop()
        for _ in range(500):  # until paho noticed the broker is gone (bounded)
            if not channel.connected():
                break
            await asyncio.sleep(0.02)
        pipeline.show["markt"] = live(GEWITTER, 2)
        down = await channel.deliver([delivery("markt", key="k-v2")])
        assert down[0].kind == "retry" and "unreachable" in down[0].reason
        broker.start()
        assert await channel.wait_connected(15)
        assert (await channel.deliver([delivery("markt", key="k-v2")]))[0].kind == "done"
    got = await retained(broker.port, "boards/markt")
    assert got is not None and json.loads(got[0])["version"] == 2


async def test_resolve_failure_retries_the_batch(broker: Mosquitto) -> None:
    async def broken(batch: Sequence[Delivery]) -> list[BoardUpdate | None]:
        raise RuntimeError("store busy")

    async with MqttBoards([mqtt_board(broker.port)], broken) as channel:
        out = await channel.deliver([delivery("markt"), delivery("markt")])
    assert [o.kind for o in out] == ["retry", "retry"]


# -- HTTP boards against a local controller ---------------------------------------------------------------------


class Controller:
    """A board controller: checks the signature like a real one, records what it was sent, answers as told."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.seen: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.status = 200
        self.headers: dict[str, str] = {}

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify_signature(self.secret, request.headers.get("X-Warnhub-Timestamp", ""), body,
                                request.headers.get("X-Warnhub-Signature", "")):
            return web.Response(status=401, text="bad signature")
        self.seen.append((dict(request.headers), json.loads(body)))
        return web.Response(status=self.status, headers=self.headers)


@pytest.fixture
async def controller() -> AsyncIterator[tuple[Controller, TestServer, aiohttp.ClientSession]]:
    ctl = Controller("board-secret")
    app = web.Application()
    app.router.add_post("/board", ctl.handle)
    server = TestServer(app)
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield ctl, server, session
    await server.close()


def http_board(server: TestServer, secret: str = "board-secret") -> BoardConfig:
    return BoardConfig(id="bahnhof", name="Bahnhof", ars="033540011011", kind="http", lines=2, chars=20,
                       charset="latin-1", url=str(server.make_url("/board")), secret=secret, timeout_s=5)


async def test_http_board_gets_a_signed_state(controller: tuple[Controller, TestServer, aiohttp.ClientSession]) \
        -> None:
    ctl, server, session = controller
    pipeline = Pipeline(http_board(server))
    pipeline.show["bahnhof"] = notice = live(GEWITTER)
    async with HttpBoards([http_board(server)], session, pipeline) as channel:
        out = await channel.deliver([delivery("bahnhof", key="k-http", channel="boards-http")])
        assert [o.kind for o in out] == ["done"]
        pipeline.show["bahnhof"] = None
        assert (await channel.deliver([delivery("bahnhof", channel="boards-http")]))[0].kind == "done"
    (headers, state), (_, cleared) = ctl.seen
    assert headers["Idempotency-Key"] == "k-http" and headers["Content-Type"] == "application/json"
    assert state["lines"] == fit(notice.pub, notice.notice, lines=2, chars=20, charset="latin-1")
    assert state["key"] == "k-http"
    assert cleared["lines"] == [] and cleared["board"] == "bahnhof"


async def test_http_board_errors(controller: tuple[Controller, TestServer, aiohttp.ClientSession]) -> None:
    ctl, server, session = controller
    pipeline = Pipeline(http_board(server))
    pipeline.show["bahnhof"] = live(GEWITTER)
    async with HttpBoards([http_board(server)], session, pipeline) as channel:
        ctl.status, ctl.headers = 500, {"Retry-After": "7"}
        (out,) = await channel.deliver([delivery("bahnhof", channel="boards-http")])
        assert out.kind == "retry" and out.retry_after_s == 7
        ctl.status, ctl.headers = 404, {}
        (out,) = await channel.deliver([delivery("bahnhof", channel="boards-http")])
        assert out.kind == "failed", "a board is config: never gone"
    async with HttpBoards([http_board(server, "wrong")], session, pipeline) as channel:
        (out,) = await channel.deliver([delivery("bahnhof", channel="boards-http")])
        assert out.kind == "failed" and "401" in out.reason
