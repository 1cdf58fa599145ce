"""Intake: every document any source brings passes here, is validated, and is stored before anything acts on it.

Synchronous on purpose: the daemon runs it on the store's one writer thread (parsing, XSD and signature checks
are CPU work that must not block the event loop), the CLI calls it directly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from hub.cap.sign import SignaturePolicy
from hub.cap.validate import Report, Validator, Verdict
from hub.store import Store

log = logging.getLogger("warnhub.intake")


@dataclass(frozen=True, slots=True)
class IntakeResult:
    outcome: str
    """``new``, ``duplicate`` or ``rejected``."""
    report: Report
    alert_id: int | None = None
    thread_id: int | None = None
    state: str | None = None

    @property
    def reason(self) -> str:
        return self.report.reason


class Intake:
    def __init__(self, validator: Validator, store: Store) -> None:
        self.validator = validator
        self.store = store

    def ingest(self, raw: bytes, *, origin: str, policy: SignaturePolicy = SignaturePolicy.VERIFY,
               path: str | None = None, now: datetime | None = None) -> IntakeResult:
        report = self.validator.check(raw, policy=policy, path=path)
        if report.verdict is Verdict.REJECTED or report.alert is None:
            self.store.add_rejection(raw, origin=origin, reason=report.reason, now=now)
            log.warning("rejected document from %s: %s", origin, report.reason,
                        extra={"origin": origin, "path": path})
            return IntakeResult("rejected", report)
        alert = report.alert
        added = self.store.add_alert(report, raw, origin=origin, now=now)
        log.info("%s alert=%s/%s thread=%s state=%s verdict=%s", added.outcome, alert.sender, alert.identifier,
                 added.thread_id, added.state, report.verdict.value,
                 extra={"alert": f"{alert.sender}/{alert.identifier}", "origin": origin})
        return IntakeResult(added.outcome, report, added.alert_id, added.thread_id, added.state)
