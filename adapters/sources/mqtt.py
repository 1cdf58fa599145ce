"""MQTT sensors: readings from a broker (QoS 1, persistent session) into the store, with stale detection.

Topics and payloads: :mod:`adapters.sources.mqtt_payload`.

Nothing accepted is lost: paho's network thread parses each message and appends it to a buffer, waking the event
loop only when the buffer turns non-empty; the loop writes the whole batch in one transaction on the store's writer
thread and only then acknowledges the messages (manual PUBACK, in arrival order). A message whose PUBACK did not
reach the broker is redelivered after a reconnect and ignored as a duplicate (readings are unique per sensor and
time). Acks are only sent on the connection that delivered the message: a message id means nothing on the next.

Health: ``down`` (with the reason) while the broker is unreachable, ``degraded`` while a sensor is stale (or has not
reported within its interval since start), a subscription was refused or another client keeps taking the session,
naming them, else ``up``.

Client id: ``client_id`` from the config, else ``warnhub-<hub name>-<suffix>-<source name>`` with a random suffix
created once and kept in ``mqtt-client-id`` beside the database (:mod:`adapters.sources.mqtt_client`), so two hubs
with the same config never share a session. Two clients with the same id take the session from each other: the hub
speaks MQTT 5, and a broker that says "session taken over" (reason code 0x8E) is believed at once; Mosquitto 2.0.11
closes the old connection without saying why, so a second connection in a row that ends within ``takeover_forget_s``
of being accepted counts as a takeover too, unless the broker's port is closed 0.2 s later (killed or restarting: a
broker restarted twice within that time is not another client); a failed connect, i.e. a broker really away, ends
the streak. Then the source says so once (log and health) and waits before it reconnects, doubling the wait from
``takeover_min_s`` up to ``takeover_max_s`` while the tug of war goes on, instead of taking the session back within a
quarter of a second.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from adapters.sources.mqtt_client import Client, derived_client_id, listening, quiet_shutdown, reason_of
from adapters.sources.mqtt_payload import Malformed, TopicMap, parse_payload
from hub.config.sections import MqttSourceConfig
from hub.errors import ConfigError, SourceError
from hub.intake import readings

if TYPE_CHECKING:
    from hub.config.load import LoadedConfig
    from hub.ports import SourceContext

RECONNECT_MIN_S = 0.25
RECONNECT_MAX_S = 1.0
"""paho retries a lost broker with these delays (doubling, capped), so a returning broker is used within ~1 s."""
TAKEOVER_MIN_S = 5.0
TAKEOVER_MAX_S = 300.0
TAKEOVER_FORGET_S = 900.0
"""After a session takeover wait TAKEOVER_MIN_S, doubling per further takeover up to TAKEOVER_MAX_S; a connection
that lasted TAKEOVER_FORGET_S ends the streak (the next takeover is logged again and waits TAKEOVER_MIN_S)."""
SESSION_TAKEN_OVER = 142
"""MQTT 5 reason code 0x8E: another client connected with this client id."""
SESSION_EXPIRY_S = 0xFFFFFFFF
"""MQTT 5 session expiry interval: the broker keeps the session (and queues QoS 1 messages) while the hub is away."""
RECEIVE_MAXIMUM = 65535
"""MQTT 5 Receive Maximum: how many QoS 1 messages the broker may send before the hub acknowledges. Acks wait for
the commit, so with the broker's default window (Mosquitto: 20) a backlog drains 20 readings per transaction while
the rest waits in the broker's queue, which Mosquitto cuts at 1,000 by default; with this one the broker hands the
backlog over at once and the hub stores it in batches."""
RETENTION_EVERY_S = 300.0
COALESCE_S = 0.001
COALESCE_MAX = 1000
"""While messages arrive back to back (the last batch was written less than COALESCE_S ago), wait COALESCE_S
before taking the next batch, unless it already holds COALESCE_MAX: fewer, larger transactions."""

# -- the source -------------------------------------------------------------------------------------------------


class _Entry(NamedTuple):
    """One received message, parsed on paho's thread."""

    gen: int
    """The connection it came on (acks go only to that one)."""
    mid: int
    qos: int
    row: tuple[str, int, float, str, int] | None
    """(sensor_id, ts_ms, value, unit, received_ms) when it is a reading."""
    sensor: str | None
    error: str
    topic: str
    received: int


class MqttSource:
    """Sensors over MQTT; ``run()`` connects (reconnecting by itself) until cancelled."""

    _loop: asyncio.AbstractEventLoop
    _wake: asyncio.Event
    _ctx: SourceContext
    _ticker: asyncio.TimerHandle

    def __init__(self, settings: MqttSourceConfig, loaded: LoadedConfig | None = None, **_: object) -> None:
        self.settings = settings
        self.name = settings.name
        self.client_id = settings.client_id or ""
        """Set by run() when not configured: derived from the hub's name and a stored random suffix."""
        self._loaded = loaded
        self.takeover_min_s, self.takeover_max_s = TAKEOVER_MIN_S, TAKEOVER_MAX_S
        self.takeover_forget_s = TAKEOVER_FORGET_S
        ids = [s.id for s in settings.sensors]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"source {self.name}: sensor ids must be unique: {sorted(ids)}")
        self.sensors = {s.id: s for s in settings.sensors}
        self.topics = TopicMap(settings.sensors)
        self.retention_every_s = RETENTION_EVERY_S
        self._where = f"{settings.host}:{settings.port}"
        self._old_topics: list[str] = []
        self.tick_s = min(5.0, max(0.2, min(s.interval_s for s in settings.sensors) / 4))
        """How often staleness is checked."""
        self._buf_lock = threading.Lock()
        self._ack_lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        """Runtime state, fresh for every run() (the supervisor may restart a source)."""
        self._buf: list[_Entry] = []
        self._gen = 0
        self._live = False
        """Paho's view, under _ack_lock: the connection of generation _gen is up."""
        self._sub_mids: dict[int, list[str]] = {}
        self._refusal: str | None = None
        """Why the broker refused the last CONNECT (paho's thread)."""
        self.connected = False
        """The event loop's view of the connection."""
        self.connects = 0
        self.stored = self.duplicates = self.malformed = self.unmatched = 0
        self.last_ts: dict[str, int | None] = {}
        self.problems: dict[str, str] = {}
        """Sensor id or topic filter -> why it makes the source degraded."""
        self.refused: set[str] = set()
        self._logged: set[str] = set()
        self._closing = False
        self._due = False
        """Health must be reported at the next evaluation (after a connect or a SUBACK)."""
        self._flushed = 0.0
        """When the last batch was written (time.monotonic())."""
        self._up_reported = 0.0
        self._started = readings.now_ms()
        self._contested: str | None = None
        """While another client keeps taking the session: why (health stays degraded with it, logged once)."""
        self.takeovers = 0
        """Disconnects because another client took the session over (paho's thread counts)."""
        self._streak = 0
        self._connected_at = 0.0
        self.takeover_waits: list[tuple[float, float]] = []
        """(when kicked, delay) per takeover (time.monotonic()); connect_times: when each CONNACK came."""
        self.connect_times: list[float] = []

    # -- paho's thread --------------------------------------------------------------------------------------

    def _post(self, fn: Any, *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop has closed: the source is gone
            pass

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        received = time.time_ns() // 1_000_000
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = "<topic not UTF-8>"
        try:
            sensor = self.topics.resolve(topic)
            if sensor is None:
                entry = _Entry(self._gen, msg.mid, msg.qos, None, None, "no sensor", topic, received)
            else:
                try:
                    ts, value = parse_payload(msg.payload, sensor, received)
                except Malformed as err:
                    entry = _Entry(self._gen, msg.mid, msg.qos, None, sensor.id, str(err), topic, received)
                else:
                    entry = _Entry(self._gen, msg.mid, msg.qos, (sensor.id, ts, value, sensor.unit, received),
                                   sensor.id, "", topic, received)
        except Exception as err:  # noqa: BLE001 - never lose the place in the ack order
            entry = _Entry(self._gen, msg.mid, msg.qos, None, None, f"internal error: {err!r}", topic, received)
        with self._buf_lock:
            self._buf.append(entry)
            first = len(self._buf) == 1
        if first:
            self._post(self._wake.set)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags, reason: Any,
                    properties: object) -> None:
        if reason.is_failure:
            self._streak = 0
            self._refusal = f"broker {self._where} refused the connection: {reason}"
            self._post(self._lost, self._refusal)
            return
        self._refusal = None
        self._connected_at = time.monotonic()
        self.connect_times.append(self._connected_at)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)  # type: ignore[arg-type]
        with self._ack_lock:
            self._gen += 1
            self._live = True
        _, mid = client.subscribe([(f, 1) for f in self.topics.filters])
        if mid is not None:
            self._sub_mids[mid] = list(self.topics.filters)
        if self._old_topics:
            client.unsubscribe(self._old_topics)
        self._post(self._connected, bool(flags.session_present))

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, codes: list[Any],
                      properties: object) -> None:
        filters = self._sub_mids.pop(mid, [])
        refused = {f for f, code in zip(filters, codes, strict=False) if code.is_failure}
        self._post(self._subscribed, refused)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags, reason: Any,
                       properties: object) -> None:
        with self._ack_lock:
            was_live, self._live = self._live, False
        if self._refusal is not None and not was_live:
            return  # paho closes after a refused CONNACK: the refusal is the reason, reported already
        if not self._closing and self._taken_over(client, getattr(reason, "value", None) == SESSION_TAKEN_OVER):
            return
        who = "the broker closed the connection" if flags.is_disconnect_packet_from_server else "connection lost"
        self._post(self._lost, f"{self._where}: {who} ({reason})")

    def _taken_over(self, client: mqtt.Client, said: bool) -> bool:
        """On paho's thread, before it waits to reconnect: is this a takeover? If so set the growing wait and tell
        the event loop. ``said``: the broker sent reason code 0x8E; else the second short connection in a row."""
        now = time.monotonic()
        short = now - self._connected_at < self.takeover_forget_s
        self._streak = self._streak + 1 if said or short else 0
        if not said and (self._streak < 2 or not listening(self.settings.host, self.settings.port)):
            if self._streak >= 2:
                self._streak = 0  # the broker itself went away (its port is closed): nobody took the session
            return False
        delay: float = min(self.takeover_min_s * 2 ** max(0, self._streak - (1 if said else 2)), self.takeover_max_s)
        self.takeovers += 1
        self.takeover_waits.append((now, delay))
        client.reconnect_delay_set(delay, delay)  # type: ignore[arg-type]  # paho annotates int; any seconds work
        self._post(self._lost_session, delay, self.takeovers == 1 or self._streak == (1 if said else 2), said)
        return True

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self._streak = 0  # the broker is away: no other client holds the session
        err = sys.exc_info()[1]  # paho calls this inside its ``except OSError``
        self._post(self._lost, f"cannot connect to {self._where}: {reason_of(err)}")

    # -- the event loop -------------------------------------------------------------------------------------

    async def run(self, ctx: SourceContext) -> None:
        if ctx.readings is None:
            raise SourceError("the MQTT source needs the readings intake")
        self._reset()
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._ctx = ctx
        rows = [readings.SensorRow(s.id, s.kind, s.unit, s.lat, s.lon, s.ars, s.topic, s.interval_s)
                for s in self.settings.sensors]
        reg = await ctx.readings.register(self.name, rows)
        for sensor_id, other in reg.taken_over:
            ctx.log.warning("sensor %s was registered by source %s; now it is %s's", sensor_id, other, self.name)
        self.last_ts = dict(reg.last_ts)
        self._old_topics = [t for t in reg.old_topics if t not in self.topics.filters]
        if ctx.metrics is not None:
            for sensor_id in self.sensors:
                ctx.metrics.sensor_stale.labels(self.name, sensor_id).set(0)
        if not self.client_id:
            self.client_id = derived_client_id(self._loaded, self.name)
        client = self._client(ctx)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive_s,
                             clean_start=False, properties=props)
        client.loop_start()
        self._ticker = self._loop.call_later(self.tick_s, self._tick)
        thread: threading.Thread | None = getattr(client, "_thread", None)
        try:
            await self._serve(ctx, client, thread)
        finally:
            await self._stop(ctx, client)

    def _client(self, ctx: SourceContext) -> Client:
        s = self.settings
        client = Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                         protocol=mqtt.MQTTv5, manual_ack=True)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)  # type: ignore[arg-type]
        client.suppress_exceptions = True
        paho_log = logging.getLogger(f"{ctx.log.name}.paho")
        if quiet_shutdown not in paho_log.filters:
            paho_log.addFilter(quiet_shutdown)
        client.enable_logger(paho_log)
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.tls:
            client.tls_set()
        client.on_message = self._on_message
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        return client

    async def _serve(self, ctx: SourceContext, client: Client, thread: threading.Thread | None) -> None:
        next_tick = next_retention = time.monotonic()
        while True:
            await self._wake.wait()  # set by paho (first message of a batch), connection events and the ticker
            self._wake.clear()  # before taking the buffer: a message after this wakes us again
            if time.monotonic() - self._flushed < COALESCE_S and len(self._buf) < COALESCE_MAX:
                await asyncio.sleep(COALESCE_S)  # busy: let the batch fill (each batch costs thread switches)
            await self._flush(ctx, client)
            now = self._flushed = time.monotonic()
            if now >= next_tick or self._due:
                next_tick = now + self.tick_s
                await self._evaluate(ctx)
                if thread is not None and not thread.is_alive():
                    raise SourceError("the MQTT network thread ended")
            if now >= next_retention:
                next_retention = now + self.retention_every_s
                await self.retention(ctx)

    def _tick(self) -> None:
        self._wake.set()
        self._ticker = self._loop.call_later(self.tick_s, self._tick)

    async def _flush(self, ctx: SourceContext, client: Client) -> None:
        """Write what paho received in one transaction, then acknowledge it, in arrival order."""
        with self._buf_lock:
            entries, self._buf = self._buf, []
        if not entries:
            return
        assert ctx.readings is not None
        rows = [e.row for e in entries if e.row is not None]
        bad = [(e.sensor, e.error, e.received) for e in entries if e.row is None and e.sensor is not None]
        # the PUBACKs go on the writer thread right after the commit (no hop back to the event loop first, which
        # would add a thread switch to every round trip the broker's in-flight window waits for)
        result = await ctx.readings.record(rows, bad, after_commit=lambda: self._ack(client, entries))
        self.stored += result.stored
        self.duplicates += result.duplicates
        if ctx.metrics is not None:
            if result.stored:
                ctx.metrics.readings.labels(self.name, "stored").inc(result.stored)
            if result.duplicates:
                ctx.metrics.readings.labels(self.name, "duplicate").inc(result.duplicates)
        if result.stored + result.duplicates != len(entries):
            self._note_bad(ctx, [e for e in entries if e.row is None])
        if ctx.on_readings is not None and result.stored:
            try:
                await ctx.on_readings([(e.row[0], e.row[1], e.row[2]) for e in entries if e.row is not None])
            except Exception:  # noqa: BLE001 - the readings are stored; the rules catch up at the next start
                ctx.log.exception("sensor rules failed on a batch of readings")
        for sensor_id, ts in result.newest.items():
            last = self.last_ts.get(sensor_id)
            if last is None or ts > last:
                self.last_ts[sensor_id] = ts
        if any(s in self.problems for s in result.newest):
            await self._evaluate(ctx)
        elif self.connected and not self.problems and time.monotonic() - self._up_reported > 1.0:
            self._up_reported = time.monotonic()  # last_ok to the second is enough; not per batch
            ctx.health.up(self.name, detail=self._detail())

    def _ack(self, client: Client, entries: Sequence[_Entry]) -> None:
        with self._ack_lock:  # paho's on_disconnect waits: no ack slips onto the next connection
            if not self._live:
                return
            gen = self._gen
            client.ack_many([(e.mid, e.qos) for e in entries if e.qos and e.gen == gen])

    def _note_bad(self, ctx: SourceContext, entries: Sequence[_Entry]) -> None:
        """Count malformed payloads and log the first of each sensor (and of each unknown topic)."""
        for e in entries:
            if e.sensor is None:
                self.unmatched += 1
                key = f"topic:{e.topic}"
                if key not in self._logged and len(self._logged) < 1000:
                    self._logged.add(key)
                    ctx.log.warning("message on %s matches no sensor (%s); ignored, further ones not logged",
                                    e.topic, e.error)
                continue
            self.malformed += 1
            if ctx.metrics is not None:
                ctx.metrics.readings_malformed.labels(self.name, e.sensor).inc()
            if e.sensor not in self._logged:
                self._logged.add(e.sensor)
                ctx.log.warning("sensor %s: malformed payload on %s: %s; further malformed payloads of this sensor "
                                "are counted, not logged", e.sensor, e.topic, e.error)

    async def _evaluate(self, ctx: SourceContext) -> None:
        """Find stale and silent sensors and refused subscriptions; log and record each change; report health."""
        now = readings.now_ms()
        problems: dict[str, str] = {}
        for sensor_id, s in self.sensors.items():
            last = self.last_ts.get(sensor_id)
            state = readings.sensor_state(last, s.interval_s, now)
            if state == "stale" and last is not None:
                problems[sensor_id] = f"stale since {readings.iso_ms(last + round(s.interval_s * 1000))}"
            elif state == "never" and now - self._started > s.interval_s * 1000:
                problems[sensor_id] = "no reading since the source started"
        for topic in sorted(self.refused):
            problems[topic] = "subscription refused by the broker"
        if self._contested is not None:
            if self.connected and time.monotonic() - self._connected_at >= self.takeover_forget_s:
                self._contested = None
                ctx.log.info("the session of client id %r has not been taken over for %g s", self.client_id,
                             self.takeover_forget_s)
            else:
                problems["session"] = self._contested
        went = sorted(k for k in problems.keys() - self.problems.keys() if k in self.sensors)
        back = sorted(k for k in self.problems.keys() - problems.keys() if k in self.sensors)
        for key in went:
            ctx.log.warning("sensor %s: %s (expected every %g s)", key, problems[key], self.sensors[key].interval_s)
        for key in back:
            ctx.log.info("sensor %s: reporting again", key)
        if ctx.metrics is not None:
            for key in went + back:
                ctx.metrics.sensor_stale.labels(self.name, key).set(1 if key in problems else 0)
        due = self._due or problems.keys() != self.problems.keys()
        self.problems, self._due = problems, False
        stale = [(k, last + round(self.sensors[k].interval_s * 1000)) for k in went
                 if (last := self.last_ts.get(k)) is not None]
        if stale:
            assert ctx.readings is not None
            await ctx.readings.mark_stale(stale)
        if due:
            self._report(ctx)

    def _report(self, ctx: SourceContext) -> None:
        if not self.connected:
            return  # down was reported with its reason when the connection went
        if self.problems:
            text = "; ".join(f"{k}: {v}" for k, v in sorted(self.problems.items()))
            ctx.health.degraded(self.name, text, detail={**self._detail(), "problems": dict(self.problems)})
        else:
            ctx.health.up(self.name, detail=self._detail())

    def _detail(self) -> dict[str, Any]:
        return {"broker": self._where, "sensors": len(self.sensors)}

    def _connected(self, session_present: bool) -> None:
        if self.connects and not session_present:
            self._ctx.log.warning("the broker at %s kept no session for %s: QoS 1 messages published while the "
                                  "hub was disconnected are lost", self._where, self.client_id)
        self.connected = True
        self.connects += 1
        self.refused.clear()
        self._ctx.log.info("connected to %s as %s (session %s)", self._where, self.client_id,
                           "resumed" if session_present else "new")
        self._due = True  # report health from the loop, with the sensors' state
        self._wake.set()

    def _subscribed(self, refused: set[str]) -> None:
        for topic in sorted(refused - self.refused):
            self._ctx.log.error("the broker refused the subscription to %s", topic)
        self.refused |= refused
        self._due = True
        self._wake.set()

    def _lost_session(self, delay: float, first: bool, said: bool) -> None:
        how = "the broker says" if said else "the broker keeps closing the connection soon after accepting it: probably"
        text = (f"{self._where}: {how} another client took over the session of client id {self.client_id!r} "
                f"(another hub with the same client_id?); reconnecting in {delay:g} s, waiting longer each time")
        if first:
            self._ctx.log.warning("%s; further takeovers are not logged", text)
        self.connected = False
        self._contested = text
        if not self._closing:  # degraded, not down: readings come while the session is ours; no log per takeover
            self._ctx.health.degraded(self.name, text, detail={**self._detail(), "problems": {"session": text}})

    def _lost(self, reason: str) -> None:
        self.connected = False
        if not self._closing:
            self._ctx.health.down(self.name, reason)

    async def retention(self, ctx: SourceContext) -> int:
        """Delete this source's readings older than ``retention_days``, in small transactions."""
        assert ctx.readings is not None
        cutoff = readings.now_ms() - round(self.settings.retention_days * 86_400_000)
        deleted = await ctx.readings.purge(self.name, cutoff)
        if deleted:
            ctx.log.info("retention: deleted %d reading(s) older than %g days", deleted, self.settings.retention_days)
        return deleted

    async def _stop(self, ctx: SourceContext, client: Client) -> None:
        """Store and acknowledge what is in hand, then disconnect (the session keeps the rest for next time)."""
        self._closing = True
        self._ticker.cancel()
        try:
            async with asyncio.timeout(5):
                await self._flush(ctx, client)
        except Exception as err:  # noqa: BLE001 - unacknowledged messages are redelivered next time
            ctx.log.warning("stopping: could not store the last batch (%r); the broker will redeliver it", err)
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        ctx.log.info("disconnected from %s", self._where)
