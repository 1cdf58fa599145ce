"""Display boards over MQTT: one paho client per broker, QoS 1, the state as retained JSON on the board's topic.

See :mod:`adapters.channels.boards` for what a board shows. The MQTT 5 message expiry is set to the warning's expiry
(the broker drops it even if the hub is gone by then); a clear is an empty retained payload, which deletes the
retained message. A delivery is done once the broker's PUBACK arrived; a broker that is not connected answers retry at
once (paho reconnects on its own thread).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Self

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from adapters.channels.boards import BoardState, OutcomeLog, log, plan_for, resolve_batch
from hub.config.sections import BoardConfig
from hub.ports import BoardResolve, Channel, ChannelSetup, Delivery, Outcome

RECONNECT_MIN_S = 0.25
RECONNECT_MAX_S = 2.0
KEEPALIVE_S = 30
CONNECT_GRACE_S = 2.0
"""Entering MqttBoards waits this long for the brokers, so the first deliveries need not be retried."""
_REFUSED_FOR_GOOD = {0x87, 0x90, 0x99}
"""PUBACK reason codes no retry helps with: not authorized, topic name invalid, payload format invalid."""


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

    def __init__(self, configs: Sequence[BoardConfig], resolve: BoardResolve) -> None:
        self.boards = {b.id: b for b in configs if b.kind == "mqtt"}
        self.resolve = resolve
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
                plan = plan_for(board, row, update, self._shown, now)
                if isinstance(plan, Outcome):
                    started.append((row, board, None, plan))
                    continue
                payload, expiry = b"", None
                if not plan.cleared:
                    payload = plan.to_json()
                    if update is not None and update.text is not None and update.text.expires is not None:
                        expiry = max(1, math.ceil((update.text.expires - now).total_seconds()))
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


async def open_mqtt_boards(setup: ChannelSetup) -> list[Channel]:
    """``boards-mqtt``: when boards of kind ``mqtt`` are configured."""
    boards = setup.loaded.cfg.boards
    return [MqttBoards(boards, setup.content.boards_state)] if any(b.kind == "mqtt" for b in boards) else []
