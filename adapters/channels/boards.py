"""Display boards: what a board shows (:class:`BoardState`), over MQTT (retained) or signed HTTP POSTs.

A board shows one state at a time: the pipeline's ``resolve`` tells, per delivery, what the board should show now
(a :class:`BoardUpdate` with its :class:`BoardText`; no text: show nothing). The core has fitted the text to the
board's budget and charset (:func:`hub.publish.boardtext.board_text`); the channel only sends it. A Cancel or an
expired text clears the board, unless this process knows the board shows another thread (a cancel of warning A
never blanks warning B). A text that is not ``Actual`` is never shown, except an exercise on a board configured for
exercises.

MQTT: :mod:`adapters.channels.boardmqtt`.

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
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Self

import aiohttp

from hub import __version__
from hub.config.sections import BoardConfig
from hub.ports import BoardResolve, BoardText, BoardUpdate, Channel, ChannelSetup, Delivery, Outcome

log = logging.getLogger("warnhub.channels.boards")
USER_AGENT = f"warnhub/{__version__}"
MAX_SKEW_S = 300
MAX_RETRY_AFTER_S = 24 * 3600.0
_UNKNOWN = object()


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
    receipt: str | None = None
    """A canary's receipt URL (a board marked ``canary``): the controller POSTs to it once it shows the canary."""

    @property
    def cleared(self) -> bool:
        return not self.lines

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["lines"] = list(self.lines)
        if doc["receipt"] is None:  # only a canary carries one
            del doc["receipt"]
        return doc

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def board_state(board: BoardConfig, text: BoardText, key: str, *, now: datetime | None = None) -> BoardState:
    """The state for ``text`` on ``board`` (the core fitted it to the board's budget and charset)."""
    return BoardState(
        board=board.id, thread=text.thread, version=text.version, key=key, severity=text.severity,
        status=text.status, lines=text.lines, headline=text.headline, instruction=text.instruction,
        expires=text.expires.isoformat() if text.expires else None, updated=_stamp(now), receipt=text.receipt)


def clear_state(board: str, *, key: str | None = None, thread: str | None = None,
                now: datetime | None = None) -> BoardState:
    """Nothing to show (``thread``: the warning whose end cleared the board, if one did)."""
    return BoardState(board=board, thread=thread, version=None, key=key, severity=None, status=None, lines=(),
                      headline=None, instruction=None, expires=None, updated=_stamp(now))


def _stamp(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def plan_for(board: BoardConfig, row: Delivery, update: BoardUpdate | None, shown: Mapping[str, str | None],
             now: datetime) -> BoardState | Outcome:
    """The state to send for one delivery, or its outcome when nothing is to be sent."""
    if update is None:
        return Outcome.failed("nothing to deliver: the pipeline has no board update for this row")
    if update.board_id != board.id:
        return Outcome.failed(f"the pipeline answered for board {update.board_id}, not {board.id}")
    text = update.text
    if text is None:
        return clear_state(board.id, key=row.key, thread=row.thread, now=now)
    if text.status == "Test" and board.canary and text.receipt:
        return board_state(board, text, row.key, now=now)  # the control room's canary on its test board
    if text.status != "Actual" and not (text.status == "Exercise" and board.exercise):
        return Outcome.failed(f"a notice with status {text.status} is never shown on board {board.id}")
    if text.msg_type == "Cancel" or (text.expires is not None and text.expires <= now):
        on_board = shown.get(board.id, _UNKNOWN)
        if isinstance(on_board, str) and on_board != text.thread:
            return Outcome.done()  # the board shows another warning: nothing of this one to take down
        return clear_state(board.id, key=row.key, thread=text.thread, now=now)
    return board_state(board, text, row.key, now=now)


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


# -- HTTP -------------------------------------------------------------------------------------------------------


class HttpBoards:
    """Boards whose controller takes signed POSTs of the state JSON (see the module doc)."""

    name = "boards-http"

    def __init__(self, configs: Sequence[BoardConfig], session: aiohttp.ClientSession, resolve: BoardResolve) -> None:
        self.boards = {b.id: b for b in configs if b.kind == "http"}
        self.session, self.resolve = session, resolve
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
                plan = plan_for(board, row, update, self._shown, now)
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


async def open_http_boards(setup: ChannelSetup) -> list[Channel]:
    """``boards-http``: when boards of kind ``http`` are configured."""
    boards = setup.loaded.cfg.boards
    return [HttpBoards(boards, setup.http, setup.content.boards_state)] if any(b.kind == "http" for b in boards) else []
