"""Channels: deliver publications from the outbox (Web Push, web, display boards, webhooks).

The registry is empty until the delivery work lands; the hub publishes nothing yet, it stores and shows.
"""

from __future__ import annotations

CHANNELS: dict[str, type] = {}
