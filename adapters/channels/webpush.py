"""Web Push channel: delivery to push services (RFC 8030) for browsers and UnifiedPush distributors, the payload
encrypted by :mod:`adapters.channels.pushcrypto` (RFC 8291, ``aes128gcm``). The VAPID identity (RFC 8292) is
:mod:`adapters.channels.vapid`, the checks of endpoints and keys :mod:`adapters.channels.pushcheck`.

A fan-out costs per recipient one ECDH (encryption works straight on ``cryptography`` primitives) and one HTTP
request. Both happen in worker processes: :func:`deliver_chunk` is a plain module-level function a
:class:`~concurrent.futures.ProcessPoolExecutor` runs on every core; each worker keeps its own event loop and
keep-alive connections (:mod:`adapters.channels.pushhttp`) from one chunk to the next and encrypts each message just
before POSTing it. The hub's event loop, which runs everything else too, only checks the targets, signs the VAPID
token per push service and hands out the chunks. Without a process pool, :func:`encrypt_batch` runs in the given
executor and the event loop POSTs.
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import os
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Self

import aiohttp

from adapters.channels import pushcrypto
from adapters.channels.pushcheck import Address, NotPublic, check_keys, inspect_endpoint
from adapters.channels.pushcrypto import MAX_PLAINTEXT, encrypt_batch
from adapters.channels.pushfair import FairQueue, HostSlots
from adapters.channels.pushhttp import HttpError, PushClient
from adapters.channels.vapid import VapidKey, hub_key
from hub.ports import Channel, ChannelSetup, Delivery, Outcome, OutcomeKind, PushResolve, PushTarget

log = logging.getLogger("warnhub.push")

MAX_TTL_S = 2419200
"""28 days, the longest any push service keeps a message."""
URGENCIES = ("very-low", "low", "normal", "high")
MAX_RETRY_AFTER_S = 86400.0
CHUNK_MAX = 256
"""Targets per worker job at most (a batch is split into at least one job per worker)."""
START_WITHIN = 3
"""A push not started within this many request timeouts of its batch (its host at the limit) is retried later."""
HAND_OVER_S = 1.0
"""A chunk no worker process is free for within this time (a slow push service holds them) is sent from the loop."""
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")

# --- sending (RFC 8030) ---------------------------------------------------------------------------------------------


_DONE = Outcome.done()

_Item = tuple[str, str, str, str, bytes, int, str, "str | None"]
"""One push for :func:`deliver_chunk`: origin, request target, p256dh, auth, plaintext, TTL, urgency, topic."""
_Result = tuple[OutcomeKind, str, "float | None"] | None
"""(kind, reason, retry after) of one push; None: done."""
_Job = tuple[float, int, int, dict[str, tuple[Address, str]], list[_Item]]
"""timeout_s, requests in flight, requests in flight per push host, origin -> (address, Authorization), items."""


def _target_problem(t: PushTarget) -> str | None:
    if len(t.payload) > MAX_PLAINTEXT:
        return f"payload of {len(t.payload)} bytes exceeds the Web Push limit of {MAX_PLAINTEXT}"
    if t.urgency not in URGENCIES:
        return f"urgency {t.urgency!r} is not one of {', '.join(URGENCIES)}"
    if t.topic is not None and not _TOPIC.fullmatch(t.topic):
        return "topic must be 1 to 32 characters of the base64url alphabet"
    return None


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now (delta-seconds or HTTP date), capped at a day; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - datetime.now(UTC)).total_seconds()), MAX_RETRY_AFTER_S)


def _judge(status: int, retry_after: str | None, excerpt: bytes) -> _Result:
    """The outcome of a push service's answer other than 200/201/202."""
    if status in (404, 410):
        return "gone", f"push service answered {status}: subscription expired or unsubscribed", None
    if status == 429 or status >= 500:
        return "retry", f"push service answered {status}", _retry_after(retry_after)
    text = " ".join(excerpt.decode("utf-8", "replace").split())[:120]
    return "failed", f"push service answered {status}: {text}" if text else f"push service answered {status}", None


def _push_headers(ttl: int, urgency: str, topic: str | None, authorization: str) -> bytes:
    topic_line = f"Topic: {topic}\r\n" if topic else ""
    return (f"TTL: {ttl}\r\nUrgency: {urgency}\r\n{topic_line}Content-Encoding: aes128gcm\r\n"
            f"Content-Type: application/octet-stream\r\nAuthorization: {authorization}\r\n").encode("ascii")


async def _deliver(client: PushClient, job: _Job, bodies: Sequence[bytes] | None,
                   slots: asyncio.Semaphore | None = None,
                   hosts: HostSlots | None = None) -> tuple[list[_Result], list[str]]:
    """POST every item of ``job`` (encrypting it first unless ``bodies`` are given; ``b""``: unusable keys), with
    ``job``'s number of requests in flight (and each holding one of ``slots`` if given), and no more than ``job``'s
    per-host number to one push host (counted in ``hosts`` if given, shared with other batches): the items are
    taken host by host in turn, so a slow host's items never hold up another's. Returns the results and the
    origins that refused the VAPID token (401/403). Never raises for one item."""
    timeout_s, in_flight, per_host, origins, items = job
    results: list[_Result] = [None] * len(items)
    refused: set[str] = set()
    heads: dict[tuple[str, int, str, str | None], bytes] = {}
    hosts = hosts or HostSlots(per_host)
    # what could not start within START_WITHIN request timeouts (its host at the limit: a slow host) is answered
    # retry, so a batch ends in time for its outbox lease and the rest of the batch gets its true outcomes
    deadline = asyncio.get_running_loop().time() + START_WITHIN * timeout_s
    queue = FairQueue([origins[item[0]][0].host for item in items], hosts, deadline)

    async def run() -> None:
        while (taken := await queue.take()) is not None:  # each runner takes the next item when it is free
            k, host = taken
            try:
                body = None if bodies is None else bodies[k]
                results[k] = await _push_one(client, items[k], body, origins[items[k][0]], heads, timeout_s, slots,
                                             refused)
            finally:
                hosts.release(host)

    await asyncio.gather(*(run() for _ in range(max(1, min(in_flight, len(items))))))
    for k, host in queue.left():
        results[k] = "retry", (f"not started within {START_WITHIN * timeout_s:g} s of its batch (push host {host}:"
                               f" at most {hosts.limit} requests at once)"), None
    return results, sorted(refused)


async def _push_one(client: PushClient, item: _Item, body: bytes | None, where: tuple[Address, str],
                    heads: dict[tuple[str, int, str, str | None], bytes], timeout_s: float,
                    slots: asyncio.Semaphore | None, refused: set[str]) -> _Result:
    """Encrypt (unless ``body`` is given) and POST one item; its result. Never raises but for cancellation."""
    origin, path, p256dh, auth, payload, ttl, urgency, topic = item
    if body is None:  # encrypt each just before its request: sending starts at once and never pauses
        try:
            body = pushcrypto.encrypt(payload, pushcrypto.b64d(p256dh), pushcrypto.b64d(auth))
        except (ValueError, TypeError):
            body = b""
    if not body:
        return "failed", check_keys(p256dh, auth) or "encryption failed", None
    address, authorization = where
    key = (origin, ttl, urgency, topic)
    headers = heads.get(key)
    if headers is None:
        headers = heads[key] = _push_headers(ttl, urgency, topic, authorization)
    head = PushClient.request_head(address, path, headers)
    try:
        if slots is None:
            status, retry_after, excerpt = await client.post(address, head, body, timeout_s)
        else:
            async with slots:
                status, retry_after, excerpt = await client.post(address, head, body, timeout_s)
    except TimeoutError:
        return "retry", f"no answer within {timeout_s:g} s", None
    except NotPublic as err:  # the endpoint points into a private network: never send there
        return "failed", str(err)[:200], None
    except (OSError, HttpError) as err:
        return "retry", f"connection failed: {err.__class__.__name__}: {err}"[:200], None
    except Exception as err:  # never lose the batch over one target
        log.exception("push to %s failed unexpectedly", origin)
        return "retry", f"unexpected error: {err.__class__.__name__}", None
    if status in (200, 201, 202):
        return None
    if status in (401, 403):
        refused.add(origin)
    return _judge(status, retry_after, excerpt)


_local = threading.local()


def _worker_state() -> tuple[asyncio.AbstractEventLoop, PushClient]:
    """This process's (and thread's) event loop and connection pool, kept from one chunk to the next."""
    state = getattr(_local, "state", None)
    if state is None or state[0] != os.getpid():  # new, or inherited through fork: never share a parent's sockets
        state = _local.state = (os.getpid(), asyncio.new_event_loop(), PushClient())
    return state[1], state[2]


def deliver_chunk(job: _Job) -> tuple[list[_Result], list[str]]:
    """Encrypt and POST a chunk, in a worker process: its own event loop and keep-alive connections persist between
    chunks. Picklable, for a process pool. Returns one result per item (None: done) and the origins that refused
    the VAPID token. Never raises for one item."""
    loop, client = _worker_state()
    return loop.run_until_complete(_deliver(client, job, None))


def _warm_worker(hold_s: float) -> int:
    """Load and initialise what encrypting and sending need in this worker; returns its pid."""
    _, client = _worker_state()
    client.ssl_context()  # the CA store, for https push services
    pushcrypto.warm()
    time.sleep(hold_s)  # so that the other workers take the other warm-up calls
    return os.getpid()


def _exit_with_parent(parent: int) -> None:
    """Workers of a hub killed with SIGKILL notice they were orphaned and leave (as hub.intake.pool's do; not
    imported from there, which would load the CAP stack into every encryption worker)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def _worker_init(parent: int) -> None:
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="parent-watch").start()


def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class WebPushSender:
    """Encrypts a batch and POSTs it to the push services.

    With a process pool (``executor`` a :class:`~concurrent.futures.ProcessPoolExecutor`, or ``workers=N``) the
    batch is split into chunks and each worker process both encrypts and POSTs its chunk over its own keep-alive
    connections (:mod:`adapters.channels.pushhttp`), ``concurrency`` requests in flight spread over the workers:
    the event loop only checks the targets and hands the chunks over. Otherwise (another executor, or none)
    encryption runs in that executor (``None``: the loop's default thread pool) and the loop POSTs, ``concurrency``
    requests at a time. Either way no more than ``per_host_concurrency`` requests are in flight to one push host
    (split over the workers), and a batch's hosts are served in turn (:mod:`adapters.channels.pushfair`): a flood of
    endpoints on one slow host neither delays the pushes to other hosts nor hammers that host.

    ``executor`` given: the caller owns it (and shuts it down); ``workers`` then says how many chunks to split a batch
    into at least (default: the executor's worker count). ``executor=None``: with ``workers=None`` encryption runs
    in the event loop's default thread pool; with ``workers=N`` the sender starts its own spawn-context process pool
    of N processes (0: one per CPU) and shuts it down in :meth:`aclose` / ``__aexit__``; :meth:`warm` starts it
    ahead of the first batch. ``session`` is kept for compatibility and not used.
    """

    def __init__(self, session: aiohttp.ClientSession | None, vapid: VapidKey, subject: str, *,
                 executor: Executor | None, workers: int | None = None, concurrency: int = 64,
                 per_host_concurrency: int = 32, timeout_s: float = 10.0, allow_http: bool = False) -> None:
        self.session = session
        self.vapid = vapid
        self.subject = subject
        self.timeout_s = timeout_s
        self.allow_http = allow_http
        self.concurrency = concurrency
        self.per_host_concurrency = per_host_concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._hosts: HostSlots | None = None
        self._encrypt_failing = False
        self._owned = executor is None and workers is not None
        self._workers = (workers or _default_workers()) if self._owned else (
            workers or getattr(executor, "_max_workers", 0) or 1)
        self._executor: Executor | None = self._start_pool() if self._owned else executor
        self._client: PushClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._free = asyncio.Semaphore(self._workers)  # worker processes not busy with a chunk

    def _start_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self._workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init, initargs=(os.getpid(),))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def warm(self, timeout_s: float = 60.0) -> None:
        """Start every worker of a process pool and load what encrypting and sending need there, so the first
        fan-out does not wait for process start-up and imports. Nothing to do without a process pool; never raises
        (a pool that cannot start is reported when a batch needs it)."""
        executor = self._executor
        if not isinstance(executor, ProcessPoolExecutor):
            return
        loop = asyncio.get_running_loop()
        want = getattr(executor, "_max_workers", self._workers)
        seen: set[int] = set()
        deadline = loop.time() + timeout_s
        try:
            # a worker answers each call only after its start-up; one that is up already may take several calls,
            # so call until every worker has answered
            while len(seen) < want and loop.time() < deadline:
                seen.update(await asyncio.gather(*(loop.run_in_executor(executor, _warm_worker, 0.02)
                                                   for _ in range(want))))
        except Exception as err:  # noqa: BLE001 - warming is an optimisation; send_many reports a broken pool
            log.warning("warming the push workers failed: %r", err)
            return
        log.debug("push workers ready: %d", len(seen))

    async def aclose(self) -> None:
        """Close the loop's push connections; shut down the process pool the sender started (never one it was
        given), and with it the workers' connections. Chunks the workers are sending get ``timeout_s`` (at most
        10 s) to finish; then the workers are ended (their rows are still in flight and are sent again later)."""
        client, self._client = self._client, None
        if client is not None and self._client_loop is asyncio.get_running_loop():
            client.close()
        if self._owned and self._executor is not None:
            executor, self._executor = self._executor, None
            done = asyncio.ensure_future(asyncio.to_thread(executor.shutdown, True, cancel_futures=True))
            try:
                await asyncio.wait_for(asyncio.shield(done), min(self.timeout_s, 10.0) + 1.0)
            except TimeoutError:
                processes = list(getattr(executor, "_processes", {}).values())
                log.warning("push workers still busy at shutdown; ending %d of them", len(processes))
                for process in processes:
                    process.terminate()
                await done

    async def send_many(self, targets: Sequence[PushTarget]) -> list[Outcome]:
        """One outcome per target, in order. Never raises for one target."""
        outcomes: list[Outcome] = [_DONE] * len(targets)
        where: list[int] = []
        items: list[_Item] = []
        origins: dict[str, tuple[Address, str]] = {}
        allow_http = self.allow_http
        for i, t in enumerate(targets):
            reason, origin, address, path = inspect_endpoint(t.endpoint, allow_http)
            reason = reason or _target_problem(t)
            if reason is not None:
                outcomes[i] = Outcome.failed(reason)
                continue
            if origin not in origins:
                assert address is not None
                origins[origin] = (address, self.vapid.authorization(origin, self.subject))
            where.append(i)
            items.append((origin, path, t.p256dh, t.auth, t.payload, min(max(t.ttl_s, 0), MAX_TTL_S), t.urgency,
                          t.topic))
        if items:
            if isinstance(self._executor, ProcessPoolExecutor):
                results, refused = await self._in_workers(origins, items)
            else:
                results, refused = await self._here(origins, items, self._executor)
            for origin in refused:
                self.vapid.forget(origin)  # the next attempt signs a fresh token
            for i, result in zip(where, results, strict=True):
                if result is not None:
                    outcomes[i] = Outcome(*result)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("push batch of %d: %d done", len(outcomes), sum(o.kind == "done" for o in outcomes))
        return outcomes

    def _chunks(self, n: int) -> list[range]:
        size = math.ceil(n / max(self._workers, math.ceil(n / CHUNK_MAX)))
        return [range(k, min(k + size, n)) for k in range(0, n, size)]

    async def _in_workers(self, origins: dict[str, tuple[Address, str]],
                          items: list[_Item]) -> tuple[list[_Result], list[str]]:
        executor = self._executor
        loop = asyncio.get_running_loop()
        in_flight = max(1, math.ceil(self.concurrency / self._workers))
        # each worker sends one chunk at a time: its share of the per-host limit keeps the sum within it (but one
        # request per host and worker at least)
        per_host = max(1, self.per_host_concurrency // self._workers)

        async def one(part: range) -> tuple[list[_Result], list[str]] | BaseException:
            try:  # each worker takes one chunk at a time: one held by a slow push service must not hold up this
                await asyncio.wait_for(self._free.acquire(), HAND_OVER_S)
            except TimeoutError:
                return await self._here(origins, items[part.start:part.stop], None)
            try:
                return await loop.run_in_executor(executor, deliver_chunk, (
                    self.timeout_s, in_flight, per_host, origins, items[part.start:part.stop]))
            except Exception as err:  # noqa: BLE001 - a dead worker, a closed pool: the rows come back later
                return err
            finally:
                self._free.release()

        parts = self._chunks(len(items))
        answers = await asyncio.gather(*(one(part) for part in parts))
        results: list[_Result] = []
        refused: set[str] = set()
        failure: BaseException | None = None
        for part, answer in zip(parts, answers, strict=True):
            if isinstance(answer, BaseException):
                failure = answer
                results += [("retry", f"encryption failed: {answer.__class__.__name__}", None)] * len(part)
            else:
                results += answer[0]
                refused.update(answer[1])
        self._pool_state(failure, executor)
        return results, sorted(refused)

    def _pool_state(self, failure: BaseException | None, executor: Executor | None) -> None:
        """Log a failing pool once per change of state; start a new pool if the sender's own one broke."""
        if failure is None:
            if self._encrypt_failing:
                log.info("push encryption recovered")
                self._encrypt_failing = False
            return
        restart = isinstance(failure, BrokenProcessPool) and self._owned and self._executor is executor
        if restart:
            self._executor = self._start_pool()
        if restart or not self._encrypt_failing:
            log.error("push encryption failed%s: %r", "; worker pool restarted" if restart else "", failure,
                      exc_info=failure)
        self._encrypt_failing = True

    async def _here(self, origins: dict[str, tuple[Address, str]], items: list[_Item],
                    executor: Executor | None) -> tuple[list[_Result], list[str]]:
        """Encrypt in ``executor`` (None: the loop's default threads), POST from this event loop."""
        loop = asyncio.get_running_loop()

        async def encrypt(part: range) -> list[bytes] | BaseException:
            try:
                return await loop.run_in_executor(executor, encrypt_batch,
                                                  [(items[k][4], items[k][2], items[k][3]) for k in part])
            except Exception as err:  # noqa: BLE001 - reported per row below
                return err

        parts = self._chunks(len(items))
        encrypted = await asyncio.gather(*(encrypt(part) for part in parts))
        results: list[_Result] = [None] * len(items)
        send: list[int] = []
        bodies: list[bytes] = []
        failure: BaseException | None = None
        for part, answer in zip(parts, encrypted, strict=True):
            if isinstance(answer, BaseException):
                failure = answer
                for k in part:
                    results[k] = "retry", f"encryption failed: {answer.__class__.__name__}", None
            else:
                send += part
                bodies += answer
        self._pool_state(failure, executor)
        if send:
            client = self._loop_client(loop)
            assert self._hosts is not None
            sent, refused = await _deliver(client, (
                self.timeout_s, self.concurrency, self.per_host_concurrency, origins, [items[k] for k in send]),
                bodies, self._slots, self._hosts)
            for k, result in zip(send, sent, strict=True):
                results[k] = result
            return results, refused
        return results, []

    def _loop_client(self, loop: asyncio.AbstractEventLoop) -> PushClient:
        if self._client is None or self._client_loop is not loop:  # connections belong to one event loop
            self._client, self._client_loop = PushClient(), loop
            self._hosts = HostSlots(self.per_host_concurrency)  # as do the requests in flight it counts
        return self._client


# --- the channel ----------------------------------------------------------------------------------------------------

class WebPushChannel:
    """The ``push`` channel: the pipeline's ``resolve`` turns outbox rows into targets (None: the subscription was
    deleted), the sender delivers them. Leaving the context closes the sender, which shuts down a process pool it
    started itself; a pool passed to the sender stays the caller's to shut down."""

    name = "push"

    def __init__(self, sender: WebPushSender, resolve: PushResolve) -> None:
        self.sender = sender
        self.resolve = resolve

    async def __aenter__(self) -> Self:
        await self.sender.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.sender.__aexit__(*exc)

    async def deliver(self, batch: Sequence[Delivery]) -> Sequence[Outcome]:
        try:
            targets = await self.resolve(batch)
            if len(targets) != len(batch):
                raise ValueError(f"resolve answered {len(targets)} targets for {len(batch)} deliveries")
        except Exception as err:  # the store or the resolver failed: the rows stay in the outbox for later
            log.exception("resolving %d push deliveries failed", len(batch))
            return [Outcome.retry(f"resolve failed: {err.__class__.__name__}")] * len(batch)
        live = [(i, t) for i, t in enumerate(targets) if t is not None]
        sent = await self.sender.send_many([t for _, t in live])
        outcomes = [Outcome.gone("subscription deleted")] * len(batch)
        for (i, _), outcome in zip(live, sent, strict=True):
            outcomes[i] = outcome
        return outcomes


async def open_push(setup: ChannelSetup) -> list[Channel]:
    """The ``push`` channel (always there): the hub's VAPID key, a sender whose worker processes start now (not on
    the first warning) and stop when the hub stops."""
    cfg = setup.loaded.cfg.push
    sender = WebPushSender(setup.http, hub_key(setup.loaded), cfg.vapid_subject, executor=None, workers=cfg.workers,
                           concurrency=cfg.concurrency, per_host_concurrency=cfg.per_host_concurrency,
                           timeout_s=cfg.timeout_s, allow_http=cfg.allow_http_endpoints)
    setup.stack.push_async_callback(sender.aclose)
    await sender.warm()
    return [WebPushChannel(sender, setup.content.push)]
