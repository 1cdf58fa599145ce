"""The running hub's services: one frozen, typed record, built in one place (:func:`hub.app.build_services`).

Nothing is filled in after construction. What changes while the hub runs is inside a service: the config that SIGHUP
reloads (:class:`ConfigRef`), the rules (``router.live``), the supervisor's task states. The parts some callers do
without (a test kit serving the sensor API only, a unit test over the router) are ``None`` there; the daemon
builds all of them. The web reads them through typed ``web.AppKey``s (:mod:`hub.web.app`).

This module imports no part of the hub at run time, so every layer can name the type without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.config.load import LoadedConfig
    from hub.decide.router import Router
    from hub.deliver.workers import Outbox
    from hub.events import Bus
    from hub.geo.geography import Geography
    from hub.health import Health, Recorder
    from hub.intake.service import IntakeService
    from hub.metrics import Metrics
    from hub.publish.canary_watch import CanaryWatch
    from hub.publish.index import SubscriptionIndex
    from hub.publish.pipeline import Pipeline
    from hub.store.db import AsyncStore
    from hub.supervise import Supervisor
    from hub.web.live import Broadcaster


class ConfigRef:
    """The config in force: SIGHUP replaces :attr:`current` when the new file is valid."""

    def __init__(self, loaded: LoadedConfig) -> None:
        self.current = loaded


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    config: ConfigRef
    store: AsyncStore
    events: Bus
    metrics: Metrics
    health: Health
    recorder: Recorder
    """Persists source health for ``warnhub sources`` (``drain`` before the store closes)."""
    tasks: Supervisor
    intake: IntakeService
    router: Router | None = None
    index: SubscriptionIndex | None = None
    """Push subscriptions by place, shared by the subscription API and the pipeline."""
    geo: Geography | None = None
    """The geography with the operators' boundaries."""
    broadcaster: Broadcaster | None = None
    """The live web stream of publications."""
    pipeline: Pipeline | None = None
    outbox: Outbox | None = None
    vapid_public_key: str | None = None
    canary: CanaryWatch | None = None
    """The canaries (``[canary] enabled``): their rounds, receipts and each endpoint's state."""

    @property
    def loaded(self) -> LoadedConfig:
        """The config in force now (read it anew each time: SIGHUP may have replaced it)."""
        return self.config.current
