"""Webhooks: every published warning POSTed, signed, to a multiplier (news portal, taxi dispatch).

The pipeline renders the body per webhook (CAP XML or JSON, as the webhook's ``format`` says) and hands it over
through ``resolve``; this channel only sends it: HMAC-SHA256 signature over ``timestamp + "." + body`` and the
delivery key as ``Idempotency-Key`` (:func:`adapters.channels.boards.post_signed`), the webhook's own timeout, all
rows of a batch at once (a hung receiver delays no other). Redirects are not followed and 404/410 are failed, not
gone: a webhook is config, and a moved or removed one is for the operator to fix.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Self

import aiohttp

from adapters.channels.boards import OutcomeLog, post_signed, resolve_batch
from hub.config.sections import WebhookConfig
from hub.ports import Channel, ChannelSetup, Delivery, Outcome, WebhookBody, WebhookResolve

log = logging.getLogger("warnhub.channels.webhooks")


class Webhooks:
    """Signed POSTs to the configured webhooks (see the module doc)."""

    name = "webhooks"

    def __init__(self, configs: Sequence[WebhookConfig], session: aiohttp.ClientSession,
                 resolve: WebhookResolve) -> None:
        self.hooks = {w.id: w for w in configs}
        self.session, self.resolve = session, resolve
        self._log = OutcomeLog(self.name, log)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None  # the session belongs to the caller

    async def deliver(self, batch: Sequence[Delivery]) -> Sequence[Outcome]:
        bodies = await resolve_batch(self.resolve, batch, self.name)
        if isinstance(bodies, Outcome):
            return [bodies] * len(batch)
        return list(await asyncio.gather(*(self._one(row, b) for row, b in zip(batch, bodies, strict=True))))

    async def _one(self, row: Delivery, body: WebhookBody | None) -> Outcome:
        hook = self.hooks.get(row.recipient)
        try:
            if hook is None:
                outcome = Outcome.failed(f"no webhook {row.recipient!r} configured")
            elif body is None:
                outcome = Outcome.failed("nothing to deliver: the pipeline has no body for this row")
            else:
                outcome = await post_signed(self.session, hook.url, body.body, content_type=body.content_type,
                                            secret=hook.secret, key=row.key, timeout_s=hook.timeout_s)
        except Exception as err:  # noqa: BLE001 - never raise for one bad row
            outcome = Outcome.failed(f"internal error: {err!r}")
        self._log.note(row.recipient, row, outcome)
        return outcome


async def open_webhooks(setup: ChannelSetup) -> list[Channel]:
    """``webhooks``: when webhooks are configured."""
    hooks = setup.loaded.cfg.webhooks
    return [Webhooks(hooks, setup.http, setup.content.webhook_body)] if hooks else []
