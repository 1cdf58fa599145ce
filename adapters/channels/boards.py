"""Display boards: what a board shows (:class:`BoardState`), over MQTT (retained) or signed HTTP POSTs.

A board shows one state at a time: the pipeline's ``resolve`` tells, per delivery, which :class:`Notice` the board
should show now (a :class:`BoardUpdate`; no notice: show nothing). The text is fitted to the board's budget and
charset here (:func:`adapters.channels.boardtext.fit`). A Cancel or an expired notice clears the board, unless this
process knows the board shows another thread (a cancel of warning A never blanks warning B). A notice that is not
``Actual`` is never shown, except an exercise on a board configured for exercises.

MQTT (:class:`MqttBoards`): one paho client per broker, QoS 1, the state as retained JSON on the board's topic, with
the MQTT 5 message expiry set to the warning's expiry (the broker drops it even if the hub is gone by then); a
clear is an empty retained payload, which deletes the retained message. A delivery is done once the broker's
PUBACK arrived; a broker that is not connected answers retry at once (paho reconnects on its own thread).

HTTP (:class:`HttpBoards`, and :mod:`adapters.channels.webhooks`): a POST signed with HMAC-SHA256 over
``timestamp + "." + body`` (:func:`sign`, :func:`verify_signature`), with the delivery key as ``Idempotency-Key``;
all boards of a batch at once, one board's rows in batch order.
2xx is done; 404/410 and other 4xx are failed (a board or webhook is config, never "gone"); 408/425/429/5xx,
timeouts and network errors are retry, honouring Retry-After; redirects are not followed (failed).
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Self

import aiohttp
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from adapters.channels import Delivery, Outcome
from hub import __version__
from hub.config import BoardConfig
from hub.publish.boardtext import Notice, fit, plain, transliterate

log = logging.getLogger("warnhub.channels.boards")
USER_AGENT = f"warnhub/{__version__}"
MAX_SKEW_S = 300
MAX_RETRY_AFTER_S = 24 * 3600.0
RECONNECT_MIN_S = 0.25
RECONNECT_MAX_S = 2.0
KEEPALIVE_S = 30
CONNECT_GRACE_S = 2.0
"""Entering MqttBoards waits this long for the brokers, so the first deliveries need not be retried."""
_REFUSED_FOR_GOOD = {0x87, 0x90, 0x99}
"""PUBACK reason codes no retry helps with: not authorized, topic name invalid, payload format invalid."""
_UNKNOWN = object()


@dataclass(frozen=True, slots=True)
class BoardUpdate:
    """What a board should show for one delivery (``notice`` None: nothing)."""

    board_id: str
    notice: Notice | None


BoardResolve = Callable[[Sequence[Delivery]], Awaitable[list[BoardUpdate | None]]]
"""The pipeline's answer per delivery, in order; None: nothing to deliver for that row (failed)."""


# -- the state a board shows ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BoardState:
    """What a board shows, as the JSON the board receives; no ``lines``: show nothing."""

    board: str
    thread: str | None
    version: int | None
    key: str | None
    severity: str | None
    status: str | None
    lines: tuple[str, ...]
    headline: str | None
    instruction: str | None
    expires: str | None
    updated: str

    @property
    def cleared(self) -> bool:
        return not self.lines

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["lines"] = list(self.lines)
        return doc

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def board_state(board: BoardConfig, notice: Notice, key: str, *, now: datetime | None = None,
                tz: str = "Europe/Berlin") -> BoardState:
    """The state for ``notice`` on ``board``: lines fitted to its budget, every text in its charset."""
    lines = fit(notice, lines=board.lines, chars=board.chars, charset=board.charset, tz=tz)
    return BoardState(
        board=board.id, thread=notice.thread, version=notice.version, key=key, severity=notice.severity,
        status=notice.status, lines=tuple(lines),
        headline=transliterate(plain(notice.headline), board.charset),
        instruction=transliterate(plain(notice.instruction), board.charset),
        expires=notice.expires.isoformat() if notice.expires else None, updated=_stamp(now))


def clear_state(board: str, *, key: str | None = None, thread: str | None = None,
                now: datetime | None = None) -> BoardState:
    """Nothing to show (``thread``: the warning whose end cleared the board, if one did)."""
    return BoardState(board=board, thread=thread, version=None, key=key, severity=None, status=None, lines=(),
                      headline=None, instruction=None, expires=None, updated=_stamp(now))


def _stamp(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plan(board: BoardConfig, row: Delivery, update: BoardUpdate | None, shown: Mapping[str, str | None],
          now: datetime, tz: str) -> BoardState | Outcome:
    """The state to send for one delivery, or its outcome when nothing is to be sent."""
    if update is None:
        return Outcome.failed("nothing to deliver: the pipeline has no board update for this row")
    if update.board_id != board.id:
        return Outcome.failed(f"the pipeline answered for board {update.board_id}, not {board.id}")
    notice = update.notice
    if notice is None:
        return clear_state(board.id, key=row.key, thread=row.thread, now=now)
    if notice.status != "Actual" and not (notice.status == "Exercise" and board.exercise):
        return Outcome.failed(f"a notice with status {notice.status} is never shown on board {board.id}")
    if notice.msg_type == "Cancel" or (notice.expires is not None and notice.expires <= now):
        on_board = shown.get(board.id, _UNKNOWN)
        if isinstance(on_board, str) and on_board != notice.thread:
            return Outcome.done()  # the board shows another warning: nothing of this one to take down
        return clear_state(board.id, key=row.key, thread=notice.thread, now=now)
    return board_state(board, notice, row.key, now=now, tz=tz)


async def resolve_batch(resolve: Callable[[Sequence[Delivery]], Awaitable[list[Any]]], batch: Sequence[Delivery],
                    channel: str) -> list[Any] | Outcome:
    """The pipeline's answers for a batch, or one retry outcome for all of it."""
    try:
        answers = list(await resolve(batch))
    except Exception as err:  # noqa: BLE001 - a store hiccup must not lose the batch: every row is retried
        log.warning("%s: resolving %d deliveries failed: %r; retried", channel, len(batch), err)
        return Outcome.retry(f"resolve failed: {err!r}")
    if len(answers) != len(batch):
        log.error("%s: resolve answered %d items for %d deliveries; retried", channel, len(answers), len(batch))
        return Outcome.retry(f"resolve answered {len(answers)} items for {len(batch)} deliveries")
    return answers


class OutcomeLog:
    """Logs a target's outcomes once per change of kind (done -> retry -> failed ...), not once per delivery."""

    def __init__(self, channel: str, logger: logging.Logger = log) -> None:
        self.channel, self.log = channel, logger
        self.kinds: dict[str, str] = {}

    def note(self, target: str, row: Delivery, outcome: Outcome) -> None:
        before = self.kinds.get(target, "done")
        self.kinds[target] = outcome.kind
        if outcome.kind == before:
            self.log.debug("%s: %s thread=%s key=%s: %s %s", self.channel, target, row.thread, row.key,
                           outcome.kind, outcome.reason)
        elif outcome.kind == "done":
            self.log.info("%s: %s delivers again (thread=%s key=%s)", self.channel, target, row.thread, row.key)
        else:
            self.log.warning("%s: %s: %s (%s; thread=%s key=%s); further ones logged when this changes",
                             self.channel, target, outcome.kind, outcome.reason, row.thread, row.key)


# -- signed HTTP ------------------------------------------------------------------------------------------------


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(secret: str | bytes, timestamp: str, body: bytes, header: str, *,
                     max_skew_s: float = MAX_SKEW_S, now: float | None = None) -> bool:
    """For receivers: the signature header matches and the timestamp is within ``max_skew_s`` (constant time)."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > max_skew_s:
        return False
    expected = sign(secret, str(ts), body).encode("ascii")
    return hmac.compare_digest(expected, header.encode("utf-8", "replace"))


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), capped at a day; None if absent or unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, when.timestamp() - (time.time() if now is None else now)), MAX_RETRY_AFTER_S)


def outcome_of(status: int, headers: Mapping[str, str], detail: str = "") -> Outcome:
    """The outcome of a receiver's HTTP status (see the module doc)."""
    text = f"HTTP {status}" + (f": {detail}" if detail else "")
    if 200 <= status < 300:
        return Outcome.done()
    if 300 <= status < 400:
        return Outcome.failed(f"HTTP {status} redirect to {headers.get('Location', '?')}: not followed "
                              "(a moved endpoint is a config change)")
    if status in (404, 410):
        return Outcome.failed(f"{text} (the endpoint is not there; it is config: fix the URL)")
    if status in (408, 425, 429) or status >= 500:
        return Outcome.retry(text, retry_after(headers.get("Retry-After")))
    return Outcome.failed(text)


async def post_signed(session: aiohttp.ClientSession, url: str, body: bytes, *, content_type: str,
                      secret: str | bytes, key: str, timeout_s: float) -> Outcome:
    """POST ``body`` signed, with ``key`` as Idempotency-Key; never raises for the receiver's failures."""
    ts = str(int(time.time()))
    headers = {"Content-Type": content_type, "User-Agent": USER_AGENT, "X-Warnhub-Timestamp": ts,
               "X-Warnhub-Signature": sign(secret, ts, body), "Idempotency-Key": key}
    try:
        async with session.post(url, data=body, headers=headers, allow_redirects=False,
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            detail = ""
            if resp.status >= 400:
                detail = " ".join((await resp.content.read(200)).decode("utf-8", "replace").split())
            return outcome_of(resp.status, resp.headers, detail)
    except TimeoutError:
        return Outcome.retry(f"no answer within {timeout_s:g} s")
    except aiohttp.InvalidURL as err:
        return Outcome.failed(f"invalid URL {err}")
    except (aiohttp.ClientError, OSError) as err:
        return Outcome.retry(f"{type(err).__name__}: {err}")


# -- MQTT -------------------------------------------------------------------------------------------------------


class _Broker:
    """One paho client (its own network thread) for one broker; PUBACK futures live on the event loop."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port, self.where = host, port, f"{host}:{port}"
        self.client: mqtt.Client | None = None
        self.connected = False
        """The event loop's view."""
        self.reason = "not connected yet"
        self.pending: dict[int, asyncio.Future[Outcome]] = {}
        self._state = "new"

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.up = asyncio.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                             client_id=f"warnhub-boards-{os.getpid()}-{secrets.token_hex(4)}")
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)  # type: ignore[arg-type]
        client.suppress_exceptions = True
        paho_log = logging.getLogger(f"{log.name}.paho")
        if _quiet_shutdown not in paho_log.filters:
            paho_log.addFilter(_quiet_shutdown)
        client.enable_logger(paho_log)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_publish = self._on_publish
        client.connect_async(self.host, self.port, keepalive=KEEPALIVE_S)
        client.loop_start()
        self.client = client

    async def stop(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        self._state = "closing"
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        self._lost("the channel closed")

    # paho's thread

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop has closed
            pass

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags, reason: Any,
                    properties: object) -> None:
        if reason.is_failure:
            self._post(self._lost, f"broker {self.where} refused the connection: {reason}")
        else:
            self._post(self._connected)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags, reason: Any,
                       properties: object) -> None:
        self._post(self._lost, f"{self.where}: connection lost ({reason})")

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        err = sys.exc_info()[1]  # paho calls this inside its ``except OSError``
        why = (err.strerror if isinstance(err, OSError) and err.strerror else str(err or "")) or "unknown error"
        self._post(self._lost, f"cannot connect to {self.where}: {why}")

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason: Any, properties: object) -> None:
        self._post(self._acked, mid, int(getattr(reason, "value", 0)), str(reason))

    # the event loop

    def _connected(self) -> None:
        if self._state == "closing":
            return
        if self._state != "up":
            log.info("boards-mqtt: connected to %s", self.where)
        self._state, self.connected, self.reason = "up", True, ""
        self.up.set()

    def _lost(self, reason: str) -> None:
        if self._state in ("up", "new"):
            log.warning("boards-mqtt: %s; deliveries are retried until it is back", reason)
        if self._state != "closing":
            self._state = "down"
        self.connected, self.reason = False, reason
        self.up.clear()
        pending, self.pending = self.pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_result(Outcome.retry(f"no PUBACK: {reason}"))

    def _acked(self, mid: int, code: int, text: str) -> None:
        fut = self.pending.pop(mid, None)
        if fut is None or fut.done():
            return  # timed out already (or a resend of a message from before a reconnect)
        if code < 0x80:
            fut.set_result(Outcome.done())
        elif code in _REFUSED_FOR_GOOD:
            fut.set_result(Outcome.failed(f"broker {self.where} refused the message: {text}"))
        else:
            fut.set_result(Outcome.retry(f"broker {self.where} refused the message: {text}"))

    def publish(self, topic: str, payload: bytes, expiry_s: int | None) -> asyncio.Future[Outcome] | Outcome:
        """Start a retained QoS 1 publish; its PUBACK resolves the future."""
        client = self.client
        if client is None or not self.connected or not client.is_connected():
            return Outcome.retry(f"broker {self.where} unreachable: {self.reason or 'connection lost'}")
        props = None
        if expiry_s is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = expiry_s
        info = client.publish(topic, payload, qos=1, retain=True, properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return Outcome.retry(f"publish to {self.where} failed: {mqtt.error_string(info.rc)}")
        fut: asyncio.Future[Outcome] = self._loop.create_future()
        self.pending[info.mid] = fut  # paho's PUBACK reaches the loop only after this callback returns
        return fut

    async def settle(self, fut: asyncio.Future[Outcome], timeout_s: float) -> Outcome:
        try:
            return await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            for mid in [m for m, f in self.pending.items() if f is fut]:
                del self.pending[mid]
            return Outcome.retry(f"no PUBACK from {self.where} within {timeout_s:g} s")


def _quiet_shutdown(record: logging.LogRecord) -> bool:
    """paho 2.2 logs an ERROR when its loop runs once more after a requested disconnect; that is no error."""
    return not str(record.msg).startswith("Client is not connected.")


class MqttBoards:
    """Boards that subscribe to a retained topic on an MQTT broker (see the module doc)."""

    name = "boards-mqtt"

    def __init__(self, configs: Sequence[BoardConfig], resolve: BoardResolve, *, tz: str = "Europe/Berlin") -> None:
        self.boards = {b.id: b for b in configs if b.kind == "mqtt"}
        self.resolve, self.tz = resolve, tz
        self._brokers = {(b.host, b.port): _Broker(b.host, b.port) for b in self.boards.values()}
        self._shown: dict[str, str | None] = {}
        """Board id -> the thread it shows (None: nothing), as far as this process delivered."""
        self._log = OutcomeLog(self.name)

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        for broker in self._brokers.values():
            broker.start(loop)
        await self.wait_connected(CONNECT_GRACE_S)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(b.stop() for b in self._brokers.values()))

    def connected(self) -> bool:
        """Every broker is connected."""
        return all(b.connected for b in self._brokers.values())

    async def wait_connected(self, timeout_s: float) -> bool:
        """Wait until every broker is connected (at most ``timeout_s``); whether they are."""
        try:
            async with asyncio.timeout(timeout_s):
                for broker in self._brokers.values():
                    await broker.up.wait()
        except TimeoutError:
            pass
        return self.connected()

    @staticmethod
    def topic(board: BoardConfig) -> str:
        return board.topic or f"warnhub/boards/{board.id}"

    async def deliver(self, batch: Sequence[Delivery]) -> Sequence[Outcome]:
        updates = await resolve_batch(self.resolve, batch, self.name)
        if isinstance(updates, Outcome):
            return [updates] * len(batch)
        now = datetime.now(UTC)
        started: list[tuple[Delivery, BoardConfig | None, BoardState | None, asyncio.Future[Outcome] | Outcome]] = []
        for row, update in zip(batch, updates, strict=True):  # publish in batch order: the last state wins
            board = self.boards.get(row.recipient)
            try:
                if board is None:
                    started.append((row, None, None, Outcome.failed(f"no MQTT board {row.recipient!r} configured")))
                    continue
                plan = _plan(board, row, update, self._shown, now, self.tz)
                if isinstance(plan, Outcome):
                    started.append((row, board, None, plan))
                    continue
                payload, expiry = b"", None
                if not plan.cleared:
                    payload = plan.to_json()
                    if update is not None and update.notice is not None and update.notice.expires is not None:
                        expiry = max(1, math.ceil((update.notice.expires - now).total_seconds()))
                broker = self._brokers[(board.host, board.port)]
                started.append((row, board, plan, broker.publish(self.topic(board), payload, expiry)))
            except Exception as err:  # noqa: BLE001 - one bad row (a topic paho refuses) must not fail the batch
                started.append((row, board, None, Outcome.failed(f"cannot publish: {err!r}")))
        outcomes = await asyncio.gather(*(self._settle(*s) for s in started))
        return list(outcomes)

    async def _settle(self, row: Delivery, board: BoardConfig | None, state: BoardState | None,
                      started: asyncio.Future[Outcome] | Outcome) -> Outcome:
        if isinstance(started, Outcome):
            outcome = started
        else:
            assert board is not None
            outcome = await self._brokers[(board.host, board.port)].settle(started, board.timeout_s)
        if outcome.kind == "done" and board is not None and state is not None:
            self._shown[board.id] = None if state.cleared else state.thread
        self._log.note(row.recipient, row, outcome)
        return outcome


# -- HTTP -------------------------------------------------------------------------------------------------------


class HttpBoards:
    """Boards whose controller takes signed POSTs of the state JSON (see the module doc)."""

    name = "boards-http"

    def __init__(self, configs: Sequence[BoardConfig], session: aiohttp.ClientSession, resolve: BoardResolve, *,
                 tz: str = "Europe/Berlin") -> None:
        self.boards = {b.id: b for b in configs if b.kind == "http"}
        self.session, self.resolve, self.tz = session, resolve, tz
        self._shown: dict[str, str | None] = {}
        self._log = OutcomeLog(self.name)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None  # the session belongs to the caller

    async def deliver(self, batch: Sequence[Delivery]) -> Sequence[Outcome]:
        updates = await resolve_batch(self.resolve, batch, self.name)
        if isinstance(updates, Outcome):
            return [updates] * len(batch)
        now = datetime.now(UTC)
        outcomes: list[Outcome] = [Outcome.retry("not attempted")] * len(batch)
        by_board: dict[str, list[int]] = {}
        for i, row in enumerate(batch):
            by_board.setdefault(row.recipient, []).append(i)

        async def in_order(indices: list[int]) -> None:  # one board's rows in batch order: the last state wins
            for i in indices:
                outcomes[i] = await self._one(batch[i], updates[i], now)

        await asyncio.gather(*(in_order(ix) for ix in by_board.values()))  # boards at once: none waits for another
        return outcomes

    async def _one(self, row: Delivery, update: BoardUpdate | None, now: datetime) -> Outcome:
        board = self.boards.get(row.recipient)
        try:
            if board is None:
                outcome = Outcome.failed(f"no HTTP board {row.recipient!r} configured")
            elif not board.url or not board.secret:
                outcome = Outcome.failed(f"board {board.id} has no url or no secret (unsigned POSTs are refused)")
            else:
                plan = _plan(board, row, update, self._shown, now, self.tz)
                if isinstance(plan, Outcome):
                    outcome = plan
                else:
                    outcome = await post_signed(self.session, board.url, plan.to_json(),
                                                content_type="application/json", secret=board.secret, key=row.key,
                                                timeout_s=board.timeout_s)
                    if outcome.kind == "done":
                        self._shown[board.id] = None if plan.cleared else plan.thread
        except Exception as err:  # noqa: BLE001 - never raise for one bad row
            outcome = Outcome.failed(f"internal error: {err!r}")
        self._log.note(row.recipient, row, outcome)
        return outcome
